//! Active health checks: one task per endpoint that has a check configured, probing with an
//! HTTP GET and flipping the endpoint's health only after N consecutive opposite results
//! (pingora style). The task holds only the shared health flag, never the endpoint, and is
//! aborted when the endpoint is dropped or its check changes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::uri::Authority;
use http::{Request, Uri, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::task::AbortHandle;
use tokio::time::MissedTickBehavior;

use super::policy::HealthCheck;

/// Largest probe body read when judging JSON.
const MAX_BODY: usize = 64 * 1024;

/// The active-check verdict of one endpoint, read lock-free by the data path.
#[derive(Debug)]
pub struct ActiveHealth(AtomicBool);

impl Default for ActiveHealth {
    /// New endpoints start healthy: Kubernetes already reports them ready.
    fn default() -> Self {
        Self(AtomicBool::new(true))
    }
}

impl ActiveHealth {
    pub fn is_healthy(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub fn set(&self, healthy: bool) {
        self.0.store(healthy, Ordering::Relaxed);
    }
}

/// Consecutive results against the current state; the state flips at the threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracker {
    healthy: bool,
    streak: u32,
}

impl Tracker {
    pub fn new(healthy: bool) -> Self {
        Self { healthy, streak: 0 }
    }

    /// Records one probe result; returns the new state when it flips.
    pub fn observe(&mut self, passed: bool, healthy_threshold: u32, unhealthy_threshold: u32) -> Option<bool> {
        if passed == self.healthy {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if passed { healthy_threshold } else { unhealthy_threshold };
        if self.streak < needed.max(1) {
            return None;
        }
        self.healthy = passed;
        self.streak = 0;
        Some(passed)
    }
}

/// Why a probe failed, for the log line of a flip.
#[derive(Debug, thiserror::Error)]
pub enum ProbeFailure {
    #[error("no answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("request failed: {0}")]
    Request(#[from] hyper_util::client::legacy::Error),
    #[error("status {0} is not a success code")]
    Status(u16),
    #[error("body could not be read: {0}")]
    Body(String),
    #[error("JSON body does not hold {0}")]
    Json(String),
}

/// A running checker; aborting it stops the probes.
#[derive(Debug)]
pub struct Checker {
    pub check: Arc<HealthCheck>,
    task: AbortHandle,
}

impl Checker {
    /// Starts probing `authority`; `None` outside a Tokio runtime (unit tests of `bind`).
    pub fn start(authority: &Authority, check: Arc<HealthCheck>, health: Arc<ActiveHealth>) -> Option<Self> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let uri = match probe_uri(authority, &check) {
            Ok(uri) => uri,
            Err(err) => {
                tracing::warn!(endpoint = %authority, %err, "health-check address is not valid; no checks");
                return None;
            }
        };
        let task = runtime.spawn(run(uri, check.clone(), health)).abort_handle();
        Some(Self { check, task })
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Where to probe: the endpoint's host, the check's port (else the traffic port), the path.
fn probe_uri(authority: &Authority, check: &HealthCheck) -> Result<Uri, http::uri::InvalidUri> {
    let port = check.port.or_else(|| authority.port_u16()).unwrap_or(80);
    Uri::try_from(format!("http://{}:{port}{}", authority.host(), check.path))
}

async fn run(uri: Uri, check: Arc<HealthCheck>, health: Arc<ActiveHealth>) {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(check.timeout));
    // A new connection per probe: the check covers accepting connections too.
    let client = Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_max_idle_per_host(0)
        .build::<_, Empty<Bytes>>(connector);
    let mut tracker = Tracker::new(health.is_healthy());
    let mut ticks = tokio::time::interval(check.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let result = probe(&client, &uri, &check).await;
        let flipped = tracker.observe(result.is_ok(), check.healthy_threshold, check.unhealthy_threshold);
        match (flipped, result) {
            (Some(true), _) => {
                health.set(true);
                tracing::info!(target = %uri, "endpoint passed its health check; back in rotation");
            }
            (Some(false), Err(why)) => {
                health.set(false);
                tracing::warn!(target = %uri, reason = %why, "endpoint failed its health check; out of rotation");
            }
            (Some(false), Ok(())) => health.set(false),
            (None, Err(why)) => tracing::debug!(target = %uri, reason = %why, "health probe failed"),
            (None, Ok(())) => {}
        }
    }
}

/// One probe: a GET within the timeout, a success status, and the JSON value when asked.
pub async fn probe(
    client: &Client<HttpConnector, Empty<Bytes>>,
    uri: &Uri,
    check: &HealthCheck,
) -> Result<(), ProbeFailure> {
    let request = Request::get(uri.clone())
        .header(header::USER_AGENT, "lintel-health-check")
        .body(Empty::new())
        .map_err(|err| ProbeFailure::Body(err.to_string()))?;
    let attempt = async {
        let response = client.request(request).await?;
        let status = response.status().as_u16();
        if !check.success_codes.contains(status) {
            return Err(ProbeFailure::Status(status));
        }
        let Some(expect) = &check.expect_json else { return Ok(()) };
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|err| ProbeFailure::Body(err.to_string()))?
            .to_bytes();
        if expect.matches(&body) {
            Ok(())
        } else {
            Err(ProbeFailure::Json(format!("{}={}", expect.path.join("."), expect.value)))
        }
    };
    tokio::time::timeout(check.timeout, attempt).await.unwrap_or(Err(ProbeFailure::Timeout(check.timeout)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flips_only_after_consecutive_opposite_results() {
        let mut t = Tracker::new(true);
        assert_eq!(t.observe(false, 2, 3), None);
        assert_eq!(t.observe(false, 2, 3), None);
        assert_eq!(t.observe(true, 2, 3), None, "a pass resets the failing streak");
        assert_eq!(t.observe(false, 2, 3), None);
        assert_eq!(t.observe(false, 2, 3), None);
        assert_eq!(t.observe(false, 2, 3), Some(false));
        assert_eq!(t.observe(false, 2, 3), None, "already unhealthy");
        assert_eq!(t.observe(true, 2, 3), None);
        assert_eq!(t.observe(false, 2, 3), None, "a failure resets the passing streak");
        assert_eq!(t.observe(true, 2, 3), None);
        assert_eq!(t.observe(true, 2, 3), Some(true));
    }

    #[test]
    fn probes_go_to_the_endpoint_host_on_the_check_port() {
        let check = HealthCheck::new(http::uri::PathAndQuery::from_static("/health?full=1"));
        let v4: Authority = "10.0.0.1:8080".parse().unwrap();
        assert_eq!(probe_uri(&v4, &check).unwrap(), "http://10.0.0.1:8080/health?full=1");
        let v6: Authority = "[fd00::1]:8080".parse().unwrap();
        let on_port = HealthCheck { port: Some(9090), ..check };
        assert_eq!(probe_uri(&v6, &on_port).unwrap(), "http://[fd00::1]:9090/health?full=1");
    }

    #[test]
    fn a_threshold_of_one_flips_at_once() {
        let mut t = Tracker::new(true);
        assert_eq!(t.observe(false, 1, 1), Some(false));
        assert_eq!(t.observe(true, 1, 1), Some(true));
    }
}
