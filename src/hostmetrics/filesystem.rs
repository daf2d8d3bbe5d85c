//! `node_filesystem_*` the way node_exporter's filesystem collector makes
//! them: every mount in the mount table, minus its default type and mount
//! point exclusions, measured with `statvfs`.
//!
//! sysinfo's `Disks` is not used here because it cannot give node_exporter's
//! series: it silently drops `tmpfs` (unless built with its `linux-tmpfs`
//! feature), every mount under `/run`, and NFS/CIFS/autofs mounts; it reports
//! neither `f_bfree` (`node_filesystem_free_bytes`) nor inode counts nor the
//! mount options (`node_filesystem_readonly`); and it calls `statvfs` inline,
//! so one hung NFS server would block every later collection.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use super::Emitter;
use crate::model::{Labels, MetricType};

/// node_exporter's default `--collector.filesystem.fs-types-exclude`
/// (`^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$`),
/// spelled out because the regex is anchored at both ends.
pub const DEFAULT_FS_TYPES_EXCLUDE: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "fusectl",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "procfs",
    "pstore",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tracefs",
];

/// node_exporter's default `--collector.filesystem.mount-points-exclude`,
/// `^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)`,
/// evaluated as Go's RE2 would (`.` stops at a newline, `$` is the end).
pub fn mount_point_excluded(mount_point: &str) -> bool {
    let Some(rest) = mount_point.strip_prefix('/') else {
        return false;
    };
    let dir_then_end = |dir: &str| {
        rest.strip_prefix(dir)
            .is_some_and(|after| after.is_empty() || after.starts_with('/'))
    };
    let prefix_then_more = |prefix: &str| rest.strip_prefix(prefix).is_some_and(dot_plus_then_end);
    ["dev", "proc", "sys"].into_iter().any(dir_then_end)
        || [
            "run/credentials/",
            "var/lib/docker/",
            "var/lib/containers/storage/",
        ]
        .into_iter()
        .any(prefix_then_more)
}

/// Whether `.+($|/)` matches at the start of `s`.
fn dot_plus_then_end(s: &str) -> bool {
    let line = s.split('\n').next().unwrap_or_default();
    (!s.is_empty() && line.len() == s.len()) || line.chars().skip(1).any(|c| c == '/')
}

/// node_exporter's default `--collector.filesystem.mount-timeout`: a mount
/// whose `statvfs` takes longer is reported with `device_error` 1 and not
/// asked again until that call returns.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, PartialEq)]
struct Mount {
    device: String,
    /// As node_exporter labels it: only `\040` and `\011` decoded.
    mount_point: String,
    fs_type: String,
    read_only: bool,
    /// Every octal escape decoded, so `statvfs` finds the real directory.
    path: PathBuf,
}

fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_ascii_whitespace();
            let (device, raw_mp, fs_type, options) = (f.next()?, f.next()?, f.next()?, f.next()?);
            Some(Mount {
                device: device.to_owned(),
                mount_point: raw_mp.replace("\\040", " ").replace("\\011", "\t"),
                fs_type: fs_type.to_owned(),
                read_only: options.split(',').any(|o| o == "ro"),
                path: PathBuf::from(unescape_octal(raw_mp)),
            })
        })
        .collect()
}

