//! HTTP/1.1 on a raw TCP stream, knowing nothing of the application:
//!
//! - pure parsers over bytes: request heads ([`request`]), chunked bodies
//!   ([`chunked`]), `multipart/form-data` ([`multipart`]) and form/query
//!   pairs ([`form`]);
//! - body streaming ([`body`]) and responses ([`response`]);
//! - the buffered socket with `sendfile` and a lingering close ([`socket`]);
//! - the keep-alive loop ([`conn`]) and the accept loop ([`server`]);
//! - the seam to the application ([`service`]): a `Service` answers an
//!   `Exchange` with a `Response`, and words the transport's refusals;
//! - who made a request ([`forwarded`]): the client's address and TLS,
//!   from the peer or, behind a trusted proxy, from its headers.

pub(crate) mod body;
pub(crate) mod chunked;
pub(crate) mod conn;
pub(crate) mod form;
pub(crate) mod forwarded;
pub(crate) mod multipart;
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod server;
pub(crate) mod service;
pub(crate) mod socket;

/// Whether `s` is an RFC 9110 `token` (header names, media types, parameter
/// names).
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
