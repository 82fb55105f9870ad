//! Backend resolution: Ingress backend → Service port → EndpointSlices labelled
//! `kubernetes.io/service-name`, port matched by the Service port's name. Ready endpoints are
//! used; serving+terminating ones only when no ready one is left, so rollouts do not 503.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::IngressBackend;

use crate::source::Snapshot;
use crate::table::{Backend, BackendId, BackendIdx, PortRef, TableBuilder};

const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A backend in the table, and a problem worth a diagnostic (the route then answers 503).
#[derive(Debug, Clone)]
pub(super) struct Resolved {
    pub idx: BackendIdx,
    pub problem: Option<String>,
}

/// Indexes Services and EndpointSlices once, and resolves each backend once per compile.
pub(super) struct Resolver<'a> {
    services: HashMap<(&'a str, &'a str), &'a Service>,
    slices: HashMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>,
    resolved: HashMap<BackendId, Resolved>,
}

impl<'a> Resolver<'a> {
    pub fn new(snapshot: &'a Snapshot) -> Self {
        let mut services = HashMap::new();
        for svc in &snapshot.services {
            if let (Some(ns), Some(name)) = (svc.metadata.namespace.as_deref(), svc.metadata.name.as_deref()) {
                services.insert((ns, name), &**svc);
            }
        }
        let mut slices: HashMap<_, Vec<_>> = HashMap::new();
        for slice in &snapshot.endpoint_slices {
            let labels = slice.metadata.labels.as_ref();
            if let (Some(ns), Some(svc)) =
                (slice.metadata.namespace.as_deref(), labels.and_then(|l| l.get(SERVICE_NAME_LABEL)))
            {
                slices.entry((ns, svc.as_str())).or_default().push(&**slice);
            }
        }
        Self { services, slices, resolved: HashMap::new() }
    }

    /// `Err` when the backend cannot be routed at all (the path is dropped); a backend whose
    /// Service is missing still gets a table entry, so its paths answer 503 rather than fall
    /// through to another rule.
    pub fn resolve(
        &mut self,
        namespace: &str,
        backend: &IngressBackend,
        builder: &mut TableBuilder,
    ) -> Result<Resolved, String> {
        if backend.resource.is_some() {
            return Err("resource backends are not supported".to_owned());
        }
        let Some(service) = &backend.service else {
            return Err("backend names no service".to_owned());
        };
        let port = match service.port.as_ref().map(|p| (p.number, p.name.as_deref())) {
            Some((Some(n), _)) => match u16::try_from(n) {
                Ok(n) if n > 0 => PortRef::Number(n),
                _ => return Err(format!("service port {n} is out of range")),
            },
            Some((None, Some(name))) if !name.is_empty() => PortRef::Name(name.to_owned()),
            _ => return Err("backend service port has neither a number nor a name".to_owned()),
        };
        let id = BackendId { namespace: namespace.to_owned(), service: service.name.clone(), port };
        if let Some(done) = self.resolved.get(&id) {
            return Ok(done.clone());
        }
        let (endpoints, terminating_fallback, unresolved) = match self.endpoints(&id) {
            Ok((endpoints, fallback)) => (endpoints, fallback, None),
            Err(why) => (Vec::new(), false, Some(why)),
        };
        let problem = unresolved.as_ref().map(|why| format!("{why}; requests to it get 503"));
        let idx = builder.add_backend(Backend { id: id.clone(), endpoints, terminating_fallback, unresolved });
        let resolved = Resolved { idx, problem };
        self.resolved.insert(id, resolved.clone());
        Ok(resolved)
    }

    /// The endpoints of a backend, sorted, and whether they are the terminating fallback.
    fn endpoints(&self, id: &BackendId) -> Result<(Vec<Arc<str>>, bool), String> {
        let svc = self
            .services
            .get(&(id.namespace.as_str(), id.service.as_str()))
            .ok_or_else(|| format!("Service {}/{} not found", id.namespace, id.service))?;
        let spec = svc.spec.as_ref().ok_or_else(|| format!("Service {}/{} has no spec", id.namespace, id.service))?;
        let ports = spec.ports.as_deref().unwrap_or_default();
        let port = find_port(ports, &id.port);
        if spec.type_.as_deref() == Some("ExternalName") {
            let host = spec
                .external_name
                .as_deref()
                .filter(|h| !h.is_empty())
                .ok_or_else(|| format!("ExternalName Service {} has no externalName", id.service))?;
            let number = match (&id.port, port) {
                (_, Some(p)) => {
                    u16::try_from(p.port).map_err(|_| format!("Service port {} is out of range", p.port))?
                }
                (PortRef::Number(n), None) => *n,
                (PortRef::Name(name), None) => {
                    return Err(format!("Service {}/{} has no port named {name:?}", id.namespace, id.service));
                }
            };
            return Ok((vec![authority(host, number).into()], false));
        }
        let port = port.ok_or_else(|| format!("Service {}/{} has no port {}", id.namespace, id.service, id.port))?;
        let port_name = port.name.as_deref().unwrap_or_default();
        let mut ready = BTreeSet::new();
        let mut terminating = BTreeSet::new();
        for slice in self.slices.get(&(id.namespace.as_str(), id.service.as_str())).into_iter().flatten() {
            let Some(number) = slice
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref().unwrap_or_default() == port_name)
                .and_then(|p| p.port)
                .and_then(|p| u16::try_from(p).ok())
            else {
                continue;
            };
            for endpoint in &slice.endpoints {
                // Addresses of one endpoint are fungible: the first is enough.
                let Some(address) = endpoint.addresses.first() else { continue };
                let conditions = endpoint.conditions.as_ref();
                let is_ready = conditions.and_then(|c| c.ready).unwrap_or(true);
                let serving = conditions.and_then(|c| c.serving).unwrap_or(is_ready);
                let is_terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
                if is_ready && !is_terminating {
                    ready.insert(authority(address, number));
                } else if serving && is_terminating {
                    terminating.insert(authority(address, number));
                }
            }
        }
        if ready.is_empty() && !terminating.is_empty() {
            return Ok((terminating.into_iter().map(Into::into).collect(), true));
        }
        Ok((ready.into_iter().map(Into::into).collect(), false))
    }
}

fn find_port<'s>(ports: &'s [ServicePort], wanted: &PortRef) -> Option<&'s ServicePort> {
    ports.iter().find(|p| match wanted {
        PortRef::Number(n) => p.port == i32::from(*n),
        PortRef::Name(name) => p.name.as_deref() == Some(name.as_str()),
    })
}

/// `host:port`, with brackets around IPv6 literals.
fn authority(host: &str, port: u16) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
        _ => format!("{host}:{port}"),
    }
}
