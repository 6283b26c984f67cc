//! The portal's in-memory guard: how many cases each client address filed recently (and, under
//! keys of their own, sign-in codes asked for and tried), and the
//! tracking links of recent submissions by their idempotency key (so that a form sent twice —
//! the browser shows only the second answer — still shows its link).
//!
//! Memory only, per server process: a restart forgets it, and several servers behind a load
//! balancer each count their own share.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// New cases one client address may file per [`SUBMIT_WINDOW`].
pub const SUBMIT_LIMIT: usize = 5;
pub const SUBMIT_WINDOW: Duration = Duration::from_secs(10 * 60);
/// Above this many tracked addresses or keys, expired entries are swept on every call.
const SWEEP_ABOVE: usize = 1024;

#[derive(Default)]
struct Inner {
    hits: HashMap<String, VecDeque<Instant>>,
    /// idempotency key → (when, case number, token)
    recent: HashMap<String, (Instant, String, String)>,
}

#[derive(Default)]
pub struct PortalGuard {
    inner: Mutex<Inner>,
}

impl PortalGuard {
    pub fn new() -> PortalGuard {
        PortalGuard::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sweep(inner: &mut Inner, now: Instant) {
        if inner.hits.len() > SWEEP_ABOVE {
            inner.hits.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < SUBMIT_WINDOW));
        }
        if inner.recent.len() > SWEEP_ABOVE {
            inner.recent.retain(|_, (t, _, _)| now.duration_since(*t) < SUBMIT_WINDOW);
        }
    }

    /// `Ok` when `client` may file another case now, else how long until it may.
    pub fn check(&self, client: &str) -> Result<(), Duration> {
        self.check_limit(client, SUBMIT_LIMIT)
    }

    /// `Ok` when `key` was counted fewer than `limit` times in the last [`SUBMIT_WINDOW`], else
    /// how long until it may go again. Keys of different uses carry a prefix of their own.
    pub fn check_limit(&self, key: &str, limit: usize) -> Result<(), Duration> {
        let now = Instant::now();
        let mut inner = self.lock();
        Self::sweep(&mut inner, now);
        let Some(q) = inner.hits.get_mut(key) else { return Ok(()) };
        while q.front().is_some_and(|t| now.duration_since(*t) >= SUBMIT_WINDOW) {
            q.pop_front();
        }
        if q.len() < limit {
            Ok(())
        } else {
            let oldest = q.front().copied().unwrap_or(now);
            Err(SUBMIT_WINDOW.saturating_sub(now.duration_since(oldest)))
        }
    }

    /// Counts a new case filed by `client`.
    pub fn record_submission(&self, client: &str) {
        self.lock().hits.entry(client.to_string()).or_default().push_back(Instant::now());
    }

    /// Counts a new case and remembers its link under the form's idempotency key.
    pub fn record(&self, client: &str, key: &str, number: &str, token: &str) {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.hits.entry(client.to_string()).or_default().push_back(now);
        inner.recent.insert(key.to_string(), (now, number.to_string(), token.to_string()));
    }

    /// The token remembered for `key`, if it is recent and belongs to case `number`.
    pub fn recent(&self, key: &str, number: &str) -> Option<String> {
        let now = Instant::now();
        let inner = self.lock();
        inner.recent.get(key).filter(|(t, n, _)| n == number && now.duration_since(*t) < SUBMIT_WINDOW).map(|(_, _, tok)| tok.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_client() {
        let g = PortalGuard::new();
        for _ in 0..SUBMIT_LIMIT {
            assert!(g.check("a").is_ok());
            g.record_submission("a");
        }
        assert!(g.check("a").is_err());
        assert!(g.check("b").is_ok());
    }

    #[test]
    fn limits_are_per_key() {
        let g = PortalGuard::new();
        for _ in 0..2 {
            assert!(g.check_limit("code:a", 2).is_ok());
            g.record_submission("code:a");
        }
        assert!(g.check_limit("code:a", 2).is_err());
        assert!(g.check_limit("code:a", 3).is_ok());
        assert!(g.check("a").is_ok(), "other uses of the same address are counted apart");
    }

    #[test]
    fn remembers_recent_links() {
        let g = PortalGuard::new();
        g.record("a", "k1", "GD2026-000001", "tok");
        assert_eq!(g.recent("k1", "GD2026-000001").as_deref(), Some("tok"));
        assert_eq!(g.recent("k1", "GD2026-000002"), None);
        assert_eq!(g.recent("k2", "GD2026-000001"), None);
    }
}
