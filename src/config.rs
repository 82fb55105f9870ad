//! Settings: a YAML file (`--config`) with the same names as the flags; flags win. Unknown
//! keys and bad values are errors naming the key's path with a hint, so a typo never silently
//! falls back to a default. `config/lintel.yaml` lists every key with its default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::compile::{CompileOptions, SecretRef};
use crate::proxy::ProxySettings;
use crate::proxy::access_log::AccessLogSettings;
use crate::proxy::client_addr::{ClientAddressSettings, ProxyProtocol};
use crate::proxy::listener::ListenerSettings;
use crate::table::allow::CidrList;
use crate::tls::listener::TlsListenerSettings;
use crate::upstream::UpstreamSettings;
use crate::upstream::passive::PassiveSettings;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    pub http_addr: SocketAddr,
    pub https_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// Serve from this directory of manifests instead of the Kubernetes API.
    pub manifests: Option<PathBuf>,
    pub ingress_class: String,
    pub controller_name: String,
    pub timeouts: Timeouts,
    /// Where the client address comes from.
    pub client_address: ClientAddress,
    /// The allowlist of Ingresses that set none (absent: open).
    pub default_allow_source_cidrs: Option<CidrList>,
    pub limits: Limits,
    /// Runtime worker threads (absent: one per core).
    pub worker_threads: Option<usize>,
    /// Which server reads plain HTTP/1.1 `GET` and `HEAD` requests (see [`Http1Server`]).
    pub http1_server: Http1Server,
    /// How long in-flight requests get to finish at shutdown.
    #[serde(with = "humantime_serde")]
    pub grace_period: Duration,
    /// After SIGTERM, how long listeners keep accepting while `/readyz` already says 503, so
    /// load balancers and Endpoints stop sending before the sockets close.
    #[serde(with = "humantime_serde")]
    pub shutdown_delay: Duration,
    pub log_format: LogFormat,
    /// `RUST_LOG`-style filter (`info`, `lintel=debug,info`); `RUST_LOG` wins when set.
    pub log_level: String,
    pub access_log: AccessLogSettings,
    /// Kubernetes API source and status: see [`crate::cluster`].
    /// A kubeconfig file; default: in-cluster config, else `KUBECONFIG` or `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// Namespaces whose Ingresses, Services, EndpointSlices and Secrets are watched; empty: all.
    pub watch_namespace: Vec<String>,
    /// `NAMESPACE/NAME` of the Service whose address is written to Ingress status.
    pub publish_service: Option<String>,
    /// IPs or hostnames written to Ingress status (instead of `publish-service`).
    pub publish_address: Vec<String>,
    /// Namespace of the leader-election Lease; default: env `POD_NAMESPACE`, else `lintel`.
    pub election_namespace: Option<String>,
    /// Name of the leader-election Lease.
    pub election_id: String,
    /// How long a leader's Lease lasts without renewal before another replica takes over.
    #[serde(with = "humantime_serde")]
    pub election_lease_duration: Duration,
    /// Served to TLS clients whose name has no certificate of its own. Without it, a
    /// self-signed certificate is made at start.
    pub default_certificate: Option<DefaultCertificate>,
    /// The port written in redirects to HTTPS; 443 is left out of the URL.
    pub https_redirect_port: u16,
}

