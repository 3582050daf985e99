//! The one error type of the tool: a message for a person.
//!
//! A benchmark either gets its figures or stops with one clear line saying what
//! failed and where, so errors carry text, not structure. `Context` prefixes
//! the step that failed ("POST /register: connection refused").

use std::fmt;

#[derive(Debug)]
pub struct Error(String);

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(message: impl Into<String>) -> Error {
        Error(message.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Adds the failing step to any displayable error.
pub trait Context<T> {
    fn context(self, step: impl fmt::Display) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, step: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error(format!("{step}: {e}")))
    }
}
