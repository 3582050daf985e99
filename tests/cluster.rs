//! Cluster mode (cargo feature `postgres`): two server processes on one
//! PostgreSQL 15 serve one room. Each test starts its own PostgreSQL from
//! the machine's packages (`bash .ci/run` runs them).
#![cfg(feature = "postgres")]

mod common;

use common::postgres::Postgres;
use common::ws::{is, Client};
use common::{Server, PASSWORD};

/// Two nodes on `postgres`, without the per-connection rate limit (the
/// tests send bursts).
fn two_nodes(postgres: &Postgres) -> (Server, Server) {
    let node = || Server::start_with(&["--db", &postgres.url, "--ws-rate-limit", "0"]);
    (node(), node())
}

/// Registers `username` through `first` and logs in on each node.
fn user_on_both(first: &Server, second: &Server, username: &str) -> (String, String) {
    let token_a = first.user(username);
    let login = second.login(username, PASSWORD);
    assert_eq!(login.status, 200, "login on the other node: {}", login.text());
    (token_a, login.json()["access_token"].as_str().unwrap().to_string())
}

/// The ids of the next `count` `message` events.
async fn message_ids(client: &mut Client, count: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    while ids.len() < count {
        let event = client.event().await;
        if is(&event, "message") {
            ids.push(event["id"].as_i64().unwrap());
        }
    }
    ids
}

