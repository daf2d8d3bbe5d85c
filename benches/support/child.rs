//! Child processes of a bench die with it.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// The kernel sends the child SIGKILL when the thread that started it
/// exits, so no server or scraper outlives a bench that is killed. Call it
/// from a thread that lives as long as the bench (the main thread).
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork
    // and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}
