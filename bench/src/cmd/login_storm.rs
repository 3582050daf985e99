//! `login-storm`: does a burst of logins - each a bcrypt verification on the
//! server - slow the chat down? A few clients chat at a steady pace; their
//! latency is measured for a while, then again while many `POST /token`
//! requests run concurrently.

use std::cell::RefCell;
use std::ops::ControlFlow;
use std::rc::Rc;
use std::time::Duration;

use tokio::time::sleep;

use super::phase::{requests, Crowd};
use super::{Ctx, Ends, FromFlags};
use crate::api;
use crate::args::{bad, ArgError, Flags};
use crate::chat::{now_ns, Pace, Phase, SendPlan};
use crate::error::Result;
use crate::http::HttpConn;
use crate::report::Report;
use crate::stats::{rate, Histogram};
use crate::ws;

pub const HELP: &str = "\
chat-bench login-storm: chat latency before and during a burst of logins.

Usage: chat-bench login-storm [--logins L] [--concurrency C] [--chatters K]
                              [--chat-rate R] [--before SECS] [common flags]

  --logins L        POST /token requests in the burst (default 200)
  --concurrency C   logins in flight at once, each on its own keep-alive
                    connection (default 8)
  --chatters K      chat connections, all receiving (default 10); the first
                    also sends, paced at --chat-rate
  --chat-rate R     messages a second of the chat (default 50)
  --before SECS     how long chat latency is measured before the burst
                    (default 3)

The chatters share at most 4 users; the logins are all for the first of them.
Figures: chat latency (p50/p99) before and during the burst, logins a second,
login latency.";

/// Time for the chat to reach a steady state before measuring, and for the
/// last messages sent during the burst to arrive after it.
const WARM_UP: Duration = Duration::from_millis(500);
const DRAIN: Duration = Duration::from_millis(500);

#[derive(Debug, PartialEq)]
pub struct Options {
    pub logins: u64,
    pub concurrency: usize,
    pub chatters: usize,
    pub chat_rate: f64,
    pub before: Duration,
}

impl FromFlags for Options {
    const FLAGS: &'static [&'static str] = &["--logins", "--concurrency", "--chatters", "--chat-rate", "--before"];

    fn from_flags(flags: &Flags) -> std::result::Result<Options, ArgError> {
        let options = Options {
            logins: flags.get("--logins", 200)?,
            concurrency: flags.get("--concurrency", 8)?,
            chatters: flags.get("--chatters", 10)?,
            chat_rate: flags.get("--chat-rate", 50.0)?,
            before: flags.secs("--before", Duration::from_secs(3))?,
        };
        if options.logins == 0 || options.concurrency == 0 || options.chatters == 0 {
            return Err(bad("--logins, --concurrency and --chatters must be at least 1"));
        }
        if !(options.chat_rate > 0.0 && options.chat_rate <= 10_000.0) {
            return Err(bad("--chat-rate must be above 0 and at most 10000"));
        }
        Ok(options)
    }
}

/// Chat latencies split by when their message was sent.
#[derive(Debug, Default)]
struct Split {
    before: Histogram,
    during: Histogram,
}

/// Sorts `(sent_ns, latency_ns)` samples into the window before the burst
/// `[measure_from, burst_from)` and the burst `[burst_from, burst_until]`;
/// the rest is warm-up or drain.
fn split(samples: &[(u64, u64)], measure_from: u64, burst_from: u64, burst_until: u64) -> Split {
    let mut split = Split::default();
    for &(sent_ns, latency) in samples {
        if (measure_from..burst_from).contains(&sent_ns) {
            split.before.record(latency);
        } else if (burst_from..=burst_until).contains(&sent_ns) {
            split.during.record(latency);
        }
    }
    split
}

