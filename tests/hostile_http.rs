//! Hostile HTTP input against the real server: heads that never end or never
//! stop growing, bodies with absurd framing, multipart bodies built to make a
//! parser buffer or loop. Each must be refused with its status (or closed)
//! without the server panicking, hanging, or holding more memory than its
//! bounds allow, and the server must go on serving everyone else.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::resources::memory_kib;
use common::{is_closed, read_response, Response, Server};

/// What the server may hold above its resting size while fending off one of
/// these attacks. An attack that made it buffer what it was sent (a megabyte
/// per connection, or the whole of a flood), or 100 KiB for each of the
/// slowloris connections, would go far past this.
const MEMORY_ALLOWANCE_KIB: u64 = 16 * 1024;

/// Writes `bytes` from another thread, since the server may answer and close
/// long before it has read them all, and reads the one response. Returns the
/// response and the stream, to see whether the server closes it.
fn send_and_read(server: &Server, bytes: Vec<u8>) -> (Response, TcpStream) {
    let stream = server.connect();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&bytes);
    });
    let response = read_response(&mut BufReader::new(stream.try_clone().unwrap()), false).expect("a response");
    sender.join().unwrap();
    (response, stream)
}

/// Refused, and the connection closed after the answer.
fn assert_refused_and_closed(server: &Server, bytes: Vec<u8>, status: u16) -> Response {
    let (response, mut stream) = send_and_read(server, bytes);
    assert_eq!(response.status, status, "{}", response.text());
    assert!(!response.detail().is_empty());
    assert!(is_closed(&mut stream, Duration::from_secs(10)), "connection left open");
    response
}

