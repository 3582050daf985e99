//! The operations subcommands: `backup`, `verify` and `restore` (the
//! contract's *Subcommands*). They run without the server, on the files.
//!
//! A backup is a directory: `chat.db` (the database as of one instant,
//! copied on a read connection while the server goes on), `uploads/` (every
//! file a row of that instant names, hard-linked when on the same file
//! system, else copied) and `manifest.json`. It is built in a hidden
//! directory next to `OUT` and renamed to `OUT` at the end, so `OUT` either
//! does not exist or is whole.
//!
//! Files are never changed once stored (a deletion only unlinks them), so a
//! hard link shares nothing that can change under the backup.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Operation;
use crate::db::backup::{self, Contents};
use crate::db::lock::{DatabaseLock, LockError};
use crate::files::store::{self, hex};

/// The manifest's layout; a later change to it gets a new number.
const FORMAT_VERSION: u32 = 1;
const DB_FILE: &str = "chat.db";
const UPLOADS: &str = "uploads";
const MANIFEST: &str = "manifest.json";

/// `OUT/manifest.json`.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
struct Manifest {
    format_version: u32,
    schema_version: i64,
    epoch: Option<String>,
    newest_message_id: i64,
    counts: Counts,
    /// File id to its sha256 (lower-case hex).
    files: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
struct Counts {
    users: i64,
    messages: i64,
    files: i64,
}

impl Manifest {
    fn of(contents: &Contents) -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            schema_version: contents.schema_version,
            epoch: contents.epoch.clone(),
            newest_message_id: contents.newest_message_id,
            counts: Counts {
                users: contents.users,
                messages: contents.messages,
                files: contents.files.len() as i64,
            },
            files: contents.files.iter().cloned().collect(),
        }
    }
}

/// Runs an operation: one line for stdout on success, else one line per
/// problem.
pub fn run(operation: Operation) -> Result<String, Vec<String>> {
    match operation {
        Operation::Backup { db, uploads_dir, out } => backup(&db, &uploads_dir, &out).map_err(|e| vec![e]),
        Operation::Verify { out } => {
            let problems = verify(&out);
            if problems.is_empty() {
                Ok(format!("{}: the backup is sound", out.display()))
            } else {
                Err(problems)
            }
        }
        Operation::Restore { out, db, uploads_dir } => restore(&out, &db, &uploads_dir),
    }
}

/// The SQLite file of `--db`; a PostgreSQL URL is refused.
fn sqlite_path(db: &str) -> Result<PathBuf, String> {
    if db.starts_with("postgres://") || db.starts_with("postgresql://") {
        return Err("a PostgreSQL database is backed up with PostgreSQL's own tools (pg_dump), not here".into());
    }
    Ok(PathBuf::from(db))
}

fn backup(db: &str, uploads: &Path, out: &Path) -> Result<String, String> {
    let db = sqlite_path(db)?;
    if fs::symlink_metadata(out).is_ok() {
        return Err(format!(
            "{} already exists; a backup goes into a new directory",
            out.display()
        ));
    }
    let staging = Staged::new(out, "partial").map_err(|e| format!("cannot create the backup: {e}"))?;
    // The copy holds the password hashes and the token-signing secret: only
    // its owner may enter it.
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging.0)
        .map_err(|e| format!("cannot create {}: {e}", staging.0.display()))?;
    let copy = staging.0.join(DB_FILE);
    backup::snapshot(&db, &copy).map_err(|e| format!("cannot copy the database {}: {e}", db.display()))?;
    let contents = backup::contents(&copy).map_err(|e| format!("cannot read the database copy: {e}"))?;
    let copied_uploads = staging.0.join(UPLOADS);
    fs::create_dir(&copied_uploads).map_err(|e| format!("cannot create {}: {e}", copied_uploads.display()))?;
    for (id, _) in &contents.files {
        if !store::is_valid_id(id) {
            return Err(format!("the database names a file with an invalid id {id:?}"));
        }
        let from = store::path(uploads, id);
        link_or_copy(&from, &copied_uploads.join(id)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => format!(
                "file {id} is named by the database but not in {} (the wrong --uploads-dir, or deleted during the backup: run it again)",
                uploads.display()
            ),
            _ => format!("cannot copy {}: {e}", from.display()),
        })?;
    }
    let manifest = Manifest::of(&contents);
    write_synced(
        &staging.0.join(MANIFEST),
        &serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
    )
    .map_err(|e| format!("cannot write the manifest: {e}"))?;
    sync_dir(&copied_uploads)
        .and_then(|()| sync_dir(&staging.0))
        .map_err(|e| format!("cannot sync the backup: {e}"))?;
    staging
        .finish(out)
        .map_err(|e| format!("cannot rename the backup to {}: {e}", out.display()))?;
    Ok(format!(
        "backed up {} users, {} messages (newest id {}) and {} files into {}",
        manifest.counts.users,
        manifest.counts.messages,
        manifest.newest_message_id,
        manifest.counts.files,
        out.display()
    ))
}

