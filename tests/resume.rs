//! Resume and backlog: `?after_id=` and `?last=` on `/ws/chat`, the epoch,
//! the forward history form, and what a shutdown or a crash does to a
//! conversation. Every check compares what a socket received with what the
//! senders saw acknowledged.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::ws::{handshake, is, Client, WAIT};
use common::Server;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

/// The ids of the next `n` message events, skipping presence events.
async fn message_ids(client: &mut Client, n: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    while ids.len() < n {
        let event = client.event().await;
        if is(&event, "message") {
            ids.push(event["id"].as_i64().unwrap());
        } else {
            assert!(is(&event, "join"), "unexpected event {event}");
        }
    }
    ids
}

/// Posts `n` messages as fast as the socket takes them and waits for every
/// acknowledgement; returns their ids.
async fn post_many(client: &mut Client, username: &str, n: usize) -> Vec<i64> {
    for i in 0..n {
        client.ws.feed(Message::text(format!("m{i}"))).await.unwrap();
    }
    client.ws.flush().await.unwrap();
    let mut ids = Vec::new();
    while ids.len() < n {
        let event = client.event().await;
        if is(&event, "message") && event["username"] == username {
            ids.push(event["id"].as_i64().unwrap());
        }
    }
    ids
}

#[tokio::test]
async fn after_id_replays_what_was_missed_then_goes_live() {
    let server = Server::start_with(&["--ws-rate-limit=0"]);
    let (ann_token, bob_token) = (server.user("ann"), server.user("bob"));
    let mut ann = Client::join(&server, &ann_token, "ann").await;
    let ids = post_many(&mut ann, "ann", 5).await;
    let mut bob = Client::resume(&server, &bob_token, &format!("after_id={}", ids[1])).await;
    let replayed = message_ids(&mut bob, 3).await;
    assert_eq!(replayed, ids[2..]);
    let live = ann.post("ann", "live").await;
    assert_eq!(message_ids(&mut bob, 1).await, [live]);
    let mut carol = Client::resume(&server, &bob_token, &format!("after_id={live}")).await;
    let next = ann.post("ann", "next").await;
    assert_eq!(
        message_ids(&mut carol, 1).await,
        [next],
        "nothing missed, nothing replayed"
    );
}

#[tokio::test]
async fn last_gives_the_newest_messages_oldest_first_then_live() {
    let server = Server::start_with(&["--ws-rate-limit=0"]);
    let token = server.user("ann");
    let mut fresh = Client::resume(&server, &token, "last=5").await;
    let mut ann = Client::join(&server, &token, "ann").await;
    let first = ann.post("ann", "only").await;
    assert_eq!(
        message_ids(&mut fresh, 1).await,
        [first],
        "an empty room replays nothing"
    );
    let ids = post_many(&mut ann, "ann", 9).await;
    let mut three = Client::resume(&server, &token, "last=3").await;
    assert_eq!(message_ids(&mut three, 3).await, ids[6..]);
    let mut all = Client::resume(&server, &token, "last=100").await;
    let mut expected = vec![first];
    expected.extend(&ids);
    assert_eq!(message_ids(&mut all, 10).await, expected);
    let live = ann.post("ann", "live").await;
    assert_eq!(message_ids(&mut three, 1).await, [live]);
    assert_eq!(message_ids(&mut all, 1).await, [live]);
}

#[tokio::test]
async fn more_than_a_thousand_missed_is_a_resync_with_the_latest_id() {
    let server = Server::start_with(&["--ws-rate-limit=0"]);
    let token = server.user("ann");
    let mut ann = Client::join(&server, &token, "ann").await;
    let mut ids = Vec::new();
    for _ in 0..11 {
        ids.extend(post_many(&mut ann, "ann", 100).await);
    }
    let latest = *ids.last().unwrap();
    let mut exactly = Client::resume(&server, &token, &format!("after_id={}", ids[99])).await;
    assert_eq!(
        message_ids(&mut exactly, 1000).await,
        ids[100..],
        "1000 missed are all replayed"
    );
    let mut behind = Client::resume(&server, &token, &format!("after_id={}", ids[98])).await;
    let first = behind.event().await;
    assert_eq!(first, serde_json::json!({"type": "resync", "latest_id": latest}));
    let live = ann.post("ann", "after the resync").await;
    assert_eq!(message_ids(&mut behind, 1).await, [live], "no replay, then live");
}

