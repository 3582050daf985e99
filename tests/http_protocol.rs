//! HTTP/1.1 behaviour of the real server, spoken in raw bytes over TCP.

mod common;

use common::Server;

#[test]
fn healthz_answers_ok_with_date_and_length() {
    let server = Server::start();
    let response = server.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(response.status, 200);
    assert_eq!(response.json(), serde_json::json!({ "status": "ok" }));
    assert!(response.header("date").unwrap().ends_with(" GMT"));
    assert_eq!(response.header("content-length"), Some("15"));
}
