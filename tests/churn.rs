//! Churn without leaks: many short-lived clients come and go, some leaving
//! abruptly, and afterwards the server holds no more descriptors than before
//! and about the same memory. A task, socket, file or buffer that outlived
//! its client would show up here.

mod common;

use std::io::Write;
use std::time::Duration;

use common::resources::{eventually, memory_kib, open_fds};
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
    let stored = || std::fs::read_dir(server.uploads_dir()).unwrap().count();
    assert!(
        eventually(Duration::from_secs(10), || stored() == 220),
        "{} files stored, expected one per kept upload and nothing else",
        stored()
    );
}
