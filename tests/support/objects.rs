//! Builders for the Kubernetes objects the tests put in the in-test API server, as JSON the
//! way `kubectl` would send them.

use serde_json::{Value, json};

pub fn ingress_class() -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": "lintel"},
        "spec": {"controller": "lintel.dev/ingress-controller"}
    })
}

pub fn other_ingress_class() -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": "nginx"},
        "spec": {"controller": "k8s.io/ingress-nginx"}
    })
}

/// An Ingress of class `lintel`: `host` + Prefix `path` → `service`:80.
pub fn ingress(ns: &str, name: &str, host: &str, path: &str, service: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "ingressClassName": "lintel",
            "rules": [{"host": host, "http": {"paths": [
                {"path": path, "pathType": "Prefix", "backend": {"service": {"name": service, "port": {"number": 80}}}}
            ]}}]
        }
    })
}

pub fn with_class(mut ingress: Value, class: &str) -> Value {
    ingress["spec"]["ingressClassName"] = json!(class);
    ingress
}

pub fn with_tls(mut ingress: Value, host: &str, secret: &str) -> Value {
    ingress["spec"]["tls"] = json!([{"hosts": [host], "secretName": secret}]);
    ingress
}

/// A ClusterIP Service with port 80 named `http`.
pub fn service(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    })
}

/// The EndpointSlice of `service`: each endpoint is `(ip, ready)`, all on `port`.
pub fn slice(ns: &str, service: &str, port: u16, endpoints: &[(&str, bool)]) -> Value {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|(ip, ready)| json!({"addresses": [ip], "conditions": {"ready": ready, "serving": ready}}))
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{service}-abcde"), "namespace": ns,
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": endpoints
    })
}

pub fn secret(ns: &str, name: &str, type_: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "type": type_,
        "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}
    })
}

/// A `kubernetes.io/tls` Secret holding a fresh self-signed certificate for `host`.
pub fn tls_secret_for(ns: &str, name: &str, host: &str) -> Value {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;

    let cert = rcgen::generate_simple_self_signed(vec![host.to_owned()]).unwrap();
    let data = BTreeMap::from([
        ("tls.crt".to_owned(), ByteString(cert.cert.pem().into_bytes())),
        ("tls.key".to_owned(), ByteString(cert.signing_key.serialize_pem().into_bytes())),
    ]);
    let secret = Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(ns.to_owned()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(data),
        ..Secret::default()
    };
    let mut value = serde_json::to_value(secret).unwrap();
    value["apiVersion"] = json!("v1");
    value["kind"] = json!("Secret");
    value
}
