//! `fanout`: N clients in the room, S of them sending M messages each; every
//! message must reach every client. Measures send-to-receipt latency over all
//! deliveries, delivery and acknowledgement rates, losses and reordering.
//!
//! Against several nodes (`--url a,b`), client `i` connects to node `i % n`,
//! so senders are on every node, and the latency of the deliveries whose
//! sender is on another node than their receiver is reported apart: the
//! cross-node latency, on one clock since both ends are this process.
//!
//! All clients are connected and proven joined before anyone sends: a control
//! connection repeats a start probe until every client has seen one, so no
//! client misses messages because its subscription was not yet in place.

use std::cell::RefCell;
use std::ops::ControlFlow;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{sleep, timeout_at, Instant};

use super::phase::Crowd;
use super::{Ctx, Ends, FromFlags};
use crate::args::{bad, ArgError, Flags};
use crate::chat::{now_ns, Delivery, End, Pace, Phase, SendPlan, CONTROL};
use crate::error::{Error, Result};
use crate::report::Report;
use crate::stats::{rate, round3, Histogram};
use crate::ws;

pub const HELP: &str = "\
chat-bench fanout: many WebSocket clients, some of them sending; every message
must reach every client.

Usage: chat-bench fanout [--clients N] [--senders S] [--messages M] [--window W]
                         [--rate R] [--users U] [common flags]

  --clients N    connections in the room (default 100)
  --senders S    how many of them send (default 10, at most N)
  --messages M   messages each sender sends (default 100)
  --window W     most unacknowledged messages per sender (default 16); a
                 sender's acknowledgement is its own message echoed back
  --rate R       pace each sender at R messages a second instead of as fast as
                 acknowledged (latency mode); the window still caps what is
                 in flight
  --users U      accounts the connections are spread over (default 10, at most
                 N); many connections share a user, since messages are matched
                 by their content, not their author

Start the server with --ws-rate-limit 0, or senders get rate_limited.
Figures: latency from send to receipt over all N x S x M deliveries, deliveries
and acknowledged messages a second, lost deliveries (a sent message that did
not reach every client), messages unsent when --timeout struck, reordered
deliveries (per client, ids and each sender's sequence numbers must ascend),
client CPU. The run ends by --timeout even if deliveries are missing.";

#[derive(Debug, PartialEq)]
pub struct Options {
    pub clients: usize,
    pub senders: usize,
    pub messages: u64,
    pub window: u64,
    pub rate: Option<f64>,
    pub users: usize,
}

impl FromFlags for Options {
    const FLAGS: &'static [&'static str] = &["--clients", "--senders", "--messages", "--window", "--rate", "--users"];

    fn from_flags(flags: &Flags) -> std::result::Result<Options, ArgError> {
        let clients = flags.get("--clients", 100usize)?;
        let options = Options {
            clients,
            senders: flags.get("--senders", 10.min(clients))?,
            messages: flags.get("--messages", 100)?,
            window: flags.get("--window", 16)?,
            rate: flags.opt("--rate")?,
            users: flags.get("--users", 10.min(clients))?,
        };
        if clients == 0 {
            return Err(bad("--clients must be at least 1"));
        }
        if !(1..=clients).contains(&options.senders) {
            return Err(bad("--senders must be between 1 and --clients"));
        }
        if !(1..=clients).contains(&options.users) {
            return Err(bad("--users must be between 1 and --clients"));
        }
        if options.messages == 0 || options.window == 0 {
            return Err(bad("--messages and --window must be at least 1"));
        }
        if options.rate.is_some_and(|r| !(r > 0.0 && r <= 1e6)) {
            return Err(bad("--rate must be above 0 and at most 1000000"));
        }
        Ok(options)
    }
}

impl Options {
    /// What sender `i` sends: paced senders are offset from each other so
    /// that they do not all send in the same instant.
    pub fn send_plan(&self, i: usize) -> SendPlan {
        SendPlan {
            sender: i as u32,
            count: self.messages,
            window: self.window,
            pace: self.rate.map(|r| Pace {
                period: Duration::from_secs_f64(1.0 / r),
                offset: Duration::from_secs_f64(i as f64 / r / self.senders as f64),
            }),
        }
    }
}

/// The order one client has seen: message ids must ascend, and so must each
/// sender's sequence numbers. A late delivery counts once, not again for
/// every delivery after it.
struct Order {
    last_id: i64,
    last_seq: Vec<Option<u64>>,
}

impl Order {
    fn new(senders: usize) -> Order {
        Order {
            last_id: i64::MIN,
            last_seq: vec![None; senders],
        }
    }

    fn in_order(&mut self, id: i64, sender: usize, seq: u64) -> bool {
        let id_ok = id > self.last_id;
        self.last_id = self.last_id.max(id);
        let last = &mut self.last_seq[sender];
        let seq_ok = last.is_none_or(|last| seq > last);
        *last = Some(last.map_or(seq, |last| last.max(seq)));
        id_ok && seq_ok
    }
}

