//! Annotations under the prefixes Lintel reads. Each one Lintel understands is parsed into
//! the Ingress's typed [`Policy`]; every other one under those prefixes is listed, so a user
//! migrating from ingress-nginx or the AWS Load Balancer Controller sees what did not carry
//! over. A value that does not parse is a diagnostic, never a silent default.

mod upstream;

use std::collections::BTreeMap;

use crate::diagnostic::{Diagnostic, Subject};
use crate::table::Policy;

/// Prefixes whose annotations Lintel reads (its own, ingress-nginx's, ALB's).
const PREFIXES: [&str; 3] = ["lintel.dev/", "nginx.ingress.kubernetes.io/", "alb.ingress.kubernetes.io/"];

/// Annotations that Lintel understands. Each feature adds its keys here and parses them in
/// [`policy`].
const KNOWN: &[&str] = &[];

/// Parses the annotations of one Ingress into its policy.
pub(super) fn policy(
    annotations: Option<&BTreeMap<String, String>>,
    subject: &Subject,
    diagnostics: &mut Vec<Diagnostic>,
) -> Policy {
    let mut policy = Policy::default();
    if let Some(annotations) = annotations {
        policy.upstream = upstream::policy(annotations, subject, diagnostics);
    }
    for key in annotations.into_iter().flat_map(|a| a.keys()) {
        let known = KNOWN.contains(&key.as_str()) || upstream::KNOWN.contains(&key.as_str());
        if PREFIXES.iter().any(|p| key.starts_with(p)) && !known {
            let msg = format!("annotation {key} is not supported by Lintel and has no effect");
            diagnostics.push(Diagnostic::warning(subject.clone(), format!("metadata.annotations[{key:?}]"), msg));
        }
    }
    policy
}
