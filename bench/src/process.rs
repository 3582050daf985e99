//! This process's own resources: its CPU time and its open-file limit. It
//! uses nothing else of the crate, so that the examples include it too.

use std::io;
use std::time::Duration;

/// User plus system CPU time of this process so far.
pub fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the whole struct for RUSAGE_SELF and only
    // reads the pointer, which points at a properly sized, writable rusage.
    let usage = unsafe {
        if libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) != 0 {
            return Duration::ZERO;
        }
        usage.assume_init()
    };
    let time = |tv: libc::timeval| Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Raises the soft open-file limit to the hard limit; returns the new soft
/// limit. Each WebSocket connection costs one descriptor.
pub fn raise_open_files_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through a valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::other(format!(
            "getrlimit(RLIMIT_NOFILE): {}",
            io::Error::last_os_error()
        )));
    }
    let mut wanted = limit.rlim_max;
    if wanted == libc::RLIM_INFINITY {
        // The kernel refuses an infinite descriptor limit; nr_open is its real ceiling.
        wanted = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20);
    }
    if limit.rlim_cur < wanted {
        limit.rlim_cur = wanted;
        // SAFETY: setrlimit reads one rlimit through a valid pointer.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::other(format!(
                "setrlimit(RLIMIT_NOFILE): {}",
                io::Error::last_os_error()
            )));
        }
    }
    Ok(limit.rlim_cur)
}
