//! Delivery across nodes: each node reads the committed messages in id
//! order and hands them, once each, to its own subscribers.
//!
//! `NOTIFY` is only a doorbell: its payload (the newest id) says that there
//! is something to read, never what. Notifications are lost when the
//! listening connection drops, so the loop also reads on a short timer: a
//! lost notification delays delivery by at most [`POLL`], and never loses a
//! message. Every read is `id > last delivered`, in ascending id; since ids
//! follow commit order without gaps (see [`messages`](super::messages)),
//! what one read returns is always the next run of the sequence, so each
//! message is delivered exactly once and in order, the node's own messages
//! included (they come back through the same read).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{watch, Notify};
use tokio_postgres::{AsyncMessage, NoTls};

use super::{PgDb, CHANNEL};
use crate::db::messages::Message;
use crate::db::DbError;
use crate::log::Level;
use crate::shutdown::Shutdown;

/// How long a lost notification can delay delivery.
pub(crate) const POLL: Duration = Duration::from_millis(200);
/// Messages read at once; a longer backlog is read in several pages.
const PAGE: u32 = 500;
/// The wait before listening again after the connection was lost.
const RECONNECT: Duration = Duration::from_secs(1);

/// Delivers every message with an id above `last` to `deliver`, in
/// ascending id, exactly once, until `shutdown`.
pub(crate) async fn follow(db: PgDb, mut last: i64, mut shutdown: Shutdown, mut deliver: impl FnMut(&Message)) {
    let doorbell = Arc::new(Notify::new());
    let _following = Following {
        listener: tokio::spawn(listen(db.url.clone(), doorbell.clone())),
        delivered: db.delivered.clone(),
    };
    db.delivered.send_replace(Some(last));
    let mut shutdown = std::pin::pin!(async move { shutdown.triggered().await });
    let mut failing = false;
    loop {
        loop {
            match db.messages_after(last, PAGE).await {
                Ok(messages) => {
                    failing = false;
                    db.reachable
                        .send_if_modified(|reachable| !std::mem::replace(reachable, true));
                    for message in &messages {
                        deliver(message);
                        last = message.id;
                    }
                    db.delivered.send_replace(Some(last));
                    if messages.len() < PAGE as usize {
                        break;
                    }
                }
                Err(e) => {
                    // Once per outage, not at every poll.
                    if !failing {
                        crate::log!(Level::Warn, "cannot read new messages (retrying): {e}");
                    }
                    failing = true;
                    if matches!(e, DbError::Unavailable(_)) {
                        db.reachable.send_replace(false);
                    }
                    break;
                }
            }
        }
        tokio::select! {
            () = &mut shutdown => break,
            () = doorbell.notified() => {}
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// While the loop runs: its listening task, and the node's mark of what
/// it delivered. However the loop ends, the task stops and the mark is
/// cleared, so that no post waits for a delivery that will not come.
struct Following {
    listener: tokio::task::JoinHandle<()>,
    delivered: Arc<watch::Sender<Option<i64>>>,
}

impl Drop for Following {
    fn drop(&mut self) {
        self.listener.abort();
        self.delivered.send_replace(None);
    }
}

/// Keeps a connection listening on [`CHANNEL`], ringing `doorbell` at each
/// notification, and connects again whenever it is lost.
async fn listen(url: Arc<str>, doorbell: Arc<Notify>) {
    loop {
        let connected = match super::config(&url) {
            Ok(config) => config.connect(NoTls).await.map_err(DbError::from),
            Err(e) => Err(e),
        };
        match connected {
            Ok((client, mut connection)) => {
                let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                let listen = format!("LISTEN {CHANNEL}");
                let listening = client.batch_execute(&listen);
                // The connection is driven by polling its messages: the
                // LISTEN completes while they are read.
                let mut listening = std::pin::pin!(listening);
                let mut listened = false;
                loop {
                    tokio::select! {
                        done = &mut listening, if !listened => {
                            listened = true;
                            if let Err(e) = done {
                                crate::log!(Level::Warn, "cannot LISTEN: {e}");
                                break;
                            }
                        }
                        message = messages.next() => match message {
                            Some(Ok(AsyncMessage::Notification(_))) => doorbell.notify_one(),
                            Some(Ok(_)) => {}
                            Some(Err(e)) => {
                                crate::log!(Level::Warn, "lost the PostgreSQL doorbell: {e}");
                                break;
                            }
                            None => break,
                        },
                    }
                }
            }
            Err(e) => crate::log!(Level::Warn, "cannot connect for the doorbell: {e}"),
        }
        // Whatever rang meanwhile is found by the reader's timer.
        tokio::time::sleep(RECONNECT).await;
    }
}
