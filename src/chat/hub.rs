//! The live side of the room: every open chat connection and who is online.
//!
//! Each connection has its own bounded [`Outbox`] of encoded events, drained
//! by its session's writer. [`Hub::broadcast_message`] never waits: it offers the
//! event to every outbox, so a slow or stalled reader costs the others
//! nothing. A connection whose outbox is full has fallen [`QUEUE_CAPACITY`]
//! events behind; it is evicted on the spot (its session then closes it
//! with 4002) rather than allowed to hold memory or delay anyone.
//!
//! Everything happens under one short lock, and every event is queued to
//! every connection before the lock is released: all connections therefore
//! see events in one and the same order. Chat messages are broadcast by the
//! room's commit hook, on the database writer right after each commit, in
//! commit order, so that order is ascending `id`.
//!
//! A connection that resumes (see [`resume`](super::resume)) joins
//! *held*: its outbox keeps live events aside, with the ids of the
//! messages among them, until the session has read its replay from storage
//! and [`Outbox::release`]s them, dropping the messages the replay already
//! holds.
//!
//! Presence counts users, not connections: a user's first connection
//! announces `join`, their last one leaving announces `leave`, and `online`
//! is the number of distinct users connected.
//!
//! In cluster mode the hub also holds the users online on the other nodes,
//! as the presence loop (`chat::presence`) last read them
//! (`Hub::set_elsewhere`), and counts the union: a user is one user
//! however many nodes they are connected to. A user's first connection here
//! is news only if they are not online elsewhere, and their last one
//! leaving only if they are not online elsewhere either; a user appearing
//! or vanishing elsewhere who has no connection here is announced here. On
//! a single node nobody is elsewhere, and all of this is a test of an empty
//! map.

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;

use futures_util::task::AtomicWaker;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::events::Event;
use crate::metrics::METRICS;
use crate::sync::lock;

/// Events a connection may fall behind before it is dropped as a slow
/// consumer.
pub(crate) const QUEUE_CAPACITY: usize = 1024;

/// An empty outbox keeps at most this much room for events: a burst may
/// grow it to [`QUEUE_CAPACITY`], but an idle connection should not keep
/// that memory. None at all: idle connections are the many (a node holds
/// tens of thousands), each would keep the room of its last event, and
/// taking it again costs one allocation per event that finds the queue
/// empty, next to the system call that writes it.
const IDLE_ROOM: usize = 0;

pub(crate) type ClientId = u64;

#[derive(Default)]
pub(crate) struct Hub {
    inner: Mutex<Members>,
}

/// What a session holds while it is in the room.
pub struct Membership {
    pub id: ClientId,
    /// Events to write to this connection, in broadcast order.
    pub outbox: Arc<Outbox>,
}

/// One connection's queue of events, written by the hub and drained by the
/// session's writer. Lighter than a channel for what it has to do: one lock
/// for the queue and the eviction flag together, no memory until the first
/// event, and a wake-up only when the queue was empty (otherwise the writer
/// is already due to run).
#[derive(Default)]
pub struct Outbox {
    queue: Mutex<Queue>,
    /// The session's writer, waiting for events.
    writer: AtomicWaker,
    /// The session itself, watching for eviction: its writer may be stuck
    /// on a full socket, which is the usual reason for being evicted.
    watcher: AtomicWaker,
}

#[derive(Default)]
struct Queue {
    events: VecDeque<Utf8Bytes>,
    evicted: bool,
    /// While the connection is held: its live events so far, each with the
    /// id of the message it announces (`None` for other events).
    held: Option<Vec<(Option<i64>, Utf8Bytes)>>,
    /// Messages with an id up to this one are dropped: the session has them
    /// from storage already. A message can be read from storage before its
    /// broadcast (the writer commits a batch, then runs its hooks), so this
    /// holds for the connection's whole life, not only for what was held.
    floor: i64,
}

impl Outbox {
    /// Waits for events and moves up to `max` of them into `batch`, oldest
    /// first.
    pub async fn next_batch(&self, batch: &mut Vec<Utf8Bytes>, max: usize) {
        poll_fn(|cx| {
            // Registered before looking, so an event queued after the look
            // finds the waker and wakes it.
            self.writer.register(cx.waker());
            let mut queue = self.lock();
            if queue.events.is_empty() {
                return Poll::Pending;
            }
            let n = queue.events.len().min(max);
            batch.extend(queue.events.drain(..n));
            if queue.events.is_empty() && queue.events.capacity() > IDLE_ROOM {
                queue.events.shrink_to(IDLE_ROOM);
            }
            Poll::Ready(())
        })
        .await
    }

