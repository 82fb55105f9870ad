//! [`Lenient`]: a Kubernetes object that either parsed into its typed form or did not. Watch
//! lists and streams decode through it, so one object the typed structs cannot read becomes a
//! diagnostic instead of failing the whole list (and with it the watch, forever).
//!
//! Decoding also drops what Lintel never reads and should not hold in memory: `managedFields`
//! and the `last-applied-configuration` annotation (which holds a Secret's data in clear).

use std::borrow::Cow;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

#[derive(Debug, Clone, PartialEq)]
pub enum Lenient<K> {
    /// Shared with the snapshots built from the store, which so hold no copy of their own.
    Ok(Arc<K>),
    /// The object's metadata (as far as it could be read) and why the rest could not.
    Bad { metadata: Box<ObjectMeta>, error: String },
}

impl<'de, K: DeserializeOwned> Deserialize<'de> for Lenient<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut value = Value::deserialize(deserializer)?;
        strip(&mut value);
        match K::deserialize(&value) {
            Ok(k) => Ok(Self::Ok(Arc::new(k))),
            Err(err) => {
                let metadata = value.get("metadata").and_then(|m| ObjectMeta::deserialize(m).ok()).unwrap_or_default();
                Ok(Self::Bad { metadata: Box::new(metadata), error: err.to_string() })
            }
        }
    }
}

/// Removes the fields Lintel never reads and that can be large (or secret).
pub(crate) fn strip(value: &mut Value) {
    let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) else { return };
    meta.remove("managedFields");
    if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
        annotations.remove(LAST_APPLIED);
    }
}

impl<K: Resource<DynamicType = ()> + Clone> Resource for Lenient<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }

    fn api_version(dt: &()) -> Cow<'_, str> {
        K::api_version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        match self {
            Self::Ok(k) => k.meta(),
            Self::Bad { metadata, .. } => metadata,
        }
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Self::Ok(k) => Arc::make_mut(k).meta_mut(),
            Self::Bad { metadata, .. } => metadata,
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::api::networking::v1::Ingress;
    use serde_json::json;

    use super::*;

    #[test]
    fn a_good_object_parses_typed_without_managed_fields_or_last_applied() {
        let value = json!({
            "metadata": {
                "name": "s", "namespace": "ns",
                "managedFields": [{"manager": "kubectl"}],
                "annotations": {LAST_APPLIED: "{\"data\":{\"tls.key\":\"secret\"}}", "keep": "me"}
            },
            "type": "kubernetes.io/tls"
        });
        let Lenient::Ok(secret) = serde_json::from_value::<Lenient<Secret>>(value).unwrap() else {
            panic!("should parse")
        };
        assert_eq!(secret.metadata.managed_fields, None);
        let annotations = secret.metadata.annotations.clone().unwrap();
        assert_eq!(annotations.len(), 1);
        assert_eq!(annotations["keep"], "me");
    }

    #[test]
    fn a_bad_object_keeps_its_name_and_the_error() {
        let value = json!({"metadata": {"name": "bad", "namespace": "ns"}, "spec": {"rules": 5}});
        let parsed = serde_json::from_value::<Lenient<Ingress>>(value).unwrap();
        let Lenient::Bad { metadata, error } = parsed else { panic!("should not parse") };
        assert_eq!(metadata.name.as_deref(), Some("bad"));
        assert_eq!(parsed_meta_ns(&metadata), "ns");
        assert!(error.contains("invalid type"), "{error}");
    }

    fn parsed_meta_ns(meta: &ObjectMeta) -> &str {
        meta.namespace.as_deref().unwrap_or_default()
    }
}
