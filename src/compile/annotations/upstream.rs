//! Upstream annotations: timeouts, load balancing, health checks and profiles, read from
//! Lintel's own keys and from the ingress-nginx and ALB keys that mean the same. Precedence:
//! `lintel.dev/` beats nginx/ALB, which beat the profile, which beats the configured default.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::uri::PathAndQuery;

use crate::diagnostic::{Diagnostic, Subject};
use crate::upstream::policy::{Balance, ExpectJson, HealthCheck, SuccessCodes, UpstreamPolicy};
use crate::upstream::profile::{self, AirflowVersion};

const L: &str = "lintel.dev/";
const NGINX: &str = "nginx.ingress.kubernetes.io/";
const ALB: &str = "alb.ingress.kubernetes.io/";

/// Every key this file reads.
pub(super) const KNOWN: &[&str] = &[
    "lintel.dev/health-check-path",
    "lintel.dev/health-check-port",
    "lintel.dev/health-check-interval",
    "lintel.dev/health-check-timeout",
    "lintel.dev/health-check-healthy-threshold",
    "lintel.dev/health-check-unhealthy-threshold",
    "lintel.dev/health-check-success-codes",
    "lintel.dev/health-check-expect-json",
    "lintel.dev/load-balance",
    "lintel.dev/connect-timeout",
    "lintel.dev/response-timeout",
    "lintel.dev/idle-timeout",
    "lintel.dev/upstream-keepalive-timeout",
    "lintel.dev/profile",
    "lintel.dev/airflow-version",
    "nginx.ingress.kubernetes.io/proxy-connect-timeout",
    "nginx.ingress.kubernetes.io/proxy-read-timeout",
    "nginx.ingress.kubernetes.io/proxy-send-timeout",
    "alb.ingress.kubernetes.io/healthcheck-path",
    "alb.ingress.kubernetes.io/healthcheck-port",
    "alb.ingress.kubernetes.io/healthcheck-interval-seconds",
    "alb.ingress.kubernetes.io/healthcheck-timeout-seconds",
    "alb.ingress.kubernetes.io/healthy-threshold-count",
    "alb.ingress.kubernetes.io/unhealthy-threshold-count",
    "alb.ingress.kubernetes.io/success-codes",
    "alb.ingress.kubernetes.io/load-balancer-attributes",
];

/// Reads annotations, turning each value that does not parse into an error diagnostic.
struct Reader<'a> {
    annotations: &'a BTreeMap<String, String>,
    subject: &'a Subject,
    diagnostics: &'a mut Vec<Diagnostic>,
}

impl Reader<'_> {
    fn raw(&self, prefix: &str, name: &str) -> Option<&str> {
        self.annotations.get(&format!("{prefix}{name}")).map(|v| v.trim())
    }

    fn get<T>(&mut self, prefix: &str, name: &str, parse: impl Fn(&str) -> Result<T, String>) -> Option<T> {
        let value = self.raw(prefix, name)?;
        match parse(value) {
            Ok(v) => Some(v),
            Err(why) => {
                self.error(prefix, name, format!("{why}; annotation ignored"));
                None
            }
        }
    }

    fn error(&mut self, prefix: &str, name: &str, message: String) {
        let field = format!("metadata.annotations[\"{prefix}{name}\"]");
        self.diagnostics.push(Diagnostic::error(self.subject.clone(), field, message));
    }

    fn warning(&mut self, prefix: &str, name: &str, message: String) {
        let field = format!("metadata.annotations[\"{prefix}{name}\"]");
        self.diagnostics.push(Diagnostic::warning(self.subject.clone(), field, message));
    }
}

/// Parses the upstream part of one Ingress's policy.
pub(super) fn policy(
    annotations: &BTreeMap<String, String>,
    subject: &Subject,
    diagnostics: &mut Vec<Diagnostic>,
) -> UpstreamPolicy {
    let mut r = Reader { annotations, subject, diagnostics };
    let base = profile(&mut r);

    let nginx_connect = r.get(NGINX, "proxy-connect-timeout", seconds);
    let nginx_read = r.get(NGINX, "proxy-read-timeout", seconds);
    let nginx_send = r.get(NGINX, "proxy-send-timeout", seconds);
    let alb_idle = alb_idle_timeout(&mut r);
    // nginx's read timeout bounds the wait for the header and each read of the body; its
    // send timeout each write of the request body. ALB's idle timeout closes a connection
    // with no data either way, including while waiting for the first byte.
    let other_response = nginx_read.or(alb_idle);
    let other_idle = match (nginx_read, nginx_send) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b).or(alb_idle),
    };

    let connect_timeout = r.get(L, "connect-timeout", duration).or(nginx_connect).or(base.connect_timeout);
    let response_timeout = r.get(L, "response-timeout", duration).or(other_response).or(base.response_timeout);
    let idle_timeout = r.get(L, "idle-timeout", duration).or(other_idle).or(base.idle_timeout);
    let keepalive_idle = r.get(L, "upstream-keepalive-timeout", duration).or(base.keepalive_idle);
    let balance = r.get(L, "load-balance", balance).unwrap_or(base.balance);
    let health_check = health_check(&mut r, base.health_check);
    UpstreamPolicy { connect_timeout, response_timeout, idle_timeout, keepalive_idle, balance, health_check }
}

