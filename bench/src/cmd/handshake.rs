//! `handshake`: authenticated WebSocket upgrades, one after another on each
//! of a few workers. Each connection is dialled, upgraded with `?token=`,
//! waits for its first event (its own `join`), and is closed politely before
//! the worker opens the next. Measures handshakes a second and the time from
//! dialling to the first event.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_util::{Stream, StreamExt};
use tokio::time::{timeout_at, Instant};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::phase::{run_workers, Tally};
use super::{Ctx, FromFlags};
use crate::args::{bad, ArgError, Flags};
use crate::error::{Error, Result};
use crate::http::Endpoint;
use crate::report::Report;
use crate::stats::{rate, round3};
use crate::ws;

pub const HELP: &str = "\
chat-bench handshake: authenticated WebSocket upgrades a second.

Usage: chat-bench handshake [--connections N] [--concurrency C] [common flags]

  --connections N   connections to open in all, one after another on each
                    worker (default 2000)
  --concurrency C   workers, each with one connection at a time (default 8)

Every connection belongs to one user: dial, upgrade with ?token=, read the
first event (the connection's own join), close with a close frame and wait
for the server's. Figures: handshakes a second (whole cycles, the close
included), time from dialling to the first event, errors; with --server-pid,
the server's CPU time per handshake.";

#[derive(Debug, PartialEq)]
pub struct Options {
    pub connections: u64,
    pub concurrency: usize,
}

impl FromFlags for Options {
    const FLAGS: &'static [&'static str] = &["--connections", "--concurrency"];

    fn from_flags(flags: &Flags) -> std::result::Result<Options, ArgError> {
        let options = Options {
            connections: flags.get("--connections", 2000)?,
            concurrency: flags.get("--concurrency", 8)?,
        };
        if options.connections == 0 || options.concurrency == 0 {
            return Err(bad("--connections and --concurrency must be at least 1"));
        }
        Ok(options)
    }
}

pub async fn run(ctx: &Ctx, options: &Options) -> Result<Report> {
    let token = ctx.create_users(1).await?.remove(0).token;
    let token = Rc::new(token);
    let tally = Rc::new(RefCell::new(Tally::default()));
    let left = Rc::new(Cell::new(options.connections));
    let server_cpu = ctx.server_cpu()?;
    let usage = run_workers(options.concurrency, || {
        worker(
            ctx.endpoint.clone(),
            token.clone(),
            left.clone(),
            tally.clone(),
            ctx.deadline,
        )
    })
    .await?;
    let server_cpu = ctx.server_cpu_since(server_cpu)?;
    let totals = tally.take();
    let done = totals.latency.count();
    let per_second = rate(done, usage.wall.as_nanos() as u64);
    let latency = totals.latency.summary();

    let mut report = Report::new("handshake");
    report.line(format!(
        "handshake: {} connections, {} at a time",
        options.connections, options.concurrency
    ));
    report.line(format!(
        "  {done} upgraded, first event read and closed in {:.3} s: {per_second} handshakes/s, {} errors",
        usage.wall.as_secs_f64(),
        totals.errors
    ));
    report.line(format!("  dial to first event {}", latency.human()));
    report.line(format!("  client CPU {}% of one core", usage.cpu_percent()));
    if let (Some(cpu), true) = (server_cpu, done > 0) {
        let per_handshake = round3(cpu.as_secs_f64() * 1e6 / done as f64);
        report.line(format!(
            "  server CPU {:.3} s over the handshakes, {per_handshake} us each",
            cpu.as_secs_f64()
        ));
        report.figure("server_us_per_handshake", per_handshake);
    }
    report.figure("connections", options.connections);
    report.figure("concurrency", options.concurrency);
    report.figure("ok", done);
    report.figure("errors", totals.errors);
    report.figure("handshakes_per_s", per_second);
    report.figure("first_event_ms", latency.json());
    report.figure("client_cpu_pct", usage.cpu_percent());
    if let Some(first) = totals.first_error {
        report.fail(format!("{} handshakes failed (first: {first})", totals.errors));
    }
    let unsent = options.connections - done - totals.errors;
    if unsent > 0 {
        report.fail(format!("{unsent} handshakes not made before --timeout"));
    }
    Ok(report)
}

/// Takes connections from the shared count, one at a time, until none are
/// left or the run's time is up.
async fn worker(
    endpoint: Endpoint,
    token: Rc<String>,
    left: Rc<Cell<u64>>,
    tally: Rc<RefCell<Tally>>,
    deadline: Instant,
) {
    while left.get() > 0 && Instant::now() < deadline {
        left.set(left.get() - 1);
        let started = Instant::now();
        let attempt = timeout_at(deadline, async {
            let mut socket = ws::connect(&endpoint, &token).await?;
            first_event(&mut socket).await?;
            let elapsed = started.elapsed().as_nanos() as u64;
            ws::close(socket).await;
            Ok::<_, Error>(elapsed)
        })
        .await;
        let Ok(attempt) = attempt else {
            return;
        };
        let mut tally = tally.borrow_mut();
        match attempt {
            Ok(elapsed) => tally.latency.record(elapsed),
            Err(e) => tally.error(e.to_string()),
        }
    }
}

/// Reads until the first text frame, the first event; control frames before
/// it are skipped, a close or the end of the stream is an error.
async fn first_event<S>(socket: &mut S) -> Result<String>
where
    S: Stream<Item = std::result::Result<Message, WsError>> + Unpin,
{
    while let Some(frame) = socket.next().await {
        match frame {
            Ok(Message::Text(text)) => return Ok(text.as_str().to_string()),
            Ok(Message::Close(close)) => {
                return Err(Error::new(format!("closed before the first event: {close:?}")));
            }
            Ok(_) => {}
            Err(e) => return Err(Error::new(format!("before the first event: {e}"))),
        }
    }
    Err(Error::new("the connection ended before the first event"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(frames: Vec<std::result::Result<Message, WsError>>) -> Result<String> {
        let mut stream = futures_util::stream::iter(frames);
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(first_event(&mut stream))
    }

    #[test]
    fn the_first_text_frame_is_the_event() {
        let join = r#"{"type":"join","username":"u","online":1}"#;
        let frames = vec![
            Ok(Message::Ping(Vec::new().into())),
            Ok(Message::text(join)),
            Ok(Message::text("later")),
        ];
        assert_eq!(read(frames).unwrap(), join);
    }

    #[test]
    fn a_close_or_an_end_before_any_event_is_an_error() {
        assert!(read(vec![Ok(Message::Close(None)), Ok(Message::text("late"))]).is_err());
        assert!(read(vec![Ok(Message::Pong(Vec::new().into()))]).is_err());
        assert!(read(vec![Err(WsError::ConnectionClosed)]).is_err());
    }

    #[test]
    fn defaults_and_bad_values() {
        assert_eq!(
            Options::parse("").unwrap(),
            Options {
                connections: 2000,
                concurrency: 8
            }
        );
        assert_eq!(
            Options::parse("--connections 10 --concurrency 2").unwrap(),
            Options {
                connections: 10,
                concurrency: 2
            }
        );
        assert!(Options::parse("--connections 0").is_err());
        assert!(Options::parse("--concurrency 0").is_err());
    }
}
