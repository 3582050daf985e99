//! The bytes of uploaded files on disk: ids, paths, writing a new file under a
//! temporary name, making it durable, and the start-up sweep.
//!
//! A file is written as `<dir>/.tmp-<id>` (in cluster mode
//! `<dir>/.tmp-<node>-<id>`, see [`temp_name`]), fsynced, renamed to
//! `<dir>/<id>` and the directory fsynced; only then does the caller insert
//! its row. Every file not yet committed is owned by a [`Discard`] guard that
//! removes it if the upload fails or is abandoned, and whatever a crash
//! leaves behind (a temp file, or a renamed file whose row was never
//! inserted) is removed by [`sweep`] at a later start. The client's file name
//! never takes part in any path: names on disk are ids the server drew
//! itself.
//!
//! All file-system calls here are blocking; they run on tokio's blocking
//! threads (or, for the start-up sweep, on a storage thread), never on an
//! async worker.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, Semaphore, SemaphorePermit};
use tokio::task::JoinHandle;

use crate::descriptors::{self, Held};
use crate::log::Level;
use crate::sync::blocking;
use crate::sys;

/// Random bytes in an id: 128 bits, written as 32 lowercase hex digits.
const ID_BYTES: usize = 16;
const TEMP_PREFIX: &str = ".tmp-";
/// How old (by its modification time) a file of another node's must be
/// before a sweep removes it. A live upload in cluster mode writes to its
/// temp file at least every [`REFRESH`] plus
/// [`BODY_READ_TIMEOUT`](crate::http::body::BODY_READ_TIMEOUT) (90 s: a
/// body that sends nothing for 30 s is cut off), and a renamed file gets
/// its row within moments; an hour is more than an order of magnitude more,
/// which also covers clocks of the nodes and the file server that disagree
/// by minutes. The cost: a crashed node's leftovers stay until a node
/// starts an hour or more later.
pub(crate) const GRACE: Duration = Duration::from_secs(60 * 60);
/// In cluster mode, a partly filled buffer is written once this long has
/// passed since the last write: a slow upload (a buffer fills only every
/// [`WRITE_CHUNK`] bytes) would otherwise leave its temp file unwritten for
/// as long as it likes, and look abandoned to another node's sweep.
const REFRESH: Duration = Duration::from_secs(60);
/// Received bytes are hashed and written in pieces of this size, each by one
/// blocking task, while the next pieces are being received.
const WRITE_CHUNK: usize = 1024 * 1024;
/// Buffers one upload may hold: one being filled on the event loop, the
/// others queued for or in the blocking write. With several, a write that
/// stalls for a moment (the disk, a busy blocking pool) does not stop the
/// receiving at once. The memory of an upload is bounded by
/// `BUFFERS * WRITE_CHUNK`.
const BUFFERS: usize = 4;

/// Buffers beyond its first that all uploads together may hold, so that many
/// uploads at once cost one buffer each plus at most this many: an upload
/// that finds none to spare works with the one it has, receiving while
/// nothing is being written.
static SPARE_BUFFERS: Semaphore = Semaphore::const_new(32);

/// A fresh id that is unguessable and safe in a URL and a file name.
pub(crate) fn new_id() -> io::Result<String> {
    random_hex(ID_BYTES)
}

/// `bytes` random bytes from the operating system, in lowercase hex.
pub(crate) fn random_hex(bytes: usize) -> io::Result<String> {
    let mut drawn = vec![0u8; bytes];
    getrandom::fill(&mut drawn).map_err(io::Error::other)?;
    Ok(hex(&drawn))
}

