//! The keep-alive loop of one HTTP/1.1 connection: read a head, hand the
//! request to the [`Service`], write the response and decide whether the
//! connection can carry another.
//!
//! Time bounds: a new connection must complete its first head within
//! [`HEAD_TIMEOUT`]; between requests a connection may idle for
//! [`IDLE_TIMEOUT`] and, once the first byte of the next head arrives, must
//! complete it within [`HEAD_TIMEOUT`]. A head that times out part-way is
//! refused (408); a connection that sent nothing is closed without a word. A
//! response the client stops reading is given up, and the connection closed,
//! once the client has taken none of it for
//! [`WRITE_TIMEOUT`](super::socket::WRITE_TIMEOUT).

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use tokio::net::TcpStream;
// Tokio's clock, not std's, so that tests can run the timeouts on a paused clock.
use tokio::time::{timeout_at, Instant};

use super::body::Body;
use super::forwarded::Client;
use super::request::{self, Method, Request};
use super::response::{self, Response};
use super::service::{Exchange, Refusal, Service};
use super::socket::Socket;
use crate::log::{self, Level};
use crate::shutdown::Shutdown;

pub(crate) const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// An unread body up to this size is skipped to keep the connection; a larger
/// one closes it.
const DRAIN_LIMIT: u64 = 64 * 1024;
/// Bodies up to this size go out in the same write as the head.
const COALESCE_LIMIT: usize = 16 * 1024;
/// The longest a closing connection discards the rest of an unread body.
const LINGER: Duration = Duration::from_secs(3);

/// Why the loop stopped waiting for a head.
enum HeadWait {
    Request(Box<Request>, usize),
    /// Peer closed, idle timeout or shutdown: close without a response.
    Close,
    Refuse(Refusal),
}

/// Serves requests until the connection closes or switches protocols; in
/// the latter case returns the new protocol for the caller to run. `peer`
/// is the address the connection came from.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: IpAddr,
    service: &impl Service,
    mut shutdown: Shutdown,
) -> Option<response::Upgraded> {
    let _ = stream.set_nodelay(true);
    let mut conn = Socket::new(stream);
    let mut out = Vec::with_capacity(1024);
    let mut first = true;
    loop {
        let (request, head_len) = match read_head(&mut conn, first, &mut shutdown).await {
            HeadWait::Request(request, len) => (request, len),
            HeadWait::Close => return None,
            HeadWait::Refuse(refusal) => {
                let why = refusal.to_string();
                let response = service.refuse(refusal);
                crate::log!(Level::Info, "{peer} - - {} (refused: {why})", response.status);
                // The rest of a refused head (and any body) is still arriving.
                if write_response(&mut conn, &mut out, response, false, false)
                    .await
                    .is_ok()
                {
                    conn.linger(LINGER).await;
                }
                return None;
            }
        };
        first = false;
        conn.consume(head_len);
        let started = Instant::now();
        let mut exchange = Exchange {
            request: &request,
            body: Body::new(&mut conn, &request),
            user: None,
            client: Client::of(peer, &request, service.trusted_proxies()),
            started,
        };
        let response = service.handle(&mut exchange).await;
        let Exchange { body, user, client, .. } = exchange;
        let close = response.close;
        let body_done = if close {
            body.is_complete()
        } else {
            body.finish(DRAIN_LIMIT).await
        };
        let keep_alive = request.keep_alive && body_done && !close && !shutdown.is_triggered();
        let head_only = request.method == Method::Head;
        let status = response.status;
        let length = response.content_length();
        let upgrade = response.upgrade.is_some();
        let written = write_response(&mut conn, &mut out, response, keep_alive, head_only).await;
        log_request(
            client,
            &request,
            status,
            if head_only { 0 } else { length },
            started,
            user.as_deref(),
        );
        match written {
            Ok(Some(upgrade)) => {
                let (stream, rest) = conn.into_parts();
                return Some(upgrade(stream, rest));
            }
            Ok(None) if keep_alive && !upgrade => {}
            _ if body_done => {
                let _ = conn.shutdown().await;
                return None;
            }
            _ => {
                conn.linger(LINGER).await;
                return None;
            }
        }
    }
}

async fn read_head(conn: &mut Socket, first: bool, shutdown: &mut Shutdown) -> HeadWait {
    let mut deadline = Instant::now()
        + if first || !conn.buffered().is_empty() {
            HEAD_TIMEOUT
        } else {
            IDLE_TIMEOUT
        };
    let mut scanned = 0;
    loop {
        let buffered = conn.buffered();
        if let Some(end) = request::find_head_end(buffered, scanned) {
            return match request::parse(&buffered[..end]) {
                Ok(request) => HeadWait::Request(Box::new(request), end),
                Err(e) => HeadWait::Refuse(Refusal::Head(e)),
            };
        }
        if let Err(e) = request::check_partial(buffered, scanned) {
            return HeadWait::Refuse(Refusal::Head(e));
        }
        scanned = buffered.len();
        let waiting_for_first_byte = buffered.is_empty();
        let read = tokio::select! {
            read = timeout_at(deadline, conn.fill()) => read,
            _ = shutdown.triggered(), if waiting_for_first_byte => return HeadWait::Close,
        };
        match read {
            Err(_) if waiting_for_first_byte => return HeadWait::Close,
            Err(_) => return HeadWait::Refuse(Refusal::HeadTimeout),
            Ok(Ok(0)) | Ok(Err(_)) => return HeadWait::Close,
            Ok(Ok(_)) if waiting_for_first_byte && !first => deadline = Instant::now() + HEAD_TIMEOUT,
            Ok(Ok(_)) => {}
        }
    }
}

