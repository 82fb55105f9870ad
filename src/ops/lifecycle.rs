//! Shutdown in two steps. `draining` is cancelled at SIGTERM: `/readyz` turns 503 at once
//! while listeners keep accepting. `stop` follows after the shutdown delay: listeners close,
//! and in-flight requests and upgraded connections ([`Tunnels`]) get the grace period.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The two shutdown signals.
#[derive(Debug, Clone, Default)]
pub struct Lifecycle {
    /// Readiness is false from here on.
    pub draining: CancellationToken,
    /// Listeners close, background tasks end.
    pub stop: CancellationToken,
}

impl Lifecycle {
    /// Cancels `stop` once `delay` has passed after `draining`; spawn it with the other tasks.
    pub async fn stop_after_delay(self, delay: Duration) {
        tokio::select! {
            () = self.draining.cancelled() => {}
            () = self.stop.cancelled() => return,
        }
        if !delay.is_zero() {
            tracing::info!(
                delay_ms = delay.as_millis() as u64,
                "draining: /readyz answers 503; listeners close after the delay"
            );
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.stop.cancelled() => {}
            }
        }
        tracing::info!("listeners closing; in-flight requests get the grace period");
        self.stop.cancel();
    }
}

/// Connections that left hyper after an upgrade (WebSocket and the like): whoever copies
/// bytes for one holds a [`TunnelGuard`], and shutdown waits for them within the grace period.
#[derive(Debug, Clone, Default)]
pub struct Tunnels {
    inner: Arc<TunnelsInner>,
}

#[derive(Debug, Default)]
struct TunnelsInner {
    open: AtomicUsize,
    idle: Notify,
}

/// Counts one open tunnel until dropped.
#[derive(Debug)]
pub struct TunnelGuard(Arc<TunnelsInner>);

impl Tunnels {
    pub fn track(&self) -> TunnelGuard {
        self.inner.open.fetch_add(1, Ordering::AcqRel);
        TunnelGuard(self.inner.clone())
    }

    pub fn open(&self) -> usize {
        self.inner.open.load(Ordering::Acquire)
    }

    /// Returns once no tunnel is open.
    pub async fn idle(&self) {
        loop {
            let notified = self.inner.idle.notified();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for TunnelGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_follows_draining_after_the_delay() {
        let life = Lifecycle::default();
        let task = tokio::spawn(life.clone().stop_after_delay(Duration::from_millis(300)));
        tokio::task::yield_now().await;
        assert!(!life.stop.is_cancelled());
        life.draining.cancel();
        let drained = std::time::Instant::now();
        tokio::task::yield_now().await;
        assert!(!life.stop.is_cancelled(), "listeners still accept during the delay");
        tokio::time::timeout(Duration::from_secs(5), life.stop.cancelled()).await.unwrap();
        assert!(drained.elapsed() >= Duration::from_millis(300));
        task.await.unwrap();
    }

    #[tokio::test]
    async fn idle_waits_for_the_last_tunnel() {
        let tunnels = Tunnels::default();
        let a = tunnels.track();
        let b = tunnels.track();
        let waiter = tokio::spawn({
            let tunnels = tunnels.clone();
            async move { tunnels.idle().await }
        });
        drop(a);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(b);
        tokio::time::timeout(Duration::from_secs(5), waiter).await.unwrap().unwrap();
    }
}
