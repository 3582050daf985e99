//! Hostile WebSocket clients against the real server, in raw frames: floods
//! of fragments, tiny messages and pings, and frames no conforming client
//! sends. Each must end in the close code of the contract or be absorbed,
//! with the server's memory bounded and every other member's chat going on.
//! (`chat.rs` has the first example of each protocol violation; this file
//! has the rest of each family and the floods.)

mod common;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::resources::memory_kib;
use common::ws::{frame, is, read_frame, read_until_close, upgrade_raw, Client};
use common::Server;

/// What the server may hold above its resting size while one of these
/// clients is at it; buffering a flood would go far past it.
const MEMORY_ALLOWANCE_KIB: u64 = 48 * 1024;

const TEXT: u8 = 0x1;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xa;

/// A masked frame without FIN: a fragment that more frames must follow.
fn fragment(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut bytes = frame(opcode, payload, true);
    bytes[0] &= 0x7f;
    bytes
}

fn close_frame(code: u16) -> Vec<u8> {
    frame(CLOSE, &code.to_be_bytes(), true)
}

/// Writes `bytes` over and over, from another thread, until `total` bytes are
/// sent, the server stops reading for `patience`, or the connection breaks.
/// Returns how many bytes went out.
fn flood(
    socket: &BufReader<TcpStream>,
    bytes: Vec<u8>,
    total: usize,
    patience: Duration,
) -> std::thread::JoinHandle<usize> {
    let mut writer = socket.get_ref().try_clone().unwrap();
    writer.set_write_timeout(Some(patience)).unwrap();
    std::thread::spawn(move || {
        let mut sent = 0;
        while sent < total && writer.write_all(&bytes).is_ok() {
            sent += bytes.len();
        }
        sent
    })
}

/// The server's memory stayed within the allowance above `resting_kib`, and
/// a member can still chat.
async fn assert_bounded_and_serving(server: &Server, resting_kib: u64) {
    let peak = memory_kib(server.pid(), "VmHWM");
    assert!(
        peak < resting_kib + MEMORY_ALLOWANCE_KIB,
        "peak resident memory {peak} KiB, at rest {resting_kib} KiB"
    );
    let token = server.user("bystander");
    let mut bystander = Client::join(server, &token, "bystander").await;
    bystander.post("bystander", "still here").await;
}

/// Sends `bytes` on a fresh session and returns the close code it ends with.
fn close_code_after(server: &Server, token: &str, bytes: &[u8]) -> u16 {
    let mut socket = upgrade_raw(server, token);
    socket.get_mut().write_all(bytes).unwrap();
    read_until_close(&mut socket).1
}

#[test]
fn control_frames_over_125_bytes_close_with_1002() {
    let server = Server::start();
    let token = server.user("mallory");
    let mut long_close = 1000u16.to_be_bytes().to_vec();
    long_close.resize(126, b'r');
    for (what, bytes) in [
        ("close", frame(CLOSE, &long_close, true)),
        ("pong", frame(PONG, &[0; 126], true)),
        ("ping of 64 KiB", frame(PING, &[0; 65_535], true)),
    ] {
        assert_eq!(close_code_after(&server, &token, &bytes), 1002, "{what}");
    }
}

#[test]
fn fragmented_control_frames_and_stray_continuations_close_with_1002() {
    let server = Server::start();
    let token = server.user("mallory");
    for (what, bytes) in [
        ("fragmented ping", fragment(PING, b"p")),
        ("fragmented close", fragment(CLOSE, &1000u16.to_be_bytes())),
        ("continuation with nothing to continue", frame(CONTINUATION, b"x", true)),
        (
            "new message inside a fragmented one",
            [fragment(TEXT, b"a"), frame(TEXT, b"b", true)].concat(),
        ),
        ("reserved opcode", frame(0x3, b"x", true)),
        ("reserved bits", {
            let mut bytes = frame(TEXT, b"x", true);
            bytes[0] |= 0x40;
            bytes
        }),
    ] {
        assert_eq!(close_code_after(&server, &token, &bytes), 1002, "{what}");
    }
}

