//! WebSocket helpers: a real client (tokio-tungstenite over TCP) for the
//! chat as users see it, and raw frames for what a well-behaved client
//! never sends.

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{read_response, Response, Server};

/// Longest wait for anything the server should send; a test that hits it
/// has failed, no assertion depends on it.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

pub(crate) struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
}

impl Client {
    /// Opens `/ws/chat?token=...`.
    pub(crate) async fn connect(server: &Server, token: &str) -> Client {
        Client::resume(server, token, "").await
    }

    /// Opens `/ws/chat?token=...&query`, e.g. with `after_id=5` or `last=20`.
    pub(crate) async fn resume(server: &Server, token: &str, query: &str) -> Client {
        let url = format!("ws://{}/ws/chat?token={token}&{query}", server.addr);
        let (ws, response) = tokio_tungstenite::connect_async(url).await.expect("handshake");
        assert_eq!(response.status(), 101);
        Client { ws }
    }

    /// Connects as a user's first connection and waits for its own `join`.
    pub(crate) async fn join(server: &Server, token: &str, username: &str) -> Client {
        let mut client = Client::connect(server, token).await;
        client.wait_for(|e| is(e, "join") && e["username"] == username).await;
        client
    }

    pub(crate) async fn send(&mut self, message: Message) {
        self.ws.send(message).await.expect("send");
    }

    pub(crate) async fn say(&mut self, text: &str) {
        self.send(Message::text(text)).await;
    }

    /// Sends `text` and waits for its acknowledgement: the broadcast copy
    /// from `username` with this content. Returns its id.
    pub(crate) async fn post(&mut self, username: &str, text: &str) -> i64 {
        self.say(text).await;
        let ack = self
            .wait_for(|e| is(e, "message") && e["username"] == username && e["content"] == text.trim())
            .await;
        ack["id"].as_i64().unwrap()
    }

    /// The next event; fails on a close or if none comes.
    pub(crate) async fn event(&mut self) -> Value {
        loop {
            match timeout(WAIT, self.ws.next()).await.expect("no event in time") {
                Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).expect("event is JSON"),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected an event, got {other:?}"),
            }
        }
    }

    /// Skips events until one matches.
    pub(crate) async fn wait_for(&mut self, matches: impl Fn(&Value) -> bool) -> Value {
        loop {
            let event = self.event().await;
            if matches(&event) {
                return event;
            }
        }
    }

    /// Reads until the server closes: the events before the close frame,
    /// and its code.
    pub(crate) async fn closed(&mut self) -> (Vec<Value>, u16) {
        let mut events = Vec::new();
        loop {
            match timeout(WAIT, self.ws.next()).await.expect("no close in time") {
                Some(Ok(Message::Text(text))) => events.push(serde_json::from_str(&text).unwrap()),
                Some(Ok(Message::Close(Some(frame)))) => return (events, frame.code.into()),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("expected a close frame, got {other:?} after {events:?}"),
            }
        }
    }
}

/// Whether an event has this `type`.
pub(crate) fn is(event: &Value, kind: &str) -> bool {
    event["type"] == kind
}

/// A handshake request for `target`, with extra header lines.
pub(crate) fn handshake(server: &Server, target: &str, extra: &[String]) -> String {
    let mut head = format!(
        "GET {target} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        server.addr
    );
    for line in extra {
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head
}

/// Performs a handshake on a plain socket and returns it, positioned at the
/// first WebSocket frame.
pub(crate) fn upgrade_raw(server: &Server, token: &str) -> BufReader<TcpStream> {
    let mut reader = BufReader::new(server.connect());
    let request = handshake(server, &format!("/ws/chat?token={token}"), &[]);
    reader.get_mut().write_all(request.as_bytes()).unwrap();
    let response: Response = read_response(&mut reader, false).unwrap();
    assert_eq!(response.status, 101);
    reader
}

/// One frame with FIN set, masked (as clients must) or not.
pub(crate) fn frame(opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// Reads one (unmasked, server) frame: its opcode and payload.
pub(crate) fn read_frame(reader: &mut impl Read) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    reader.read_exact(&mut head)?;
    let len = match head[1] & 0x7f {
        126 => {
            let mut n = [0u8; 2];
            reader.read_exact(&mut n)?;
            u16::from_be_bytes(n) as usize
        }
        127 => {
            let mut n = [0u8; 8];
            reader.read_exact(&mut n)?;
            u64::from_be_bytes(n) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    reader.read_exact(&mut payload)?;
    Ok((head[0] & 0x0f, payload))
}

/// Reads raw frames until a close frame: the events before it and its code.
pub(crate) fn read_until_close(reader: &mut impl Read) -> (Vec<Value>, u16) {
    let mut events = Vec::new();
    loop {
        let (opcode, payload) = read_frame(reader).expect("a frame before the close");
        match opcode {
            0x1 => events.push(serde_json::from_slice(&payload).unwrap()),
            0x8 => return (events, u16::from_be_bytes([payload[0], payload[1]])),
            _ => {}
        }
    }
}
