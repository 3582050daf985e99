//! The `chat-server` binary: reads the configuration, then runs the server.

use std::process::ExitCode;

use chat_server::{Command, ConfigError};

fn main() -> ExitCode {
    let command = args().and_then(|args| chat_server::parse_config(args, env()?));
    let config = match command {
        Ok(Command::Serve(config)) => *config,
        Ok(Command::Help) => {
            print!("{}", chat_server::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("chat-server {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Ok(Command::Operation(operation)) => {
            return match chat_server::run_operation(operation) {
                Ok(done) => {
                    println!("{done}");
                    ExitCode::SUCCESS
                }
                Err(problems) => {
                    for problem in problems {
                        eprintln!("chat-server: {problem}");
                    }
                    ExitCode::FAILURE
                }
            };
        }
        Err(e) => {
            eprintln!("chat-server: {e}");
            return ExitCode::from(2);
        }
    };
    chat_server::set_log_level(config.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("chat-worker")
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("chat-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(chat_server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat-server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The arguments after the program name; one that is not UTF-8 is a bad
/// argument like any other, not a panic.
fn args() -> Result<Vec<String>, ConfigError> {
    std::env::args_os()
        .skip(1)
        .map(|arg| {
            arg.into_string()
                .map_err(|arg| ConfigError(format!("argument {arg:?} is not valid UTF-8")))
        })
        .collect()
}

/// The environment lookup for the configuration. A `CHAT_` variable that
/// is set but not UTF-8 is refused up front rather than silently ignored.
fn env() -> Result<impl Fn(&str) -> Option<String>, ConfigError> {
    for (key, value) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CHAT_") && value.to_str().is_none() {
            return Err(ConfigError(format!("{key}: the value is not valid UTF-8")));
        }
    }
    Ok(|key: &str| std::env::var(key).ok())
}
