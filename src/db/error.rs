//! The one error type of the storage layer. It says whether a failure may
//! pass (busy, locked, full: answered 503) or not (answered 500), or that a
//! write found a row it depends on gone (answered 404); the mapping to
//! statuses lives with the API's error type.

use std::fmt;

use rusqlite::ErrorCode;

use crate::pool::PoolError;

#[derive(Clone, Debug)]
pub enum DbError {
    /// Busy, locked, read-only, full or unreachable: a condition that may pass,
    /// answered 503.
    Unavailable(String),
    /// Anything else: a bug or a corrupt file, answered 500.
    Other(String),
    /// A write needed a row that is not there (a file deleted while it was
    /// being shared); the write did nothing. Answered 404 with this detail.
    NotFound(&'static str),
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Unavailable(e) => write!(f, "database unavailable: {e}"),
            DbError::Other(e) => write!(f, "database error: {e}"),
            DbError::NotFound(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for DbError {}

impl From<rusqlite::Error> for DbError {
    fn from(err: rusqlite::Error) -> DbError {
        let passing = matches!(
            err.sqlite_error_code(),
            Some(
                ErrorCode::DatabaseBusy
                    | ErrorCode::DatabaseLocked
                    | ErrorCode::ReadOnly
                    | ErrorCode::CannotOpen
                    | ErrorCode::DiskFull
                    | ErrorCode::SystemIoFailure
                    | ErrorCode::PermissionDenied
            )
        );
        if passing {
            DbError::Unavailable(err.to_string())
        } else {
            DbError::Other(err.to_string())
        }
    }
}

impl From<PoolError> for DbError {
    fn from(err: PoolError) -> DbError {
        match err {
            PoolError::Busy => DbError::Unavailable("too many queries waiting".into()),
            PoolError::Gone => DbError::Unavailable("storage threads stopped".into()),
        }
    }
}

/// A storage thread that cannot be started.
impl From<std::io::Error> for DbError {
    fn from(err: std::io::Error) -> DbError {
        DbError::Other(err.to_string())
    }
}
