//! The Kubernetes API source: reflectors for Ingress, IngressClass, Service, EndpointSlice and
//! TLS Secret, and one [`Loaded`] picture published per settled burst of changes.
//!
//! Nothing is published before every watcher has completed its first list, so the control
//! loop (and with it `/readyz`) only turns ready on a complete picture. When the API is down
//! or answers 410 Gone, the watchers back off and relist while the stores, and the table
//! built from them, stay as they were.

mod health;
pub(super) mod lenient;
mod settle;
mod stores;

use std::sync::Arc;
use std::time::Instant;

use kube::Client;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use health::api_error_kind;
pub use lenient::Lenient;
pub use settle::Settle;
pub use stores::TLS_SECRETS;

use super::Loaded;
use crate::metrics::Metrics;
use stores::Reflectors;

/// What to watch and how to coalesce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchSettings {
    /// Namespaces of the namespaced kinds; empty means all namespaces.
    pub namespaces: Vec<String>,
    /// Single TLS Secrets `(namespace, name)` to watch even outside `namespaces` (the default
    /// certificate).
    pub extra_secrets: Vec<(String, String)>,
    pub settle: Settle,
}

/// Watches the API and publishes each settled picture on `tx` until shutdown. Watch restarts
/// and API errors go to `metrics`, and so does the sync time of a complete picture that did
/// not change (a relist that found nothing new): a changed one is timed by the rebuild.
pub async fn watch(
    client: Client,
    settings: WatchSettings,
    tx: watch::Sender<Arc<Loaded>>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut namespaces = settings.namespaces.clone();
    namespaces.sort();
    namespaces.dedup();
    let wake = Arc::new(Notify::new());
    let mut tasks = JoinSet::new();
    let extra: Vec<(String, String)> = if namespaces.is_empty() {
        Vec::new()
    } else {
        settings.extra_secrets.iter().filter(|(ns, _)| !namespaces.contains(ns)).cloned().collect()
    };
    let reflectors = Reflectors::start(&client, &namespaces, &extra, &wake, &mut tasks, &metrics, &shutdown);
    let mut first = true;
    loop {
        tokio::select! {
            () = settings.settle.next_burst(&wake) => {}
            () = shutdown.cancelled() => break,
        }
        if !reflectors.all_listed() {
            continue;
        }
        let started = Instant::now();
        let loaded = reflectors.loaded();
        if first {
            let s = &loaded.snapshot;
            tracing::info!(
                ingresses = s.ingresses.len(),
                ingress_classes = s.ingress_classes.len(),
                services = s.services.len(),
                endpoint_slices = s.endpoint_slices.len(),
                tls_secrets = s.secrets.len(),
                "every watched kind is listed; publishing the first picture"
            );
        }
        // The first picture goes out even when empty: it is what makes the proxy ready.
        if first || **tx.borrow() != loaded {
            tracing::debug!(took_ms = started.elapsed().as_secs_f64() * 1e3, "snapshot rebuilt from the stores");
            tx.send_replace(Arc::new(loaded));
        } else {
            metrics.sync_succeeded();
        }
        first = false;
    }
    tasks.shutdown().await;
}
