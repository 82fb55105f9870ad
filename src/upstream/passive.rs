//! Passive ejection, always on: consecutive failures (connect errors, 5xx answers, broken
//! connections) take an endpoint out of rotation for a backoff that doubles while it keeps
//! failing. After the backoff it gets traffic again on probation: one more failure ejects it
//! at once for twice as long; one success clears the record. Atomics only; the clock is a
//! parameter, so the rules are tested without time.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassiveSettings {
    /// Consecutive failures that eject a healthy endpoint.
    pub consecutive_failures: u32,
    /// The first ejection; each further one in a row doubles it.
    pub base_ejection: Duration,
    pub max_ejection: Duration,
}

impl Default for PassiveSettings {
    fn default() -> Self {
        Self { consecutive_failures: 3, base_ejection: Duration::from_secs(1), max_ejection: Duration::from_secs(30) }
    }
}

/// The passive record of one endpoint. Times are milliseconds since the endpoint was made.
#[derive(Debug, Default)]
pub struct Passive {
    failures: AtomicU32,
    /// Ejections in a row without a success in between.
    ejections: AtomicU32,
    ejected_until_ms: AtomicU64,
}

impl Passive {
    pub fn is_ejected(&self, now_ms: u64) -> bool {
        now_ms < self.ejected_until_ms.load(Ordering::Relaxed)
    }

    /// [`Self::is_ejected`] with the clock read only for an endpoint ever ejected (for the
    /// data path, where nearly every endpoint never was).
    pub fn is_ejected_by(&self, now_ms: impl FnOnce() -> u64) -> bool {
        let until = self.ejected_until_ms.load(Ordering::Relaxed);
        until != 0 && now_ms() < until
    }

    /// Records a good answer. Writes only when there is something to clear, so the hot path
    /// of a healthy endpoint only reads.
    pub fn success(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        if self.ejections.load(Ordering::Relaxed) != 0 {
            self.ejections.store(0, Ordering::Relaxed);
        }
    }

    /// Records a failure; returns the ejection it caused, if any.
    pub fn failure(&self, now_ms: u64, settings: &PassiveSettings) -> Option<Duration> {
        if self.is_ejected(now_ms) {
            // Requests sent before the ejection are still failing: no new information.
            return None;
        }
        let failures = self.failures.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        let on_probation = self.ejections.load(Ordering::Relaxed) > 0;
        if failures < settings.consecutive_failures.max(1) && !on_probation {
            return None;
        }
        self.failures.store(0, Ordering::Relaxed);
        let level = self.ejections.fetch_add(1, Ordering::Relaxed).min(16);
        let backoff = settings.base_ejection.saturating_mul(1 << level).min(settings.max_ejection);
        let until = now_ms.saturating_add(u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX));
        self.ejected_until_ms.store(until, Ordering::Relaxed);
        Some(backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> PassiveSettings {
        PassiveSettings {
            consecutive_failures: 3,
            base_ejection: Duration::from_secs(1),
            max_ejection: Duration::from_secs(5),
        }
    }

    #[test]
    fn ejects_after_consecutive_failures_only() {
        let p = Passive::default();
        let s = settings();
        assert_eq!(p.failure(0, &s), None);
        assert_eq!(p.failure(0, &s), None);
        p.success();
        assert_eq!(p.failure(0, &s), None, "a success restarts the count");
        assert_eq!(p.failure(0, &s), None);
        assert_eq!(p.failure(0, &s), Some(Duration::from_secs(1)));
        assert!(p.is_ejected(999));
        assert!(!p.is_ejected(1000));
    }

    #[test]
    fn backoff_doubles_while_failing_and_resets_on_success() {
        let p = Passive::default();
        let s = settings();
        for _ in 0..3 {
            p.failure(0, &s);
        }
        assert_eq!(p.failure(500, &s), None, "failures during an ejection are not counted");
        assert_eq!(p.failure(1000, &s), Some(Duration::from_secs(2)), "on probation one failure is enough");
        assert_eq!(p.failure(3000, &s), Some(Duration::from_secs(4)));
        assert_eq!(p.failure(7000, &s), Some(Duration::from_secs(5)), "capped");
        p.success();
        assert_eq!(p.failure(20_000, &s), None, "a success ends probation");
    }

    #[test]
    fn the_clock_is_read_only_for_an_endpoint_once_ejected() {
        let p = Passive::default();
        let s = settings();
        assert!(!p.is_ejected_by(|| unreachable!("never ejected: no clock needed")));
        p.failure(100, &s);
        assert!(!p.is_ejected_by(|| unreachable!("failing, not ejected yet")));
        p.failure(200, &s);
        p.failure(300, &s);
        for now in [300, 1299, 1300, 5000] {
            assert_eq!(p.is_ejected_by(|| now), p.is_ejected(now), "at {now} ms");
        }
        assert!(p.is_ejected_by(|| 1299) && !p.is_ejected_by(|| 1300));
    }
}
