//! The `lintel` command line: `run` serves, `check` compiles and reports, `explain` says where
//! one request would go, `config --print` shows the effective settings and their sources.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use lintel::compile::{Compiled, SecretRef, compile};
use lintel::config::{Config, DefaultCertificate, Http1Server, LogFormat};
use lintel::explain::Question;
use lintel::proxy::access_log::Sample;
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
    /// Say which Ingress rule a request would match in the manifests, and why the others lost.
    Explain(ExplainArgs),
    /// Show the effective configuration (file + flags) and where each value came from.
    Config(Box<ConfigArgs>),
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
    /// Admin listener (/healthz, /readyz, /routes, /metrics, /explain). Default 0.0.0.0:10254.
    #[arg(long, value_name = "ADDR")]
    admin_addr: Option<SocketAddr>,
    /// Log format. Default text.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// Log filter, `RUST_LOG` style (`info`, `lintel=debug`); `RUST_LOG` wins. Default info.
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
    /// One access-log line per request: true or false. Default true.
    #[arg(long, value_name = "BOOL")]
    access_log: Option<bool>,
    /// Share of requests in the access log, 0 to 1. Default 1.
    #[arg(long, value_name = "SHARE")]
    access_log_sample: Option<Sample>,
    /// After SIGTERM, keep accepting this long while /readyz says 503. Default 5s.
    #[arg(long, value_name = "DURATION")]
    shutdown_delay: Option<humantime::Duration>,
    /// Then give in-flight requests and upgraded connections this long. Default 30s.
    #[arg(long, value_name = "DURATION")]
    grace_period: Option<humantime::Duration>,
    /// Port written in HTTP→HTTPS redirects (the client-facing HTTPS port, e.g. a NodePort).
    /// Default 443, which is left out of the URL.
    #[arg(long, value_name = "PORT")]
    https_redirect_port: Option<u16>,
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
    /// Who serves plain HTTP/1.1 GET and HEAD: Lintel's own server, or hyper for everything.
    #[arg(long, value_enum)]
    http1_server: Option<Http1Server>,
    #[command(flatten)]
    kube: KubeArgs,
}