/// Whether `id` has the shape of an id this server draws; anything else is
/// refused before it comes near the file system.
pub(crate) fn is_valid_id(id: &str) -> bool {
    id.len() == 2 * ID_BYTES && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The name of the temp file of upload `id`: `.tmp-<id>` when one process
/// owns the directory, `.tmp-<node>-<id>` when the nodes of a cluster share
/// it, so that a sweep can tell its own leftovers from another node's
/// uploads in flight.
fn temp_name(node: Option<&str>, id: &str) -> String {
    match node {
        Some(node) => format!("{TEMP_PREFIX}{node}-{id}"),
        None => format!("{TEMP_PREFIX}{id}"),
    }
}

/// Whether `name` is a temp file [`temp_name`] gave `node`. Node names may
/// hold `-`; ids do not, so the id is what follows the last one.
fn is_temp_of(name: &str, node: &str) -> bool {
    name.strip_prefix(TEMP_PREFIX)
        .and_then(|rest| rest.rsplit_once('-'))
        .is_some_and(|(of, id)| of == node && is_valid_id(id))
}

/// Where the committed bytes of `id` live. `id` must be valid.
pub(crate) fn path(dir: &Path, id: &str) -> PathBuf {
    debug_assert!(is_valid_id(id));
    dir.join(id)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Removes a file when dropped, unless [`Discard::keep`] was called: the
/// owner of every file that is not (yet) backed by a row.
pub(crate) struct Discard {
    path: Option<PathBuf>,
}

impl Discard {
    fn new(path: PathBuf) -> Discard {
        Discard { path: Some(path) }
    }

    /// The file is now owned by its row: keep it.
    pub(crate) fn keep(mut self) {
        self.path = None;
    }
}

impl Drop for Discard {
    /// The removal runs on a blocking thread when a runtime is there to run
    /// it; if the runtime is already shutting down and drops the task, the
    /// start-up sweep removes the file instead.
    fn drop(&mut self) {
        let Some(path) = self.path.take() else {
            return;
        };
        let remove = move || {
            if let Err(e) = remove_file(&path) {
                crate::log!(Level::Warn, "cannot remove {}: {e}", path.display());
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(remove)),
            Err(_) => remove(),
        }
    }
}

/// The temp file and how much has been written to it.
struct Disk {
    file: File,
    written: u64,
}

impl Disk {
    /// Writes one piece and has the kernel start writing it to the disk now:
    /// left to itself the kernel would hold the whole upload in dirty pages
    /// and write it all during the final fsync, after the last byte arrived;
    /// started early, the disk works while the rest arrives. Blocking.
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        let offset = self.written;
        self.written += bytes.len() as u64;
        sys::start_writeback(&self.file, offset, bytes.len())
    }
}

/// The temp file and the digest of what has been written to it.
struct Writer {
    file: Disk,
    hasher: Sha256,
}

/// Writes the buffers that come in on `full`, in order, and sends them back
/// on `empty` for reuse. Ends when `full` is closed (the upload is complete
/// or abandoned) or at the first error.
///
/// This is a task of its own, so the writing goes on while the upload's
/// handler waits for the socket, and the handler goes on receiving while a
/// write is in progress. Each buffer is hashed and written at the same time,
/// on two blocking threads: copying into the page cache and SHA-256 are the
/// two largest costs of an upload, and one after the other they made the
/// writing slower than the receiving.
async fn write_in_order(
    mut writer: Writer,
    mut full: mpsc::Receiver<Vec<u8>>,
    empty: mpsc::Sender<Vec<u8>>,
) -> io::Result<Writer> {
    while let Some(buffer) = full.recv().await {
        let buffer = Arc::new(buffer);
        let Writer { mut file, mut hasher } = writer;
        let (hashed, written) = {
            let (to_hash, to_write) = (Arc::clone(&buffer), Arc::clone(&buffer));
            tokio::join!(
                blocking(move || {
                    hasher.update(&*to_hash);
                    Ok(hasher)
                }),
                blocking(move || {
                    file.write(&to_write)?;
                    Ok(file)
                })
            )
        };
        writer = Writer {
            file: written?,
            hasher: hashed?,
        };
        // Both threads are done with it, so it is ours again (were it not, an
        // empty one stands in: the handler counts on getting one back). The
        // handler may be gone already; the buffer is then just freed.
        let mut buffer = Arc::try_unwrap(buffer).unwrap_or_default();
        buffer.clear();
        let _ = empty.try_send(buffer);
    }
    Ok(writer)
}

/// A file being received. Bytes are gathered into [`WRITE_CHUNK`]-sized
/// buffers; a full buffer goes to the upload's writer task, which hashes
/// and writes it on blocking threads while the caller receives into another
/// one. At most [`BUFFERS`] exist, so memory stays bounded whatever the size
/// of the file: when all are taken, the caller waits for one to come back.
///
/// Dropped before [`Incoming::commit`], the writer task finishes the buffers
/// it already has (the [`Discard`] guard removes the file meanwhile; bytes
/// written to a removed file are freed when it is closed) and ends.
pub(crate) struct Incoming {
    id: String,
    dir: PathBuf,
    temp: PathBuf,
    /// Removes the temp file unless the upload is committed.
    discard: Discard,
    buffer: Vec<u8>,
    /// One for each buffer this upload has beyond its first.
    spares: Vec<SemaphorePermit<'static>>,
    /// `None` once closed at commit, which lets the writer task end.
    full: Option<mpsc::Sender<Vec<u8>>>,
    empty: mpsc::Receiver<Vec<u8>>,
    /// `None` once awaited (after an error or at commit).
    writer: Option<JoinHandle<io::Result<Writer>>>,
    len: u64,
    /// Whether a partly filled buffer is written after [`REFRESH`] (in
    /// cluster mode), and when a buffer was last handed to the writer.
    refresh: bool,
    handed_over: Instant,
    /// The temp file's unit of the descriptor budget; it also covers the
    /// directory opened for its sync once the file is closed.
    _descriptor: Held,
}

/// A file that is durably in place under its final name, still owned by a
/// [`Discard`] until its row is committed.
pub(crate) struct Stored {
    pub id: String,
    pub size: u64,
    pub sha256: String,
    pub discard: Discard,
}

impl Incoming {
    /// Creates the temp file of a fresh id (named for `node` in cluster
    /// mode, see [`temp_name`]), readable by the server's user only, counted
    /// against the descriptor budget (an error when it is spent).
    pub(crate) async fn create(dir: &Path, node: Option<&str>) -> io::Result<Incoming> {
        let descriptor = descriptors::take_for_files(1)?;
        let id = new_id()?;
        let temp = dir.join(temp_name(node, &id));
        let opened = temp.clone();
        let file = blocking(move || {
            use std::os::unix::fs::OpenOptionsExt;
            OpenOptions::new().write(true).create_new(true).mode(0o600).open(opened)
        })
        .await?;
        // Neither channel can fill: an upload never has more than BUFFERS buffers.
        let (full, to_write) = mpsc::channel(BUFFERS);
        let (written, empty) = mpsc::channel(BUFFERS);
        let writer = Writer {
            file: Disk { file, written: 0 },
            hasher: Sha256::new(),
        };
        Ok(Incoming {
            id,
            dir: dir.to_path_buf(),
            temp: temp.clone(),
            discard: Discard::new(temp),
            buffer: Vec::with_capacity(WRITE_CHUNK),
            spares: Vec::new(),
            full: Some(full),
            empty,
            writer: Some(tokio::spawn(write_in_order(writer, to_write, written))),
            len: 0,
            refresh: node.is_some(),
            handed_over: Instant::now(),
            _descriptor: descriptor,
        })
    }

    /// Bytes received so far.
    pub(crate) fn received(&self) -> u64 {
        self.len
    }

    pub(crate) async fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        self.len += bytes.len() as u64;
        while !bytes.is_empty() {
            let room = WRITE_CHUNK - self.buffer.len();
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            self.buffer.extend_from_slice(now);
            bytes = later;
            if self.buffer.len() == WRITE_CHUNK {
                self.hand_over().await?;
            }
        }
        if self.refresh && !self.buffer.is_empty() && self.handed_over.elapsed() >= REFRESH {
            self.hand_over().await?;
        }
        Ok(())
    }

    /// Queues the full buffer for writing and takes an empty one: a new one
    /// while this upload may have more and [`SPARE_BUFFERS`] allows, else
    /// the next the writer gives back.
    async fn hand_over(&mut self) -> io::Result<()> {
        self.handed_over = Instant::now();
        let full = std::mem::take(&mut self.buffer);
        self.queue(full).await?;
        self.buffer = if self.take_spare() {
            Vec::with_capacity(WRITE_CHUNK)
        } else {
            match self.empty.recv().await {
                Some(buffer) => buffer,
                None => return Err(self.writer_failure().await),
            }
        };
        Ok(())
    }

    fn take_spare(&mut self) -> bool {
        if self.spares.len() + 1 >= BUFFERS {
            return false;
        }
        match SPARE_BUFFERS.try_acquire() {
            Ok(permit) => {
                self.spares.push(permit);
                true
            }
            Err(_) => false,
        }
    }

    async fn queue(&mut self, buffer: Vec<u8>) -> io::Result<()> {
        let sent = match &self.full {
            Some(full) => full.send(buffer).await.is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            Err(self.writer_failure().await)
        }
    }

    /// Why the writer task stopped before it was told to: its error.
    async fn writer_failure(&mut self) -> io::Error {
        match self.finish_writing().await {
            Err(e) => e,
            Ok(_) => io::Error::other("the writer stopped early"),
        }
    }

    /// Closes the queue, waits for the writer task to write what is in it
    /// and end, and takes back the file and the digest.
    async fn finish_writing(&mut self) -> io::Result<Writer> {
        self.full = None;
        let task = self.writer.take().ok_or_else(|| io::Error::other("writer lost"))?;
        task.await.map_err(io::Error::other)?
    }

    /// Writes what is left, makes the file durable and moves it to its final
    /// name: after this a crash keeps the bytes (and the sweep removes them
    /// unless the caller commits a row).
    pub(crate) async fn commit(mut self) -> io::Result<Stored> {
        let last = std::mem::take(&mut self.buffer);
        if !last.is_empty() {
            self.queue(last).await?;
        }
        let Writer {
            file: Disk { file, .. },
            hasher,
        } = self.finish_writing().await?;
        let temp = self.temp.clone();
        let target = path(&self.dir, &self.id);
        let dir = self.dir.clone();
        let renamed = target.clone();
        blocking(move || {
            file.sync_all()?;
            drop(file);
            fs::rename(&temp, &renamed)?;
            // Without this the rename itself may not survive a power cut.
            File::open(&dir).and_then(|dir| dir.sync_all()).inspect_err(|_| {
                let _ = fs::remove_file(&renamed);
            })
        })
        .await?;
        // From here on the bytes are under `target`: discard that instead.
        self.discard.keep();
        Ok(Stored {
            id: self.id,
            size: self.len,
            sha256: hex(&hasher.finalize()),
            discard: Discard::new(target),
        })
    }
}