#[tokio::test]
async fn the_epoch_is_stable_and_a_foreign_one_is_told_to_resync() {
    let server = Server::start();
    let token = server.user("ann");
    let health = server.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let epoch = health.header("x-chat-epoch").expect("epoch on /healthz").to_string();
    assert!(epoch.len() >= 16, "{epoch}");
    for path in ["/history/last20", "/history?after_id=0", "/history?limit=0"] {
        assert_eq!(
            server.get(path, &token).header("x-chat-epoch"),
            Some(epoch.as_str()),
            "{path}"
        );
    }
    let mut ann = Client::join(&server, &token, "ann").await;
    let first = ann.post("ann", "one").await;
    let second = ann.post("ann", "two").await;
    let mut same = Client::resume(&server, &token, &format!("after_id={first}&epoch={epoch}")).await;
    assert_eq!(message_ids(&mut same, 1).await, [second]);
    let mut other = Client::resume(&server, &token, &format!("after_id={first}&epoch=0123abcd")).await;
    assert_eq!(
        other.event().await,
        serde_json::json!({"type": "resync", "latest_id": second})
    );
    drop((ann, same, other));
    let server = server.restart();
    let again = server.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(again.header("x-chat-epoch"), Some(epoch.as_str()), "a restart keeps it");
}

#[test]
fn bad_resume_parameters_are_refused_before_the_upgrade() {
    let server = Server::start();
    let token = server.user("ann");
    for query in [
        "after_id=-1",
        "after_id=abc",
        "after_id=",
        "last=0",
        "last=101",
        "last=x",
        "after_id=1&last=5",
    ] {
        let request = handshake(&server, &format!("/ws/chat?token={token}&{query}"), &[]);
        let response = server.raw(request.as_bytes());
        assert_eq!(response.status, 422, "{query}");
        assert!(!response.detail().is_empty(), "{query}");
    }
}

#[test]
fn history_reads_forward_by_keyset() {
    let server = Server::start_with(&["--ws-rate-limit=0"]);
    let token = server.user("ann");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ids = runtime.block_on(async {
        let mut ann = Client::join(&server, &token, "ann").await;
        post_many(&mut ann, "ann", 5).await
    });
    let page = server.get(&format!("/history?after_id={}&limit=2", ids[0]), &token);
    assert_eq!(page.status, 200);
    let body = page.json();
    let got: Vec<i64> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, ids[1..3], "the oldest first");
    assert_eq!(body["has_more"], true);
    assert_eq!(body["next_after_id"], ids[2]);
    assert_eq!(
        (body["next_offset"].clone(), body["next_before_id"].clone()),
        (Value::Null, Value::Null)
    );
    let last = server
        .get(&format!("/history?after_id={}&limit=2", ids[2]), &token)
        .json();
    assert_eq!(last["has_more"], false);
    assert_eq!(last["next_after_id"], ids[4]);
    let beyond = server.get(&format!("/history?after_id={}", ids[4]), &token).json();
    assert_eq!(beyond["messages"], serde_json::json!([]));
    assert_eq!(beyond["next_after_id"], ids[4], "where to ask again");
    assert_eq!(
        server.get("/history?offset=0", &token).json()["next_after_id"],
        Value::Null
    );
    for bad in [
        "after_id=1&before_id=3",
        "after_id=1&offset=0",
        "after_id=-2",
        "after_id=1&limit=101",
    ] {
        assert_eq!(server.get(&format!("/history?{bad}"), &token).status, 422, "{bad}");
    }
}

#[tokio::test]
async fn a_shutdown_tells_nobody_that_anyone_left() {
    let mut server = Server::start();
    let (ann_token, bob_token) = (server.user("ann"), server.user("bob"));
    let mut ann = Client::join(&server, &ann_token, "ann").await;
    let mut bob = Client::join(&server, &bob_token, "bob").await;
    ann.wait_for(|e| is(e, "join") && e["username"] == "bob").await;
    server.signal(libc::SIGTERM);
    for client in [&mut ann, &mut bob] {
        let (events, code) = client.closed().await;
        assert_eq!(code, 1001);
        assert!(!events.iter().any(|e| is(e, "leave")), "{events:?}");
        assert_eq!(events.last().unwrap()["code"], "server_shutdown");
    }
    assert_eq!(server.wait_exit(Duration::from_secs(15)), Some(0));
}

#[tokio::test]
async fn a_client_resumes_across_a_sigkill_and_restart_without_losing_an_acknowledged_message() {
    let server = Server::start_with(&["--ws-rate-limit=0"]);
    let (ann_token, bob_token) = (server.user("ann"), server.user("bob"));
    let mut bob = Client::join(&server, &bob_token, "bob").await;
    let seen = bob.post("bob", "before").await;
    let mut ann = Client::join(&server, &ann_token, "ann").await;
    let acked = post_many(&mut ann, "ann", 50).await;
    let server = server.kill_and_restart();
    let mut bob = Client::resume(&server, &bob_token, &format!("after_id={seen}")).await;
    assert_eq!(message_ids(&mut bob, acked.len()).await, acked);
    let mut ann = Client::join(&server, &ann_token, "ann").await;
    let live = ann.post("ann", "after the crash").await;
    assert!(live > *acked.last().unwrap());
    assert_eq!(message_ids(&mut bob, 1).await, [live]);
}

