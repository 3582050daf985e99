//! `idle`: N authenticated WebSocket connections that only listen. Measures
//! what each costs the server in memory (needs `--server-pid`), then how long
//! one message takes to reach all of them.

use std::cell::RefCell;
use std::ops::ControlFlow;
use std::rc::Rc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Notify;
use tokio::time::{sleep, timeout_at};

use super::phase::Crowd;
use super::{Ctx, Ends, FromFlags};
use crate::args::{bad, ArgError, Flags};
use crate::chat::{Phase, SendPlan};
use crate::error::{Context, Error, Result};
use crate::process;
use crate::report::Report;
use crate::stats::{ms, rate, round3, Histogram};
use crate::sys::Meter;
use crate::ws;

pub const HELP: &str = "\
chat-bench idle: many idle WebSocket connections; memory per connection and the
time one message takes to reach them all.

Usage: chat-bench idle [--connections N] [--users U] [--settle SECS] [common flags]

  --connections N   connections to open (default 1000); the open-file limit is
                    raised to its hard limit first
  --users U         accounts the connections are spread over (default 4)
  --settle SECS     wait after the last connection opened before reading the
                    server's memory (default 2)

With --server-pid, reads the server's RSS before and after and reports bytes
per connection. Then one more client sends one message and the run measures
until every idle connection has received it.";

#[derive(Debug, PartialEq)]
pub struct Options {
    pub connections: usize,
    pub users: usize,
    pub settle: Duration,
}

impl FromFlags for Options {
    const FLAGS: &'static [&'static str] = &["--connections", "--users", "--settle"];

    fn from_flags(flags: &Flags) -> std::result::Result<Options, ArgError> {
        let options = Options {
            connections: flags.get("--connections", 1000)?,
            users: flags.get("--users", 4)?,
            settle: flags.secs("--settle", Duration::from_secs(2))?,
        };
        if options.connections == 0 || options.users == 0 {
            return Err(bad("--connections and --users must be at least 1"));
        }
        Ok(options)
    }
}

/// Descriptors the process needs besides its connections.
const SPARE_FILES: u64 = 64;

/// When each idle connection received the broadcast, shared on the one thread.
#[derive(Default)]
struct Arrivals {
    latency: Histogram,
    last_ns: u64,
}

pub async fn run(ctx: &Ctx, options: &Options) -> Result<Report> {
    let limit = process::raise_open_files_limit().context("raising the open-file limit")?;
    if limit < options.connections as u64 + SPARE_FILES {
        return Err(Error::new(format!(
            "the open-file hard limit is {limit}: too low for {} connections (raise it with ulimit -Hn)",
            options.connections
        )));
    }
    let users = ctx.create_users(options.users.min(options.connections)).await?;
    let tokens: Vec<String> = users.into_iter().map(|u| u.token).collect();
    let before = ctx.server_memory()?;

    let mut announcer = Crowd::new(ctx, Phase::Joining);
    // The listeners only read, which they do from the start: they watch a
    // phase of their own that changes only to stop them, so that the start
    // of the broadcast does not wake ten thousand tasks of this one thread.
    let mut listeners = Crowd::new(ctx, Phase::Sending);
    let arrivals = Rc::new(RefCell::new(Arrivals::default()));
    let arrived = Rc::new(Notify::new());
    let opening = Meter::start();
    ws::open_many(&ctx.endpoints, &tokens, options.connections, ctx.deadline, |_, ws| {
        let (arrivals, arrived) = (arrivals.clone(), arrived.clone());
        listeners.spawn(ws, None, move |d| {
            let mut arrivals = arrivals.borrow_mut();
            arrivals.latency.record(d.latency_ns());
            arrivals.last_ns = arrivals.last_ns.max(d.received_ns);
            arrived.notify_one();
            ControlFlow::Break(())
        });
    })
    .await?;
    let open = opening.read();
    sleep(options.settle).await;
    let settled = ctx.server_memory()?;

    let plan = SendPlan {
        sender: 0,
        count: 1,
        window: 1,
        pace: None,
    };
    announcer.spawn(ws::connect(&ctx.endpoint, &tokens[0]).await?, Some(plan), |_| {
        ControlFlow::Break(())
    });
    let broadcasting = announcer.start()?;
    let all_arrived = async {
        while arrivals.borrow().latency.count() < options.connections as u64 {
            arrived.notified().await;
        }
    };
    let _ = timeout_at(ctx.deadline, all_arrived).await;
    let (broadcast, broadcast_server_cpu) = broadcasting.read()?;
    let mut outcomes = announcer.finish().await?;
    outcomes.extend(listeners.finish().await?);

    let arrivals = arrivals.take();
    let sent_ns = outcomes[0].first_sent_ns.unwrap_or(arrivals.last_ns);
    let received = arrivals.latency.count();
    let spread = arrivals.last_ns.saturating_sub(sent_ns);
    let latency = arrivals.latency.summary();
    let n = options.connections;

    let mut report = Report::new("idle");
    report.line(format!(
        "idle: {n} connections over {} users (open-file limit {limit})",
        tokens.len()
    ));
    report.line(format!(
        "  opened in {:.3} s ({} /s), settled {:.1} s",
        open.wall.as_secs_f64(),
        rate(n as u64, open.wall.as_nanos() as u64),
        options.settle.as_secs_f64()
    ));
    report.figure("connections", n);
    report.figure("users", tokens.len());
    report.figure("open_s", round3(open.wall.as_secs_f64()));
    report.figure("opened_per_s", rate(n as u64, open.wall.as_nanos() as u64));
    match (before, settled) {
        (Some(before), Some(settled)) => {
            let growth = settled.rss_kib.saturating_sub(before.rss_kib);
            let per_connection = growth * 1024 / n as u64;
            report.line(format!(
                "  server RSS {} -> {} KiB: {per_connection} bytes per connection",
                before.rss_kib, settled.rss_kib
            ));
            report.figure(
                "idle_memory",
                json!({
                    "rss_before_kib": before.rss_kib,
                    "rss_after_kib": settled.rss_kib,
                    "bytes_per_connection": per_connection,
                }),
            );
        }
        _ => report.line("  server memory not measured (give --server-pid)"),
    }
    report.line(format!(
        "  one message reached {received} of {n} in {}; per connection {}",
        ms(spread),
        latency.human()
    ));
    report.figure("broadcast_received", received);
    report.figure("broadcast_all_ms", round3(spread as f64 / 1e6));
    report.figure("broadcast_latency_ms", latency.json());
    let mut cpu = format!("  while it spread: client CPU {}", ms(broadcast.cpu.as_nanos() as u64));
    report.figure("broadcast_client_cpu_ms", round3(broadcast.cpu.as_secs_f64() * 1e3));
    if let Some(server) = broadcast_server_cpu {
        cpu += &format!(", server CPU {}", ms(server.as_nanos() as u64));
        report.figure("broadcast_server_cpu_ms", round3(server.as_secs_f64() * 1e3));
    }
    report.line(cpu);
    Ends::tally(&outcomes).add_to(&mut report);
    if received < n as u64 {
        report.fail(format!("the message reached only {received} of {n} connections"));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(
            Options::parse("").unwrap(),
            Options {
                connections: 1000,
                users: 4,
                settle: Duration::from_secs(2)
            }
        );
        assert_eq!(
            Options::parse("--connections 10 --settle 500ms").unwrap().settle,
            Duration::from_millis(500)
        );
        assert!(Options::parse("--connections 0").is_err());
        assert!(Options::parse("--settle 0").is_err());
    }
}
