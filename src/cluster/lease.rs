//! Leader election with a `coordination.k8s.io/v1` Lease: acquire when free or expired, renew
//! while leading, step down when renewals fail past the deadline, and hand over on shutdown by
//! clearing the holder, so the next replica takes over at its next retry instead of waiting
//! for expiry.
//!
//! Expiry is judged on this replica's own monotonic clock: a Lease is expired when its record
//! has not changed for its `leaseDurationSeconds` since we first saw that version, so clock
//! skew between nodes cannot make two leaders.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::source::kube::api_error_kind;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    /// This replica's holder identity; unique per process.
    pub identity: String,
    pub lease_duration: Duration,
    /// A leader that could not renew for this long stops acting as leader.
    pub renew_deadline: Duration,
    /// Time between attempts to acquire or renew.
    pub retry_period: Duration,
}

impl LeaseSettings {
    /// Timings in client-go's proportions: renew deadline 2/3 of the lease, retry every 2/15.
    pub fn new(namespace: String, name: String, identity: String, lease_duration: Duration) -> Self {
        let lease_duration = lease_duration.max(Duration::from_secs(1));
        Self {
            namespace,
            name,
            identity,
            lease_duration,
            renew_deadline: lease_duration * 2 / 3,
            retry_period: (lease_duration * 2 / 15).max(Duration::from_millis(100)),
        }
    }
}

struct Elector {
    api: Api<Lease>,
    settings: LeaseSettings,
    /// The Lease's resourceVersion as last seen, and when we first saw it.
    observed: Option<(String, Instant)>,
    /// The holder last logged, so each change of leader is logged once.
    logged_holder: Option<String>,
}

/// Campaigns for the Lease until shutdown; `leader` says whether this replica leads now, and
/// so does `lintel_leader` in `metrics` (set after every round and on the way out). Failed
/// Lease calls count as API errors.
pub async fn run(
    client: Client,
    settings: LeaseSettings,
    leader: watch::Sender<bool>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let api = Api::<Lease>::namespaced(client, &settings.namespace);
    let mut elector = Elector { api, settings, observed: None, logged_holder: None };
    let settings = elector.settings.clone();
    let call_timeout = settings.renew_deadline / 2;
    let mut last_renewed: Option<Instant> = None;
    let mut failing = false;
    loop {
        let attempt = tokio::select! {
            attempt = tokio::time::timeout(call_timeout, elector.try_acquire_or_renew()) => attempt,
            () = shutdown.cancelled() => break,
        };
        let leading = *leader.borrow();
        match attempt {
            Ok(Ok(true)) => {
                last_renewed = Some(Instant::now());
                if failing {
                    tracing::info!(lease = %settings.name, "Lease API reachable again");
                    failing = false;
                }
                if !leading {
                    tracing::info!(lease = %settings.name, identity = %settings.identity, "became the leader; writing Ingress status");
                    leader.send_replace(true);
                }
            }
            Ok(Ok(false)) => {
                failing = false;
                if leading {
                    tracing::warn!(lease = %settings.name, "lost the Lease to another replica; no longer writing status");
                    leader.send_replace(false);
                }
            }
            Ok(Err(err)) => {
                metrics.api_error(api_error_kind(&err));
                elector.note_failure(&mut failing, &err.to_string());
            }
            Err(_) => {
                metrics.api_error("timeout");
                elector.note_failure(&mut failing, "Lease call timed out");
            }
        }
        let overdue = last_renewed.is_none_or(|t| t.elapsed() > settings.renew_deadline);
        if *leader.borrow() && overdue {
            tracing::warn!(lease = %settings.name, "could not renew the Lease in time; stepping down");
            leader.send_replace(false);
        }
        metrics.set_leader(*leader.borrow());
        tokio::select! {
            () = tokio::time::sleep(settings.retry_period) => {}
            () = shutdown.cancelled() => break,
        }
    }
    metrics.set_leader(false);
    if *leader.borrow() {
        leader.send_replace(false);
        match tokio::time::timeout(Duration::from_secs(2), elector.release()).await {
            Ok(Ok(())) => tracing::info!(lease = %settings.name, "released the Lease for the next leader"),
            Ok(Err(err)) => tracing::warn!(lease = %settings.name, %err, "could not release the Lease; it will expire"),
            Err(_) => tracing::warn!(lease = %settings.name, "releasing the Lease timed out; it will expire"),
        }
    }
}

fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 409)
}

fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)
}

impl Elector {
    fn note_failure(&self, failing: &mut bool, err: &str) {
        if *failing {
            tracing::debug!(lease = %self.settings.name, %err, "Lease call still failing");
        } else {
            tracing::warn!(lease = %self.settings.name, %err, "Lease call failed; retrying");
            *failing = true;
        }
    }

    /// One round: `Ok(true)` when we hold the Lease after it.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let me = self.settings.identity.clone();
        let Some(lease) = self.api.get_opt(&self.settings.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.settings.name.clone()),
                    namespace: Some(self.settings.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me),
                    lease_duration_seconds: Some(seconds(self.settings.lease_duration)),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(&created);
                    Ok(true)
                }
                Err(err) if is_conflict(&err) => Ok(false),
                Err(err) => Err(err),
            };
        };
        self.observe(&lease);
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty());
        self.log_holder(holder);
        let mine = holder == Some(me.as_str());
        if !mine && holder.is_some() {
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(self.settings.lease_duration, Duration::from_secs);
            let seen_since = self.observed.as_ref().map_or_else(Instant::now, |(_, at)| *at);
            if seen_since.elapsed() < duration {
                return Ok(false);
            }
            tracing::info!(lease = %self.settings.name, holder = holder.unwrap_or_default(), "the Lease expired; taking over");
        }
        let mut next = spec.clone();
        if !mine {
            next.holder_identity = Some(me);
            next.acquire_time = Some(MicroTime(now));
            next.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        next.renew_time = Some(MicroTime(now));
        next.lease_duration_seconds = Some(seconds(self.settings.lease_duration));
        let updated = Lease { metadata: lease.metadata, spec: Some(next) };
        match self.api.replace(&self.settings.name, &PostParams::default(), &updated).await {
            Ok(written) => {
                self.observe(&written);
                Ok(true)
            }
            Err(err) if is_conflict(&err) => Ok(false),
            Err(err) => Err(err),
        }
    }

    fn observe(&mut self, lease: &Lease) {
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        if self.observed.as_ref().is_none_or(|(seen, _)| *seen != version) {
            self.observed = Some((version, Instant::now()));
        }
    }

    fn log_holder(&mut self, holder: Option<&str>) {
        if self.logged_holder.as_deref() != holder && holder != Some(self.settings.identity.as_str()) {
            tracing::info!(lease = %self.settings.name, holder = holder.unwrap_or("(none)"), "current leader");
        }
        self.logged_holder = holder.map(str::to_owned);
    }

    /// Clears the holder if it is still us, so another replica can take over at once.
    async fn release(&self) -> Result<(), kube::Error> {
        let Some(lease) = self.api.get_opt(&self.settings.name).await? else { return Ok(()) };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return Ok(());
        }
        let now = MicroTime(Timestamp::now());
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now);
        let released = Lease { metadata: lease.metadata, spec: Some(spec) };
        self.api.replace(&self.settings.name, &PostParams::default(), &released).await.map(|_| ())
    }
}
