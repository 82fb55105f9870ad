//! Which Ingresses are ours: by `spec.ingressClassName` naming an IngressClass whose
//! controller is ours, by our default IngressClass, or by the legacy annotation.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::networking::v1::Ingress;

use super::CompileOptions;
use crate::diagnostic::{Diagnostic, Subject};
use crate::source::Snapshot;

const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// Our Ingresses, oldest first (creationTimestamp, then namespace/name): the order in which
/// conflicts are decided.
pub(super) fn select<'a>(
    snapshot: &'a Snapshot,
    options: &CompileOptions,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<&'a Ingress> {
    let mut controllers: HashMap<&str, &str> = HashMap::new();
    let mut default_is_ours = false;
    for class in &snapshot.ingress_classes {
        let Some(name) = class.metadata.name.as_deref() else { continue };
        let controller = class.spec.as_ref().and_then(|s| s.controller.as_deref()).unwrap_or_default();
        controllers.insert(name, controller);
        let is_default = class
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
            .is_some_and(|v| v == "true");
        default_is_ours |= is_default && controller == options.controller_name;
    }
    let ours: HashSet<&str> =
        controllers.iter().filter(|(_, c)| **c == options.controller_name).map(|(n, _)| *n).collect();

    let mut selected: Vec<&Ingress> = Vec::new();
    for ingress in &snapshot.ingresses {
        let meta = &ingress.metadata;
        let class_name = ingress.spec.as_ref().and_then(|s| s.ingress_class_name.as_deref());
        let legacy = meta.annotations.as_ref().and_then(|a| a.get(LEGACY_CLASS_ANNOTATION));
        let is_ours = match (class_name, legacy) {
            (Some(name), _) => {
                if !controllers.contains_key(name) {
                    let subject = Subject::object(
                        "Ingress",
                        meta.namespace.as_deref().unwrap_or("default"),
                        meta.name.as_deref().unwrap_or_default(),
                    );
                    let msg = format!("IngressClass {name:?} does not exist; this Ingress is not served");
                    diagnostics.push(Diagnostic::warning(subject, "spec.ingressClassName", msg));
                }
                ours.contains(name)
            }
            (None, Some(legacy)) => *legacy == options.ingress_class,
            (None, None) => default_is_ours,
        };
        if is_ours {
            selected.push(ingress);
        }
    }
    selected.sort_by(|a, b| {
        let key = |i: &'a Ingress| {
            let m = &i.metadata;
            (m.creation_timestamp.is_none(), m.creation_timestamp.as_ref(), m.namespace.as_deref(), m.name.as_deref())
        };
        key(a).cmp(&key(b))
    });
    selected
}
