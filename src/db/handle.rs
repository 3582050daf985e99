//! The handle every part of the server holds: reads go to a few reader
//! threads with their own connections (WAL lets them proceed while the
//! writer commits), writes to the one writer thread. Both take closures over
//! a connection, so they stay inside this folder: the tables' files build
//! the typed methods callers use on top of them.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use rusqlite::Connection;

use super::writer::Writer;
use super::{schema, DbError};
use crate::config::Synchronous;
use crate::pool::{self, Pool};

const READ_QUEUE: usize = 4096;

#[derive(Clone)]
pub struct Db {
    writer: Writer,
    readers: Arc<Pool<Connection>>,
}

impl Db {
    /// Opens (creating if needed, private to the server's user) the database, brings its schema up to date
    /// and starts the writer and reader threads. Blocking.
    pub fn open(path: &Path, synchronous: Synchronous) -> Result<Db, DbError> {
        schema::make_private(path)?;
        let mut conn = schema::open_connection(path, synchronous)?;
        schema::migrate(&mut conn)?;
        let writer = Writer::start(conn)?;
        let path = path.to_path_buf();
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 4);
        let options = pool::Options {
            name: "db-reader",
            threads,
            queue: READ_QUEUE,
            nice: 0,
        };
        let readers = Pool::start(options, move || {
            let conn = schema::open_connection(&path, synchronous)?;
            conn.pragma_update(None, "query_only", true)?;
            Ok::<_, DbError>(conn)
        })?;
        Ok(Db {
            writer,
            readers: Arc::new(readers),
        })
    }

    /// Runs a read-only query on a reader thread.
    pub(super) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, DbError> {
        self.readers.run(move |conn| f(conn)).await?
    }

    /// Runs `f` in the next group-commit transaction; resolves once it is
    /// committed.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, DbError> {
        self.writer.queue(f, |_| {}).await
    }

    /// Like [`Db::write`], and runs `on_commit` on the writer thread right
    /// after the commit, before later transactions start: hooks therefore run
    /// in commit order, which is what keeps broadcast order equal to id order.
    /// The job is queued at the call, not at the first poll.
    pub(super) fn write_and_then<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
        on_commit: impl FnOnce(&T) + Send + 'static,
    ) -> impl Future<Output = Result<T, DbError>> + Send + 'static {
        self.writer.queue(f, on_commit)
    }
}
