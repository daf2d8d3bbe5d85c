//! Process measurements (CPU from /proc, buffer segment bytes, load
//! average), free ports, and a port that refuses connections.

use super::*;

/// user + system CPU of this process.
pub(crate) fn self_cpu() -> Duration {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// utime + stime of another process (all threads).
pub(crate) fn proc_cpu(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return Duration::ZERO;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_nanos(ticks * 1_000_000_000 / hz)
}

pub(crate) fn segment_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("segment-"))
                .map(|e| e.metadata().map_or(0, |m| m.len()))
                .sum()
        })
        .unwrap_or(0)
}

pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| fail(&format!("no free port: {e}")))
}

/// A port that refuses connections and that nobody else can take: a TCP
/// socket bound to it (without SO_REUSEADDR) and not listening. A port
/// merely found free can be taken by another process during a long outage
/// (it happened: the sink then delivered to a stranger).
pub(crate) struct RefusingPort {
    pub(crate) fd: std::os::fd::OwnedFd,
    pub(crate) port: u16,
}

impl RefusingPort {
    pub(crate) fn new() -> Self {
        use std::os::fd::{AsRawFd, FromRawFd};
        // SAFETY: plain socket calls on a fresh descriptor owned by the
        // OwnedFd; the sockaddr structs are zeroed and sized correctly.
        unsafe {
            let raw = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            if raw < 0 {
                fail(&format!("socket: {}", std::io::Error::last_os_error()));
            }
            let fd = std::os::fd::OwnedFd::from_raw_fd(raw);
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as libc::sa_family_t;
            addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            if libc::bind(fd.as_raw_fd(), (&raw const addr).cast(), len) != 0 {
                fail(&format!("bind: {}", std::io::Error::last_os_error()));
            }
            let mut got: libc::sockaddr_in = std::mem::zeroed();
            let mut got_len = len;
            if libc::getsockname(fd.as_raw_fd(), (&raw mut got).cast(), &mut got_len) != 0 {
                fail(&format!("getsockname: {}", std::io::Error::last_os_error()));
            }
            RefusingPort {
                fd,
                port: u16::from_be(got.sin_port),
            }
        }
    }
}
