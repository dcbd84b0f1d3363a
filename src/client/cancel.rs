//! Cancel keys: each client gets its own BackendKeyData; a CancelRequest
//! carrying those keys is forwarded to whichever server connection the
//! client is using at that moment.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};

use rand::Rng;

use crate::metrics::ClientEntry;

/// Where a client's queries currently run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CancelTarget {
    pub addr: SocketAddr,
    pub pid: u32,
    pub secret: u32,
}

/// The cancel side of a client: the secret its CancelRequests must carry
/// and where its queries currently run. Kept in the client's registry
/// entry (one allocation per client for both).
#[derive(Debug)]
pub struct CancelSlot {
    secret: u32,
    target: Mutex<Option<CancelTarget>>,
}

impl CancelSlot {
    pub fn new(secret: u32) -> CancelSlot {
        CancelSlot {
            secret,
            target: Mutex::new(None),
        }
    }

    pub fn set(&self, target: Option<CancelTarget>) {
        *self.target.lock().unwrap_or_else(|p| p.into_inner()) = target;
    }

    fn get(&self) -> Option<CancelTarget> {
        *self.target.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Process id → the client's entry. Weak: the session owns its entry; a
/// key is reserved (with an empty Weak) before the entry exists.
#[derive(Debug, Default)]
pub struct CancelRegistry {
    map: Mutex<HashMap<u32, Weak<ClientEntry>>>,
}

/// Removes the client's keys when its session ends.
#[derive(Debug)]
pub struct CancelKey {
    registry: Arc<CancelRegistry>,
    pub pid: u32,
    pub secret: u32,
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
    /// A fresh key: a process id no other client has, and a random secret.
    /// The client's entry is attached with [`attach`](Self::attach) once
    /// made (it carries the key).
    pub fn reserve(self: &Arc<Self>) -> CancelKey {
        let mut rng = rand::thread_rng();
        let secret: u32 = rng.gen();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let pid = loop {
            // Positive, non-zero, like a real backend pid.
            let pid = rng.gen_range(1..=i32::MAX as u32);
            if !map.contains_key(&pid) {
                break pid;
            }
        };
        map.insert(pid, Weak::new());
        CancelKey {
            registry: self.clone(),
            pid,
            secret,
        }
    }

    /// CancelRequests with `key` go through `entry`'s cancel slot.
    pub fn attach(&self, key: &CancelKey, entry: &Arc<ClientEntry>) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(key.pid, Arc::downgrade(entry));
    }

    /// Where every client of `database` currently runs something.
    pub fn targets_for(&self, database: &str) -> Vec<CancelTarget> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.values()
            .filter_map(Weak::upgrade)
            .filter(|e| &*e.database == database)
            .filter_map(|e| e.cancel.get())
            .collect()
    }

    /// The target to cancel, if the keys match a client that is running
    /// something. Keys that do not match are ignored, as Postgres does.
    pub fn lookup(&self, pid: u32, secret: u32) -> Option<CancelTarget> {
        let entry = self
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&pid)?
            .upgrade()?;
        // Compare without an early exit.
        if (entry.cancel.secret ^ secret) != 0 {
            return None;
        }
        entry.cancel.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_matching_keys_cancel() {
        let reg = Arc::new(CancelRegistry::default());
        let key = reg.reserve();
        assert_eq!(
            reg.lookup(key.pid, key.secret),
            None,
            "no entry attached yet"
        );
        let entry = Arc::new(ClientEntry::new(
            1,
            Arc::from("app"),
            Arc::from("app"),
            "127.0.0.1:40000".parse().unwrap(),
            None,
            "",
            CancelSlot::new(key.secret),
        ));
        reg.attach(&key, &entry);
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
        entry.cancel.set(Some(target));
        assert_eq!(reg.lookup(key.pid, key.secret), Some(target));
        assert_eq!(reg.lookup(key.pid, key.secret.wrapping_add(1)), None);
        assert_eq!(reg.targets_for("app"), vec![target]);
        assert_eq!(reg.targets_for("other"), vec![]);
        let pid = key.pid;
        drop(key);
        assert_eq!(reg.lookup(pid, entry.cancel.secret), None);
    }
}
