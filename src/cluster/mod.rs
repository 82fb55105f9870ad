//! Kubernetes mode: the client, the API source feeding the control loop, and what the leader
//! writes back (Ingress status, diagnostics as Events), chosen by a Lease.
//!
//! Started by `run` when no manifests directory is given. Nothing here is on the data path.

pub mod address;
pub mod events;
pub mod lease;
pub mod status;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::compile::CompileOptions;
use crate::config::{Config, DefaultCertificate};
use crate::control::Control;
use crate::source::Loaded;
use crate::source::kube::{Settle, WatchSettings};
use address::Publish;
use lease::LeaseSettings;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    // The kube config errors repeat their causes in their own message: kept as text, so the
    // cause chain is printed once.
    #[error("cannot use kubeconfig {path}: {reason}")]
    Kubeconfig { path: PathBuf, reason: String },
    #[error(
        "no Kubernetes configuration found (pass --kubeconfig FILE, or --manifests DIR to serve \
         from files): {0}"
    )]
    Infer(String),
    #[error("cannot build the Kubernetes client: {0}")]
    Client(#[from] kube::Error),
    #[error("publish-service must be NAMESPACE/NAME, got {0:?}")]
    PublishService(String),
    #[error("publish-service and publish-address are exclusive: give one")]
    PublishBoth,
}

/// Everything Kubernetes mode needs, resolved from [`Config`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSettings {
    pub kubeconfig: Option<PathBuf>,
    pub watch: WatchSettings,
    pub publish: Publish,
    pub lease: LeaseSettings,
    pub options: CompileOptions,
}

impl ClusterSettings {
    pub fn from_config(config: &Config) -> Result<Self, ClusterError> {
        let publish = match (&config.publish_service, config.publish_address.is_empty()) {
            (Some(_), false) => return Err(ClusterError::PublishBoth),
            (Some(service), true) => match service.split_once('/') {
                Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() && !name.contains('/') => {
                    Publish::Service { namespace: namespace.to_owned(), name: name.to_owned() }
                }
                _ => return Err(ClusterError::PublishService(service.clone())),
            },
            (None, false) => Publish::Fixed(address::fixed(&config.publish_address)),
            (None, true) => Publish::Nothing,
        };
        let namespace = config
            .election_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok().filter(|n| !n.is_empty()))
            .unwrap_or_else(|| "lintel".to_owned());
        let lease =
            LeaseSettings::new(namespace, config.election_id.clone(), identity(), config.election_lease_duration);
        Ok(Self {
            kubeconfig: config.kubeconfig.clone(),
            watch: WatchSettings {
                namespaces: config.watch_namespace.clone(),
                extra_secrets: match &config.default_certificate {
                    Some(DefaultCertificate::Secret(s)) => vec![(s.namespace.clone(), s.name.clone())],
                    _ => Vec::new(),
                },
                settle: Settle::default(),
            },
            publish,
            lease,
            options: config.compile_options(),
        })
    }
}

/// `POD_NAME` (else `HOSTNAME`, else `lintel`) and a per-process suffix, so two processes
/// never share a holder identity.
fn identity() -> String {
    static STARTS: AtomicU64 = AtomicU64::new(0);
    let base = ["POD_NAME", "HOSTNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "lintel".to_owned());
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or_default();
    let n = STARTS.fetch_add(1, Ordering::Relaxed);
    format!("{base}_{:x}{n:x}", nanos ^ std::process::id())
}

/// A client from `--kubeconfig`, else in-cluster config, else `KUBECONFIG`/`~/.kube/config`.
pub async fn connect(kubeconfig: Option<&Path>) -> Result<Client, ClusterError> {
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)
                .map_err(|e| ClusterError::Kubeconfig { path: path.to_owned(), reason: e.to_string() })?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(|e| ClusterError::Kubeconfig { path: path.to_owned(), reason: e.to_string() })?
        }
        None => kube::Config::infer().await.map_err(|e| ClusterError::Infer(e.to_string()))?,
    };
    Ok(Client::try_from(config)?)
}

/// Starts the API source, the control loop fed by it, leader election, status and Events.
pub async fn start(
    settings: ClusterSettings,
    control: Control,
    tasks: &mut JoinSet<()>,
    shutdown: &CancellationToken,
) -> Result<(), ClusterError> {
    let client = connect(settings.kubeconfig.as_deref()).await?;
    tracing::info!(
        namespaces = ?settings.watch.namespaces,
        lease = %format!("{}/{}", settings.lease.namespace, settings.lease.name),
        identity = %settings.lease.identity,
        "using the Kubernetes API"
    );
    // The first picture is published only once every kind is listed: until then the
    // control loop waits and /readyz stays 503.
    let (pictures_tx, pictures) = watch::channel(Arc::new(Loaded::default()));
    let live = control.live.clone();
    let metrics = control.metrics.clone();
    let source =
        crate::source::kube::watch(client.clone(), settings.watch, pictures_tx, metrics.clone(), shutdown.clone());
    tasks.spawn(source);
    tasks.spawn(control.run(pictures.clone(), shutdown.clone()));

    let (leader_tx, leader) = watch::channel(false);
    let (addresses_tx, addresses) = watch::channel(None);
    let identity = settings.lease.identity.clone();
    tasks.spawn(lease::run(client.clone(), settings.lease, leader_tx, metrics.clone(), shutdown.clone()));
    tasks.spawn(address::run(
        client.clone(),
        settings.publish,
        leader.clone(),
        addresses_tx,
        metrics.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(status::run(
        client.clone(),
        leader.clone(),
        pictures.clone(),
        live.clone(),
        addresses,
        settings.options,
        metrics.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(events::run(client, identity, leader, pictures, live, metrics, shutdown.clone()));
    Ok(())
}
