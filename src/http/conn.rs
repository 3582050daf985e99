//! One HTTP/1.1 connection: a buffered socket ([`Connection`]) and the
//! keep-alive loop that reads a head, hands the request to the router,
//! writes the response and decides whether the connection can carry another.
//!
//! Time bounds: a new connection must complete its first head within
//! [`HEAD_TIMEOUT`]; between requests a connection may idle for
//! [`IDLE_TIMEOUT`] and, once the first byte of the next head arrives, must
//! complete it within [`HEAD_TIMEOUT`]. A head that times out part-way gets
//! 408; a connection that sent nothing is closed without a word. A response
//! the client stops reading is given up, and the connection closed, once the
//! client has taken none of it for [`WRITE_TIMEOUT`].

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
// Tokio's clock, not std's, so that tests can run the timeouts on a paused clock.
use tokio::time::{timeout, timeout_at, Instant};

use super::body::Body;
use super::request::{self, HeadError, Method, Request};
use super::response::{self, Response};
use crate::error::ApiError;
use crate::log::{self, Level};
use crate::router::{Exchange, Service};
use crate::server::{App, Shutdown};

pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest a client may take none of a response: one that stopped
/// reading would otherwise hold its connection (and a download its file and
/// connection permit) for as long as it likes.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// An unread body up to this size is skipped to keep the connection; a larger
/// one closes it.
const DRAIN_LIMIT: u64 = 64 * 1024;
const READ_CHUNK: usize = 64 * 1024;
/// Bodies up to this size go out in the same write as the head.
const COALESCE_LIMIT: usize = 16 * 1024;
/// The most one `sendfile(2)` call is asked to move. The socket takes only
/// what fits in its send buffer (a few MiB at most), so this bounds how long
/// one call can keep a blocking thread reading from a slow disk, while a call
/// per send buffer keeps the round trips to the blocking pool rare.
const SENDFILE_CHUNK: usize = 8 * 1024 * 1024;
/// The longest a closing connection discards the rest of an unread body.
const LINGER: Duration = Duration::from_secs(3);

/// A socket with a read buffer. Bytes are appended at the end and consumed
/// from `start`, so pipelined requests and body bytes that arrived with a
/// head are never lost between layers.
pub struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
}

impl Connection {
    pub fn new(stream: TcpStream) -> Connection {
        Connection {
            stream,
            buf: Vec::new(),
            start: 0,
        }
    }

    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.buf.len());
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    /// Reads more bytes from the socket; `Ok(0)` is end of stream.
    ///
    /// The buffer grows (doubling, up to reads of [`READ_CHUNK`]) only once
    /// what it holds fills half of it, so it stays within about twice what
    /// the peer has really sent. Growing on every read instead would let a
    /// peer that trickles a byte at a time (slowloris) double it with each
    /// byte, to over 100 KiB per connection.
    pub async fn fill(&mut self) -> io::Result<usize> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.len() >= self.buf.capacity() / 2 {
            self.buf.reserve(READ_CHUNK.min(self.buf.capacity().max(4096)));
        }
        self.stream.read_buf(&mut self.buf).await
    }

    /// Writes all of `bytes`, waiting for room as [`Connection::writable`]
    /// does.
    pub async fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match self.stream.try_write(bytes) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable().await?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Waits until the socket can take more bytes, as long as the client
    /// keeps taking what it was sent: gives up when none of the bytes queued
    /// in the socket left it for [`WRITE_TIMEOUT`]. The queue is what counts,
    /// not our writes: with large kernel buffers, a client that reads slowly
    /// but steadily makes room in big steps, far apart.
    async fn writable(&self) -> io::Result<()> {
        let ready = self.stream.writable();
        tokio::pin!(ready);
        let mut queued = unacknowledged(&self.stream)?;
        loop {
            match timeout(WRITE_TIMEOUT, &mut ready).await {
                Ok(ready) => return ready,
                Err(_) => {
                    let now = unacknowledged(&self.stream)?;
                    if now >= queued {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the client stopped reading the response",
                        ));
                    }
                    queued = now;
                }
            }
        }
    }

    /// The socket and the bytes read past what was consumed, in a buffer
    /// of their own size (the read buffer may have grown far larger).
    fn into_parts(self) -> (TcpStream, Vec<u8>) {
        (self.stream, self.buf[self.start..].to_vec())
    }
}

