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

/// The storage every part of the server holds. Which backend runs behind
/// it is known only inside this folder: each typed method of the tables'
/// files goes to PostgreSQL first when that is the backend (see
/// [`on_postgres!`](super::on_postgres)), and otherwise runs its SQLite
/// queries through [`Db::read`] and [`Db::write`].
#[derive(Clone)]
pub struct Db(Backend);

#[derive(Clone)]
enum Backend {
    Sqlite {
        writer: Writer,
        readers: Arc<Pool<Connection>>,
    },
    /// Cluster mode (cargo feature `postgres`).
    #[cfg(feature = "postgres")]
    Postgres(super::pg::PgDb),
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
        Ok(Db(Backend::Sqlite {
            writer,
            readers: Arc::new(readers),
        }))
    }

    /// Connects to the cluster's PostgreSQL database at `url`, creating its
    /// schema if needed.
    #[cfg(feature = "postgres")]
    pub async fn connect_postgres(url: &str) -> Result<Db, DbError> {
        Ok(Db(Backend::Postgres(super::pg::PgDb::connect(url).await?)))
    }

    /// On PostgreSQL, starts the loop that hands `deliver` every message
    /// committed in the cluster from now on (this node's included), in id
    /// order, exactly once, until `shutdown` (see `db::pg::follow`). On
    /// SQLite it does nothing: the commit hook delivers there.
    #[cfg(feature = "postgres")]
    pub async fn follow(
        &self,
        shutdown: crate::shutdown::Shutdown,
        deliver: impl FnMut(&super::messages::Message) + Send + 'static,
    ) -> Result<(), DbError> {
        if let Some(pg) = self.postgres() {
            let last = pg.last_id().await?;
            tokio::spawn(super::pg::follow::follow(pg.clone(), last, shutdown, deliver));
        }
        Ok(())
    }

    /// Whether the node reaches its database now: always on SQLite, a file
    /// that cannot go away under a running server; on PostgreSQL, as the
    /// delivery loop last found it.
    pub fn is_reachable(&self) -> bool {
        #[cfg(feature = "postgres")]
        if let Some(pg) = self.postgres() {
            return pg.is_reachable();
        }
        true
    }

    /// On PostgreSQL, what resolves when the node loses its database (at
    /// once if it is lost now). None on SQLite, which cannot be lost under
    /// a running server, so that a chat socket there has nothing more to
    /// poll.
    #[cfg(feature = "postgres")]
    pub fn lost(&self) -> Option<impl Future<Output = ()> + Send + 'static> {
        self.postgres().map(|pg| pg.lost())
    }

    /// See the cluster build's: none on SQLite.
    #[cfg(not(feature = "postgres"))]
    pub fn lost(&self) -> Option<std::future::Pending<()>> {
        None
    }

    /// Whether this node is one of a cluster, on PostgreSQL.
    #[cfg(feature = "postgres")]
    pub fn is_cluster(&self) -> bool {
        self.postgres().is_some()
    }

    /// The PostgreSQL backend, when that is the one that runs.
    #[cfg(feature = "postgres")]
    pub(super) fn postgres(&self) -> Option<&super::pg::PgDb> {
        match &self.0 {
            Backend::Postgres(pg) => Some(pg),
            Backend::Sqlite { .. } => None,
        }
    }

    /// The SQLite backend's threads; a method that reaches here on
    /// PostgreSQL has no query for it.
    fn sqlite(&self) -> Result<(&Writer, &Pool<Connection>), DbError> {
        match &self.0 {
            Backend::Sqlite { writer, readers } => Ok((writer, readers)),
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => Err(DbError::Other("an SQLite query on PostgreSQL storage".into())),
        }
    }

    /// Runs a read-only query on a reader thread.
    pub(super) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, DbError> {
        self.sqlite()?.1.run(move |conn| f(conn)).await?
    }

    /// Runs `f` in the next group-commit transaction; resolves once it is
    /// committed.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, DbError> {
        self.write_and_then(f, |_| {}).await
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
        let queued = self.sqlite().map(|(writer, _)| writer.queue(f, on_commit));
        async move { queued?.await }
    }
}
