//! One upstream address and everything that belongs to it rather than to a table: its
//! keep-alive pool, its in-flight count, its active and passive health. Reused by address
//! across table swaps; dropped (with its pool and its checker) when no table and no request
//! holds it any more.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::uri::Authority;
use hyper::client::conn::http1::SendRequest;
use tokio::time::Instant;

use super::body::Outgoing;
use super::connector::{self, Target};
use super::error::ConnectError;
use super::health::{ActiveHealth, Checker};
use super::passive::{Passive, PassiveSettings};
use super::plain::PlainConn;
use super::policy::HealthCheck;
use super::pool::Pool;
use crate::metrics::PoolMetrics;

/// How this endpoint's connections are made and kept, as decided in `bind` from every
/// Ingress that reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnSettings {
    pub connect_timeout: Duration,
    pub keepalive_idle: Duration,
}

/// Pooled connections expire before the upstream's announced keep-alive: at three quarters
/// of it, so a request never races the upstream closing the connection.
fn effective_keepalive(asked: Duration, announced_ms: u64) -> Duration {
    if announced_ms == 0 {
        return asked;
    }
    asked.min(Duration::from_millis(announced_ms.saturating_mul(3) / 4))
}

#[derive(Debug)]
pub struct Endpoint {
    pub authority: Authority,
    target: Target,
    /// Idle keep-alive connections: hyper's, and those of plain exchanges.
    pool: Pool<SendRequest<Outgoing>>,
    plain: Pool<Box<PlainConn>>,
    /// What `bind` asked for, in nanoseconds; the pool may keep connections shorter
    /// (`Keep-Alive: timeout`).
    connect_timeout_ns: AtomicU64,
    keepalive_asked_ns: AtomicU64,
    in_flight: AtomicUsize,
    health: Arc<ActiveHealth>,
    passive: Passive,
    passive_settings: PassiveSettings,
    born: Instant,
    /// The keep-alive the upstream announced (`Keep-Alive: timeout=N`) in ms; 0 when none.
    announced_keepalive_ms: AtomicU64,
    /// Requests retried on a fresh connection after a pooled one closed under them.
    stale_retries: AtomicU64,
    /// Control plane only (`bind`); never touched by the data path.
    checker: Mutex<Option<Checker>>,
    /// Where its connections are counted.
    metrics: PoolMetrics,
}

/// The time, read at its first use and then kept.
#[derive(Debug, Default)]
pub(super) struct LazyNow(Cell<Option<Instant>>);

impl LazyNow {
    fn get(&self) -> Instant {
        if let Some(now) = self.0.get() {
            return now;
        }
        let now = Instant::now();
        self.0.set(Some(now));
        now
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Endpoint {
    /// An endpoint whose connections are not counted anywhere.
    pub fn new(authority: Authority, conn: ConnSettings, passive: PassiveSettings) -> Self {
        Self::counted(authority, conn, passive, PoolMetrics::default())
    }

    /// An endpoint whose connections count under `pool` (the backend that first uses it).
    pub fn counted(authority: Authority, conn: ConnSettings, passive: PassiveSettings, metrics: PoolMetrics) -> Self {
        Self {
            target: Target::new(&authority),
            authority,
            pool: Pool::new(conn.keepalive_idle),
            plain: Pool::new(conn.keepalive_idle),
            connect_timeout_ns: AtomicU64::new(nanos(conn.connect_timeout)),
            keepalive_asked_ns: AtomicU64::new(nanos(conn.keepalive_idle)),
            in_flight: AtomicUsize::new(0),
            health: Arc::default(),
            passive: Passive::default(),
            passive_settings: passive,
            born: Instant::now(),
            announced_keepalive_ms: AtomicU64::new(0),
            stale_retries: AtomicU64::new(0),
            checker: Mutex::new(None),
            metrics,
        }
    }

    /// The connection settings `bind` asked for.
    pub fn conn_settings(&self) -> ConnSettings {
        ConnSettings {
            connect_timeout: Duration::from_nanos(self.connect_timeout_ns.load(Ordering::Relaxed)),
            keepalive_idle: Duration::from_nanos(self.keepalive_asked_ns.load(Ordering::Relaxed)),
        }
    }

    /// How long an idle connection is kept: the setting, or less after the upstream
    /// announced its own keep-alive.
    pub fn keepalive_idle(&self) -> Duration {
        self.pool.keepalive()
    }

    /// Connections idle in the pool (expired ones included until they are reaped).
    pub fn idle_connections(&self) -> usize {
        self.pool.idle() + self.plain.idle()
    }

    /// A pooled connection that has not expired, if any.
    pub(super) fn checkout(&self, now: Instant) -> Option<SendRequest<Outgoing>> {
        self.pool.checkout(now)
    }

    /// A new connection, within the connect timeout.
    pub(super) async fn connect(&self) -> Result<SendRequest<Outgoing>, ConnectError> {
        let timeout = Duration::from_nanos(self.connect_timeout_ns.load(Ordering::Relaxed));
        connector::connect(&self.target, timeout, &self.metrics).await
    }

    /// Takes back a connection whose exchange ended cleanly.
    pub(super) fn put(&self, sender: SendRequest<Outgoing>) {
        self.pool.put(sender);
    }

    /// A pooled plain connection that has not expired, if any.
    pub(super) fn checkout_plain(&self, now: Instant) -> Option<Box<PlainConn>> {
        self.plain.checkout(now)
    }

    /// A new plain connection, within the connect timeout.
    pub(super) async fn connect_plain(&self) -> Result<Box<PlainConn>, ConnectError> {
        let timeout = Duration::from_nanos(self.connect_timeout_ns.load(Ordering::Relaxed));
        PlainConn::connect(&self.target, timeout, &self.metrics).await.map(Box::new)
    }

    /// Takes back a plain connection whose exchange ended cleanly.
    pub(super) fn put_plain(&self, conn: Box<PlainConn>) {
        self.plain.push(conn);
    }

    /// A request went out on a connection that had carried one before.
    pub(super) fn note_reuse(&self) {
        self.metrics.reused();
    }

    /// Requests sent and not yet finished (their response bodies included).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// How many requests were retried after a pooled connection closed under them.
    pub fn stale_retries(&self) -> u64 {
        self.stale_retries.load(Ordering::Relaxed)
    }

    pub(super) fn note_stale_retry(&self) {
        self.stale_retries.fetch_add(1, Ordering::Relaxed);
    }

    pub fn is_healthy(&self) -> bool {
        self.health.is_healthy()
    }

    /// Healthy by its active check and not ejected by passive failures.
    pub fn is_available(&self, now: Instant) -> bool {
        self.health.is_healthy() && !self.passive.is_ejected(self.ms_since_born(now))
    }

    /// [`Self::is_available`] for picking: the clock is read (once per `now`) only for an
    /// endpoint that has been ejected at some time.
    pub(super) fn is_available_lazily(&self, now: &LazyNow) -> bool {
        self.health.is_healthy() && !self.passive.is_ejected_by(|| self.ms_since_born(now.get()))
    }

    fn ms_since_born(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.born).as_millis()).unwrap_or(u64::MAX)
    }

