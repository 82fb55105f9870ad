//! What one Ingress asks of its upstreams, as typed values parsed in `compile`: timeouts,
//! load balancing, an active health check. Pure data: no I/O, no clock; the data path only
//! reads it, and fills what is unset from the configured defaults.

use std::sync::Arc;
use std::time::Duration;

use http::uri::PathAndQuery;

/// Per-Ingress upstream behaviour. `None` means "the configured default".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamPolicy {
    /// TCP connect to an endpoint.
    pub connect_timeout: Option<Duration>,
    /// From the request sent to the upstream's response header (time to first byte).
    pub response_timeout: Option<Duration>,
    /// Longest gap between two body chunks, either direction, and on upgraded connections.
    pub idle_timeout: Option<Duration>,
    /// How long an idle pooled connection to an endpoint is kept.
    pub keepalive_idle: Option<Duration>,
    pub balance: Balance,
    pub health_check: Option<Arc<HealthCheck>>,
}

/// How a request picks an endpoint of its backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Balance {
    /// Two endpoints drawn at random; the one with fewer outstanding requests wins.
    #[default]
    PowerOfTwoChoices,
    /// Each endpoint in turn.
    RoundRobin,
}

/// An active HTTP health check, run against each endpoint of a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub path: PathAndQuery,
    /// Probe this port instead of the traffic port.
    pub port: Option<u16>,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive passing probes that make an unhealthy endpoint healthy again.
    pub healthy_threshold: u32,
    /// Consecutive failing probes that make a healthy endpoint unhealthy.
    pub unhealthy_threshold: u32,
    pub success_codes: SuccessCodes,
    /// A value the JSON body must hold, for health endpoints that always answer 200.
    pub expect_json: Option<ExpectJson>,
}

impl HealthCheck {
    /// Defaults for what an annotation leaves unset.
    pub const INTERVAL: Duration = Duration::from_secs(10);
    pub const TIMEOUT: Duration = Duration::from_secs(5);
    pub const HEALTHY_THRESHOLD: u32 = 2;
    pub const UNHEALTHY_THRESHOLD: u32 = 3;

    pub fn new(path: PathAndQuery) -> Self {
        Self {
            path,
            port: None,
            interval: Self::INTERVAL,
            timeout: Self::TIMEOUT,
            healthy_threshold: Self::HEALTHY_THRESHOLD,
            unhealthy_threshold: Self::UNHEALTHY_THRESHOLD,
            success_codes: SuccessCodes::default(),
            expect_json: None,
        }
    }
}

/// Inclusive ranges of status codes that count as a passing probe. Default: 200-399, as a
/// Kubernetes `httpGet` probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuccessCodes(pub Vec<(u16, u16)>);

impl Default for SuccessCodes {
    fn default() -> Self {
        Self(vec![(200, 399)])
    }
}

impl SuccessCodes {
    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| (lo..=hi).contains(&status))
    }
}

/// `metadatabase.status=healthy`: the value at a dotted path of a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectJson {
    pub path: Vec<String>,
    pub value: String,
}

impl ExpectJson {
    /// True when `body` is JSON and holds `value` at `path` (a string equal to it, or a
    /// number or boolean that prints as it).
    pub fn matches(&self, body: &[u8]) -> bool {
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else { return false };
        let mut at = &json;
        for key in &self.path {
            match at.get(key.as_str()) {
                Some(next) => at = next,
                None => return false,
            }
        }
        match at {
            serde_json::Value::String(s) => *s == self.value,
            serde_json::Value::Number(n) => n.to_string() == self.value,
            serde_json::Value::Bool(b) => b.to_string() == self.value,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expect(path: &str, value: &str) -> ExpectJson {
        ExpectJson { path: path.split('.').map(str::to_owned).collect(), value: value.to_owned() }
    }

    #[test]
    fn expect_json_reads_a_dotted_path() {
        let airflow = br#"{"metadatabase":{"status":"healthy"},"scheduler":{"status":"unhealthy"}}"#;
        assert!(expect("metadatabase.status", "healthy").matches(airflow));
        assert!(!expect("scheduler.status", "healthy").matches(airflow));
        assert!(!expect("metadatabase.missing", "healthy").matches(airflow));
        assert!(!expect("metadatabase.status", "healthy").matches(b"<html>not json</html>"));
        assert!(expect("a.n", "3").matches(br#"{"a":{"n":3}}"#));
        assert!(expect("ok", "true").matches(br#"{"ok":true}"#));
    }

    #[test]
    fn success_codes_are_inclusive_ranges() {
        let codes = SuccessCodes(vec![(200, 200), (300, 302)]);
        assert!(codes.contains(200) && codes.contains(302));
        assert!(!codes.contains(201) && !codes.contains(303));
        assert!(SuccessCodes::default().contains(399) && !SuccessCodes::default().contains(400));
    }
}
