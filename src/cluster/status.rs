//! Ingress status: the leader writes `status.loadBalancer.ingress` on every Ingress the table
//! in service serves, and clears it on Ingresses it stopped serving. Ingresses that belong to
//! another controller's class are never written. A write is skipped when the status is
//! already right, so a steady state costs no API calls.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::address::{Addresses, normalize};
use crate::compile::CompileOptions;
use crate::live::{Live, SharedLive};
use crate::metrics::Metrics;
use crate::source::Loaded;
use crate::source::kube::api_error_kind;

const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
/// How often the table in service is checked for a change of the served set.
const POLL: Duration = Duration::from_millis(500);
/// Wait after a failed write before trying again.
const RETRY: Duration = Duration::from_secs(5);

/// One status write: `addresses` empty means clear.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub namespace: String,
    pub name: String,
    pub addresses: Addresses,
}

fn key(ingress: &Ingress) -> String {
    let meta = &ingress.metadata;
    format!("{}/{}", meta.namespace.as_deref().unwrap_or("default"), meta.name.as_deref().unwrap_or_default())
}

fn current(ingress: &Ingress) -> Addresses {
    let lb = ingress.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|lb| lb.ingress.clone());
    normalize(lb.unwrap_or_default())
}

/// Whether the Ingress is another controller's: it names an existing IngressClass of another
/// controller, names another class in the legacy annotation, or has no class while another
/// controller's class is the default.
pub fn belongs_to_another(ingress: &Ingress, classes: &[Arc<IngressClass>], options: &CompileOptions) -> bool {
    let controller_of =
        |class: &IngressClass| class.spec.as_ref().and_then(|s| s.controller.as_deref()).unwrap_or_default().to_owned();
    let class_name = ingress.spec.as_ref().and_then(|s| s.ingress_class_name.as_deref());
    let legacy = ingress.metadata.annotations.as_ref().and_then(|a| a.get(LEGACY_CLASS_ANNOTATION));
    match (class_name, legacy) {
        (Some(name), _) => classes
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(name))
            .is_some_and(|c| controller_of(c) != options.controller_name),
        (None, Some(legacy)) => *legacy != options.ingress_class,
        (None, None) => classes.iter().any(|c| {
            let is_default = c.metadata.annotations.as_ref().and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION));
            is_default.is_some_and(|v| v == "true") && controller_of(c) != options.controller_name
        }),
    }
}

/// The writes that bring status in line. `served` is `namespace/name` of the Ingresses the
/// table serves; `written` those this leader set itself (cleared when no longer served, even
/// if the published address changed since).
pub fn plan(
    ingresses: &[Arc<Ingress>],
    classes: &[Arc<IngressClass>],
    served: &HashSet<&str>,
    ours: &Addresses,
    written: &HashSet<String>,
    options: &CompileOptions,
) -> Vec<Change> {
    let mut changes = Vec::new();
    for ingress in ingresses {
        if belongs_to_another(ingress, classes, options) {
            continue;
        }
        let key = key(ingress);
        let now = current(ingress);
        let wanted = if served.contains(key.as_str()) {
            ours.clone()
        } else if !now.is_empty() && (now == *ours || written.contains(&key)) {
            Vec::new()
        } else {
            continue;
        };
        if now != wanted {
            let meta = &ingress.metadata;
            changes.push(Change {
                namespace: meta.namespace.clone().unwrap_or_else(|| "default".to_owned()),
                name: meta.name.clone().unwrap_or_default(),
                addresses: wanted,
            });
        }
    }
    changes
}

/// Writes one status with a merge patch; an empty list removes the field.
async fn write(client: &Client, change: &Change) -> Result<(), kube::Error> {
    let api = Api::<Ingress>::namespaced(client.clone(), &change.namespace);
    let ingress = if change.addresses.is_empty() { serde_json::Value::Null } else { json!(change.addresses) };
    let patch = json!({"status": {"loadBalancer": {"ingress": ingress}}});
    api.patch_status(&change.name, &PatchParams::default(), &Patch::Merge(&patch)).await.map(|_| ())
}

