//! Cancel keys: each client gets its own BackendKeyData; a CancelRequest
//! carrying those keys is forwarded to whichever server connection the
//! client is using at that moment.
//!
//! Peering (`peer_id`, `[peers]`): several pgferry processes listening on one
//! port (`so_reuseport`) each see only their own clients, but a client's
//! CancelRequest arrives on a new connection, which the kernel may hand to
//! any of them. A peered process writes its id into the keys it hands out
//! (bits 17..=30 of the process id; bits 0..=16 are random), so whichever
//! process receives a request for another one's key sends it on to that
//! process's address in `[peers]`. The forwarded request carries bit 31 of
//! the process id (never set in a key pgferry hands out): its receiver
//! handles it itself and never forwards it again, so a wrong `[peers]`
//! table cannot make requests circle.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};

use rand::Rng;

use crate::config::{PEER_KEY_BITS, PEER_KEY_ROOM};
use crate::metrics::ClientEntry;
use crate::state::State;

/// Set in the process id of a CancelRequest one peer forwards to another.
pub const FORWARDED: u32 = 1 << 31;

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
    /// `peer_id` (0: no peering), written into every key.
    peer: u16,
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
    /// The registry of a process with `peer_id` `peer` (0: no peering).
    pub fn for_peer(peer: u16) -> CancelRegistry {
        CancelRegistry {
            map: Mutex::default(),
            peer,
        }
    }

    /// The peer whose key `pid` is, when this process is peered (None: not
    /// peered, so keys carry no owner).
    pub fn owner(&self, pid: u32) -> Option<u16> {
        if self.peer == 0 {
            return None;
        }
        u16::try_from((pid & !FORWARDED) >> PEER_KEY_BITS).ok()
    }

    /// The other peer whose key `pid` is (None: this process's own key, or
    /// not peered).
    fn other_peer(&self, pid: u32) -> Option<u16> {
        self.owner(pid).filter(|&p| p != self.peer)
    }

    /// A fresh key: a process id no other client has, and a random secret.
    /// The client's entry is attached with [`attach`](Self::attach) once
    /// made (it carries the key).
    pub fn reserve(self: &Arc<Self>) -> CancelKey {
        let mut rng = rand::thread_rng();
        let secret: u32 = rng.gen();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let pid = if self.peer == 0 {
            loop {
                // Positive, non-zero, like a real backend pid.
                let pid = rng.gen_range(1..=i32::MAX as u32);
                if !map.contains_key(&pid) {
                    break pid;
                }
            }
        } else {
            // The peer id above a random number; positive and non-zero since
            // the id is. Config keeps max_client_conn below PEER_KEY_ROOM, so
            // a free number exists: a few random tries, then the next free
            // one from a random start (the room is 131,072 numbers).
            let base = u32::from(self.peer) << PEER_KEY_BITS;
            let room = PEER_KEY_ROOM as u32;
            let free = |n: u32| !map.contains_key(&(base | n));
            let start = rng.gen_range(0..room);
            let n = (0..8)
                .map(|_| rng.gen_range(0..room))
                .find(|&n| free(n))
                .or_else(|| (0..room).map(|i| (start + i) % room).find(|&n| free(n)))
                .unwrap_or(start);
            base | n
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

/// Answers a CancelRequest: cancels what the client with these keys runs,
/// or, for a key of another peer, forwards the request to that peer.
/// Requests with keys nobody has are ignored, as Postgres does.
pub async fn handle(state: &State, pid: u32, secret: u32) {
    let forwarded = pid & FORWARDED != 0;
    let pid = pid & !FORWARDED;
    let timeout = state.config().proxy.server_connect_timeout;
    if let Some(t) = state.cancels.lookup(pid, secret) {
        crate::server::send_cancel(t.addr, t.pid, t.secret, timeout).await;
        return;
    }
    let Some(peer) = state.cancels.other_peer(pid).filter(|_| !forwarded) else {
        tracing::debug!(pid, forwarded, "cancel request with unknown keys ignored");
        return;
    };
    let addr = state.config().peers.get(&peer).copied();
    match addr {
        Some(addr) => {
            tracing::debug!(pid, peer, %addr, "forwarding a cancel request to its peer");
            crate::server::send_cancel(addr, pid | FORWARDED, secret, timeout).await;
        }
        None => tracing::debug!(pid, peer, "cancel request for an unknown peer ignored"),
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

    #[test]
    fn peered_keys_carry_the_peer_id() {
        let reg = Arc::new(CancelRegistry::for_peer(5));
        let keys: Vec<CancelKey> = (0..2000).map(|_| reg.reserve()).collect();
        let mut pids: Vec<u32> = keys.iter().map(|k| k.pid).collect();
        pids.sort_unstable();
        pids.dedup();
        assert_eq!(pids.len(), 2000, "keys are distinct");
        for k in &keys {
            assert!(
                k.pid > 0 && k.pid <= i32::MAX as u32,
                "a positive pid: {}",
                k.pid
            );
            assert_eq!(reg.owner(k.pid), Some(5));
            assert_eq!(reg.owner(k.pid | FORWARDED), Some(5));
        }
        assert_eq!(reg.owner((7 << PEER_KEY_BITS) | 3), Some(7));
        // Not peered: keys name no owner.
        assert_eq!(CancelRegistry::default().owner(keys[0].pid), None);
    }

    #[test]
    fn a_nearly_full_peer_room_still_finds_a_free_key() {
        let reg = Arc::new(CancelRegistry::for_peer(1));
        {
            let mut map = reg.map.lock().unwrap();
            let base = 1u32 << PEER_KEY_BITS;
            for n in 0..PEER_KEY_ROOM as u32 - 1 {
                map.insert(base | n, Weak::new());
            }
        }
        let key = reg.reserve();
        assert_eq!(key.pid, (1 << PEER_KEY_BITS) | (PEER_KEY_ROOM as u32 - 1));
    }
}
