//! Storage: SQLite behind a pool of blocking threads with an async API.
//!
//! One writer thread owns the only connection that writes. It takes every
//! write job that is waiting when it wakes and runs them in one transaction
//! (group commit), each inside its own savepoint so one job's failure does not
//! undo another's. A job's caller is answered only after `COMMIT` returns, so
//! an answer always means "durable". Reads run on a few reader threads with
//! their own connections; WAL lets them proceed while the writer commits.

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use crate::pool::{self, Pool, PoolError};

pub mod files;
pub mod messages;
pub mod settings;
pub mod users;

/// The schema version `schema.sql` describes.
pub const SCHEMA_VERSION: i64 = 1;
const SCHEMA: &str = include_str!("../../schema.sql");
/// Write jobs batched into one transaction at most.
const MAX_BATCH: usize = 512;
const WRITE_QUEUE: usize = 8192;
const READ_QUEUE: usize = 4096;

#[derive(Clone, Debug)]
pub enum DbError {
    /// Busy, locked, read-only, full or unreachable: a condition that may pass,
    /// answered 503.
    Unavailable(String),
    /// Anything else: a bug or a corrupt file, answered 500.
    Other(String),
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Unavailable(e) => write!(f, "database unavailable: {e}"),
            DbError::Other(e) => write!(f, "database error: {e}"),
        }
    }
}

impl std::error::Error for DbError {}

impl From<rusqlite::Error> for DbError {
    fn from(err: rusqlite::Error) -> DbError {
        let passing = matches!(
            err.sqlite_error_code(),
            Some(
                ErrorCode::DatabaseBusy
                    | ErrorCode::DatabaseLocked
                    | ErrorCode::ReadOnly
                    | ErrorCode::CannotOpen
                    | ErrorCode::DiskFull
                    | ErrorCode::SystemIoFailure
                    | ErrorCode::PermissionDenied
            )
        );
        if passing {
            DbError::Unavailable(err.to_string())
        } else {
            DbError::Other(err.to_string())
        }
    }
}

impl From<PoolError> for DbError {
    fn from(err: PoolError) -> DbError {
        match err {
            PoolError::Busy => DbError::Unavailable("too many queries waiting".into()),
            PoolError::Gone => DbError::Unavailable("storage threads stopped".into()),
        }
    }
}

/// Told to a write job once its transaction has ended.
type Completion = Box<dyn FnOnce(Result<(), &DbError>) + Send>;
/// A write job runs inside the batch transaction (or is told why it could not)
/// and returns whether it succeeded, plus what to do once the commit is known.
type WriteJob = Box<dyn FnOnce(Result<&Connection, &DbError>) -> (bool, Completion) + Send>;

/// How far a commit goes before it is answered (SQLite's `synchronous`, in
/// WAL mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Synchronous {
    /// The commit is in the write-ahead log, in the operating system's hands:
    /// it survives the server being killed (`SIGKILL`, a crash), which is
    /// what the contract asks, but not a power cut or a kernel panic. No
    /// disk sync per commit: this is what keeps chat latency under a
    /// millisecond on a disk whose sync takes one or more.
    Normal,
    /// The write-ahead log is synced to the disk before the answer: a
    /// commit also survives a power cut, at the cost of a disk sync per
    /// group commit.
    Full,
}

impl FromStr for Synchronous {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "normal" => Ok(Synchronous::Normal),
            "full" => Ok(Synchronous::Full),
            _ => Err(()),
        }
    }
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

#[derive(Clone)]
pub struct Db {
    writer: mpsc::Sender<WriteJob>,
    readers: std::sync::Arc<Pool<Connection>>,
}

