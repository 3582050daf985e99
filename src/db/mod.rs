//! Storage: SQLite behind blocking threads, with an async API that speaks of
//! users, messages, files and settings and never of SQLite. Those methods
//! are the seam a second backend implements; no caller outside this folder
//! sees a connection, a statement or a row.
//!
//! - [`handle`]: the [`Db`] handle, its reader threads and its writer queue;
//! - [`writer`]: the one writer thread and its group commit;
//! - [`schema`]: opening a file with the contract's pragmas, and migrations;
//! - [`users`], [`messages`], [`files`], [`links`], [`sessions`],
//!   [`settings`]: each table's queries and the async methods built on them;
//! - [`backup`]: a copy of one instant of the file, and what a copy holds;
//! - [`lock`]: the lock file that tells a running server from a restore;
//! - `pg` (cargo feature `postgres`): the cluster's PostgreSQL storage;
//! - `presence` (cargo feature `postgres`): who is online on the other
//!   nodes of a cluster;
//! - `changes` (cargo feature `postgres`): how a node polls for what the
//!   others wrote.

pub(crate) mod backup;
#[cfg(feature = "postgres")]
pub(crate) mod changes;
mod error;
pub(crate) mod files;
mod handle;
pub(crate) mod links;
pub(crate) mod lock;
pub(crate) mod messages;
#[cfg(feature = "postgres")]
pub(crate) mod pg;
#[cfg(feature = "postgres")]
pub(crate) mod presence;
mod schema;
pub(crate) mod sessions;
pub(crate) mod settings;
pub(crate) mod users;
mod writer;

pub(crate) use error::DbError;

/// Sends a typed method of [`Db`] to the PostgreSQL backend when that is
/// the one that runs (and returns its answer); in a build without the
/// feature `postgres` it is nothing at all.
macro_rules! on_postgres {
    ($db:expr, $method:ident ( $($arg:expr),* )) => {
        #[cfg(feature = "postgres")]
        if let Some(pg) = $db.postgres() {
            return pg.$method($($arg),*).await;
        }
    };
}
pub(crate) use handle::Db;
pub(crate) use on_postgres;
