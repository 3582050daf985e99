//! A TCP socket with a read buffer, and the ways a response leaves it: bytes
//! written with a bound on how long the client may take none of them,
//! files sent with `sendfile(2)`, and the lingering close that keeps a
//! response from being destroyed by a reset.
//!
//! Bytes are appended at the end of the buffer and consumed from `start`, so
//! pipelined requests and body bytes that arrived with a head are never lost
//! between layers.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
// Tokio's clock, not std's, so that tests can run the timeouts on a paused clock.
use tokio::time::timeout;

use crate::sync::blocking;
use crate::sys;

/// The longest a client may take none of a response: one that stopped
/// reading would otherwise hold its connection (and a download its file and
/// connection permit) for as long as it likes.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
const READ_CHUNK: usize = 64 * 1024;
/// The most one `sendfile(2)` call is asked to move. The socket takes only
/// what fits in its send buffer (a few MiB at most), so this bounds how long
/// one call can keep a blocking thread reading from a slow disk, while a call
/// per send buffer keeps the round trips to the blocking pool rare.
pub(super) const SENDFILE_CHUNK: usize = 8 * 1024 * 1024;

pub struct Socket {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
}

impl Socket {
    pub fn new(stream: TcpStream) -> Socket {
        Socket {
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

    /// Writes all of `bytes`, waiting for room as [`Socket::writable`] does.
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

    pub async fn flush(&mut self) -> io::Result<()> {
        self.stream.flush().await
    }

    /// Waits until the socket can take more bytes, as long as the client
    /// keeps taking what it was sent: gives up when none of the bytes queued
    /// in the socket left it for [`WRITE_TIMEOUT`]. The queue is what counts,
    /// not our writes: with large kernel buffers, a client that reads slowly
    /// but steadily makes room in big steps, far apart.
    async fn writable(&self) -> io::Result<()> {
        let ready = self.stream.writable();
        tokio::pin!(ready);
        let mut queued = sys::unacknowledged(self.stream.as_fd())?;
        loop {
            match timeout(WRITE_TIMEOUT, &mut ready).await {
                Ok(ready) => return ready,
                Err(_) => {
                    let now = sys::unacknowledged(self.stream.as_fd())?;
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

    /// Sends `len` bytes of `file` from `offset` with `sendfile(2)`.
    ///
    /// `sendfile` blocks while it reads pages that are not cached, and an
    /// async worker must never wait for the disk, so each call runs on a
    /// blocking thread, and only once the socket has room: the socket is
    /// non-blocking, so the call moves what fits and returns. Waiting for
    /// room happens here, on the event loop, where a slow or vanished client
    /// costs no thread.
    pub async fn send_file(&mut self, file: File, mut offset: u64, len: u64) -> io::Result<()> {
        let end = offset
            .checked_add(len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "range past the largest offset"))?;
        let mut transfer = Transfer {
            file,
            socket: self.stream.as_fd().try_clone_to_owned()?,
        };
        while offset < end {
            self.writable().await?;
            let count = usize::try_from(end - offset).map_or(SENDFILE_CHUNK, |left| left.min(SENDFILE_CHUNK));
            let (returned, sent) = blocking(move || {
                let sent = sys::sendfile(transfer.socket.as_fd(), &transfer.file, offset, count);
                Ok((transfer, sent))
            })
            .await?;
            transfer = returned;
            match sent {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shorter than its record",
                    ))
                }
                Ok(n) => offset += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.forget_stale_writable()?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `sendfile` found the socket full although tokio last saw it writable:
    /// that readiness is stale and must be cleared, or `writable()` would
    /// answer at once forever. It is cleared only if the socket has no room
    /// now, checked inside `try_io`: a wakeup that came after the full
    /// `sendfile` is then either seen by the check or makes tokio ignore the
    /// clearing, never lost.
    fn forget_stale_writable(&self) -> io::Result<()> {
        let checked = self.stream.try_io(Interest::WRITABLE, || {
            if sys::is_writable_now(self.stream.as_fd())? {
                Ok(())
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            }
        });
        match checked {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(()),
        }
    }

    /// Ends our side of the connection (FIN).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.stream.shutdown().await
    }

    /// Shuts our side and discards what the client still sends (see
    /// [`linger`]), starting with what is already buffered, for at most
    /// `within`.
    pub async fn linger(&mut self, within: Duration) {
        self.consume(self.buffered().len());
        let _ = timeout(within, linger(&mut self.stream, usize::MAX)).await;
    }

    /// The socket and the bytes read past what was consumed, in a buffer
    /// of their own size (the read buffer may have grown far larger).
    pub fn into_parts(self) -> (TcpStream, Vec<u8>) {
        (self.stream, self.buf[self.start..].to_vec())
    }
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

/// Closing a socket with unread input makes the kernel reset the connection,
/// and a reset can destroy what the client has not read yet (a 413 in the
/// middle of an upload, a WebSocket close frame after a flood). So our side
/// is shut first (FIN), then whatever the client still sends is read and
/// thrown away, until it closes its side or `max_bytes` were discarded.
///
/// The caller bounds the whole in time. No timer lives in here: this future
/// is part of every chat session's state, idle ones included (a session
/// future is as large as its largest state), and the session's close is
/// already under a timeout of its own.
pub(crate) async fn linger(stream: &mut TcpStream, max_bytes: usize) {
    if stream.shutdown().await.is_err() {
        return;
    }
    // On the heap, for the same reason.
    let mut scratch = vec![0u8; 4096];
    let mut drained = 0;
    while drained < max_bytes {
        match stream.read(&mut scratch).await {
            Ok(n) if n > 0 => drained += n,
            _ => return,
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use tokio::net::TcpListener;
    use tokio::time::Instant;

    /// The server's end of a fresh loopback connection, and the client's.
    pub(crate) async fn pair() -> (Socket, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Socket::new(server), client)
    }

    fn about(elapsed: Duration, expected: Duration) -> bool {
        elapsed >= expected && elapsed < expected + Duration::from_secs(1)
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
        conn.send_file(file, offset as u64, len as u64).await.unwrap();
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
        let error = conn.send_file(file, 0, 2000).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        drop(conn);
        assert!(reader.await.unwrap() == content);
    }

    #[tokio::test]
    async fn a_client_gone_mid_file_ends_the_transfer_with_an_error() {
        let (mut conn, client) = pair().await;
        let (file, _) = patterned_file(2 * SENDFILE_CHUNK);
        drop(client);
        let error = conn.send_file(file, 0, 2 * SENDFILE_CHUNK as u64).await.unwrap_err();
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
        let elapsed = time_to_give_up(conn.send_file(file, 0, 4 * SENDFILE_CHUNK as u64)).await;
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
                // Each pause is well under the timeout (a write whose
                // readiness is reported a pause late still makes it), all
                // of them far longer.
                tokio::time::sleep(WRITE_TIMEOUT / 4).await;
                match client.read(&mut piece).await.unwrap() {
                    0 => return received,
                    n => received.extend_from_slice(&piece[..n]),
                }
                // On the paused clock the next timer fires at once; the
                // kernel moves the freed window's bytes out of the sender's
                // queue in real time. Blocking this (only) thread for a real
                // moment lets it, as the seconds between reads would.
                std::thread::sleep(std::time::Duration::from_millis(40));
            }
        });
        conn.write_all(&body).await.unwrap();
        drop(conn);
        assert!(reader.await.unwrap() == body);
    }
}
