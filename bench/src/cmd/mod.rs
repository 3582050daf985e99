//! The subcommands, one file each, and what they share: the run context, the
//! table from a subcommand's name to its options and help, how the connections
//! of a run ended, and (in `phase`) the skeleton of a measured phase.

pub mod failover;
pub mod fanout;
pub mod handshake;
pub mod history;
pub mod idle;
pub mod login_storm;
mod phase;
pub mod resume_storm;
pub mod upload;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};
use tokio_tungstenite::tungstenite::Message;

use crate::api::{self, User};
use crate::args::{bad, ArgError, Common, Flags, COMMON_HELP};
use crate::chat::{End, Outcome};
use crate::error::{Error, Result};
use crate::http::Endpoint;
use crate::report::Report;
use crate::sys::{self, Memory};
use crate::ws::{self, Event, Ws};

/// Subcommand names with a one-line summary, for the top-level help.
pub const SUMMARIES: &[(&str, &str)] = &[
    (
        "fanout",
        "N WebSocket clients, S senders: delivery latency, rates, losses, order",
    ),
    (
        "failover",
        "fan-out over a cluster's nodes, one SIGKILLed: resumes, lost and twin deliveries",
    ),
    (
        "handshake",
        "authenticated WebSocket upgrades, first event, close: handshakes/s",
    ),
    (
        "history",
        "GET /history requests over keep-alive connections: req/s, latency",
    ),
    (
        "upload",
        "stream a generated file up and down: MiB/s, SHA-256, server memory",
    ),
    (
        "idle",
        "N idle WebSocket connections: server memory per connection, broadcast time",
    ),
    (
        "login-storm",
        "chat latency before and during a burst of concurrent logins",
    ),
    (
        "resume-storm",
        "N clients drop and resume at once with after_id: catch-up time, exactly once",
    ),
];

pub enum Command {
    Fanout(fanout::Options),
    Failover(failover::Options),
    Handshake(handshake::Options),
    History(history::Options),
    Upload(upload::Options),
    Idle(idle::Options),
    LoginStorm(login_storm::Options),
    ResumeStorm(resume_storm::Options),
}

/// The help of a subcommand, its own flags then the common ones.
pub fn help(name: &str) -> Option<String> {
    let own = match name {
        "fanout" => fanout::HELP,
        "failover" => failover::HELP,
        "handshake" => handshake::HELP,
        "history" => history::HELP,
        "upload" => upload::HELP,
        "idle" => idle::HELP,
        "login-storm" => login_storm::HELP,
        "resume-storm" => resume_storm::HELP,
        _ => return None,
    };
    Some(format!("{own}\n\n{COMMON_HELP}"))
}

/// A subcommand's own options: the flags it knows, so that a misspelt one is
/// refused rather than ignored, and how it reads them.
pub trait FromFlags: Sized {
    const FLAGS: &'static [&'static str];

    fn from_flags(flags: &Flags) -> std::result::Result<Self, ArgError>;

    /// The options of one line of space-separated words, for tests.
    #[cfg(test)]
    fn parse(line: &str) -> std::result::Result<Self, ArgError> {
        Self::from_flags(&Flags::parse(&crate::args::argv(line), Self::FLAGS)?)
    }
}

/// Parses the command line after the subcommand's name.
pub fn parse(name: &str, argv: &[String]) -> std::result::Result<(Common, Command), ArgError> {
    match name {
        "fanout" => read(argv, Command::Fanout),
        "failover" => read(argv, Command::Failover),
        "handshake" => read(argv, Command::Handshake),
        "history" => read(argv, Command::History),
        "upload" => read(argv, Command::Upload),
        "idle" => read(argv, Command::Idle),
        "login-storm" => read(argv, Command::LoginStorm),
        "resume-storm" => read(argv, Command::ResumeStorm),
        _ => Err(bad(format!("unknown subcommand '{name}'"))),
    }
}

/// A subcommand's options, then the common flags, from its command line.
fn read<O: FromFlags>(argv: &[String], command: fn(O) -> Command) -> std::result::Result<(Common, Command), ArgError> {
    let flags = Flags::parse(argv, O::FLAGS)?;
    let command = command(O::from_flags(&flags)?);
    Ok((Common::from_flags(&flags)?, command))
}

/// How long a session opened on one node takes to be good on the others,
/// with room to spare.
const SESSIONS_SPREAD: Duration = Duration::from_secs(1);