/// Every problem of the backup in `out`, one line each; none if it is sound.
fn verify(out: &Path) -> Vec<String> {
    let manifest = match fs::read(out.join(MANIFEST)) {
        Ok(bytes) => match serde_json::from_slice::<Manifest>(&bytes) {
            Ok(manifest) => manifest,
            Err(e) => return vec![format!("{MANIFEST}: not a manifest: {e}")],
        },
        Err(e) => return vec![format!("{}: {e}", out.join(MANIFEST).display())],
    };
    let mut problems = Vec::new();
    if manifest.format_version != FORMAT_VERSION {
        problems.push(format!(
            "{MANIFEST}: format version {} (this server reads {FORMAT_VERSION})",
            manifest.format_version
        ));
    }
    let db = out.join(DB_FILE);
    match backup::integrity_problems(&db) {
        Ok(found) => problems.extend(found.into_iter().map(|problem| format!("{DB_FILE}: {problem}"))),
        Err(e) => problems.push(format!("{DB_FILE}: {e}")),
    }
    match backup::contents(&db) {
        Ok(contents) => problems.extend(differences(&manifest, &Manifest::of(&contents))),
        Err(e) => problems.push(format!("{DB_FILE}: {e}")),
    }
    for (id, sha256) in &manifest.files {
        if !store::is_valid_id(id) {
            problems.push(format!("{MANIFEST}: invalid file id {id:?}"));
            continue;
        }
        match sha256_of(&store::path(&out.join(UPLOADS), id)) {
            Ok(found) if found == *sha256 => {}
            Ok(_) => problems.push(format!("file {id}: its sha256 does not match the manifest")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => problems.push(format!("file {id}: missing")),
            Err(e) => problems.push(format!("file {id}: {e}")),
        }
    }
    problems
}

/// What the manifest says that the database copy does not.
fn differences(manifest: &Manifest, found: &Manifest) -> Vec<String> {
    let mut problems = Vec::new();
    let mut differ = |what: &str, said: String, has: String| {
        if said != has {
            problems.push(format!("{what}: the manifest says {said}, the database has {has}"));
        }
    };
    differ(
        "schema version",
        manifest.schema_version.to_string(),
        found.schema_version.to_string(),
    );
    differ("epoch", format!("{:?}", manifest.epoch), format!("{:?}", found.epoch));
    differ(
        "newest message id",
        manifest.newest_message_id.to_string(),
        found.newest_message_id.to_string(),
    );
    differ(
        "users",
        manifest.counts.users.to_string(),
        found.counts.users.to_string(),
    );
    differ(
        "messages",
        manifest.counts.messages.to_string(),
        found.counts.messages.to_string(),
    );
    differ(
        "files",
        manifest.counts.files.to_string(),
        found.counts.files.to_string(),
    );
    if manifest.counts.files == found.counts.files && manifest.files != found.files {
        problems.push("files: the manifest's ids or sha256s differ from the database's".into());
    }
    problems
}

fn restore(out: &Path, db: &str, uploads: &Path) -> Result<String, Vec<String>> {
    let one = |e: String| vec![e];
    let db = sqlite_path(db).map_err(one)?;
    // Held to the end: no server can start on the database meanwhile.
    let _lock = DatabaseLock::exclusive(&db).map_err(|e| match e {
        LockError::Held(_) => one(format!(
            "a server is running on {}; stop it before restoring",
            db.display()
        )),
        other => one(format!("cannot lock the database: {other}")),
    })?;
    let problems = verify(out);
    if !problems.is_empty() {
        return Err(problems
            .into_iter()
            .map(|p| format!("{}: {p}", out.display()))
            .collect());
    }
    let new_db = Staged::new(&db, "restore").map_err(|e| one(format!("cannot restore: {e}")))?;
    fs::copy(out.join(DB_FILE), &new_db.0)
        .map_err(|e| one(format!("cannot copy the database next to {}: {e}", db.display())))?;
    let epoch = backup::renew_epoch(&new_db.0).map_err(|e| one(format!("cannot set a new epoch: {e}")))?;
    File::open(&new_db.0)
        .and_then(|file| file.sync_all())
        .map_err(|e| one(format!("cannot sync the database: {e}")))?;
    let new_uploads = Staged::new(uploads, "restore").map_err(|e| one(format!("cannot restore: {e}")))?;
    copy_dir(&out.join(UPLOADS), &new_uploads.0)
        .map_err(|e| one(format!("cannot copy the files next to {}: {e}", uploads.display())))?;
    // The swap. A write-ahead log left by the old database must not be
    // applied to the new one.
    for suffix in ["-wal", "-shm"] {
        let mut path = db.as_os_str().to_owned();
        path.push(suffix);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(one(format!("cannot remove {}: {e}", Path::new(&path).display())));
            }
            _ => {}
        }
    }
    new_db
        .finish(&db)
        .map_err(|e| one(format!("cannot replace {}: {e}", db.display())))?;
    let old_uploads = Staged::new(uploads, "old").map_err(|e| one(format!("cannot restore: {e}")))?;
    if uploads.exists() {
        fs::rename(uploads, &old_uploads.0)
            .map_err(|e| one(format!("cannot move the old {} aside: {e}", uploads.display())))?;
    }
    new_uploads
        .finish(uploads)
        .map_err(|e| one(format!("cannot replace {}: {e}", uploads.display())))?;
    drop(old_uploads);
    Ok(format!(
        "restored {} into {} and {} (new epoch {epoch})",
        out.display(),
        db.display(),
        uploads.display()
    ))
}