/// What a reconcile was computed from; the same inputs need no second look.
struct Seen {
    loaded: Arc<Loaded>,
    live: Arc<Live>,
    addresses: Addresses,
}

/// Writes status while this replica leads, until shutdown. Failed writes are counted in
/// `lintel_source_api_errors_total` (an Ingress deleted meanwhile is not a failure).
#[expect(clippy::too_many_arguments, reason = "one call site; the inputs of one long-running task")]
pub async fn run(
    client: Client,
    mut leader: watch::Receiver<bool>,
    mut pictures: watch::Receiver<Arc<Loaded>>,
    live: SharedLive,
    mut addresses: watch::Receiver<Option<Addresses>>,
    options: CompileOptions,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut written: HashSet<String> = HashSet::new();
    // Writes not yet seen back through the watch: Ingress key → (resourceVersion at write, addresses).
    let mut pending: HashMap<String, (Option<String>, Addresses)> = HashMap::new();
    let mut seen: Option<Seen> = None;
    let mut retry_at: Option<Instant> = None;
    loop {
        tokio::select! {
            Ok(()) = leader.changed() => {}
            Ok(()) = pictures.changed() => {}
            Ok(()) = addresses.changed() => {}
            () = tokio::time::sleep(POLL) => {}
            () = shutdown.cancelled() => return,
        }
        if !*leader.borrow() {
            written.clear();
            pending.clear();
            seen = None;
            continue;
        }
        let Some(ours) = addresses.borrow().clone() else { continue };
        if ours.is_empty() || retry_at.is_some_and(|t| Instant::now() < t) {
            continue;
        }
        let loaded = pictures.borrow().clone();
        let table = live.load_full();
        if seen
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(&s.loaded, &loaded) && Arc::ptr_eq(&s.live, &table) && s.addresses == ours)
        {
            continue;
        }
        let served: HashSet<&str> = table.compiled.served.iter().map(String::as_str).collect();
        let snapshot = &loaded.snapshot;
        let versions: HashMap<String, Option<String>> =
            snapshot.ingresses.iter().map(|i| (key(i), i.metadata.resource_version.clone())).collect();
        pending.retain(|k, (version, _)| versions.get(k).is_some_and(|v| v == version));
        let changes = plan(&snapshot.ingresses, &snapshot.ingress_classes, &served, &ours, &written, &options);
        let mut failed = false;
        let mut wrote = 0usize;
        for change in changes {
            let key = format!("{}/{}", change.namespace, change.name);
            if pending.get(&key).is_some_and(|(_, a)| *a == change.addresses) {
                continue; // written already; the watch has not caught up yet
            }
            if !*leader.borrow() || shutdown.is_cancelled() {
                break;
            }
            match tokio::time::timeout(RETRY, write(&client, &change)).await {
                Ok(Ok(())) => {
                    wrote += 1;
                    tracing::debug!(ingress = %key, addresses = ?change.addresses, "status written");
                    if change.addresses.is_empty() {
                        written.remove(&key);
                    } else {
                        written.insert(key.clone());
                    }
                    pending.insert(key.clone(), (versions.get(&key).cloned().flatten(), change.addresses));
                }
                Ok(Err(kube::Error::Api(status))) if status.code == 404 => {}
                Ok(Err(err)) => {
                    metrics.api_error(api_error_kind(&err));
                    if !failed {
                        tracing::warn!(ingress = %key, %err, "cannot write Ingress status; will retry");
                    }
                    failed = true;
                }
                Err(_) => {
                    metrics.api_error("timeout");
                    if !failed {
                        tracing::warn!(ingress = %key, "writing Ingress status timed out; will retry");
                    }
                    failed = true;
                }
            }
        }
        if wrote > 0 {
            tracing::info!(ingresses = wrote, "Ingress status updated");
        }
        retry_at = failed.then(|| Instant::now() + RETRY);
        seen = (!failed).then_some(Seen { loaded, live: table, addresses: ours });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::networking::v1::{
        IngressClassSpec, IngressLoadBalancerIngress, IngressLoadBalancerStatus, IngressSpec, IngressStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn ip(v: &str) -> IngressLoadBalancerIngress {
        IngressLoadBalancerIngress { ip: Some(v.to_owned()), ..IngressLoadBalancerIngress::default() }
    }

    fn ingress(name: &str, class: Option<&str>, status: &[&str]) -> Ingress {
        Ingress {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some("ns".to_owned()),
                ..ObjectMeta::default()
            },
            spec: Some(IngressSpec { ingress_class_name: class.map(str::to_owned), ..IngressSpec::default() }),
            status: Some(IngressStatus {
                load_balancer: Some(IngressLoadBalancerStatus {
                    ingress: Some(status.iter().map(|s| ip(s)).collect()),
                }),
            }),
        }
    }

    fn class(name: &str, controller: &str, default: bool) -> IngressClass {
        let annotations = default.then(|| BTreeMap::from([(DEFAULT_CLASS_ANNOTATION.to_owned(), "true".to_owned())]));
        IngressClass {
            metadata: ObjectMeta { name: Some(name.to_owned()), annotations, ..ObjectMeta::default() },
            spec: Some(IngressClassSpec { controller: Some(controller.to_owned()), ..IngressClassSpec::default() }),
        }
    }

    fn classes() -> Vec<Arc<IngressClass>> {
        [class("lintel", "lintel.dev/ingress-controller", false), class("nginx", "k8s.io/ingress-nginx", false)]
            .map(Arc::new)
            .into()
    }

    fn change(name: &str, addresses: &[&str]) -> Change {
        Change {
            namespace: "ns".to_owned(),
            name: name.to_owned(),
            addresses: addresses.iter().map(|a| ip(a)).collect(),
        }
    }

    fn run_plan(ingresses: &[Ingress], served: &[&str], written: &[&str]) -> Vec<Change> {
        let served: HashSet<&str> = served.iter().copied().collect();
        let written: HashSet<String> = written.iter().map(|s| (*s).to_owned()).collect();
        let ingresses: Vec<_> = ingresses.iter().cloned().map(Arc::new).collect();
        plan(&ingresses, &classes(), &served, &vec![ip("192.0.2.10")], &written, &CompileOptions::default())
    }

    #[test]
    fn served_ingresses_get_the_address_once() {
        let ingresses = [ingress("a", Some("lintel"), &[]), ingress("b", Some("lintel"), &["192.0.2.10"])];
        assert_eq!(run_plan(&ingresses, &["ns/a", "ns/b"], &[]), vec![change("a", &["192.0.2.10"])]);
    }

    #[test]
    fn a_wrong_address_is_replaced() {
        let ingresses = [ingress("a", Some("lintel"), &["198.51.100.1"])];
        assert_eq!(run_plan(&ingresses, &["ns/a"], &[]), vec![change("a", &["192.0.2.10"])]);
    }

    #[test]
    fn an_ingress_no_longer_served_is_cleared_when_it_carries_our_address_or_we_wrote_it() {
        let ingresses = [
            ingress("ours", Some("gone"), &["192.0.2.10"]),
            ingress("wrote", None, &["198.51.100.1"]),
            ingress("stranger", None, &["198.51.100.1"]),
        ];
        assert_eq!(run_plan(&ingresses, &[], &["ns/wrote"]), vec![change("ours", &[]), change("wrote", &[])]);
    }

    #[test]
    fn another_class_is_never_touched() {
        let mut legacy = ingress("legacy", None, &["192.0.2.10"]);
        legacy.metadata.annotations = Some(BTreeMap::from([(LEGACY_CLASS_ANNOTATION.to_owned(), "nginx".to_owned())]));
        let ingresses = [ingress("nginx", Some("nginx"), &["192.0.2.10"]), legacy];
        assert_eq!(run_plan(&ingresses, &["ns/nginx", "ns/legacy"], &["ns/nginx", "ns/legacy"]), vec![]);
    }

    #[test]
    fn no_class_under_another_default_class_is_not_ours() {
        let classes = vec![Arc::new(class("nginx", "k8s.io/ingress-nginx", true))];
        let options = CompileOptions::default();
        assert!(belongs_to_another(&ingress("a", None, &[]), &classes, &options));
        assert!(!belongs_to_another(&ingress("a", None, &[]), &[], &options));
    }
}