/// Who serves the common HTTP/1.1 case: Lintel's own server (keep-alive `GET`/`HEAD` without
/// a body, handing everything else on the connection to hyper), or hyper for everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Http1Server {
    #[default]
    Lintel,
    Hyper,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `default-certificate`: `NAMESPACE/NAME` of a `kubernetes.io/tls` Secret, or PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DefaultCertificate {
    Secret(SecretRef),
    Files(CertFiles),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CertFiles {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub key_file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Timeouts {
    /// TCP connect to an upstream endpoint.
    #[serde(with = "humantime_serde")]
    pub connect: Duration,
    /// From the request sent to the upstream's response header. Above gunicorn's 120 s
    /// worker timeout, so Airflow's own answer arrives before ours.
    #[serde(with = "humantime_serde")]
    pub response_header: Duration,
    /// Idle pooled connections to upstreams are closed after this.
    #[serde(with = "humantime_serde")]
    pub upstream_keepalive_idle: Duration,
    /// Longest gap between two body chunks, in either direction.
    #[serde(with = "humantime_serde")]
    pub idle: Duration,
    /// Longest silence on an upgraded (WebSocket) connection.
    #[serde(with = "humantime_serde")]
    pub upgrade_idle: Duration,
    /// A client must send its whole request header within this.
    #[serde(with = "humantime_serde")]
    pub client_header: Duration,
    /// A client must complete the TLS handshake within this.
    #[serde(with = "humantime_serde")]
    pub tls_handshake: Duration,
}

/// How the client address is learned: the TCP peer, a PROXY protocol header, or trusted
/// `X-Forwarded-For` hops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClientAddress {
    /// Every connection must start with a PROXY protocol v1/v2 header (an NLB, HAProxy).
    pub proxy_protocol: bool,
    /// A PROXY header is optional, and believed only from these peers.
    pub proxy_protocol_from: Option<CidrList>,
    /// Time a connection gets to send its PROXY header.
    #[serde(with = "humantime_serde")]
    pub proxy_protocol_timeout: Duration,
    /// Peers whose `X-Forwarded-For` is believed (right-most untrusted hop).
    pub trusted_proxies: Option<CidrList>,
}

impl Default for ClientAddress {
    fn default() -> Self {
        Self {
            proxy_protocol: false,
            proxy_protocol_from: None,
            proxy_protocol_timeout: Duration::from_secs(5),
            trusted_proxies: None,
        }
    }
}

/// Limits that keep one client from starving the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Limits {
    /// Largest request header block, in bytes (431 past it).
    pub max_header_bytes: usize,
    /// Most header fields in one request (431 past it).
    pub max_headers: usize,
    /// Most open client connections per listener; more wait in the kernel's backlog.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_header_bytes: 32 * 1024, max_headers: 100, max_connections: 10_000 }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            https_addr: SocketAddr::from(([0, 0, 0, 0], 8443)),
            admin_addr: SocketAddr::from(([0, 0, 0, 0], 10254)),
            manifests: None,
            ingress_class: "lintel".to_owned(),
            controller_name: "lintel.dev/ingress-controller".to_owned(),
            timeouts: Timeouts::default(),
            client_address: ClientAddress::default(),
            default_allow_source_cidrs: None,
            limits: Limits::default(),
            worker_threads: None,
            http1_server: Http1Server::Lintel,
            grace_period: Duration::from_secs(30),
            shutdown_delay: Duration::from_secs(5),
            log_format: LogFormat::Text,
            log_level: "info".to_owned(),
            access_log: AccessLogSettings::default(),
            kubeconfig: None,
            watch_namespace: Vec::new(),
            publish_service: None,
            publish_address: Vec::new(),
            election_namespace: None,
            election_id: "lintel-leader".to_owned(),
            election_lease_duration: Duration::from_secs(15),
            default_certificate: None,
            https_redirect_port: 443,
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            response_header: Duration::from_secs(180),
            upstream_keepalive_idle: Duration::from_secs(15),
            idle: Duration::from_secs(60),
            upgrade_idle: Duration::from_secs(3600),
            client_header: Duration::from_secs(20),
            tls_handshake: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {problem}")]
    Invalid { path: String, problem: crate::ops::config_report::Problem },
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: shown.clone(), source })?;
        Self::from_yaml(&text).map_err(|problem| ConfigError::Invalid { path: shown, problem })
    }

    /// Parses a configuration file's text; an empty file is the defaults.
    pub fn from_yaml(text: &str) -> Result<Self, crate::ops::config_report::Problem> {
        crate::ops::config_report::parse(text)
    }

    pub fn compile_options(&self) -> CompileOptions {
        CompileOptions {
            ingress_class: self.ingress_class.clone(),
            controller_name: self.controller_name.clone(),
            default_allow: self.default_allow_source_cidrs.clone(),
            default_certificate: match &self.default_certificate {
                Some(DefaultCertificate::Secret(secret)) => Some(secret.clone()),
                _ => None,
            },
        }
    }

    pub fn upstream_settings(&self) -> UpstreamSettings {
        UpstreamSettings {
            connect_timeout: self.timeouts.connect,
            keepalive_idle: self.timeouts.upstream_keepalive_idle,
            response_timeout: self.timeouts.response_header,
            idle_timeout: self.timeouts.idle,
            upgrade_idle_timeout: self.timeouts.upgrade_idle,
            passive: PassiveSettings::default(),
        }
    }

    pub fn proxy_settings(&self) -> ProxySettings {
        ProxySettings {
            trusted_proxies: self.client_address.trusted_proxies.clone(),
            https_redirect_port: self.https_redirect_port,
        }
    }

    pub fn listener_settings(&self) -> ListenerSettings {
        let client = &self.client_address;
        let proxy_protocol = match (&client.proxy_protocol_from, client.proxy_protocol) {
            (Some(from), _) => ProxyProtocol::From(from.clone()),
            (None, true) => ProxyProtocol::Required,
            (None, false) => ProxyProtocol::Off,
        };
        ListenerSettings {
            header_timeout: self.timeouts.client_header,
            grace_period: self.grace_period,
            client_address: ClientAddressSettings {
                proxy_protocol,
                proxy_protocol_timeout: client.proxy_protocol_timeout,
                trusted_proxies: client.trusted_proxies.clone(),
            },
            max_header_bytes: self.limits.max_header_bytes,
            max_headers: self.limits.max_headers,
            max_connections: self.limits.max_connections,
            own_http1: self.http1_server == Http1Server::Lintel,
        }
    }

    pub fn tls_listener_settings(&self) -> TlsListenerSettings {
        TlsListenerSettings { http: self.listener_settings(), handshake_timeout: self.timeouts.tls_handshake }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_uses_flag_names_and_durations() {
        let config: Config =
            serde_norway::from_str("http-addr: 127.0.0.1:9000\ntimeouts:\n  connect: 2s\n  response-header: 3m\n")
                .unwrap();
        assert_eq!(config.http_addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(config.timeouts.connect, Duration::from_secs(2));
        assert_eq!(config.timeouts.response_header, Duration::from_secs(180));
        assert_eq!(config.admin_addr, Config::default().admin_addr);
    }

    #[test]
    fn default_certificate_is_a_secret_or_files() {
        let config: Config = serde_norway::from_str("default-certificate: ingress/wildcard\n").unwrap();
        let secret = SecretRef { namespace: "ingress".to_owned(), name: "wildcard".to_owned() };
        assert_eq!(config.default_certificate, Some(DefaultCertificate::Secret(secret.clone())));
        assert_eq!(config.compile_options().default_certificate, Some(secret));
        let config: Config =
            serde_norway::from_str("default-certificate:\n  cert-file: /c.pem\n  key-file: /k.pem\n").unwrap();
        let files = CertFiles { cert_file: "/c.pem".into(), key_file: "/k.pem".into() };
        assert_eq!(config.default_certificate, Some(DefaultCertificate::Files(files)));
        assert_eq!(config.compile_options().default_certificate, None);
        assert!(serde_norway::from_str::<Config>("default-certificate: nons\n").is_err());
    }

    #[test]
    fn cidr_lists_read_as_a_string_or_a_list() {
        let config: Config = serde_norway::from_str(
            "client-address:\n  trusted-proxies: 10.0.0.0/8, fd00::/8\ndefault-allow-source-cidrs: [192.168.0.0/16, 10.1.1.1]\n",
        )
        .unwrap();
        assert_eq!(config.client_address.trusted_proxies.unwrap().nets().len(), 2);
        assert_eq!(config.default_allow_source_cidrs.unwrap().nets().len(), 2);
        let err = serde_norway::from_str::<Config>("client-address: {trusted-proxies: [10.0.0.0/99]}").unwrap_err();
        assert!(err.to_string().contains("10.0.0.0/99"), "{err}");
    }

    #[test]
    fn kubernetes_keys_use_the_flag_names() {
        let yaml = "watch-namespace: [apps, web]\npublish-address: [192.0.2.10]\nelection-id: edge\n\
                    election-lease-duration: 20s\nkubeconfig: /etc/kube.yaml\n";
        let config: Config = serde_norway::from_str(yaml).unwrap();
        assert_eq!(config.watch_namespace, ["apps", "web"]);
        assert_eq!(config.publish_address, ["192.0.2.10"]);
        assert_eq!(config.election_id, "edge");
        assert_eq!(config.election_lease_duration, Duration::from_secs(20));
        assert_eq!(config.kubeconfig, Some(PathBuf::from("/etc/kube.yaml")));
        assert_eq!(config.election_namespace, None);
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = Config::from_yaml("http-adr: 127.0.0.1:9000\n").unwrap_err().to_string();
        assert!(err.contains("unknown field `http-adr`"), "{err}");
        assert!(err.contains("did you mean `http-addr`?"), "{err}");
    }

    #[test]
    fn errors_name_the_nested_key_and_hint_at_the_format() {
        let err = Config::from_yaml("timeouts:\n  connect: five\n").unwrap_err().to_string();
        assert!(err.starts_with("timeouts.connect: "), "{err}");
        assert!(err.contains("durations look like"), "{err}");
        let err = Config::from_yaml("timeouts:\n  conect: 5s\n").unwrap_err().to_string();
        assert!(err.starts_with("timeouts"), "{err}");
        assert!(err.contains("did you mean `connect`?"), "{err}");
        let err = Config::from_yaml("access-log:\n  sample: 2\n").unwrap_err().to_string();
        assert!(err.starts_with("access-log.sample: "), "{err}");
        let err = Config::from_yaml("admin-addr: localhost\n").unwrap_err().to_string();
        assert!(err.contains("0.0.0.0:10254"), "{err}");
        let err = Config::from_yaml("log-format: xml\n").unwrap_err().to_string();
        assert!(err.starts_with("log-format: "), "{err}");
    }

    #[test]
    fn an_empty_file_is_the_defaults() {
        assert_eq!(Config::from_yaml("").unwrap(), Config::default());
        assert_eq!(Config::from_yaml("# nothing\n").unwrap(), Config::default());
    }

    #[test]
    fn the_example_file_is_complete_and_equals_the_defaults() {
        let text = include_str!("../config/lintel.yaml");
        assert_eq!(Config::from_yaml(text).unwrap(), Config::default());
        let written: serde_norway::Value = serde_norway::from_str(text).unwrap();
        let defaults = serde_norway::to_value(Config::default()).unwrap();
        let missing = crate::ops::config_report::missing_keys(&defaults, &written);
        assert!(missing.is_empty(), "config/lintel.yaml lacks {missing:?}");
    }
}