/// The kernel writes space, tab, newline and backslash in mount paths as
/// `\ooo`; paths are bytes, so decode to an `OsString`.
fn unescape_octal(s: &str) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let esc = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match esc {
            Some(d) => {
                let v = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                out.push(v as u8);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    std::ffi::OsString::from_vec(out)
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct FsStat {
    size: f64,
    free: f64,
    avail: f64,
    files: f64,
    files_free: f64,
}

pub(super) struct FilesystemCollector {
    fs_types_exclude: HashSet<String>,
    /// Mount points whose `statvfs` has not returned yet; shared with the
    /// worker threads, which remove their mount when the call comes back.
    stuck: Arc<Mutex<HashSet<String>>>,
}

impl FilesystemCollector {
    pub(super) fn new<S: Into<String>>(fs_types_exclude: impl IntoIterator<Item = S>) -> Self {
        FilesystemCollector {
            fs_types_exclude: fs_types_exclude.into_iter().map(Into::into).collect(),
            stuck: Arc::default(),
        }
    }

    pub(super) fn collect(&self, out: &mut Emitter) {
        if !STATVFS_SUPPORTED {
            return;
        }
        // Our own mount namespace, not node_exporter's `/proc/1/mounts`:
        // without its `--path.rootfs` prefixing, `statvfs` resolves paths in
        // this namespace, so that is the table whose numbers are right.
        let Ok(text) = std::fs::read_to_string("/proc/self/mounts") else {
            return;
        };
        let mut seen = HashSet::new();
        let mounts: Vec<Mount> = parse_mounts(&text)
            .into_iter()
            .filter(|m| {
                !mount_point_excluded(&m.mount_point) && !self.fs_types_exclude.contains(&m.fs_type)
            })
            // Over-mounts can repeat a line; identical label sets would be one series twice.
            .filter(|m| seen.insert((m.device.clone(), m.mount_point.clone(), m.fs_type.clone())))
            .collect();

        let stuck_before = lock(&self.stuck).clone();
        let jobs: Vec<(String, PathBuf)> = mounts
            .iter()
            .filter(|m| !stuck_before.contains(&m.mount_point))
            .map(|m| (m.mount_point.clone(), m.path.clone()))
            .collect();
        let mut results = stat_all(jobs, &self.stuck, MOUNT_TIMEOUT, stat_filesystem).into_iter();

        for m in &mounts {
            let stat = if stuck_before.contains(&m.mount_point) {
                None
            } else {
                results.next().flatten()
            };
            let labels = Labels::from_pairs([
                ("device", m.device.as_str()),
                ("fstype", m.fs_type.as_str()),
                ("mountpoint", m.mount_point.as_str()),
            ]);
            let gauge = |out: &mut Emitter, name: &str, v: f64| {
                out.push(name, MetricType::Gauge, labels.clone(), v)
            };
            gauge(
                out,
                "node_filesystem_device_error",
                if stat.is_some() { 0.0 } else { 1.0 },
            );
            gauge(
                out,
                "node_filesystem_readonly",
                if m.read_only { 1.0 } else { 0.0 },
            );
            if let Some(s) = stat {
                gauge(out, "node_filesystem_size_bytes", s.size);
                gauge(out, "node_filesystem_free_bytes", s.free);
                gauge(out, "node_filesystem_avail_bytes", s.avail);
                gauge(out, "node_filesystem_files", s.files);
                gauge(out, "node_filesystem_files_free", s.files_free);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Stats each `(mount point, path)` on a worker thread, waiting at most
/// `timeout` for each answer. A mount that times out is added to `stuck`
/// and its worker abandoned (it exits once the call returns, removing the
/// mount from `stuck`); a fresh worker carries on with the next mount.
/// Returns one entry per job, `None` for an error or a timeout.
fn stat_all<F>(
    jobs: Vec<(String, PathBuf)>,
    stuck: &Arc<Mutex<HashSet<String>>>,
    timeout: Duration,
    stat: F,
) -> Vec<Option<FsStat>>
where
    F: Fn(&Path) -> io::Result<FsStat> + Send + Sync + 'static,
{
    let n = jobs.len();
    let mut results = vec![None; n];
    let jobs = Arc::new(jobs);
    let stat = Arc::new(stat);
    let mut next = 0;
    'workers: while next < n {
        let (tx, rx) = mpsc::channel();
        let (jobs_w, stuck_w, stat_w, start) = (
            Arc::clone(&jobs),
            Arc::clone(stuck),
            Arc::clone(&stat),
            next,
        );
        let spawned = thread::Builder::new()
            .name("hostmetrics-statfs".into())
            .spawn(move || {
                for (i, (mount_point, path)) in jobs_w.iter().enumerate().skip(start) {
                    let result = stat_w(path).ok();
                    // Sending under the lock lets the waiting side tell "finished
                    // just now" from "still hanging" without a race.
                    let mut stuck = lock(&stuck_w);
                    stuck.remove(mount_point);
                    if tx.send((i, result)).is_err() {
                        return;
                    }
                }
            });
        if spawned.is_err() {
            break;
        }
        while next < n {
            match rx.recv_timeout(timeout) {
                Ok((i, r)) => {
                    results[i] = r;
                    next = i + 1;
                }
                Err(RecvTimeoutError::Disconnected) => break 'workers,
                Err(RecvTimeoutError::Timeout) => {
                    let mut stuck_set = lock(stuck);
                    if let Ok((i, r)) = rx.try_recv() {
                        results[i] = r;
                        next = i + 1;
                        continue;
                    }
                    stuck_set.insert(jobs[next].0.clone());
                    next += 1;
                    continue 'workers;
                }
            }
        }
    }
    results
}

const STATVFS_SUPPORTED: bool = cfg!(all(target_os = "linux", target_pointer_width = "64"));

/// Same arithmetic as node_exporter (`float64(blocks) * float64(bsize)`,
/// with `f_bsize` rather than POSIX's `f_frsize`; Linux sets them equal
/// for practically every filesystem). sysinfo's `total_space` and
/// `available_space` would use `f_frsize` and saturating integer products.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn stat_filesystem(path: &Path) -> io::Result<FsStat> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;

    let c_path = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: all-zero is a valid `statvfs` (plain integers).
    let mut buf: libc::statvfs = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `c_path` is NUL-terminated and outlives the call; `buf` is
        // the libc crate's own `struct statvfs`.
        if unsafe { libc::statvfs(c_path.as_ptr(), &mut buf) } == 0 {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    let bsize = buf.f_bsize as f64;
    Ok(FsStat {
        size: buf.f_blocks as f64 * bsize,
        free: buf.f_bfree as f64 * bsize,
        avail: buf.f_bavail as f64 * bsize,
        files: buf.f_files as f64,
        files_free: buf.f_ffree as f64,
    })
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn stat_filesystem(_: &Path) -> io::Result<FsStat> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    #[test]
    fn mount_point_exclusions_follow_node_exporter_regex() {
        for excluded in [
            "/dev",
            "/dev/shm",
            "/proc",
            "/proc/sys/fs/binfmt_misc",
            "/sys",
            "/sys/fs/cgroup",
            "/run/credentials/systemd-journald.service",
            "/var/lib/docker/overlay2/abc/merged",
            "/var/lib/containers/storage/overlay",
        ] {
            assert!(
                mount_point_excluded(excluded),
                "{excluded} should be excluded"
            );
        }
        for kept in [
            "/",
            "/devices",
            "/sysroot",
            "/run",
            "/run/credentials",
            "/run/credentials/",
            "/var/lib/docker",
            "/var/lib/kubelet/pods/x/volumes/kubernetes.io~csi/pvc/mount",
            "dev",
            "",
        ] {
            assert!(!mount_point_excluded(kept), "{kept} should be kept");
        }
        // `.` does not match a newline, so only a `/` before it can end `.+`.
        assert!(!mount_point_excluded("/var/lib/docker/\nx"));
        assert!(mount_point_excluded("/var/lib/docker/a/\nx"));
    }

    #[test]
    fn default_type_exclusions_keep_tmpfs_and_real_filesystems() {
        for t in [
            "overlay", "proc", "sysfs", "cgroup", "cgroup2", "devtmpfs", "squashfs",
        ] {
            assert!(DEFAULT_FS_TYPES_EXCLUDE.contains(&t), "{t}");
        }
        for t in ["tmpfs", "ext4", "xfs", "nfs4", "btrfs", "cgroup3"] {
            assert!(!DEFAULT_FS_TYPES_EXCLUDE.contains(&t), "{t}");
        }
    }

    #[test]
    fn mounts_parse_with_node_exporter_labels_and_real_paths() {
        let m = parse_mounts(
            "/dev/vda / ext4 rw,relatime 0 0\n\
             /dev/sdb1 /mnt/my\\040disk\\134x vfat ro,noatime 0 0\n\
             short line\n",
        );
        assert_eq!(m.len(), 2);
        assert_eq!(
            (m[0].device.as_str(), m[0].mount_point.as_str()),
            ("/dev/vda", "/")
        );
        assert!(!m[0].read_only);
        assert_eq!(m[1].mount_point, "/mnt/my disk\\134x");
        assert_eq!(m[1].path, PathBuf::from("/mnt/my disk\\x"));
        assert!(m[1].read_only);
        assert_eq!(unescape_octal("a\\012b\\9"), "a\nb\\9");
    }

    #[test]
    fn a_hanging_mount_is_skipped_and_recovers() {
        static RELEASE: AtomicBool = AtomicBool::new(false);
        let fake = |p: &Path| {
            if p == Path::new("/hang") {
                while !RELEASE.load(Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(5));
                }
            }
            if p == Path::new("/broken") {
                return Err(io::ErrorKind::NotFound.into());
            }
            Ok(FsStat {
                size: 1.0,
                free: 1.0,
                avail: 1.0,
                files: 1.0,
                files_free: 1.0,
            })
        };
        let job = |s: &str| (s.to_owned(), PathBuf::from(s));
        let stuck = Arc::default();
        let started = Instant::now();
        let r = stat_all(
            vec![job("/a"), job("/hang"), job("/broken"), job("/b")],
            &stuck,
            Duration::from_millis(100),
            fake,
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(r[0].is_some() && r[1].is_none() && r[2].is_none() && r[3].is_some());
        assert!(lock(&stuck).contains("/hang"));
        assert_eq!(lock(&stuck).len(), 1);

        RELEASE.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(5);
        while lock(&stuck).contains("/hang") {
            assert!(Instant::now() < deadline, "recovered mount stays stuck");
            thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn statvfs_of_root_matches_sanity() {
        let s = stat_filesystem(Path::new("/")).unwrap();
        assert!(
            s.size > 0.0 && s.free <= s.size && s.avail <= s.free,
            "{s:?}"
        );
        assert!(stat_filesystem(Path::new("/no/such/dir")).is_err());
        assert!(stat_filesystem(Path::new("/a\0b")).is_err());
    }
}