/// Why the loop stopped waiting for a head.
enum HeadWait {
    Request(Box<Request>, usize),
    /// Peer closed, idle timeout or shutdown: close without a response.
    Close,
    Refuse(ApiError),
}

/// Serves requests until the connection closes or switches protocols; in
/// the latter case returns the new protocol for the caller to run.
pub async fn serve(
    stream: TcpStream,
    app: Arc<App>,
    service: &impl Service,
    mut shutdown: Shutdown,
) -> Option<response::Upgraded> {
    let _ = stream.set_nodelay(true);
    let mut conn = Connection::new(stream);
    let mut out = Vec::with_capacity(1024);
    let mut first = true;
    loop {
        let (request, head_len) = match read_head(&mut conn, first, &mut shutdown).await {
            HeadWait::Request(request, len) => (request, len),
            HeadWait::Close => return None,
            HeadWait::Refuse(error) => {
                crate::log!(Level::Info, "- - {} (refused: {})", error.status, error.detail);
                // The rest of a refused head (and any body) is still arriving.
                if write_response(&mut conn, &mut out, error.into_response(), false, false)
                    .await
                    .is_ok()
                {
                    let _ = conn.stream.shutdown().await;
                    linger(&mut conn).await;
                }
                return None;
            }
        };
        first = false;
        conn.consume(head_len);
        let started = Instant::now();
        let mut exchange = Exchange::new(&app, &request, Body::new(&mut conn, &request));
        let (response, close) = match service.handle(&mut exchange).await {
            Ok(response) => (response, false),
            Err(error) => {
                let close = error.close;
                (error.into_response(), close)
            }
        };
        let Exchange { body, user, .. } = exchange;
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
            _ => {
                let _ = conn.stream.shutdown().await;
                if !body_done {
                    linger(&mut conn).await;
                }
                return None;
            }
        }
    }
}

/// Closing a socket with unread input makes the kernel reset the connection,
/// and a reset can destroy a response the client has not read yet (a 413 in
/// the middle of an upload, say). So after answering a request whose body was
/// not read to its end, the write side is shut and whatever the client still
/// sends is discarded, until it closes or [`LINGER`] has passed.
async fn linger(conn: &mut Connection) {
    let deadline = Instant::now() + LINGER;
    loop {
        conn.consume(conn.buffered().len());
        match timeout_at(deadline, conn.fill()).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return,
        }
    }
}

async fn read_head(conn: &mut Connection, first: bool, shutdown: &mut Shutdown) -> HeadWait {
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
                Err(e) => HeadWait::Refuse(head_error(e)),
            };
        }
        if let Err(e) = request::check_partial(buffered) {
            return HeadWait::Refuse(head_error(e));
        }
        scanned = buffered.len();
        let waiting_for_first_byte = buffered.is_empty();
        let read = tokio::select! {
            read = timeout_at(deadline, conn.fill()) => read,
            _ = shutdown.triggered(), if waiting_for_first_byte => return HeadWait::Close,
        };
        match read {
            Err(_) if waiting_for_first_byte => return HeadWait::Close,
            Err(_) => return HeadWait::Refuse(ApiError::new(408, "request headers not received in time")),
            Ok(Ok(0)) | Ok(Err(_)) => return HeadWait::Close,
            Ok(Ok(_)) if waiting_for_first_byte && !first => deadline = Instant::now() + HEAD_TIMEOUT,
            Ok(Ok(_)) => {}
        }
    }
}

fn head_error(error: HeadError) -> ApiError {
    let status = match error {
        HeadError::UriTooLong => 414,
        HeadError::HeadersTooLarge => 431,
        HeadError::Malformed(_) => 400,
    };
    ApiError::new(status, error.to_string())
}