impl Db {
    /// Opens (creating if needed) the database, applies the schema and starts
    /// the writer and reader threads.
    pub fn open(path: &Path, synchronous: Synchronous) -> Result<Db, DbError> {
        let mut conn = open_connection(path, synchronous)?;
        migrate(&mut conn)?;
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        std::thread::Builder::new()
            .name("db-writer".into())
            .spawn(move || write_loop(conn, rx))
            .map_err(|e| DbError::Other(e.to_string()))?;
        let path = path.to_path_buf();
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 4);
        let options = pool::Options {
            name: "db-reader",
            threads,
            queue: READ_QUEUE,
            nice: 0,
        };
        let readers = Pool::start(options, move || {
            let conn = open_connection(&path, synchronous)?;
            conn.pragma_update(None, "query_only", true)?;
            Ok::<_, DbError>(conn)
        })?;
        Ok(Db {
            writer: tx,
            readers: std::sync::Arc::new(readers),
        })
    }

    /// Runs a read-only query on a reader thread.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, DbError> {
        self.readers.run(move |conn| f(conn)).await?
    }

    /// Runs `f` in the next group-commit transaction; resolves once it is
    /// committed.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, DbError> {
        self.write_and_then(f, |_| {}).await
    }

    /// Like [`Db::write`], and runs `on_commit` on the writer thread right
    /// after the commit, before later transactions start: hooks therefore run
    /// in commit order, which is what keeps broadcast order equal to id order.
    ///
    /// The job is queued when this is called, not when the future is first
    /// polled: a caller may queue several jobs before awaiting any, and they
    /// commit in the order of the calls.
    pub fn write_and_then<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
        on_commit: impl FnOnce(&T) + Send + 'static,
    ) -> impl Future<Output = Result<T, DbError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let job: WriteJob = Box::new(move |conn| {
            let result = conn.map_err(DbError::clone).and_then(f);
            let ok = result.is_ok();
            let completion: Completion = Box::new(move |commit| {
                let result = match (result, commit) {
                    (Ok(value), Ok(())) => {
                        on_commit(&value);
                        Ok(value)
                    }
                    (Ok(_), Err(e)) => Err(e.clone()),
                    (Err(e), _) => Err(e),
                };
                let _ = tx.send(result);
            });
            (ok, completion)
        });
        let queued = self
            .writer
            .try_send(job)
            .map_err(|_| DbError::Unavailable("too many writes waiting".into()));
        async move {
            queued?;
            rx.await
                .map_err(|_| DbError::Unavailable("storage writer stopped".into()))?
        }
    }
}

fn open_connection(path: &Path, synchronous: Synchronous) -> Result<Connection, DbError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", synchronous.pragma())?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // Without the planner's stability guarantee, SQLite plans `LIMIT ?` for
    // the value bound when the statement was prepared, and binding another
    // value makes the cached statement prepare itself again on its next
    // step: a parse and plan for every history page.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Applies `schema.sql` and records its version. Idempotent; refuses a
/// database written by a newer version of the server.
fn migrate(conn: &mut Connection) -> Result<(), DbError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(DbError::Other(format!(
            "the database has schema version {version}, newer than this server's {SCHEMA_VERSION}"
        )));
    }
    let tx = conn.transaction()?;
    tx.execute_batch(SCHEMA)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

fn write_loop(conn: Connection, mut rx: mpsc::Receiver<WriteJob>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(job) = rx.blocking_recv() {
        batch.push(job);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&conn, batch.drain(..));
    }
}