/// What all clients add up, shared on the one thread.
#[derive(Default)]
struct Totals {
    latency: Histogram,
    /// Deliveries whose sender is connected to another node.
    cross_node: Histogram,
    deliveries: u64,
    reordered: u64,
    last_delivery_ns: u64,
    joined: usize,
}

/// What every client needs.
struct Shared {
    senders: usize,
    nodes: usize,
    expected_per_client: u64,
    totals: RefCell<Totals>,
    joined: Notify,
}

pub async fn run(ctx: &Ctx, options: &Options) -> Result<Report> {
    let users = ctx.create_users(options.users).await?;
    let tokens: Vec<String> = users.into_iter().map(|u| u.token).collect();
    let shared = Rc::new(Shared {
        senders: options.senders,
        nodes: ctx.endpoints.len(),
        expected_per_client: options.senders as u64 * options.messages,
        totals: RefCell::default(),
        joined: Notify::new(),
    });

    let connecting = Instant::now();
    let mut clients = Crowd::new(ctx, Phase::Joining);
    ws::open_many(&ctx.endpoints, &tokens, options.clients, ctx.deadline, |i, ws| {
        let plan = (i < options.senders).then(|| options.send_plan(i));
        clients.spawn(ws, plan, client(shared.clone(), i % shared.nodes));
    })
    .await?;
    let connect_time = connecting.elapsed();

    let joining = Instant::now();
    wait_until_joined(ctx, &tokens[0], &shared, options.clients).await?;
    let join_time = joining.elapsed();

    let timer = clients.start()?;
    let start_ns = now_ns();
    let outcomes = clients.join().await?;
    let (usage, server_cpu) = timer.read()?;
    clients.close().await;

    let totals = shared.totals.take();
    let mut report = Report::new("fanout");
    let o = options;
    let expected = o.clients as u64 * shared.expected_per_client;
    let sent: u64 = outcomes.iter().map(|x| x.sent).sum();
    let acked: u64 = outcomes.iter().map(|x| x.acked).sum();
    let last_ack_ns = outcomes.iter().filter_map(|x| x.last_ack_ns).max().unwrap_or(start_ns);
    let ack_rate = rate(acked, last_ack_ns - start_ns);
    let delivery_rate = rate(totals.deliveries, totals.last_delivery_ns.saturating_sub(start_ns));
    // Every message sent must reach every client; messages never sent (the
    // run's time ran out) are counted apart.
    let lost = (sent * o.clients as u64).saturating_sub(totals.deliveries);
    let unsent = o.senders as u64 * o.messages - sent;
    let latency = totals.latency.summary();
    let ends = Ends::tally(&outcomes);

    let mode = match o.rate {
        Some(r) => format!("paced at {r} msg/s, window {}", o.window),
        None => format!("window {}", o.window),
    };
    report.line(format!(
        "fanout: {} clients over {} users, {} senders x {} messages, {mode}",
        o.clients, o.users, o.senders, o.messages
    ));
    report.line(format!(
        "  connected in {:.3} s, all joined {:.3} s later",
        connect_time.as_secs_f64(),
        join_time.as_secs_f64()
    ));
    report.line(format!(
        "  sent {sent}, acknowledged {acked} ({ack_rate} msg/s), unsent {unsent}"
    ));
    report.line(format!(
        "  deliveries {} of {expected} ({delivery_rate} /s), lost {lost}, reordered {}",
        totals.deliveries, totals.reordered
    ));
    report.line(format!("  latency {}", latency.human()));
    if shared.nodes > 1 {
        let cross = totals.cross_node.summary();
        report.line(format!("  across nodes ({} nodes) {}", shared.nodes, cross.human()));
        report.figure("cross_node_latency_ms", cross.json());
    }
    let mut cpu = format!(
        "  client CPU {}% of one core over {:.3} s of sending",
        usage.cpu_percent(),
        usage.wall.as_secs_f64()
    );
    if let Some(server) = server_cpu {
        let per_delivery_us = server.as_secs_f64() * 1e6 / totals.deliveries.max(1) as f64;
        cpu += &format!(
            "; server CPU {:.3} s ({per_delivery_us:.2} us per delivery)",
            server.as_secs_f64()
        );
        report.figure("send_phase_server_cpu_s", round3(server.as_secs_f64()));
        report.figure("server_cpu_us_per_delivery", round3(per_delivery_us));
    }
    report.line(cpu);
    report.figure("clients", o.clients);
    report.figure("nodes", shared.nodes);
    report.figure("senders", o.senders);
    report.figure("messages", o.messages);
    report.figure("window", o.window);
    report.figure("rate", o.rate);
    report.figure("users", o.users);
    report.figure("connect_s", round3(connect_time.as_secs_f64()));
    report.figure("sent", sent);
    report.figure("acked", acked);
    report.figure("unsent", unsent);
    report.figure("acked_per_s", ack_rate);
    report.figure("expected_deliveries", expected);
    report.figure("deliveries", totals.deliveries);
    report.figure("deliveries_per_s", delivery_rate);
    report.figure("lost", lost);
    report.figure("reordered", totals.reordered);
    report.figure("latency_ms", latency.json());
    report.figure("send_phase_s", round3(usage.wall.as_secs_f64()));
    report.figure("client_cpu_pct", usage.cpu_percent());
    ends.add_to(&mut report);
    if lost > 0 {
        report.fail(format!("{lost} deliveries of sent messages lost"));
    }
    if unsent > 0 {
        report.fail(format!("{unsent} messages not sent before --timeout"));
    }
    if totals.reordered > 0 {
        report.fail(format!("{} deliveries out of order", totals.reordered));
    }
    Ok(report)
}