pub async fn run(ctx: &Ctx, options: &Options) -> Result<Report> {
    let users = ctx.create_users(options.chatters.min(4)).await?;
    let tokens: Vec<String> = users.iter().map(|u| u.token.clone()).collect();
    let samples = Rc::new(RefCell::new(Vec::new()));
    let mut chatters = Crowd::new(ctx, Phase::Sending);
    ws::open_many(&ctx.endpoints, &tokens, options.chatters, ctx.deadline, |i, ws| {
        let plan = (i == 0).then(|| SendPlan {
            sender: 0,
            count: u64::MAX,
            window: 1000,
            pace: Some(Pace {
                period: Duration::from_secs_f64(1.0 / options.chat_rate),
                offset: Duration::ZERO,
            }),
        });
        let samples = samples.clone();
        chatters.spawn(ws, plan, move |d| {
            samples.borrow_mut().push((d.probe.sent_ns, d.latency_ns()));
            ControlFlow::Continue(())
        });
    })
    .await?;

    sleep(WARM_UP).await;
    let measure_from = now_ns();
    sleep(options.before).await;
    let (name, password) = (users[0].name.clone(), ctx.password.clone());
    let login = async move |conn: &mut HttpConn| api::login(conn, &name, &password).await.map(|_| Ok(()));
    let burst_from = now_ns();
    let (logins, usage) = requests(ctx, options.concurrency, options.logins, login).await?;
    let burst_until = now_ns();
    sleep(DRAIN).await;
    let outcomes = chatters.finish().await?;

    let chat = split(&samples.borrow(), measure_from, burst_from, burst_until);
    let ok = logins.latency.count();
    let per_second = rate(ok, burst_until - burst_from);
    let (before, during, login_latency) = (chat.before.summary(), chat.during.summary(), logins.latency.summary());

    let mut report = Report::new("login-storm");
    report.line(format!(
        "login-storm: {} logins, {} at a time; {} chatters at {} msg/s",
        options.logins, options.concurrency, options.chatters, options.chat_rate
    ));
    report.line(format!("  chat before  {}", before.human()));
    report.line(format!("  chat during  {}", during.human()));
    report.line(format!(
        "  {ok} logins in {:.3} s: {per_second} /s, {} errors; client CPU {}% during the burst",
        usage.wall.as_secs_f64(),
        logins.errors,
        usage.cpu_percent()
    ));
    report.line(format!("  login latency {}", login_latency.human()));
    if during.count < 10 {
        report.line("  (few chat samples during the burst: raise --logins or --chat-rate)");
    }
    report.figure("logins", options.logins);
    report.figure("concurrency", options.concurrency);
    report.figure("chatters", options.chatters);
    report.figure("chat_rate", options.chat_rate);
    report.figure("chat_before_ms", before.json());
    report.figure("chat_during_ms", during.json());
    report.figure("logins_ok", ok);
    report.figure("login_errors", logins.errors);
    report.figure("logins_per_s", per_second);
    report.figure("login_latency_ms", login_latency.json());
    report.figure("client_cpu_pct", usage.cpu_percent());
    Ends::tally(&outcomes).add_to(&mut report);
    if let Some(first) = logins.first_error {
        report.fail(format!("{} logins failed (first: {first})", logins.errors));
    }
    if ok + logins.errors < options.logins {
        report.fail("the burst did not finish before --timeout");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_fall_in_the_window_of_their_send_time() {
        let samples = [(5, 1), (10, 2), (19, 3), (20, 4), (30, 5), (31, 6)];
        let split = split(&samples, 10, 20, 30);
        assert_eq!(split.before.count(), 2);
        assert_eq!(split.before.summary().max, 3);
        assert_eq!(split.during.count(), 2);
        assert_eq!(split.during.summary().max, 5);
    }

    #[test]
    fn defaults_and_bad_values() {
        assert_eq!(
            Options::parse("").unwrap(),
            Options {
                logins: 200,
                concurrency: 8,
                chatters: 10,
                chat_rate: 50.0,
                before: Duration::from_secs(3)
            }
        );
        assert!(Options::parse("--chat-rate 0").is_err());
        assert!(Options::parse("--concurrency 0").is_err());
        assert!(Options::parse("--before 0").is_err());
    }
}
