//! The control loop: takes each picture a source publishes, compiles it, binds upstreams and
//! swaps the result in atomically. Skips the swap when nothing changed.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::compile::{CompileOptions, compile_cached};
use crate::diagnostic::Severity;
use crate::live::{Live, SharedLive};
use crate::metrics::Metrics;
use crate::source::Loaded;
use crate::tls::cache::KeyCache;
use crate::upstream::Upstreams;

/// Everything the loop updates.
#[derive(Clone)]
pub struct Control {
    pub live: SharedLive,
    pub upstreams: Arc<Upstreams>,
    pub options: CompileOptions,
    /// True once the first table is in service.
    pub ready: Arc<AtomicBool>,
    pub metrics: Arc<Metrics>,
    /// Certificates parsed by earlier rebuilds, reused while their Secrets stay the same.
    pub keys: Arc<Mutex<KeyCache>>,
}

impl Control {
    /// Compiles and publishes one picture. Returns whether the table in service changed.
    pub fn apply(&self, loaded: &Loaded) -> bool {
        let started = Instant::now();
        let mut compiled = {
            let mut keys = self.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            compile_cached(&loaded.snapshot, &self.options, &mut keys)
        };
        compiled.diagnostics.extend(loaded.diagnostics.iter().cloned());
        compiled.diagnostics.sort();
        let current = self.live.load();
        let first = !self.ready.load(Ordering::Acquire);
        if !first && current.compiled == compiled {
            self.metrics.rebuild_unchanged(started.elapsed());
            return false;
        }
        log_new_diagnostics(&current.compiled.diagnostics, &compiled.diagnostics);
        let groups = self.upstreams.bind(&compiled.table);
        let routes = compiled.table.route_count();
        let ingresses = compiled.served.len();
        let tls_hosts = compiled.table.tls().len();
        let route_metrics = self.metrics.bind_routes(&compiled.table);
        self.metrics.rebuild_swapped(started.elapsed(), &loaded.snapshot, &compiled);
        self.live.store(Arc::new(Live { compiled, groups, route_metrics }));
        self.ready.store(true, Ordering::Release);
        tracing::info!(
            routes,
            ingresses,
            tls_hosts,
            took_ms = started.elapsed().as_secs_f64() * 1e3,
            "route table swapped"
        );
        true
    }

    /// Applies every picture the source publishes until shutdown. A burst of changes is
    /// coalesced by the watch channel: only the latest picture is compiled.
    pub async fn run(self, mut rx: watch::Receiver<Arc<Loaded>>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return },
                () = shutdown.cancelled() => return,
            }
            let loaded = rx.borrow_and_update().clone();
            let this = self.clone();
            let metrics = self.metrics.clone();
            if let Err(err) = tokio::task::spawn_blocking(move || this.apply(&loaded)).await {
                metrics.rebuild_failed();
                tracing::error!(%err, "table rebuild failed; the previous table stays in service");
            }
        }
    }
}

/// Each diagnostic is logged once, when it first appears.
fn log_new_diagnostics(old: &[crate::diagnostic::Diagnostic], new: &[crate::diagnostic::Diagnostic]) {
    let old: HashSet<_> = old.iter().collect();
    for diag in new.iter().filter(|d| !old.contains(d)) {
        match diag.severity {
            Severity::Error => tracing::warn!(subject = %diag.subject, field = %diag.field, "{}", diag.message),
            Severity::Warning => tracing::info!(subject = %diag.subject, field = %diag.field, "{}", diag.message),
        }
    }
}
