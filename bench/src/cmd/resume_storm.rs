//! `resume-storm`: N clients lose their connections at once, M messages are
//! posted while they are away, and all N reconnect at once with `after_id`.
//! Measures how long until every one of them has caught up, and checks that
//! each received exactly the missed messages, once each, in order.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use tokio::task::spawn_local;
use tokio::time::{timeout_at, Instant};
use tokio_tungstenite::tungstenite::Message;

use super::{join, post, Ctx, FromFlags};
use crate::args::{bad, ArgError, Flags};
use crate::error::{Context, Error, Result};
use crate::process;
use crate::report::Report;
use crate::stats::{ms, round3, Histogram};
use crate::sys::Meter;
use crate::ws::{self, Event, Ws};

pub const HELP: &str = "\
chat-bench resume-storm: N clients drop their connections at once, M messages
are posted meanwhile, and all N reconnect at once resuming with after_id.

Usage: chat-bench resume-storm [--clients N] [--missed M] [--users U]
                               [--concurrency C] [common flags]

  --clients N       connections that drop and resume (default 10000)
  --missed M        messages posted while they are away (default 100; at most
                    1000, the server's replay bound)
  --users U         accounts the connections are spread over (default 4)
  --concurrency C   handshakes in flight at once during the storm (default
                    N: all at once)

Reports the time from the first reconnect until the last client has all M
messages, the per-client catch-up time, and fails on any client that got a
message twice, out of order, or missed one.";

#[derive(Debug, PartialEq)]
pub struct Options {
    pub clients: usize,
    pub missed: usize,
    pub users: usize,
    pub concurrency: Option<usize>,
}

impl FromFlags for Options {
    const FLAGS: &'static [&'static str] = &["--clients", "--missed", "--users", "--concurrency"];

    fn from_flags(flags: &Flags) -> std::result::Result<Options, ArgError> {
        let options = Options {
            clients: flags.get("--clients", 10_000)?,
            missed: flags.get("--missed", 100)?,
            users: flags.get("--users", 4)?,
            concurrency: flags.opt("--concurrency")?,
        };
        if options.clients == 0 || options.users == 0 || options.concurrency == Some(0) {
            return Err(bad("--clients, --users and --concurrency must be at least 1"));
        }
        if !(1..=1000).contains(&options.missed) {
            return Err(bad("--missed must be from 1 to 1000"));
        }
        Ok(options)
    }
}

/// How long the whole storm may take to catch up, by the contract.
const BOUND: Duration = Duration::from_secs(10);

/// Descriptors the process needs besides its connections.
const SPARE_FILES: u64 = 64;

/// How the resuming clients did, shared on the one thread.
#[derive(Default)]
struct Tally {
    caught_up: Histogram,
    last_ns: u64,
    wrong: usize,
    first_wrong: Option<String>,
}

