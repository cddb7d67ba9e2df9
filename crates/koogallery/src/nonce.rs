//! Replay protection for nonces (security.md §4), in memory, as a pure function of an injected
//! clock. The server keeps its nonces in the database (so several nodes share them); this is the
//! reference behaviour, used by the emulator and in tests.

use std::collections::{HashMap, VecDeque};

/// Remembers each accepted nonce for `ttl_ms` (at least twice the freshness window).
#[derive(Debug, Clone)]
pub struct NonceWindow {
    ttl_ms: i64,
    expires: HashMap<(String, String), i64>,
    order: VecDeque<(i64, (String, String))>,
}

impl NonceWindow {
    pub fn new(ttl_ms: u64) -> Self {
        Self {
            ttl_ms: i64::try_from(ttl_ms).unwrap_or(i64::MAX),
            expires: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Records `nonce` under `scope` (the key type) at `now_ms`. Returns `false` if it is still
    /// remembered, i.e. the request is a replay. Call only after the signature verified.
    pub fn accept(&mut self, scope: &str, nonce: &str, now_ms: i64) -> bool {
        self.purge(now_ms);
        let key = (scope.to_owned(), nonce.to_owned());
        if self.expires.contains_key(&key) {
            return false;
        }
        let until = now_ms.saturating_add(self.ttl_ms);
        self.expires.insert(key.clone(), until);
        self.order.push_back((until, key));
        true
    }

    /// Forgets nonces whose time has passed.
    pub fn purge(&mut self, now_ms: i64) {
        while let Some((until, _)) = self.order.front() {
            if *until >= now_ms {
                break;
            }
            if let Some((_, key)) = self.order.pop_front() {
                self.expires.remove(&key);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.expires.len()
    }

    pub fn is_empty(&self) -> bool {
        self.expires.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_separate_and_entries_expire() {
        let mut w = NonceWindow::new(100);
        assert!(w.accept("basic", "n", 0));
        assert!(w.accept("kit", "n", 0));
        assert!(!w.accept("basic", "n", 100));
        assert!(w.accept("basic", "n", 101));
        w.purge(1_000);
        assert!(w.is_empty());
    }
}