/// Removes the committed file of `id` once its row is deleted. A file that
/// cannot be removed now has no row any more, so the next start-up sweep
/// removes it.
pub(crate) async fn remove(dir: &Path, id: &str) -> io::Result<()> {
    let path = path(dir, id);
    blocking(move || remove_file(&path)).await
}

/// `remove_file` for which a file that is already gone is success.
fn remove_file(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Creates `dir` if needed, readable by the server's user only (`0700`)
/// whatever the umask, and narrows it if it exists with wider permissions:
/// the names of the files in it are the ids their download links are made
/// of.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    if let Some(had) = sys::set_mode(dir, 0o700)?.filter(|had| had & 0o077 != 0) {
        crate::log!(
            Level::Warn,
            "{} was open to others (mode {had:04o}): narrowed to 0700",
            dir.display()
        );
    }
    Ok(())
}

/// Whether `dir` holds anything an upload leaves: a temp file or a file
/// named like an id: what a first node of a cluster refuses to adopt. A
/// directory that does not exist holds nothing. Blocking.
#[cfg(feature = "postgres")]
pub(crate) fn holds_uploads(dir: &Path) -> io::Result<bool> {
    let entries = match fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        entries => entries?,
    };
    for entry in entries {
        let name = entry?.file_name();
        if name
            .to_str()
            .is_some_and(|name| name.starts_with(TEMP_PREFIX) || is_valid_id(name))
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Who may be writing in the uploads directory while a sweep runs, which
/// decides what it may remove.
#[derive(Clone, Copy)]
pub(crate) enum Sharing<'a> {
    /// This process alone (SQLite: its lock file keeps a second server out),
    /// and it has no upload in flight yet.
    Alone,
    /// The nodes of a cluster; this one is `node` and has no upload in
    /// flight yet, but the others may.
    Cluster { node: &'a str },
}

/// What the start-up sweep removed, and what it left to other nodes.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Swept {
    pub temp_files: usize,
    pub orphans: usize,
    /// Another node's temp files and files without a row younger than
    /// [`GRACE`]: possibly uploads in flight, left alone.
    pub spared: usize,
}

