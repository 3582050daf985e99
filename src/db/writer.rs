//! The one thread that writes, and its group commit.
//!
//! It takes every write job that is waiting when it wakes and runs them in
//! one transaction, each inside its own savepoint so one job's failure does
//! not undo another's. A job's caller is answered only after `COMMIT`
//! returns, so an answer always means "durable"; the jobs' commit hooks run
//! on this thread right after the commit, in commit order.

use std::future::Future;
use std::time::Instant;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::DbError;
use crate::metrics::METRICS;

/// Write jobs batched into one transaction at most.
const MAX_BATCH: usize = 512;
const WRITE_QUEUE: usize = 8192;

/// Told to a write job once its transaction has ended.
type Completion = Box<dyn FnOnce(Result<(), &DbError>) + Send>;
/// A write job runs inside the batch transaction (or is told why it could not)
/// and returns whether it succeeded, plus what to do once the commit is known.
type WriteJob = Box<dyn FnOnce(Result<&Connection, &DbError>) -> (bool, Completion) + Send>;

/// The queue to the writer thread.
#[derive(Clone)]
pub(super) struct Writer(mpsc::Sender<WriteJob>);

impl Writer {
    /// Starts the writer thread on `conn`, the only connection that writes.
    pub(super) fn start(conn: Connection) -> std::io::Result<Writer> {
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        std::thread::Builder::new()
            .name("db-writer".into())
            .spawn(move || write_loop(conn, rx))?;
        Ok(Writer(tx))
    }

    /// Queues `f` for the next transaction, and `on_commit` to run right
    /// after its commit. The job is queued when this is called, not when the
    /// future is first polled: a caller may queue several jobs before
    /// awaiting any, and they commit in the order of the calls.
    pub(super) fn queue<T: Send + 'static>(
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
            .0
            .try_send(job)
            .map_err(|_| DbError::Unavailable("too many writes waiting".into()));
        async move {
            queued?;
            rx.await
                .map_err(|_| DbError::Unavailable("storage writer stopped".into()))?
        }
    }
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
    let started = Instant::now();
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
    METRICS.commit_latency.observe_duration(started.elapsed());
    METRICS.commit_batch_size.observe(completions.len() as u64);
    for completion in completions {
        completion(commit.as_ref().map(|_| ()));
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Synchronous;
    use crate::db::{Db, DbError};
    use rusqlite::Connection;

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
}
