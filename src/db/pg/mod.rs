//! PostgreSQL storage for cluster mode (cargo feature `postgres`): several
//! nodes share one database, whose commits are the one order of the room.
//!
//! What is here so far: the schema ([`SCHEMA`], created at every start,
//! idempotent), the message writer with its group commit and its counter
//! row ([`messages`]), the history reads, the settings every node must
//! share (the JWT secret and the epoch), [`users`] and [`sessions`] (with
//! the revocations every node polls), the [`follow`] loop that delivers
//! committed messages to a node in id order, and each node's online users
//! with its heartbeat ([`presence`]). [`files`] and [`links`] serve files
//! and share links, and record deletions for the other nodes' caches.
//!
//! Each node holds two connections: one for reads and small writes, and
//! one for the message writer, so a batch in flight never queues reads
//! behind it. [`follow`] opens a third, for `LISTEN`, and the first
//! deletion of a file a fourth, for the transactions of several statements
//! outside the writer.

pub(crate) mod cluster;
mod dial;
mod files;
pub(crate) mod follow;
mod links;
pub(crate) mod messages;
mod presence;
pub(crate) mod sessions;
#[cfg(test)]
mod tests;
pub(crate) mod users;

use std::sync::Arc;

use tokio::sync::{mpsc, watch, MappedMutexGuard, Mutex, MutexGuard};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use super::DbError;
use crate::log::Level;

/// The schema of cluster mode, run by every node at start.
pub(crate) const SCHEMA: &str = include_str!("schema.sql");

/// Serializes the schema's creation across nodes that start together: the
/// `IF NOT EXISTS` of two concurrent `CREATE`s can still collide.
const SCHEMA_LOCK: i64 = 0x6368_6174_0001;

/// How long opening a connection may take, unless the URL says otherwise.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The channel whose notifications ring the doorbell of every node after a
/// batch of messages commits; the payload is the newest id.
pub(crate) const CHANNEL: &str = "chat_messages";

/// One node's handle on the cluster's database.
#[derive(Clone)]
pub(crate) struct PgDb {
    url: Arc<str>,
    /// Opens the connections below again once lost, with backoff.
    dialer: dial::Dialer,
    /// The connection for reads and small writes, opened again when lost.
    reads: Arc<Mutex<Option<Arc<Client>>>>,
    /// The connection for transactions of several statements outside the
    /// message writer (a file's deletion): a transaction needs a connection
    /// of its own, which the shared `reads` is not. Opened on first use.
    exclusive: Arc<Mutex<Option<Client>>>,
    writer: mpsc::Sender<messages::Append>,
    /// The newest id this node's [`follow`] loop has delivered, once one
    /// runs: a post is answered only once it has been delivered here, as
    /// on SQLite, where the commit hook broadcasts before the answer.
    delivered: Arc<watch::Sender<Option<i64>>>,
    /// Whether the node reaches the database, as the [`follow`] loop last
    /// found it: false from its first failed read to its next good one.
    reachable: Arc<watch::Sender<bool>>,
    /// This process's name among the nodes (see [`presence`]): drawn at
    /// each start, so a restarted node never finds rows of its former life.
    node: Arc<str>,
}

impl PgDb {
    /// Connects, creates the schema if it is missing and starts the message
    /// writer.
    pub(crate) async fn connect(url: &str) -> Result<PgDb, DbError> {
        let mut reads = connect(url).await?;
        let schema = reads.transaction().await?;
        schema
            .execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .await?;
        schema.batch_execute(SCHEMA).await?;
        schema.commit().await?;
        let url: Arc<str> = url.into();
        let dialer = dial::Dialer::new(url.clone());
        let writer = messages::start_writer(dialer.clone(), connect(&url).await?);
        Ok(PgDb {
            url,
            dialer,
            reads: Arc::new(Mutex::new(Some(Arc::new(reads)))),
            exclusive: Arc::new(Mutex::new(None)),
            writer,
            delivered: Arc::new(watch::Sender::new(None)),
            reachable: Arc::new(watch::Sender::new(true)),
            node: random_hex::<8>("the node id")?.into(),
        })
    }

    /// Whether the node reaches the database now.
    pub(crate) fn is_reachable(&self) -> bool {
        *self.reachable.borrow()
    }

    /// Resolves when the node finds it has lost the database, at once if
    /// it is lost now.
    pub(crate) fn lost(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut reachable = self.reachable.subscribe();
        async move {
            if reachable.wait_for(|reachable| !reachable).await.is_err() {
                // The handle is gone with the node: nothing will be lost.
                std::future::pending::<()>().await;
            }
        }
    }

    /// The token-signing secret: the stored one, or `fresh` stored now if
    /// there is none yet. The first node to store one wins; every node
    /// signs with it, so a token from one node is good on all of them.
    pub(crate) async fn jwt_secret(&self, fresh: [u8; 32]) -> Result<Vec<u8>, DbError> {
        self.setting("jwt_secret", fresh.to_vec()).await
    }

