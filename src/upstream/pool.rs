//! An endpoint's idle keep-alive connections (hyper's HTTP/1.1 senders, or plain exchange
//! connections) waiting for their next request, each with the time it went idle.
//!
//! Why not hyper-util's pool: one per endpoint needs no key (that pool hashed a
//! (scheme, authority) key under a mutex several times per request), and a sender is handed
//! back by the response body at its end, with no task spawned per request to wait for the
//! connection to be ready again.
//!
//! The queue is lock-free (`crossbeam_queue::SegQueue`) and first in, first out: the
//! connection idle the longest is taken first. A connection idle longer than the keep-alive
//! (the endpoint's setting, or ¾ of what the upstream announced) is dropped when it comes up
//! for a request, and a reaper task, running only while connections are idle, drops the
//! expired ones in the background so no idle socket outlives the keep-alive by much. The
//! reaper holds the pool weakly: dropping the endpoint drops its idle connections at once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crossbeam_queue::SegQueue;
use hyper::client::conn::http1::SendRequest;
use tokio::time::Instant;

use super::body::Outgoing;

/// The reaper's period is half the keep-alive, within these bounds.
const REAP_MIN: Duration = Duration::from_millis(50);
const REAP_MAX: Duration = Duration::from_secs(30);

/// A connection that can wait in a pool.
pub trait Pooled: Send + 'static {
    /// Whether it can still carry a request (the upstream has not closed it meanwhile).
    fn is_usable(&mut self) -> bool;
}

impl<T: Pooled> Pooled for Box<T> {
    fn is_usable(&mut self) -> bool {
        T::is_usable(self)
    }
}

impl Pooled for SendRequest<Outgoing> {
    fn is_usable(&mut self) -> bool {
        !self.is_closed()
    }
}

#[derive(Debug)]
struct Idle<C> {
    conn: C,
    since: Instant,
}

#[derive(Debug)]
struct Shared<C> {
    idle: SegQueue<Idle<C>>,
    /// The effective keep-alive idle, in nanoseconds.
    keepalive_ns: AtomicU64,
    /// A reaper task is running (or about to).
    reaping: AtomicBool,
}

impl<C> Default for Shared<C> {
    fn default() -> Self {
        Self { idle: SegQueue::new(), keepalive_ns: AtomicU64::new(0), reaping: AtomicBool::new(false) }
    }
}

impl<C: Pooled> Shared<C> {
    fn keepalive(&self) -> Duration {
        Duration::from_nanos(self.keepalive_ns.load(Ordering::Relaxed))
    }

    /// Drops expired and closed connections from the head of the queue; the first live one
    /// goes back (to the tail).
    fn reap(&self, now: Instant) {
        let keepalive = self.keepalive();
        for _ in 0..self.idle.len() {
            let Some(mut idle) = self.idle.pop() else { return };
            if now.saturating_duration_since(idle.since) < keepalive && idle.conn.is_usable() {
                self.idle.push(idle);
                return;
            }
        }
    }
}

#[derive(Debug)]
pub struct Pool<C>(Arc<Shared<C>>);

impl<C: Pooled> Pool<C> {
    pub fn new(keepalive: Duration) -> Self {
        let pool = Self(Arc::default());
        pool.set_keepalive(keepalive);
        pool
    }

    pub fn keepalive(&self) -> Duration {
        self.0.keepalive()
    }

    /// Applies from the next checkout on, to the connections already idle too.
    pub fn set_keepalive(&self, keepalive: Duration) {
        let ns = u64::try_from(keepalive.as_nanos()).unwrap_or(u64::MAX);
        self.0.keepalive_ns.store(ns, Ordering::Relaxed);
    }

    /// An idle connection that has not expired, if any; expired and closed ones met on the
    /// way are dropped.
    pub fn checkout(&self, now: Instant) -> Option<C> {
        let keepalive = self.keepalive();
        while let Some(mut idle) = self.0.idle.pop() {
            if now.saturating_duration_since(idle.since) < keepalive && idle.conn.is_usable() {
                return Some(idle.conn);
            }
        }
        None
    }

