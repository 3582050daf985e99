//! `history`: many `GET /history` requests over a few keep-alive connections,
//! at a chosen depth, after optionally seeding messages over WebSocket.
//! Measures requests a second and their latency; every answer must be 200.

use std::ops::ControlFlow;
use std::str::FromStr;

use serde_json::Value;

use super::phase::{requests, Crowd};
use super::{Ctx, FromFlags};
use crate::api::{self, bearer};
use crate::args::{bad, ArgError, Flags};
use crate::chat::{End, Phase, SendPlan};
use crate::error::{Error, Result};
use crate::http::HttpConn;
use crate::report::Report;
use crate::stats::{rate, round3};
use crate::sys::Meter;
use crate::ws;

pub const HELP: &str = "\
chat-bench history: GET /history requests over keep-alive connections.

Usage: chat-bench history [--requests R] [--connections C] [--mode MODE]
                          [--depth D] [--seed K] [common flags]

  --requests R      requests in all (default 1000)
  --connections C   keep-alive connections sharing them, one request in flight
                    on each (default 4)
  --mode MODE       last20 (default): GET /history/last20
                    offset: GET /history?offset=D&limit=20
                    before_id: GET /history?before_id=<newest id - D>&limit=20
  --depth D         how far back offset and before_id reach (default 100)
  --seed K          first send K messages over a few WebSocket connections,
                    each as fast as the server acknowledges (default 0); the
                    history must hold at least D + 20 messages for a full page

Start the server with --ws-rate-limit 0 when seeding.
Figures: requests a second, latency, errors (any answer but 200 counts).";

/// Messages a seeding connection keeps unacknowledged, and the most
/// connections seeding at once.
const SEED_WINDOW: u64 = 32;
const SEED_CONNECTIONS: u64 = 4;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    Last20,
    Offset,
    BeforeId,
}

impl FromStr for Mode {
    type Err = ();

    fn from_str(text: &str) -> std::result::Result<Mode, ()> {
        match text {
            "last20" => Ok(Mode::Last20),
            "offset" => Ok(Mode::Offset),
            "before_id" => Ok(Mode::BeforeId),
            _ => Err(()),
        }
    }
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Last20 => "last20",
            Mode::Offset => "offset",
            Mode::BeforeId => "before_id",
        }
    }
}

#[derive(Debug, PartialEq)]
pub struct Options {
    pub requests: u64,
    pub connections: usize,
    pub mode: Mode,
    pub depth: i64,
    pub seed: u64,
}

impl FromFlags for Options {
    const FLAGS: &'static [&'static str] = &["--requests", "--connections", "--mode", "--depth", "--seed"];

    fn from_flags(flags: &Flags) -> std::result::Result<Options, ArgError> {
        let options = Options {
            requests: flags.get("--requests", 1000)?,
            connections: flags.get("--connections", 4)?,
            mode: flags
                .opt_with("--mode", "last20, offset or before_id", |v| v.parse().ok())?
                .unwrap_or(Mode::Last20),
            depth: flags.get("--depth", 100)?,
            seed: flags.get("--seed", 0)?,
        };
        if options.requests == 0 || options.connections == 0 {
            return Err(bad("--requests and --connections must be at least 1"));
        }
        if options.depth < 0 {
            return Err(bad("--depth must be 0 or more"));
        }
        Ok(options)
    }
}

impl Options {
    fn path(&self, newest_id: i64) -> String {
        match self.mode {
            Mode::Last20 => "/history/last20".to_string(),
            Mode::Offset => format!("/history?offset={}&limit=20", self.depth),
            Mode::BeforeId => format!("/history?before_id={}&limit=20", newest_id - self.depth),
        }
    }
}

