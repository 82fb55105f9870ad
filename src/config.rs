//! Settings: a YAML file (`--config`) with the same names as the flags; flags win. Unknown
//! keys and bad values are errors naming the key's path with a hint, so a typo never silently
//! falls back to a default. `config/lintel.yaml` lists every key with its default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::compile::CompileOptions;
use crate::proxy::ProxySettings;
use crate::proxy::access_log::AccessLogSettings;
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
    /// After SIGTERM, how long listeners keep accepting while `/readyz` already says 503, so
    /// load balancers and Endpoints stop sending before the sockets close.
    #[serde(with = "humantime_serde")]
    pub shutdown_delay: Duration,
    pub log_format: LogFormat,
    /// `RUST_LOG`-style filter (`info`, `lintel=debug,info`); `RUST_LOG` wins when set.
    pub log_level: String,
    pub access_log: AccessLogSettings,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
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
            shutdown_delay: Duration::from_secs(5),
            log_format: LogFormat::Text,
            log_level: "info".to_owned(),
            access_log: AccessLogSettings::default(),
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
