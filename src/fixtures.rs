//! Generated clusters of any size, for benches and scale measurements: `n` Ingresses, each
//! with its own host and a few paths, over Services with one ready endpoint each.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressClass, IngressClassSpec, IngressRule,
    IngressServiceBackend, IngressSpec, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::source::Snapshot;

/// Paths of every generated Ingress: `(path, pathType)`.
pub const PATHS: [(&str, &str); 10] = [
    ("/", "Prefix"),
    ("/api", "Prefix"),
    ("/api/v1", "Prefix"),
    ("/api/v2", "Prefix"),
    ("/health", "Exact"),
    ("/static", "Prefix"),
    ("/login", "Exact"),
    ("/logout", "Exact"),
    ("/admin", "Prefix"),
    ("/docs", "ImplementationSpecific"),
];

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta { name: Some(name.to_owned()), namespace: namespace.map(str::to_owned), ..ObjectMeta::default() }
}

/// The host of generated Ingress `i`.
pub fn host(i: usize) -> String {
    format!("app-{i}.example.com")
}

/// `ingresses` Ingresses with `paths_each` paths (at most 10) on `services` Services.
pub fn snapshot(ingresses: usize, paths_each: usize, services: usize) -> Snapshot {
    let services = services.max(1);
    let mut snapshot = Snapshot::default();
    snapshot.ingress_classes.push(Arc::new(IngressClass {
        metadata: meta("lintel", None),
        spec: Some(IngressClassSpec { controller: Some("lintel.dev/ingress-controller".to_owned()), parameters: None }),
    }));
    for s in 0..services {
        let name = format!("svc-{s}");
        snapshot.services.push(Arc::new(Service {
            metadata: meta(&name, Some("default")),
            spec: Some(ServiceSpec {
                ports: Some(vec![ServicePort { name: Some("http".to_owned()), port: 80, ..ServicePort::default() }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }));
        let octets = [10, ((s >> 16) & 0xff) as u8, ((s >> 8) & 0xff) as u8, (s & 0xff) as u8];
        let mut slice_meta = meta(&format!("{name}-1"), Some("default"));
        slice_meta.labels = Some(BTreeMap::from([("kubernetes.io/service-name".to_owned(), name.clone())]));
        snapshot.endpoint_slices.push(Arc::new(EndpointSlice {
            metadata: slice_meta,
            address_type: "IPv4".to_owned(),
            ports: Some(vec![EndpointPort {
                name: Some("http".to_owned()),
                port: Some(8080),
                ..EndpointPort::default()
            }]),
            endpoints: vec![Endpoint {
                addresses: vec![format!("{}.{}.{}.{}", octets[0], octets[1], octets[2], octets[3])],
                ..Endpoint::default()
            }],
        }));
    }
    for i in 0..ingresses {
        let backend = IngressBackend {
            service: Some(IngressServiceBackend {
                name: format!("svc-{}", i % services),
                port: Some(ServiceBackendPort { number: Some(80), name: None }),
            }),
            resource: None,
        };
        let paths = PATHS
            .iter()
            .take(paths_each)
            .map(|(p, t)| HTTPIngressPath {
                path: Some((*p).to_owned()),
                path_type: (*t).to_owned(),
                backend: backend.clone(),
            })
            .collect();
        snapshot.ingresses.push(Arc::new(Ingress {
            metadata: meta(&format!("ing-{i}"), Some("default")),
            spec: Some(IngressSpec {
                ingress_class_name: Some("lintel".to_owned()),
                rules: Some(vec![IngressRule { host: Some(host(i)), http: Some(HTTPIngressRuleValue { paths }) }]),
                ..IngressSpec::default()
            }),
            ..Ingress::default()
        }));
    }
    snapshot
}
