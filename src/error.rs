//! The one error type handlers return, and the one place it becomes an HTTP
//! response: a status, `{"detail": ...}`, and the headers the status needs.
//! Lower layers have their own error types; their `From` impls here decide
//! which status each failure is, so no handler picks a status for a storage
//! or framing fault by itself.

use std::borrow::Cow;

use crate::db::DbError;
use crate::http::body::BodyError;
use crate::http::response::Response;

#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub detail: Cow<'static, str>,
    /// `Allow` for 405.
    allow: Option<String>,
    /// After this error the connection cannot be trusted to be in sync
    /// (malformed framing, an unread body): answer, then close.
    pub close: bool,
}

impl ApiError {
    pub fn new(status: u16, detail: impl Into<Cow<'static, str>>) -> ApiError {
        ApiError {
            status,
            detail: detail.into(),
            allow: None,
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
        ApiError {
            allow: Some(allow),
            ..ApiError::new(405, "method not allowed")
        }
    }

    pub fn unprocessable(detail: impl Into<Cow<'static, str>>) -> ApiError {
        ApiError::new(422, detail)
    }

    pub fn internal() -> ApiError {
        ApiError::new(500, "internal server error")
    }

    pub fn closing(mut self) -> ApiError {
        self.close = true;
        self
    }

    pub fn into_response(self) -> Response {
        let mut response = Response::json(self.status, &serde_json::json!({ "detail": self.detail }));
        if self.status == 401 {
            response = response.header("WWW-Authenticate", "Bearer");
        }
        if let Some(allow) = self.allow {
            response = response.header("Allow", allow);
        }
        response
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> ApiError {
        match err {
            DbError::Unavailable(_) => ApiError::new(503, "the database is unavailable, try again shortly"),
            DbError::Other(e) => {
                crate::log!(crate::log::Level::Error, "database error: {e}");
                ApiError::internal()
            }
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
