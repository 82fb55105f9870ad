//! Series labelled by a backend Service (connect errors, timeouts, retries, the upstream
//! pool) or by an Ingress (allowlist rejections) leave the output when their Service or
//! Ingress leaves the table in service, as the request series of a route owner do. Without
//! this, every Service or Ingress ever deleted would be exported until a restart.
//!
//! A backend's series stay while an endpoint still counts its connections under it (an old
//! table's requests finishing, or an address another Service reaches too): each such
//! endpoint holds a [`PoolLease`], and the last lease to go sweeps again.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, MutexGuard, Weak};

use super::Metrics;
use super::labels::{BackendLabels, BackendReasonLabels, IngressLabels};
use crate::table::RouteTable;

/// Which owners have series, and which are in the table in service.
#[derive(Debug, Default)]
pub(super) struct Owners {
    live_backends: HashSet<BackendLabels>,
    live_ingresses: HashSet<IngressLabels>,
    backends: HashMap<BackendLabels, BackendSeries>,
    ingresses: HashSet<IngressLabels>,
}

#[derive(Debug, Default)]
struct BackendSeries {
    /// Reasons of its retry and timeout series.
    reasons: Vec<&'static str>,
    pool: Weak<PoolLease>,
}

/// Held (shared) by the endpoints whose connections count under one backend's pool series.
#[derive(Debug)]
pub struct PoolLease {
    metrics: Weak<Metrics>,
}

impl Drop for PoolLease {
    fn drop(&mut self) {
        if let Some(metrics) = self.metrics.upgrade() {
            metrics.sweep_owners();
        }
    }
}

impl Metrics {
    fn owners(&self) -> MutexGuard<'_, Owners> {
        self.owners.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notes that `labels` has a series (with `reason`, for retries and timeouts).
    pub(super) fn track_backend(&self, labels: &BackendLabels, reason: Option<&'static str>) {
        let mut owners = self.owners();
        if !owners.backends.contains_key(labels) {
            owners.backends.insert(labels.clone(), BackendSeries::default());
        }
        let Some(series) = owners.backends.get_mut(labels) else { return };
        if let Some(reason) = reason
            && !series.reasons.contains(&reason)
        {
            series.reasons.push(reason);
        }
    }

    pub(super) fn track_ingress(&self, labels: &IngressLabels) {
        let mut owners = self.owners();
        if !owners.ingresses.contains(labels) {
            owners.ingresses.insert(labels.clone());
        }
    }

    /// The lease for `labels`' pool series, shared by every endpoint counting under it.
    pub(super) fn pool_lease(self: &Arc<Self>, labels: &BackendLabels) -> Arc<PoolLease> {
        let mut owners = self.owners();
        let series = owners.backends.entry(labels.clone()).or_default();
        if let Some(lease) = series.pool.upgrade() {
            return lease;
        }
        let lease = Arc::new(PoolLease { metrics: Arc::downgrade(self) });
        series.pool = Arc::downgrade(&lease);
        lease
    }

    /// The Services and Ingresses of the table going into service; the series of those that
    /// left go now (pool series once no endpoint counts under them).
    pub(super) fn set_live_owners(&self, table: &RouteTable) {
        let backends = table
            .backends()
            .iter()
            .map(|b| BackendLabels { namespace: b.id.namespace.clone(), service: b.id.service.clone() })
            .collect();
        let ingresses = table
            .routes()
            .map(|route| {
                let (namespace, ingress) = route.ingress.split_once('/').unwrap_or(("", &route.ingress));
                IngressLabels { namespace: namespace.to_owned(), ingress: ingress.to_owned() }
            })
            .collect();
        {
            let mut owners = self.owners();
            owners.live_backends = backends;
            owners.live_ingresses = ingresses;
        }
        self.sweep_owners();
    }

    /// Removes the series of owners not in the table in service.
    pub(super) fn sweep_owners(&self) {
        let mut owners = self.owners();
        let Owners { live_backends, live_ingresses, backends, ingresses } = &mut *owners;
        backends.retain(|labels, series| {
            if live_backends.contains(labels) || series.pool.strong_count() > 0 {
                return true;
            }
            self.connect_errors.remove(labels);
            self.pool_opened.remove(labels);
            self.pool_reused.remove(labels);
            self.pool_open.remove(labels);
            for &reason in &series.reasons {
                let labels = BackendReasonLabels {
                    namespace: labels.namespace.clone(),
                    service: labels.service.clone(),
                    reason,
                };
                self.retries.remove(&labels);
                self.timeouts.remove(&labels);
            }
            false
        });
        ingresses.retain(|labels| {
            let keep = live_ingresses.contains(labels);
            if !keep {
                self.allowlist_rejections.remove(labels);
            }
            keep
        });
    }
}
