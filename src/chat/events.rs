//! The server-to-client events of the chat, one JSON text frame each.
//!
//! An event is encoded once into a [`Utf8Bytes`]; every recipient's queue
//! holds a clone, which shares the bytes instead of copying them.

use serde::Serialize;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::db::messages::Message;
use crate::json;

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Event<'a> {
    Message(&'a Message),
    Join {
        username: &'a str,
        online: usize,
    },
    Leave {
        username: &'a str,
        online: usize,
    },
    Error {
        code: &'a str,
        detail: &'a str,
    },
    /// A resuming socket missed too much, or resumed from another epoch:
    /// no replay, load history up to `latest_id` instead.
    Resync {
        latest_id: i64,
    },
}

impl Event<'_> {
    pub(crate) fn encode(&self) -> Utf8Bytes {
        json::encode(self).into()
    }
}

/// The event that announces a committed message (and acknowledges it to its
/// sender).
pub(crate) fn message(message: &Message) -> Utf8Bytes {
    Event::Message(message).encode()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::db::messages::MessageFile;

    #[test]
    fn events_have_the_contract_shape() {
        let stored = Message {
            id: 42,
            username: "alice".into(),
            content: "Hello \"you\"".into(),
            created_at: Timestamp(1_795_581_819_005),
            file: None,
        };
        let value: serde_json::Value = serde_json::from_str(&message(&stored)).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "type": "message", "id": 42, "username": "alice",
                "content": "Hello \"you\"", "created_at": "2026-11-25T04:43:39.005Z"
            })
        );
        let with_file = Message {
            file: Some(Box::new(MessageFile {
                id: "ab12".into(),
                filename: "résumé.pdf".into(),
                size: 3,
                content_type: "application/pdf".into(),
            })),
            ..stored
        };
        let value: serde_json::Value = serde_json::from_str(&message(&with_file)).unwrap();
        assert_eq!(
            value["file"],
            serde_json::json!({
                "id": "ab12", "filename": "résumé.pdf", "size": 3,
                "content_type": "application/pdf", "download_url": "/files/ab12"
            })
        );
        let join = Event::Join {
            username: "bob",
            online: 3,
        };
        assert_eq!(join.encode().as_str(), r#"{"type":"join","username":"bob","online":3}"#);
        let error = Event::Error {
            code: "rate_limited",
            detail: "slow down",
        };
        assert_eq!(
            error.encode().as_str(),
            r#"{"type":"error","code":"rate_limited","detail":"slow down"}"#
        );
        let resync = Event::Resync { latest_id: 7 };
        assert_eq!(resync.encode().as_str(), r#"{"type":"resync","latest_id":7}"#);
    }
}
