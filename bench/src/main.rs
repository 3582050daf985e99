//! chat-bench: the load generator of chat-server. It speaks only the server's
//! network API (HTTP/1.1 and WebSocket), never its code or database.
//!
//! Map of the modules:
//! - `args`: hand-written flag parsing and the flags every subcommand shares
//! - `cmd`: one file per subcommand, with the run context and the skeleton of
//!   a measured phase that they share
//! - `chat`: the chat client loop and the probe messages that carry timings
//! - `ws`: opening and closing WebSocket connections, parsing chat events
//! - `http`: a tiny HTTP/1.1 client over raw TCP
//! - `api`: the routes called around measurements (health, register, token)
//! - `stats`: the latency histogram and its percentiles
//! - `report`: the human summary and the one JSON line
//! - `process`: this process's CPU time and open-file limit
//! - `sys`: CPU time of a phase and of the server, a process's memory from /proc
//! - `rng`: a fast seeded generator for test data and names
//! - `error`: the one error type
//!
//! Everything runs on one thread (a current-thread runtime and a `LocalSet`),
//! so shared tallies are plain `RefCell`s, and the process's CPU time shows
//! when the client, rather than the server, is the bottleneck.

mod api;
mod args;
mod chat;
mod cmd;
mod error;
mod http;
mod process;
mod report;
mod rng;
mod stats;
mod sys;
mod ws;

use std::process::ExitCode;
use std::time::Duration;

use tokio::task::LocalSet;
use tokio::time::Instant;

use args::{ArgError, Common};
use cmd::{Command, Ctx};
use error::{Error, Result};
use report::Report;
use rng::Rng;
use sys::Meter;

/// Time allowed past `--timeout` for a run to close its connections and
/// report, before it is cut off.
const GRACE: Duration = Duration::from_secs(10);

fn usage() -> String {
    let mut text = String::from(
        "chat-bench: load generator for chat-server\n\n\
         Usage: chat-bench <subcommand> [flags]\n\nSubcommands:\n",
    );
    for (name, summary) in cmd::SUMMARIES {
        text.push_str(&format!("  {name:<12} {summary}\n"));
    }
    text.push_str("\n'chat-bench <subcommand> --help' describes each one and the common flags.");
    text
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some((name, rest)) = argv.split_first() else {
        eprintln!("{}", usage());
        return ExitCode::from(2);
    };
    if matches!(name.as_str(), "-h" | "--help" | "help") {
        println!("{}", usage());
        return ExitCode::SUCCESS;
    }
    let (common, command) = match cmd::parse(name, rest) {
        Ok(parsed) => parsed,
        Err(ArgError::Help) => {
            println!("{}", cmd::help(name).unwrap_or_else(usage));
            return ExitCode::SUCCESS;
        }
        Err(ArgError::Bad(message)) => {
            let hint = match cmd::help(name) {
                Some(_) => format!("'chat-bench {name} --help' lists the flags"),
                None => "'chat-bench --help' lists the subcommands".to_string(),
            };
            eprintln!("chat-bench {name}: {message}\n{hint}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("chat-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match LocalSet::new().block_on(&runtime, run(common, command)) {
        Ok(report) => {
            print!("{}", report.render());
            for failure in report.failures() {
                eprintln!("chat-bench {name}: {failure}");
            }
            if report.failures().is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("chat-bench {name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one subcommand and adds the figures every run has: the client's
/// CPU and the server's memory over the whole run.
async fn run(common: Common, command: Command) -> Result<Report> {
    chat::now_ns();
    let meter = Meter::start();
    let mut endpoints = Vec::with_capacity(common.targets.len());
    for target in &common.targets {
        let endpoint = http::Endpoint::resolve(target).await?;
        api::check_health(&endpoint).await?;
        endpoints.push(endpoint);
    }
    let ctx = Ctx {
        endpoint: endpoints[0].clone(),
        endpoints,
        password: common.password,
        server_pids: common.server_pids,
        deadline: Instant::now() + common.timeout,
        tag: Rng::from_entropy().hex(8),
    };
    let before = ctx.server_memory()?;
    let server_cpu_before = ctx.server_cpu()?;
    let mut report = tokio::time::timeout_at(ctx.deadline + GRACE, cmd::run(&ctx, &command))
        .await
        .map_err(|_| Error::new("the run did not finish within --timeout"))??;
    let after = ctx.server_memory()?;
    cmd::add_memory(&mut report, before, after);
    let usage = meter.read();
    report.line(format!(
        "  run {:.3} s, client CPU {:.3} s ({}% of one core)",
        usage.wall.as_secs_f64(),
        usage.cpu.as_secs_f64(),
        usage.cpu_percent()
    ));
    if let Some(used) = ctx.server_cpu_since(server_cpu_before)? {
        report.line(format!("  server CPU {:.3} s over the run", used.as_secs_f64()));
        report.figure("server_cpu_s", stats::round3(used.as_secs_f64()));
    }
    report.figure("run_s", stats::round3(usage.wall.as_secs_f64()));
    report.figure("client_cpu_s", stats::round3(usage.cpu.as_secs_f64()));
    report.figure("run_tag", ctx.tag.as_str());
    Ok(report)
}