/// Creates `dir` if needed and removes what a crash may have left in it:
/// temp files of unfinished uploads, and files named like an id that
/// `has_row` does not know. Anything else in the directory (a `.gitkeep`,
/// an operator's notes, the cluster's marker) is not ours and is left
/// alone.
///
/// Shared by a cluster, this node's own temp files go at once, but a temp
/// file of another node's, or a file without a row (another node may have
/// renamed it and not yet inserted the row), only once it has not been
/// written for [`GRACE`]. Blocking.
pub(crate) fn sweep(
    dir: &Path,
    sharing: Sharing<'_>,
    mut has_row: impl FnMut(&str) -> io::Result<bool>,
) -> io::Result<Swept> {
    create_private_dir(dir)?;
    let mut swept = Swept::default();
    let now = SystemTime::now();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let counter = if name.starts_with(TEMP_PREFIX) {
            &mut swept.temp_files
        } else if is_valid_id(name) && !has_row(name)? {
            &mut swept.orphans
        } else {
            continue;
        };
        let removable = match sharing {
            Sharing::Alone => true,
            Sharing::Cluster { node } => is_temp_of(name, node) || is_stale(&entry.metadata()?, now),
        };
        if removable {
            remove_file(&entry.path())?;
            *counter += 1;
        } else {
            swept.spared += 1;
        }
    }
    Ok(swept)
}

