//! Churn without leaks: many short-lived clients come and go, some leaving
//! abruptly, and afterwards the server holds no more descriptors than before
//! and about the same memory. A task, socket, file or buffer that outlived
//! its client would show up here.

mod common;

use std::io::Write;
use std::time::Duration;

use common::resources::{eventually, memory_kib, open_fds};
use common::ws::{is, Client};
use common::{Response, Server};

/// Memory the server may keep above its baseline after churn (allocator
/// caches, lazily grown pools); a leak of even a kilobyte per client over
/// these runs would show past it.
const MEMORY_SLACK_KIB: u64 = 32 * 1024;

const BOUNDARY: &str = "churn-boundary";

fn form(content: &[u8]) -> Vec<u8> {
    let mut body =
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c\"\r\n\r\n").into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn upload(server: &Server, token: &str, content: &[u8]) -> Response {
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    server.request(
        "POST",
        "/files/upload",
        Some(token),
        Some((&content_type, &form(content))),
    )
}

/// One client's visit: an upload, its download, and either its deletion or
/// an abandoned second upload (the connection dropped half-way).
fn visit(server: &Server, token: &str, n: usize) {
    let content = vec![n as u8; 20_000 + n * 37];
    let uploaded = upload(server, token, &content);
    assert_eq!(uploaded.status, 201, "{}", uploaded.text());
    let id = uploaded.json()["id"].as_str().unwrap().to_string();
    assert!(server.get(&format!("/files/{id}"), token).body == content);
    if n % 2 == 0 {
        assert_eq!(
            server
                .request("DELETE", &format!("/files/{id}"), Some(token), None)
                .status,
            204
        );
    } else {
        let body = form(&content);
        let mut stream = server.connect();
        let head = format!(
            "POST /files/upload HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&body[..body.len() / 2]).unwrap();
    }
}

/// Runs `visits` visits from `clients` threads at once.
fn churn(server: &Server, token: &str, clients: usize, visits: usize) {
    std::thread::scope(|scope| {
        for client in 0..clients {
            scope.spawn(move || {
                for n in (client..visits).step_by(clients) {
                    visit(server, token, n);
                }
            });
        }
    });
}

#[test]
fn hundreds_of_uploads_leave_descriptors_and_memory_at_baseline() {
    let server = Server::start();
    let token = server.user("alice");
    let pid = server.pid();
    // A first round sets up what the server builds once (threads, pools).
    churn(&server, &token, 4, 40);
    let settled = |fds: usize| eventually(Duration::from_secs(15), || open_fds(pid) <= fds);
    let fds = open_fds(pid);
    let resting = memory_kib(pid, "VmRSS");
    churn(&server, &token, 4, 400);
    assert!(settled(fds), "descriptors: {fds} before, {} after", open_fds(pid));
    let rss = memory_kib(pid, "VmRSS");
    assert!(
        rss < resting + MEMORY_SLACK_KIB,
        "resident memory {rss} KiB, {resting} KiB before"
    );
    let stored = || server.stored_files().len();
    assert!(
        eventually(Duration::from_secs(10), || stored() == 220),
        "{} files stored, expected one per kept upload and nothing else",
        stored()
    );
}

/// One chat visit, `n` deciding how it ends: a close handshake, a message and
/// then the close, or the connection simply dropped.
async fn chat_visit(server: &Server, token: &str, name: &str, n: usize) {
    let mut client = Client::connect(server, token).await;
    match n % 3 {
        0 => client.ws.close(None).await.unwrap(),
        1 => {
            client.say(&format!("visit {n}")).await;
            client
                .wait_for(|e| {
                    is(e, "message") && e["content"] == format!("visit {n}").as_str() && e["username"] == name
                })
                .await;
            client.ws.close(None).await.unwrap();
        }
        _ => drop(client),
    }
}

/// Runs `visits` chat visits from `clients` tasks at once, each as its own user.
async fn chat_churn(server: &Server, tokens: &[(String, String)], visits: usize) {
    let clients = tokens.len();
    let tasks = tokens.iter().enumerate().map(|(client, (name, token))| async move {
        for n in (client..visits).step_by(clients) {
            chat_visit(server, token, name, n).await;
        }
    });
    futures_util::future::join_all(tasks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_chat_connections_leave_descriptors_and_memory_at_baseline() {
    let server = Server::start_with(&["--ws-rate-limit=0"]);
    let tokens: Vec<(String, String)> = (0..16)
        .map(|i| {
            let name = format!("visitor{i}");
            let token = server.user(&name);
            (name, token)
        })
        .collect();
    let pid = server.pid();
    chat_churn(&server, &tokens, 160).await;
    let fds = open_fds(pid);
    let resting = memory_kib(pid, "VmRSS");
    chat_churn(&server, &tokens, 3000).await;
    let settled = eventually(Duration::from_secs(15), || open_fds(pid) <= fds);
    assert!(settled, "descriptors: {fds} before, {} after", open_fds(pid));
    let rss = memory_kib(pid, "VmRSS");
    assert!(
        rss < resting + MEMORY_SLACK_KIB,
        "resident memory {rss} KiB, {resting} KiB before"
    );
    // Every visitor has left the room: the next one is alone in it.
    let (name, token) = &tokens[0];
    let mut last = Client::connect(&server, token).await;
    let join = last.wait_for(|e| is(e, "join")).await;
    assert_eq!(
        (&join["username"], &join["online"]),
        (&serde_json::json!(name), &serde_json::json!(1))
    );
    last.post(name, "the room is empty again").await;
}
