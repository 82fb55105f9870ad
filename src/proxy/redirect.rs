//! HTTPS on the plain listener: the `308` redirect for hosts that have TLS (or whose Ingress
//! forces it), with the ACME HTTP-01 exception, and HSTS on HTTPS answers. Decisions only
//! read the table and the route's policy; nothing is parsed here.

use http::{HeaderValue, Response, StatusCode, Uri, header};

use super::body::ProxyBody;
use crate::table::{Route, RouteTable, SslRedirect};

/// cert-manager's HTTP-01 challenges must be answered over plain HTTP.
const ACME_CHALLENGE: &str = "/.well-known/acme-challenge/";

/// The redirect to send instead of forwarding a plain-HTTP request, if any. `host` is the
/// normalised host (lower case, no port).
pub(super) fn to_https(
    table: &RouteTable,
    host: &str,
    route: Option<&Route>,
    uri: &Uri,
    https_port: u16,
) -> Option<Response<ProxyBody>> {
    let path = uri.path();
    if path.starts_with(ACME_CHALLENGE) || !path.starts_with('/') {
        return None;
    }
    let wanted = match route.map(|r| r.policy.ssl_redirect).unwrap_or_default() {
        SslRedirect::Never => false,
        SslRedirect::Always => true,
        SslRedirect::IfTls => table.tls().has_tls(host),
    };
    if !wanted {
        return None;
    }
    let path_and_query = uri.path_and_query().map_or(path, |pq| pq.as_str());
    let location = if https_port == 443 {
        format!("https://{host}{path_and_query}")
    } else {
        format!("https://{host}:{https_port}{path_and_query}")
    };
    let location = HeaderValue::try_from(location).ok()?;
    let mut response = Response::new(ProxyBody::text("308 Permanent Redirect: use HTTPS\n"));
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, location);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    Some(response)
}

/// Adds the route's `Strict-Transport-Security` to an HTTPS answer (replacing the upstream's).
pub(super) fn add_hsts<B>(response: &mut Response<B>, hsts: Option<&HeaderValue>) {
    if let Some(value) = hsts {
        response.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, value.clone());
    }
}