/// Writes head and body. Returns the upgrade to run if the response switched
/// protocols.
async fn write_response(
    conn: &mut Connection,
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
        response::Body::File { file, offset, len } => {
            conn.write_all(out).await?;
            if has_body {
                send_file(conn, file, offset, len).await?;
            }
        }
    }
    conn.stream.flush().await?;
    Ok(upgrade)
}

/// Sends `len` bytes of `file` from `offset` with `sendfile(2)`: the bytes go
/// from the page cache to the socket without passing through user space.
///
/// `sendfile` blocks while it reads pages that are not cached, and an async
/// worker must never wait for the disk, so each call runs on a blocking
/// thread, and only once the socket has room: the socket is non-blocking, so
/// the call moves what fits and returns. Waiting for room happens here, on
/// the event loop, where a slow or vanished client costs no thread.
async fn send_file(conn: &mut Connection, file: File, mut offset: u64, len: u64) -> io::Result<()> {
    let end = offset
        .checked_add(len)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "range past the largest offset"))?;
    let mut transfer = Transfer {
        file,
        socket: conn.stream.as_fd().try_clone_to_owned()?,
    };
    while offset < end {
        conn.writable().await?;
        let count = usize::try_from(end - offset).map_or(SENDFILE_CHUNK, |left| left.min(SENDFILE_CHUNK));
        let (returned, sent) = tokio::task::spawn_blocking(move || {
            let sent = transfer.send(offset, count);
            (transfer, sent)
        })
        .await
        .map_err(io::Error::other)?;
        transfer = returned;
        match sent {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shorter than its record",
                ))
            }
            Ok(n) => offset += n as u64,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => forget_stale_writable(&conn.stream)?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Bytes written to the socket that the client has not acknowledged yet.
fn unacknowledged(stream: &TcpStream) -> io::Result<u64> {
    let mut queued: libc::c_int = 0;
    // SAFETY: TIOCOUTQ on a socket we own writes one int through the pointer.
    if unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut queued) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(u64::try_from(queued).unwrap_or_default())
}

/// What one `sendfile` call needs, moved to a blocking thread and back.
struct Transfer {
    file: File,
    /// A duplicate of the socket's descriptor. Should the connection be
    /// dropped while a call runs (at shutdown), the socket stays open until
    /// the call returns, so its descriptor number cannot meanwhile be reused
    /// by another connection that would then receive this file's bytes.
    socket: OwnedFd,
}

impl Transfer {
    /// One `sendfile` of up to `count` bytes from `offset`. Blocking.
    fn send(&self, offset: u64, count: usize) -> io::Result<usize> {
        let mut offset = libc::off_t::try_from(offset).map_err(io::Error::other)?;
        // SAFETY: both descriptors are open for the whole call (owned by
        // `self`), and `offset` is a valid `off_t` the call may update.
        let sent = unsafe { libc::sendfile(self.socket.as_raw_fd(), self.file.as_raw_fd(), &mut offset, count) };
        usize::try_from(sent).map_err(|_| io::Error::last_os_error())
    }
}

