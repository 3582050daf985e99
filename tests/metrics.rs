//! The Prometheus metrics listener (`--metrics-addr`): what it serves, that
//! the figures move with the traffic, and that the main listener does not
//! serve them.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use common::ws::Client;
use common::{read_response, Server};

/// A server with a metrics listener on an ephemeral port, and that port.
fn start() -> (Server, SocketAddr) {
    let server = Server::start_with(&["--metrics-addr=127.0.0.1:0"]);
    let logs = server.wait_for_log("/metrics\n");
    let addr = logs
        .lines()
        .find_map(|line| line.split("metrics on http://").nth(1))
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no metrics address in the logs:\n{logs}"))
        .parse()
        .unwrap();
    (server, addr)
}

fn get(addr: SocketAddr, raw: &str) -> common::Response {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.write_all(raw.as_bytes()).unwrap();
    read_response(&mut std::io::BufReader::new(stream), false).unwrap()
}

fn scrape(addr: SocketAddr) -> String {
    let response = get(addr, "GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    response.text()
}

/// The value of the sample `name` (with its labels, as written).
fn value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn messages_and_requests_move_their_counters() {
    let (server, metrics) = start();
    let token = server.user("ann");
    let before = scrape(metrics);
    let mut ann = Client::join(&server, &token, "ann").await;
    ann.post("ann", "counted").await;
    assert_eq!(server.request("GET", "/healthz", None, None).status, 200);
    assert_eq!(server.request("GET", "/nowhere", None, None).status, 404);
    assert_eq!(server.login("ann", "wrong password").status, 401);
    let after = scrape(metrics);
    let moved = |name: &str| value(&after, name) - value(&before, name);
    assert_eq!(moved("chat_messages_committed_total"), 1.0);
    // The join and the message, both written to ann's connection.
    assert_eq!(moved("chat_deliveries_total"), 2.0);
    assert_eq!(
        moved(r#"chat_http_requests_total{method="GET",route="/healthz",status="2xx"}"#),
        1.0
    );
    assert_eq!(
        moved(r#"chat_http_requests_total{method="any",route="unmatched",status="4xx"}"#),
        1.0
    );
    assert_eq!(
        moved(r#"chat_http_request_duration_seconds_count{method="GET",route="/healthz"}"#),
        1.0
    );
    assert_eq!(moved(r#"chat_logins_total{outcome="bad"}"#), 1.0);
    assert_eq!(value(&before, r#"chat_logins_total{outcome="ok"}"#), 1.0);
    assert_eq!(value(&after, "chat_websocket_connections_open"), 1.0);
    assert_eq!(value(&after, "chat_online_users"), 1.0);
    assert!(moved("chat_commit_batch_size_count") >= 1.0);
    assert!(value(&after, "chat_database_size_bytes") > 0.0);
    assert!(value(&after, "process_resident_memory_bytes") > 0.0);
    assert!(value(&after, "process_open_fds") > 0.0);
    assert!(!after.contains("ann"), "no user input becomes a label");
    drop(ann);
}

#[test]
fn uploads_and_downloads_count_their_bytes() {
    let (server, metrics) = start();
    let token = server.user("ann");
    let before = scrape(metrics);
    let uploaded = server.upload(&token, "five.txt", b"12345");
    let id = uploaded["id"].as_str().unwrap().to_string();
    assert_eq!(server.get(&format!("/files/{id}"), &token).body, b"12345");
    let after = scrape(metrics);
    let moved = |name: &str| value(&after, name) - value(&before, name);
    assert_eq!(moved("chat_upload_bytes_total"), 5.0);
    assert_eq!(moved("chat_download_bytes_total"), 5.0);
}

#[test]
fn metrics_are_served_on_their_own_address_only() {
    let (server, metrics) = start();
    let main = server.request("GET", "/metrics", None, None);
    assert_eq!(main.status, 404, "the main listener has no /metrics");
    let other = get(metrics, "GET /healthz HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n");
    assert_eq!(other.status, 404, "the metrics listener serves /metrics alone");
    let post = get(
        metrics,
        "POST /metrics HTTP/1.1\r\nHost: m\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
}

#[test]
fn without_the_flag_there_is_no_metrics_listener() {
    let server = Server::start();
    assert!(!server.logs().contains("metrics on"));
}

#[test]
#[ignore = "needs promtool (apt-get install prometheus)"]
fn promtool_finds_no_problem_in_the_exposition() {
    let (server, metrics) = start();
    let token = server.user("ann");
    server.get("/history/last20", &token);
    let text = scrape(metrics);
    let mut promtool = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(_) => common::missing_tool("promtool", "apt-get install prometheus"),
    };
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = promtool.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && said.trim().is_empty(), "promtool: {said}");
}