#[tokio::test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
async fn concurrent_senders_on_two_nodes_are_seen_by_every_client_in_one_gapless_id_order() {
    let postgres = Postgres::start();
    let (a, b) = two_nodes(&postgres);
    let (ann_a, ann_b) = user_on_both(&a, &b, "ann");
    let (bob_a, bob_b) = user_on_both(&b, &a, "bob");
    let mut on_a = Client::join(&a, &ann_a, "ann").await;
    let mut on_b = Client::join(&b, &bob_a, "bob").await;
    let mut sender_a = Client::connect(&a, &bob_b).await;
    let mut sender_b = Client::connect(&b, &ann_b).await;
    const EACH: usize = 30;
    for i in 0..EACH {
        sender_a.say(&format!("a{i}")).await;
        sender_b.say(&format!("b{i}")).await;
    }
    let expected: Vec<i64> = (1..=2 * EACH as i64).collect();
    assert_eq!(message_ids(&mut on_a, 2 * EACH).await, expected, "a client on node A");
    assert_eq!(message_ids(&mut on_b, 2 * EACH).await, expected, "a client on node B");
    assert_eq!(
        message_ids(&mut sender_a, 2 * EACH).await,
        expected,
        "a sender sees its own in the same order"
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
async fn a_client_resuming_on_the_other_node_misses_nothing_and_sees_nothing_twice() {
    let postgres = Postgres::start();
    let (a, b) = two_nodes(&postgres);
    let (ann_a, ann_b) = user_on_both(&a, &b, "ann");
    let mut poster = Client::join(&a, &ann_a, "ann").await;
    for i in 1..=5 {
        assert_eq!(poster.post("ann", &format!("m{i}")).await, i);
    }
    let mut resumed = Client::resume(&b, &ann_b, "after_id=2").await;
    assert_eq!(message_ids(&mut resumed, 3).await, [3, 4, 5], "the replay");
    assert_eq!(poster.post("ann", "m6").await, 6);
    assert_eq!(
        message_ids(&mut resumed, 1).await,
        [6],
        "then live, from the other node"
    );
    let history = b.get("/history?after_id=0&limit=10", &ann_b);
    assert_eq!(history.status, 200);
    let ids: Vec<i64> = history.json()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
}

#[test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
fn a_session_revoked_on_one_node_is_refused_on_the_other_within_two_seconds() {
    let postgres = Postgres::start();
    let (a, b) = two_nodes(&postgres);
    let (on_a, on_b) = user_on_both(&a, &b, "ann");
    assert_eq!(b.get("/me", &on_b).status, 200);
    let logout = a.request("POST", "/logout/all", Some(&on_a), None);
    assert_eq!(logout.status, 204, "{}", logout.text());
    let revoked = std::time::Instant::now();
    while b.get("/me", &on_b).status == 200 {
        assert!(
            revoked.elapsed() < std::time::Duration::from_secs(2),
            "still accepted after 2 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(b.get("/me", &on_b).status, 401);
}

#[tokio::test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
async fn after_postgresql_restarts_the_nodes_reconnect_and_deliver_without_a_gap() {
    let postgres = Postgres::start();
    let (a, b) = two_nodes(&postgres);
    let (on_a, on_b) = user_on_both(&a, &b, "ann");
    let mut poster = Client::join(&a, &on_a, "ann").await;
    let mut reader = Client::join(&b, &on_b, "ann").await;
    for i in 1..=3 {
        assert_eq!(poster.post("ann", &format!("before {i}")).await, i);
    }
    postgres.restart();
    for node in [&a, &b] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while node.get("/healthz", "").status != 200 {
            assert!(std::time::Instant::now() < deadline, "the node did not recover");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    for i in 4..=6 {
        assert_eq!(poster.post("ann", &format!("after {i}")).await, i);
    }
    assert_eq!(
        message_ids(&mut reader, 6).await,
        [1, 2, 3, 4, 5, 6],
        "no gap, no twin across the restart"
    );
}

#[test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
fn a_token_issued_by_one_node_is_accepted_by_the_other_within_two_seconds() {
    let postgres = Postgres::start();
    let (a, b) = two_nodes(&postgres);
    let token = a.user("ann");
    accepted(&b, &token);
    assert_eq!(b.get("/me", &token).json()["username"], "ann");
}

/// Polls `GET /me` on `node` until it accepts `token` (a login made on
/// another node reaches it within 2 s).
fn accepted(node: &Server, token: &str) {
    let started = std::time::Instant::now();
    while node.get("/me", token).status != 200 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "still refused after 2 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
async fn a_node_killed_under_a_send_storm_loses_nothing_acknowledged_and_its_client_resumes_elsewhere() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;

    let postgres = Postgres::start();
    let (a, b) = two_nodes(&postgres);
    let token = a.user("ann");
    accepted(&b, &token);
    let mut reader = Client::connect(&b, &token).await;
    let mut poster = Client::connect(&a, &token).await;
    for i in 0..300 {
        poster.say(&format!("m{i}")).await;
    }
    let mut acknowledged = message_ids(&mut poster, 20).await;
    a.signal(libc::SIGKILL);
    // Whatever else reached the poster before its socket died.
    while let Ok(Some(Ok(frame))) = tokio::time::timeout(std::time::Duration::from_secs(5), poster.ws.next()).await {
        if let Message::Text(text) = frame {
            let event: serde_json::Value = serde_json::from_str(&text).unwrap();
            if is(&event, "message") {
                acknowledged.push(event["id"].as_i64().unwrap());
            }
        }
    }
    let last = *acknowledged.last().unwrap();
    assert_eq!(acknowledged, (1..=last).collect::<Vec<_>>());
    assert_eq!(
        message_ids(&mut reader, last as usize).await,
        acknowledged,
        "the other node has them all, in order"
    );
    let mut resumed = Client::resume(&b, &token, &format!("after_id={last}")).await;
    resumed.say("after the crash").await;
    let mut rest = Vec::new();
    loop {
        let event = resumed.event().await;
        if is(&event, "message") {
            rest.push(event["id"].as_i64().unwrap());
            if event["content"] == "after the crash" {
                break;
            }
        }
    }
    let newest = *rest.last().unwrap();
    assert_eq!(
        rest,
        (last + 1..=newest).collect::<Vec<_>>(),
        "no gap, no twin after the resume"
    );
}

// Presence across nodes: `online`, `join` and `leave` count users of the
// whole cluster, eventually consistent within 2 s.

/// The contract's bound on presence across nodes.
const PRESENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// The next `join` or `leave` event on `client`, within `within`.
async fn presence_event(client: &mut Client, within: std::time::Duration) -> serde_json::Value {
    tokio::time::timeout(within, client.wait_for(|e| is(e, "join") || is(e, "leave")))
        .await
        .expect("no presence event in time")
}

/// Two nodes on `postgres`, bob connected to B, then ann to A, once B
/// has announced her (within 2 s): the nodes, bob's client and ann's.
async fn ann_on_a_seen_from_b(postgres: &Postgres) -> ((Server, Server), Client, Client) {
    let (a, b) = two_nodes(postgres);
    let (_, bob) = user_on_both(&a, &b, "bob");
    let (ann, _) = user_on_both(&a, &b, "ann");
    let mut on_b = Client::join(&b, &bob, "bob").await;
    let on_a = Client::join(&a, &ann, "ann").await;
    let event = presence_event(&mut on_b, PRESENCE).await;
    assert!(presence(&event, "join", "ann", 2), "{event}");
    ((a, b), on_b, on_a)
}

/// Whether `event` is `kind` of `username` with this `online` count.
fn presence(event: &serde_json::Value, kind: &str, username: &str, online: u64) -> bool {
    is(event, kind) && event["username"] == username && event["online"] == online
}

#[tokio::test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
async fn a_user_joining_on_one_node_is_announced_on_the_other_within_two_seconds() {
    let postgres = Postgres::start();
    let (_nodes, mut on_b, mut on_a) = ann_on_a_seen_from_b(&postgres).await;
    on_a.ws.close(None).await.unwrap();
    let event = presence_event(&mut on_b, PRESENCE).await;
    assert!(presence(&event, "leave", "ann", 1), "{event}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
async fn a_user_on_both_nodes_counts_once_and_leaves_with_their_last_socket() {
    let postgres = Postgres::start();
    let (a, b) = two_nodes(&postgres);
    let (bob, _) = user_on_both(&a, &b, "bob");
    let (_, cid) = user_on_both(&a, &b, "cid");
    let (ann_a, ann_b) = user_on_both(&a, &b, "ann");
    let mut bob = Client::join(&a, &bob, "bob").await;
    let mut cid = Client::join(&b, &cid, "cid").await;
    let event = presence_event(&mut bob, PRESENCE).await;
    assert!(presence(&event, "join", "cid", 2), "{event}");
    let mut ann_on_a = Client::join(&a, &ann_a, "ann").await;
    for observer in [&mut bob, &mut cid] {
        let event = observer.wait_for(|e| is(e, "join") && e["username"] == "ann").await;
        assert_eq!(event["online"], 3, "{event}");
    }
    // B knows ann by now: her second socket is news to nobody but itself.
    let mut ann_on_b = Client::connect(&b, &ann_b).await;
    let event = ann_on_b.event().await;
    assert!(presence(&event, "join", "ann", 3), "{event}");
    // Time for A to learn that ann is on B too.
    tokio::time::sleep(PRESENCE).await;
    ann_on_a.ws.close(None).await.unwrap();
    tokio::time::sleep(PRESENCE).await;
    bob.say("still three of us").await;
    for observer in [&mut bob, &mut cid] {
        let event = observer.event().await;
        assert!(
            is(&event, "message") && event["content"] == "still three of us",
            "closing one of two sockets announces nothing, got {event}"
        );
    }
    ann_on_b.ws.close(None).await.unwrap();
    for observer in [&mut cid, &mut bob] {
        let event = presence_event(observer, PRESENCE).await;
        assert!(presence(&event, "leave", "ann", 2), "{event}");
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
async fn the_users_of_a_killed_node_leave_the_other_node_once_its_heartbeat_is_stale() {
    let postgres = Postgres::start();
    let ((a, _b), mut on_b, _on_a) = ann_on_a_seen_from_b(&postgres).await;
    a.signal(libc::SIGKILL);
    // A heartbeat is stale after 5 s; the next read, within 0.5 s, drops it.
    let event = presence_event(&mut on_b, std::time::Duration::from_secs(8)).await;
    assert!(presence(&event, "leave", "ann", 1), "{event}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
async fn a_postgresql_restart_announces_no_leave_and_presence_goes_on_after_it() {
    let postgres = Postgres::start();
    let ((a, _b), mut on_b, _on_a) = ann_on_a_seen_from_b(&postgres).await;
    let cid = a.user("cid");
    postgres.restart();
    // Connected as the nodes recover: announced once they trust what they
    // read again, 2 s after their last failed poll.
    let _cid = Client::join(&a, &cid, "cid").await;
    let event = presence_event(&mut on_b, std::time::Duration::from_secs(10)).await;
    assert!(
        presence(&event, "join", "cid", 3),
        "ann never left, and a newcomer is announced: {event}"
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
async fn the_users_of_a_node_stopped_gracefully_leave_the_other_node_within_two_seconds() {
    let postgres = Postgres::start();
    let ((a, _b), mut on_b, mut on_a) = ann_on_a_seen_from_b(&postgres).await;
    a.signal(libc::SIGTERM);
    let (_, code) = on_a.closed().await;
    assert_eq!(code, 1001);
    // Well before a heartbeat goes stale (5 s): the node withdrew its users.
    let event = presence_event(&mut on_b, PRESENCE).await;
    assert!(presence(&event, "leave", "ann", 1), "{event}");
}
