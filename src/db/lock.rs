//! Who holds a database file: every server holds a shared advisory lock on
//! a lock file next to it (`DB.lock`) for its whole life, and `restore`
//! takes the exclusive one. So `restore` is refused while any server runs
//! on the file, and a server cannot start while a restore is under way.
//! The kernel drops the lock when its holder exits, however it exits.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::sys;

/// A held lock; released when dropped.
pub(crate) struct DatabaseLock {
    _file: File,
}

/// Why a lock was not had.
#[derive(Debug)]
pub enum LockError {
    /// Someone else holds a conflicting lock.
    Held(PathBuf),
    Io(PathBuf, io::Error),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Held(path) => write!(f, "{} is locked", path.display()),
            LockError::Io(path, e) => write!(f, "lock file {}: {e}", path.display()),
        }
    }
}

impl DatabaseLock {
    /// What a server holds: any number of servers may share it.
    pub(crate) fn shared(db: &Path) -> Result<DatabaseLock, LockError> {
        DatabaseLock::take(db, false)
    }

    /// What `restore` holds: no server may run meanwhile.
    pub(crate) fn exclusive(db: &Path) -> Result<DatabaseLock, LockError> {
        DatabaseLock::take(db, true)
    }

    fn take(db: &Path, exclusive: bool) -> Result<DatabaseLock, LockError> {
        let path = lock_path(db);
        let io = |e| LockError::Io(path.clone(), e);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        match sys::try_lock(&file, exclusive).map_err(io)? {
            true => Ok(DatabaseLock { _file: file }),
            false => Err(LockError::Held(path)),
        }
    }
}

/// `DB.lock`, next to the database.
fn lock_path(db: &Path) -> PathBuf {
    let mut path = db.as_os_str().to_owned();
    path.push(".lock");
    PathBuf::from(path)
}
