//! Cluster mode (cargo feature `postgres`): two server processes on one
//! PostgreSQL 15 serve one room. Each test starts its own PostgreSQL from
//! the machine's packages (`bash .ci/run` runs them).
#![cfg(feature = "postgres")]

mod common;

use common::postgres::Postgres;
use common::ws::{is, Client};
use common::{Server, PASSWORD};

/// Two nodes on `postgres` and one uploads directory (the first node's),
/// without the per-connection rate limit (the tests send bursts).
fn two_nodes(postgres: &Postgres) -> (Server, Server) {
    let node = |more: &[&str]| Server::start_with(&[&["--db", &postgres.url, "--ws-rate-limit", "0"], more].concat());
    let first = node(&[]);
    let second = node(&["--uploads-dir", first.uploads_dir().to_str().unwrap()]);
    (first, second)
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
    let (a, b) = two_nodes(&postgres);
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
    let (a, b) = two_nodes(&postgres);
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

// The shared uploads directory: its marker, and start-up sweeps that spare
// other nodes' uploads in flight.

/// The marker file the first node writes into the cluster's uploads
/// directory.
const MARKER: &str = ".chat-cluster";

/// A name shaped like an upload's id, distinct for each `seed`.
fn id_like(seed: &str) -> String {
    common::sha256_hex(seed.as_bytes())[..32].to_string()
}

/// Runs a node that must refuse to start; returns its exit code and what it
/// wrote on stderr.
fn refused_start(args: &[&str]) -> (Option<i32>, String) {
    use std::process::{Command, Stdio};
    let mut command = Command::new(env!("CARGO_BIN_EXE_chat-server"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CHAT_") {
            command.env_remove(key);
        }
    }
    let mut child = command
        .env("CHAT_ADDR", "127.0.0.1:0")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the node did not stop by itself");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (output.status.code(), String::from_utf8(output.stderr).unwrap())
}

#[test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
fn a_node_on_another_uploads_directory_refuses_to_start_in_one_line_naming_it() {
    let postgres = Postgres::start();
    let first = Server::start_with(&["--db", &postgres.url]);
    let marked = std::fs::read_to_string(first.uploads_dir().join(MARKER)).unwrap();
    assert_eq!(
        marked.trim().len(),
        32,
        "the first node marked its directory: {marked:?}"
    );
    let elsewhere = tempfile::tempdir().unwrap();
    // A new, empty directory: not the one the cluster already has.
    let empty = elsewhere.path().join("empty");
    // Another cluster's: its marker names another id.
    let foreign = elsewhere.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join(MARKER), format!("{}\n", id_like("another cluster"))).unwrap();
    for dir in [&empty, &foreign] {
        let dir = dir.to_str().unwrap();
        let (code, stderr) = refused_start(&["--db", &postgres.url, "--uploads-dir", dir]);
        assert_eq!(code, Some(1), "{dir}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{dir}: {stderr}");
        assert!(stderr.starts_with("chat-server: "), "{stderr}");
        assert!(
            stderr.contains(&format!("uploads directory {dir} is not this cluster's")),
            "{stderr}"
        );
    }
    assert!(!empty.exists(), "a refused node leaves nothing behind");
    let second = Server::start_with(&[
        "--db",
        &postgres.url,
        "--uploads-dir",
        first.uploads_dir().to_str().unwrap(),
    ]);
    assert_eq!(
        second.get("/healthz", "").status,
        200,
        "the cluster's own directory is accepted"
    );
}

#[test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
fn a_starting_node_sweeps_its_own_and_stale_leftovers_and_spares_other_nodes_recent_ones() {
    use std::time::{Duration, SystemTime};

    let postgres = Postgres::start();
    let first = Server::start_with(&["--db", &postgres.url]);
    let uploads = first.uploads_dir();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let plant = |name: &str, age: Duration| {
        let file = std::fs::File::create(uploads.join(name)).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
    };
    let (fresh, stale) = (Duration::from_secs(10), Duration::from_secs(2 * 60 * 60));
    // Left by the node about to start, in an earlier life on the same port.
    let own = format!(".tmp-{}_{port}-{}", host.trim(), id_like("own"));
    plant(&own, fresh);
    // Another node's upload in flight, and one it abandoned long ago.
    let in_flight = format!(".tmp-elsewhere_8001-{}", id_like("in flight"));
    let abandoned = format!(".tmp-elsewhere_8001-{}", id_like("abandoned"));
    plant(&in_flight, fresh);
    plant(&abandoned, stale);
    // Files without a row: one maybe renamed a moment ago by another node
    // that has not yet inserted its row, one a crash left long ago.
    let (renamed, orphan) = (id_like("renamed"), id_like("orphan"));
    plant(&renamed, fresh);
    plant(&orphan, stale);
    let second = Server::start_with(&[
        "--db",
        &postgres.url,
        "--uploads-dir",
        uploads.to_str().unwrap(),
        "--addr",
        &format!("127.0.0.1:{port}"),
    ]);
    let mut left: Vec<String> = std::fs::read_dir(&uploads)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    let mut expected = vec![MARKER.to_string(), in_flight, renamed];
    expected.sort();
    assert_eq!(left, expected);
    second.wait_for_log("removed 2 unfinished upload(s) and 1 file(s) without a record");
    second.wait_for_log("left 2 file(s) of other nodes' uploads");
}

