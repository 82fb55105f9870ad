//! The addresses written to Ingress status: fixed (`--publish-address`), or read from a
//! Service (`--publish-service`): its load balancer's ingress, else its external IPs, else
//! for a NodePort the addresses of the nodes that run its ready endpoints (all nodes when
//! none is known), else its cluster IP.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::IngressLoadBalancerIngress;
use kube::api::ListParams;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::source::kube::api_error_kind;

/// Addresses in status order: IPs first, then hostnames, each sorted.
pub type Addresses = Vec<IngressLoadBalancerIngress>;

#[derive(Debug, Clone, PartialEq)]
pub enum Publish {
    /// Status is not written.
    Nothing,
    Fixed(Addresses),
    Service {
        namespace: String,
        name: String,
    },
}

/// How often the published Service (and its nodes) is read again while leading.
pub const SERVICE_REFRESH: Duration = Duration::from_secs(10);

/// An IP becomes `ip`, anything else `hostname`.
pub fn fixed(values: &[String]) -> Addresses {
    normalize(
        values
            .iter()
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(|v| match v.parse::<IpAddr>() {
                Ok(ip) => entry(Some(ip.to_string()), None),
                Err(_) => entry(None, Some(v.to_owned())),
            })
            .collect(),
    )
}

fn entry(ip: Option<String>, hostname: Option<String>) -> IngressLoadBalancerIngress {
    IngressLoadBalancerIngress { ip, hostname, ports: None }
}

/// Sorted (IPs first), deduplicated, without ports: the form compared against status.
pub fn normalize(mut addresses: Addresses) -> Addresses {
    for a in &mut addresses {
        a.ports = None;
    }
    addresses.sort_by(|a, b| (a.ip.is_none(), &a.ip, &a.hostname).cmp(&(b.ip.is_none(), &b.ip, &b.hostname)));
    addresses.dedup();
    addresses
}

/// What a Service says about its own address; `None` when the nodes must be asked.
pub fn service_addresses(service: &Service) -> Option<Addresses> {
    let lb = service.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|lb| lb.ingress.as_ref());
    let from_lb: Addresses = lb
        .into_iter()
        .flatten()
        .filter(|i| i.ip.is_some() || i.hostname.is_some())
        .map(|i| entry(i.ip.clone(), i.hostname.clone()))
        .collect();
    if !from_lb.is_empty() {
        return Some(normalize(from_lb));
    }
    let spec = service.spec.as_ref()?;
    let external: Addresses = spec.external_ips.iter().flatten().map(|ip| entry(Some(ip.clone()), None)).collect();
    if !external.is_empty() {
        return Some(normalize(external));
    }
    match spec.type_.as_deref() {
        Some("NodePort" | "LoadBalancer") => None,
        _ => Some(normalize(
            spec.cluster_ip.iter().filter(|ip| *ip != "None").map(|ip| entry(Some(ip.clone()), None)).collect(),
        )),
    }
}

/// Node names of the ready endpoints in these slices.
pub fn endpoint_nodes(slices: &[EndpointSlice]) -> BTreeSet<String> {
    slices
        .iter()
        .flat_map(|s| &s.endpoints)
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .filter_map(|e| e.node_name.clone())
        .collect()
}

/// Each node's ExternalIP addresses, or its InternalIP ones when it has none. `only` limits
/// the nodes when it is not empty.
pub fn node_addresses(nodes: &[Node], only: &BTreeSet<String>) -> Addresses {
    let mut out = Vec::new();
    for node in nodes {
        if !only.is_empty() && !node.metadata.name.as_ref().is_some_and(|n| only.contains(n)) {
            continue;
        }
        let addresses = node.status.as_ref().and_then(|s| s.addresses.as_ref());
        let of = |kind: &str| -> Vec<String> {
            addresses.into_iter().flatten().filter(|a| a.type_ == kind).map(|a| a.address.clone()).collect()
        };
        let external = of("ExternalIP");
        let chosen = if external.is_empty() { of("InternalIP") } else { external };
        out.extend(chosen.into_iter().map(|ip| entry(Some(ip), None)));
    }
    normalize(out)
}

/// Reads the published Service's address now.
pub async fn read_service(client: &Client, namespace: &str, name: &str) -> Result<Addresses, kube::Error> {
    let Some(service) = Api::<Service>::namespaced(client.clone(), namespace).get_opt(name).await? else {
        tracing::warn!(service = %format!("{namespace}/{name}"), "the --publish-service Service does not exist");
        return Ok(Vec::new());
    };
    if let Some(addresses) = service_addresses(&service) {
        return Ok(addresses);
    }
    let selector = format!("kubernetes.io/service-name={name}");
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&selector))
        .await?
        .items;
    let only = endpoint_nodes(&slices);
    let nodes = Api::<Node>::all(client.clone()).list(&ListParams::default()).await?.items;
    Ok(node_addresses(&nodes, &only))
}

