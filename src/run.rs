//! Wiring: binds the listeners, loads the first table, and starts the source, the control
//! loop, the proxy and the admin server. `main` and the end-to-end tests both start here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState};
use crate::config::{Config, DefaultCertificate};
use crate::control::Control;
use crate::live::{Live, SharedLive};
use crate::metrics::Metrics;
use crate::ops::lifecycle::Lifecycle;
use crate::proxy::{Observe, Proxy, listener};
use crate::source::manifests::{self, ManifestDir};
use crate::tls::{self, TlsError, default_cert, resolver::CertResolver};
use crate::upstream::Upstreams;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind { what: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error("manifests directory {0}: not a readable directory")]
    Manifests(PathBuf),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("startup task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// How often the manifests directory is rescanned even without a change event.
const RESCAN: Duration = Duration::from_secs(5);
/// Change events closer together than this become one rebuild.
const DEBOUNCE: Duration = Duration::from_millis(50);

/// A running proxy.
pub struct Running {
    pub http_addr: SocketAddr,
    pub https_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub live: SharedLive,
    pub metrics: Arc<Metrics>,
    lifecycle: Lifecycle,
    tasks: JoinSet<()>,
}

impl Running {
    /// Starts shutting down: readiness turns false at once; after the shutdown delay the
    /// listeners close and in-flight requests get the grace period.
    pub fn shutdown(&self) {
        self.lifecycle.draining.cancel();
    }

    /// Waits until everything has stopped.
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|source| StartError::Bind { what, addr, source })
}

pub async fn start(config: &Config) -> Result<Running, StartError> {
    start_at(config, Instant::now()).await
}

/// [`start`], with the time the process began, so the time to ready is measured from it.
pub async fn start_at(config: &Config, begun: Instant) -> Result<Running, StartError> {
    let http = bind("http", config.http_addr).await?;
    let https = bind("https", config.https_addr).await?;
    let admin = bind("admin", config.admin_addr).await?;
    let http_addr =
        http.local_addr().map_err(|source| StartError::Bind { what: "http", addr: config.http_addr, source })?;
    let https_addr =
        https.local_addr().map_err(|source| StartError::Bind { what: "https", addr: config.https_addr, source })?;
    let admin_addr =
        admin.local_addr().map_err(|source| StartError::Bind { what: "admin", addr: config.admin_addr, source })?;

    let lifecycle = Lifecycle::default();
    let shutdown = lifecycle.stop.clone();
    let metrics = Arc::new(Metrics::new());
    let live: SharedLive = Arc::new(ArcSwap::from_pointee(Live::default()));
    let ready = Arc::new(AtomicBool::new(false));
    let control = Control {
        live: live.clone(),
        upstreams: Arc::new(Upstreams::new(config.upstream_settings()).with_metrics(metrics.clone())),
        options: config.compile_options(),
        ready: ready.clone(),
        metrics: metrics.clone(),
        keys: Arc::default(),
    };
    let mut tasks = JoinSet::new();
    tasks.spawn(lifecycle.clone().stop_after_delay(config.shutdown_delay));

    match config.manifests.clone() {
        Some(dir) => start_manifests(dir, control, &mut tasks, &shutdown).await?,
        None => {
            let settings = crate::cluster::ClusterSettings::from_config(config)?;
            crate::cluster::start(settings, control, &mut tasks, &shutdown).await?;
        }
    }

    let observe = Observe { metrics: metrics.clone(), access_log: config.access_log };
    let proxy = Arc::new(Proxy::new(live.clone(), config.proxy_settings()).observed(observe));
    let resolver = Arc::new(CertResolver::new(live.clone(), builtin_default_cert(config)?));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls::server_config(resolver)?));
    let tls_settings = config.tls_listener_settings();
    tasks.spawn(tls::listener::serve(https, acceptor, proxy.clone(), tls_settings, shutdown.clone()));
    tasks.spawn(listener::serve(http, proxy, "http", config.listener_settings(), shutdown.clone()));
    let admin_state =
        AdminState { live: live.clone(), ready, draining: lifecycle.draining.clone(), metrics: metrics.clone() };
    tasks.spawn(admin::serve(admin, admin_state, shutdown.clone()));
    let took = begun.elapsed();
    metrics.set_startup(took);
    tracing::info!(%http_addr, %https_addr, %admin_addr, startup_ms = took.as_secs_f64() * 1e3, "lintel is ready and serving");
    Ok(Running { http_addr, https_addr, admin_addr, live, metrics, lifecycle, tasks })
}

/// The manifests-directory source: the first table is loaded before serving starts.
async fn start_manifests(
    dir: PathBuf,
    control: Control,
    tasks: &mut JoinSet<()>,
    shutdown: &CancellationToken,
) -> Result<(), StartError> {
    if !dir.is_dir() {
        return Err(StartError::Manifests(dir));
    }
    let mut manifest_dir = ManifestDir::new(dir);
    let (manifest_dir, first) = tokio::task::spawn_blocking(move || {
        let first = manifest_dir.scan().unwrap_or_default();
        (manifest_dir, first)
    })
    .await?;
    let first = Arc::new(first);
    control.apply(&first);
    let (tx, rx) = watch::channel(first);
    let metrics = control.metrics.clone();
    let synced = move || metrics.sync_succeeded();
    tasks.spawn(manifests::watch(manifest_dir, tx, DEBOUNCE, RESCAN, synced, shutdown.clone()));
    tasks.spawn(control.run(rx, shutdown.clone()));
    Ok(())
}

/// The certificate served when the table has none for a name: the configured PEM files, else
/// a self-signed one made now.
fn builtin_default_cert(config: &Config) -> Result<Arc<rustls::sign::CertifiedKey>, TlsError> {
    if let Some(DefaultCertificate::Files(files)) = &config.default_certificate {
        let cert = default_cert::from_files(&files.cert_file, &files.key_file)?;
        tracing::info!(cert = %files.cert_file.display(), "default TLS certificate loaded");
        return Ok(cert);
    }
    let cert = default_cert::self_signed()?;
    match &config.default_certificate {
        Some(DefaultCertificate::Secret(secret)) => tracing::info!(
            %secret,
            "default TLS certificate comes from the Secret; a self-signed one is used while it is missing or unusable"
        ),
        _ => tracing::info!(
            name = default_cert::SELF_SIGNED_NAME,
            "no default TLS certificate configured; generated a self-signed one"
        ),
    }
    Ok(cert)
}
