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

#[cfg(test)]
mod tests {
    use super::*;

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