/// Publishes the current addresses on `tx` (`None` until known). A Service is read only
/// while this replica leads, every [`SERVICE_REFRESH`].
pub async fn run(
    client: Client,
    publish: Publish,
    mut leader: watch::Receiver<bool>,
    tx: watch::Sender<Option<Addresses>>,
    metrics: std::sync::Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let (namespace, name) = match publish {
        Publish::Nothing => return shutdown.cancelled().await,
        Publish::Fixed(addresses) => {
            tx.send_replace(Some(addresses));
            return shutdown.cancelled().await;
        }
        Publish::Service { namespace, name } => (namespace, name),
    };
    let mut failing = false;
    loop {
        if *leader.borrow_and_update() {
            match read_service(&client, &namespace, &name).await {
                Ok(addresses) => {
                    failing = false;
                    tx.send_if_modified(|current| {
                        let changed = current.as_ref() != Some(&addresses);
                        if changed {
                            tracing::info!(service = %format!("{namespace}/{name}"), ?addresses, "published address");
                            *current = Some(addresses);
                        }
                        changed
                    });
                }
                Err(err) => {
                    metrics.api_error(api_error_kind(&err));
                    if failing {
                        tracing::debug!(%err, "cannot read the published Service");
                    } else {
                        failing = true;
                        tracing::warn!(service = %format!("{namespace}/{name}"), %err, "cannot read the published Service; keeping the last address");
                    }
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(SERVICE_REFRESH) => {}
            changed = leader.changed() => if changed.is_err() { return },
            () = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, NodeAddress, NodeStatus, ServiceSpec, ServiceStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn ip(v: &str) -> IngressLoadBalancerIngress {
        entry(Some(v.to_owned()), None)
    }

    fn host(v: &str) -> IngressLoadBalancerIngress {
        entry(None, Some(v.to_owned()))
    }

    fn service(type_: &str) -> Service {
        Service {
            spec: Some(ServiceSpec {
                type_: Some(type_.to_owned()),
                cluster_ip: Some("10.0.0.7".to_owned()),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    fn node(name: &str, addresses: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta { name: Some(name.to_owned()), ..ObjectMeta::default() },
            status: Some(NodeStatus {
                addresses: Some(
                    addresses
                        .iter()
                        .map(|(t, a)| NodeAddress { type_: (*t).to_owned(), address: (*a).to_owned() })
                        .collect(),
                ),
                ..NodeStatus::default()
            }),
            ..Node::default()
        }
    }

    #[test]
    fn fixed_addresses_split_ips_from_hostnames_ips_first() {
        let got =
            fixed(&["lb.example.com".to_owned(), "192.0.2.10".to_owned(), " ".to_owned(), "2001:db8::1".to_owned()]);
        assert_eq!(got, vec![ip("192.0.2.10"), ip("2001:db8::1"), host("lb.example.com")]);
    }

    #[test]
    fn a_load_balancer_service_publishes_its_ingress() {
        let mut svc = service("LoadBalancer");
        svc.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![LoadBalancerIngress {
                    hostname: Some("nlb.elb.amazonaws.com".to_owned()),
                    ..LoadBalancerIngress::default()
                }]),
            }),
            ..ServiceStatus::default()
        });
        assert_eq!(service_addresses(&svc), Some(vec![host("nlb.elb.amazonaws.com")]));
    }

    #[test]
    fn external_ips_win_over_nodes_and_a_pending_load_balancer_asks_the_nodes() {
        let mut svc = service("NodePort");
        assert_eq!(service_addresses(&svc), None);
        svc.spec.as_mut().unwrap().external_ips = Some(vec!["198.51.100.4".to_owned()]);
        assert_eq!(service_addresses(&svc), Some(vec![ip("198.51.100.4")]));
        assert_eq!(service_addresses(&service("LoadBalancer")), None);
        assert_eq!(service_addresses(&service("ClusterIP")), Some(vec![ip("10.0.0.7")]));
    }

    #[test]
    fn node_addresses_prefer_external_and_keep_to_endpoint_nodes() {
        let nodes = [
            node("a", &[("InternalIP", "10.1.0.1"), ("ExternalIP", "203.0.113.1")]),
            node("b", &[("InternalIP", "10.1.0.2"), ("Hostname", "b")]),
            node("c", &[("InternalIP", "10.1.0.3")]),
        ];
        let only: BTreeSet<String> = ["a".to_owned(), "b".to_owned()].into();
        assert_eq!(node_addresses(&nodes, &only), vec![ip("10.1.0.2"), ip("203.0.113.1")]);
        assert_eq!(node_addresses(&nodes, &BTreeSet::new()).len(), 3);
    }
}