fn profile(r: &mut Reader<'_>) -> UpstreamPolicy {
    let version = r.get(L, "airflow-version", |v| match v.split('.').next() {
        Some("2") => Ok(AirflowVersion::V2),
        Some("3") => Ok(AirflowVersion::V3),
        _ => Err(format!("airflow-version {v:?} is not 2 or 3")),
    });
    match r.get(L, "profile", |v| {
        if v == "airflow" { Ok(()) } else { Err(format!("unknown profile {v:?} (known: airflow)")) }
    }) {
        Some(()) => {
            if version.is_none() && r.raw(L, "airflow-version").is_none() {
                let msg = "no lintel.dev/airflow-version (\"2\" or \"3\"): the Airflow timeouts apply, but no health \
                           check, as its path differs between versions"
                    .to_owned();
                r.warning(L, "profile", msg);
            }
            profile::airflow(version)
        }
        None => {
            if r.raw(L, "airflow-version").is_some() && r.raw(L, "profile").is_none() {
                r.warning(L, "airflow-version", "has no effect without lintel.dev/profile: airflow".to_owned());
            }
            UpstreamPolicy::default()
        }
    }
}

/// The health check: Lintel's keys, else ALB's, else the profile's. Only a path (from any of
/// them) turns checks on; the other keys alone have no effect and say so.
fn health_check(r: &mut Reader<'_>, base: Option<Arc<HealthCheck>>) -> Option<Arc<HealthCheck>> {
    let path = r.get(L, "health-check-path", check_path).or_else(|| r.get(ALB, "healthcheck-path", check_path));
    let port = r.get(L, "health-check-port", port).or_else(|| r.get(ALB, "healthcheck-port", port));
    let interval =
        r.get(L, "health-check-interval", duration).or_else(|| r.get(ALB, "healthcheck-interval-seconds", seconds));
    let timeout =
        r.get(L, "health-check-timeout", duration).or_else(|| r.get(ALB, "healthcheck-timeout-seconds", seconds));
    let healthy = r
        .get(L, "health-check-healthy-threshold", threshold)
        .or_else(|| r.get(ALB, "healthy-threshold-count", threshold));
    let unhealthy = r
        .get(L, "health-check-unhealthy-threshold", threshold)
        .or_else(|| r.get(ALB, "unhealthy-threshold-count", threshold));
    let codes =
        r.get(L, "health-check-success-codes", success_codes).or_else(|| r.get(ALB, "success-codes", success_codes));
    let expect = r.get(L, "health-check-expect-json", expect_json);

    let mut check = match (path, base) {
        (Some(path), Some(base)) => HealthCheck { path, ..(*base).clone() },
        (Some(path), None) => HealthCheck::new(path),
        (None, Some(base)) => (*base).clone(),
        (None, None) => {
            let set: Vec<String> = KNOWN
                .iter()
                .filter(|k| (k.contains("health") || k.ends_with("success-codes")) && r.annotations.contains_key(**k))
                .map(|k| (*k).to_owned())
                .collect();
            for key in set {
                let msg = "has no effect without a health-check path (lintel.dev/health-check-path)".to_owned();
                r.diagnostics.push(Diagnostic::warning(
                    r.subject.clone(),
                    format!("metadata.annotations[{key:?}]"),
                    msg,
                ));
            }
            return None;
        }
    };
    if let Some(port) = port {
        check.port = port;
    }
    check.interval = interval.unwrap_or(check.interval);
    check.timeout = timeout.unwrap_or(check.timeout);
    check.healthy_threshold = healthy.unwrap_or(check.healthy_threshold);
    check.unhealthy_threshold = unhealthy.unwrap_or(check.unhealthy_threshold);
    check.success_codes = codes.unwrap_or(check.success_codes);
    check.expect_json = expect.or(check.expect_json);
    Some(Arc::new(check))
}