    /// Resolves once the hub has evicted the connection for falling behind.
    pub async fn evicted(&self) {
        poll_fn(|cx| {
            self.watcher.register(cx.waker());
            if self.lock().evicted {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Ends the hold (see [`Hub::connect`]): the events kept aside become
    /// the queue, in their order, except the messages with an id up to
    /// `through`, which the session has from storage; those that are still
    /// to be broadcast will be dropped too. A no-op on an outbox that is
    /// not held.
    pub fn release(&self, through: i64) {
        let mut queue = self.lock();
        let Some(held) = queue.held.take() else { return };
        queue.floor = through;
        let fresh = held.into_iter().filter(|(id, _)| id.is_none_or(|id| id > through));
        queue.events.extend(fresh.map(|(_, event)| event));
        let ready = !queue.events.is_empty();
        drop(queue);
        if ready {
            self.writer.wake();
        }
    }

    /// Takes every event still queued (what a closing session still owes).
    pub fn take_all(&self) -> VecDeque<Utf8Bytes> {
        std::mem::take(&mut self.lock().events)
    }

    /// Queues `event` (announcing message `id`, if it is a message); false
    /// only if the outbox is full. An evicted outbox takes nothing more but
    /// counts as delivered: its session is ending. A held outbox keeps the
    /// event aside, within the same bound.
    fn offer(&self, id: Option<i64>, event: &Utf8Bytes) -> bool {
        let mut queue = self.lock();
        if queue.evicted || id.is_some_and(|id| id <= queue.floor) {
            return true;
        }
        if let Some(held) = &mut queue.held {
            if held.len() >= QUEUE_CAPACITY {
                return false;
            }
            held.push((id, event.clone()));
            return true;
        }
        if queue.events.len() >= QUEUE_CAPACITY {
            return false;
        }
        let was_empty = queue.events.is_empty();
        queue.events.push_back(event.clone());
        drop(queue);
        if was_empty {
            self.writer.wake();
        }
        true
    }

    fn evict(&self) {
        self.lock().evicted = true;
        self.watcher.wake();
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        lock(&self.queue)
    }
}

#[derive(Default)]
struct Members {
    next_id: ClientId,
    clients: HashMap<ClientId, Client>,
    /// Connected users by user id.
    online: HashMap<i64, Presence>,
    /// Cluster mode: the users online on other nodes, by user id, as last
    /// read. Always empty on a single node.
    elsewhere: HashMap<i64, String>,
    /// How many users of `elsewhere` have no connection here: `online` plus
    /// these is the count every event carries.
    only_elsewhere: usize,
    /// Moves whenever the set of users in `online` changes, so that the
    /// presence loop publishes the set only when it changed.
    generation: u64,
}

struct Client {
    user_id: i64,
    outbox: Arc<Outbox>,
}

struct Presence {
    username: String,
    connections: usize,
}

impl Hub {
    /// Adds a connection; announces `join` to everyone if it is the user's
    /// first and they are not online elsewhere in the cluster, and to the
    /// newcomer alone otherwise. A `held` connection's
    /// outbox keeps every event from this instant aside until it is
    /// released; since messages are broadcast right after their commit, in
    /// id order, every message committed from now on reaches it.
    pub(crate) fn connect(&self, user_id: i64, username: &str, held: bool) -> Membership {
        let outbox = Arc::new(Outbox::default());
        if held {
            outbox.lock().held = Some(Vec::new());
        }
        let mut room = self.lock();
        let id = room.next_id;
        room.next_id += 1;
        room.clients.insert(
            id,
            Client {
                user_id,
                outbox: outbox.clone(),
            },
        );
        let presence = room.online.entry(user_id).or_insert_with(|| Presence {
            username: username.to_string(),
            connections: 0,
        });
        presence.connections += 1;
        let first = presence.connections == 1;
        let news = first && !room.arrived(user_id);
        let join = Event::Join {
            username,
            online: room.count(),
        }
        .encode();
        if news {
            room.broadcast(None, join);
        } else {
            // A second tab is no news to the others, but it must learn `online`
            // too; its outbox is new, so the offer cannot fail.
            outbox.offer(None, &join);
        }
        Membership { id, outbox }
    }

    /// Removes a connection (a no-op if it was evicted); announces `leave`
    /// if it was the user's last, they are not online elsewhere in the
    /// cluster, and `announce` is true.
    pub(crate) fn disconnect(&self, id: ClientId, announce: bool) {
        let mut room = self.lock();
        if let Some((_, Some(leave))) = room.remove(id) {
            if announce {
                room.broadcast(None, leave);
            }
        }
    }

    /// Queues the event announcing message `id` for every connection.
    pub(crate) fn broadcast_message(&self, id: i64, event: Utf8Bytes) {
        self.lock().broadcast(Some(id), event);
    }

    /// Queues an event for one connection only (its own error events), in
    /// order with what is broadcast to it.
    pub(crate) fn send_to(&self, id: ClientId, event: Utf8Bytes) {
        let mut room = self.lock();
        let full = room
            .clients
            .get(&id)
            .is_some_and(|client| !client.outbox.offer(None, &event));
        if full {
            for leave in room.evict(&[id]) {
                room.broadcast(None, leave);
            }
        }
    }

    /// The users connected here (`(user id, username)`), unless the set is
    /// the same as at `generation` (what a previous call returned with it).
    #[cfg(feature = "postgres")]
    pub(crate) fn local_users_since(&self, generation: Option<u64>) -> Option<(u64, Vec<(i64, String)>)> {
        let room = self.lock();
        if generation == Some(room.generation) {
            return None;
        }
        let users = room
            .online
            .iter()
            .map(|(id, presence)| (*id, presence.username.clone()))
            .collect();
        Some((room.generation, users))
    }

    /// Replaces the users online on the other nodes with `elsewhere`, and
    /// announces here those who came or went there without a connection
    /// here: first who left, then who joined, each event with the count
    /// after it.
    #[cfg(feature = "postgres")]
    pub(crate) fn set_elsewhere(&self, mut elsewhere: HashMap<i64, String>) {
        let mut room = self.lock();
        let gone: Vec<i64> = room
            .elsewhere
            .keys()
            .filter(|id| !elsewhere.contains_key(id))
            .copied()
            .collect();
        for user_id in gone {
            let Some(username) = room.elsewhere.remove(&user_id) else {
                continue;
            };
            if room.online.contains_key(&user_id) {
                continue;
            }
            room.only_elsewhere -= 1;
            METRICS.online_users.set(room.count() as i64);
            let leave = Event::Leave {
                username: &username,
                online: room.count(),
            }
            .encode();
            room.broadcast(None, leave);
        }
        elsewhere.retain(|id, _| !room.elsewhere.contains_key(id));
        for (user_id, username) in elsewhere {
            let join = (!room.online.contains_key(&user_id)).then(|| {
                room.only_elsewhere += 1;
                METRICS.online_users.set(room.count() as i64);
                Event::Join {
                    username: &username,
                    online: room.count(),
                }
                .encode()
            });
            room.elsewhere.insert(user_id, username);
            if let Some(join) = join {
                room.broadcast(None, join);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Members> {
        lock(&self.inner)
    }
}

impl Members {
    /// Distinct users online: here, or (in cluster mode) on another node.
    fn count(&self) -> usize {
        self.online.len() + self.only_elsewhere
    }

    /// Counts a user's first connection here; whether they were online
    /// elsewhere already (then it is no news to the room).
    fn arrived(&mut self, user_id: i64) -> bool {
        self.generation += 1;
        let elsewhere = self.is_elsewhere(user_id);
        if elsewhere {
            self.only_elsewhere -= 1;
        }
        METRICS.online_users.set(self.count() as i64);
        elsewhere
    }

    /// Counts a user's last connection here going; whether they are still
    /// online elsewhere (then it is no news to the room).
    fn departed(&mut self, user_id: i64) -> bool {
        self.generation += 1;
        let elsewhere = self.is_elsewhere(user_id);
        if elsewhere {
            self.only_elsewhere += 1;
        }
        METRICS.online_users.set(self.count() as i64);
        elsewhere
    }

    /// Whether the user is online on another node (never, on a single node:
    /// the map is empty, and not even hashed into).
    fn is_elsewhere(&self, user_id: i64) -> bool {
        !self.elsewhere.is_empty() && self.elsewhere.contains_key(&user_id)
    }

    /// Queues `event` everywhere, then evicts the connections that could not
    /// take it and broadcasts the `leave` events that causes, the same way.
    fn broadcast(&mut self, id: Option<i64>, event: Utf8Bytes) {
        let mut pending = VecDeque::from([(id, event)]);
        while let Some((id, event)) = pending.pop_front() {
            let behind: Vec<ClientId> = self
                .clients
                .iter()
                .filter(|(_, client)| !client.outbox.offer(id, &event))
                .map(|(id, _)| *id)
                .collect();
            if !behind.is_empty() {
                pending.extend(self.evict(&behind).into_iter().map(|leave| (None, leave)));
            }
        }
    }

    /// Drops connections that fell behind and tells their sessions; returns
    /// the `leave` events to announce.
    fn evict(&mut self, ids: &[ClientId]) -> Vec<Utf8Bytes> {
        let mut leaves = Vec::new();
        for id in ids {
            if let Some((client, leave)) = self.remove(*id) {
                METRICS.slow_consumer_drops.inc();
                client.outbox.evict();
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
        if self.departed(client.user_id) {
            return Some((client, None));
        }
        let leave = Event::Leave {
            username: &presence.username,
            online: self.count(),
        }
        .encode();
        Some((client, Some(leave)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(membership: &mut Membership) -> Vec<String> {
        let events = membership.outbox.take_all();
        events.iter().map(|event| event.as_str().to_string()).collect()
    }

    fn is_evicted(membership: &Membership) -> bool {
        membership.outbox.lock().evicted
    }

    #[test]
    fn presence_counts_users_not_tabs() {
        let hub = Hub::default();
        let mut ann = hub.connect(1, "ann", false);
        assert_eq!(drain(&mut ann), [r#"{"type":"join","username":"ann","online":1}"#]);
        let mut ann_tab = hub.connect(1, "ann", false);
        assert_eq!(
            drain(&mut ann_tab),
            [r#"{"type":"join","username":"ann","online":1}"#],
            "a second tab learns the count from a join of its own"
        );
        assert!(drain(&mut ann).is_empty(), "the others hear nothing of a second tab");
        let bob = hub.connect(2, "bob", false);
        assert_eq!(drain(&mut ann), [r#"{"type":"join","username":"bob","online":2}"#]);
        hub.disconnect(ann_tab.id, true);
        assert!(drain(&mut ann).is_empty(), "a second tab leaving is not a leave");
        hub.disconnect(bob.id, true);
        assert_eq!(drain(&mut ann), [r#"{"type":"leave","username":"bob","online":1}"#]);
        hub.disconnect(bob.id, true);
        assert!(drain(&mut ann).is_empty(), "disconnecting twice announces once");
    }

    #[cfg(feature = "postgres")]
    fn elsewhere(users: &[(i64, &str)]) -> HashMap<i64, String> {
        users.iter().map(|(id, name)| (*id, name.to_string())).collect()
    }

    #[test]
    #[cfg(feature = "postgres")]
    fn users_of_other_nodes_are_announced_and_counted_once() {
        let hub = Hub::default();
        let mut ann = hub.connect(1, "ann", false);
        drain(&mut ann);
        hub.set_elsewhere(elsewhere(&[(2, "bob"), (1, "ann")]));
        assert_eq!(
            drain(&mut ann),
            [r#"{"type":"join","username":"bob","online":2}"#],
            "a user here and elsewhere is one user, and no news"
        );
        hub.set_elsewhere(elsewhere(&[(2, "bob"), (1, "ann")]));
        assert!(drain(&mut ann).is_empty(), "the same set again says nothing");
        let mut bob = hub.connect(2, "bob", false);
        assert!(drain(&mut ann).is_empty(), "bob was online already");
        assert_eq!(drain(&mut bob), [r#"{"type":"join","username":"bob","online":2}"#]);
        hub.disconnect(ann.id, true);
        assert!(drain(&mut bob).is_empty(), "ann is still online elsewhere");
        hub.set_elsewhere(elsewhere(&[(3, "cid")]));
        assert_eq!(
            drain(&mut bob),
            [
                r#"{"type":"leave","username":"ann","online":1}"#,
                r#"{"type":"join","username":"cid","online":2}"#
            ],
            "first who went, then who came; bob, connected here, stays"
        );
        hub.disconnect(bob.id, true);
        let mut dan = hub.connect(4, "dan", false);
        assert_eq!(drain(&mut dan), [r#"{"type":"join","username":"dan","online":2}"#]);
        hub.set_elsewhere(HashMap::new());
        assert_eq!(drain(&mut dan), [r#"{"type":"leave","username":"cid","online":1}"#]);
    }

    #[test]
    #[cfg(feature = "postgres")]
    fn the_local_set_is_handed_out_only_when_it_changed() {
        let hub = Hub::default();
        let (first, users) = hub.local_users_since(None).unwrap();
        assert!(users.is_empty());
        assert!(hub.local_users_since(Some(first)).is_none());
        let ann = hub.connect(1, "ann", false);
        let (second, users) = hub.local_users_since(Some(first)).unwrap();
        assert_eq!(users, [(1, "ann".to_string())]);
        let tab = hub.connect(1, "ann", false);
        hub.set_elsewhere(elsewhere(&[(2, "bob")]));
        assert!(
            hub.local_users_since(Some(second)).is_none(),
            "a second tab, or a user elsewhere, changes nothing here"
        );
        hub.disconnect(tab.id, true);
        hub.disconnect(ann.id, true);
        let (_, users) = hub.local_users_since(Some(second)).unwrap();
        assert!(users.is_empty());
    }

    #[test]
    fn every_connection_gets_the_same_shared_bytes() {
        let hub = Hub::default();
        let mut a = hub.connect(1, "a", false);
        let mut b = hub.connect(2, "b", false);
        drain(&mut a);
        drain(&mut b);
        let event = Utf8Bytes::from("{\"type\":\"message\"}");
        hub.broadcast_message(1, event.clone());
        let (got_a, got_b) = (a.outbox.take_all(), b.outbox.take_all());
        assert_eq!(got_a[0].as_ptr(), event.as_ptr());
        assert_eq!(got_b[0].as_ptr(), event.as_ptr());
    }

    #[test]
    fn a_connection_that_falls_behind_is_evicted_and_others_keep_going() {
        let hub = Hub::default();
        let mut stalled = hub.connect(1, "slow", false);
        let mut reader = hub.connect(2, "fast", false);
        drain(&mut reader);
        let mut sent = 0;
        while !is_evicted(&stalled) {
            assert!(sent < QUEUE_CAPACITY, "never evicted");
            hub.broadcast_message(sent as i64 + 1, Utf8Bytes::from(sent.to_string()));
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
        hub.disconnect(stalled.id, true);
        hub.disconnect(stalled.id, true);
        hub.send_to(reader.id, Utf8Bytes::from("only you"));
        assert_eq!(
            drain(&mut reader),
            ["only you"],
            "no second leave, and direct events arrive"
        );
    }

    #[test]
    fn a_held_connection_gets_what_its_replay_lacks_in_order() {
        let hub = Hub::default();
        let mut resuming = hub.connect(1, "ann", true);
        let quiet = hub.connect(2, "bob", false);
        for id in 5..=8 {
            hub.broadcast_message(id, Utf8Bytes::from(format!("m{id}")));
        }
        assert!(drain(&mut resuming).is_empty(), "nothing is queued while held");
        resuming.outbox.release(6);
        assert_eq!(
            drain(&mut resuming),
            [
                r#"{"type":"join","username":"ann","online":1}"#,
                r#"{"type":"join","username":"bob","online":2}"#,
                "m7",
                "m8"
            ],
            "other events stay, messages up to the replay's newest go"
        );
        hub.broadcast_message(6, Utf8Bytes::from("m6 broadcast late"));
        hub.disconnect(quiet.id, false);
        hub.broadcast_message(9, Utf8Bytes::from("m9"));
        resuming.outbox.release(100);
        assert_eq!(
            drain(&mut resuming),
            ["m9"],
            "what the replay had stays dropped, a quiet departure says nothing, a second release is a no-op"
        );
    }

    #[tokio::test]
    async fn the_writer_takes_batches_and_the_session_learns_of_its_eviction() {
        let outbox = Arc::new(Outbox::default());
        let mut batch = Vec::new();
        for i in 0..5 {
            assert!(outbox.offer(None, &Utf8Bytes::from(i.to_string())));
        }
        outbox.next_batch(&mut batch, 3).await;
        outbox.next_batch(&mut batch, 3).await;
        let got: Vec<&str> = batch.iter().map(Utf8Bytes::as_str).collect();
        assert_eq!(got, ["0", "1", "2", "3", "4"]);
        let writer = tokio::spawn({
            let outbox = outbox.clone();
            async move {
                let mut batch = Vec::new();
                outbox.next_batch(&mut batch, 3).await;
                batch
            }
        });
        let watcher = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.evicted().await }
        });
        tokio::task::yield_now().await;
        outbox.offer(None, &Utf8Bytes::from("late"));
        assert_eq!(
            writer.await.unwrap(),
            [Utf8Bytes::from("late")],
            "an event wakes the writer"
        );
        assert!(!watcher.is_finished());
        outbox.evict();
        watcher.await.unwrap();
        assert!(
            outbox.offer(None, &Utf8Bytes::from("after")),
            "an evicted outbox takes nothing, silently"
        );
        assert!(outbox.take_all().is_empty());
    }
}
