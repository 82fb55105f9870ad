//! Named sets of upstream defaults (`lintel.dev/profile`), each value proven against the
//! application it is named after. An explicit annotation always beats a profile value.
//! The README ("The Airflow profile") explains every number here.

use std::sync::Arc;
use std::time::Duration;

use http::uri::PathAndQuery;

use super::policy::{ExpectJson, HealthCheck, UpstreamPolicy};

/// The Airflow major versions whose web servers we know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AirflowVersion {
    /// Airflow 2 webserver: gunicorn, `GET /health`.
    V2,
    /// Airflow 3 api-server: uvicorn, `GET /api/v2/monitor/health`.
    V3,
}

/// Above gunicorn's 120 s worker timeout, so Airflow 2's own 500 (at ~120.7 s) arrives before
/// our 504; uvicorn (Airflow 3) has no per-request timeout, so this is its only bound.
pub const AIRFLOW_RESPONSE_TIMEOUT: Duration = Duration::from_secs(180);
/// Long enough for a task log followed live to stay quiet for minutes.
pub const AIRFLOW_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Below gunicorn's 2 s keep-alive (gevent workers), so we never reuse a connection gunicorn
/// is closing. Airflow 3's uvicorn keeps connections far longer; 1 s only costs a connect.
pub const AIRFLOW_KEEPALIVE_IDLE: Duration = Duration::from_secs(1);
/// Probe every 5 s with a 5 s timeout: a hung web server leaves after 3 failures (~15 s), and
/// a busy one (requests queued in gunicorn's backlog) gets 5 s to answer.
pub const AIRFLOW_CHECK_INTERVAL: Duration = Duration::from_secs(5);
pub const AIRFLOW_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// `lintel.dev/profile: airflow`. With no version known there is no health check (the two
/// versions' paths differ and a wrong one would fail every probe); the timeouts still apply.
pub fn airflow(version: Option<AirflowVersion>) -> UpstreamPolicy {
    let health_check = version.map(|v| {
        let path = match v {
            AirflowVersion::V2 => PathAndQuery::from_static("/health"),
            AirflowVersion::V3 => PathAndQuery::from_static("/api/v2/monitor/health"),
        };
        Arc::new(HealthCheck {
            interval: AIRFLOW_CHECK_INTERVAL,
            timeout: AIRFLOW_CHECK_TIMEOUT,
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            // Both health endpoints answer 200 even with the scheduler down; the state is
            // in the body.
            expect_json: Some(ExpectJson {
                path: vec!["metadatabase".to_owned(), "status".to_owned()],
                value: "healthy".to_owned(),
            }),
            ..HealthCheck::new(path)
        })
    });
    UpstreamPolicy {
        connect_timeout: None,
        response_timeout: Some(AIRFLOW_RESPONSE_TIMEOUT),
        idle_timeout: Some(AIRFLOW_IDLE_TIMEOUT),
        keepalive_idle: Some(AIRFLOW_KEEPALIVE_IDLE),
        balance: super::policy::Balance::PowerOfTwoChoices,
        health_check,
    }
}