/// `sendfile` found the socket full although tokio last saw it writable:
/// that readiness is stale and must be cleared, or `writable()` would answer
/// at once forever. It is cleared only if the socket has no room now, checked
/// inside `try_io`: a wakeup that came after the full `sendfile` is then
/// either seen by the check or makes tokio ignore the clearing, never lost.
fn forget_stale_writable(stream: &TcpStream) -> io::Result<()> {
    let checked = stream.try_io(Interest::WRITABLE, || {
        let mut poll = libc::pollfd {
            fd: stream.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid pollfd, and a zero timeout: this never blocks.
        match unsafe { libc::poll(&mut poll, 1, 0) } {
            0 => Err(io::ErrorKind::WouldBlock.into()),
            n if n > 0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    });
    match checked {
        Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
        _ => Ok(()),
    }
}

fn log_request(request: &Request, status: u16, bytes: u64, started: Instant, user: Option<&str>) {
    let level = if status >= 500 { Level::Warn } else { Level::Info };
    crate::log!(
        level,
        "{} {} {} {}B {}ms user={}",
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
    use crate::server::ShutdownTrigger;
    use tokio::net::TcpListener;

    /// The server's end of a fresh loopback connection, and the client's.
    async fn pair() -> (Connection, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Connection::new(server), client)
    }

    /// What `read_head` ended with, and after how long (on the paused clock).
    async fn wait_for_head(conn: &mut Connection, first: bool, shutdown: &mut Shutdown) -> (Option<u16>, Duration) {
        let start = Instant::now();
        let status = match read_head(conn, first, shutdown).await {
            HeadWait::Request(..) => Some(200),
            HeadWait::Close => None,
            HeadWait::Refuse(error) => Some(error.status),
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

    /// A temp file holding `len` bytes that differ from one offset to the next.
    fn patterned_file(len: usize) -> (File, Vec<u8>) {
        use std::io::Write;
        let content: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&content).unwrap();
        (file, content)
    }

    #[tokio::test]
    async fn a_range_larger_than_one_sendfile_call_arrives_whole_even_to_a_slow_reader() {
        let (mut conn, mut client) = pair().await;
        let (file, content) = patterned_file(2 * SENDFILE_CHUNK + 12_345);
        let (offset, len) = (1000, content.len() - 2000);
        let reader = tokio::spawn(async move {
            // The send buffer fills before the first byte is read.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut received = Vec::new();
            client.read_to_end(&mut received).await.unwrap();
            received
        });
        send_file(&mut conn, file, offset as u64, len as u64).await.unwrap();
        drop(conn);
        assert!(reader.await.unwrap() == content[offset..offset + len]);
    }

    #[tokio::test]
    async fn a_file_shorter_than_its_record_is_an_error_after_what_it_has() {
        let (mut conn, mut client) = pair().await;
        let (file, content) = patterned_file(1000);
        let reader = tokio::spawn(async move {
            let mut received = Vec::new();
            client.read_to_end(&mut received).await.unwrap();
            received
        });
        let error = send_file(&mut conn, file, 0, 2000).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        drop(conn);
        assert!(reader.await.unwrap() == content);
    }

    #[tokio::test]
    async fn a_client_gone_mid_file_ends_the_transfer_with_an_error() {
        let (mut conn, client) = pair().await;
        let (file, _) = patterned_file(2 * SENDFILE_CHUNK);
        drop(client);
        let error = send_file(&mut conn, file, 0, 2 * SENDFILE_CHUNK as u64)
            .await
            .unwrap_err();
        assert!(
            matches!(error.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset),
            "{error}"
        );
    }

    /// The time `write` took to fail with a timeout (on the paused clock)
    /// while the client reads nothing.
    async fn time_to_give_up(write: impl std::future::Future<Output = io::Result<()>>) -> Duration {
        let start = Instant::now();
        let error = write.await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error}");
        start.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_nobody_reads_is_given_up_after_30s() {
        let (mut conn, _client) = pair().await;
        let body = vec![b'x'; 4 * SENDFILE_CHUNK];
        let elapsed = time_to_give_up(conn.write_all(&body)).await;
        assert!(about(elapsed, WRITE_TIMEOUT), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_file_nobody_reads_is_given_up_after_30s() {
        let (mut conn, _client) = pair().await;
        let (file, _) = patterned_file(4 * SENDFILE_CHUNK);
        let elapsed = time_to_give_up(send_file(&mut conn, file, 0, 4 * SENDFILE_CHUNK as u64)).await;
        assert!(about(elapsed, WRITE_TIMEOUT), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_reading_gets_the_whole_response() {
        let (mut conn, mut client) = pair().await;
        let body: Vec<u8> = (0..4 * SENDFILE_CHUNK).map(|i| (i % 251) as u8).collect();
        let reader = tokio::spawn(async move {
            let mut received = Vec::new();
            let mut piece = vec![0u8; 1024 * 1024];
            loop {
                // Each pause is shorter than the timeout, all of them far longer.
                tokio::time::sleep(WRITE_TIMEOUT / 2).await;
                match client.read(&mut piece).await.unwrap() {
                    0 => return received,
                    n => received.extend_from_slice(&piece[..n]),
                }
            }
        });
        conn.write_all(&body).await.unwrap();
        drop(conn);
        assert!(reader.await.unwrap() == body);
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
