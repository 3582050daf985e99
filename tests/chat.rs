//! Chat over WebSocket against the real server: the handshake and its
//! refusals, delivery and ordering, every close code of the contract, slow
//! consumers and durability.

mod common;

use std::io::Write;
use std::time::Duration;

use common::ws::{frame, handshake, is, read_until_close, upgrade_raw, Client};
use common::Server;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

fn contents(events: &[serde_json::Value]) -> Vec<&str> {
    events.iter().map(|e| e["content"].as_str().unwrap()).collect()
}

fn assert_rfc3339_millis(value: &serde_json::Value) {
    let text = value.as_str().unwrap();
    let bytes = text.as_bytes();
    assert!(
        text.len() == 24 && bytes[10] == b'T' && bytes[19] == b'.' && text.ends_with('Z'),
        "{text}"
    );
}

#[tokio::test]
async fn two_users_chat_one_leaves_a_third_joins_and_history_has_it_all() {
    let server = Server::start();
    let (alice, bob, carol) = (server.user("alice"), server.user("bob"), server.user("carol"));
    let mut a = Client::join(&server, &alice, "alice").await;
    let mut b = Client::join(&server, &bob, "bob").await;
    let joined = a.event().await;
    assert_eq!(
        joined,
        serde_json::json!({ "type": "join", "username": "bob", "online": 2 })
    );

    let hello = a.post("alice", "Hello").await;
    let seen = b.wait_for(|e| is(e, "message")).await;
    assert_eq!(
        (seen["id"].as_i64(), &seen["username"], &seen["content"]),
        (Some(hello), &"alice".into(), &"Hello".into())
    );
    assert_rfc3339_millis(&seen["created_at"]);

    b.ws.close(None).await.unwrap();
    while b.ws.next().await.is_some() {}
    let left = a.event().await;
    assert_eq!(
        left,
        serde_json::json!({ "type": "leave", "username": "bob", "online": 1 })
    );

    let more = a.post("alice", "Anyone still here?").await;
    let mut c = Client::join(&server, &carol, "carol").await;
    let joined = a.event().await;
    assert_eq!(
        joined,
        serde_json::json!({ "type": "join", "username": "carol", "online": 2 })
    );
    let hi = c.post("carol", "  Hi alice  ").await;
    let seen = a.wait_for(|e| is(e, "message")).await;
    assert_eq!((seen["id"].as_i64(), &seen["content"]), (Some(hi), &"Hi alice".into()));

    let history = server.get("/history/last20", &carol).json();
    let history = history.as_array().unwrap();
    assert_eq!(contents(history), ["Hello", "Anyone still here?", "Hi alice"]);
    let ids: Vec<i64> = history.iter().map(|m| m["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [hello, more, hi]);
    assert!(hello < more && more < hi);
    assert_eq!(history[2]["username"], "carol");
    assert!(history[0].get("type").is_none());
}

#[tokio::test]
async fn a_second_tab_neither_joins_nor_leaves_again() {
    let server = Server::start();
    let (alice, bob) = (server.user("alice"), server.user("bob"));
    let mut a = Client::join(&server, &alice, "alice").await;
    let mut tab = Client::connect(&server, &bob).await;
    a.wait_for(|e| is(e, "join") && e["username"] == "bob").await;
    let second_tab = Client::connect(&server, &bob).await;
    drop(second_tab);
    let first_tab_id = tab.post("bob", "still here").await;
    let next = a.event().await;
    assert_eq!(
        (next["type"].as_str(), next["id"].as_i64()),
        (Some("message"), Some(first_tab_id))
    );
    drop(tab);
    let left = a.event().await;
    assert_eq!(
        left,
        serde_json::json!({ "type": "leave", "username": "bob", "online": 1 })
    );
}

#[tokio::test]
async fn concurrent_senders_are_seen_by_everyone_in_one_ascending_order() {
    const SENDERS: usize = 4;
    const EACH: usize = 25;
    let server = Server::start_with(&["--ws-rate-limit=0"]);
    let mut clients = Vec::new();
    for i in 0..SENDERS {
        let name = format!("sender{i}");
        let token = server.user(&name);
        clients.push(Client::join(&server, &token, &name).await);
    }
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut client)| {
            tokio::spawn(async move {
                for k in 0..EACH {
                    client.say(&format!("{i}/{k}")).await;
                }
                let mut seen = Vec::new();
                while seen.len() < SENDERS * EACH {
                    let event = client.event().await;
                    if is(&event, "message") {
                        seen.push((
                            event["id"].as_i64().unwrap(),
                            event["content"].as_str().unwrap().to_string(),
                        ));
                    }
                }
                seen
            })
        })
        .collect();
    let mut views = Vec::new();
    for task in tasks {
        views.push(task.await.unwrap());
    }
    for view in &views[1..] {
        assert_eq!(view, &views[0], "every client sees the same sequence");
    }
    assert!(views[0].windows(2).all(|w| w[0].0 < w[1].0), "ids ascend");
    for i in 0..SENDERS {
        let own: Vec<String> = views[0]
            .iter()
            .filter(|(_, c)| c.starts_with(&format!("{i}/")))
            .map(|(_, c)| c.clone())
            .collect();
        let expected: Vec<String> = (0..EACH).map(|k| format!("{i}/{k}")).collect();
        assert_eq!(own, expected, "each sender's messages keep their order");
    }
}

