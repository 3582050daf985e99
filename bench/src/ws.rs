//! WebSocket connections to `/ws/chat` and the chat events they carry.
//!
//! Connections are opened a bounded number at a time and handed to the
//! caller as soon as each is up, so that the caller can start reading it at
//! once: a connection left unread while thousands of others join would fill
//! its queue on the server with join events and be dropped as a slow consumer.

use std::borrow::Cow;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Instant};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::WebSocketStream;

use crate::error::{Context, Error, Result};
use crate::http::Endpoint;

pub type Ws = WebSocketStream<TcpStream>;

/// Handshakes in flight at once: enough to open thousands of connections
/// quickly, few enough not to overflow the server's accept backlog.
const OPEN_CONCURRENCY: usize = 64;

/// Opens one authenticated chat connection.
pub async fn connect(endpoint: &Endpoint, token: &str) -> Result<Ws> {
    connect_with(endpoint, token, "").await
}

/// Opens one authenticated chat connection with more query parameters
/// (`after_id=42`, `last=20`), or none if `query` is empty.
pub async fn connect_with(endpoint: &Endpoint, token: &str, query: &str) -> Result<Ws> {
    let tcp = endpoint.dial().await?;
    let separator = if query.is_empty() { "" } else { "&" };
    let url = format!("ws://{}/ws/chat?token={token}{separator}{query}", endpoint.authority);
    // Small buffers: the default 128 KiB read buffer, allocated up front,
    // would make ten thousand idle connections cost the client 1.3 GB.
    let config = WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024);
    match tokio_tungstenite::client_async_with_config(url, tcp, Some(config)).await {
        Ok((ws, _)) => Ok(ws),
        Err(WsError::Http(response)) => {
            let body = response
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            Err(Error::new(format!(
                "GET /ws/chat: handshake refused with HTTP {} {}",
                response.status(),
                body.trim()
            )))
        }
        Err(e) => Err(Error::new(format!("GET /ws/chat: handshake failed: {e}"))),
    }
}

/// Opens `count` connections, spread round-robin over `tokens` and over
/// the nodes of `endpoints` (connection `i` to `endpoints[i % len]`), and
/// hands each to `start` with its index as soon as it is open.
pub async fn open_many(
    endpoints: &[Endpoint],
    tokens: &[String],
    count: usize,
    deadline: Instant,
    start: impl FnMut(usize, Ws),
) -> Result<()> {
    open_many_with(endpoints, tokens, "", count, deadline, start).await
}

/// [`open_many`] with more query parameters on every connection, as in
/// [`connect_with`].
pub async fn open_many_with(
    endpoints: &[Endpoint],
    tokens: &[String],
    query: &str,
    count: usize,
    deadline: Instant,
    mut start: impl FnMut(usize, Ws),
) -> Result<()> {
    let mut opening = futures_util::stream::iter(0..count)
        .map(|i| {
            let token = &tokens[i % tokens.len()];
            let endpoint = &endpoints[i % endpoints.len()];
            async move { (i, connect_with(endpoint, token, query).await) }
        })
        .buffer_unordered(OPEN_CONCURRENCY);
    let mut opened = 0;
    loop {
        let next = timeout_at(deadline, opening.next()).await.map_err(|_| {
            Error::new(format!(
                "only {opened} of {count} WebSocket connections opened within --timeout"
            ))
        })?;
        let Some((i, ws)) = next else {
            return Ok(());
        };
        let ws = ws.context(format!(
            "WebSocket connection {} of {count} (after {opened} opened)",
            i + 1
        ))?;
        opened += 1;
        start(i, ws);
    }
}

/// Closes connections politely: a close frame, then reading until the
/// server's answer, so that neither side sees a reset.
pub async fn close_all(sockets: Vec<Ws>) {
    futures_util::stream::iter(sockets)
        .for_each_concurrent(OPEN_CONCURRENCY, close)
        .await;
}

/// Closes one connection politely, giving up after 2 s.
pub async fn close(mut ws: Ws) {
    let _ = timeout(Duration::from_secs(2), async {
        if ws.close(None).await.is_ok() {
            while let Some(Ok(_)) = ws.next().await {}
        }
    })
    .await;
}

/// A server-to-client chat event, reduced to what the benchmarks use. The
/// content borrows from the frame unless it had escapes to undo.
#[derive(Debug, PartialEq)]
pub enum Event<'a> {
    Message {
        id: i64,
        content: Cow<'a, str>,
    },
    Error {
        code: String,
    },
    /// Join and leave events, and anything not understood.
    Other,
}

/// The fields of any event that the benchmarks read; the others are
/// skipped without being built, which matters at a million events a second.
#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    id: Option<i64>,
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    code: Option<Cow<'a, str>>,
}

pub fn parse_event(text: &str) -> Event<'_> {
    let Ok(fields) = serde_json::from_str::<Fields<'_>>(text) else {
        return Event::Other;
    };
    match (&*fields.kind, fields.id, fields.content) {
        ("message", Some(id), Some(content)) => Event::Message { id, content },
        ("error", ..) => Event::Error {
            code: fields.code.as_deref().unwrap_or("unknown").to_string(),
        },
        _ => Event::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_events_give_id_and_content() {
        let text = r#"{"type":"message","id":42,"username":"alice","content":"Hello","created_at":"2025-01-01T00:00:00.000Z"}"#;
        assert_eq!(
            parse_event(text),
            Event::Message {
                id: 42,
                content: "Hello".into()
            }
        );
    }

    #[test]
    fn escaped_content_is_unescaped() {
        assert_eq!(
            parse_event(r#"{"type":"message","id":7,"content":"say \"hi\"\n"}"#),
            Event::Message {
                id: 7,
                content: "say \"hi\"\n".into()
            }
        );
    }

    #[test]
    fn error_events_give_their_code() {
        assert_eq!(
            parse_event(r#"{"type":"error","code":"rate_limited","detail":"slow down"}"#),
            Event::Error {
                code: "rate_limited".into()
            }
        );
    }

    #[test]
    fn joins_leaves_and_garbage_are_other() {
        assert_eq!(
            parse_event(r#"{"type":"join","username":"bob","online":3}"#),
            Event::Other
        );
        assert_eq!(
            parse_event(r#"{"type":"leave","username":"bob","online":2}"#),
            Event::Other
        );
        assert_eq!(
            parse_event(r#"{"type":"message","id":"x","content":"c"}"#),
            Event::Other
        );
        assert_eq!(parse_event("not json"), Event::Other);
        assert_eq!(parse_event("[1,2]"), Event::Other);
    }
}
