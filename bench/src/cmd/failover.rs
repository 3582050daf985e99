//! `failover`: a fan-out over the nodes of a cluster during which one node is
//! killed with SIGKILL. The clients of the killed node reconnect to the next
//! node and resume with `after_id` (the last id each has); at the end every
//! client must have every message of the run exactly once, in ascending id,
//! and every acknowledged message must have reached every client.
//!
//! The run's messages are the ids after a mark posted before anyone
//! connects, up to an end mark posted once every sender is done. Receivers
//! connect with `after_id=<mark>`, so none misses a message while it
//! subscribes, and read until the end mark. Ids are given without gaps, so on
//! a server nobody else posts to, an id in between that no client saw is a
//! message lost by all.
//!
//! Senders are connections of their own, on every node in turn; a sender
//! whose node dies reconnects to the next one and sends what it has left.
//! What it sent and had not seen acknowledged when the node died may or may
//! not have been committed: either is correct, and those are counted apart.

use std::ops::ControlFlow;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::spawn_local;
use tokio::time::{sleep, Instant};

use super::{fanout, join, post, Ctx, FromFlags};
use crate::args::{bad, ArgError, Flags};
use crate::chat::{self, now_ns, End, Phase, Probe, SendPlan, CONTROL};
use crate::error::{Error, Result};
use crate::http::Endpoint;
use crate::report::Report;
use crate::stats::{ms, round3};
use crate::sys;
use crate::ws::{self, Ws};

pub const HELP: &str = "\
chat-bench failover: a fan-out over the nodes of a cluster (--url a,b) during
which one node is killed with SIGKILL; its clients resume on the next node.

Usage: chat-bench failover [--clients N] [--senders S] [--messages M]
                           [--window W] [--rate R] [--users U]
                           [--kill-pid PID] [--kill-after SECS] [common flags]

  --clients N       receiving connections, round-robin over the nodes
                    (default 100)
  --senders S       sending connections, round-robin over the nodes, apart
                    from the receivers (default 10, at most N)
  --messages M      messages each sender sends (default 100)
  --window W        most unacknowledged messages per sender (default 16)
  --rate R          pace each sender at R messages a second instead
  --users U         accounts the connections are spread over (default 10, at
                    most N)
  --kill-pid PID    the node process to SIGKILL during the fan-out; without
                    it nothing is killed and the run only checks delivery
  --kill-after SECS when, after the senders start (default 1)

Receivers connect with after_id set to a mark posted first, read until an end
mark posted after every sender is done, and on a lost connection reconnect to
the next node with after_id = the last id they have. Figures: per client, lost
deliveries (ids after the mark that some client got and this one did not),
duplicated and out-of-order ones (all must be 0); ids that no client got (0
on a server nobody else posts to); acknowledged messages that did not reach
every client (0); how many reconnected, and how soon after the kill. Keep
what is posted during a reconnection under the server's replay bound (1000
messages): beyond it the server answers resync, which shows here as losses.";

/// The fan-out's options (their flags, defaults and checks are
/// `chat-bench fanout`'s), and the kill.
#[derive(Debug, PartialEq)]
pub struct Options {
    pub fan: fanout::Options,
    pub kill_pid: Option<u32>,
    pub kill_after: Duration,
}

impl FromFlags for Options {
    const FLAGS: &'static [&'static str] = &[
        "--clients",
        "--senders",
        "--messages",
        "--window",
        "--rate",
        "--users",
        "--kill-pid",
        "--kill-after",
    ];

    fn from_flags(flags: &Flags) -> std::result::Result<Options, ArgError> {
        let fan = fanout::Options::from_flags(flags)?;
        if fan.senders as u64 * fan.messages > u32::MAX as u64 / 2 {
            return Err(bad("--senders x --messages is too large"));
        }
        Ok(Options {
            fan,
            kill_pid: flags.opt_with("--kill-pid", "a process id", |v| v.parse().ok())?,
            kill_after: flags.secs("--kill-after", Duration::from_secs(1))?,
        })
    }
}

/// Pause between attempts to reach a node while looking for a live one.
const RETRY: Duration = Duration::from_millis(100);

