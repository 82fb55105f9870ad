//! Annotations under the prefixes Lintel reads. Each one Lintel understands is parsed into
//! the Ingress's typed [`Policy`]; every other one under those prefixes is listed, so a user
//! migrating from ingress-nginx or the AWS Load Balancer Controller sees what did not carry
//! over. A value that does not parse is a diagnostic, never a silent default.

use std::collections::BTreeMap;

use crate::diagnostic::{Diagnostic, Subject};
use crate::table::Policy;

/// Prefixes whose annotations Lintel reads (its own, ingress-nginx's, ALB's).
const PREFIXES: [&str; 3] = ["lintel.dev/", "nginx.ingress.kubernetes.io/", "alb.ingress.kubernetes.io/"];

/// Annotations that Lintel understands. Each feature adds its keys here and parses them in
/// [`policy`].
const KNOWN: &[&str] = &[
    super::ssl::SSL_REDIRECT,
    super::ssl::NGINX_SSL_REDIRECT,
    super::ssl::FORCE_SSL_REDIRECT,
    super::ssl::NGINX_FORCE_SSL_REDIRECT,
    super::ssl::ALB_SSL_REDIRECT,
    super::ssl::HSTS,
];

/// Parses the annotations of one Ingress into its policy.
pub(super) fn policy(
    annotations: Option<&BTreeMap<String, String>>,
    subject: &Subject,
    diagnostics: &mut Vec<Diagnostic>,
) -> Policy {
    let mut policy = Policy::default();
    if let Some(annotations) = annotations {
        super::ssl::parse(annotations, &mut policy, subject, diagnostics);
    }
    for key in annotations.into_iter().flat_map(|a| a.keys()) {
        if PREFIXES.iter().any(|p| key.starts_with(p)) && !KNOWN.contains(&key.as_str()) {
            let msg = format!("annotation {key} is not supported by Lintel and has no effect");
            diagnostics.push(Diagnostic::warning(subject.clone(), format!("metadata.annotations[{key:?}]"), msg));
        }
    }
    policy
}
