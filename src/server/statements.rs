//! Named statements present on one server connection (see
//! client::prepared for how they are shared).

use std::collections::VecDeque;

/// Statements present on one server connection, oldest first.
#[derive(Debug, Default, Clone)]
pub struct ServerStatements {
    order: VecDeque<String>,
    unknown: Vec<String>,
    /// Client-named placeholders left behind by a refused duplicate Parse;
    /// closed before the connection's next statement message.
    strays: Vec<String>,
}

impl ServerStatements {
    pub fn contains(&self, name: &str) -> bool {
        self.order.iter().any(|n| n == name)
    }

    /// Adds `name`; returns the statement to close if over `cap`.
    pub fn add(&mut self, name: &str, cap: usize) -> Option<String> {
        if !self.contains(name) {
            self.order.push_back(name.to_owned());
        }
        if self.order.len() > cap.max(1) {
            return self.order.pop_front();
        }
        None
    }

    pub fn remove(&mut self, name: &str) {
        self.order.retain(|n| n != name);
    }

    /// A statement that may or may not exist (its batch failed, or its plan
    /// went stale): the next use closes it first, then prepares it again.
    pub fn mark_unknown(&mut self, name: &str) {
        self.remove(name);
        if !self.unknown.iter().any(|n| n == name) {
            self.unknown.push(name.to_owned());
        }
    }

    /// Whether `name` must be closed before it is prepared again; forgets it.
    pub fn take_unknown(&mut self, name: &str) -> bool {
        let before = self.unknown.len();
        self.unknown.retain(|n| n != name);
        before != self.unknown.len()
    }

    pub fn add_stray(&mut self, name: &str) {
        if !self.strays.iter().any(|n| n == name) {
            self.strays.push(name.to_owned());
        }
    }

    pub fn take_strays(&mut self) -> Vec<String> {
        std::mem::take(&mut self.strays)
    }

    pub fn clear(&mut self) {
        self.order.clear();
        self.unknown.clear();
        self.strays.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_evicts_the_oldest() {
        let mut s = ServerStatements::default();
        assert_eq!(s.add("a", 2), None);
        assert_eq!(s.add("b", 2), None);
        assert_eq!(s.add("c", 2), Some("a".to_owned()));
        assert!(!s.contains("a") && s.contains("b") && s.contains("c"));
    }
}