    pub fn record_success(&self) {
        self.passive.success();
    }

    pub fn record_failure(&self) {
        let now = self.ms_since_born(Instant::now());
        if let Some(backoff) = self.passive.failure(now, &self.passive_settings) {
            tracing::warn!(endpoint = %self.authority, backoff_ms = backoff.as_millis(), "endpoint ejected after consecutive failures");
        }
    }

    /// Applies what `bind` decided: connection settings (idle connections stay, judged by the
    /// new keep-alive) and the health check (a new checker when it changed; none and healthy
    /// when removed).
    pub fn configure(&self, conn: ConnSettings, check: Option<Arc<HealthCheck>>) {
        self.connect_timeout_ns.store(nanos(conn.connect_timeout), Ordering::Relaxed);
        self.keepalive_asked_ns.store(nanos(conn.keepalive_idle), Ordering::Relaxed);
        let keepalive = effective_keepalive(conn.keepalive_idle, self.announced_keepalive_ms.load(Ordering::Relaxed));
        self.pool.set_keepalive(keepalive);
        self.plain.set_keepalive(keepalive);
        let mut checker = match self.checker.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if checker.as_ref().map(|c| &c.check) == check.as_ref() {
            return;
        }
        *checker = None;
        match check {
            Some(check) => *checker = Checker::start(&self.authority, check, self.health.clone()),
            None => self.health.set(true),
        }
    }

    /// Takes note of an upstream's `Keep-Alive: timeout=N`: the pool keeps connections at most
    /// ¾ N from then on.
    pub fn announce_keepalive(&self, seconds: u64) {
        let ms = seconds.saturating_mul(1000);
        if self.announced_keepalive_ms.load(Ordering::Relaxed) == ms {
            return;
        }
        self.announced_keepalive_ms.store(ms, Ordering::Relaxed);
        let asked = Duration::from_nanos(self.keepalive_asked_ns.load(Ordering::Relaxed));
        let keepalive = effective_keepalive(asked, ms);
        if keepalive != self.pool.keepalive() {
            tracing::debug!(endpoint = %self.authority, seconds, "upstream announced its keep-alive; pool follows");
            self.pool.set_keepalive(keepalive);
            self.plain.set_keepalive(keepalive);
        }
    }
}

/// Counts one request against its endpoint until dropped.
#[derive(Debug)]
pub struct InFlight(Arc<Endpoint>);

impl InFlight {
    pub fn new(endpoint: Arc<Endpoint>) -> Self {
        endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(endpoint)
    }

    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_expires_before_the_announced_keepalive() {
        let asked = Duration::from_secs(15);
        assert_eq!(effective_keepalive(asked, 0), asked);
        assert_eq!(effective_keepalive(asked, 2000), Duration::from_millis(1500));
        assert_eq!(effective_keepalive(Duration::from_secs(1), 60_000), Duration::from_secs(1));
    }
}
