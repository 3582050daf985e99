//! The deployment kit in `deploy/`, run for real: Debian's nginx with the
//! project's site file in front of the server over TLS, the whole flow of a
//! user through it (register, cookie login, `wss://` chat, a 100 MiB upload
//! and its download, the page in Chromium), and the systemd unit checked by
//! `systemd-analyze verify`.
//!
//! They need nginx, openssl, curl, Chromium or systemd-analyze, so they are
//! `#[ignore]`d; `bash .ci/run` installs the tools and runs them.

mod common;

use std::io::{BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Output, Stdio};

use serde_json::{json, Value};

use common::nginx::{Nginx, CLIENT_IP};
use common::webdriver::{Chromedriver, ENTER};
use common::ws::{frame, read_frame};
use common::{read_response, sha256_hex, Server, PASSWORD};

/// The server as it runs behind the site file: nginx connects from
/// 127.0.0.1, which is trusted to say who the client is and that it came
/// over TLS.
fn server_behind_nginx() -> (Server, Nginx) {
    let server = Server::start_with(&["--trusted-proxy", "127.0.0.1"]);
    let nginx = Nginx::start(&server);
    (server, nginx)
}

fn run(command: &mut Command) -> Output {
    let output = command.output().expect("run curl");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The headers and body of a `curl --include` answer.
fn split_response(output: &Output) -> (String, String) {
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    (head.to_string(), body.to_string())
}

fn register_and_log_in(nginx: &Nginx, username: &str) -> String {
    let registered = run(nginx
        .curl()
        .args(["--write-out", "%{http_code}", "--output", "/dev/null"])
        .args(["-H", "content-type: application/json", "--data"])
        .arg(json!({"username": username, "password": PASSWORD}).to_string())
        .arg(format!("{}/register", nginx.origin())));
    assert_eq!(String::from_utf8_lossy(&registered.stdout), "201");
    let login = run(nginx
        .curl()
        .arg("--include")
        .args(["--data-urlencode", &format!("username={username}")])
        .args(["--data-urlencode", &format!("password={PASSWORD}")])
        .arg(format!("{}/token", nginx.origin())));
    let (head, _) = split_response(&login);
    let cookie = head
        .lines()
        .find_map(|line| {
            line.strip_prefix("set-cookie: ")
                .or_else(|| line.strip_prefix("Set-Cookie: "))
        })
        .unwrap_or_else(|| panic!("no cookie in {head}"));
    assert!(
        cookie.contains("; Secure"),
        "a login over TLS through the trusted proxy gets a Secure cookie: {cookie}"
    );
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    cookie.split(';').next().unwrap().to_string()
}

#[test]
#[ignore = "needs nginx, openssl and curl (bash .ci/run installs them)"]
fn a_user_registers_logs_in_and_sees_their_address_through_nginx_over_tls() {
    let (server, nginx) = server_behind_nginx();
    let cookie = register_and_log_in(&nginx, "tess");
    let me = run(nginx
        .curl()
        .args(["--cookie", &cookie])
        .arg(format!("{}/me", nginx.origin())));
    let me: Value = serde_json::from_slice(&me.stdout).unwrap();
    assert_eq!(me["username"], "tess");
    // The session records the client's address, not the proxy's.
    let sessions = run(nginx
        .curl()
        .args(["--cookie", &cookie])
        .arg(format!("{}/sessions", nginx.origin())));
    let sessions: Value = serde_json::from_slice(&sessions.stdout).unwrap();
    assert_eq!(sessions[0]["ip"], CLIENT_IP, "{sessions}");
    let logs = server.wait_for_log(CLIENT_IP);
    assert!(
        logs.contains(CLIENT_IP),
        "the access log shows the client's address: {logs}"
    );
}

/// A WebSocket handshake over TLS with the cookie and `Origin`, answered
/// by the server through nginx: the `openssl` process, the stream after the
/// answer's head (events may already wait in its buffer), and the status.
fn open_wss(nginx: &Nginx, cookie: &str, origin: &str) -> (Child, BufReader<ChildStdout>, u16) {
    let mut pipe = nginx.tls_pipe();
    let request = format!(
        "GET /ws/chat HTTP/1.1\r\nHost: localhost:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nCookie: {cookie}\r\n\
         Origin: {origin}\r\n\r\n",
        nginx.port
    );
    pipe.stdin.as_mut().unwrap().write_all(request.as_bytes()).unwrap();
    let mut reader = BufReader::new(pipe.stdout.take().unwrap());
    let status = read_response(&mut reader, true).expect("a handshake answer").status;
    (pipe, reader, status)
}

#[test]
#[ignore = "needs nginx and openssl (bash .ci/run installs them)"]
fn a_wss_chat_with_the_cookie_and_the_https_origin_works_and_a_foreign_origin_is_refused() {
    let (_server, nginx) = server_behind_nginx();
    let cookie = register_and_log_in(&nginx, "walt");
    // The page's own origin is https:// behind the proxy: the plain-http
    // spelling of the same host is another origin.
    let (mut refused, _, status) = open_wss(&nginx, &cookie, &format!("http://localhost:{}", nginx.port));
    assert_eq!(status, 403);
    let _ = refused.kill();

    let (mut pipe, mut events, status) = open_wss(&nginx, &cookie, &nginx.origin());
    assert_eq!(status, 101);
    pipe.stdin
        .as_mut()
        .unwrap()
        .write_all(&frame(0x1, b"hello over tls", true))
        .unwrap();
    let message = loop {
        let (opcode, payload) = read_frame(&mut events).expect("an event");
        if opcode != 0x1 {
            continue;
        }
        let event: Value = serde_json::from_slice(&payload).unwrap();
        if event["type"] == "message" {
            break event;
        }
    };
    assert_eq!(
        (message["username"].as_str(), message["content"].as_str()),
        (Some("walt"), Some("hello over tls"))
    );
    let _ = pipe.kill();
    let _ = pipe.wait();
}

/// Writes `len` bytes of a repeating but not constant pattern.
fn write_big_file(path: &Path, len: usize) -> Vec<u8> {
    let block: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut bytes = Vec::with_capacity(len);
    while bytes.len() < len {
        let take = block.len().min(len - bytes.len());
        bytes.extend_from_slice(&block[..take]);
    }
    std::fs::write(path, &bytes).unwrap();
    bytes
}

#[test]
#[ignore = "needs nginx, openssl and curl (bash .ci/run installs them)"]
fn a_100_mib_upload_and_its_download_pass_through_nginx_over_tls() {
    let (_server, nginx) = server_behind_nginx();
    let cookie = register_and_log_in(&nginx, "uma");
    let dir = tempfile::tempdir().unwrap();
    let upload = dir.path().join("big.bin");
    let bytes = write_big_file(&upload, 100 << 20);
    let expected = sha256_hex(&bytes);
    drop(bytes);
    let answer = run(nginx
        .curl()
        .args(["--cookie", &cookie, "--form"])
        .arg(format!("file=@{}", upload.display()))
        .arg(format!("{}/files/upload", nginx.origin())));
    let stored: Value = serde_json::from_slice(&answer.stdout)
        .unwrap_or_else(|_| panic!("upload answer: {}", String::from_utf8_lossy(&answer.stdout)));
    assert_eq!(stored["size"], 100 << 20);
    assert_eq!(stored["sha256"], expected);

    let downloaded = dir.path().join("downloaded.bin");
    let head = run(nginx
        .curl()
        .args(["--cookie", &cookie, "--dump-header", "-", "--output"])
        .arg(&downloaded)
        .arg(format!(
            "{}{}",
            nginx.origin(),
            stored["download_url"].as_str().unwrap()
        )));
    let head = String::from_utf8_lossy(&head.stdout).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("content-disposition: attachment; filename=\"big.bin\""),
        "{head}"
    );
    let mut copy = Vec::new();
    std::fs::File::open(&downloaded)
        .unwrap()
        .read_to_end(&mut copy)
        .unwrap();
    assert_eq!(sha256_hex(&copy), expected);
}

