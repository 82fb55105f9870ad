//! Settings: a YAML file (`--config`) with the same names as the flags; flags win. Unknown
//! keys are errors, so a typo never silently falls back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::compile::CompileOptions;
use crate::proxy::ProxySettings;
use crate::proxy::listener::ListenerSettings;
use crate::upstream::UpstreamSettings;

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
    /// How long in-flight requests get to finish at shutdown.
    #[serde(with = "humantime_serde")]
    pub grace_period: Duration,
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
    /// A client must send its whole request header within this.
    #[serde(with = "humantime_serde")]
    pub client_header: Duration,
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
            grace_period: Duration::from_secs(30),
            kubeconfig: None,
            watch_namespace: Vec::new(),
            publish_service: None,
            publish_address: Vec::new(),
            election_namespace: None,
            election_id: "lintel-leader".to_owned(),
            election_lease_duration: Duration::from_secs(15),
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            response_header: Duration::from_secs(180),
            upstream_keepalive_idle: Duration::from_secs(15),
            client_header: Duration::from_secs(20),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse { path: String, source: serde_norway::Error },
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: shown.clone(), source })?;
        serde_norway::from_str(&text).map_err(|source| ConfigError::Parse { path: shown, source })
    }

    pub fn compile_options(&self) -> CompileOptions {
        CompileOptions { ingress_class: self.ingress_class.clone(), controller_name: self.controller_name.clone() }
    }

    pub fn upstream_settings(&self) -> UpstreamSettings {
        UpstreamSettings {
            connect_timeout: self.timeouts.connect,
            keepalive_idle: self.timeouts.upstream_keepalive_idle,
        }
    }

    pub fn proxy_settings(&self) -> ProxySettings {
        ProxySettings { response_timeout: self.timeouts.response_header }
    }

    pub fn listener_settings(&self) -> ListenerSettings {
        ListenerSettings { header_timeout: self.timeouts.client_header, grace_period: self.grace_period }
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
        let err = serde_norway::from_str::<Config>("http-adr: 127.0.0.1:9000\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `http-adr`"), "{err}");
    }
}
