//! One access-log line per request (target `lintel::access`), written through `tracing` so
//! `--log-format json` makes it JSON. Built only for the requests the sample keeps; the
//! path is logged without its query string (queries carry tokens).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Version, header};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::conn::ConnInfo;
use super::forward::ClientSide;
use super::observe::Matched;
use crate::metrics::Outcome;
use crate::upstream::AddedValue;

/// `access-log` in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct AccessLogSettings {
    /// One line per request when true.
    pub enabled: bool,
    /// Share of requests logged, from 0 to 1 (0.01 logs one request in a hundred).
    pub sample: Sample,
}

impl Default for AccessLogSettings {
    fn default() -> Self {
        Self { enabled: true, sample: Sample::ALL }
    }
}

impl AccessLogSettings {
    /// Whether to log the request about to start.
    pub fn sampled(&self) -> bool {
        self.enabled && (self.sample.0 >= Sample::SCALE || fastrand::u32(0..Sample::SCALE) < self.sample.0)
    }
}

/// A share from 0 to 1, kept in millionths so configurations compare exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sample(u32);

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("sample must be a number from 0 to 1 (got {0})")]
pub struct SampleError(f64);

impl Sample {
    const SCALE: u32 = 1_000_000;
    pub const ALL: Self = Self(Self::SCALE);

    pub fn new(share: f64) -> Result<Self, SampleError> {
        if !(0.0..=1.0).contains(&share) {
            return Err(SampleError(share));
        }
        // In range and finite here, so the cast cannot truncate meaningfully.
        Ok(Self((share * f64::from(Self::SCALE)).round() as u32))
    }

    pub fn share(self) -> f64 {
        f64::from(self.0) / f64::from(Self::SCALE)
    }
}

impl std::str::FromStr for Sample {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let share: f64 = s.parse().map_err(|_| format!("{s:?} is not a number from 0 to 1"))?;
        Self::new(share).map_err(|e| e.to_string())
    }
}

impl fmt::Display for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.share())
    }
}

impl Serialize for Sample {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.share())
    }
}

impl<'de> Deserialize<'de> for Sample {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let share = f64::deserialize(deserializer)?;
        Self::new(share).map_err(serde::de::Error::custom)
    }
}

/// What is known at the start of a logged request.
#[derive(Debug)]
pub struct Entry {
    client: IpAddr,
    peer: SocketAddr,
    host: String,
    method: Method,
    path: String,
    protocol: Version,
    request_id: AddedValue,
    tls_version: &'static str,
    sni: Option<Arc<str>>,
}

impl Entry {
    pub fn new<B>(req: &Request<B>, client: ClientSide, conn: &ConnInfo, request_id: &AddedValue) -> Self {
        let host = match req.uri().authority() {
            Some(authority) => authority.as_str().to_owned(),
            None => req
                .headers()
                .get(header::HOST)
                .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
                .unwrap_or_default(),
        };
        Self {
            client: client.address,
            peer: conn.peer,
            host,
            method: req.method().clone(),
            path: req.uri().path().to_owned(),
            protocol: req.version(),
            request_id: request_id.clone(),
            tls_version: conn.tls.as_ref().map_or("-", |t| t.version),
            sni: conn.tls.as_ref().and_then(|t| t.sni.clone()),
        }
    }

    /// Writes the line.
    pub fn emit(&self, matched: &Matched, outcome: &Outcome) {
        let client = matched.client.unwrap_or(self.client);
        let peer = if self.peer.ip().to_canonical() == client { "-".to_owned() } else { self.peer.to_string() };
        let route = matched.route.as_deref();
        let upstream = matched.upstream.as_ref().map_or("-", |a| a.as_str());
        tracing::info!(
            target: "lintel::access",
            client = %client,
            peer = %peer,
            host = %self.host,
            method = %self.method,
            path = %self.path,
            protocol = ?self.protocol,
            status = outcome.status,
            bytes_in = outcome.bytes_in,
            bytes_out = outcome.bytes_out,
            duration_ms = millis(outcome.elapsed),
            upstream = %upstream,
            upstream_ms = matched.upstream_time.map_or(-1.0, millis),
            namespace = route.map_or("-", |r| r.namespace()),
            ingress = route.map_or("-", |r| r.ingress()),
            service = route.map_or("-", |r| r.service()),
            request_id = %String::from_utf8_lossy(self.request_id.as_bytes()),
            tls_version = self.tls_version,
            sni = self.sni.as_deref().unwrap_or("-"),
            "access"
        );
    }
}

/// Milliseconds, to the microsecond.
fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_takes_shares_from_zero_to_one() {
        assert_eq!("0.25".parse::<Sample>().unwrap().share(), 0.25);
        assert!("1.5".parse::<Sample>().is_err());
        assert!("-0.1".parse::<Sample>().is_err());
        assert!("x".parse::<Sample>().is_err());
        let off = AccessLogSettings { enabled: true, sample: Sample::new(0.0).unwrap() };
        assert!(!(0..100).any(|_| off.sampled()));
        assert!(AccessLogSettings::default().sampled());
        assert!(!AccessLogSettings { enabled: false, ..AccessLogSettings::default() }.sampled());
    }
}