/// A tiny deterministic generator, seeded from the clock and printed, so a
/// failing run can be repeated.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Three clients that post without pause (a few milliseconds apart) until
/// `stop`, recording the ids of their acknowledged messages in `acked`.
fn spawn_senders(
    server: &Arc<Server>,
    acked: Arc<Mutex<BTreeSet<i64>>>,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..3)
        .map(|s| {
            let name = format!("sender{s}");
            let token = server.user(&name);
            let (server, acked, stop) = (server.clone(), acked.clone(), stop.clone());
            tokio::spawn(async move {
                let mut client = Client::join(&server, &token, &name).await;
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let id = client.post(&name, &format!("{name} {n}")).await;
                    acked.lock().unwrap().insert(id);
                    n += 1;
                    // Fast enough to keep the writer busy, slow enough that a
                    // reader never falls the 1000 messages behind of a resync.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        })
        .collect()
}

/// Three senders post while sockets open with `?last=K`, K at random: each
/// socket's messages, backlog then live, must be consecutive ids (only the
/// senders post, and ids have no holes), so the seam dropped and repeated
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn last_joins_the_live_stream_without_a_gap_under_concurrent_senders() {
    let server = Arc::new(Server::start_with(&["--ws-rate-limit=0"]));
    let token = server.user("reader");
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    let mut rng = Rng(seed);
    let (acked, stop) = (Arc::new(Mutex::new(BTreeSet::new())), Arc::new(AtomicBool::new(false)));
    let senders = spawn_senders(&server, acked.clone(), stop.clone());
    let mut client = Client::connect(&server, &token).await;
    message_ids(&mut client, 100).await;
    for _ in 0..40 {
        let k = 1 + rng.below(100) as usize;
        let mut client = Client::resume(&server, &token, &format!("last={k}")).await;
        let ids = message_ids(&mut client, k + 20).await;
        let expected: Vec<i64> = (ids[0]..ids[0] + ids.len() as i64).collect();
        assert_eq!(ids, expected, "last={k}: consecutive across the seam (seed {seed})");
    }
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.await.unwrap();
    }
}

/// Three senders post without pause while a reader drops its socket at
/// random moments (sometimes mid-read, sometimes right after the
/// handshake) and resumes with the last id it saw, many times. At the end
/// the reader must have seen every acknowledged message exactly once, in
/// ascending order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resuming_at_random_moments_under_concurrent_senders_sees_each_message_once_in_order() {
    let server = Arc::new(Server::start_with(&["--ws-rate-limit=0"]));
    let reader_token = server.user("reader");
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    println!("seed {seed}");
    let mut rng = Rng(seed);
    let mut client = Client::resume(&server, &reader_token, "after_id=0").await;
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let senders = spawn_senders(&server, acked.clone(), stop.clone());
    let mut received: Vec<i64> = Vec::new();
    for _ in 0..120 {
        let until = Instant::now() + Duration::from_millis(rng.below(40));
        while let Ok(Some(frame)) = timeout(until.saturating_duration_since(Instant::now()), client.ws.next()).await {
            if let Message::Text(text) = frame.unwrap() {
                let event: Value = serde_json::from_str(&text).unwrap();
                assert!(!is(&event, "resync"), "never this far behind");
                if is(&event, "message") {
                    received.push(event["id"].as_i64().unwrap());
                }
            }
        }
        if rng.below(2) == 0 {
            let _ = client.ws.close(None).await;
        }
        drop(client);
        let after = received.last().copied().unwrap_or(0);
        client = Client::resume(&server, &reader_token, &format!("after_id={after}")).await;
    }
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.await.unwrap();
    }
    let acked: Vec<i64> = acked.lock().unwrap().iter().copied().collect();
    assert!(acked.len() > 100, "the senders kept posting: {}", acked.len());
    let newest = *acked.last().unwrap();
    let deadline = Instant::now() + WAIT;
    while received.last() != Some(&newest) {
        assert!(Instant::now() < deadline, "never caught up");
        let event = client.event().await;
        if is(&event, "message") {
            received.push(event["id"].as_i64().unwrap());
        }
    }
    assert!(
        received.windows(2).all(|pair| pair[0] < pair[1]),
        "ascending, no duplicate (seed {seed})"
    );
    let first_difference = received.iter().zip(&acked).position(|(got, sent)| got != sent);
    assert_eq!(
        (received.len(), first_difference),
        (acked.len(), None),
        "every acknowledged message exactly once (seed {seed})"
    );
}
