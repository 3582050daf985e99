//! What the operating system tells about this process and the server's:
//! CPU time used (its own, from [`crate::process`], and the server's), and
//! memory from `/proc/PID/status`; and SIGKILL for a server node (the
//! failover run).
//!
//! The generator runs on one thread; its CPU time next to the wall time shows
//! whether the client itself was saturated (near 100 % of one core), in which
//! case the figures measure the client, not the server.

use std::time::{Duration, Instant};

use crate::error::{Context, Result};
use crate::process::cpu_time;

/// Wall and CPU time since a start, for one phase of a run.
pub struct Meter {
    wall: Instant,
    cpu: Duration,
}

pub struct Usage {
    pub wall: Duration,
    pub cpu: Duration,
}

impl Meter {
    pub fn start() -> Meter {
        Meter {
            wall: Instant::now(),
            cpu: cpu_time(),
        }
    }

    pub fn read(&self) -> Usage {
        Usage {
            wall: self.wall.elapsed(),
            cpu: cpu_time().saturating_sub(self.cpu),
        }
    }
}

impl Usage {
    /// CPU time as a percentage of wall time, to a tenth: 100 means one
    /// core saturated.
    pub fn cpu_percent(&self) -> f64 {
        if self.wall.is_zero() {
            return 0.0;
        }
        (1000.0 * self.cpu.as_secs_f64() / self.wall.as_secs_f64()).round() / 10.0
    }
}

/// A process's memory, in KiB, as `/proc/PID/status` reports it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Memory {
    /// Resident set size now.
    pub rss_kib: u64,
    /// The highest resident set size since the process started.
    pub hwm_kib: u64,
}

/// Reads VmRSS and VmHWM out of the text of `/proc/PID/status`.
pub fn parse_status(text: &str) -> Option<Memory> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|n| n.trim().parse().ok())
    };
    Some(Memory {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

pub fn process_memory(pid: u32) -> Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).context(format!("--server-pid: cannot read {path}"))?;
    parse_status(&text).ok_or_else(|| crate::error::Error::new(format!("{path} has no VmRSS/VmHWM")))
}

/// CPU time a process has used so far, all its threads together, from
/// `/proc/PID/task/*/schedstat` (nanoseconds, unlike the clock ticks of
/// `/proc/PID/stat`, which are too coarse for a phase of a few milliseconds).
/// Threads that ended before the call are not counted.
pub fn process_cpu(pid: u32) -> Result<Duration> {
    let dir = format!("/proc/{pid}/task");
    let mut total = Duration::ZERO;
    for task in std::fs::read_dir(&dir).context(format!("--server-pid: cannot read {dir}"))? {
        let path = task.context(format!("reading {dir}"))?.path().join("schedstat");
        // A thread may end between the listing and the read.
        if let Ok(text) = std::fs::read_to_string(&path) {
            total += parse_schedstat(&text).unwrap_or_default();
        }
    }
    Ok(total)
}

/// The time on CPU, the first of the three numbers in a `schedstat` file.
fn parse_schedstat(text: &str) -> Option<Duration> {
    text.split_whitespace().next()?.parse().ok().map(Duration::from_nanos)
}

/// Sends SIGKILL to `pid`: how the failover run kills a node.
pub fn kill(pid: u32) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| std::io::Error::other(format!("no such process id {pid}")))?;
    // SAFETY: kill takes no pointer; a wrong pid is an error return.
    if unsafe { libc::kill(pid, libc::SIGKILL) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_text_gives_rss_and_peak() {
        let text = "Name:\tchat-server\nVmPeak:\t  900000 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads:\t3\n";
        assert_eq!(
            parse_status(text),
            Some(Memory {
                rss_kib: 10240,
                hwm_kib: 20480
            })
        );
        assert_eq!(parse_status("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn schedstat_gives_the_time_on_cpu() {
        assert_eq!(
            parse_schedstat("123456789 5000 42\n"),
            Some(Duration::from_nanos(123_456_789))
        );
        assert_eq!(parse_schedstat(""), None);
    }

    #[test]
    fn this_process_can_be_measured() {
        let memory = process_memory(std::process::id()).unwrap();
        assert!(memory.rss_kib > 0 && memory.hwm_kib >= memory.rss_kib);
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1 && cpu_time() > Duration::ZERO);
        assert!(process_cpu(std::process::id()).unwrap() > Duration::ZERO);
    }
}
