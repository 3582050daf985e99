//! The chat room: every open chat connection and who is online.
//!
//! Each connection has its own bounded queue of encoded events, drained by
//! its session's writer. [`Hub::broadcast`] never waits: it offers the event
//! to every queue with `try_send`, so a slow or stalled reader costs the
//! others nothing. A connection whose queue is full has fallen
//! [`QUEUE_CAPACITY`] events behind; it is evicted on the spot (its session
//! then closes it with 4002) rather than allowed to hold memory or delay
//! anyone.
//!
//! Everything happens under one short lock, and every event is queued to
//! every connection before the lock is released: all connections therefore
//! see events in one and the same order. Chat messages are broadcast by the
//! database writer right after each commit, in commit order, so that order
//! is ascending `id`.
//!
//! Presence counts users, not connections: a user's first connection
//! announces `join`, their last one leaving announces `leave`, and `online`
//! is the number of distinct users connected.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::event::Event;

/// Events a connection may fall behind before it is dropped as a slow
/// consumer.
pub const QUEUE_CAPACITY: usize = 1024;

pub type ClientId = u64;

#[derive(Default)]
pub struct Hub {
    inner: Mutex<Room>,
}

/// What a session holds while it is in the room.
pub struct Membership {
    pub id: ClientId,
    /// Events to write to this connection, in broadcast order. Ends once
    /// the hub lets go of the connection.
    pub events: mpsc::Receiver<Utf8Bytes>,
    /// Resolves when the hub evicts the connection for falling behind.
    pub evicted: oneshot::Receiver<()>,
}

#[derive(Default)]
struct Room {
    next_id: ClientId,
    clients: HashMap<ClientId, Client>,
    /// Connected users by user id.
    online: HashMap<i64, Presence>,
}

struct Client {
    user_id: i64,
    queue: mpsc::Sender<Utf8Bytes>,
    evicted: oneshot::Sender<()>,
}

struct Presence {
    username: String,
    connections: usize,
}

impl Hub {
    /// Adds a connection; announces `join` to everyone if it is the user's
    /// first, and to the newcomer alone otherwise.
    pub fn connect(&self, user_id: i64, username: &str) -> Membership {
        let (queue, events) = mpsc::channel(QUEUE_CAPACITY);
        let (evict, evicted) = oneshot::channel();
        let mut room = self.lock();
        let id = room.next_id;
        room.next_id += 1;
        room.clients.insert(
            id,
            Client {
                user_id,
                queue,
                evicted: evict,
            },
        );
        let presence = room.online.entry(user_id).or_insert_with(|| Presence {
            username: username.to_string(),
            connections: 0,
        });
        presence.connections += 1;
        let first = presence.connections == 1;
        let join = Event::Join {
            username,
            online: room.online.len(),
        }
        .encode();
        if first {
            room.broadcast(join);
        } else if let Some(client) = room.clients.get(&id) {
            // A second tab is no news to the others, but it must learn `online`
            // too; its queue is new, so the offer cannot fail.
            client.offer(&join);
        }
        Membership { id, events, evicted }
    }

    /// Removes a connection (a no-op if it was evicted); announces `leave`
    /// if it was the user's last.
    pub fn disconnect(&self, id: ClientId) {
        let mut room = self.lock();
        if let Some((_, Some(leave))) = room.remove(id) {
            room.broadcast(leave);
        }
    }

    /// Queues an encoded event for every connection.
    pub fn broadcast(&self, event: Utf8Bytes) {
        self.lock().broadcast(event);
    }

    /// Queues an event for one connection only (its own error events), in
    /// order with what is broadcast to it.
    pub fn send_to(&self, id: ClientId, event: Utf8Bytes) {
        let mut room = self.lock();
        let full = room.clients.get(&id).is_some_and(|client| !client.offer(&event));
        if full {
            for leave in room.evict(&[id]) {
                room.broadcast(leave);
            }
        }
    }

    /// Nothing under the lock can panic half-way, so a poisoned lock still
    /// guards a consistent room.
    fn lock(&self) -> MutexGuard<'_, Room> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Client {
    /// Queues `event`; false only if the queue is full. A closed queue
    /// counts as delivered: its session is ending and removes itself.
    fn offer(&self, event: &Utf8Bytes) -> bool {
        !matches!(
            self.queue.try_send(event.clone()),
            Err(mpsc::error::TrySendError::Full(_))
        )
    }
}

