//! The HTTPS annotations: redirects from plain HTTP (Lintel's own keys, and ingress-nginx's and
//! ALB's that mean the same) and HSTS. Parsed into the Ingress's [`Policy`].

use std::collections::BTreeMap;

use http::HeaderValue;

use crate::diagnostic::{Diagnostic, Subject};
use crate::table::{Policy, SslRedirect};

pub(super) const SSL_REDIRECT: &str = "lintel.dev/ssl-redirect";
pub(super) const NGINX_SSL_REDIRECT: &str = "nginx.ingress.kubernetes.io/ssl-redirect";
pub(super) const FORCE_SSL_REDIRECT: &str = "lintel.dev/force-ssl-redirect";
pub(super) const NGINX_FORCE_SSL_REDIRECT: &str = "nginx.ingress.kubernetes.io/force-ssl-redirect";
pub(super) const ALB_SSL_REDIRECT: &str = "alb.ingress.kubernetes.io/ssl-redirect";
pub(super) const HSTS: &str = "lintel.dev/hsts";
/// Every key above, for the list of annotations Lintel understands.
pub(super) const KEYS: [&str; 6] =
    [SSL_REDIRECT, NGINX_SSL_REDIRECT, FORCE_SSL_REDIRECT, NGINX_FORCE_SSL_REDIRECT, ALB_SSL_REDIRECT, HSTS];

/// Reads the HTTPS annotations into `policy`. Lintel's own key wins over ingress-nginx's.
pub(super) fn parse(
    annotations: &BTreeMap<String, String>,
    policy: &mut Policy,
    subject: &Subject,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let mut problem = |key: &str, msg: String| {
        diagnostics.push(Diagnostic::error(subject.clone(), format!("metadata.annotations[{key:?}]"), msg));
    };
    let mut flag = |keys: [&str; 2]| {
        keys.iter().find_map(|key| {
            let value = annotations.get(*key)?;
            match value.trim().to_ascii_lowercase().as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => {
                    problem(key, format!("{value:?} is not \"true\" or \"false\"; ignored"));
                    None
                }
            }
        })
    };
    let redirect = flag([SSL_REDIRECT, NGINX_SSL_REDIRECT]);
    let mut force = flag([FORCE_SSL_REDIRECT, NGINX_FORCE_SSL_REDIRECT]).unwrap_or(false);
    if let Some(value) = annotations.get(ALB_SSL_REDIRECT) {
        match value.trim().parse::<u16>() {
            Ok(port) if port != 0 => {
                force = true;
                if port != 443 {
                    let msg = format!(
                        "redirects go to the port set by --https-redirect-port, not to {port}; \
                         the redirect itself applies"
                    );
                    diagnostics.push(Diagnostic::warning(
                        subject.clone(),
                        format!("metadata.annotations[{ALB_SSL_REDIRECT:?}]"),
                        msg,
                    ));
                }
            }
            _ => diagnostics.push(Diagnostic::error(
                subject.clone(),
                format!("metadata.annotations[{ALB_SSL_REDIRECT:?}]"),
                format!("{value:?} is not a port number; ignored"),
            )),
        }
    }
    policy.ssl_redirect = match (force, redirect) {
        (true, _) => SslRedirect::Always,
        (false, Some(false)) => SslRedirect::Never,
        (false, _) => SslRedirect::IfTls,
    };
    if let Some(value) = annotations.get(HSTS) {
        match parse_hsts(value) {
            Ok(header) => policy.hsts = Some(header),
            Err(why) => diagnostics.push(Diagnostic::error(
                subject.clone(),
                format!("metadata.annotations[{HSTS:?}]"),
                format!("{value:?}: {why}; no HSTS header is sent"),
            )),
        }
    }
}

/// Parses `max-age=N[; includeSubDomains][; preload]` into the header value, written the
/// canonical way.
pub(super) fn parse_hsts(value: &str) -> Result<HeaderValue, String> {
    let mut max_age = None;
    let mut include_subdomains = false;
    let mut preload = false;
    for directive in value.split(';').map(str::trim).filter(|d| !d.is_empty()) {
        let (name, arg) = match directive.split_once('=') {
            Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
            None => (directive, None),
        };
        let seen = match (name.to_ascii_lowercase().as_str(), arg) {
            ("max-age", Some(seconds)) => {
                let seconds = seconds
                    .parse::<u64>()
                    .map_err(|_| format!("max-age {seconds:?} is not a whole number of seconds"))?;
                max_age.replace(seconds).is_some()
            }
            ("includesubdomains", None) => std::mem::replace(&mut include_subdomains, true),
            ("preload", None) => std::mem::replace(&mut preload, true),
            _ => {
                return Err(format!(
                    "unknown directive {directive:?} (expected max-age=N, includeSubDomains, preload)"
                ));
            }
        };
        if seen {
            return Err(format!("directive {name} is given twice"));
        }
    }
    let max_age = max_age.ok_or("max-age=SECONDS is required")?;
    let mut header = format!("max-age={max_age}");
    if include_subdomains {
        header.push_str("; includeSubDomains");
    }
    if preload {
        header.push_str("; preload");
    }
    HeaderValue::try_from(header).map_err(|e| e.to_string())
}
