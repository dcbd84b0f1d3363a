//! Cancel keys: each client gets its own BackendKeyData; a CancelRequest
//! carrying those keys is forwarded to whichever server connection the
//! client is using at that moment.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rand::Rng;

/// Where a client's queries currently run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CancelTarget {
    pub addr: SocketAddr,
    pub pid: u32,
    pub secret: u32,
}

#[derive(Debug)]
pub struct CancelEntry {
    secret: u32,
    /// The database the client is connected to (for PAUSE's cancels).
    database: Arc<str>,
    target: Mutex<Option<CancelTarget>>,
}

impl CancelEntry {
    pub fn set(&self, target: Option<CancelTarget>) {
        *self.target.lock().unwrap_or_else(|p| p.into_inner()) = target;
    }

    fn get(&self) -> Option<CancelTarget> {
        *self.target.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug, Default)]
pub struct CancelRegistry {
    map: Mutex<HashMap<u32, Arc<CancelEntry>>>,
}

/// Removes the client's keys when its session ends.
pub struct CancelKey {
    registry: Arc<CancelRegistry>,
    pub pid: u32,
    pub secret: u32,
    pub entry: Arc<CancelEntry>,
}

impl Drop for CancelKey {
    fn drop(&mut self) {
        self.registry
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.pid);
    }
}

impl CancelRegistry {
    pub fn register(self: &Arc<Self>, database: Arc<str>) -> CancelKey {
        let mut rng = rand::thread_rng();
        let secret: u32 = rng.gen();
        let entry = Arc::new(CancelEntry {
            secret,
            database,
            target: Mutex::new(None),
        });
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let pid = loop {
            // Positive, non-zero, like a real backend pid.
            let pid = rng.gen_range(1..=i32::MAX as u32);
            if !map.contains_key(&pid) {
                break pid;
            }
        };
        map.insert(pid, entry.clone());
        CancelKey {
            registry: self.clone(),
            pid,
            secret,
            entry,
        }
    }

    /// Where every client of `database` currently runs something.
    pub fn targets_for(&self, database: &str) -> Vec<CancelTarget> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.values()
            .filter(|e| &*e.database == database)
            .filter_map(|e| e.get())
            .collect()
    }

    /// The target to cancel, if the keys match a client that is running
    /// something. Keys that do not match are ignored, as Postgres does.
    pub fn lookup(&self, pid: u32, secret: u32) -> Option<CancelTarget> {
        let entry = self
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&pid)
            .cloned()?;
        // Compare without an early exit.
        if (entry.secret ^ secret) != 0 {
            return None;
        }
        entry.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_matching_keys_cancel() {
        let reg = Arc::new(CancelRegistry::default());
        let key = reg.register(Arc::from("app"));
        let target = CancelTarget {
            addr: "127.0.0.1:5432".parse().unwrap(),
            pid: 42,
            secret: 7,
        };
        assert_eq!(
            reg.lookup(key.pid, key.secret),
            None,
            "idle client has nothing to cancel"
        );
        key.entry.set(Some(target));
        assert_eq!(reg.lookup(key.pid, key.secret), Some(target));
        assert_eq!(reg.lookup(key.pid, key.secret.wrapping_add(1)), None);
        let pid = key.pid;
        drop(key);
        assert_eq!(reg.lookup(pid, 0), None);
    }
}
