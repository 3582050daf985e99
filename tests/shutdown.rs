//! Graceful shutdown on SIGTERM and SIGINT: stop accepting, let in-flight
//! requests finish, close idle connections, exit 0.

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::{Server, PASSWORD};

#[test]
fn sigterm_lets_an_in_flight_request_finish_closes_idle_connections_and_exits_0() {
    let mut server = Server::start();
    let mut idle = server.admitted();
    let mut busy = server.open();
    let body = format!(r#"{{"username": "late", "password": "{PASSWORD}"}}"#);
    busy.send(
        format!(
            "POST /register HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    // The 100 says the handler is reading the body: the request is in flight.
    assert_eq!(busy.response().status, 100);
    server.signal(libc::SIGTERM);
    server.wait_for_log("shutting down");
    assert!(idle.is_closed(), "an idle connection is closed at shutdown");
    busy.send(body.as_bytes());
    let response = busy.response();
    assert_eq!(response.status, 201, "{}", response.text());
    assert_eq!(response.header("connection"), Some("close"));
    assert!(busy.is_closed());
    assert_eq!(server.wait_for_exit(), Some(0));
    assert!(TcpStream::connect(server.addr).is_err(), "still accepting after exit");
}

#[test]
fn sigint_shuts_down_gracefully_too() {
    let mut server = Server::start();
    let mut idle = server.admitted();
    server.signal(libc::SIGINT);
    assert!(idle.is_closed());
    assert_eq!(server.wait_for_exit(), Some(0));
    assert!(server.logs().contains("shutting down"));
}

#[test]
fn a_signal_right_after_start_up_is_still_a_graceful_shutdown() {
    for _ in 0..5 {
        let mut server = Server::start();
        assert_eq!(server.stop(), Some(0));
    }
}

#[test]
fn a_second_signal_during_the_graceful_shutdown_ends_the_process_at_once() {
    for (first, second) in [(libc::SIGTERM, libc::SIGTERM), (libc::SIGINT, libc::SIGTERM)] {
        let mut server = Server::start();
        let mut busy = server.open();
        // A request in flight keeps the graceful shutdown waiting (up to
        // its grace period of 10 s) for the rest of its body.
        busy.send(b"POST /register HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 50\r\n\r\n");
        assert_eq!(busy.response().status, 100);
        server.signal(first);
        server.wait_for_log("shutting down");
        assert_eq!(
            server.wait_exit(Duration::from_millis(300)),
            None,
            "still waiting for the request"
        );
        server.signal(second);
        assert_eq!(server.wait_exit(Duration::from_secs(2)), Some(1), "ended at once");
        assert!(server.logs().contains("second signal"), "{}", server.logs());
    }
}
