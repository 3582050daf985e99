//! Reading a request body from the connection, framed by `Content-Length` or
//! chunked encoding. Handlers pull the body piece by piece ([`Body::chunk`]),
//! so an upload streams to disk and a JSON body is read only up to its limit.
//!
//! `100 Continue` is sent on the first pull and not before: a handler that
//! refuses the request without reading (say, 401 on an upload) answers before
//! the client has sent a byte of its body, and the connection is then closed
//! because the body the client may still send was never read.
//!
//! A request with neither `Content-Length` nor chunked encoding has no body
//! (RFC 9112). A handler that needs one gets [`BodyError::LengthRequired`]
//! (411) when it tries to read it; a handler that needs none never notices.

use std::fmt;
use std::time::Duration;

use super::chunked::{ChunkedDecoder, ChunkedError};
use super::request::{Framing, Request};
use super::socket::Socket;

/// A client that stops sending in the middle of a body is dropped after this.
pub(crate) const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub enum BodyError {
    /// The handler needs a body but the request declared no framing.
    LengthRequired,
    TooLarge(u64),
    Chunked(ChunkedError),
    Truncated,
    TimedOut,
    Io(std::io::Error),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::LengthRequired => f.write_str("no Content-Length or chunked encoding"),
            BodyError::TooLarge(limit) => write!(f, "body over {limit} bytes"),
            BodyError::Chunked(e) => write!(f, "bad chunked framing: {e}"),
            BodyError::Truncated => f.write_str("connection closed in the middle of the body"),
            BodyError::TimedOut => f.write_str("body not received in time"),
            BodyError::Io(e) => write!(f, "{e}"),
        }
    }
}

enum State {
    Length {
        remaining: u64,
    },
    Chunked(ChunkedDecoder),
    /// No framing was declared: there is no body to read or to drain.
    Unframed,
    Done,
    /// A framing or I/O error happened: the rest of the stream is garbage.
    Broken,
}

pub struct Body<'c> {
    conn: &'c mut Socket,
    state: State,
    /// Bytes handed out by the last `chunk` call, consumed on the next.
    lent: usize,
    continue_pending: bool,
    received: u64,
}

impl<'c> Body<'c> {
    pub fn new(conn: &'c mut Socket, request: &Request) -> Body<'c> {
        let state = match request.framing {
            Framing::None => State::Unframed,
            Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length { remaining: n },
            Framing::Chunked => State::Chunked(ChunkedDecoder::default()),
        };
        Body {
            conn,
            continue_pending: request.expect_continue && !matches!(state, State::Done | State::Unframed),
            state,
            lent: 0,
            received: 0,
        }
    }

    /// The length the client declared, if it declared one.
    pub fn declared_len(&self) -> Option<u64> {
        match self.state {
            State::Length { remaining } => Some(remaining + self.received),
            _ => None,
        }
    }

    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Done | State::Unframed)
    }

    /// Whether the body is known before reading it to be over `limit`.
    pub fn exceeds(&self, limit: u64) -> bool {
        self.declared_len().is_some_and(|n| n > limit)
    }

    /// The next piece of the body, or `None` once it has all been read.
    pub async fn chunk(&mut self) -> Result<Option<&[u8]>, BodyError> {
        self.conn.consume(std::mem::take(&mut self.lent));
        if self.continue_pending {
            self.continue_pending = false;
            self.conn
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .map_err(BodyError::Io)?;
        }
        let result = self.next_range().await;
        if result.is_err() {
            self.state = State::Broken;
        }
        let Some((start, len)) = result? else {
            return Ok(None);
        };
        self.lent = start + len;
        self.received += len as u64;
        Ok(Some(&self.conn.buffered()[start..start + len]))
    }

    /// Finds the next data range in the connection's buffer, reading more
    /// from the socket as needed. Returns `(offset, len)` into the buffer.
    async fn next_range(&mut self) -> Result<Option<(usize, usize)>, BodyError> {
        loop {
            match &mut self.state {
                State::Done => return Ok(None),
                State::Unframed => return Err(BodyError::LengthRequired),
                State::Broken => return Err(BodyError::Truncated),
                State::Length { remaining } => {
                    let available = self.conn.buffered().len();
                    if available > 0 {
                        let len = (*remaining).min(available as u64) as usize;
                        *remaining -= len as u64;
                        if *remaining == 0 {
                            self.state = State::Done;
                        }
                        return Ok(Some((0, len)));
                    }
                }
                State::Chunked(decoder) => {
                    let step = decoder.step(self.conn.buffered()).map_err(BodyError::Chunked)?;
                    if let Some(range) = step.data {
                        // Framing bytes before the data are consumed with it on the next call.
                        return Ok(Some((range.start, range.len())));
                    }
                    self.conn.consume(step.consumed);
                    if step.done {
                        self.state = State::Done;
                        return Ok(None);
                    }
                }
            }
            match tokio::time::timeout(BODY_READ_TIMEOUT, self.conn.fill()).await {
                Err(_) => return Err(BodyError::TimedOut),
                Ok(Err(e)) => return Err(BodyError::Io(e)),
                Ok(Ok(0)) => return Err(BodyError::Truncated),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Reads the whole body into memory, refusing it as soon as it passes
    /// `limit` (a declared length over the limit is refused unread).
    pub async fn read_to_end(&mut self, limit: u64) -> Result<Vec<u8>, BodyError> {
        if self.exceeds(limit) {
            return Err(BodyError::TooLarge(limit));
        }
        let mut out = Vec::new();
        while let Some(piece) = self.chunk().await? {
            if out.len() as u64 + piece.len() as u64 > limit {
                return Err(BodyError::TooLarge(limit));
            }
            out.extend_from_slice(piece);
        }
        Ok(out)
    }

    /// Brings the connection to the start of the next request after a
    /// handler that did not read the whole body. Returns whether the
    /// connection can be kept: a body the client was told not to send yet
    /// (pending `100 Continue`), a broken one, or a large one is not read.
    pub async fn finish(mut self, drain_limit: u64) -> bool {
        self.conn.consume(std::mem::take(&mut self.lent));
        match self.state {
            State::Done | State::Unframed => return true,
            State::Broken => return false,
            _ if self.continue_pending => return false,
            State::Length { remaining } if remaining > drain_limit => return false,
            _ => {}
        }
        let start = self.received;
        while let Ok(Some(_)) = self.chunk().await {
            if self.received - start > drain_limit {
                return false;
            }
        }
        self.conn.consume(std::mem::take(&mut self.lent));
        self.is_complete()
    }
}