#[test]
#[ignore = "needs nginx, openssl, Chromium and chromedriver (bash .ci/run installs them)"]
fn the_chat_page_works_in_chromium_through_nginx_over_tls() {
    let (_server, nginx) = server_behind_nginx();
    let driver = Chromedriver::start();
    // The test certificate is self-signed, and localhost must reach nginx
    // on its own loopback address.
    let browser = driver.session_with(&[
        "--ignore-certificate-errors".to_string(),
        format!("--host-resolver-rules=MAP localhost {}", common::nginx::PROXY_IP),
    ]);
    browser.goto(&format!("{}/", nginx.origin()));
    browser.wait_for(
        "the login and register forms",
        "return !document.getElementById('auth').hidden",
        &[],
    );
    browser.find("#register-username").send_keys("vera");
    browser.find("#register-password").send_keys(PASSWORD);
    browser.find("#register-form button[type=submit]").click();
    browser.wait_for(
        "the chat to connect over wss",
        "return document.getElementById('conn-status').textContent === 'Connected'",
        &[],
    );
    let input = browser.find("#message-input");
    input.send_keys("through the proxy");
    input.send_keys(ENTER);
    browser.wait_for(
        "the message to come back with its id",
        "return [...document.querySelectorAll('#messages li.msg[data-id]')]
           .some((li) => li.querySelector('.msg-text').textContent === 'through the proxy')",
        &[],
    );
    browser.screenshot("deploy-chat-through-nginx");
    let errors = browser.console_errors();
    assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
}

#[test]
#[ignore = "needs systemd-analyze (systemd)"]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/chat-server.service"))
        .unwrap()
        // verify checks that the binary exists: point it at the one built.
        .replace("/usr/local/bin/chat-server", env!("CARGO_BIN_EXE_chat-server"));
    let path = dir.path().join("chat-server.service");
    std::fs::write(&path, unit).unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|_| common::missing_tool("systemd-analyze", "install systemd"));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
}
