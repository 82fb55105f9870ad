//! Picking an endpoint for one request: power of two choices on outstanding requests by
//! default, round robin on request. Only available endpoints (healthy, not ejected) are
//! candidates; when none is, every endpoint is (fail open), logged once per transition.
//! Atomics only, no allocation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use super::Group;
use super::endpoint::{Endpoint, LazyNow};
use super::policy::Balance;

/// Per-backend state that outlives table swaps: the round-robin position, the random
/// stream and whether the backend is failing open.
#[derive(Debug, Default)]
pub struct BackendState {
    next: AtomicUsize,
    random: AtomicU64,
    failing_open: AtomicBool,
}

impl BackendState {
    /// splitmix64 over an atomic counter: lock-free, and good enough to draw two endpoints.
    fn random(&self) -> u64 {
        let mut z = self.random.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn is_failing_open(&self) -> bool {
        self.failing_open.load(Ordering::Relaxed)
    }
}

impl Group {
    /// An endpoint for one request, other than `exclude`; `None` when there is none.
    pub fn pick(&self, balance: Balance, exclude: Option<&Arc<Endpoint>>) -> Option<Arc<Endpoint>> {
        if self.endpoints.is_empty() {
            return None;
        }
        // Availability once per endpoint, kept as a bit for the first 64 (nearly every
        // backend); any further endpoint is asked again where needed.
        let now = LazyNow::default();
        let mut available = 0u64;
        let mut any = false;
        for (i, e) in self.endpoints.iter().enumerate() {
            if e.is_available_lazily(&now) {
                any = true;
                if i < 64 {
                    available |= 1 << i;
                }
            }
        }
        let fail_open = !any;
        self.note_fail_open(fail_open);
        let usable = |(i, e): &(usize, &Arc<Endpoint>)| {
            let up = fail_open || if *i < 64 { available & (1 << *i) != 0 } else { e.is_available_lazily(&now) };
            up && !exclude.is_some_and(|x| Arc::ptr_eq(x, e))
        };
        let count = self.endpoints.iter().enumerate().filter(usable).count();
        let nth = |k: usize| self.endpoints.iter().enumerate().filter(usable).nth(k).map(|(_, e)| e);
        let picked = match (balance, count) {
            (_, 0) => None,
            (_, 1) => nth(0),
            (Balance::RoundRobin, _) => nth(self.state.next.fetch_add(1, Ordering::Relaxed) % count),
            (Balance::PowerOfTwoChoices, _) => {
                let r = self.state.random();
                let a = index(r, count);
                let mut b = index(r >> 32, count - 1);
                if b >= a {
                    b += 1;
                }
                match (nth(a), nth(b)) {
                    (Some(x), Some(y)) => Some(if y.in_flight() < x.in_flight() { y } else { x }),
                    (x, y) => x.or(y),
                }
            }
        };
        picked.cloned()
    }

    fn note_fail_open(&self, fail_open: bool) {
        let state = &self.state;
        if state.failing_open.load(Ordering::Relaxed) == fail_open
            || state.failing_open.swap(fail_open, Ordering::Relaxed) == fail_open
        {
            return;
        }
        if fail_open {
            tracing::warn!(backend = %self.name, endpoints = self.endpoints.len(), "every endpoint is unhealthy; failing open to all of them");
        } else {
            tracing::info!(backend = %self.name, "an endpoint is healthy again; no longer failing open");
        }
    }

    /// True while every endpoint is unhealthy and traffic goes to all of them.
    pub fn is_failing_open(&self) -> bool {
        self.state.is_failing_open()
    }
}

/// `r` reduced to `0..n` (n > 0).
fn index(r: u64, n: usize) -> usize {
    // The remainder is below n, so it fits in usize.
    usize::try_from(r % n as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests;
