//! WebSocket conformance: the Autobahn test suite's fuzzing client (through
//! the `kosoku` package: `pip install kosoku`) against an echo endpoint that
//! is served by the server's own accept loop, HTTP layer, handshake checks,
//! `101` and WebSocket settings. The echo route exists only in this test: it
//! is put in front of the real route table through [`Service`], so the
//! shipped binary has no such route.
//!
//! The suite's cases 9.* (throughput with messages of up to 16 MiB, beyond
//! the server's 64 KiB bound by design) and 12.* and 13.* (permessage-deflate,
//! which the server does not offer) are not run. The test needs kosoku, so
//! it is `#[ignore]`d: `cargo test -- --include-ignored` (or `bash .ci/run`,
//! which installs it) runs it, and it fails if kosoku is missing.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use chat_server::{
    handshake_key, switching_protocols, websocket_config, ApiError, Close, Config, Exchange, Level, Refusal, Response,
    Routes, Service, ShutdownTrigger,
};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const ECHO_PATH: &str = "/echo";
const EXCLUDED: &[&str] = &["9.*", "12.*", "13.*"];

/// The real routes, with `/echo` in front.
struct Echo(Routes);

impl Service for Echo {
    async fn handle(&self, ex: &mut Exchange<'_, '_>) -> Response {
        if ex.request.path() != ECHO_PATH {
            return self.0.handle(ex).await;
        }
        match handshake_key(ex.request) {
            Ok(key) => switching_protocols(key, Box::new(|stream, leftover| Box::pin(echo(stream, leftover)))),
            Err(refused) => ApiError::from(refused).into_response(),
        }
    }

    fn refuse(&self, refusal: Refusal) -> Response {
        self.0.refuse(refusal)
    }
}

/// Sends every data message back; tungstenite answers pings and completes
/// closes the client starts. A violation is closed with the code the chat
/// would use, then the client gets a moment to finish the close.
async fn echo(stream: TcpStream, leftover: Vec<u8>) {
    let mut ws = WebSocketStream::from_partially_read(stream, leftover, Role::Server, Some(websocket_config())).await;
    let close = loop {
        match ws.next().await {
            Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                if ws.send(message).await.is_err() {
                    return;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => break Close::for_error(&error),
            None => return,
        }
    };
    if let Some(close) = close {
        let frame = CloseFrame {
            code: close.code.into(),
            reason: close.detail.into(),
        };
        if ws.close(Some(frame)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), async { while ws.next().await.is_some() {} }).await;
        }
    }
}

/// Runs the fuzzing client and prints one JSON line: how many cases ended
/// in each verdict (`behavior` for the messages, `close` for the closing
/// handshake) and every case with a verdict other than OK.
const RUNNER: &str = r#"
import asyncio, collections, json, sys
from kosoku import FailureError, run_fuzzingclient

async def main():
    try:
        results = await run_fuzzingclient(sys.argv[1], None, sys.argv[2:], concurrency=4)
    except FailureError as failure:
        results = failure.results
    print(json.dumps({
        "cases": len(results),
        "behavior": collections.Counter(r.behavior.value for r in results),
        "close": collections.Counter(r.behavior_close.value for r in results),
        "not_ok": sorted(
            f"{r.case_id}: {r.behavior.value}/{r.behavior_close.value}"
            for r in results
            if r.behavior.value != "OK" or r.behavior_close.value != "OK"
        ),
    }))

asyncio.run(main())
"#;

fn kosoku_installed() -> bool {
    Command::new("python3")
        .args(["-c", "import kosoku"])
        .output()
        .is_ok_and(|output| output.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Python's kosoku (bash .ci/run installs it)"]
async fn autobahn_fuzzing_client_finds_no_failure_in_the_websocket_stack() {
    assert!(
        kosoku_installed(),
        "the kosoku package is not installed: python3 -m pip install kosoku (bash .ci/run installs it)"
    );
    chat_server::set_log_level(Level::Error);
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        db: dir.path().join("chat.db"),
        uploads_dir: dir.path().join("uploads"),
        bcrypt_cost: 4,
        ..Config::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = ShutdownTrigger::new();
    let routes = chat_server::build(&config, shutdown.clone()).await.unwrap();
    let serving = tokio::spawn(chat_server::serve(
        listener,
        Arc::new(Echo(routes)),
        config.max_connections,
        shutdown,
    ));

    let url = format!("ws://{addr}{ECHO_PATH}");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(["-c", RUNNER, &url])
            .args(EXCLUDED)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap_or_else(|e| {
            panic!(
                "no summary ({e}): {stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    eprintln!("{summary:#}");
    assert!(summary["cases"].as_u64().unwrap() > 200, "{summary}");
    assert_eq!(summary["behavior"].get("FAILED"), None, "{summary:#}");
    assert_eq!(summary["close"].get("FAILED"), None, "{summary:#}");

    trigger.trigger();
    serving.await.unwrap();
}
