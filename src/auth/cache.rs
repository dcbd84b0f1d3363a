//! The `auth_query` cache: what the query said about a user name (its stored
//! password, or that there is no such user) for `auth_cache_ttl`.
//!
//! Negative answers are cached too, so a client hammering unknown names does
//! not turn into a query per attempt; the table is bounded so those names
//! cannot grow it without limit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::Password;

/// Most names kept at once.
const MAX_ENTRIES: usize = 10_000;

/// `None` in an entry means "the query returned no usable password".
#[derive(Debug)]
pub struct AuthCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<String, (Instant, Option<Password>)>>,
}

impl AuthCache {
    pub fn new(ttl: Duration) -> AuthCache {
        AuthCache::with_capacity(ttl, MAX_ENTRIES)
    }

    fn with_capacity(ttl: Duration, capacity: usize) -> AuthCache {
        AuthCache {
            ttl,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(answer)` while a fresh answer for `user` is cached.
    pub fn get(&self, user: &str) -> Option<Option<Password>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (at, answer) = entries.get(user)?;
        (at.elapsed() < self.ttl).then(|| answer.clone())
    }

    pub fn put(&self, user: &str, answer: Option<Password>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(user) {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= self.capacity {
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    entries.remove(&k);
                }
            }
        }
        entries.insert(user.to_owned(), (Instant::now(), answer));
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn answers_expire_after_ttl() {
        let c = AuthCache::new(Duration::from_millis(50));
        assert_eq!(c.get("a"), None);
        c.put("a", Some(Password::Plain("x".into())));
        c.put("b", None);
        assert_eq!(c.get("a"), Some(Some(Password::Plain("x".into()))));
        assert_eq!(c.get("b"), Some(None));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.get("a"), None);
        assert_eq!(c.get("b"), None);
    }

    #[test]
    fn zero_ttl_caches_nothing() {
        let c = AuthCache::new(Duration::ZERO);
        c.put("a", None);
        assert_eq!(c.get("a"), None);
        assert!(c.is_empty());
    }

    #[test]
    fn bounded_by_evicting_the_oldest() {
        let c = AuthCache::with_capacity(Duration::from_secs(60), 3);
        for name in ["a", "b", "c", "d", "e"] {
            c.put(name, None);
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(c.len(), 3);
        assert_eq!(c.get("a"), None);
        assert_eq!(c.get("b"), None);
        assert_eq!(c.get("e"), Some(None));
    }
}