#[tokio::test]
async fn empty_and_overlong_messages_get_an_error_and_the_connection_stays_open() {
    let server = Server::start();
    let token = server.user("ann");
    let mut ann = Client::join(&server, &token, "ann").await;
    ann.say(" \n\t ").await;
    let error = ann.event().await;
    assert_eq!(
        (error["type"].as_str(), error["code"].as_str()),
        (Some("error"), Some("empty_message"))
    );
    ann.say(&"x".repeat(4097)).await;
    assert_eq!(ann.event().await["code"], "message_too_long");
    let longest = "é".repeat(4096);
    ann.post("ann", &longest).await;
    ann.post("ann", "still open").await;
}

#[tokio::test]
async fn a_binary_frame_closes_with_1003() {
    let server = Server::start();
    let token = server.user("ann");
    let mut ann = Client::join(&server, &token, "ann").await;
    ann.send(Message::binary(vec![1, 2, 3])).await;
    let (events, code) = ann.closed().await;
    assert_eq!(code, 1003);
    assert_eq!(events.last().unwrap()["code"], "binary_not_supported");
}

#[test]
fn a_text_frame_that_is_not_utf8_closes_with_1007() {
    let server = Server::start();
    let token = server.user("ann");
    let mut socket = upgrade_raw(&server, &token);
    socket
        .get_mut()
        .write_all(&frame(0x1, &[b'h', 0xff, 0xfe], true))
        .unwrap();
    let (events, code) = read_until_close(&mut socket);
    assert_eq!(code, 1007);
    assert_eq!(events.last().unwrap()["code"], "invalid_utf8");
}

#[tokio::test]
async fn a_message_over_64_kib_closes_with_1009() {
    let server = Server::start();
    let token = server.user("ann");
    let mut ann = Client::join(&server, &token, "ann").await;
    ann.say(&"a".repeat(64 * 1024 + 1)).await;
    let (events, code) = ann.closed().await;
    assert_eq!(code, 1009);
    assert_eq!(events.last().unwrap()["code"], "message_too_large");
}

#[tokio::test]
async fn a_sustained_flood_is_refused_then_closed_with_1008() {
    let server = Server::start_with(&["--ws-rate-limit=1"]);
    let token = server.user("ann");
    let mut ann = Client::join(&server, &token, "ann").await;
    for i in 0..30 {
        ann.say(&format!("flood {i}")).await;
    }
    let (events, code) = ann.closed().await;
    assert_eq!(code, 1008);
    let refusals = events.iter().filter(|e| e["code"] == "rate_limited").count();
    assert!(refusals >= 2, "rate_limited errors before the close: {events:?}");
    assert!(events.iter().any(|e| is(e, "message")), "the burst got through");
    assert_eq!(events.last().unwrap()["code"], "rate_limited");
}

#[tokio::test]
async fn a_token_that_expires_mid_session_closes_with_4001() {
    let server = Server::start_with(&["--token-ttl=2"]);
    let token = server.user("ann");
    let mut ann = Client::join(&server, &token, "ann").await;
    let (events, code) = ann.closed().await;
    assert_eq!(code, 4001);
    assert_eq!(events.last().unwrap()["code"], "token_expired");
}

