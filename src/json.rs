//! JSON request bodies: a body that is not JSON, misses a field or has a
//! wrong type is a 422 whose detail says what was wrong.

use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::unprocessable(format!("invalid JSON body: {e}")))
}