/// Writes head and body. Returns the upgrade to run if the response switched
/// protocols.
async fn write_response(
    conn: &mut Socket,
    out: &mut Vec<u8>,
    mut response: Response,
    keep_alive: bool,
    head_only: bool,
) -> io::Result<Option<response::Upgrade>> {
    out.clear();
    response.encode_head(keep_alive, out);
    let upgrade = response.upgrade.take();
    let has_body = !head_only && !matches!(response.status, 100..=199 | 204 | 304);
    match response.body {
        response::Body::Bytes(bytes) if has_body && bytes.len() <= COALESCE_LIMIT => {
            out.extend_from_slice(&bytes);
            conn.write_all(out).await?;
        }
        response::Body::Bytes(bytes) => {
            conn.write_all(out).await?;
            if has_body {
                conn.write_all(&bytes).await?;
            }
        }
        response::Body::File {
            file,
            offset,
            len,
            descriptor,
        } => {
            conn.write_all(out).await?;
            if has_body {
                conn.send_file(file, offset, len).await?;
            }
            drop(descriptor);
        }
    }
    conn.flush().await?;
    Ok(upgrade)
}

fn log_request(client: Client, request: &Request, status: u16, bytes: u64, started: Instant, user: Option<&str>) {
    let level = if status >= 500 { Level::Warn } else { Level::Info };
    crate::log!(
        level,
        "{} {} {} {} {}B {}ms user={}",
        client.addr,
        request.method.as_str(),
        log::printable(&log::redact(&request.target)),
        status,
        bytes,
        started.elapsed().as_millis(),
        user.unwrap_or("-")
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::socket::tests::pair;
    use crate::shutdown::ShutdownTrigger;
    use tokio::io::AsyncWriteExt;

    /// What `read_head` ended with, and after how long (on the paused clock).
    async fn wait_for_head(conn: &mut Socket, first: bool, shutdown: &mut Shutdown) -> (Option<u16>, Duration) {
        let start = Instant::now();
        let status = match read_head(conn, first, shutdown).await {
            HeadWait::Request(..) => Some(200),
            HeadWait::Close => None,
            HeadWait::Refuse(Refusal::HeadTimeout) => Some(408),
            HeadWait::Refuse(refusal) => panic!("refused: {refusal}"),
        };
        (status, start.elapsed())
    }

    fn about(elapsed: Duration, expected: Duration) -> bool {
        elapsed >= expected && elapsed < expected + Duration::from_secs(1)
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_keep_alive_connection_is_closed_silently_after_60s() {
        let (mut conn, _client) = pair().await;
        let (_trigger, mut shutdown) = ShutdownTrigger::new();
        let (status, elapsed) = wait_for_head(&mut conn, false, &mut shutdown).await;
        assert_eq!(status, None);
        assert!(about(elapsed, IDLE_TIMEOUT), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_connection_that_sends_nothing_is_closed_silently_after_10s() {
        let (mut conn, _client) = pair().await;
        let (_trigger, mut shutdown) = ShutdownTrigger::new();
        let (status, elapsed) = wait_for_head(&mut conn, true, &mut shutdown).await;
        assert_eq!(status, None);
        assert!(about(elapsed, HEAD_TIMEOUT), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_unfinished_first_head_gets_408_after_10s() {
        let (mut conn, mut client) = pair().await;
        client.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let (_trigger, mut shutdown) = ShutdownTrigger::new();
        let (status, elapsed) = wait_for_head(&mut conn, true, &mut shutdown).await;
        assert_eq!(status, Some(408));
        assert!(about(elapsed, HEAD_TIMEOUT), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn after_an_idle_pause_the_next_head_gets_10s_from_its_first_byte() {
        let (mut conn, mut client) = pair().await;
        let pause = Duration::from_secs(30);
        tokio::spawn(async move {
            tokio::time::sleep(pause).await;
            client.write_all(b"GET /heal").await.unwrap();
            // Keep the client's end open until the server gives up.
            tokio::time::sleep(IDLE_TIMEOUT).await;
        });
        let (_trigger, mut shutdown) = ShutdownTrigger::new();
        let (status, elapsed) = wait_for_head(&mut conn, false, &mut shutdown).await;
        assert_eq!(status, Some(408));
        assert!(about(elapsed, pause + HEAD_TIMEOUT), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_closes_a_connection_waiting_for_its_next_request_at_once() {
        let (mut conn, _client) = pair().await;
        let (trigger, mut shutdown) = ShutdownTrigger::new();
        trigger.trigger();
        let (status, elapsed) = wait_for_head(&mut conn, false, &mut shutdown).await;
        assert_eq!(status, None);
        assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_arriving_in_pieces_is_read_whole() {
        let (mut conn, mut client) = pair().await;
        tokio::spawn(async move {
            for piece in [&b"GET /healthz HT"[..], b"TP/1.1\r\nHost: x\r", b"\n\r\nnext"] {
                client.write_all(piece).await.unwrap();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            tokio::time::sleep(IDLE_TIMEOUT).await;
        });
        let (_trigger, mut shutdown) = ShutdownTrigger::new();
        let HeadWait::Request(request, len) = read_head(&mut conn, true, &mut shutdown).await else {
            panic!("no request");
        };
        assert_eq!(request.target, "/healthz");
        conn.consume(len);
        assert_eq!(conn.buffered(), b"next");
    }
}
