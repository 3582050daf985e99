//! The one error type handlers return, and the one place where every
//! failure becomes an HTTP status: the `From` impls below decide the status
//! of each lower layer's errors (storage, body framing, the transport's
//! refusals, multipart, the WebSocket handshake, tokens, password hashing,
//! the disk), so no handler picks a status for such a fault by itself. The
//! response is written by [`Response::detail`], which the transport's own
//! refusals go through as well.

use std::borrow::Cow;
use std::io;

use crate::auth::passwords::PasswordError;
use crate::auth::tokens::TokenError;
use crate::db::DbError;
use crate::descriptors;
use crate::http::body::BodyError;
use crate::http::multipart::MultipartError;
use crate::http::request::HeadError;
use crate::http::response::Response;
use crate::http::service::Refusal;
use crate::log::Level;
use crate::sys;
use crate::ws::handshake::HandshakeError;

#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub detail: Cow<'static, str>,
    /// Headers the status needs (`Allow` for 405, `Upgrade` for 426, ...).
    headers: Vec<(&'static str, String)>,
    /// After this error the connection cannot be trusted to be in sync
    /// (malformed framing, an unread body): answer, then close.
    pub close: bool,
}

impl ApiError {
    pub fn new(status: u16, detail: impl Into<Cow<'static, str>>) -> ApiError {
        ApiError {
            status,
            detail: detail.into(),
            headers: Vec::new(),
            close: false,
        }
    }

    pub fn bad_request(detail: impl Into<Cow<'static, str>>) -> ApiError {
        ApiError::new(400, detail).closing()
    }

    pub fn unauthorized(detail: impl Into<Cow<'static, str>>) -> ApiError {
        ApiError::new(401, detail)
    }

    pub fn forbidden(detail: impl Into<Cow<'static, str>>) -> ApiError {
        ApiError::new(403, detail)
    }

    pub fn not_found(detail: impl Into<Cow<'static, str>>) -> ApiError {
        ApiError::new(404, detail)
    }

    pub fn method_not_allowed(allow: String) -> ApiError {
        ApiError::new(405, "method not allowed").header("Allow", allow)
    }

    pub fn unprocessable(detail: impl Into<Cow<'static, str>>) -> ApiError {
        ApiError::new(422, detail)
    }

    /// Too many failed logins (429): the client may try again after
    /// `wait`, rounded up to whole seconds for `Retry-After`.
    pub fn throttled(wait: std::time::Duration) -> ApiError {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        ApiError::new(429, "too many failed logins; try again later").header("Retry-After", secs.max(1).to_string())
    }

    pub fn internal() -> ApiError {
        ApiError::new(500, "internal server error")
    }

    /// A failure to store or read the bytes of a file: 507 when the disk is
    /// full, otherwise a fault that is logged and answered 500.
    pub fn storage(error: io::Error) -> ApiError {
        if sys::is_disk_full(&error) {
            return ApiError::new(507, "no room left to store the file");
        }
        // Answered and closed, as at the connection bound: the connection's
        // own descriptor is the next one given back.
        if descriptors::is_exhausted(&error) {
            return ApiError::new(503, "server at its open-file limit, try again shortly").closing();
        }
        crate::log!(Level::Error, "file storage failed: {error}");
        ApiError::internal()
    }