/// What every subcommand runs with.
pub struct Ctx {
    /// The first node: users register and log in there.
    pub endpoint: Endpoint,
    /// Every node, the first included: connections go round-robin over them.
    pub endpoints: Vec<Endpoint>,
    pub password: String,
    pub server_pids: Vec<u32>,
    /// The run's end, set-up included (`--timeout`).
    pub deadline: Instant,
    /// Random per run: user names and probe messages carry it.
    pub tag: String,
}

impl Ctx {
    /// Registers and logs in `count` users on the first node. In a cluster
    /// the other nodes learn of new sessions by polling the database (about
    /// every 200 ms, `docs/cluster.md`), so the tokens are given time to be
    /// good on every node before anyone connects there.
    pub async fn create_users(&self, count: usize) -> Result<Vec<User>> {
        let users = api::create_users(&self.endpoint, &self.tag, count, &self.password).await?;
        if self.endpoints.len() > 1 {
            tokio::time::sleep(SESSIONS_SPREAD).await;
        }
        Ok(users)
    }

    /// The node the `i`-th connection of a run goes to: round-robin.
    pub fn node_of(&self, i: usize) -> &Endpoint {
        &self.endpoints[i % self.endpoints.len()]
    }

    /// The server's memory, all nodes added up, when `--server-pid` was given.
    pub fn server_memory(&self) -> Result<Option<Memory>> {
        let mut total: Option<Memory> = None;
        for &pid in &self.server_pids {
            let m = sys::process_memory(pid)?;
            let t = total.get_or_insert(Memory { rss_kib: 0, hwm_kib: 0 });
            t.rss_kib += m.rss_kib;
            t.hwm_kib += m.hwm_kib;
        }
        Ok(total)
    }

    /// The server's CPU time so far, all nodes added up, when
    /// `--server-pid` was given.
    pub fn server_cpu(&self) -> Result<Option<Duration>> {
        let mut total: Option<Duration> = None;
        for &pid in &self.server_pids {
            *total.get_or_insert(Duration::ZERO) += sys::process_cpu(pid)?;
        }
        Ok(total)
    }

    /// The server's CPU time since `start`, an earlier [`Ctx::server_cpu`].
    pub fn server_cpu_since(&self, start: Option<Duration>) -> Result<Option<Duration>> {
        Ok(match (start, self.server_cpu()?) {
            (Some(start), Some(end)) => Some(end.saturating_sub(start)),
            _ => None,
        })
    }
}

pub async fn run(ctx: &Ctx, command: &Command) -> Result<Report> {
    match command {
        Command::Fanout(options) => fanout::run(ctx, options).await,
        Command::Failover(options) => failover::run(ctx, options).await,
        Command::Handshake(options) => handshake::run(ctx, options).await,
        Command::History(options) => history::run(ctx, options).await,
        Command::Upload(options) => upload::run(ctx, options).await,
        Command::Idle(options) => idle::run(ctx, options).await,
        Command::LoginStorm(options) => login_storm::run(ctx, options).await,
        Command::ResumeStorm(options) => resume_storm::run(ctx, options).await,
    }
}

/// Posts one message of each content, in order, and waits for their
/// acknowledgements (each message echoed back to `ws`): their ids, in order.
pub async fn post(ws: &mut Ws, contents: &[String], deadline: Instant) -> Result<Vec<i64>> {
    for content in contents {
        ws.feed(Message::text(content.as_str()))
            .await
            .map_err(|e| Error::new(format!("posting: {e}")))?;
    }
    ws.flush().await.map_err(|e| Error::new(format!("posting: {e}")))?;
    let mut ids = Vec::with_capacity(contents.len());
    while ids.len() < contents.len() {
        let frame = timeout_at(deadline, ws.next())
            .await
            .map_err(|_| Error::new("the posts were not all acknowledged within --timeout"))?;
        let Some(Ok(Message::Text(text))) = frame else {
            return Err(Error::new(format!("the posting connection ended: {frame:?}")));
        };
        if let Event::Message { id, content } = ws::parse_event(&text) {
            if content == contents[ids.len()] {
                ids.push(id);
            }
        }
    }
    Ok(ids)
}

/// Waits for a spawned task; a panic in it becomes an error of the run.
pub async fn join<T>(task: JoinHandle<T>) -> Result<T> {
    task.await.map_err(|e| Error::new(format!("a client task failed: {e}")))
}

