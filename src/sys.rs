//! Every call into the C library, each behind a safe function: the one file
//! with `unsafe` in it. Each wrapper states what it relies on, so a reviewer
//! checks the whole of the crate's unsafe code here.

use std::fs::{self, File};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Bytes written to a TCP socket that the peer has not acknowledged yet
/// (`TIOCOUTQ`): how a writer tells a client that reads slowly but steadily
/// from one that stopped reading.
pub(crate) fn unacknowledged(socket: BorrowedFd<'_>) -> io::Result<u64> {
    let mut queued: libc::c_int = 0;
    // SAFETY: TIOCOUTQ on an open socket writes one int through the pointer,
    // which points at a live local.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::TIOCOUTQ, &mut queued) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(u64::try_from(queued).unwrap_or_default())
}

/// One `sendfile(2)` of up to `count` bytes of `file` from `offset` to
/// `socket`: the bytes go from the page cache to the socket without passing
/// through user space. Returns how many were sent; blocking while it reads
/// pages that are not cached.
pub(crate) fn sendfile(socket: BorrowedFd<'_>, file: &File, offset: u64, count: usize) -> io::Result<usize> {
    let mut offset = libc::off_t::try_from(offset).map_err(io::Error::other)?;
    // SAFETY: both descriptors are open for the whole call (borrowed for it),
    // and `offset` is a valid `off_t` the call may update.
    let sent = unsafe { libc::sendfile(socket.as_raw_fd(), file.as_raw_fd(), &mut offset, count) };
    usize::try_from(sent).map_err(|_| io::Error::last_os_error())
}

/// Whether `fd` can take more bytes right now (`poll` with a zero timeout:
/// never blocks).
pub(crate) fn is_writable_now(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let mut poll = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd that lives for the call, and a zero timeout.
    match unsafe { libc::poll(&mut poll, 1, 0) } {
        0 => Ok(false),
        n if n > 0 => Ok(true),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Has the kernel start writing `len` bytes of `file` from `offset` to the
/// disk now (`sync_file_range` with `SYNC_FILE_RANGE_WRITE`), without
/// waiting for them.
pub(crate) fn start_writeback(file: &File, offset: u64, len: usize) -> io::Result<()> {
    let offset = libc::off64_t::try_from(offset).map_err(io::Error::other)?;
    let len = libc::off64_t::try_from(len).map_err(io::Error::other)?;
    // SAFETY: a plain system call on a descriptor borrowed for its duration.
    let started = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) };
    if started != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets the nice value of the calling thread (not the whole process). A
/// failure only means the thread keeps the default priority, so it is
/// ignored.
pub(crate) fn set_thread_nice(nice: i32) {
    // SAFETY: plain system calls about the calling thread, with no pointers.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice);
    }
}

