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
    for i in 1..=3 {
        assert_eq!(poster.post("ann", &format!("before {i}")).await, i);
    }
    postgres.restart();
    healthy_again(&[&a, &b]).await;
    // The sockets open across the restart may have been closed (1011):
    // clients carry on from the last id they saw, as a client would.
    let mut poster = Client::resume(&a, &on_a, "after_id=3").await;
    let mut reader = Client::resume(&b, &on_b, "after_id=0").await;
    for i in 4..=6 {
        assert_eq!(poster.post("ann", &format!("after {i}")).await, i);
    }
    assert_eq!(
        message_ids(&mut reader, 6).await,
        [1, 2, 3, 4, 5, 6],
        "no gap, no twin across the restart"
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
async fn while_postgresql_is_down_nodes_answer_503_and_close_chat_sockets_with_1011_then_recover_by_themselves() {
    let postgres = Postgres::start();
    let (a, b) = two_nodes(&postgres);
    let (on_a, on_b) = user_on_both(&a, &b, "ann");
    let mut poster = Client::join(&a, &on_a, "ann").await;
    let mut reader = Client::join(&b, &on_b, "ann").await;
    for i in 1..=3 {
        assert_eq!(poster.post("ann", &format!("before {i}")).await, i);
    }
    assert_eq!(message_ids(&mut reader, 3).await, [1, 2, 3]);
    postgres.stop();
    for (node, client) in [("A", &mut poster), ("B", &mut reader)] {
        let (events, code) = client.closed().await;
        assert_eq!(code, 1011, "node {node}: {events:?}");
        let last = events.last().unwrap_or_else(|| panic!("node {node}: no error event"));
        assert!(
            is(last, "error") && last["code"] == "internal_error",
            "node {node}: {events:?}"
        );
    }
    for (node, token) in [(&a, &on_a), (&b, &on_b)] {
        assert_eq!(node.get("/healthz", "").status, 503);
        let login = node.login("ann", PASSWORD);
        assert_eq!(login.status, 503, "a login needs the database: {}", login.text());
        assert!(login.json()["detail"].is_string());
        let upgrade = node.raw(common::ws::handshake(node, &format!("/ws/chat?token={token}"), &[]).as_bytes());
        assert_eq!(upgrade.status, 503, "no chat socket without the database");
    }
    postgres.start_again();
    healthy_again(&[&a, &b]).await;
    let mut poster = Client::resume(&a, &on_a, "after_id=3").await;
    let mut reader = Client::resume(&b, &on_b, "after_id=3").await;
    for i in 4..=6 {
        assert_eq!(poster.post("ann", &format!("after {i}")).await, i);
    }
    assert_eq!(message_ids(&mut reader, 3).await, [4, 5, 6], "no gap, no twin");
}

/// Waits until every node answers `/healthz` 200 again (10 s at most).
async fn healthy_again(nodes: &[&Server]) {
    for node in nodes {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while node.get("/healthz", "").status != 200 {
            assert!(std::time::Instant::now() < deadline, "the node did not recover");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
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

#[test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
fn a_cluster_node_keeps_no_sqlite_file_and_leaves_the_database_size_to_postgresql() {
    use std::io::{Read, Write};

    let postgres = Postgres::start();
    let node = Server::start_with(&["--db", &postgres.url, "--metrics-addr=127.0.0.1:0"]);
    node.user("ann");
    let logs = node.wait_for_log("/metrics\n");
    let addr = logs
        .lines()
        .find_map(|line| line.split("metrics on http://").nth(1))
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no metrics address in the logs:\n{logs}"));
    let mut scrape = std::net::TcpStream::connect(addr).unwrap();
    scrape
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    scrape.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("chat_messages_committed_total"), "{text}");
    assert!(
        !text.contains("chat_database_size_bytes"),
        "no SQLite file to measure: {text}"
    );
    let left: Vec<_> = std::fs::read_dir(node.dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with("chat.db"))
        .collect();
    assert!(left.is_empty(), "SQLite files next to a cluster node: {left:?}");
}

// Files and share links across nodes.

/// Two nodes on `postgres` sharing the uploads directory `uploads`, as a
/// cluster's nodes share one volume.
fn two_nodes_sharing_uploads(postgres: &Postgres, uploads: &std::path::Path) -> (Server, Server) {
    let uploads = uploads.to_str().unwrap();
    let node = || Server::start_with(&["--db", &postgres.url, "--uploads-dir", uploads, "--ws-rate-limit", "0"]);
    (node(), node())
}

fn file_id(file: &serde_json::Value) -> String {
    file["id"].as_str().unwrap().to_string()
}

/// The ids of the files `GET /files{query}` lists on `node`.
fn listed(node: &Server, token: &str, query: &str) -> Vec<String> {
    let response = node.get(&format!("/files{query}"), token);
    assert_eq!(response.status, 200, "{}", response.text());
    response.json().as_array().unwrap().iter().map(file_id).collect()
}

/// Polls `check` (true once the change is seen) until it holds, for at
/// most the contract's 2 s.
fn within_two_seconds(what: &str, mut check: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !check() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{what}: not seen after 2 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
fn a_file_uploaded_on_one_node_downloads_on_the_other_and_is_listed_there_once_shared() {
    let postgres = Postgres::start();
    let uploads = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes_sharing_uploads(&postgres, uploads.path());
    let (ann_a, ann_b) = user_on_both(&a, &b, "ann");
    let (_, bob_b) = user_on_both(&a, &b, "bob");
    let content: Vec<u8> = (0..300_000u32).map(|n| (n * 7 % 251) as u8).collect();
    let uploaded = a.upload(&ann_a, "quarterly report.txt", &content);
    let id = file_id(&uploaded);
    assert_eq!(uploaded["sha256"], common::sha256_hex(&content));

    let downloaded = b.get(&format!("/files/{id}"), &ann_b);
    assert_eq!(downloaded.status, 200, "{}", downloaded.text());
    assert!(downloaded.body == content, "the same bytes on the other node");
    assert_eq!(common::sha256_hex(&downloaded.body), uploaded["sha256"]);
    let etag = format!("\"{}\"", uploaded["sha256"].as_str().unwrap());
    assert_eq!(downloaded.header("etag"), Some(etag.as_str()));
    let disposition = downloaded.header("content-disposition").unwrap();
    assert!(
        disposition.contains("quarterly%20report.txt"),
        "the original name: {disposition}"
    );
    assert_eq!(listed(&b, &ann_b, ""), [id.as_str()], "the uploader's listing");
    assert_eq!(b.get(&format!("/files/{id}"), &bob_b).status, 404, "private");
    assert!(listed(&b, &bob_b, "?scope=room").is_empty());

    let shared = a.request("POST", &format!("/files/{id}/share"), Some(&ann_a), None);
    assert_eq!(shared.status, 201, "{}", shared.text());
    assert_eq!(listed(&b, &bob_b, "?scope=room"), [id.as_str()]);
    assert_eq!(b.get("/files?scope=room", &bob_b).json()[0]["shared"], true);
    assert!(b.get(&format!("/files/{id}"), &bob_b).body == content, "shared");
}

#[tokio::test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
async fn a_file_deleted_on_one_node_leaves_the_other_nodes_cached_history_within_two_seconds() {
    let postgres = Postgres::start();
    let uploads = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes_sharing_uploads(&postgres, uploads.path());
    let (ann_a, ann_b) = user_on_both(&a, &b, "ann");
    let id = file_id(&a.upload(&ann_a, "gone.txt", b"soon gone"));
    let mut poster = Client::join(&a, &ann_a, "ann").await;
    let mut watcher = Client::connect(&b, &ann_b).await;
    let shared = a.request("POST", &format!("/files/{id}/share"), Some(&ann_a), None);
    assert_eq!(shared.status, 201, "{}", shared.text());
    let shared_id = shared.json()["id"].as_i64().unwrap();
    let live = loop {
        let event = watcher.event().await;
        if is(&event, "message") {
            break event;
        }
    };
    assert_eq!(live["id"].as_i64(), Some(shared_id));
    assert_eq!(live["file"]["id"], id, "delivered on B with its file");
    for i in 0..4 {
        poster.post("ann", &format!("after {i}")).await;
    }
    // The sealed page below `before` holds the file message; both it and
    // the newest page are read twice on B, so B serves them from its caches.
    let before = shared_id + 2;
    let sealed = format!("/history?before_id={before}&limit=2");
    let file_of = |page: &serde_json::Value| {
        page.as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == shared_id)
            .expect("the file message")["file"]
            .clone()
    };
    let sealed_file = || file_of(&b.get(&sealed, &ann_b).json()["messages"]);
    let newest_file = || file_of(&b.get("/history/last20", &ann_b).json());
    for _ in 0..2 {
        assert_eq!(sealed_file()["id"], id);
        assert_eq!(newest_file()["id"], id);
    }
    assert_eq!(b.get(&format!("/files/{id}"), &ann_b).status, 200);

    let deleted = a.request("DELETE", &format!("/files/{id}"), Some(&ann_a), None);
    assert_eq!(deleted.status, 204);
    within_two_seconds("the sealed page on B", || sealed_file().is_null());
    within_two_seconds("the newest page on B", || newest_file().is_null());
    assert_eq!(b.get(&format!("/files/{id}"), &ann_b).status, 404);
    assert!(listed(&b, &ann_b, "").is_empty());
    assert!(listed(&b, &ann_b, "?scope=room").is_empty());
    let message = b.get(&sealed, &ann_b).json()["messages"][0].clone();
    assert_eq!(
        (message["id"].as_i64(), message["content"].as_str()),
        (Some(shared_id), Some("gone.txt")),
        "the message stays, without its file"
    );
    assert!(message.get("file").is_none(), "{message}");
}

#[test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
fn a_share_link_made_on_one_node_works_on_the_other_until_revoked_on_the_first() {
    let postgres = Postgres::start();
    let uploads = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes_sharing_uploads(&postgres, uploads.path());
    let ann = a.user("ann");
    let id = file_id(&a.upload(&ann, "linked.txt", b"by link"));
    let created = a.request("POST", &format!("/files/{id}/links"), Some(&ann), None);
    assert_eq!(created.status, 201, "{}", created.text());
    let created = created.json();
    let url = created["url"].as_str().unwrap();
    let by_link = b.request("GET", url, None, None);
    assert_eq!((by_link.status, by_link.body.as_slice()), (200, &b"by link"[..]));

    let revoke = format!("/files/{id}/links/{}", created["id"].as_str().unwrap());
    assert_eq!(a.request("DELETE", &revoke, Some(&ann), None).status, 204);
    within_two_seconds("the revocation on B", || {
        b.request("GET", url, None, None).status == 410
    });
    assert_eq!(b.request("HEAD", url, None, None).status, 410);

    let other = a
        .request("POST", &format!("/files/{id}/links"), Some(&ann), None)
        .json();
    let other = other["url"].as_str().unwrap();
    assert_eq!(b.request("GET", other, None, None).status, 200);
    assert_eq!(
        a.request("DELETE", &format!("/files/{id}"), Some(&ann), None).status,
        204
    );
    within_two_seconds("the deletion on B", || {
        b.request("GET", other, None, None).status == 404
    });
}