/// An upload held open mid-body on one node while another node starts on
/// the same directory: the starting node's sweep leaves its temp file
/// alone, the upload completes, and the file downloads from the other node.
#[test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
fn a_node_starting_during_another_nodes_upload_leaves_it_to_complete() {
    use std::io::Write;

    let postgres = Postgres::start();
    let a = Server::start_with(&["--db", &postgres.url]);
    let token = a.user("ann");
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let boundary = "cluster-upload-boundary";
    let opening = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let closing = format!("\r\n--{boundary}--\r\n");
    let mut stream = std::net::TcpStream::connect(a.addr).unwrap();
    write!(
        stream,
        "POST /files/upload HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n{opening}",
        opening.len() + content.len() + closing.len()
    )
    .unwrap();
    let (sent, rest) = content.split_at(content.len() / 2);
    stream.write_all(sent).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let temp = loop {
        let names = a.stored_files();
        if let Some(temp) = names.into_iter().find(|name| name.starts_with(".tmp-")) {
            break temp;
        }
        assert!(std::time::Instant::now() < deadline, "no temp file appeared");
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let b = Server::start_with(&[
        "--db",
        &postgres.url,
        "--uploads-dir",
        a.uploads_dir().to_str().unwrap(),
    ]);
    assert!(
        a.uploads_dir().join(&temp).is_file(),
        "the starting node removed an upload in flight"
    );
    stream.write_all(rest).unwrap();
    stream.write_all(closing.as_bytes()).unwrap();
    let response = common::read_response(&mut std::io::BufReader::new(stream), false).unwrap();
    assert_eq!(response.status, 201, "the upload completes: {}", response.text());
    let id = response.json()["id"].as_str().unwrap().to_string();
    accepted(&b, &token);
    let download = b.get(&format!("/files/{id}"), &token);
    assert_eq!(download.status, 200, "{}", download.text());
    assert!(download.body == content, "the bytes downloaded from the other node");
}

#[test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
fn a_share_link_made_on_one_node_works_on_the_other_until_revoked_on_the_first() {
    let postgres = Postgres::start();
    let (a, b) = two_nodes(&postgres);
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

#[test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
fn two_first_nodes_starting_together_on_one_empty_directory_both_start() {
    let postgres = Postgres::start();
    let shared = tempfile::tempdir().unwrap();
    let uploads = shared.path().join("uploads");
    let start = || {
        let (url, uploads) = (postgres.url.clone(), uploads.to_str().unwrap().to_string());
        std::thread::spawn(move || Server::start_with(&["--db", &url, "--uploads-dir", &uploads]))
    };
    let (a, b) = (start(), start());
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    assert_eq!(a.get("/healthz", "").status, 200);
    assert_eq!(b.get("/healthz", "").status, 200);
    let marked = std::fs::read_to_string(uploads.join(MARKER)).unwrap();
    assert_eq!(marked.trim().len(), 32, "{marked:?}");
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
async fn presence_counts_across_nodes_again_after_a_postgresql_restart() {
    let postgres = Postgres::start();
    let (a, b) = two_nodes(&postgres);
    let (_, bob) = user_on_both(&a, &b, "bob");
    let (ann, _) = user_on_both(&a, &b, "ann");
    let cid = a.user("cid");
    postgres.restart();
    healthy_again(&[&a, &b]).await;
    let mut on_b = Client::join(&b, &bob, "bob").await;
    let _ann = Client::join(&a, &ann, "ann").await;
    // The nodes trust what they read again 2 s after their last failed poll.
    let event = presence_event(&mut on_b, std::time::Duration::from_secs(10)).await;
    assert!(presence(&event, "join", "ann", 2), "{event}");
    let _cid = Client::join(&a, &cid, "cid").await;
    let event = presence_event(&mut on_b, PRESENCE).await;
    assert!(presence(&event, "join", "cid", 3), "{event}");
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

// PostgreSQL restarted in the middle of a send storm.

/// What one client of a storm saw: every id, in the order received across
/// its reconnections, and the ids of its own messages among them (its
/// acknowledgements).
struct Seen {
    ids: Vec<i64>,
    acknowledged: Vec<i64>,
    /// Sockets it opened.
    connections: u32,
}

/// One client of a storm on the node at `addr`: sends `sends` messages
/// (`{name}-{n}`, a few at a time, paced), reads everything, and whenever
/// its socket is closed (1011 while PostgreSQL is away) or its handshake
/// refused (503), connects again to the same node with `after_id` of the
/// last id it saw. Returns once it has sent everything and `stop` is set.
async fn storm_client(
    addr: std::net::SocketAddr,
    token: String,
    name: &'static str,
    sends: u32,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Seen {
    use futures_util::{SinkExt, StreamExt};
    use std::sync::atomic::Ordering;
    use std::time::Duration;
    use tokio_tungstenite::tungstenite::Message;

    let mut seen = Seen {
        ids: Vec::new(),
        acknowledged: Vec::new(),
        connections: 0,
    };
    let mut sent = 0;
    loop {
        let done = sent >= sends && stop.load(Ordering::Relaxed);
        if done {
            return seen;
        }
        let after = seen.ids.last().copied().unwrap_or(0);
        let url = format!("ws://{addr}/ws/chat?token={token}&after_id={after}");
        let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        seen.connections += 1;
        let mut in_flight = 0;
        loop {
            if sent >= sends && stop.load(Ordering::Relaxed) {
                break;
            }
            if sent < sends && in_flight < 4 {
                if ws.send(Message::text(format!("{name}-{sent}"))).await.is_err() {
                    break;
                }
                sent += 1;
                in_flight += 1;
            }
            let wait = if sent < sends && in_flight < 4 { 5 } else { 200 };
            match tokio::time::timeout(Duration::from_millis(wait), ws.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    let event: serde_json::Value = serde_json::from_str(&text).unwrap();
                    if is(&event, "message") {
                        let id = event["id"].as_i64().unwrap();
                        seen.ids.push(id);
                        if event["content"].as_str().unwrap().starts_with(&format!("{name}-")) {
                            seen.acknowledged.push(id);
                            in_flight = (in_flight - 1).max(0);
                        }
                    }
                }
                Ok(Some(Ok(_))) | Err(_) => {}
                Ok(None | Some(Err(_))) => break,
            }
        }
        // As a client would, not at once.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
async fn postgresql_restarted_mid_storm_loses_nothing_acknowledged_and_every_client_sees_one_gapless_sequence() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let postgres = Postgres::start();
    let (a, b) = two_nodes(&postgres);
    let (ann_a, ann_b) = user_on_both(&a, &b, "ann");
    let (bob_a, bob_b) = user_on_both(&b, &a, "bob");
    let stop = Arc::new(AtomicBool::new(false));
    let clients = [
        (a.addr, ann_a.clone(), "ann", 300),
        (b.addr, bob_b.clone(), "bob", 300),
        (a.addr, bob_a, "reader on A", 0),
        (b.addr, ann_b, "reader on B", 0),
    ];
    let storm: Vec<_> = clients
        .into_iter()
        .map(|(addr, token, name, sends)| tokio::spawn(storm_client(addr, token, name, sends, stop.clone())))
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    tokio::task::block_in_place(|| postgres.restart());
    healthy_again(&[&a, &b]).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    for client in storm {
        seen.push(client.await.unwrap());
    }
    // The end of the storm: every client reads on up to this id.
    let mut last = Client::join(&a, &ann_a, "ann").await;
    let end = last.post("ann", "the end").await;
    let nodes = [(&a, &ann_a), (&b, &bob_b), (&a, &ann_a), (&b, &bob_b)];
    for ((node, token), client) in nodes.into_iter().zip(seen.iter_mut()) {
        let after = client.ids.last().copied().unwrap_or(0);
        let mut resumed = Client::resume(node, token, &format!("after_id={after}")).await;
        client
            .ids
            .extend(message_ids(&mut resumed, (end - after) as usize).await);
    }
    let expected: Vec<i64> = (1..=end).collect();
    for (i, client) in seen.iter().enumerate() {
        assert_eq!(client.ids, expected, "client {i}: one gapless sequence, nothing twice");
    }
    let acknowledged = seen[0].acknowledged.len() + seen[1].acknowledged.len();
    assert!(
        acknowledged >= 100,
        "a storm, not a trickle: {acknowledged} acknowledged"
    );
    for (i, client) in seen.iter().enumerate() {
        assert!(
            client.connections > 1,
            "client {i} was cut off by the restart and came back"
        );
    }
    for sender in &seen[..2] {
        for id in &sender.acknowledged {
            assert!(seen[3].ids.contains(id), "acknowledged {id} reached the other node");
        }
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
async fn a_socket_follows_its_session_through_a_refresh_made_on_the_other_node() {
    let postgres = Postgres::start();
    let a = Server::start_with(&["--db", &postgres.url, "--token-ttl=4"]);
    let uploads = a.uploads_dir();
    let b = Server::start_with(&[
        "--db",
        &postgres.url,
        "--token-ttl=4",
        "--uploads-dir",
        uploads.to_str().unwrap(),
    ]);
    let token = a.user("ann");
    accepted(&b, &token);
    let mut on_b = Client::join(&b, &token, "ann").await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let refreshed = a.request("POST", "/token/refresh", Some(&token), None);
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    // Past the first token's expiry (at most 4 s after the login, `exp`
    // being whole seconds): the socket on B is still open, following the
    // newer token (at least 5 s after the login) issued by A.
    let quiet = tokio::time::timeout(std::time::Duration::from_millis(2_500), on_b.event()).await;
    assert!(
        quiet.is_err(),
        "the socket on B was closed or told something: {quiet:?}"
    );
    let (events, code) = on_b.closed().await;
    assert_eq!(code, 4001, "and it closes when the newer token expires: {events:?}");
}
