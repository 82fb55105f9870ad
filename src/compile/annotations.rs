//! Annotations under the prefixes Lintel reads. Each one Lintel understands is parsed into
//! typed policy; every other one under those prefixes is listed, so a user migrating from
//! ingress-nginx or the AWS Load Balancer Controller sees what did not carry over.

use std::collections::BTreeMap;

use crate::diagnostic::{Diagnostic, Subject};

/// Prefixes whose annotations Lintel reads (its own, ingress-nginx's, ALB's).
const PREFIXES: [&str; 3] = ["lintel.dev/", "nginx.ingress.kubernetes.io/", "alb.ingress.kubernetes.io/"];

/// Annotations that Lintel understands.
const KNOWN: &[&str] = &[];

pub(super) fn check(
    annotations: Option<&BTreeMap<String, String>>,
    subject: &Subject,
    diagnostics: &mut Vec<Diagnostic>,
) {
    for key in annotations.into_iter().flat_map(|a| a.keys()) {
        if PREFIXES.iter().any(|p| key.starts_with(p)) && !KNOWN.contains(&key.as_str()) {
            let msg = format!("annotation {key} is not supported by Lintel and has no effect");
            diagnostics.push(Diagnostic::warning(subject.clone(), format!("metadata.annotations[{key:?}]"), msg));
        }
    }
}
