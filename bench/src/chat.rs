//! The chat client every benchmark shares: one WebSocket connection that
//! reads every event, may send probe messages, and hands each probe it sees
//! delivered, with its timing, to the caller.
//!
//! A probe is a chat message whose content says who sent it and when:
//! `b<sender>:<seq>:<nanos>:<tag>`, where nanos count from this process's
//! epoch and the tag is random per run, so that messages of another run or of
//! people are ignored. A sender matches its acknowledgements - its own
//! messages echoed back - by its sender number, and keeps at most `window` of
//! them unacknowledged; or it paces itself at a fixed rate.
//!
//! Everything runs on one thread, so the time a probe waits in this process
//! before it is read counts in its latency: the run's CPU figure tells when
//! that matters.

use std::ops::ControlFlow;
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio::task::{spawn_local, JoinHandle};
use tokio::time::{interval_at, sleep_until, Instant, Interval};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::ws::{parse_event, Event, Ws};

static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();

/// Nanoseconds since this process first asked: the clock probes carry.
pub fn now_ns() -> u64 {
    EPOCH.get_or_init(std::time::Instant::now).elapsed().as_nanos() as u64
}

/// The sender number of messages that are not part of a measurement, such
/// as the start signal of a fan-out run.
pub const CONTROL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Probe {
    pub sender: u32,
    pub seq: u64,
    pub sent_ns: u64,
}

impl Probe {
    pub fn encode(&self, tag: &str) -> String {
        format!("b{}:{}:{}:{tag}", self.sender, self.seq, self.sent_ns)
    }

    /// The probe in a message's content, if it is one of this run's.
    pub fn decode(content: &str, tag: &str) -> Option<Probe> {
        let fields = content.strip_prefix('b')?.strip_suffix(tag)?.strip_suffix(':')?;
        let mut fields = fields.split(':');
        let probe = Probe {
            sender: fields.next()?.parse().ok()?,
            seq: fields.next()?.parse().ok()?,
            sent_ns: fields.next()?.parse().ok()?,
        };
        fields.next().is_none().then_some(probe)
    }
}

/// A probe as one connection received it.
pub struct Delivery {
    /// The message id the server gave it.
    pub id: i64,
    pub probe: Probe,
    pub received_ns: u64,
}

impl Delivery {
    pub fn latency_ns(&self) -> u64 {
        self.received_ns.saturating_sub(self.probe.sent_ns)
    }
}

/// What a connection sends, once the run is in `Phase::Sending`.
#[derive(Clone, Copy, Debug)]
pub struct SendPlan {
    /// Unique per connection in a run: acknowledgements are matched by it.
    pub sender: u32,
    pub count: u64,
    /// Most messages sent and not yet acknowledged.
    pub window: u64,
    /// A fixed rate instead of as-fast-as-acknowledged.
    pub pace: Option<Pace>,
}

/// One message per `period`, the first after `offset` (senders of one run
/// are offset so that they do not all send in the same instant).
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    pub period: Duration,
    pub offset: Duration,
}

/// Where a run is; every connection of the run watches it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Phase {
    /// Connected and reading; senders wait.
    Joining,
    Sending,
    /// Stop reading and return.
    Stopping,
}

/// Why `run` returned.
#[derive(Debug, PartialEq)]
pub enum End {
    /// The delivery callback said it had seen enough.
    Done,
    /// The run moved to `Phase::Stopping`.
    Stopped,
    /// The run's deadline passed first.
    Deadline,
    /// The connection failed or the server closed it.
    Closed(String),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Done => f.write_str("done"),
            End::Stopped => f.write_str("stopped"),
            End::Deadline => f.write_str("--timeout reached"),
            End::Closed(why) => f.write_str(why),
        }
    }
}

/// What one connection did.
#[derive(Debug)]
pub struct Outcome {
    pub sent: u64,
    pub acked: u64,
    pub first_sent_ns: Option<u64>,
    pub last_ack_ns: Option<u64>,
    /// `error` events received, and the code of the first.
    pub errors: u64,
    pub first_error: Option<String>,
    pub end: End,
}

/// Reads `ws` until the callback breaks, the phase becomes `Stopping`, the
/// deadline passes or the connection ends; sends by `plan` meanwhile.
pub async fn run(
    ws: &mut Ws,
    tag: &str,
    plan: Option<SendPlan>,
    mut phase: watch::Receiver<Phase>,
    deadline: Instant,
    mut on_delivery: impl FnMut(&Delivery) -> ControlFlow<()>,
) -> Outcome {
    let mut out = Outcome {
        sent: 0,
        acked: 0,
        first_sent_ns: None,
        last_ack_ns: None,
        errors: 0,
        first_error: None,
        end: End::Done,
    };
    let expired = sleep_until(deadline);
    tokio::pin!(expired);
    let mut pace: Option<Interval> = None;
    loop {
        let current = *phase.borrow_and_update();
        if current == Phase::Stopping {
            out.end = End::Stopped;
            return out;
        }
        let sending = current == Phase::Sending;
        if let (true, None, Some(p)) = (sending, &pace, plan.and_then(|p| p.pace)) {
            pace = Some(interval_at(Instant::now() + p.offset, p.period));
        }
        // Registered once per phase rather than once per frame (the watch's
        // registration was about 2 % of this process in the latency run).
        let changed = phase.changed();
        tokio::pin!(changed);
        loop {
            let can_send = sending && plan.is_some_and(|p| out.sent < p.count && out.sent - out.acked < p.window);
            tokio::select! {
                biased;
                _ = &mut expired => {
                    out.end = End::Deadline;
                    return out;
                }
                changed = &mut changed => {
                    if changed.is_err() {
                        out.end = End::Stopped;
                        return out;
                    }
                    break;
                }
                _ = tick(&mut pace), if can_send => {
                    if let Some(plan) = plan {
                        if let Err(e) = send_batch(ws, tag, &plan, pace.is_some(), &mut out).await {
                            out.end = End::Closed(format!("sending failed: {e}"));
                            return out;
                        }
                    }
                }
                frame = ws.next() => {
                    if let Some(end) = receive(frame, tag, plan, &mut out, &mut on_delivery) {
                        out.end = end;
                        return out;
                    }
                }
            }
        }
    }
}