/// A file or directory being built next to its final place, under a hidden
/// name; removed on drop unless [`Staged::finish`] renamed it into place.
struct Staged(PathBuf);

impl Staged {
    /// `.NAME.TAG-RANDOM` next to `target`.
    fn new(target: &Path, tag: &str) -> io::Result<Staged> {
        let name = target
            .file_name()
            .ok_or_else(|| io::Error::other(format!("{} names no file", target.display())))?;
        let mut random = [0u8; 6];
        getrandom::fill(&mut random).map_err(io::Error::other)?;
        let staged = format!(".{}.{tag}-{}", name.to_string_lossy(), hex(&random));
        Ok(Staged(target.with_file_name(staged)))
    }

    /// Renames into place and syncs the directory that holds it. Once
    /// renamed, the hidden name is gone and the drop finds nothing to
    /// remove.
    fn finish(self, target: &Path) -> io::Result<()> {
        fs::rename(&self.0, target)?;
        let parent = target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        sync_dir(parent)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = match fs::symlink_metadata(&self.0) {
            Ok(meta) if meta.is_dir() => fs::remove_dir_all(&self.0),
            Ok(_) => fs::remove_file(&self.0),
            Err(_) => Ok(()),
        };
    }
}

/// A hard link when both sides are on one file system, else a synced copy.
fn link_or_copy(from: &Path, to: &Path) -> io::Result<()> {
    match fs::hard_link(from, to) {
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
            fs::copy(from, to)?;
            File::open(to)?.sync_all()
        }
        linked => linked,
    }
}

/// Every file of `from` into the new directory `to`.
fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        link_or_copy(&entry.path(), &to.join(entry.file_name()))?;
    }
    sync_dir(to)
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    fs::write(path, bytes)?;
    File::open(path)?.sync_all()
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The sha256 of a file's bytes, lower-case hex.
fn sha256_of(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex(&hasher.finalize()))
}
