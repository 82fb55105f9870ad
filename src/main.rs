//! The `lintel` command line: `run` serves, `check` compiles and reports.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use lintel::compile::{SecretRef, compile};
use lintel::config::{Config, DefaultCertificate};
use lintel::report::RoutesReport;
use lintel::source::manifests::ManifestDir;
use lintel::table::allow::CidrList;

#[derive(Parser)]
#[command(name = "lintel", version, about = "A small, fast Kubernetes ingress reverse proxy")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve traffic.
    Run(Box<RunArgs>),
    /// Compile the manifests without serving: print the routing table and every diagnostic.
    /// Exits 1 when any object was rejected.
    Check(CheckArgs),
}

/// Settings shared by every command; each overrides the same key of `--config`.
#[derive(clap::Args)]
struct Common {
    /// YAML configuration file; flags win over it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Serve from this directory of YAML/JSON manifests instead of the Kubernetes API.
    #[arg(long, value_name = "DIR")]
    manifests: Option<PathBuf>,
    /// IngressClass name (for the legacy kubernetes.io/ingress.class annotation). Default `lintel`.
    #[arg(long, value_name = "NAME")]
    ingress_class: Option<String>,
    /// `spec.controller` of the IngressClasses served. Default `lintel.dev/ingress-controller`.
    #[arg(long, value_name = "NAME")]
    controller_name: Option<String>,
    /// `kubernetes.io/tls` Secret served to TLS clients whose name has no certificate of its
    /// own (and to clients without SNI). Default: a self-signed certificate made at start.
    #[arg(long, value_name = "NAMESPACE/SECRET")]
    default_certificate: Option<SecretRef>,
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// Plain HTTP listener. Default 0.0.0.0:8080.
    #[arg(long, value_name = "ADDR")]
    http_addr: Option<SocketAddr>,
    /// HTTPS listener. Default 0.0.0.0:8443.
    #[arg(long, value_name = "ADDR")]
    https_addr: Option<SocketAddr>,
    /// Admin listener (/healthz, /readyz, /routes). Default 0.0.0.0:10254.
    #[arg(long, value_name = "ADDR")]
    admin_addr: Option<SocketAddr>,
    /// Port written in HTTP→HTTPS redirects (the client-facing HTTPS port, e.g. a NodePort).
    /// Default 443, which is left out of the URL.
    #[arg(long, value_name = "PORT")]
    https_redirect_port: Option<u16>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Require a PROXY protocol (v1/v2) header on every connection (behind an NLB or HAProxy).
    #[arg(long)]
    proxy_protocol: bool,
    /// Accept an optional PROXY protocol header, believed only from these peers.
    #[arg(long, value_name = "CIDR,...")]
    proxy_protocol_from: Option<CidrList>,
    /// Believe `X-Forwarded-For` only from these peers (right-most untrusted hop wins).
    #[arg(long, value_name = "CIDR,...")]
    trusted_proxies: Option<CidrList>,
    /// Allowlist for Ingresses that set none.
    #[arg(long, value_name = "CIDR,...")]
    default_allow_source_cidrs: Option<CidrList>,
    /// Most open client connections per listener.
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Runtime worker threads. Default: one per core.
    #[arg(long, value_name = "N")]
    worker_threads: Option<usize>,
    #[command(flatten)]
    kube: KubeArgs,
}

/// Kubernetes mode (no `--manifests`); each overrides the same key of `--config`.
#[derive(clap::Args)]
struct KubeArgs {
    /// Kubeconfig file. Default: in-cluster config, else $KUBECONFIG, else ~/.kube/config.
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Watch only this namespace (repeat or comma-separate for several). Default: all.
    #[arg(long, value_name = "NAMESPACE", value_delimiter = ',')]
    watch_namespace: Vec<String>,
    /// Write this Service's address (load balancer, external IPs, or node IPs for a NodePort)
    /// to the status of served Ingresses.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    publish_service: Option<String>,
    /// Write these IPs or hostnames to the status of served Ingresses (repeat or comma-separate).
    #[arg(long, value_name = "IP_OR_HOST", value_delimiter = ',')]
    publish_address: Vec<String>,
    /// Namespace of the leader-election Lease. Default: $POD_NAMESPACE, else `lintel`.
    #[arg(long, value_name = "NAMESPACE")]
    election_namespace: Option<String>,
    /// Name of the leader-election Lease. Default `lintel-leader`.
    #[arg(long, value_name = "NAME")]
    election_id: Option<String>,
}

impl KubeArgs {
    fn apply(self, config: &mut Config) {
        let Self { kubeconfig, watch_namespace, publish_service, publish_address, election_namespace, election_id } =
            self;
        if kubeconfig.is_some() {
            config.kubeconfig = kubeconfig;
        }
        if !watch_namespace.is_empty() {
            config.watch_namespace = watch_namespace;
        }
        if publish_service.is_some() {
            config.publish_service = publish_service;
        }
        if !publish_address.is_empty() {
            config.publish_address = publish_address;
        }
        if election_namespace.is_some() {
            config.election_namespace = election_namespace;
        }
        if let Some(id) = election_id {
            config.election_id = id;
        }
    }
}

#[derive(clap::Args)]
struct CheckArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Text,
    Json,
}

impl Common {
    fn config(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(dir) = &self.manifests {
            config.manifests = Some(dir.clone());
        }
        if let Some(class) = &self.ingress_class {
            config.ingress_class = class.clone();
        }
        if let Some(name) = &self.controller_name {
            config.controller_name = name.clone();
        }
        if let Some(secret) = &self.default_certificate {
            config.default_certificate = Some(DefaultCertificate::Secret(secret.clone()));
        }
        Ok(config)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(*args),
        Command::Check(args) => check(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("lintel: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    init_logging(args.log_format);
    let mut config = args.common.config()?;
    if let Some(addr) = args.http_addr {
        config.http_addr = addr;
    }
    if let Some(addr) = args.https_addr {
        config.https_addr = addr;
    }
    if let Some(port) = args.https_redirect_port {
        config.https_redirect_port = port;
    }
    if let Some(addr) = args.admin_addr {
        config.admin_addr = addr;
    }
    if args.proxy_protocol {
        config.client_address.proxy_protocol = true;
    }
    if let Some(from) = args.proxy_protocol_from {
        config.client_address.proxy_protocol_from = Some(from);
    }
    if let Some(trusted) = args.trusted_proxies {
        config.client_address.trusted_proxies = Some(trusted);
    }
    if let Some(allow) = args.default_allow_source_cidrs {
        config.default_allow_source_cidrs = Some(allow);
    }
    if let Some(n) = args.max_connections {
        config.limits.max_connections = n;
    }
    if let Some(n) = args.worker_threads {
        config.worker_threads = Some(n);
    }
    args.kube.apply(&mut config);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(async {
        let running = lintel::run::start(&config).await?;
        wait_for_signal().await;
        tracing::info!("shutting down");
        running.shutdown();
        running.wait().await;
        Ok(ExitCode::SUCCESS)
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let config = args.common.config()?;
    let dir = config.manifests.clone().context("check needs --manifests DIR")?;
    if !dir.is_dir() {
        anyhow::bail!("{}: not a readable directory", dir.display());
    }
    let loaded = ManifestDir::new(dir).scan().unwrap_or_default();
    let mut compiled = compile(&loaded.snapshot, &config.compile_options());
    compiled.diagnostics.extend(loaded.diagnostics);
    compiled.diagnostics.sort();
    let report = RoutesReport::new(&compiled);
    match args.output {
        Output::Text => print!("{}", report.to_text()),
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(if report.has_errors() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