/// What one client, connected to node `node`, does with each delivery: it
/// reads until it has seen every sender's every message.
fn client(shared: Rc<Shared>, node: usize) -> impl FnMut(&Delivery) -> ControlFlow<()> {
    let mut order = Order::new(shared.senders);
    let mut joined = false;
    let mut received = 0;
    move |d| {
        let sender = d.probe.sender as usize;
        if d.probe.sender == CONTROL {
            if !joined {
                joined = true;
                shared.totals.borrow_mut().joined += 1;
                shared.joined.notify_one();
            }
            return ControlFlow::Continue(());
        }
        if sender >= shared.senders {
            return ControlFlow::Continue(());
        }
        let mut totals = shared.totals.borrow_mut();
        totals.latency.record(d.latency_ns());
        // Sender `s` is client `s`, on node `s % nodes`.
        if sender % shared.nodes != node {
            totals.cross_node.record(d.latency_ns());
        }
        totals.deliveries += 1;
        totals.last_delivery_ns = totals.last_delivery_ns.max(d.received_ns);
        if !order.in_order(d.id, sender, d.probe.seq) {
            totals.reordered += 1;
        }
        received += 1;
        if received >= shared.expected_per_client {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

/// Repeats a start probe from a control connection until every client has
/// seen one.
async fn wait_until_joined(ctx: &Ctx, token: &str, shared: &Shared, clients: usize) -> Result<()> {
    let mut control = Crowd::new(ctx, Phase::Sending);
    let plan = SendPlan {
        sender: CONTROL,
        count: u64::MAX,
        window: u64::MAX,
        pace: Some(Pace {
            period: Duration::from_millis(250),
            offset: Duration::ZERO,
        }),
    };
    control.spawn(ws::connect(&ctx.endpoint, token).await?, Some(plan), |_| {
        ControlFlow::Continue(())
    });
    let all_joined = async {
        while shared.totals.borrow().joined < clients {
            shared.joined.notified().await;
        }
    };
    let waited = timeout_at(ctx.deadline, all_joined).await;
    let outcome = control.finish().await?.remove(0);
    if let End::Closed(why) = outcome.end {
        return Err(Error::new(format!("control connection: {why}")));
    }
    if waited.is_err() {
        let joined = shared.totals.borrow().joined;
        return Err(Error::new(format!(
            "only {joined} of {clients} clients saw the start signal within --timeout"
        )));
    }
    // Let the last start probes drain before the measurement starts.
    sleep(Duration::from_millis(50)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fit_a_small_room() {
        assert_eq!(
            Options::parse("").unwrap(),
            Options {
                clients: 100,
                senders: 10,
                messages: 100,
                window: 16,
                rate: None,
                users: 10
            }
        );
        let small = Options::parse("--clients 3").unwrap();
        assert_eq!((small.senders, small.users), (3, 3));
    }

    #[test]
    fn flags_override_defaults() {
        let o = Options::parse("--clients 50 --senders 5 --messages 7 --window 2 --rate 12.5 --users 4").unwrap();
        assert_eq!(
            o,
            Options {
                clients: 50,
                senders: 5,
                messages: 7,
                window: 2,
                rate: Some(12.5),
                users: 4
            }
        );
    }

    #[test]
    fn impossible_settings_are_refused() {
        assert!(Options::parse("--clients 0").is_err());
        assert!(Options::parse("--clients 5 --senders 6").is_err());
        assert!(Options::parse("--senders 0").is_err());
        assert!(Options::parse("--window 0").is_err());
        assert!(Options::parse("--messages 0").is_err());
        assert!(Options::parse("--rate 0").is_err());
        assert!(Options::parse("--rate -3").is_err());
        assert!(Options::parse("--clients 2 --users 3").is_err());
    }

    #[test]
    fn order_counts_late_ids_and_sequences_once() {
        let mut order = Order::new(2);
        assert!(order.in_order(10, 0, 0));
        assert!(order.in_order(11, 1, 0));
        assert!(order.in_order(12, 0, 1));
        assert!(!order.in_order(9, 0, 2), "id went back");
        assert!(order.in_order(13, 0, 3));
        assert!(!order.in_order(14, 1, 0), "sequence repeated");
        assert!(order.in_order(15, 1, 1));
    }
}