/// Takes one frame: counts acknowledgements and errors and hands probes to
/// `on_delivery`; says how the run ends if this frame ends it.
fn receive(
    frame: Option<Result<Message, WsError>>,
    tag: &str,
    plan: Option<SendPlan>,
    out: &mut Outcome,
    on_delivery: &mut impl FnMut(&Delivery) -> ControlFlow<()>,
) -> Option<End> {
    let received_ns = now_ns();
    let text = match frame {
        Some(Ok(Message::Text(text))) => text,
        Some(Ok(Message::Close(frame))) => return Some(End::Closed(close_reason(frame))),
        Some(Ok(_)) => return None,
        Some(Err(e)) => return Some(End::Closed(e.to_string())),
        None => return Some(End::Closed("the connection ended".to_string())),
    };
    // Join and leave events, the bulk of the traffic when many connect, are
    // skipped without parsing.
    if !text.contains(tag) && !text.contains("\"error\"") {
        return None;
    }
    match parse_event(&text) {
        Event::Message { id, content } => {
            let probe = Probe::decode(&content, tag)?;
            if plan.is_some_and(|p| p.sender == probe.sender) {
                out.acked += 1;
                out.last_ack_ns = Some(received_ns);
            }
            let delivery = Delivery { id, probe, received_ns };
            on_delivery(&delivery).is_break().then_some(End::Done)
        }
        Event::Error { code } => {
            out.errors += 1;
            out.first_error.get_or_insert(code);
            None
        }
        Event::Other => None,
    }
}

fn close_reason(frame: Option<CloseFrame>) -> String {
    match frame {
        Some(frame) => format!(
            "the server closed the connection: {} {}",
            u16::from(frame.code),
            frame.reason.as_str()
        ),
        None => "the server closed the connection".to_string(),
    }
}

/// Runs a connection in a task of its own on this thread; the task gives
/// the connection back with its outcome, for the caller to close.
pub fn spawn(
    mut ws: Ws,
    tag: String,
    plan: Option<SendPlan>,
    phase: watch::Receiver<Phase>,
    deadline: Instant,
    on_delivery: impl FnMut(&Delivery) -> ControlFlow<()> + 'static,
) -> JoinHandle<(Outcome, Ws)> {
    spawn_local(async move {
        let outcome = run(&mut ws, &tag, plan, phase, deadline, on_delivery).await;
        (outcome, ws)
    })
}

/// Waits for the next paced slot; at once when unpaced.
async fn tick(pace: &mut Option<Interval>) {
    if let Some(interval) = pace {
        interval.tick().await;
    }
}

/// Sends one paced message, or as many as the window allows, in one flush.
async fn send_batch(ws: &mut Ws, tag: &str, plan: &SendPlan, paced: bool, out: &mut Outcome) -> Result<(), WsError> {
    let room = (plan.count - out.sent).min(plan.window - (out.sent - out.acked));
    let batch = if paced { room.min(1) } else { room };
    for _ in 0..batch {
        let probe = Probe {
            sender: plan.sender,
            seq: out.sent,
            sent_ns: now_ns(),
        };
        ws.feed(Message::text(probe.encode(tag))).await?;
        out.first_sent_ns.get_or_insert(probe.sent_ns);
        out.sent += 1;
    }
    ws.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_round_trip_through_their_content() {
        let probe = Probe {
            sender: 3,
            seq: 17,
            sent_ns: 123_456_789,
        };
        let content = probe.encode("abcd1234");
        assert_eq!(content, "b3:17:123456789:abcd1234");
        assert_eq!(Probe::decode(&content, "abcd1234"), Some(probe));
        let control = Probe {
            sender: CONTROL,
            seq: 0,
            sent_ns: 1,
        };
        assert_eq!(Probe::decode(&control.encode("t"), "t"), Some(control));
    }

    #[test]
    fn other_runs_and_people_are_not_probes() {
        assert_eq!(Probe::decode("b3:17:123:abcd1234", "ffff0000"), None);
        assert_eq!(Probe::decode("hello abcd1234", "abcd1234"), None);
        assert_eq!(Probe::decode("b3:17:abcd1234", "abcd1234"), None);
        assert_eq!(Probe::decode("b3:17:1:2:abcd1234", "abcd1234"), None);
        assert_eq!(Probe::decode("b3:x:1:abcd1234", "abcd1234"), None);
        assert_eq!(Probe::decode("b3:17:1abcd1234", "abcd1234"), None);
    }

    #[test]
    fn latency_never_goes_negative() {
        let delivery = |sent_ns, received_ns| Delivery {
            id: 1,
            probe: Probe {
                sender: 0,
                seq: 0,
                sent_ns,
            },
            received_ns,
        };
        assert_eq!(delivery(100, 350).latency_ns(), 250);
        assert_eq!(delivery(400, 350).latency_ns(), 0);
    }
}