/// `idle_timeout.timeout_seconds` from ALB's `key=value,key=value` attributes; the other
/// attributes are listed as having no effect.
fn alb_idle_timeout(r: &mut Reader<'_>) -> Option<Duration> {
    let value = r.raw(ALB, "load-balancer-attributes")?.to_owned();
    let mut idle = None;
    for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, v)) = pair.split_once('=') else {
            r.error(ALB, "load-balancer-attributes", format!("attribute {pair:?} is not key=value; ignored"));
            continue;
        };
        match key.trim() {
            "idle_timeout.timeout_seconds" => match seconds(v.trim()) {
                Ok(d) => idle = Some(d),
                Err(why) => {
                    r.error(ALB, "load-balancer-attributes", format!("idle_timeout.timeout_seconds: {why}; ignored"))
                }
            },
            other => r.warning(ALB, "load-balancer-attributes", format!("attribute {other} has no effect in Lintel")),
        }
    }
    idle
}

/// A duration with a unit: `5s`, `2m`, `1m30s`, `500ms`. Never zero.
pub(crate) fn duration(v: &str) -> Result<Duration, String> {
    if v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("duration {v:?} has no unit (write {v}s)"));
    }
    match humantime::parse_duration(v) {
        Ok(d) if d.is_zero() => Err("duration must be above zero".to_owned()),
        Ok(d) => Ok(d),
        Err(err) => Err(format!("{v:?} is not a duration like 5s or 2m ({err})")),
    }
}

/// Whole seconds, as nginx and ALB write them: `60`. Never zero.
fn seconds(v: &str) -> Result<Duration, String> {
    match v.parse::<u64>() {
        Ok(0) => Err("seconds must be above zero".to_owned()),
        Ok(n) => Ok(Duration::from_secs(n)),
        Err(_) => Err(format!("{v:?} is not a whole number of seconds")),
    }
}

fn threshold(v: &str) -> Result<u32, String> {
    match v.parse::<u32>() {
        Ok(n @ 1..=100) => Ok(n),
        _ => Err(format!("threshold {v:?} is not a count from 1 to 100")),
    }
}

fn port(v: &str) -> Result<Option<u16>, String> {
    if v == "traffic-port" {
        return Ok(None);
    }
    match v.parse::<u16>() {
        Ok(n) if n > 0 => Ok(Some(n)),
        _ => Err(format!("port {v:?} is not traffic-port or a number from 1 to 65535")),
    }
}

fn check_path(v: &str) -> Result<PathAndQuery, String> {
    if !v.starts_with('/') {
        return Err(format!("health-check path {v:?} must start with `/`"));
    }
    PathAndQuery::try_from(v).map_err(|err| format!("health-check path {v:?} is not a valid path ({err})"))
}

fn balance(v: &str) -> Result<Balance, String> {
    match v {
        "round-robin" => Ok(Balance::RoundRobin),
        "p2c" | "power-of-two-choices" => Ok(Balance::PowerOfTwoChoices),
        _ => Err(format!("load-balance {v:?} is not round-robin or p2c")),
    }
}

/// `200`, `200,204`, `200-299` (ALB's syntax).
fn success_codes(v: &str) -> Result<SuccessCodes, String> {
    let code = |s: &str| match s.trim().parse::<u16>() {
        Ok(n @ 100..=599) => Ok(n),
        _ => Err(format!("success code {s:?} is not a status from 100 to 599")),
    };
    let mut ranges = Vec::new();
    for part in v.split(',') {
        let range = match part.split_once('-') {
            Some((lo, hi)) => (code(lo)?, code(hi)?),
            None => (code(part)?, code(part)?),
        };
        if range.0 > range.1 {
            return Err(format!("success-code range {part:?} is empty"));
        }
        ranges.push(range);
    }
    Ok(SuccessCodes(ranges))
}

/// `metadatabase.status=healthy`.
fn expect_json(v: &str) -> Result<ExpectJson, String> {
    let (path, value) =
        v.split_once('=').ok_or_else(|| format!("{v:?} is not path=value (metadatabase.status=healthy)"))?;
    let path: Vec<String> = path.trim().split('.').map(str::to_owned).collect();
    if path.iter().any(String::is_empty) {
        return Err(format!("{v:?} has an empty key in its dotted path"));
    }
    Ok(ExpectJson { path, value: value.trim().to_owned() })
}

#[cfg(test)]
mod tests;