/// The server's memory high-water mark stayed within the allowance above
/// `resting_kib`, and it still answers.
fn assert_memory_bounded(server: &Server, resting_kib: u64) {
    let peak = memory_kib(server.pid(), "VmHWM");
    assert!(
        peak < resting_kib + MEMORY_ALLOWANCE_KIB,
        "peak resident memory {peak} KiB, at rest {resting_kib} KiB"
    );
    assert_eq!(server.raw(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").status, 200);
}

fn megabyte_request_line() -> Vec<u8> {
    let mut request = b"GET /".to_vec();
    request.resize(1 << 20, b'a');
    request.extend_from_slice(b" HTTP/1.1\r\nHost: t\r\n\r\n");
    request
}

/// `count` minimal header fields.
fn many_headers(count: usize) -> Vec<u8> {
    let mut request = b"GET /healthz HTTP/1.1\r\nHost: t\r\n".to_vec();
    for i in 0..count {
        request.extend_from_slice(format!("x{i}: y\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    request
}

#[test]
fn request_line_of_a_megabyte_is_414_and_closed() {
    let server = Server::start();
    let response = assert_refused_and_closed(&server, megabyte_request_line(), 414);
    assert!(response.detail().contains("request line"), "{}", response.detail());
}

#[test]
fn ten_thousand_headers_are_431_and_closed() {
    let server = Server::start();
    assert_refused_and_closed(&server, many_headers(10_000), 431);
}

#[test]
fn floods_of_huge_heads_on_many_connections_keep_memory_bounded() {
    let server = Server::start();
    let resting = memory_kib(server.pid(), "VmRSS");
    std::thread::scope(|scope| {
        for n in 0..48 {
            let server = &server;
            scope.spawn(move || {
                if n % 2 == 0 {
                    assert_refused_and_closed(server, megabyte_request_line(), 414);
                } else {
                    assert_refused_and_closed(server, many_headers(100_000), 431);
                }
            });
        }
    });
    assert_memory_bounded(&server, resting);
}

#[test]
fn chunk_size_of_two_to_the_64_is_400_and_closed() {
    let server = Server::start();
    let request = b"POST /register HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
                    Transfer-Encoding: chunked\r\n\r\n10000000000000000\r\n{}\r\n0\r\n\r\n";
    let response = assert_refused_and_closed(&server, request.to_vec(), 400);
    assert!(response.detail().contains("64 bits"), "{}", response.detail());
}

#[test]
fn endless_chunked_json_body_is_413_at_64_kib_and_closed() {
    let server = Server::start();
    let resting = memory_kib(server.pid(), "VmRSS");
    // The largest chunk size there is, then data that never ends: only the
    // 64 KiB limit of JSON bodies can stop it.
    let mut stream = server.connect();
    stream
        .write_all(
            b"POST /register HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
              Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
        )
        .unwrap();
    let answered = Arc::new(AtomicBool::new(false));
    let mut writer = stream.try_clone().unwrap();
    let stop = answered.clone();
    let sender = std::thread::spawn(move || {
        let piece = [b' '; 16 * 1024];
        let mut sent = 0u64;
        // Bounded in case the server never answers; the assertion below fails then.
        while !stop.load(Ordering::Relaxed) && sent < 256 << 20 && writer.write_all(&piece).is_ok() {
            sent += piece.len() as u64;
        }
    });
    let response = read_response(&mut BufReader::new(stream.try_clone().unwrap()), false).unwrap();
    answered.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    assert_eq!(response.status, 413, "{}", response.text());
    assert!(is_closed(&mut stream, Duration::from_secs(10)), "connection left open");
    assert_memory_bounded(&server, resting);
}

/// Hundreds of connections each send a head one byte at a time, a little
/// slower than needed to finish it in time. Every one must be answered 408
/// (or closed) once its 10 s are up, and a normal client must be served
/// throughout.
#[test]
fn slowloris_connections_get_408_while_others_are_served() {
    const SLOW: usize = 300;
    let server = Server::start();
    let resting = memory_kib(server.pid(), "VmRSS");
    let started = Instant::now();
    let mut slow: Vec<(TcpStream, Vec<u8>, bool)> = (0..SLOW)
        .map(|_| {
            let stream = server.connect();
            stream.set_nonblocking(true).unwrap();
            (stream, Vec::new(), false)
        })
        .collect();
    let trickle = b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ";
    let mut served = 0;
    let mut tick = 0;
    // Bounded: well past the 10 s head timeout.
    while started.elapsed() < Duration::from_secs(20) && slow.iter().any(|(_, _, closed)| !closed) {
        for (stream, received, closed) in slow.iter_mut().filter(|(_, _, closed)| !*closed) {
            let byte = trickle.get(tick).copied().unwrap_or(b'a');
            let _ = stream.write(&[byte]);
            let mut buf = [0u8; 1024];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => *closed = true,
                    Ok(n) => {
                        received.extend_from_slice(&buf[..n]);
                        continue;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => *closed = true,
                }
                break;
            }
        }
        tick += 1;
        let response = server.raw(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        assert_eq!(response.status, 200, "a normal client was not served");
        served += 1;
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(served > 10, "the test did not run alongside the slow clients");
    for (i, (_, received, closed)) in slow.iter().enumerate() {
        assert!(closed, "slow connection {i} still open after {:?}", started.elapsed());
        let answer = String::from_utf8_lossy(received);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408 "),
            "slow connection {i} got {answer:?}"
        );
    }
    assert!(
        slow.iter()
            .any(|(_, received, _)| received.starts_with(b"HTTP/1.1 408 ")),
        "no slow connection was answered 408"
    );
    assert_memory_bounded(&server, resting);
}

const BOUNDARY: &str = "hostile-boundary";

fn upload_head(token: &str, content_type: &str, framing: &str) -> Vec<u8> {
    format!(
        "POST /files/upload HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: {content_type}\r\n{framing}\r\n\r\n"
    )
    .into_bytes()
}

fn multipart_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// After a refused upload nothing is left in the uploads directory.
fn assert_nothing_stored(server: &Server) {
    let empty = common::resources::eventually(Duration::from_secs(10), || server.stored_files().is_empty());
    assert!(empty, "a refused upload left a file behind");
}

#[test]
fn multipart_body_that_never_closes_its_boundary_is_400() {
    let server = Server::start();
    let token = server.user("mallory");
    let mut request = upload_head(&token, &multipart_type(), "Transfer-Encoding: chunked");
    let part = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n");
    for piece in [part.as_bytes(), &[b'x'; 100_000]] {
        request.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        request.extend_from_slice(piece);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let response = assert_refused_and_closed(&server, request, 400);
    assert!(response.detail().contains("closing boundary"), "{}", response.detail());
    assert_nothing_stored(&server);
}

#[test]
fn multipart_boundary_of_200_characters_is_400() {
    let server = Server::start();
    let token = server.user("mallory");
    let boundary = "b".repeat(200);
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let mut request = upload_head(&token, &content_type, "Content-Length: 220");
    request.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let response = assert_refused_and_closed(&server, request, 400);
    assert!(response.detail().contains("boundary"), "{}", response.detail());
}

#[test]
fn a_million_tiny_parts_are_refused_at_the_part_bound() {
    const PARTS: usize = 1_000_000;
    let server = Server::start();
    let token = server.user("mallory");
    let resting = memory_kib(server.pid(), "VmRSS");
    let part = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"p\"\r\n\r\nx\r\n");
    let closing = format!("--{BOUNDARY}--\r\n");
    let length = part.len() * PARTS + closing.len();
    let mut stream = server.connect();
    stream
        .write_all(&upload_head(
            &token,
            &multipart_type(),
            &format!("Content-Length: {length}"),
        ))
        .unwrap();
    let answered = Arc::new(AtomicBool::new(false));
    let mut writer = stream.try_clone().unwrap();
    let stop = answered.clone();
    let sender = std::thread::spawn(move || {
        let batch = part.repeat(1000);
        let mut sent = 0;
        while sent < PARTS && !stop.load(Ordering::Relaxed) && writer.write_all(batch.as_bytes()).is_ok() {
            sent += 1000;
        }
        if sent == PARTS {
            let _ = writer.write_all(closing.as_bytes());
        }
        sent
    });
    let response = read_response(&mut BufReader::new(stream.try_clone().unwrap()), false).unwrap();
    answered.store(true, Ordering::Relaxed);
    let sent = sender.join().unwrap();
    assert_eq!(response.status, 400, "{}", response.text());
    assert!(response.detail().contains("too many parts"), "{}", response.detail());
    assert!(sent < PARTS, "answered only after the whole body was sent");
    assert!(is_closed(&mut stream, Duration::from_secs(10)), "connection left open");
    assert_memory_bounded(&server, resting);
}

#[test]
fn multipart_part_header_of_a_megabyte_is_400() {
    let server = Server::start();
    let token = server.user("mallory");
    let resting = memory_kib(server.pid(), "VmRSS");
    let mut body = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"\r\nX-Huge: ").into_bytes();
    body.resize(body.len() + (1 << 20), b'h');
    body.extend_from_slice(format!("\r\n\r\nx\r\n--{BOUNDARY}--\r\n").as_bytes());
    let mut request = upload_head(&token, &multipart_type(), &format!("Content-Length: {}", body.len()));
    request.extend_from_slice(&body);
    let response = assert_refused_and_closed(&server, request, 400);
    assert!(response.detail().contains("header"), "{}", response.detail());
    assert_nothing_stored(&server);
    assert_memory_bounded(&server, resting);
}

/// Each head is ambiguous about where its body ends. A front proxy could
/// read it one way and this server another, and the bytes after it would
/// then be a second, smuggled request. The server answers 400 and closes, so
/// nothing after the head is ever served.
#[test]
fn ambiguous_framing_is_400_and_nothing_after_it_is_served() {
    let server = Server::start();
    let smuggled = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    for head in [
        "POST /register HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST /register HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
        "POST /register HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\n",
        "POST /register HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n",
        "POST /register HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
        "POST /register HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:\r\n chunked\r\n\r\n",
        "POST /register HTTP/1.1\r\nHost: t\r\nContent-Length: 0x4\r\n\r\n",
    ] {
        let mut stream = server.connect();
        stream
            .write_all(format!("{head}0\r\n\r\n{smuggled}").as_bytes())
            .unwrap();
        let mut all = Vec::new();
        let _ = stream.read_to_end(&mut all);
        let all = String::from_utf8_lossy(&all);
        assert!(all.starts_with("HTTP/1.1 400 "), "{head:?}: {all}");
        assert_eq!(
            all.matches("HTTP/1.1 ").count(),
            1,
            "{head:?}: a second response: {all}"
        );
    }
}
