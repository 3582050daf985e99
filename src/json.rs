//! The one JSON encoder of responses and chat events: encoded once into a
//! `String`, which becomes the shared bytes of a response body or of a
//! WebSocket text frame without a copy.

use serde::Serialize;

/// Our response and event types are plain data (strings, numbers, options,
/// vectors): serializing them cannot fail.
pub(crate) fn encode(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("serializing plain data cannot fail")
}