/// How the chat connections of a run ended, beyond the expected way.
#[derive(Debug, Default, PartialEq)]
pub struct Ends {
    closed: usize,
    first_close: Option<String>,
    timed_out: usize,
    errors: u64,
    first_error: Option<String>,
}

impl Ends {
    pub fn tally(outcomes: &[Outcome]) -> Ends {
        let mut ends = Ends::default();
        for outcome in outcomes {
            match &outcome.end {
                End::Closed(why) => {
                    ends.closed += 1;
                    ends.first_close.get_or_insert_with(|| why.clone());
                }
                End::Deadline => ends.timed_out += 1,
                End::Done | End::Stopped => {}
            }
            ends.errors += outcome.errors;
            if let Some(code) = &outcome.first_error {
                ends.first_error.get_or_insert_with(|| code.clone());
            }
        }
        ends
    }

    /// Adds the figures, and a line and a failure for each kind of trouble.
    pub fn add_to(&self, report: &mut Report) {
        report.figure("connections_closed_early", self.closed);
        report.figure("connections_timed_out", self.timed_out);
        report.figure("error_events", self.errors);
        if let Some(why) = &self.first_close {
            let text = format!("{} connections closed early (first: {why})", self.closed);
            report.line(format!("  {text}"));
            report.fail(text);
        }
        if self.timed_out > 0 {
            let text = format!("{} connections still waiting at --timeout", self.timed_out);
            report.line(format!("  {text}"));
            report.fail(text);
        }
        if let Some(code) = &self.first_error {
            let hint = match code.as_str() {
                "rate_limited" => " - start the server with --ws-rate-limit 0",
                _ => "",
            };
            let text = format!("{} error events (first: {code}){hint}", self.errors);
            report.line(format!("  {text}"));
            report.fail(text);
        }
    }
}

/// Server memory before and after, when `--server-pid` was given: the
/// figures every run reports.
pub fn add_memory(report: &mut Report, before: Option<Memory>, after: Option<Memory>) {
    let (Some(before), Some(after)) = (before, after) else {
        return;
    };
    report.line(format!(
        "  server RSS {} -> {} KiB, peak (VmHWM) {} KiB",
        before.rss_kib, after.rss_kib, after.hwm_kib
    ));
    report.figure(
        "server_memory_kib",
        json!({
            "rss_before": before.rss_kib,
            "rss_after": after.rss_kib,
            "hwm_before": before.hwm_kib,
            "hwm_after": after.hwm_kib,
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(end: End, errors: u64, first_error: Option<&str>) -> Outcome {
        Outcome {
            sent: 0,
            acked: 0,
            first_sent_ns: None,
            last_ack_ns: None,
            errors,
            first_error: first_error.map(str::to_string),
            end,
        }
    }

    #[test]
    fn every_subcommand_has_help_and_parses_its_defaults() {
        for (name, _) in SUMMARIES {
            assert!(help(name).unwrap().contains("Common flags"), "{name}");
            assert!(parse(name, &[]).is_ok(), "{name}");
        }
        assert!(help("nope").is_none());
        assert!(matches!(parse("nope", &[]), Err(ArgError::Bad(_))));
    }

    #[test]
    fn trouble_is_counted_and_fails_the_run() {
        let ends = Ends::tally(&[
            outcome(End::Done, 0, None),
            outcome(End::Closed("4002 slow consumer".into()), 2, Some("rate_limited")),
            outcome(End::Closed("reset".into()), 0, None),
            outcome(End::Deadline, 0, None),
        ]);
        assert_eq!(ends.closed, 2);
        assert_eq!(ends.first_close.as_deref(), Some("4002 slow consumer"));
        assert_eq!(ends.timed_out, 1);
        assert_eq!(ends.errors, 2);
        let mut report = Report::new("t");
        ends.add_to(&mut report);
        assert_eq!(report.failures().len(), 3);
        assert!(report.failures()[2].contains("--ws-rate-limit 0"));
    }

    #[test]
    fn a_clean_run_has_no_failures() {
        let mut report = Report::new("t");
        Ends::tally(&[outcome(End::Done, 0, None), outcome(End::Stopped, 0, None)]).add_to(&mut report);
        assert!(report.failures().is_empty());
    }
}
