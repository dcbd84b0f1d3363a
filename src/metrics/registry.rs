//! Registries of live client and server connections, for SHOW CLIENTS /
//! SERVERS / POOLS, KILL_CLIENT and the connection gauges.
//!
//! A connection registers once (one small allocation and one lock of one
//! shard) and gets a [`Registered`] guard that removes it on drop. It then
//! updates its entry's atomics at state changes only (checkout, release),
//! never per message; readers walk the shards at scrape time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::clock;

const SHARDS: usize = 16;

/// An entry that knows its key.
pub trait Keyed: Send + Sync + 'static {
    fn key(&self) -> u64;
}

pub struct Registry<E> {
    shards: Vec<Mutex<HashMap<u64, Arc<E>>>>,
}

impl<E> std::fmt::Debug for Registry<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl<E: Keyed> Default for Registry<E> {
    fn default() -> Self {
        Registry {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl<E: Keyed> Registry<E> {
    fn shard(&self, key: u64) -> MutexGuard<'_, HashMap<u64, Arc<E>>> {
        // Entries are inserted and removed whole; a panic elsewhere cannot
        // leave a map half-updated, so a poisoned lock is still usable.
        self.shards[(key as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub fn register(self: &Arc<Self>, entry: E) -> Registered<E> {
        let entry = Arc::new(entry);
        self.shard(entry.key()).insert(entry.key(), entry.clone());
        Registered {
            entry,
            registry: self.clone(),
        }
    }

    pub fn get(&self, key: u64) -> Option<Arc<E>> {
        self.shard(key).get(&key).cloned()
    }

    /// Every entry, in key order.
    pub fn snapshot(&self) -> Vec<Arc<E>> {
        let mut all: Vec<Arc<E>> = Vec::new();
        for s in &self.shards {
            all.extend(
                s.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .values()
                    .cloned(),
            );
        }
        all.sort_by_key(|e| e.key());
        all
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A registered entry; dropping it unregisters.
pub struct Registered<E: Keyed> {
    entry: Arc<E>,
    registry: Arc<Registry<E>>,
}

impl<E: Keyed> Registered<E> {
    /// The shared entry itself.
    pub fn shared(&self) -> &Arc<E> {
        &self.entry
    }
}

impl<E: Keyed> Deref for Registered<E> {
    type Target = E;
    fn deref(&self) -> &E {
        &self.entry
    }
}

impl<E: Keyed> Drop for Registered<E> {
    fn drop(&mut self) {
        self.registry
            .shard(self.entry.key())
            .remove(&self.entry.key());
    }
}

impl<E: Keyed + std::fmt::Debug> std::fmt::Debug for Registered<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.entry.fmt(f)
    }
}

/// What a client is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ClientState {
    /// Logged in, no server connection (between transactions).
    Idle = 0,
    /// Linked to a server connection.
    Active = 1,
    /// Has work and waits for a server connection (pool full, PAUSE,
    /// failover).
    Waiting = 2,
}

impl ClientState {
    fn from_u8(v: u8) -> ClientState {
        match v {
            1 => ClientState::Active,
            2 => ClientState::Waiting,
            _ => ClientState::Idle,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ClientState::Idle => "idle",
            ClientState::Active => "active",
            ClientState::Waiting => "waiting",
        }
    }
}

/// One logged-in client.
#[derive(Debug)]
pub struct ClientEntry {
    pub id: u64,
    pub database: Arc<str>,
    pub user: Arc<str>,
    pub peer: SocketAddr,
    pub local: Option<SocketAddr>,
    pub application_name: Box<str>,
    pub connect_us: u64,
    state: AtomicU8,
    request_us: AtomicU64,
    wait_since_us: AtomicU64,
    link: AtomicU64,
    pin: Mutex<Option<(&'static str, u64)>>,
    /// Set by KILL / KILL_CLIENT: the session closes.
    pub kill: crate::client::KillSwitch,
    /// Its cancel key's secret and where its queries run now (the cancel
    /// registry finds the entry by the key's process id).
    pub cancel: crate::client::cancel::CancelSlot,
}

impl Keyed for ClientEntry {
    fn key(&self) -> u64 {
        self.id
    }
}

impl ClientEntry {
    pub fn new(
        id: u64,
        database: Arc<str>,
        user: Arc<str>,
        peer: SocketAddr,
        local: Option<SocketAddr>,
        application_name: &str,
        cancel: crate::client::cancel::CancelSlot,
    ) -> ClientEntry {
        let now = clock::now_us();
        ClientEntry {
            id,
            database,
            user,
            peer,
            local,
            application_name: application_name.into(),
            connect_us: now,
            state: AtomicU8::new(ClientState::Idle as u8),
            request_us: AtomicU64::new(now),
            wait_since_us: AtomicU64::new(0),
            link: AtomicU64::new(0),
            pin: Mutex::new(None),
            kill: Default::default(),
            cancel,
        }
    }

    pub fn state(&self) -> ClientState {
        ClientState::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// The client has work and waits for a server connection.
    pub fn waiting(&self) {
        self.waiting_at(clock::now_us());
    }

    /// [`Self::waiting`] since `us` (a [`clock::now_us`] value the caller has).
    pub fn waiting_at(&self, us: u64) {
        if self.state() != ClientState::Waiting {
            self.wait_since_us.store(us, Ordering::Relaxed);
            self.state
                .store(ClientState::Waiting as u8, Ordering::Relaxed);
        }
    }

    /// Linked to server connection `server` (0: unlinked, idle).
    pub fn linked(&self, server: u64) {
        self.link.store(server, Ordering::Relaxed);
        let state = if server == 0 {
            ClientState::Idle
        } else {
            self.request_us.store(clock::now_us(), Ordering::Relaxed);
            ClientState::Active
        };
        self.state.store(state as u8, Ordering::Relaxed);
    }

    /// Back to idle without a server (a request answered by pgferry, or a
    /// wait that failed).
    pub fn idle(&self) {
        self.linked(0);
    }

    pub fn link(&self) -> u64 {
        self.link.load(Ordering::Relaxed)
    }

    pub fn request_us(&self) -> u64 {
        self.request_us.load(Ordering::Relaxed)
    }

    /// How long the client has been waiting, if it is.
    pub fn wait_us(&self) -> Option<u64> {
        (self.state() == ClientState::Waiting)
            .then(|| clock::since_us(self.wait_since_us.load(Ordering::Relaxed)))
    }

    pub fn set_pin(&self, reason: Option<&'static str>) {
        let mut pin = self.pin.lock().unwrap_or_else(|p| p.into_inner());
        match (reason, pin.as_ref()) {
            (Some(r), Some((old, _))) if *old == r => {}
            (Some(r), _) => *pin = Some((r, clock::now_us())),
            (None, _) => *pin = None,
        }
    }

    /// The pin reason and since when.
    pub fn pin(&self) -> Option<(&'static str, u64)> {
        *self.pin.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What a server connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ServerState {
    /// In the pool, ready for a client.
    Idle = 0,
    /// Lent to a client.
    Active = 1,
}

impl ServerState {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerState::Idle => "idle",
            ServerState::Active => "active",
        }
    }
}

/// One open server connection.
#[derive(Debug)]
pub struct ServerEntry {
    pub id: u64,
    pub database: String,
    pub user: String,
    pub addr: String,
    pub port: u16,
    pub local: Option<SocketAddr>,
    pub remote_pid: u32,
    pub connect_us: u64,
    state: AtomicU8,
    request_us: AtomicU64,
    link: AtomicU64,
}

impl Keyed for ServerEntry {
    fn key(&self) -> u64 {
        self.id
    }
}

impl ServerEntry {
    pub fn new(
        id: u64,
        database: &str,
        user: &str,
        addr: &str,
        port: u16,
        local: Option<SocketAddr>,
        remote_pid: u32,
    ) -> ServerEntry {
        let now = clock::now_us();
        ServerEntry {
            id,
            database: database.to_owned(),
            user: user.to_owned(),
            addr: addr.to_owned(),
            port,
            local,
            remote_pid,
            connect_us: now,
            state: AtomicU8::new(ServerState::Active as u8),
            request_us: AtomicU64::new(now),
            link: AtomicU64::new(0),
        }
    }

    pub fn state(&self) -> ServerState {
        if self.state.load(Ordering::Relaxed) == ServerState::Active as u8 {
            ServerState::Active
        } else {
            ServerState::Idle
        }
    }

    /// Back in the pool, linked to no client.
    pub fn set_idle(&self) {
        self.state.store(ServerState::Idle as u8, Ordering::Relaxed);
        self.link.store(0, Ordering::Relaxed);
    }

    /// Lent out since `us` (a [`clock::now_us`] value the caller has).
    pub fn set_active_at(&self, us: u64) {
        self.state
            .store(ServerState::Active as u8, Ordering::Relaxed);
        self.request_us.store(us, Ordering::Relaxed);
    }

    /// Linked to client `client` (0: none).
    pub fn set_link(&self, client: u64) {
        self.link.store(client, Ordering::Relaxed);
    }

    pub fn link(&self) -> u64 {
        self.link.load(Ordering::Relaxed)
    }

    pub fn request_us(&self) -> u64 {
        self.request_us.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(id: u64) -> ClientEntry {
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        ClientEntry::new(
            id,
            "app".into(),
            "app".into(),
            peer,
            None,
            "psql",
            crate::client::cancel::CancelSlot::new(0),
        )
    }

    #[test]
    fn register_and_drop() {
        let reg: Arc<Registry<ClientEntry>> = Arc::default();
        let a = reg.register(client(3));
        let b = reg.register(client(20));
        assert_eq!(reg.len(), 2);
        let ids: Vec<u64> = reg.snapshot().iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![3, 20]);
        drop(a);
        assert!(reg.get(3).is_none());
        assert_eq!(reg.get(20).map(|e| e.id), Some(20));
        drop(b);
        assert!(reg.is_empty());
    }

    #[test]
    fn client_states() {
        let c = client(1);
        assert_eq!(c.state(), ClientState::Idle);
        c.waiting();
        assert_eq!(c.state(), ClientState::Waiting);
        assert!(c.wait_us().is_some());
        c.linked(7);
        assert_eq!((c.state(), c.link()), (ClientState::Active, 7));
        assert_eq!(c.wait_us(), None);
        c.idle();
        assert_eq!((c.state(), c.link()), (ClientState::Idle, 0));
        c.set_pin(Some("a temporary table"));
        let since = c.pin().map(|p| p.1);
        c.set_pin(Some("a temporary table"));
        assert_eq!(c.pin().map(|p| p.1), since, "same reason keeps its start");
        c.set_pin(None);
        assert!(c.pin().is_none());
    }
}