/// Kubernetes mode (no `--manifests`); each overrides the same key of `--config`.
#[derive(Clone, clap::Args)]
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
    fn apply(&self, config: &mut Config) {
        let Self { kubeconfig, watch_namespace, publish_service, publish_address, election_namespace, election_id } =
            self.clone();
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

#[derive(clap::Args)]
struct ExplainArgs {
    #[command(flatten)]
    common: Common,
    /// The request's Host (a port is ignored).
    #[arg(long)]
    host: String,
    /// The request's path.
    #[arg(long, default_value = "/")]
    path: String,
    /// The client address, for allowlists.
    #[arg(long, value_name = "IP")]
    client: Option<IpAddr>,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(clap::Args)]
struct ConfigArgs {
    /// Print the effective configuration as YAML, each value marked default, file or flag.
    #[arg(long)]
    print: bool,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Text,
    Json,
}

impl Common {
    /// The `--config` file's settings (or the defaults), and the file as written.
    fn load(&self) -> anyhow::Result<(Config, Option<serde_norway::Value>)> {
        let Some(path) = &self.config else { return Ok((Config::default(), None)) };
        let config = Config::from_file(path)?;
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        Ok((config, serde_norway::from_str(&text).ok()))
    }

    fn apply(&self, config: &mut Config) {
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
    }

    fn config(&self) -> anyhow::Result<Config> {
        let (mut config, _) = self.load()?;
        self.apply(&mut config);
        Ok(config)
    }
}

impl RunArgs {
    fn apply(&self, config: &mut Config) {
        self.common.apply(config);
        if let Some(addr) = self.http_addr {
            config.http_addr = addr;
        }
        if let Some(addr) = self.https_addr {
            config.https_addr = addr;
        }
        if let Some(addr) = self.admin_addr {
            config.admin_addr = addr;
        }
        if let Some(port) = self.https_redirect_port {
            config.https_redirect_port = port;
        }
        if let Some(format) = self.log_format {
            config.log_format = format;
        }
        if let Some(level) = &self.log_level {
            config.log_level = level.clone();
        }
        if let Some(enabled) = self.access_log {
            config.access_log.enabled = enabled;
        }
        if let Some(sample) = self.access_log_sample {
            config.access_log.sample = sample;
        }
        if let Some(delay) = self.shutdown_delay {
            config.shutdown_delay = delay.into();
        }
        if let Some(grace) = self.grace_period {
            config.grace_period = grace.into();
        }
        if self.proxy_protocol {
            config.client_address.proxy_protocol = true;
        }
        if let Some(from) = &self.proxy_protocol_from {
            config.client_address.proxy_protocol_from = Some(from.clone());
        }
        if let Some(trusted) = &self.trusted_proxies {
            config.client_address.trusted_proxies = Some(trusted.clone());
        }
        if let Some(allow) = &self.default_allow_source_cidrs {
            config.default_allow_source_cidrs = Some(allow.clone());
        }
        if let Some(n) = self.max_connections {
            config.limits.max_connections = n;
        }
        if let Some(n) = self.worker_threads {
            config.worker_threads = Some(n);
        }
        if let Some(server) = self.http1_server {
            config.http1_server = server;
        }
        self.kube.apply(config);
    }

    fn config(&self) -> anyhow::Result<Config> {
        let (mut config, _) = self.common.load()?;
        self.apply(&mut config);
        Ok(config)
    }
}

fn main() -> ExitCode {
    let begun = Instant::now();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(&args, begun),
        Command::Check(args) => check(args),
        Command::Explain(args) => explain(args),
        Command::Config(args) => config(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("lintel: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(config: &Config) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => tracing_subscriber::EnvFilter::try_new(&env).context("RUST_LOG")?,
        _ => tracing_subscriber::EnvFilter::try_new(&config.log_level)
            .with_context(|| format!("log-level {:?} (hint: try info or lintel=debug,info)", config.log_level))?,
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

fn run(args: &RunArgs, begun: Instant) -> anyhow::Result<ExitCode> {
    let config = args.config()?;
    init_logging(&config)?;
    // One worker: tokio's single-threaded scheduler, on this thread. It does the same work
    // with fewer atomic instructions (no run queue shared for stealing, no idle workers to
    // wake), each tens of cycles however few instructions they count.
    let mut runtime = match config.worker_threads {
        Some(0 | 1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(n);
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = runtime.enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(async {
        // Listen for signals before anything can report ready.
        let mut signals = Signals::new()?;
        let running = lintel::run::start_at(&config, begun).await?;
        let signal = signals.recv().await;
        tracing::info!(signal, "shutting down");
        running.shutdown();
        tokio::select! {
            () = running.wait() => tracing::info!("stopped"),
            signal = signals.recv() => tracing::warn!(signal, "second signal: exiting without waiting"),
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// SIGTERM and SIGINT.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Scans and compiles the manifests directory of `config`.
fn compile_manifests(config: &Config) -> anyhow::Result<Compiled> {
    let dir = config.manifests.clone().context("this command needs --manifests DIR")?;
    if !dir.is_dir() {
        anyhow::bail!("{}: not a readable directory", dir.display());
    }
    let loaded = ManifestDir::new(dir).scan().unwrap_or_default();
    let mut compiled = compile(&loaded.snapshot, &config.compile_options());
    compiled.diagnostics.extend(loaded.diagnostics);
    compiled.diagnostics.sort();
    Ok(compiled)
}

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let compiled = compile_manifests(&args.common.config()?)?;
    let report = RoutesReport::new(&compiled);
    match args.output {
        Output::Text => print!("{}", report.to_text()),
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(if report.has_errors() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn explain(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let compiled = compile_manifests(&args.common.config()?)?;
    let question = Question { host: args.host, path: args.path, client: args.client };
    let report = lintel::explain::explain(&compiled, None, question);
    match args.output {
        Output::Text => print!("{}", report.to_text()),
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(ExitCode::SUCCESS)
}

fn config(args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    if !args.print {
        anyhow::bail!("nothing to do (hint: lintel config --print [--config FILE] [flags])");
    }
    let (before, file) = args.run.common.load()?;
    let mut effective = before.clone();
    args.run.apply(&mut effective);
    print!("{}", lintel::ops::config_report::render(&effective, &before, file.as_ref())?);
    Ok(ExitCode::SUCCESS)
}