/// What every connection of the run shares.
struct Run {
    endpoints: Vec<Endpoint>,
    tag: String,
    deadline: Instant,
    phase: watch::Receiver<Phase>,
    /// Sender numbers of a sender's later connections are offset by this,
    /// so that an acknowledgement is matched to the connection that sent it.
    senders: u32,
}

impl Run {
    /// Connects to the node after `node`, then the one after, until one
    /// accepts or the run's time is up; `node` becomes the one that did.
    async fn reconnect(&self, node: &mut usize, token: &str, query: &str) -> Result<Ws> {
        loop {
            *node = (*node + 1) % self.endpoints.len();
            match ws::connect_with(&self.endpoints[*node], token, query).await {
                Ok(ws) => return Ok(ws),
                Err(e) if Instant::now() + RETRY >= self.deadline => return Err(e),
                Err(_) => sleep(RETRY).await,
            }
        }
    }

    /// Posts one message on whichever node answers first: its id.
    async fn post_anywhere(&self, token: &str, content: String) -> Result<i64> {
        let mut node = self.endpoints.len() - 1;
        let mut ws = self.reconnect(&mut node, token, "").await?;
        let id = post(&mut ws, &[content], self.deadline).await?[0];
        ws::close(ws).await;
        Ok(id)
    }
}

/// What one receiving client saw over the whole run, across reconnections.
struct Seen {
    ids: Vec<i64>,
    reconnects: u32,
    /// When its last reconnection was up, on the probes' clock.
    resumed_ns: Option<u64>,
    failure: Option<String>,
}

/// What one sender did, across reconnections.
#[derive(Default)]
struct Sent {
    sent: u64,
    acked_ids: Vec<i64>,
    /// Sent on a connection that was lost before they were acknowledged.
    unconfirmed: u64,
    reconnects: u32,
    done_ns: u64,
    failure: Option<String>,
}