#[tokio::test]
async fn shutdown_closes_sessions_with_1001_and_the_server_exits_cleanly() {
    let mut server = Server::start();
    let token = server.user("ann");
    let mut ann = Client::join(&server, &token, "ann").await;
    server.signal(libc::SIGTERM);
    let (events, code) = ann.closed().await;
    assert_eq!(code, 1001);
    assert_eq!(events.last().unwrap()["code"], "server_shutdown");
    assert_eq!(server.wait_exit(Duration::from_secs(15)), Some(0));
}

#[test]
fn protocol_violations_close_with_1002() {
    let server = Server::start();
    let token = server.user("ann");
    let violations = [
        ("unmasked frame", frame(0x1, b"hi", false)),
        ("ping over 125 bytes", frame(0x9, &[0; 126], true)),
        ("close with a reserved code", frame(0x8, &1005u16.to_be_bytes(), true)),
    ];
    for (what, bytes) in violations {
        let mut socket = upgrade_raw(&server, &token);
        socket.get_mut().write_all(&bytes).unwrap();
        let (_, code) = read_until_close(&mut socket);
        assert_eq!(code, 1002, "{what}");
    }
}

#[tokio::test]
async fn a_database_failure_closes_with_1011_after_an_error_event() {
    let server = Server::start();
    let token = server.user("ann");
    let mut ann = Client::join(&server, &token, "ann").await;
    // Another process holding the write lock: the server's writer gives up
    // after its busy timeout, as it would on a full or read-only disk.
    let blocker = rusqlite::Connection::open(server.db_path()).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    ann.say("this cannot be stored").await;
    let (events, code) = ann.closed().await;
    assert_eq!(code, 1011);
    assert_eq!(events.last().unwrap()["code"], "internal_error");
    assert!(!events.iter().any(|e| is(e, "message")), "nothing was acknowledged");
    blocker.execute_batch("ROLLBACK").unwrap();
    let history = server.get("/history/last20", &token).json();
    assert_eq!(history, serde_json::json!([]));
}

#[test]
fn a_handshake_without_a_valid_token_is_refused_before_any_upgrade() {
    let server = Server::start();
    for target in ["/ws/chat", "/ws/chat?token=not.a.token"] {
        let response = server.raw(handshake(&server, target, &[]).as_bytes());
        assert_eq!(response.status, 401, "{target}");
        assert_eq!(response.header("www-authenticate"), Some("Bearer"));
        assert!(response.header("sec-websocket-accept").is_none());
    }
    let cookie = vec!["Cookie: access_token=forged".to_string()];
    assert_eq!(
        server.raw(handshake(&server, "/ws/chat", &cookie).as_bytes()).status,
        401
    );
}