fn run_batch(conn: &Connection, jobs: impl Iterator<Item = WriteJob>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let e = DbError::from(e);
        for job in jobs {
            job(Err(&e)).1(Err(&e));
        }
        return;
    }
    let mut completions = Vec::new();
    for job in jobs {
        let completion = match conn.execute_batch("SAVEPOINT job") {
            Ok(()) => {
                let (ok, completion) = job(Ok(conn));
                let end = if ok {
                    "RELEASE job"
                } else {
                    "ROLLBACK TO job; RELEASE job"
                };
                let _ = conn.execute_batch(end);
                completion
            }
            Err(e) => job(Err(&DbError::from(e))).1,
        };
        completions.push(completion);
    }
    let commit = conn.execute_batch("COMMIT").map_err(DbError::from);
    if commit.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    for completion in completions {
        completion(commit.as_ref().map(|_| ()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::StatementStatus;

    fn pragma<T: rusqlite::types::FromSql>(conn: &Connection, name: &str) -> Result<T, DbError> {
        Ok(conn.pragma_query_value(None, name, |row| row.get(0))?)
    }

    #[test]
    fn a_cached_statement_is_not_prepared_again_for_other_values() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open_connection(&dir.path().join("chat.db"), Synchronous::Normal).unwrap();
        migrate(&mut conn).unwrap();
        for (before_id, limit) in [(10, 21), (5, 3), (1_000, 101)] {
            messages::before_id(&conn, before_id, limit).unwrap();
            messages::at_offset(&conn, before_id, limit).unwrap();
        }
        for sql in [messages::BEFORE_ID, messages::AT_OFFSET] {
            let statement = conn.prepare_cached(sql).unwrap();
            assert_eq!(statement.get_status(StatementStatus::RePrepare), 0, "{sql}");
        }
    }

    #[tokio::test]
    async fn schema_is_versioned_and_reapplied_harmlessly_with_the_contract_pragmas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.db");
        // SQLite numbers them: NORMAL is 1, FULL is 2.
        for (synchronous, level) in [(Synchronous::Full, 2), (Synchronous::Normal, 1)] {
            let db = Db::open(&path, synchronous).unwrap();
            let read = db
                .read(|conn| {
                    Ok((
                        pragma::<i64>(conn, "user_version")?,
                        pragma::<String>(conn, "journal_mode")?,
                        pragma::<bool>(conn, "foreign_keys")?,
                        pragma::<i64>(conn, "busy_timeout")?,
                    ))
                })
                .await
                .unwrap();
            assert_eq!(read, (SCHEMA_VERSION, "wal".to_string(), true, 5000));
            let written = db
                .write(|conn| {
                    Ok((
                        pragma::<bool>(conn, "foreign_keys")?,
                        pragma::<i64>(conn, "busy_timeout")?,
                        pragma::<i64>(conn, "synchronous")?,
                    ))
                })
                .await
                .unwrap();
            assert_eq!(written, (true, 5000, level));
            db.write(|conn| settings::jwt_secret(conn, b"first")).await.unwrap();
        }
        // The second start kept the data of the first.
        let db = Db::open(&path, Synchronous::Normal).unwrap();
        let secret = db.write(|conn| settings::jwt_secret(conn, b"second")).await.unwrap();
        assert_eq!(secret, b"first");
    }

    #[test]
    fn a_database_from_a_newer_server_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        assert!(matches!(Db::open(&path, Synchronous::Normal), Err(DbError::Other(e)) if e.contains("newer")));
    }

    #[tokio::test]
    async fn a_failed_write_is_undone_without_undoing_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("chat.db"), Synchronous::Normal).unwrap();
        let insert = |key: &'static str| {
            move |conn: &Connection| -> Result<usize, DbError> {
                Ok(conn.execute("INSERT INTO settings (key, value) VALUES (?1, x'00')", [key])?)
            }
        };
        let failing = db.write(move |conn| {
            insert("undone")(conn)?;
            Err::<(), _>(DbError::Other("refused after writing".into()))
        });
        let (failed, kept) = tokio::join!(failing, db.write(insert("kept")));
        assert!(failed.is_err());
        assert_eq!(kept.unwrap(), 1);
        let keys = db
            .read(|conn| {
                let mut statement = conn.prepare("SELECT key FROM settings ORDER BY key")?;
                let keys = statement.query_map([], |row| row.get::<_, String>(0))?;
                Ok(keys.collect::<Result<Vec<_>, _>>()?)
            })
            .await
            .unwrap();
        assert_eq!(keys, ["kept"]);
    }

    #[tokio::test]
    async fn foreign_keys_are_enforced_and_readers_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("chat.db"), Synchronous::Normal).unwrap();
        let orphan = db
            .write(|conn| {
                Ok(conn.execute(
                    "INSERT INTO messages (user_id, username, content, created_at) VALUES (999, 'x', 'y', 0)",
                    [],
                )?)
            })
            .await;
        assert!(matches!(orphan, Err(DbError::Other(_))), "{orphan:?}");
        let from_reader = db
            .read(|conn| Ok(conn.execute("INSERT INTO settings (key, value) VALUES ('r', x'00')", [])?))
            .await;
        assert!(from_reader.is_err());
    }
}
