//! Manifests for the upstream tests: a Service whose endpoints each have their own port
//! (one EndpointSlice each, as all backends share 127.0.0.1), and Ingresses with
//! annotations.

use std::net::SocketAddr;

/// An endpoint's EndpointSlice conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    Ready,
    /// Serving but terminating: used only when nothing is ready.
    Terminating,
}

/// Service `svc` (port 80, named `http`) and one EndpointSlice per endpoint.
pub fn service(svc: &str, endpoints: &[(SocketAddr, Cond)]) -> String {
    let mut out = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {svc}}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n"
    );
    for (i, (addr, cond)) in endpoints.iter().enumerate() {
        let conditions = match cond {
            Cond::Ready => "{ready: true}",
            Cond::Terminating => "{ready: false, serving: true, terminating: true}",
        };
        out.push_str(&format!(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {svc}-{i}, labels: {{kubernetes.io/service-name: {svc}}}}}\n\
             addressType: IPv4\nports: [{{name: http, port: {}}}]\nendpoints: [{{addresses: [\"{}\"], conditions: {conditions}}}]\n",
            addr.port(),
            addr.ip()
        ));
    }
    out
}

pub fn ready(addrs: &[SocketAddr]) -> Vec<(SocketAddr, Cond)> {
    addrs.iter().map(|a| (*a, Cond::Ready)).collect()
}

/// An Ingress sending everything for `host` to `svc`, with annotations.
pub fn ingress(name: &str, host: &str, svc: &str, annotations: &[(&str, &str)]) -> String {
    let annotations: String = annotations.iter().map(|(k, v)| format!("    {k}: \"{v}\"\n")).collect();
    let annotations = if annotations.is_empty() { String::new() } else { format!("  annotations:\n{annotations}") };
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n{annotations}spec:\n  ingressClassName: lintel\n  rules:\n  - host: \"{host}\"\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}}}\n"
    )
}

/// Documents joined into one file.
pub fn join(docs: &[String]) -> String {
    let mut all = vec![super::support::CLASS_YAML.to_owned()];
    all.extend(docs.iter().cloned());
    all.join("---\n")
}
