//! HTTP/1.1 on a raw TCP stream: parsing of request heads ([`request`]) and
//! chunked bodies ([`chunked`]) as pure state machines, body streaming
//! ([`body`]), responses ([`response`]) and the keep-alive loop ([`conn`]).

pub mod body;
pub mod chunked;
pub mod conn;
pub mod form;
pub mod request;
pub mod response;

/// Whether `s` is an RFC 9110 `token` (header names, media types, parameter
/// names).
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
