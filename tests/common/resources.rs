//! What a server process holds, read from `/proc`: open descriptors and
//! memory, for the tests that show hostile input or churn leaks nothing.

use std::time::{Duration, Instant};

/// Open file descriptors of `pid`.
pub(crate) fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count())
}

/// A `kB` field of `/proc/<pid>/status`, in KiB: `VmRSS` (resident now) or
/// `VmHWM` (the most it has ever been resident).
pub(crate) fn memory_kib(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Polls `probe` until it returns `true` or `within` has passed; returns
/// whether it did. For effects that follow a close with a short delay (a
/// task noticing its peer is gone, a descriptor being released).
pub(crate) fn eventually(within: Duration, mut probe: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if probe() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