    pub fn closing(mut self) -> ApiError {
        self.close = true;
        self
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> ApiError {
        self.headers.push((name, value.into()));
        self
    }

    pub fn into_response(self) -> Response {
        let mut response = Response::detail(self.status, &self.detail);
        if self.status == 401 {
            response = response.header("WWW-Authenticate", "Bearer");
        }
        for (name, value) in self.headers {
            response = response.header(name, value);
        }
        if self.close {
            response = response.closing();
        }
        response
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> ApiError {
        match err {
            DbError::Unavailable(_) => ApiError::new(503, "the database is unavailable, try again shortly"),
            DbError::Other(e) => {
                crate::log!(Level::Error, "database error: {e}");
                ApiError::internal()
            }
            DbError::NotFound(detail) => ApiError::not_found(detail),
        }
    }
}

impl From<BodyError> for ApiError {
    fn from(err: BodyError) -> ApiError {
        match err {
            // Closed: bytes the client may send as an undeclared body would
            // otherwise be read as the next request.
            BodyError::LengthRequired => ApiError::new(
                411,
                "this request needs a body with Content-Length or chunked Transfer-Encoding",
            )
            .closing(),
            BodyError::TooLarge(limit) => {
                ApiError::new(413, format!("request body is larger than {limit} bytes")).closing()
            }
            BodyError::Chunked(e) => ApiError::bad_request(format!("bad chunked body: {e}")),
            BodyError::TimedOut => ApiError::new(408, "request body not received in time").closing(),
            BodyError::Io(_) | BodyError::Truncated => ApiError::bad_request("request body ended early"),
        }
    }
}

/// The transport always closes after a refusal, whatever the flag says.
impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> ApiError {
        match refusal {
            Refusal::Head(e @ HeadError::UriTooLong) => ApiError::new(414, e.to_string()),
            Refusal::Head(e @ HeadError::HeadersTooLarge) => ApiError::new(431, e.to_string()),
            Refusal::Head(e @ HeadError::UnknownMethod) => ApiError::new(501, e.to_string()),
            Refusal::Head(e @ HeadError::VersionNotSupported) => ApiError::new(505, e.to_string()),
            Refusal::Head(e @ HeadError::Malformed(_)) => ApiError::new(400, e.to_string()),
            Refusal::HeadTimeout => ApiError::new(408, "request headers not received in time"),
            Refusal::OverCapacity => ApiError::new(503, "server at its connection limit, try again shortly"),
        }
    }
}

impl From<HandshakeError> for ApiError {
    fn from(err: HandshakeError) -> ApiError {
        match err {
            HandshakeError::NotWebSocket => {
                ApiError::new(426, "this endpoint speaks WebSocket only").header("Upgrade", "websocket")
            }
            HandshakeError::UnsupportedVersion => {
                ApiError::new(400, "unsupported WebSocket version, only 13 is spoken")
                    .header("Sec-WebSocket-Version", "13")
            }
            HandshakeError::Malformed(detail) => ApiError::new(400, detail),
        }
    }
}

impl From<MultipartError> for ApiError {
    fn from(err: MultipartError) -> ApiError {
        match err {
            MultipartError::NotMultipart => ApiError::new(415, err.to_string()),
            _ => ApiError::bad_request(err.to_string()),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(err: TokenError) -> ApiError {
        match err {
            TokenError::Expired => ApiError::unauthorized("token expired"),
            TokenError::Invalid => ApiError::unauthorized("invalid token"),
            TokenError::SessionEnded => ApiError::unauthorized("the session has ended; log in again"),
        }
    }
}

impl From<PasswordError> for ApiError {
    fn from(err: PasswordError) -> ApiError {
        match err {
            PasswordError::Busy => ApiError::new(503, "too many logins in progress, try again shortly"),
            PasswordError::TooMany => {
                ApiError::new(429, "too many logins in progress from this address").header("Retry-After", "1")
            }
            PasswordError::Failed => ApiError::internal(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_get_is_told_to_upgrade() {
        let response = ApiError::from(HandshakeError::NotWebSocket).into_response();
        assert_eq!(response.status, 426);
        assert!(response.headers.contains(&("Upgrade", "websocket".to_string())));
    }

    #[test]
    fn head_refusals_have_the_contract_statuses_and_close() {
        let status = |refusal| ApiError::from(refusal).status;
        assert_eq!(status(Refusal::Head(HeadError::UriTooLong)), 414);
        assert_eq!(status(Refusal::Head(HeadError::HeadersTooLarge)), 431);
        assert_eq!(status(Refusal::Head(HeadError::UnknownMethod)), 501);
        assert_eq!(status(Refusal::Head(HeadError::VersionNotSupported)), 505);
        assert_eq!(status(Refusal::Head(HeadError::Malformed("x"))), 400);
        assert_eq!(status(Refusal::HeadTimeout), 408);
        assert_eq!(status(Refusal::OverCapacity), 503);
        assert!(ApiError::bad_request("x").into_response().close);
    }
}