pub async fn run(ctx: &Ctx, options: &Options) -> Result<Report> {
    let n = ctx.endpoints.len();
    let o = &options.fan;
    if options.kill_pid.is_some() && n < 2 {
        return Err(Error::new("--kill-pid needs a second node to resume on (--url a,b)"));
    }
    let users = ctx.create_users(o.users).await?;
    let tokens: Vec<String> = users.into_iter().map(|u| u.token).collect();
    let (phase, watching) = watch::channel(Phase::Joining);
    let run = Rc::new(Run {
        endpoints: ctx.endpoints.clone(),
        tag: ctx.tag.clone(),
        deadline: ctx.deadline,
        phase: watching,
        senders: o.senders as u32,
    });
    let mark = run.post_anywhere(&tokens[0], format!("{} mark", ctx.tag)).await?;

    let mut receivers = Vec::with_capacity(o.clients);
    let query = format!("after_id={mark}");
    ws::open_many_with(&ctx.endpoints, &tokens, &query, o.clients, ctx.deadline, |i, ws| {
        let token = tokens[i % tokens.len()].clone();
        receivers.push(spawn_local(receive(run.clone(), ws, i % n, token, mark)));
    })
    .await?;
    let mut senders = Vec::with_capacity(o.senders);
    for s in 0..o.senders {
        let token = tokens[s % tokens.len()].clone();
        let ws = ws::connect(ctx.node_of(s), &token).await?;
        senders.push(spawn_local(send(run.clone(), ws, s % n, token, o.send_plan(s))));
    }

    phase.send_replace(Phase::Sending);
    let start_ns = now_ns();
    let kill_after = options.kill_after;
    let killer = options.kill_pid.map(|pid| {
        spawn_local(async move {
            sleep(kill_after).await;
            let at = now_ns();
            sys::kill(pid).map(|()| at)
        })
    });
    let mut sent = Vec::with_capacity(o.senders);
    for sender in senders {
        sent.push(join(sender).await?);
    }
    let kill_ns = match killer {
        Some(killer) => Some(
            join(killer)
                .await?
                .map_err(|e| Error::new(format!("--kill-pid: {e}")))?,
        ),
        None => None,
    };
    let end_probe = Probe {
        sender: CONTROL,
        seq: 0,
        sent_ns: now_ns(),
    };
    let end = run.post_anywhere(&tokens[0], end_probe.encode(&ctx.tag)).await?;
    let mut seen = Vec::with_capacity(o.clients);
    for receiver in receivers {
        seen.push(join(receiver).await?);
    }

    let mut report = Report::new("failover");
    let sending_end_ns = sent.iter().map(|s| s.done_ns).max().unwrap_or(start_ns).max(start_ns);
    let tally = Tally::count(&seen, &sent, mark, end);
    let mode = match o.rate {
        Some(r) => format!("paced at {r} msg/s each"),
        None => format!("window {}", o.window),
    };
    report.line(format!(
        "failover: {} clients and {} senders x {} messages ({mode}) over {n} nodes, ids {}..={end}",
        o.clients,
        o.senders,
        o.messages,
        mark + 1
    ));
    let total_sent: u64 = sent.iter().map(|s| s.sent).sum();
    let acked: usize = sent.iter().map(|s| s.acked_ids.len()).sum();
    let unconfirmed: u64 = sent.iter().map(|s| s.unconfirmed).sum();
    let sender_reconnects: u32 = sent.iter().map(|s| s.reconnects).sum();
    report.line(format!(
        "  sent {total_sent}, acknowledged {acked}, unconfirmed at a lost connection {unconfirmed}, in {}",
        ms(sending_end_ns - start_ns)
    ));
    match kill_ns {
        Some(at) => {
            let resumed = seen.iter().filter_map(|s| s.resumed_ns).max();
            report.line(format!(
                "  node pid {} killed {} after the start; {} clients and {sender_reconnects} senders reconnected, the last {} after the kill",
                options.kill_pid.unwrap_or_default(),
                ms(at - start_ns),
                tally.reconnected,
                resumed.map_or("-".to_string(), |r| ms(r.saturating_sub(at)))
            ));
            report.figure("kill_ms", round3((at - start_ns) as f64 / 1e6));
            report.figure(
                "last_resumed_after_kill_ms",
                resumed.map(|r| round3(r.saturating_sub(at) as f64 / 1e6)),
            );
            if at >= sending_end_ns {
                report.fail("the node was killed after the senders were done: lower --kill-after");
            }
        }
        None => report.line("  no node killed (no --kill-pid)"),
    }
    report.line(format!(
        "  deliveries {} ({} ids x {} clients), lost {}, duplicated {}, out of order {}, \
         clients with a loss or twin {}, ids no client got {}, acknowledged not at every client {}",
        tally.deliveries,
        tally.union,
        o.clients,
        tally.lost,
        tally.duplicated,
        tally.out_of_order,
        tally.clients_wrong,
        tally.unseen,
        tally.acked_missing
    ));
    report.figure("clients", o.clients);
    report.figure("senders", o.senders);
    report.figure("nodes", n);
    report.figure("messages", o.messages);
    report.figure("rate", o.rate);
    report.figure("window", o.window);
    report.figure("sent", total_sent);
    report.figure("acked", acked);
    report.figure("unconfirmed", unconfirmed);
    report.figure("sending_s", round3((sending_end_ns - start_ns) as f64 / 1e9));
    report.figure("deliveries", tally.deliveries);
    report.figure("reconnected_clients", tally.reconnected);
    report.figure("reconnected_senders", sender_reconnects);
    report.figure("lost", tally.lost);
    report.figure("duplicated", tally.duplicated);
    report.figure("out_of_order", tally.out_of_order);
    report.figure("clients_wrong", tally.clients_wrong);
    report.figure("ids_unseen", tally.unseen);
    report.figure("acked_missing", tally.acked_missing);
    for (what, count) in [
        ("deliveries lost", tally.lost),
        ("deliveries duplicated", tally.duplicated),
        ("deliveries out of order", tally.out_of_order),
        ("ids no client got", tally.unseen),
        ("acknowledged messages missing at some client", tally.acked_missing),
    ] {
        if count > 0 {
            report.fail(format!("{count} {what}"));
        }
    }
    let failures = seen
        .iter()
        .filter_map(|s| s.failure.as_ref())
        .chain(sent.iter().filter_map(|s| s.failure.as_ref()));
    let mut failed = 0;
    let mut first = None;
    for why in failures {
        failed += 1;
        first.get_or_insert(why);
    }
    report.figure("connections_failed", failed);
    if let Some(why) = first {
        let text = format!("{failed} connections gave up (first: {why})");
        report.line(format!("  {text}"));
        report.fail(text);
    }
    Ok(report)
}

