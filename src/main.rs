//! The `chat-server` binary: reads the configuration, then runs the server.

use std::process::ExitCode;

use chat_server::config::{self, Command};

fn main() -> ExitCode {
    let command = config::parse(std::env::args().skip(1), |key| std::env::var(key).ok());
    let config = match command {
        Ok(Command::Serve(config)) => *config,
        Ok(Command::Help) => {
            print!("{}", config::HELP);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("chat-server: {e}");
            return ExitCode::from(2);
        }
    };
    chat_server::log::set_level(config.log);
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