    /// The epoch of the cluster's history (see `db::settings`): one for
    /// every node, so a client resumes on any of them.
    pub(crate) async fn epoch(&self) -> Result<String, DbError> {
        let fresh = random_hex::<16>("the epoch")?;
        let stored = self.setting("epoch", fresh.into_bytes()).await?;
        String::from_utf8(stored).map_err(|e| DbError::Other(format!("epoch is not text: {e}")))
    }

    /// Whether the database can be both read and written: a real write of
    /// when the check ran, as on SQLite; and whether the delivery loop
    /// reaches it, so that a node that answers 200 also takes chat sockets.
    pub(crate) async fn check_health(&self) -> Result<(), DbError> {
        if !self.is_reachable() {
            return Err(DbError::Unavailable(
                "delivery has not caught up with the database yet".into(),
            ));
        }
        let now = crate::clock::now_millis().to_string().into_bytes();
        self.client()
            .await?
            .execute(
                "INSERT INTO settings (key, value) VALUES ('last_health_check', $1) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&now],
            )
            .await?;
        Ok(())
    }

    /// The connection for reads and small writes. One lost (PostgreSQL
    /// restarted, a failover) is opened again by the next call, so the node
    /// recovers by itself; until it can be, calls are unavailable (503).
    async fn client(&self) -> Result<Arc<Client>, DbError> {
        let mut current = self.reads.lock().await;
        if let Some(client) = current.as_ref().filter(|client| !client.is_closed()) {
            return Ok(client.clone());
        }
        *current = None;
        let client = match self.dialer.dial().await {
            Ok(client) => Arc::new(client),
            Err(e) => {
                // The delivery loop would find out at its next read; a
                // refused connection says it now, so that no socket is
                // taken meanwhile. That loop's next good read says the
                // database is back.
                self.reachable.send_replace(false);
                return Err(e);
            }
        };
        *current = Some(client.clone());
        Ok(client)
    }

    /// The connection for a transaction, held until the guard drops: one
    /// transaction at a time per node. Opened (again) when there is none
    /// or it was lost.
    async fn exclusive(&self) -> Result<MappedMutexGuard<'_, Client>, DbError> {
        let mut slot = self.exclusive.lock().await;
        let open = match slot.take().filter(|client| !client.is_closed()) {
            Some(client) => client,
            None => self.dialer.dial().await?,
        };
        Ok(MutexGuard::map(slot, |slot| slot.insert(open)))
    }

    /// The value of `key`, storing `fresh` first if there is none.
    async fn setting(&self, key: &str, fresh: Vec<u8>) -> Result<Vec<u8>, DbError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, &fresh],
            )
            .await?;
        let row = self
            .client()
            .await?
            .query_one("SELECT value FROM settings WHERE key = $1", &[&key])
            .await?;
        Ok(row.get(0))
    }
}

/// `N` random bytes in hexadecimal, for `what`.
fn random_hex<const N: usize>(what: &str) -> Result<String, DbError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| DbError::Other(format!("no randomness for {what}: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Opens a connection and drives it on its own task; the client reports
/// the connection's end as errors of its calls.
async fn connect(url: &str) -> Result<Client, DbError> {
    let (client, connection) = config(url)?.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            crate::log!(Level::Warn, "PostgreSQL connection ended: {e}");
        }
    });
    Ok(client)
}

/// The connection settings of `url`, refused if they ask for TLS, which
/// this build does not speak to PostgreSQL (rather than a handshake error
/// that does not say why), with a bound on connecting when the
/// URL gives none (`connect_timeout`): a database host that has gone
/// silent, rather than refusing, must not hold a request or the delivery
/// loop for as long as the kernel keeps trying.
pub(crate) fn config(url: &str) -> Result<tokio_postgres::Config, DbError> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| DbError::Other(format!("not a PostgreSQL URL: {e}")))?;
    if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
        return Err(DbError::Other(
            "sslmode=require: this build connects to PostgreSQL without TLS (use a Unix socket or a private \
             network, see docs/cluster.md)"
                .into(),
        ));
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    Ok(config)
}

/// A lost or refused connection, a server shutting down or out of
/// resources, a serialization failure: conditions that pass, answered 503.
/// Anything else is a bug, answered 500.
impl From<tokio_postgres::Error> for DbError {
    fn from(err: tokio_postgres::Error) -> DbError {
        let passing = match err.code() {
            None => true,
            Some(code) => {
                let class = &code.code()[..2];
                matches!(class, "08" | "53" | "57")
                    || *code == SqlState::T_R_SERIALIZATION_FAILURE
                    || *code == SqlState::T_R_DEADLOCK_DETECTED
            }
        };
        if passing {
            DbError::Unavailable(err.to_string())
        } else {
            DbError::Other(err.to_string())
        }
    }
}
