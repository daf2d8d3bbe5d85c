//! What `/-/ready` waits for besides the listeners: each component that
//! must finish something first (the first Kubernetes list, say) holds a
//! [`Pending`] and drops or finishes it when done. The ready page names
//! what is still pending, so `kubectl describe pod` tells an SRE why.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct Readiness {
    /// Reason -> how many holders wait on it.
    waiting: Mutex<BTreeMap<String, usize>>,
}

impl Readiness {
    pub fn new() -> Arc<Self> {
        Arc::new(Readiness::default())
    }

    /// Registers something to wait for until the returned guard is done
    /// or dropped.
    pub fn wait_for(self: &Arc<Self>, what: impl Into<String>) -> Pending {
        let what = what.into();
        *self.lock().entry(what.clone()).or_default() += 1;
        Pending {
            readiness: self.clone(),
            what: Some(what),
        }
    }

    /// What is still pending, sorted; empty when nothing is.
    pub fn pending(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, usize>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One thing readiness waits for.
pub struct Pending {
    readiness: Arc<Readiness>,
    what: Option<String>,
}

impl Pending {
    pub fn done(mut self) {
        self.release();
    }

    fn release(&mut self) {
        if let Some(what) = self.what.take() {
            let mut w = self.readiness.lock();
            if let Some(n) = w.get_mut(&what) {
                *n -= 1;
                if *n == 0 {
                    w.remove(&what);
                }
            }
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_until_every_holder_is_done() {
        let r = Readiness::new();
        let a = r.wait_for("kubernetes discovery");
        let b = r.wait_for("kubernetes discovery");
        let c = r.wait_for("metadata cache");
        assert_eq!(r.pending(), ["kubernetes discovery", "metadata cache"]);
        a.done();
        assert_eq!(r.pending(), ["kubernetes discovery", "metadata cache"]);
        drop(b);
        assert_eq!(r.pending(), ["metadata cache"]);
        c.done();
        assert!(r.pending().is_empty());
    }
}
