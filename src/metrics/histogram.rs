//! A lock-free histogram for the data path: fixed integer buckets, one relaxed atomic add per
//! bucket hit and one for the sum. (prometheus-client's own `Histogram` takes a mutex on every
//! `observe`.) Also [`Shown`], which keeps a family's HELP/TYPE in the output before its first
//! series exists.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Request durations, in nanoseconds: 5 ms to 5 min (Airflow log downloads and the 120 s
/// gunicorn timeout land in real buckets, not in +Inf).
pub const DURATION_BUCKETS: &[u64] = &[
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    30_000_000_000,
    60_000_000_000,
    120_000_000_000,
    300_000_000_000,
];

/// Control-plane work (table rebuilds), in nanoseconds: 100 µs to 10 s.
pub const REBUILD_BUCKETS: &[u64] = &[
    100_000,
    500_000,
    1_000_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    10_000_000_000,
];

/// Body sizes, in bytes: 64 B to 256 MiB, by powers of 4.
pub const SIZE_BUCKETS: &[u64] =
    &[64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20, 256 << 20];

/// Nanoseconds per second: durations are observed in ns and exported in seconds.
pub const NANOS: f64 = 1e9;

/// A histogram over `u64` observations, exported divided by `scale` (1e9 turns ns into s).
/// Clones share their counts, as prometheus-client's metrics do.
#[derive(Debug, Clone)]
pub struct AtomicHistogram {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    bounds: &'static [u64],
    scale: f64,
    /// One per bound, then the overflow (+Inf) bucket. Not cumulative.
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl AtomicHistogram {
    pub fn new(bounds: &'static [u64], scale: f64) -> Self {
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Self { inner: Arc::new(Inner { bounds, scale, counts, sum: AtomicU64::new(0) }) }
    }

    /// Request durations in seconds.
    pub fn durations() -> Self {
        Self::new(DURATION_BUCKETS, NANOS)
    }

    /// Rebuild durations in seconds.
    pub fn rebuilds() -> Self {
        Self::new(REBUILD_BUCKETS, NANOS)
    }

    /// Sizes in bytes.
    pub fn sizes() -> Self {
        Self::new(SIZE_BUCKETS, 1.0)
    }

    pub fn observe(&self, value: u64) {
        let inner = &*self.inner;
        let i = inner.bounds.partition_point(|bound| *bound < value);
        if let Some(count) = inner.counts.get(i) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        // A locked add costs tens of cycles; most requests have no body, and adding 0 is moot.
        if value != 0 {
            inner.sum.fetch_add(value, Ordering::Relaxed);
        }
    }

    pub fn observe_duration(&self, elapsed: Duration) {
        self.observe(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Observations so far (the sum of all buckets).
    pub fn count(&self) -> u64 {
        self.inner.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

impl TypedMetric for AtomicHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for AtomicHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let inner = &*self.inner;
        let mut count = 0;
        let mut buckets = Vec::with_capacity(inner.counts.len());
        for (i, cell) in inner.counts.iter().enumerate() {
            let n = cell.load(Ordering::Relaxed);
            count += n;
            let bound = inner.bounds.get(i).map_or(f64::INFINITY, |b| *b as f64 / inner.scale);
            buckets.push((bound, n));
        }
        let sum = inner.sum.load(Ordering::Relaxed) as f64 / inner.scale;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// Wraps a family so that its HELP, TYPE and UNIT lines are written even while it has no
/// series yet (prometheus-client leaves empty families out): operators see every family
/// Lintel has, and the ones other parts of the proxy fill later are visible from the start.
#[derive(Debug)]
pub struct Shown<M>(pub M);

impl<M: EncodeMetric> EncodeMetric for Shown<M> {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        self.0.metric_type()
    }

    fn is_empty(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_at_or_above_them() {
        let h = AtomicHistogram::new(&[10, 100], 1.0);
        for v in [0, 10, 11, 100, 101, 5000] {
            h.observe(v);
        }
        let counts: Vec<u64> = h.inner.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        assert_eq!(counts, [2, 2, 2]);
        assert_eq!(h.count(), 6);
        assert_eq!(h.inner.sum.load(Ordering::Relaxed), 5222);
    }

    #[test]
    fn clones_share_counts() {
        let h = AtomicHistogram::durations();
        h.clone().observe_duration(Duration::from_millis(7));
        assert_eq!(h.count(), 1);
    }
}
