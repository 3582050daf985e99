//! JSON bodies. Requests: a body that is not JSON, misses a field or has a
//! wrong type is a 422 whose detail says what was wrong. Responses: encoded
//! once into shareable bytes, which caches can keep.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::ApiError;

pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::unprocessable(format!("invalid JSON body: {e}")))
}

/// As [`parse`], for a body that must be a JSON object. serde would also fill
/// a struct from an array of its field values in order, which no client of a
/// `{"field": ...}` API means to send.
pub fn parse_object<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if !body.trim_ascii_start().starts_with(b"{") {
        return Err(ApiError::unprocessable("the body must be a JSON object"));
    }
    parse(body)
}

/// Our response types are plain data (strings, numbers, options, vectors):
/// serializing them cannot fail.
pub fn encode(value: &impl Serialize) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("serializing plain data cannot fail"))
}