pub async fn run(ctx: &Ctx, options: &Options) -> Result<Report> {
    let user = ctx.create_users(1).await?.remove(0);
    let mut report = Report::new("history");
    report.line(format!(
        "history: {} requests over {} connections, mode {}, depth {}",
        options.requests,
        options.connections,
        options.mode.name(),
        options.depth
    ));
    if options.seed > 0 {
        let meter = Meter::start();
        seed(ctx, &user.token, options.seed).await?;
        let seconds = meter.read().wall.as_secs_f64();
        let per_second = round3(options.seed as f64 / seconds);
        report.line(format!(
            "  seeded {} messages in {seconds:.3} s ({per_second} msg/s)",
            options.seed
        ));
        report.figure("seeded", options.seed);
        report.figure("seeded_per_s", per_second);
    }

    let auth = bearer(&user.token);
    let mut conn = HttpConn::open(&ctx.endpoint).await?;
    let newest_id = match options.mode {
        Mode::BeforeId => newest_id(&mut conn, &auth).await?,
        _ => 0,
    };
    let path = options.path(newest_id);
    let page = check_page(&mut conn, &auth, &path, options.mode).await?;
    report.line(format!("  GET {path} answers {page} messages"));
    if page < 20 {
        report.line("  (fewer than 20: the history is shallower than --depth + 20; see --seed)");
    }

    let get = async move |conn: &mut HttpConn| {
        let response = conn.request("GET", &path, &[("Authorization", &auth)], None).await?;
        Ok(match response.status() {
            200 => Ok(()),
            _ => Err(response.describe()),
        })
    };
    let (totals, usage) = requests(ctx, options.connections, options.requests, get).await?;
    let done = totals.latency.count();
    let per_second = rate(done, usage.wall.as_nanos() as u64);
    let latency = totals.latency.summary();
    report.line(format!(
        "  {done} answered 200 in {:.3} s: {per_second} req/s, {} errors",
        usage.wall.as_secs_f64(),
        totals.errors
    ));
    report.line(format!("  latency {}", latency.human()));
    report.line(format!("  client CPU {}% of one core", usage.cpu_percent()));
    report.figure("mode", options.mode.name());
    report.figure("depth", options.depth);
    report.figure("requests", options.requests);
    report.figure("connections", options.connections);
    report.figure("page_messages", page);
    report.figure("ok", done);
    report.figure("errors", totals.errors);
    report.figure("requests_per_s", per_second);
    report.figure("latency_ms", latency.json());
    report.figure("client_cpu_pct", usage.cpu_percent());
    if let Some(first) = totals.first_error {
        report.fail(format!("{} requests failed (first: {first})", totals.errors));
    }
    let unsent = options.requests - done - totals.errors;
    if unsent > 0 {
        report.fail(format!("{unsent} requests not sent before --timeout"));
    }
    Ok(report)
}

/// Sends `count` messages over a few connections, each keeping a window of
/// them unacknowledged.
async fn seed(ctx: &Ctx, token: &str, count: u64) -> Result<()> {
    let connections = count.min(SEED_CONNECTIONS);
    let mut seeders = Crowd::new(ctx, Phase::Sending);
    let mut shares = Vec::new();
    for sender in 0..connections {
        let share = count / connections + u64::from(sender < count % connections);
        let ws = ws::connect(&ctx.endpoint, token).await?;
        let plan = SendPlan {
            sender: sender as u32,
            count: share,
            window: SEED_WINDOW,
            pace: None,
        };
        let mut mine = 0;
        seeders.spawn(ws, Some(plan), move |d| {
            mine += u64::from(d.probe.sender == plan.sender);
            if mine == share {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        shares.push(share);
    }
    let outcomes = seeders.join().await?;
    seeders.close().await;
    let trouble = outcomes
        .into_iter()
        .zip(shares)
        .find(|(outcome, _)| outcome.end != End::Done);
    match trouble {
        None => Ok(()),
        Some((outcome, share)) => {
            let hint = match outcome.first_error {
                Some(code) => format!(" (error event {code}; is --ws-rate-limit 0 set?)"),
                None => String::new(),
            };
            Err(Error::new(format!(
                "seeding stopped after {} of {share} messages acknowledged: {}{hint}",
                outcome.acked, outcome.end
            )))
        }
    }
}

/// The id of the newest message, from `/history/last20`.
async fn newest_id(conn: &mut HttpConn, auth: &str) -> Result<i64> {
    let path = "/history/last20";
    let response = conn.request("GET", path, &[("Authorization", auth)], None).await?;
    api::expect(&response, 200, &format!("GET {path}"))?;
    response
        .json()?
        .as_array()
        .and_then(|page| page.iter().filter_map(|m| m.get("id")?.as_i64()).max())
        .ok_or_else(|| Error::new("the history is empty: seed some messages with --seed"))
}

/// One request before the measurement: it must answer 200 with the shape
/// the contract gives; returns how many messages a page holds.
async fn check_page(conn: &mut HttpConn, auth: &str, path: &str, mode: Mode) -> Result<usize> {
    let response = conn.request("GET", path, &[("Authorization", auth)], None).await?;
    api::expect(&response, 200, &format!("GET {path}"))?;
    let body = response.json()?;
    let messages = match mode {
        Mode::Last20 => body.as_array(),
        _ => body.get("messages").and_then(Value::as_array),
    };
    messages
        .map(Vec::len)
        .ok_or_else(|| Error::new(format!("GET {path}: unexpected answer {body}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_give_the_contract_paths() {
        let o = Options::parse("--mode before_id --depth 30").unwrap();
        assert_eq!(o.path(1000), "/history?before_id=970&limit=20");
        let o = Options::parse("--mode offset --depth 30").unwrap();
        assert_eq!(o.path(1000), "/history?offset=30&limit=20");
        assert_eq!(Options::parse("").unwrap().path(1000), "/history/last20");
    }

    #[test]
    fn defaults_and_bad_values() {
        assert_eq!(
            Options::parse("").unwrap(),
            Options {
                requests: 1000,
                connections: 4,
                mode: Mode::Last20,
                depth: 100,
                seed: 0
            }
        );
        assert_eq!(
            Options::parse("--mode latest").unwrap_err(),
            bad("--mode: expected last20, offset or before_id, got 'latest'")
        );
        assert!(Options::parse("--connections 0").is_err());
        assert!(Options::parse("--depth -1").is_err());
    }
}