#[test]
fn unmasked_frames_of_every_kind_close_with_1002() {
    let server = Server::start();
    let token = server.user("mallory");
    for (what, bytes) in [
        ("ping", frame(PING, b"p", false)),
        ("close", frame(CLOSE, &1000u16.to_be_bytes(), false)),
        (
            "fragment",
            [fragment(TEXT, b"a"), frame(CONTINUATION, b"b", false)].concat(),
        ),
    ] {
        assert_eq!(close_code_after(&server, &token, &bytes), 1002, "{what}");
    }
}

#[test]
fn close_frames_with_invalid_codes_close_with_1002() {
    let server = Server::start();
    let token = server.user("mallory");
    for code in [0u16, 999, 1004, 1006, 1015, 1016, 2999, 5000, 65_535] {
        assert_eq!(
            close_code_after(&server, &token, &close_frame(code)),
            1002,
            "code {code}"
        );
    }
    let one_byte = frame(CLOSE, &[3], true);
    assert_eq!(close_code_after(&server, &token, &one_byte), 1002, "one-byte payload");
    let bad_reason = frame(CLOSE, &[0x03, 0xe8, 0xff, 0xfe], true);
    assert_ne!(
        close_code_after(&server, &token, &bad_reason),
        1000,
        "reason that is not UTF-8"
    );
    // Codes applications may use are answered with a normal close.
    for code in [1000u16, 3000, 4999] {
        assert_eq!(
            close_code_after(&server, &token, &close_frame(code)),
            code,
            "code {code}"
        );
    }
}

#[tokio::test]
async fn a_fragment_flood_closes_with_1009_at_64_kib() {
    let server = Server::start();
    let token = server.user("mallory");
    let resting = memory_kib(server.pid(), "VmRSS");
    let mut socket = upgrade_raw(&server, &token);
    socket.get_mut().write_all(&fragment(TEXT, &[b'a'; 1000])).unwrap();
    let sender = flood(
        &socket,
        fragment(CONTINUATION, &[b'a'; 1000]),
        64 << 20,
        Duration::from_secs(5),
    );
    let (_, code) = read_until_close(&mut socket);
    assert_eq!(code, 1009);
    assert!(sender.join().unwrap() < 64 << 20, "the whole flood was read");
    assert_bounded_and_serving(&server, resting).await;
}

/// Fragments that carry nothing never make a message grow, so they are
/// absorbed: the message they belong to arrives whole once it ends.
#[tokio::test]
async fn a_hundred_thousand_empty_fragments_are_absorbed() {
    let server = Server::start();
    let token = server.user("mallory");
    let resting = memory_kib(server.pid(), "VmRSS");
    let mut socket = upgrade_raw(&server, &token);
    let mut message = fragment(TEXT, b"a");
    for _ in 0..100_000 {
        message.extend_from_slice(&fragment(CONTINUATION, b""));
    }
    message.extend_from_slice(&frame(CONTINUATION, b"b", true));
    let sender = flood(&socket, message.clone(), message.len(), Duration::from_secs(20));
    loop {
        let (opcode, payload) = read_frame(&mut socket).unwrap();
        assert_eq!(opcode, TEXT, "{}", String::from_utf8_lossy(&payload));
        let event: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        if is(&event, "message") {
            assert_eq!(event["content"], "ab");
            break;
        }
    }
    assert_eq!(sender.join().unwrap(), message.len());
    assert_bounded_and_serving(&server, resting).await;
}

/// 100 000 one-byte messages in one burst. With the default rate the burst
/// is refused and the connection closed with 1008 long before its end.
#[tokio::test]
async fn a_hundred_thousand_tiny_messages_at_the_default_rate_close_with_1008() {
    let server = Server::start();
    let token = server.user("mallory");
    let resting = memory_kib(server.pid(), "VmRSS");
    let mut socket = upgrade_raw(&server, &token);
    let burst = frame(TEXT, b"x", true).repeat(100_000);
    let sender = flood(&socket, burst.clone(), burst.len(), Duration::from_secs(5));
    let (events, code) = read_until_close(&mut socket);
    assert_eq!(code, 1008);
    assert!(events.iter().any(|e| e["code"] == "rate_limited"), "{events:?}");
    let acknowledged = events.iter().filter(|e| is(e, "message")).count();
    assert!(
        acknowledged <= 100,
        "{acknowledged} messages got through the rate limit"
    );
    sender.join().unwrap();
    assert_bounded_and_serving(&server, resting).await;
}