#[test]
fn requests_that_are_not_handshakes_get_426_or_400() {
    let server = Server::start();
    let token = server.user("ann");
    let plain = format!("GET /ws/chat?token={token} HTTP/1.1\r\nHost: x\r\n\r\n");
    let response = server.raw(plain.as_bytes());
    assert_eq!(response.status, 426);
    assert_eq!(response.header("upgrade"), Some("websocket"));
    let good = handshake(&server, &format!("/ws/chat?token={token}"), &[]);
    for broken in [
        good.replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"),
        good.replace("dGhlIHNhbXBsZSBub25jZQ==", "short"),
        good.replace("Upgrade: websocket", "Upgrade: h2c"),
    ] {
        let response = server.raw(broken.as_bytes());
        assert_eq!(response.status, 400, "{broken}");
        assert!(!response.detail().is_empty());
    }
    let response = server.raw(good.as_bytes());
    assert_eq!(response.status, 101);
    assert_eq!(
        response.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
}

#[test]
fn cookie_handshakes_must_come_from_the_servers_own_origin_or_an_allowed_one() {
    let server = Server::start_with(&["--allowed-origin=https://app.example"]);
    let token = server.user("ann");
    let status = |target: &str, headers: &[String]| server.raw(handshake(&server, target, headers).as_bytes()).status;
    let cookie = format!("Cookie: access_token={token}");
    let origin = |o: &str| format!("Origin: {o}");

    assert_eq!(
        status("/ws/chat", &[cookie.clone(), origin("http://evil.example")]),
        403
    );
    assert_eq!(status("/ws/chat", &[cookie.clone(), origin("null")]), 403);
    assert_eq!(
        status(
            "/ws/chat",
            &[cookie.clone(), origin(&format!("http://{}", server.addr))]
        ),
        101
    );
    assert_eq!(
        status("/ws/chat", &[cookie.clone(), origin("https://app.example")]),
        101
    );
    assert_eq!(
        status("/ws/chat", std::slice::from_ref(&cookie)),
        101,
        "no Origin: not a browser"
    );

    let query = format!("/ws/chat?token={token}");
    assert_eq!(status(&query, &[origin("http://evil.example")]), 101);
    let bearer = format!("Authorization: Bearer {token}");
    assert_eq!(status("/ws/chat", &[bearer, origin("http://evil.example")]), 101);
}

#[tokio::test]
async fn a_client_that_never_reads_is_dropped_without_holding_up_the_others() {
    let server = Server::start_with(&["--ws-rate-limit=0"]);
    let (fast_token, stalled_token) = (server.user("fast"), server.user("stalled"));
    let mut fast = Client::join(&server, &fast_token, "fast").await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(server.addr).await.unwrap();
    let request = handshake(&server, &format!("/ws/chat?token={stalled_token}"), &[]);
    stalled.write_all(request.as_bytes()).await.unwrap();
    fast.wait_for(|e| is(e, "join") && e["username"] == "stalled").await;

    let (mut sent, mut acked, mut dropped) = (0, 0, false);
    while !dropped {
        assert!(sent < 50_000, "the stalled client was never dropped");
        for _ in 0..250 {
            fast.say(&format!("m{sent}")).await;
            sent += 1;
        }
        while acked < sent {
            let event = fast.event().await;
            if is(&event, "leave") {
                assert_eq!(event["username"], "stalled");
                dropped = true;
            } else {
                assert_eq!(
                    event["content"],
                    format!("m{acked}"),
                    "delivered in order, nothing skipped"
                );
                acked += 1;
            }
        }
    }
    let logs = server.wait_for_log("user=stalled was closed with 4002");
    assert!(logs.contains("user=stalled was closed with 4002"), "{logs}");
    fast.post("fast", "still flowing").await;
}

#[tokio::test]
async fn acknowledged_messages_survive_sigkill_exactly_once() {
    const N: usize = 60;
    let server = Server::start_with(&["--ws-rate-limit=0"]);
    let token = server.user("ann");
    let mut ann = Client::join(&server, &token, "ann").await;
    for i in 0..N {
        ann.say(&format!("durable {i}")).await;
    }
    let mut acknowledged = Vec::new();
    while acknowledged.len() < N {
        let event = ann.event().await;
        if is(&event, "message") {
            acknowledged.push(event["id"].as_i64().unwrap());
        }
    }
    let server = server.kill_and_restart();
    let page = server.get("/history?limit=100", &token).json();
    let stored: Vec<i64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert_eq!(stored, acknowledged);
    assert_eq!(page["has_more"], false);
}

#[tokio::test]
async fn messages_sent_back_to_back_are_acknowledged_in_order_and_stored_despite_a_close() {
    let server = Server::start_with(&["--ws-rate-limit=0"]);
    let token = server.user("ann");
    let mut ann = Client::join(&server, &token, "ann").await;
    let sent: Vec<String> = (0..100).map(|i| format!("burst {i}")).collect();
    for text in &sent {
        ann.say(text).await;
    }
    let mut echoed = Vec::new();
    while echoed.len() < sent.len() {
        let event = ann.wait_for(|e| is(e, "message")).await;
        echoed.push(event["content"].as_str().unwrap().to_string());
    }
    assert_eq!(echoed, sent);
    let bob_token = server.user("bob");
    let mut bob = Client::join(&server, &bob_token, "bob").await;
    for text in ["last 1", "last 2"] {
        ann.say(text).await;
    }
    ann.send(Message::Close(None)).await;
    bob.wait_for(|e| is(e, "message") && e["content"] == "last 2").await;
    let history = server.get("/history/last20", &bob_token).json();
    let newest: Vec<&str> = history.as_array().unwrap()[18..]
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        newest,
        ["last 1", "last 2"],
        "messages read before a close are still stored"
    );
}
