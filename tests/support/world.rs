//! The state of the in-test API server: objects, a change log for watches, resource
//! versions, compaction (for 410 Gone) and a log of every request. No I/O here.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// A resource collection: `api/v1/services`, `apis/networking.k8s.io/v1/ingresses`.
pub type Resource = String;
/// `(resource, namespace, name)`; namespace is empty for cluster-scoped kinds.
pub type Key = (Resource, String, String);

/// `(apiVersion, kind, plural, namespaced)` of every kind the server knows.
const KINDS: &[(&str, &str, &str, bool)] = &[
    ("v1", "Service", "services", true),
    ("v1", "Secret", "secrets", true),
    ("v1", "Node", "nodes", false),
    ("v1", "Event", "events", true),
    ("discovery.k8s.io/v1", "EndpointSlice", "endpointslices", true),
    ("networking.k8s.io/v1", "Ingress", "ingresses", true),
    ("networking.k8s.io/v1", "IngressClass", "ingressclasses", false),
    ("coordination.k8s.io/v1", "Lease", "leases", true),
    ("events.k8s.io/v1", "Event", "events", true),
];

pub fn resource_of(api_version: &str, kind: &str) -> Resource {
    let (_, _, plural, _) = KINDS.iter().find(|k| k.0 == api_version && k.1 == kind).expect("known kind");
    let prefix = if api_version.contains('/') { format!("apis/{api_version}") } else { format!("api/{api_version}") };
    format!("{prefix}/{plural}")
}

/// `(apiVersion, kind)` of a resource.
pub fn kind_of(resource: &str) -> (String, String) {
    let (prefix, plural) = resource.rsplit_once('/').expect("resource path");
    let api_version = prefix.trim_start_matches("apis/").trim_start_matches("api/");
    let (_, kind, _, _) = KINDS.iter().find(|k| k.0 == api_version && k.2 == plural).expect("known resource");
    (api_version.to_owned(), (*kind).to_owned())
}

#[derive(Debug, Clone)]
pub struct Change {
    pub rv: u64,
    pub resource: Resource,
    pub namespace: String,
    pub kind: &'static str,
    pub object: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub query: String,
    /// The bearer token the request carried.
    pub who: String,
}

#[derive(Debug, Default)]
pub struct World {
    pub rv: u64,
    pub objects: BTreeMap<Key, Value>,
    pub log: Vec<Change>,
    /// Watches from a version below this get 410 Gone.
    pub compacted: u64,
    pub requests: Vec<Logged>,
}

fn meta_str<'a>(object: &'a Value, field: &str) -> &'a str {
    object.get("metadata").and_then(|m| m.get(field)).and_then(Value::as_str).unwrap_or_default()
}

impl World {
    /// Stores a new version of an object (created or replaced) and logs the change.
    pub fn put(&mut self, resource: &str, mut object: Value) -> Value {
        let (api_version, kind) = kind_of(resource);
        let namespace = meta_str(&object, "namespace").to_owned();
        let name = meta_str(&object, "name").to_owned();
        let key = (resource.to_owned(), namespace.clone(), name);
        self.rv += 1;
        let rv = self.rv;
        let previous = self.objects.get(&key).cloned();
        let meta = object["metadata"].as_object_mut().expect("metadata");
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        let keep = |field: &str, fallback: Value| {
            previous.as_ref().and_then(|p| p["metadata"].get(field).cloned()).unwrap_or(fallback)
        };
        let created =
            k8s_openapi::jiff::Timestamp::from_second(1_704_067_200 + i64::try_from(rv).unwrap()).unwrap().to_string();
        meta.insert("uid".into(), keep("uid", json!(format!("uid-{rv}"))));
        meta.insert("creationTimestamp".into(), keep("creationTimestamp", json!(created)));
        // As with `kubectl apply`, writing an object without status keeps the status it had.
        if object.get("status").is_none()
            && let Some(status) = previous.as_ref().and_then(|p| p.get("status"))
        {
            object["status"] = status.clone();
        }
        object["apiVersion"] = json!(api_version);
        object["kind"] = json!(kind);
        let change = if previous.is_some() { "MODIFIED" } else { "ADDED" };
        self.objects.insert(key, object.clone());
        self.log.push(Change { rv, resource: resource.to_owned(), namespace, kind: change, object: object.clone() });
        object
    }

    /// Removes an object; `announce` false loses the DELETED event (as a compaction would).
    pub fn remove(&mut self, key: &Key, announce: bool) -> Option<Value> {
        let mut object = self.objects.remove(key)?;
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        if announce {
            self.log.push(Change {
                rv: self.rv,
                resource: key.0.clone(),
                namespace: key.1.clone(),
                kind: "DELETED",
                object: object.clone(),
            });
        }
        Some(object)
    }

    /// Objects of a collection in key order, filtered by namespace and selectors.
    pub fn select(&self, resource: &str, namespace: Option<&str>, fields: &str, labels: &str) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((r, ns, _), _)| r == resource && namespace.is_none_or(|n| n == ns))
            .filter(|(_, o)| matches(o, fields, labels))
            .map(|(_, o)| o.clone())
            .collect()
    }
}

/// Equality-based field and label selectors (`a=b`, `a==b`, `a!=b`, `key`).
pub fn matches(object: &Value, fields: &str, labels: &str) -> bool {
    let field_ok = fields.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (path, want, negate) = split_term(term);
        let got = path.split('.').try_fold(object, |v, part| v.get(part)).and_then(Value::as_str).unwrap_or_default();
        (got == want) != negate
    });
    let label_map = object.get("metadata").and_then(|m| m.get("labels"));
    let label_ok = labels.split(',').filter(|s| !s.is_empty()).all(|term| {
        if !term.contains('=') {
            return label_map.and_then(|l| l.get(term)).is_some();
        }
        let (key, want, negate) = split_term(term);
        let got = label_map.and_then(|l| l.get(key)).and_then(Value::as_str).unwrap_or_default();
        (got == want) != negate
    });
    field_ok && label_ok
}

fn split_term(term: &str) -> (&str, &str, bool) {
    if let Some((k, v)) = term.split_once("!=") {
        return (k, v, true);
    }
    let (k, v) = term.split_once('=').unwrap_or((term, ""));
    (k, v.trim_start_matches('='), false)
}

/// JSON merge patch (RFC 7386).
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let target = target.as_object_mut().expect("object");
    for (k, v) in patch {
        if v.is_null() {
            target.remove(k);
        } else {
            merge_patch(target.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// A `Status` object, as the API answers errors.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code
    })
}
