//! The client address and TLS behind reverse proxies: `X-Forwarded-For`
//! and `X-Forwarded-Proto` believed from `--trusted-proxy` peers only, and
//! what they change (the access log, `/sessions`, the cookie's `Secure`,
//! the server's own origin).

mod common;

use std::io::{BufReader, Write};

use common::{read_response, Response, Server, PASSWORD};

/// Logs `ann` in with extra header lines.
fn login_with(server: &Server, headers: &str) -> Response {
    let body = format!("username=ann&password={}", PASSWORD.replace(' ', "+"));
    let raw = format!(
        "POST /token HTTP/1.1\r\nHost: {}\r\n{headers}Content-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.addr,
        body.len()
    );
    server.raw(raw.as_bytes())
}

/// The address `/sessions` records for the session of `login`.
fn recorded_ip(server: &Server, login: &Response) -> String {
    assert_eq!(login.status, 200, "{}", login.text());
    let token = login.json()["access_token"].as_str().unwrap().to_string();
    let sessions = server.get("/sessions", &token).json();
    let current = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap()
        .clone();
    current["ip"].as_str().unwrap().to_string()
}

/// A cookie-authenticated WebSocket handshake with `headers`; its status.
fn handshake_status(server: &Server, token: &str, headers: &str) -> u16 {
    let mut reader = BufReader::new(server.connect());
    let request = format!(
        "GET /ws/chat HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Cookie: access_token={token}\r\n{headers}\r\n",
        server.addr
    );
    reader.get_mut().write_all(request.as_bytes()).unwrap();
    read_response(&mut reader, false).unwrap().status
}

const FORWARDED: &str = "X-Forwarded-For: 198.51.100.1, 203.0.113.7\r\nX-Forwarded-Proto: https\r\n";

#[test]
fn forwarded_headers_from_an_untrusted_peer_are_ignored() {
    let server = Server::start();
    server.register("ann", PASSWORD);
    let login = login_with(&server, FORWARDED);
    assert!(!login.header("set-cookie").unwrap().contains("Secure"));
    assert_eq!(recorded_ip(&server, &login), "127.0.0.1");
    let logs = server.wait_for_log("POST /token 200");
    assert!(logs.contains("INFO 127.0.0.1 POST /token 200"), "{logs}");
    assert!(!logs.contains("203.0.113.7"), "{logs}");
    let token = login.json()["access_token"].as_str().unwrap().to_string();
    let https_origin = format!("Origin: https://{}\r\n{FORWARDED}", server.addr);
    assert_eq!(handshake_status(&server, &token, &https_origin), 403);
}

#[test]
fn behind_a_trusted_proxy_the_forwarded_client_and_tls_count() {
    let server = Server::start_with(&["--trusted-proxy=127.0.0.0/8"]);
    server.register("ann", PASSWORD);
    let login = login_with(&server, FORWARDED);
    assert!(login.header("set-cookie").unwrap().ends_with("; Secure"));
    assert_eq!(recorded_ip(&server, &login), "203.0.113.7");
    let logs = server.wait_for_log("INFO 203.0.113.7 POST /token 200");
    assert!(logs.contains("INFO 203.0.113.7 POST /token 200"), "{logs}");
    let token = login.json()["access_token"].as_str().unwrap().to_string();
    // Over TLS, the server's own origin is https://host.
    let https_origin = format!("Origin: https://{}\r\n{FORWARDED}", server.addr);
    assert_eq!(handshake_status(&server, &token, &https_origin), 101);
    let plain = format!("Origin: https://{}\r\n", server.addr);
    assert_eq!(handshake_status(&server, &token, &plain), 403);
    // Without X-Forwarded-Proto: https, no Secure.
    let login = login_with(&server, "X-Forwarded-For: 203.0.113.8\r\n");
    assert!(!login.header("set-cookie").unwrap().contains("Secure"));
    let logout = server.request("POST", "/logout", None, Some(("text/plain", b"")));
    assert!(!logout.header("set-cookie").unwrap().contains("Secure"));
}

#[test]
fn the_client_is_the_rightmost_forwarded_address_that_is_not_a_trusted_proxy() {
    let server = Server::start_with_env(&[], &[("CHAT_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8")]);
    server.register("ann", PASSWORD);
    for (forwarded, expected) in [
        ("X-Forwarded-For: 192.0.2.66, 203.0.113.9, 10.1.2.3\r\n", "203.0.113.9"),
        (
            "X-Forwarded-For: 192.0.2.66\r\nX-Forwarded-For: [2001:db8::7]:443\r\n",
            "2001:db8::7",
        ),
        ("", "127.0.0.1"),
    ] {
        assert_eq!(
            recorded_ip(&server, &login_with(&server, forwarded)),
            expected,
            "{forwarded:?}"
        );
    }
}
