//! HTTP/1.1 behaviour of the real server, spoken in raw bytes over TCP.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{Response, Server};

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

/// A `/register` request for `username` framed by `Content-Length`.
fn register_request(username: &str, extra_headers: &str) -> Vec<u8> {
    let body = format!(r#"{{"username": "{username}", "password": "{}"}}"#, common::PASSWORD);
    format!(
        "POST /register HTTP/1.1\r\nHost: x\r\n{extra_headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A chunked `/register` request for `username`: the JSON in several chunks,
/// with a chunk extension and a trailer.
fn chunked_register_request(username: &str) -> Vec<u8> {
    let body = format!(r#"{{"username": "{username}", "password": "{}"}}"#, common::PASSWORD);
    let (a, rest) = body.split_at(7);
    let (b, c) = rest.split_at(12);
    let mut out =
        b"POST /register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for (i, piece) in [a, b, c].iter().enumerate() {
        let ext = if i == 1 { ";note=\"two\"" } else { "" };
        out.extend_from_slice(format!("{:x}{ext}\r\n{piece}\r\n", piece.len()).as_bytes());
    }
    out.extend_from_slice(b"0\r\nX-Checksum: none\r\n\r\n");
    out
}

/// Checks the shape every error shares: JSON `{"detail"}`, a `Date`.
fn assert_error(response: &Response, status: u16) {
    assert_eq!(response.status, status, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert!(response.header("date").is_some());
    assert!(!response.detail().is_empty(), "{}", response.text());
}

#[test]
fn healthz_answers_ok_with_date_and_length() {
    let server = Server::start();
    let response = server.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(response.status, 200);
    assert_eq!(response.json(), serde_json::json!({ "status": "ok" }));
    assert!(response.header("date").unwrap().ends_with(" GMT"));
    assert_eq!(response.header("content-length"), Some("15"));
}

#[test]
fn several_requests_share_one_kept_alive_connection() {
    let server = Server::start();
    let mut conn = server.open();
    for _ in 0..3 {
        conn.send(HEALTHZ);
        let response = conn.response();
        assert_eq!(response.status, 200);
        assert_eq!(response.header("connection"), None);
    }
    conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let response = conn.response();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("connection"), Some("close"));
    assert!(conn.is_closed());
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Server::start();
    let mut conn = server.open();
    let mut all = Vec::new();
    all.extend_from_slice(HEALTHZ);
    all.extend_from_slice(&register_request("piper", ""));
    all.extend_from_slice(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    all.extend_from_slice(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    all.extend_from_slice(&chunked_register_request("piper2"));
    all.extend_from_slice(b"GET /me HTTP/1.1\r\nHost: x\r\n\r\n");
    all.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    conn.send(&all);
    assert_eq!(conn.response().status, 200);
    let registered = conn.response();
    assert_eq!(registered.status, 201);
    assert_eq!(registered.json()["username"], "piper");
    assert_eq!(conn.response().status, 404);
    let head = conn.head_response();
    assert_eq!((head.status, head.header("content-length")), (200, Some("15")));
    let registered = conn.response();
    assert_eq!(registered.status, 201);
    assert_eq!(registered.json()["username"], "piper2");
    assert_eq!(conn.response().status, 401);
    let last = conn.response();
    assert_eq!((last.status, last.header("connection")), (200, Some("close")));
    assert!(conn.is_closed());
}

#[test]
fn an_http10_request_is_answered_then_the_connection_closes() {
    let server = Server::start();
    for request in [
        &b"GET /healthz HTTP/1.0\r\n\r\n"[..],
        b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    ] {
        let mut conn = server.open();
        conn.send(request);
        let response = conn.response();
        assert_eq!(response.status, 200);
        assert_eq!(response.header("connection"), Some("close"));
        assert!(conn.is_closed());
    }
}

#[test]
fn head_has_the_headers_of_get_and_no_body() {
    let server = Server::start();
    let mut conn = server.open();
    conn.send(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = conn.head_response();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("15"));
    assert_eq!(head.header("content-type"), Some("application/json"));
    assert!(head.header("date").is_some());
    for (request, status) in [
        (&b"HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n"[..], 404),
        (b"HEAD /me HTTP/1.1\r\nHost: x\r\n\r\n", 401),
    ] {
        conn.send(request);
        let head = conn.head_response();
        assert_eq!(head.status, status);
        assert_ne!(head.header("content-length"), Some("0"));
    }
    // Had any body bytes followed a HEAD response, this would read them as
    // a status line.
    conn.send(HEALTHZ);
    let get = conn.response();
    assert_eq!(get.status, 200);
    assert_eq!(get.json()["status"], "ok");
}

#[test]
fn unknown_paths_get_404_and_known_paths_with_another_method_405_with_allow() {
    let server = Server::start();
    let response = server.request("GET", "/nope", None, None);
    assert_error(&response, 404);
    for (method, path, allow) in [
        ("DELETE", "/me", "GET, HEAD"),
        ("POST", "/healthz", "GET, HEAD"),
        ("GET", "/register", "POST"),
        ("HEAD", "/token", "POST"),
        ("PUT", "/logout", "POST"),
    ] {
        let response = server.request(method, path, None, None);
        assert_eq!(response.status, 405, "{method} {path}");
        assert_eq!(response.header("allow"), Some(allow), "{method} {path}");
        if method != "HEAD" {
            assert_error(&response, 405);
        }
    }
}

#[test]
fn a_small_body_the_route_does_not_read_is_skipped_and_the_connection_kept() {
    let server = Server::start();
    let mut conn = server.open();
    conn.send(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789");
    assert_eq!(conn.response().status, 405);
    conn.send(b"POST /logout HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    assert_eq!(conn.response().status, 204);
    conn.send(HEALTHZ);
    assert_eq!(conn.response().status, 200);
}

#[test]
fn a_chunked_body_with_extensions_and_trailers_is_decoded() {
    let server = Server::start();
    let response = server.raw(&chunked_register_request("chunky"));
    assert_eq!(response.status, 201, "{}", response.text());
    assert_eq!(response.json()["username"], "chunky");
}

#[test]
fn a_request_sent_one_byte_per_write_is_decoded() {
    let server = Server::start();
    let mut conn = server.open();
    for byte in chunked_register_request("bytewise") {
        conn.send(&[byte]);
        std::thread::sleep(Duration::from_micros(200));
    }
    let response = conn.response();
    assert_eq!(response.status, 201, "{}", response.text());
    assert_eq!(response.json()["username"], "bytewise");
}

#[test]
fn a_request_split_into_two_writes_at_any_point_is_decoded() {
    let server = Server::start();
    let mut conn = server.open();
    let len = chunked_register_request("split000").len();
    for split in 1..len {
        let username = format!("split{split:03}");
        let request = chunked_register_request(&username);
        conn.send(&request[..split]);
        // A pause, so that the two parts reach the server as two reads.
        std::thread::sleep(Duration::from_millis(1));
        conn.send(&request[split..]);
        let response = conn.response();
        assert_eq!(response.status, 201, "split at {split}: {}", response.text());
        assert_eq!(response.json()["username"], username.as_str());
    }
}

#[test]
fn expect_continue_gets_100_first_when_the_route_reads_the_body() {
    let server = Server::start();
    let mut conn = server.open();
    let request = register_request("patient", "Expect: 100-continue\r\n");
    let head_len = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    conn.send(&request[..head_len]);
    assert_eq!(conn.response().status, 100);
    conn.send(&request[head_len..]);
    let response = conn.response();
    assert_eq!(response.status, 201, "{}", response.text());
    // The connection stays usable.
    conn.send(HEALTHZ);
    assert_eq!(conn.response().status, 200);
}

#[test]
fn expect_continue_gets_no_100_when_the_route_answers_without_the_body() {
    let server = Server::start();
    for (path, status) in [("/nope", 404), ("/me", 405), ("/logout", 204)] {
        let mut conn = server.open();
        conn.send(
            format!("POST {path} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 20\r\n\r\n").as_bytes(),
        );
        let response = conn.response();
        assert_eq!(response.status, status, "{path}");
        // The client was never told to send its body, so the server cannot
        // find the next request: it closes.
        assert_eq!(response.header("connection"), Some("close"), "{path}");
        assert!(conn.is_closed(), "{path}");
    }
    // A body declared over the limit is refused before the 100 as well.
    let mut conn = server.open();
    conn.send(b"POST /register HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 70000\r\n\r\n");
    assert_error(&conn.response(), 413);
    assert!(conn.is_closed());
}

#[test]
fn malformed_and_ambiguous_requests_get_400_and_the_connection_closes() {
    let server = Server::start();
    let cases: &[&[u8]] = &[
        b"POST /register HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /register HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
        b"POST /register HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"POST /register HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n\r\nabcd",
        b"POST /register HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST /register HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
        b"POST /register HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /register HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551616\r\n\r\n",
        b"POST /register HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Nul: a\0b\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bell: a\x07b\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Del: a\x7fb\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-CR: a\rb\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n",
        b"GET /healthz\r\nHost: x\r\n\r\n",
        b"GET  /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /register HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\n",
        b"POST /register HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n",
        b"POST /register HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ];
    for request in cases {
        let what = String::from_utf8_lossy(request);
        let mut conn = server.open();
        conn.send(request);
        let response = conn.response();
        assert_eq!(response.status, 400, "{what:?}: {}", response.text());
        assert_error(&response, 400);
        assert_eq!(response.header("connection"), Some("close"), "{what:?}");
        assert!(conn.is_closed(), "{what:?}");
    }
}

#[test]
fn a_post_that_needs_a_body_but_declares_no_length_gets_411() {
    let server = Server::start();
    for path in ["/register", "/token"] {
        let mut conn = server.open();
        conn.send(format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n").as_bytes());
        let response = conn.response();
        assert_error(&response, 411);
        assert!(conn.is_closed(), "{path}");
    }
    // A route that needs no body does not ask for one.
    let mut conn = server.open();
    conn.send(b"POST /logout HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(conn.response().status, 204);
    conn.send(HEALTHZ);
    assert_eq!(conn.response().status, 200);
}

#[test]
fn json_and_form_bodies_over_64_kib_get_413() {
    let server = Server::start();
    // Declared too large: refused before a byte of the body is read.
    let mut conn = server.open();
    conn.send(b"POST /register HTTP/1.1\r\nHost: x\r\nContent-Length: 65537\r\n\r\n");
    assert_error(&conn.response(), 413);
    assert!(conn.is_closed());
    // Chunked: refused once the chunks pass the limit.
    let mut conn = server.open();
    conn.send(b"POST /token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    let chunk = format!("8000\r\n{}\r\n", "a".repeat(0x8000));
    for _ in 0..3 {
        conn.send(chunk.as_bytes());
    }
    assert_error(&conn.response(), 413);
    // Exactly 64 KiB is within the limit.
    let json = format!(r#"{{"username": "roomy", "password": "{}"}}"#, common::PASSWORD);
    let body = format!("{json}{}", " ".repeat(64 * 1024 - json.len()));
    let response = server.request("POST", "/register", None, Some(("application/json", body.as_bytes())));
    assert_eq!(response.status, 201, "{}", response.text());
}

#[test]
fn a_request_line_over_8_kib_gets_414_before_anything_else() {
    let server = Server::start();
    let long_line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(8 * 1024));
    let mut conn = server.open();
    conn.send(long_line.as_bytes());
    assert_error(&conn.response(), 414);
    assert!(conn.is_closed());
    // Also when the headers are over their limit too.
    let big_headers = format!("X-Big: {}\r\n", "b".repeat(20 * 1024));
    let response = server.raw(format!("{long_line}{big_headers}\r\n").as_bytes());
    assert_error(&response, 414);
}

#[test]
fn headers_over_16_kib_get_431_however_short_the_request_line() {
    let server = Server::start();
    let field = format!("X-Filler: {}\r\n", "f".repeat(1000));
    let headers = |n: usize| field.repeat(n);
    let mut conn = server.open();
    conn.send(format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n", headers(17)).as_bytes());
    assert_error(&conn.response(), 431);
    assert!(conn.is_closed());
    let response = server.raw(
        format!(
            "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{}\r\n",
            headers(15)
        )
        .as_bytes(),
    );
    assert_eq!(response.status, 200);
}

/// The one test that waits out the 10 s head timeout.
#[test]
fn an_unfinished_head_gets_408_and_a_silent_connection_is_closed_without_a_word() {
    let server = Server::start();
    let mut silent = server.connect();
    let mut conn = server.open();
    conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
    assert_error(&conn.response(), 408);
    assert!(conn.is_closed());
    let mut unsolicited = Vec::new();
    silent.read_to_end(&mut unsolicited).expect("closed cleanly");
    assert!(unsolicited.is_empty(), "{}", String::from_utf8_lossy(&unsolicited));
}

#[test]
fn connections_past_the_bound_get_503_and_close_while_the_others_keep_working() {
    let server = Server::start_with(&["--max-connections=2"]);
    let mut held = vec![server.admitted(), server.admitted()];
    for _ in 0..3 {
        let mut refused = server.open();
        let response = refused.response();
        assert_error(&response, 503);
        assert!(refused.is_closed());
    }
    // One that sends its request before reading is answered the same way.
    let mut stream = server.connect();
    let _ = stream.write_all(HEALTHZ);
    let mut refused = common::Conn::new(stream);
    assert_error(&refused.response(), 503);
    for conn in &mut held {
        conn.send(HEALTHZ);
        assert_eq!(conn.response().status, 200);
    }
    // Once a held connection closes, its place is given to a new one.
    drop(held.pop());
    let mut newcomer = server.admitted();
    newcomer.send(HEALTHZ);
    assert_eq!(newcomer.response().status, 200);
}

#[test]
fn each_request_is_logged_on_one_line_with_address_status_size_and_user() {
    let server = Server::start();
    let token = server.user("logged");
    let response = server.get("/me?x=1", &token);
    assert_eq!(response.status, 200);
    let line_start = format!("GET /me?x=1 200 {}B ", response.body.len());
    let logs = server.wait_for_log(&line_start);
    let line = logs.lines().find(|l| l.contains(&line_start)).expect("request line");
    assert!(
        line.contains(&format!(" INFO 127.0.0.1 {line_start}")),
        "the client's address first: {line}"
    );
    assert!(line.ends_with("user=logged"), "{line}");
    assert_eq!(server.request("GET", "/nope", None, None).status, 404);
    let logs = server.wait_for_log("GET /nope 404");
    let line = logs
        .lines()
        .find(|l| l.contains("GET /nope 404"))
        .unwrap_or_else(|| panic!("{logs}"));
    assert!(line.ends_with("user=-"), "{line}");
}

#[test]
fn an_oversized_body_sent_in_full_before_reading_still_gets_its_413() {
    let server = Server::start();
    for size in [70_000usize, 1_000_000, 8_000_000] {
        let mut stream = server.connect();
        let head = format!("POST /register HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n");
        let mut request = head.into_bytes();
        request.resize(request.len() + size, b' ');
        // The server refuses without reading: the write may fail part-way.
        let _ = stream.write_all(&request);
        let mut conn = common::Conn::new(stream);
        assert_error(&conn.response(), 413);
    }
}