/// How one connection of a client ended.
enum Turn {
    Done,
    /// Lost: go on on the next node, with these query parameters.
    Lost(String),
    Failed(String),
}

/// Runs a client over as many connections as it takes: `turn` runs one
/// connection to its end; a lost one is replaced by one to the next live
/// node. How many times it was replaced, or why the client gave up.
async fn keep_connected(
    run: &Run,
    mut ws: Ws,
    mut node: usize,
    token: &str,
    mut turn: impl AsyncFnMut(&mut Ws) -> Turn,
) -> std::result::Result<u32, String> {
    let mut reconnects = 0;
    loop {
        match turn(&mut ws).await {
            Turn::Done => {
                ws::close(ws).await;
                return Ok(reconnects);
            }
            Turn::Failed(why) => return Err(why),
            Turn::Lost(query) => {
                ws = run
                    .reconnect(&mut node, token, &query)
                    .await
                    .map_err(|e| format!("reconnecting: {e}"))?;
                reconnects += 1;
            }
        }
    }
}

/// A receiving client: reads until the end mark, resuming with `after_id`
/// on the next node whenever its connection is lost.
async fn receive(run: Rc<Run>, ws: Ws, node: usize, token: String, mark: i64) -> Seen {
    let (mut ids, mut resumed_ns) = (Vec::new(), None);
    let mut first = true;
    let kept = keep_connected(&run, ws, node, &token, async |ws: &mut Ws| {
        if !std::mem::take(&mut first) {
            resumed_ns = Some(now_ns());
        }
        let outcome = chat::run(ws, &run.tag, None, run.phase.clone(), run.deadline, |d| {
            ids.push(d.id);
            match d.probe.sender {
                CONTROL => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        })
        .await;
        match outcome.end {
            End::Done => Turn::Done,
            End::Closed(_) => Turn::Lost(format!("after_id={}", ids.last().copied().unwrap_or(mark))),
            other => Turn::Failed(format!("receiver: {other}")),
        }
    })
    .await;
    Seen {
        ids,
        reconnects: *kept.as_ref().unwrap_or(&0),
        resumed_ns,
        failure: kept.err(),
    }
}

/// A sender: sends its messages, and on a lost connection sends what it has
/// left on the next node, under a new sender number.
async fn send(run: Rc<Run>, ws: Ws, node: usize, token: String, first: SendPlan) -> Sent {
    let mut out = Sent::default();
    let mut plan = first;
    let kept = keep_connected(&run, ws, node, &token, async |ws: &mut Ws| {
        let mut acked = 0;
        let acked_ids = &mut out.acked_ids;
        let outcome = chat::run(ws, &run.tag, Some(plan), run.phase.clone(), run.deadline, |d| {
            if d.probe.sender == plan.sender {
                acked_ids.push(d.id);
                acked += 1;
                if acked == plan.count {
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        })
        .await;
        out.sent += outcome.sent;
        out.done_ns = now_ns();
        match outcome.end {
            End::Done => Turn::Done,
            End::Closed(_) => {
                out.unconfirmed += outcome.sent.saturating_sub(outcome.acked);
                plan.count -= outcome.sent;
                plan.sender += run.senders;
                match plan.count {
                    0 => Turn::Done,
                    _ => Turn::Lost(String::new()),
                }
            }
            other => Turn::Failed(format!("sender: {other}")),
        }
    })
    .await;
    match kept {
        Ok(reconnects) => out.reconnects = reconnects,
        Err(why) => out.failure = Some(why),
    }
    out
}

/// What the clients saw, against each other and against what was
/// acknowledged, over the run's ids `mark + 1 ..= end`.
#[derive(Debug, Default, PartialEq)]
struct Tally {
    /// Every id a client got, the end mark's included, twins included.
    deliveries: u64,
    /// Ids that at least one client got.
    union: usize,
    lost: u64,
    duplicated: u64,
    out_of_order: u64,
    clients_wrong: usize,
    /// Ids in the run's range that no client got.
    unseen: u64,
    acked_missing: u64,
    reconnected: usize,
}

impl Tally {
    fn count(seen: &[Seen], sent: &[Sent], mark: i64, end: i64) -> Tally {
        let span = usize::try_from(end - mark).unwrap_or(0);
        let slot = |id: i64| usize::try_from(id - mark - 1).ok().filter(|&i| i < span);
        // How many clients got each id of the range.
        let mut holders = vec![0usize; span];
        let mut distinct = Vec::with_capacity(seen.len());
        let mut tally = Tally::default();
        for client in seen {
            tally.deliveries += client.ids.len() as u64;
            tally.out_of_order += client.ids.windows(2).filter(|w| w[1] < w[0]).count() as u64;
            let mut ids = client.ids.clone();
            ids.sort_unstable();
            ids.dedup();
            let twins = (client.ids.len() - ids.len()) as u64;
            tally.duplicated += twins;
            let mut got = 0;
            for i in ids.iter().filter_map(|&id| slot(id)) {
                holders[i] += 1;
                got += 1;
            }
            distinct.push((got, twins));
            tally.reconnected += usize::from(client.reconnects > 0);
        }
        tally.union = holders.iter().filter(|&&h| h > 0).count();
        tally.unseen = (span - tally.union) as u64;
        for (got, twins) in distinct {
            let lost = (tally.union - got) as u64;
            tally.lost += lost;
            tally.clients_wrong += usize::from(lost > 0 || twins > 0);
        }
        tally.acked_missing = sent
            .iter()
            .flat_map(|s| &s.acked_ids)
            .filter(|&&id| slot(id).is_none_or(|i| holders[i] < seen.len()))
            .count() as u64;
        tally
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(ids: &[i64]) -> Seen {
        Seen {
            ids: ids.to_vec(),
            reconnects: 0,
            resumed_ns: None,
            failure: None,
        }
    }

    fn sender(acked: &[i64]) -> Sent {
        Sent {
            acked_ids: acked.to_vec(),
            ..Sent::default()
        }
    }

    #[test]
    fn defaults_and_bounds() {
        let o = Options::parse("").unwrap();
        assert_eq!((o.fan.clients, o.fan.senders, o.kill_pid), (100, 10, None));
        assert_eq!(o.kill_after, Duration::from_secs(1));
        let o = Options::parse("--kill-pid 42 --kill-after 2.5 --rate 20").unwrap();
        assert_eq!((o.kill_pid, o.fan.rate), (Some(42), Some(20.0)));
        assert_eq!(o.kill_after, Duration::from_millis(2500));
        assert!(Options::parse("--senders 0").is_err(), "the fan-out's checks hold");
        assert!(Options::parse("--kill-pid me").is_err());
        assert!(Options::parse("--kill-after 0").is_err());
        assert!(Options::parse("--clients 100000 --senders 100000 --messages 100000").is_err());
    }

    #[test]
    fn every_client_with_every_id_once_is_clean() {
        let seen = [client(&[11, 12, 13]), client(&[11, 12, 13])];
        let tally = Tally::count(&seen, &[sender(&[11, 12])], 10, 13);
        assert_eq!(
            tally,
            Tally {
                deliveries: 6,
                union: 3,
                ..Tally::default()
            }
        );
    }

    #[test]
    fn losses_twins_reorders_and_gaps_are_counted() {
        // 12 and 14 (a twin) come back after a resume from too early; 15 is
        // lost by one client; nobody got 16.
        let seen = [client(&[11, 12, 13, 12, 14, 15, 17]), client(&[11, 12, 13, 14, 17])];
        let tally = Tally::count(&seen, &[sender(&[15, 16])], 10, 17);
        assert_eq!(tally.duplicated, 1);
        assert_eq!(tally.out_of_order, 1);
        assert_eq!(tally.union, 6);
        assert_eq!(tally.unseen, 1);
        assert_eq!(tally.lost, 1);
        assert_eq!(tally.clients_wrong, 2);
        assert_eq!(tally.acked_missing, 2);
    }
}