/// Without a rate limit every message is taken, at the pace the database
/// commits them (a bounded number of a connection's messages wait for
/// their commit at a time): the rest of the burst waits in the socket, not
/// in the server's memory, and other members are not held up by it.
#[tokio::test]
async fn a_hundred_thousand_tiny_messages_without_a_rate_limit_wait_in_the_socket() {
    let server = Server::start_with(&["--ws-rate-limit=0"]);
    let token = server.user("mallory");
    let resting = memory_kib(server.pid(), "VmRSS");
    let socket = upgrade_raw(&server, &token);
    let burst = frame(TEXT, b"x", true).repeat(100_000);
    let sender = flood(&socket, burst.clone(), burst.len(), Duration::from_secs(3));
    // Read the flooder's acknowledgements for a while, so it is not dropped
    // as a slow consumer.
    let mut reader = socket;
    reader.get_ref().set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    let mut acknowledged = 0;
    while started.elapsed() < Duration::from_secs(2) {
        let (_, payload) = read_frame(&mut reader).unwrap();
        if is(&serde_json::from_slice(&payload).unwrap(), "message") {
            acknowledged += 1;
        }
    }
    assert!(acknowledged > 0, "no message of the burst was taken");
    assert_bounded_and_serving(&server, resting).await;
    drop(reader);
    sender.join().unwrap();
}

/// Pings at full speed from a client that never reads its pongs: the pongs
/// wait in a bounded buffer (once it is full, a new pong replaces the one
/// waiting), the server goes on reading, and the connection still works once
/// the flood stops and the client reads again.
#[tokio::test]
async fn a_ping_flood_from_a_client_that_never_reads_is_absorbed() {
    let server = Server::start();
    let token = server.user("mallory");
    let resting = memory_kib(server.pid(), "VmRSS");
    let mut socket = upgrade_raw(&server, &token);
    let ping = frame(PING, &[b'p'; 125], true);
    let total = ping.len() * 100_000;
    let sent = flood(&socket, ping, total, Duration::from_secs(5)).join().unwrap();
    assert_eq!(sent, total, "the server stopped reading pings");
    let peak = memory_kib(server.pid(), "VmHWM");
    assert!(
        peak < resting + MEMORY_ALLOWANCE_KIB,
        "peak {peak} KiB, at rest {resting} KiB"
    );
    socket
        .get_mut()
        .write_all(&frame(TEXT, b"after the pings", true))
        .unwrap();
    let mut pongs = 0;
    loop {
        let (opcode, payload) = read_frame(&mut socket).unwrap();
        match opcode {
            PONG => pongs += 1,
            TEXT if serde_json::from_slice::<serde_json::Value>(&payload).unwrap()["content"] == "after the pings" => {
                break;
            }
            TEXT => {}
            other => panic!("unexpected opcode {other}"),
        }
    }
    assert!(pongs > 0 && pongs < 100_000, "{pongs} pongs");
    assert_bounded_and_serving(&server, resting).await;
}

/// The same flooder while the room is busy: it reads nothing, so what the
/// room tells it piles up (behind pongs it never read) until it is dropped
/// as a slow consumer (4002), never closed as if the server had failed
/// (1011), and the members who read go on chatting.
#[tokio::test]
async fn a_ping_flooder_that_never_reads_is_dropped_as_a_slow_consumer() {
    const TALKERS: usize = 4;
    const EACH: usize = 300;
    let server = Server::start_with(&["--ws-rate-limit=0"]);
    let token = server.user("mallory");
    let socket = upgrade_raw(&server, &token);
    let ping = frame(PING, &[b'p'; 125], true);
    let total = ping.len() * 100_000;
    flood(&socket, ping, total, Duration::from_secs(5)).join().unwrap();
    let talker = server.user("talker");
    let mut talkers = Vec::new();
    for t in 0..TALKERS {
        let mut client = Client::connect(&server, &talker).await;
        talkers.push(tokio::spawn(async move {
            for i in 0..EACH {
                client.say(&format!("{t}/{i}")).await;
            }
            let last = format!("{t}/{}", EACH - 1);
            client
                .wait_for(|e| is(e, "message") && e["content"] == last.as_str())
                .await;
        }));
    }
    for talker in talkers {
        talker.await.unwrap();
    }
    let logs = server.wait_for_log("user=mallory was closed");
    assert!(
        logs.contains("user=mallory was closed with 4002 (slow_consumer)"),
        "{logs}"
    );
    drop(socket);
}