    /// Takes back a connection ready for its next request.
    pub fn push(&self, conn: C) {
        self.0.idle.push(Idle { conn, since: Instant::now() });
        if !self.0.reaping.load(Ordering::SeqCst)
            && !self.0.reaping.swap(true, Ordering::SeqCst)
            && !spawn(reaper(Arc::downgrade(&self.0)))
        {
            self.0.reaping.store(false, Ordering::SeqCst);
        }
    }

    /// Connections idle now (expired ones included until they are reaped).
    pub fn idle(&self) -> usize {
        self.0.idle.len()
    }
}

impl Pool<SendRequest<Outgoing>> {
    /// Takes back a connection whose exchange is over. One that is closed is dropped; one not
    /// ready yet (its driver has not caught up with the end of the response) is taken back
    /// when it is ready.
    pub fn put(&self, mut sender: SendRequest<Outgoing>) {
        if sender.is_ready() {
            self.push(sender);
        } else if !sender.is_closed() {
            let pool = Arc::downgrade(&self.0);
            let _ = spawn(async move {
                if sender.ready().await.is_ok()
                    && let Some(shared) = pool.upgrade()
                {
                    Self(shared).push(sender);
                }
            });
        }
    }
}

/// Bodies are dropped where their reader is, normally on the runtime; outside one (a test's
/// last drop) there is nothing to wait for and nothing to reap.
fn spawn(task: impl std::future::Future<Output = ()> + Send + 'static) -> bool {
    let runtime = tokio::runtime::Handle::try_current();
    if let Ok(runtime) = &runtime {
        runtime.spawn(task);
    }
    runtime.is_ok()
}

/// Runs while the pool has idle connections; ends when it is empty or gone.
async fn reaper<C: Pooled>(pool: Weak<Shared<C>>) {
    loop {
        let period = match pool.upgrade() {
            Some(shared) => (shared.keepalive() / 2).clamp(REAP_MIN, REAP_MAX),
            None => return,
        };
        tokio::time::sleep(period).await;
        let Some(shared) = pool.upgrade() else { return };
        shared.reap(Instant::now());
        if shared.idle.is_empty() {
            shared.reaping.store(false, Ordering::SeqCst);
            // A connection pushed since then either saw the flag down and started its own
            // reaper, or saw it up: then this one goes on.
            if shared.idle.is_empty() || shared.reaping.swap(true, Ordering::SeqCst) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use hyper_util::rt::TokioIo;

    use super::*;

    /// A ready sender over an in-memory pipe, and the task driving its connection.
    async fn connection() -> (SendRequest<Outgoing>, tokio::task::JoinHandle<hyper::Result<()>>, tokio::io::DuplexStream)
    {
        let (client, server) = tokio::io::duplex(1024);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(client)).await.unwrap();
        let driver = tokio::spawn(conn);
        sender.ready().await.unwrap();
        (sender, driver, server)
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_idle_past_the_keepalive_is_not_handed_out() {
        let pool = Pool::new(Duration::from_secs(10));
        let (sender, driver, _server) = connection().await;
        pool.put(sender);
        let sender = pool.checkout(Instant::now() + Duration::from_secs(9)).expect("still fresh");
        pool.put(sender);
        assert!(pool.checkout(Instant::now() + Duration::from_secs(10)).is_none());
        assert_eq!(pool.idle(), 0);
        driver.await.unwrap().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_reaper_closes_expired_connections_and_stops() {
        let pool = Pool::new(Duration::from_secs(10));
        let (sender, driver, _server) = connection().await;
        pool.put(sender);
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert_eq!(pool.idle(), 1, "kept within the keep-alive");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(pool.idle(), 0, "reaped within half a keep-alive of expiring");
        driver.await.unwrap().unwrap();
        assert!(!pool.0.reaping.load(Ordering::SeqCst), "the reaper stopped with the pool empty");
    }

    #[tokio::test]
    async fn dropping_the_pool_closes_its_idle_connections() {
        let pool = Pool::new(Duration::from_secs(10));
        let (sender, driver, _server) = connection().await;
        pool.put(sender);
        drop(pool);
        driver.await.unwrap().unwrap();
    }
}