impl Room {
    /// Queues `event` everywhere, then evicts the connections that could not
    /// take it and broadcasts the `leave` events that causes, the same way.
    fn broadcast(&mut self, event: Utf8Bytes) {
        let mut pending = VecDeque::from([event]);
        while let Some(event) = pending.pop_front() {
            let behind: Vec<ClientId> = self
                .clients
                .iter()
                .filter(|(_, client)| !client.offer(&event))
                .map(|(id, _)| *id)
                .collect();
            if !behind.is_empty() {
                pending.extend(self.evict(&behind));
            }
        }
    }

    /// Drops connections that fell behind and tells their sessions; returns
    /// the `leave` events to announce.
    fn evict(&mut self, ids: &[ClientId]) -> Vec<Utf8Bytes> {
        let mut leaves = Vec::new();
        for id in ids {
            if let Some((client, leave)) = self.remove(*id) {
                let _ = client.evicted.send(());
                leaves.extend(leave);
            }
        }
        leaves
    }

    /// Removes a connection: the client, and the `leave` event if it was
    /// its user's last connection.
    fn remove(&mut self, id: ClientId) -> Option<(Client, Option<Utf8Bytes>)> {
        let client = self.clients.remove(&id)?;
        let presence = self.online.get_mut(&client.user_id)?;
        presence.connections -= 1;
        if presence.connections > 0 {
            return Some((client, None));
        }
        let presence = self.online.remove(&client.user_id)?;
        let leave = Event::Leave {
            username: &presence.username,
            online: self.online.len(),
        }
        .encode();
        Some((client, Some(leave)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(membership: &mut Membership) -> Vec<String> {
        let mut got = Vec::new();
        while let Ok(event) = membership.events.try_recv() {
            got.push(event.as_str().to_string());
        }
        got
    }

    #[test]
    fn presence_counts_users_not_tabs() {
        let hub = Hub::default();
        let mut ann = hub.connect(1, "ann");
        assert_eq!(drain(&mut ann), [r#"{"type":"join","username":"ann","online":1}"#]);
        let mut ann_tab = hub.connect(1, "ann");
        assert_eq!(
            drain(&mut ann_tab),
            [r#"{"type":"join","username":"ann","online":1}"#],
            "a second tab learns the count from a join of its own"
        );
        assert!(drain(&mut ann).is_empty(), "the others hear nothing of a second tab");
        let bob = hub.connect(2, "bob");
        assert_eq!(drain(&mut ann), [r#"{"type":"join","username":"bob","online":2}"#]);
        hub.disconnect(ann_tab.id);
        assert!(drain(&mut ann).is_empty(), "a second tab leaving is not a leave");
        hub.disconnect(bob.id);
        assert_eq!(drain(&mut ann), [r#"{"type":"leave","username":"bob","online":1}"#]);
        hub.disconnect(bob.id);
        assert!(drain(&mut ann).is_empty(), "disconnecting twice announces once");
    }

    #[test]
    fn every_connection_gets_the_same_shared_bytes() {
        let hub = Hub::default();
        let mut a = hub.connect(1, "a");
        let mut b = hub.connect(2, "b");
        drain(&mut a);
        drain(&mut b);
        let event = Utf8Bytes::from("{\"type\":\"message\"}");
        hub.broadcast(event.clone());
        let (got_a, got_b) = (a.events.try_recv().unwrap(), b.events.try_recv().unwrap());
        assert_eq!(got_a.as_ptr(), event.as_ptr());
        assert_eq!(got_b.as_ptr(), event.as_ptr());
    }

    #[test]
    fn a_connection_that_falls_behind_is_evicted_and_others_keep_going() {
        let hub = Hub::default();
        let mut stalled = hub.connect(1, "slow");
        let mut reader = hub.connect(2, "fast");
        drain(&mut reader);
        let mut sent = 0;
        while stalled.evicted.try_recv().is_err() {
            assert!(sent < QUEUE_CAPACITY, "never evicted");
            hub.broadcast(Utf8Bytes::from(sent.to_string()));
            sent += 1;
        }
        let mut expected: Vec<String> = (0..sent).map(|i| i.to_string()).collect();
        expected.push(r#"{"type":"leave","username":"slow","online":1}"#.to_string());
        assert_eq!(drain(&mut reader), expected);
        assert_eq!(
            drain(&mut stalled).len(),
            QUEUE_CAPACITY,
            "what fit stays until the session ends"
        );
        hub.disconnect(stalled.id);
        hub.disconnect(stalled.id);
        hub.send_to(reader.id, Utf8Bytes::from("only you"));
        assert_eq!(
            drain(&mut reader),
            ["only you"],
            "no second leave, and direct events arrive"
        );
    }
}