/// Whether a file was last written [`GRACE`] or more before `now`. A time
/// ahead of `now` (another machine's clock) is not stale.
fn is_stale(metadata: &fs::Metadata, now: SystemTime) -> bool {
    metadata
        .modified()
        .is_ok_and(|written| now.duration_since(written).is_ok_and(|age| age >= GRACE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_lowercase_hex_of_128_bits() {
        let (a, b) = (new_id().unwrap(), new_id().unwrap());
        assert_ne!(a, b);
        assert!(is_valid_id(&a) && is_valid_id(&b), "{a} {b}");
    }

    #[test]
    fn only_the_id_shape_is_valid() {
        assert!(is_valid_id("0123456789abcdef0123456789abcdef"));
        for bad in [
            "",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "0123456789ABCDEF0123456789abcdef",
            "../../../../../../../../etc/pass",
            ".tmp-0123456789abcdef0123456789a",
            "0123456789abcdef0123456789abcde/",
        ] {
            assert!(!is_valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn sweep_removes_temp_files_and_orphans_only() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = dir.path().join("uploads");
        let kept = new_id().unwrap();
        let orphan = new_id().unwrap();
        fs::create_dir(&uploads).unwrap();
        for name in [kept.as_str(), orphan.as_str(), ".tmp-abc", ".gitkeep", "notes.txt"] {
            fs::write(uploads.join(name), b"x").unwrap();
        }
        fs::create_dir(uploads.join(new_id().unwrap())).unwrap();
        let swept = sweep(&uploads, Sharing::Alone, |id| Ok(id == kept)).unwrap();
        assert_eq!(
            swept,
            Swept {
                temp_files: 1,
                orphans: 1,
                spared: 0
            }
        );
        let mut left: Vec<String> = fs::read_dir(&uploads)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_type().unwrap().is_file())
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut expected = vec![kept, ".gitkeep".to_string(), "notes.txt".to_string()];
        expected.sort();
        assert_eq!(left, expected);
    }

    /// The names of the files left in `dir`, sorted.
    fn left_in(dir: &Path) -> Vec<String> {
        let mut left: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        left
    }

    /// Writes `name` in `dir`, last modified `age` ago.
    fn plant(dir: &Path, name: &str, age: Duration) {
        let file = File::create(dir.join(name)).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
    }

    #[test]
    fn a_shared_sweep_removes_its_own_temp_files_at_once_and_others_only_past_the_grace_period() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = dir.path();
        let fresh = Duration::from_secs(5);
        let stale = GRACE + Duration::from_secs(60);
        let id = || new_id().unwrap();
        // This node's, even fresh: nothing of its own is in flight at start.
        let own = [
            temp_name(Some("web-1_8001"), &id()),
            temp_name(Some("web-1_8001"), &id()),
        ];
        plant(uploads, &own[0], fresh);
        plant(uploads, &own[1], stale);
        // Another node's (one whose name starts like this one's, too), a
        // temp file of a single node's, and files without a row.
        let spared = [
            temp_name(Some("web-2_8001"), &id()),
            temp_name(Some("web-1_80011"), &id()),
            temp_name(None, &id()),
            id(),
        ];
        let removed = [
            temp_name(Some("web-2_8001"), &id()),
            temp_name(Some("web-1_80011"), &id()),
            temp_name(None, &id()),
            id(),
        ];
        for name in &spared {
            plant(uploads, name, fresh);
        }
        for name in &removed {
            plant(uploads, name, stale);
        }
        // Not an upload's: left alone whatever its age.
        let (kept, marker) = (id(), ".chat-cluster");
        plant(uploads, &kept, stale);
        plant(uploads, marker, stale);
        // Written a moment from now by a clock ahead of ours.
        let ahead = temp_name(Some("web-3_8001"), &id());
        File::create(uploads.join(&ahead))
            .unwrap()
            .set_modified(SystemTime::now() + Duration::from_secs(120))
            .unwrap();
        let swept = sweep(
            uploads,
            Sharing::Cluster { node: "web-1_8001" },
            |name| Ok(name == kept),
        )
        .unwrap();
        assert_eq!(
            swept,
            Swept {
                temp_files: 5,
                orphans: 1,
                spared: 5
            }
        );
        let mut expected: Vec<String> = spared.to_vec();
        expected.extend([kept, marker.to_string(), ahead]);
        expected.sort();
        assert_eq!(left_in(uploads), expected);
    }

    #[test]
    fn only_a_temp_file_named_for_a_node_is_that_nodes() {
        let id = new_id().unwrap();
        assert!(is_temp_of(&temp_name(Some("a-b.c_1"), &id), "a-b.c_1"));
        assert!(!is_temp_of(&temp_name(Some("a-b.c_1"), &id), "b.c_1"));
        assert!(!is_temp_of(&temp_name(Some("a-b.c_1"), &id), "a-b.c_"));
        assert!(!is_temp_of(&temp_name(None, &id), "a"));
        assert!(!is_temp_of(&format!(".tmp-a-{id}x"), "a"));
        assert!(!is_temp_of(&format!("a-{id}"), "a"));
    }

    #[test]
    #[cfg(feature = "postgres")]
    fn uploads_are_told_from_other_files() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".chat-cluster"), b"x").unwrap();
        fs::write(dir.path().join(".gitkeep"), b"").unwrap();
        assert!(!holds_uploads(dir.path()).unwrap());
        fs::write(dir.path().join(temp_name(None, &new_id().unwrap())), b"").unwrap();
        assert!(holds_uploads(dir.path()).unwrap());
        let other = tempfile::tempdir().unwrap();
        fs::write(other.path().join(new_id().unwrap()), b"").unwrap();
        assert!(holds_uploads(other.path()).unwrap());
    }

    #[tokio::test]
    async fn a_cluster_node_names_its_temp_file_and_commits_it_under_the_id() {
        let dir = tempfile::tempdir().unwrap();
        let mut incoming = Incoming::create(dir.path(), Some("web-1_8001")).await.unwrap();
        incoming.write(b"bytes").await.unwrap();
        assert_eq!(left_in(dir.path()), [temp_name(Some("web-1_8001"), &incoming.id)]);
        let stored = incoming.commit().await.unwrap();
        assert_eq!(left_in(dir.path()), std::slice::from_ref(&stored.id));
        assert_eq!(fs::read(path(dir.path(), &stored.id)).unwrap(), b"bytes");
        stored.discard.keep();
    }

    /// Waits (bounded) until the file at `path` holds `len` bytes.
    async fn wait_for_len(path: &Path, len: u64) {
        for _ in 0..500 {
            if fs::metadata(path).unwrap().len() == len {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{} never held {len} bytes", path.display());
    }

    #[tokio::test]
    async fn a_slow_upload_in_a_cluster_writes_what_it_has_every_minute() {
        let dir = tempfile::tempdir().unwrap();
        let mut shared = Incoming::create(dir.path(), Some("web-1_8001")).await.unwrap();
        let mut alone = Incoming::create(dir.path(), None).await.unwrap();
        for incoming in [&mut shared, &mut alone] {
            incoming.write(b"first").await.unwrap();
            incoming.handed_over = Instant::now().checked_sub(REFRESH).unwrap();
            incoming.write(b" second").await.unwrap();
        }
        wait_for_len(&shared.temp, 12).await;
        // A moment later, the next piece stays in the buffer again.
        shared.write(b" third").await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(fs::metadata(&shared.temp).unwrap().len(), 12);
        // One process alone writes full buffers only, as it always did.
        assert_eq!(fs::metadata(&alone.temp).unwrap().len(), 0);
        let stored = shared.commit().await.unwrap();
        assert_eq!(fs::read(path(dir.path(), &stored.id)).unwrap(), b"first second third");
    }

    #[test]
    fn sweep_creates_a_missing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = dir.path().join("a/b");
        assert_eq!(sweep(&uploads, Sharing::Alone, |_| Ok(true)).unwrap(), Swept::default());
        assert!(uploads.is_dir());
    }

    #[tokio::test]
    async fn committed_file_has_its_bytes_and_digest() {
        let dir = tempfile::tempdir().unwrap();
        let mut incoming = Incoming::create(dir.path(), None).await.unwrap();
        // Enough for every buffer to be written and reused more than once.
        let content: Vec<u8> = (0..WRITE_CHUNK * BUFFERS * 2 + 7).map(|i| (i % 253) as u8).collect();
        for piece in content.chunks(100_000) {
            incoming.write(piece).await.unwrap();
        }
        let stored = incoming.commit().await.unwrap();
        assert_eq!(stored.size, content.len() as u64);
        assert_eq!(stored.sha256, hex(&Sha256::digest(&content)));
        let on_disk = path(dir.path(), &stored.id);
        assert_eq!(fs::read(&on_disk).unwrap(), content);
        stored.discard.keep();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[tokio::test]
    async fn an_upload_with_no_buffer_to_spare_still_completes() {
        let dir = tempfile::tempdir().unwrap();
        let all = SPARE_BUFFERS.acquire_many(32).await.unwrap();
        let mut incoming = Incoming::create(dir.path(), None).await.unwrap();
        let content: Vec<u8> = (0..WRITE_CHUNK * 3 + 5).map(|i| (i % 241) as u8).collect();
        for piece in content.chunks(300_000) {
            incoming.write(piece).await.unwrap();
        }
        assert!(incoming.spares.is_empty());
        let stored = incoming.commit().await.unwrap();
        drop(all);
        assert_eq!(stored.sha256, hex(&Sha256::digest(&content)));
        assert_eq!(fs::read(path(dir.path(), &stored.id)).unwrap(), content);
    }

    #[tokio::test]
    async fn abandoned_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut incoming = Incoming::create(dir.path(), None).await.unwrap();
        incoming.write(&[1; WRITE_CHUNK + 1]).await.unwrap();
        drop(incoming);
        let stored = Incoming::create(dir.path(), None)
            .await
            .unwrap()
            .commit()
            .await
            .unwrap();
        drop(stored);
        for _ in 0..500 {
            if fs::read_dir(dir.path()).unwrap().count() == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("files left behind");
    }
}