pub async fn run(ctx: &Ctx, options: &Options) -> Result<Report> {
    let limit = process::raise_open_files_limit().context("raising the open-file limit")?;
    if limit < options.clients as u64 + SPARE_FILES {
        return Err(Error::new(format!(
            "the open-file hard limit is {limit}: too low for {} connections",
            options.clients
        )));
    }
    let users = ctx.create_users(options.users.min(options.clients)).await?;
    let tokens: Rc<Vec<String>> = Rc::new(users.into_iter().map(|u| u.token).collect());
    let mut sender = ws::connect(&ctx.endpoint, &tokens[0]).await?;
    let mark = post(&mut sender, &[format!("{} mark", ctx.tag)], ctx.deadline).await?[0];

    // The crowd is connected, then loses its connections all at once.
    let mut crowd = Vec::with_capacity(options.clients);
    ws::open_many(&ctx.endpoints, &tokens, options.clients, ctx.deadline, |_, ws| {
        crowd.push(ws)
    })
    .await?;
    drop(crowd);

    let contents: Vec<String> = (0..options.missed).map(|i| format!("{} {i}", ctx.tag)).collect();
    let missed = Rc::new(post(&mut sender, &contents, ctx.deadline).await?);

    let tally = Rc::new(RefCell::new(Tally::default()));
    let gate = Rc::new(tokio::sync::Semaphore::new(
        options.concurrency.unwrap_or(options.clients),
    ));
    let storm = Meter::start();
    let started = Instant::now();
    let clients: Vec<_> = (0..options.clients)
        .map(|i| {
            let (tokens, missed, tally, gate) = (tokens.clone(), missed.clone(), tally.clone(), gate.clone());
            let (endpoint, deadline) = (ctx.node_of(i).clone(), ctx.deadline);
            spawn_local(async move {
                let query = format!("after_id={mark}");
                let opened = async {
                    let _permit = gate.acquire().await;
                    ws::connect_with(&endpoint, &tokens[i % tokens.len()], &query).await
                };
                let verdict = match opened.await {
                    Ok(ws) => catch_up(ws, &missed, deadline).await,
                    Err(e) => Err(e.to_string()),
                };
                let mut tally = tally.borrow_mut();
                match verdict {
                    Ok(ws) => {
                        let now = started.elapsed().as_nanos() as u64;
                        tally.caught_up.record(now);
                        tally.last_ns = tally.last_ns.max(now);
                        drop(tally);
                        ws
                    }
                    Err(why) => {
                        tally.wrong += 1;
                        tally.first_wrong.get_or_insert(why);
                        None
                    }
                }
            })
        })
        .collect();
    let mut resumed = Vec::with_capacity(options.clients);
    for client in clients {
        resumed.extend(join(client).await?);
    }
    let usage = storm.read();
    let resumed_memory = ctx.server_memory()?;
    ws::close_all(resumed).await;

    let tally = tally.take();
    let n = options.clients;
    let mut report = Report::new("resume-storm");
    report.line(format!(
        "resume-storm: {n} clients over {} users resume after_id={mark}, {} messages missed each",
        tokens.len(),
        options.missed
    ));
    report.line(format!(
        "  all {} caught up in {} (client CPU {}); per client {}",
        tally.caught_up.count(),
        ms(tally.last_ns),
        ms(usage.cpu.as_nanos() as u64),
        tally.caught_up.summary().human()
    ));
    report.figure("clients", n);
    report.figure("missed", options.missed);
    report.figure("caught_up", tally.caught_up.count());
    report.figure("all_caught_up_ms", round3(tally.last_ns as f64 / 1e6));
    report.figure("caught_up_ms", tally.caught_up.summary().json());
    report.figure("wrong", json!(tally.wrong));
    if let Some(memory) = resumed_memory {
        report.line(format!(
            "  server RSS with all {n} resumed and open: {} KiB",
            memory.rss_kib
        ));
        report.figure("resumed_rss_kib", memory.rss_kib);
    }
    if tally.last_ns > BOUND.as_nanos() as u64 {
        report.fail(format!("catching up took {}, over {BOUND:?}", ms(tally.last_ns)));
    }
    if let Some(why) = tally.first_wrong {
        let text = format!(
            "{} clients did not get every missed message exactly once (first: {why})",
            tally.wrong
        );
        report.line(format!("  {text}"));
        report.fail(text);
    }
    Ok(report)
}

/// Reads the resumed connection until it has every missed message: `Err`
/// says what went wrong (a twin, a gap, a reorder, a close, the deadline).
async fn catch_up(mut ws: Ws, missed: &[i64], deadline: Instant) -> std::result::Result<Option<Ws>, String> {
    let mut next = 0;
    while next < missed.len() {
        let frame = timeout_at(deadline, ws.next())
            .await
            .map_err(|_| format!("only {next} of {} missed messages by --timeout", missed.len()))?;
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            other => return Err(format!("connection ended after {next} messages: {other:?}")),
        };
        match ws::parse_event(&text) {
            Event::Message { id, .. } if id == missed[next] => next += 1,
            Event::Message { id, .. } => {
                return Err(format!("got id {id} where {} was due", missed[next]));
            }
            Event::Error { code } => return Err(format!("error event {code}")),
            Event::Other if text.contains("\"resync\"") => return Err("resync instead of a replay".into()),
            Event::Other => {}
        }
    }
    Ok(Some(ws))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(
            Options::parse("").unwrap(),
            Options {
                clients: 10_000,
                missed: 100,
                users: 4,
                concurrency: None
            }
        );
        assert_eq!(Options::parse("--concurrency 64").unwrap().concurrency, Some(64));
        assert!(Options::parse("--missed 1001").is_err());
        assert!(Options::parse("--missed 0").is_err());
        assert!(Options::parse("--clients 0").is_err());
    }
}