/// Gives `path` the permission bits `mode` (with `chmod`, which the umask
/// does not narrow or widen) unless it has them already. Returns the bits it
/// had when it changed them. No `unsafe`: here beside the other calls about
/// the process's place in the operating system.
pub(crate) fn set_mode(path: &Path, mode: u32) -> io::Result<Option<u32>> {
    let had = fs::metadata(path)?.permissions().mode() & 0o7777;
    if had == mode {
        return Ok(None);
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(Some(had))
}

/// The machine's host name (`gethostname`), lossily decoded: part of a
/// cluster node's name.
#[cfg(feature = "postgres")]
pub(crate) fn hostname() -> io::Result<String> {
    // 255 is the longest host name POSIX allows; one more for the NUL.
    let mut name = [0u8; 256];
    // SAFETY: the buffer is writable for the length given; on success the
    // name in it is NUL-terminated when it fits, and the last byte, never
    // written past, stays 0 either way, so the search below ends inside it.
    if unsafe { libc::gethostname(name.as_mut_ptr().cast(), name.len() - 1) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Ok(String::from_utf8_lossy(&name[..len]).into_owned())
}

/// Raises the soft limit on open files to the hard limit (`setrlimit`), and
/// returns the soft limit in force. A hard limit the kernel will not grant
/// as a soft one leaves the soft limit as it was.
pub(crate) fn raise_open_file_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through the pointer, to a live local.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads one rlimit through the pointer, a live local.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    Ok(limit.rlim_cur)
}

/// Whether a call failed because the process or the system has no file
/// descriptor to spare.
pub(crate) fn is_out_of_descriptors(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Whether a write failed because the disk (or the user's quota) is full.
pub(crate) fn is_disk_full(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// Takes an advisory lock on `file` without waiting (`flock(2)`): shared
/// or exclusive. `Ok(false)` if a conflicting lock is held elsewhere. The
/// lock lasts until the file is closed, the process's exit included, so a
/// killed holder never leaves it behind.
pub(crate) fn try_lock(file: &File, exclusive: bool) -> io::Result<bool> {
    let kind = if exclusive { libc::LOCK_EX } else { libc::LOCK_SH };
    // SAFETY: flock on a descriptor the borrowed `File` keeps open; no
    // pointers.
    if unsafe { libc::flock(file.as_raw_fd(), kind | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::EWOULDBLOCK) => Ok(false),
        _ => Err(error),
    }
}

/// What the process uses, from `/proc/self`: resident memory in bytes, CPU
/// time (user and system) in seconds, and open descriptors.
pub(crate) struct ProcessUsage {
    pub resident_bytes: u64,
    pub cpu_seconds: f64,
    pub open_fds: u64,
}

/// Reads [`ProcessUsage`]; `None` where `/proc` cannot be read.
pub(crate) fn process_usage() -> Option<ProcessUsage> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces:
    // the fields are counted from the last ')'. After it come field 3
    // (state) onwards, so utime (14) is at index 11, stime (15) at 12 and
    // rss (24, in pages) at 21.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    let field = |index: usize| fields.get(index)?.parse::<u64>().ok();
    // SAFETY: sysconf only reads a configuration value.
    let (ticks, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
    let (ticks, page) = (u64::try_from(ticks).ok()?.max(1), u64::try_from(page).ok()?);
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some(ProcessUsage {
        resident_bytes: field(21)? * page,
        cpu_seconds: (field(11)? + field(12)?) as f64 / ticks as f64,
        // The directory read itself holds one descriptor while counting.
        open_fds: open_fds.saturating_sub(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_usage_is_read_from_proc() {
        let usage = process_usage().unwrap();
        assert!(usage.resident_bytes > 1 << 20, "{}", usage.resident_bytes);
        assert!(usage.open_fds >= 3, "{}", usage.open_fds);
        assert!(usage.cpu_seconds >= 0.0);
    }

    #[test]
    fn a_shared_lock_excludes_an_exclusive_one_on_another_open_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let open = || {
            File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .unwrap()
        };
        let (server, other_server, restore) = (open(), open(), open());
        assert!(try_lock(&server, false).unwrap());
        assert!(try_lock(&other_server, false).unwrap());
        assert!(!try_lock(&restore, true).unwrap());
        drop((server, other_server));
        assert!(try_lock(&restore, true).unwrap());
        assert!(!try_lock(&open(), false).unwrap());
    }

    #[test]
    fn the_soft_open_file_limit_is_raised_to_the_hard_one() {
        let limit = raise_open_file_limit().unwrap();
        let mut now = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as in raise_open_file_limit.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut now) }, 0);
        assert_eq!((limit, now.rlim_cur), (now.rlim_max, now.rlim_max));
    }

    #[test]
    fn disk_full_is_enospc_or_edquot() {
        assert!(is_disk_full(&io::Error::from_raw_os_error(libc::ENOSPC)));
        assert!(is_disk_full(&io::Error::from_raw_os_error(libc::EDQUOT)));
        assert!(!is_disk_full(&io::Error::from_raw_os_error(libc::EIO)));
    }
}
