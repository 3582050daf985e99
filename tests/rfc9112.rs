//! RFC 9112 strictness over real sockets: the table in `rfc9112/cases.rs`
//! (which the head parser's and the chunked decoder's unit tests feed at
//! every split), each case on a fresh connection: its status, that a refusal
//! comes at once, and whether the connection stays open.

#[path = "rfc9112/cases.rs"]
mod cases;
mod common;

use std::time::{Duration, Instant};

use cases::{refused_by_parser, CASES};
use common::{Conn, Server};

/// Far below the 10 s head timeout: a refusal must not wait for it.
const PROMPT: Duration = Duration::from_secs(3);

#[test]
fn every_case_gets_its_status_at_once_and_the_connection_stays_open_only_when_it_may() {
    let server = Server::start();
    for case in CASES {
        let stream = server.connect();
        stream.set_read_timeout(Some(PROMPT)).unwrap();
        let mut conn = Conn::new(stream);
        let sent = Instant::now();
        conn.send(case.input);
        let response = conn.response();
        assert!(
            sent.elapsed() < PROMPT,
            "{}: answered after {:?}",
            case.name,
            sent.elapsed()
        );
        assert_eq!(
            response.status,
            case.status,
            "{} ({:?}): {}",
            case.name,
            case.layer,
            response.text()
        );
        if refused_by_parser(case.status) {
            assert_eq!(
                response.header("content-type"),
                Some("application/json"),
                "{}",
                case.name
            );
            assert!(!response.detail().is_empty(), "{}", case.name);
        }
        if case.status == 405 {
            assert!(response.header("allow").is_some(), "{}", case.name);
        }
        if case.stays_open {
            conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
            assert_eq!(
                conn.response().status,
                200,
                "{}: the connection should stay open",
                case.name
            );
        } else {
            assert!(conn.is_closed(), "{}: the connection should close", case.name);
        }
    }
}
