//! One reflector per kind and namespace, and the [`Snapshot`] rebuilt from their stores.
//!
//! The snapshot is always assembled from store state, never patched from single events: the
//! watcher may lose delete events across a relist, the store does not.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::runtime::reflector::{self, Store};
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, DefaultBackoff};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::health::{Health, watch_error_kind};
use super::lenient::Lenient;
use crate::diagnostic::{Diagnostic, Subject};
use crate::metrics::Metrics;
use crate::source::{Loaded, Snapshot};

/// Only Secrets of this type are ever listed (a field selector: others never reach memory).
pub const TLS_SECRETS: &str = "type=kubernetes.io/tls";

/// A 410 Gone this soon after the previous one waits the failure backoff before relisting.
const GONE_AGAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// The stores of one kind: one per watched namespace, or one for the whole cluster.
struct Stores<K: Resource<DynamicType = ()> + Clone + 'static> {
    stores: Vec<Store<Lenient<K>>>,
}

impl<K> Stores<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    /// Objects that parsed, sorted by namespace and name (store order is arbitrary and the
    /// table must not depend on it); a diagnostic for each one that did not.
    fn collect(&self, diagnostics: &mut Vec<Diagnostic>) -> Vec<Arc<K>> {
        let mut objects: Vec<Arc<Lenient<K>>> = self.stores.iter().flat_map(Store::state).collect();
        objects.sort_by(|a, b| {
            let (a, b) = (a.meta(), b.meta());
            (a.namespace.as_deref(), a.name.as_deref()).cmp(&(b.namespace.as_deref(), b.name.as_deref()))
        });
        let kind = K::kind(&());
        objects
            .iter()
            .filter_map(|object| match object.as_ref() {
                Lenient::Ok(k) => Some(k.clone()),
                Lenient::Bad { metadata, error } => {
                    let subject = Subject::object(
                        &kind,
                        metadata.namespace.as_deref().unwrap_or_default(),
                        metadata.name.as_deref().unwrap_or_default(),
                    );
                    let msg = format!("cannot read this object, it is ignored: {error}");
                    diagnostics.push(Diagnostic::error(subject, "", msg));
                    None
                }
            })
            .collect()
    }
}

/// Every store routing reads, and whether each watcher has listed once.
pub struct Reflectors {
    ingresses: Stores<Ingress>,
    ingress_classes: Stores<IngressClass>,
    services: Stores<Service>,
    endpoint_slices: Stores<EndpointSlice>,
    secrets: Stores<Secret>,
    listed: Vec<Arc<AtomicBool>>,
}

impl Reflectors {
    /// Starts every watcher on `tasks`. Each pokes `wake` whenever its store may have changed.
    /// An empty `namespaces` watches the whole cluster; `extra_secrets` are single TLS Secrets
    /// `(namespace, name)` watched besides. Restarts and errors of every watch are counted in
    /// `metrics`.
    pub fn start(
        client: &Client,
        namespaces: &[String],
        extra_secrets: &[(String, String)],
        wake: &Arc<Notify>,
        tasks: &mut JoinSet<()>,
        metrics: &Arc<Metrics>,
        shutdown: &CancellationToken,
    ) -> Self {
        let mut spawner = Spawner { client, namespaces, wake, tasks, metrics, shutdown, listed: Vec::new() };
        let ingresses = spawner.namespaced::<Ingress>(watcher::Config::default());
        let services = spawner.namespaced::<Service>(watcher::Config::default());
        let endpoint_slices = spawner.namespaced::<EndpointSlice>(watcher::Config::default());
        let mut secrets = spawner.namespaced::<Secret>(watcher::Config::default().fields(TLS_SECRETS));
        for (ns, name) in extra_secrets {
            let api = Api::<Lenient<Secret>>::namespaced(client.clone(), ns);
            let config = watcher::Config::default().fields(&format!("{TLS_SECRETS},metadata.name={name}"));
            secrets.stores.push(spawner.spawn(api, config, &format!("secret {ns}/{name}")));
        }
        let api = Api::<Lenient<IngressClass>>::all(client.clone());
        let ingress_classes = Stores { stores: vec![spawner.spawn(api, watcher::Config::default(), "ingressclasses")] };
        Self { ingresses, ingress_classes, services, endpoint_slices, secrets, listed: spawner.listed }
    }

    /// True once every watcher has completed its first list.
    pub fn all_listed(&self) -> bool {
        self.listed.iter().all(|l| l.load(Ordering::Acquire))
    }

    /// The picture as the stores hold it now.
    pub fn loaded(&self) -> Loaded {
        let mut diagnostics = Vec::new();
        let snapshot = Snapshot {
            ingresses: self.ingresses.collect(&mut diagnostics),
            ingress_classes: self.ingress_classes.collect(&mut diagnostics),
            services: self.services.collect(&mut diagnostics),
            endpoint_slices: self.endpoint_slices.collect(&mut diagnostics),
            secrets: self.secrets.collect(&mut diagnostics),
        };
        Loaded { snapshot, diagnostics }
    }
}

struct Spawner<'a> {
    client: &'a Client,
    namespaces: &'a [String],
    wake: &'a Arc<Notify>,
    tasks: &'a mut JoinSet<()>,
    metrics: &'a Arc<Metrics>,
    shutdown: &'a CancellationToken,
    listed: Vec<Arc<AtomicBool>>,
}

/// The `resource` label of a kind: one of a fixed set of words.
fn resource_label<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::plural(&()).as_ref() {
        "ingresses" => "ingresses",
        "ingressclasses" => "ingressclasses",
        "services" => "services",
        "endpointslices" => "endpointslices",
        "secrets" => "secrets",
        _ => "other",
    }
}

impl Spawner<'_> {
    fn namespaced<K>(&mut self, config: watcher::Config) -> Stores<K>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
    {
        let plural = K::plural(&()).into_owned();
        if self.namespaces.is_empty() {
            let api = Api::<Lenient<K>>::all(self.client.clone());
            return Stores { stores: vec![self.spawn(api, config, &plural)] };
        }
        let stores = self
            .namespaces
            .iter()
            .map(|ns| {
                let api = Api::<Lenient<K>>::namespaced(self.client.clone(), ns);
                self.spawn(api, config.clone(), &format!("{plural} in {ns}"))
            })
            .collect();
        Stores { stores }
    }

    fn spawn<K>(&mut self, api: Api<Lenient<K>>, config: watcher::Config, what: &str) -> Store<Lenient<K>>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    {
        let (reader, writer) = reflector::store();
        let listed = Arc::new(AtomicBool::new(false));
        self.listed.push(listed.clone());
        // Backoff is applied below rather than with `default_backoff()`, so that a 410 Gone
        // (the watch's resourceVersion compacted away; the watcher relists at once) is not
        // delayed like a failure of the API.
        let stream = reflector::reflector(writer, watcher::watcher(api, config));
        let mut backoff = DefaultBackoff::default();
        let mut last_gone: Option<std::time::Instant> = None;
        let wake = self.wake.clone();
        let shutdown = self.shutdown.clone();
        let metrics = self.metrics.clone();
        let resource = resource_label::<K>();
        let mut health = Health::new(what.to_owned());
        self.tasks.spawn(async move {
            let mut stream = std::pin::pin!(stream);
            loop {
                let item = tokio::select! {
                    item = stream.next() => item,
                    () = shutdown.cancelled() => return,
                };
                match item {
                    Some(Ok(event)) => {
                        backoff.reset();
                        if health.event(&event) {
                            listed.store(health.listed_once(), Ordering::Release);
                            wake.notify_one();
                        }
                    }
                    Some(Err(err)) => {
                        let kind = watch_error_kind(&err);
                        metrics.api_error(kind);
                        health.error(&err);
                        // Counted now, not after the backoff below: a watch that broke has
                        // restarted as far as anyone reading the metric is concerned.
                        if health.take_restart() {
                            metrics.watch_restart(resource);
                        }
                        // A second 410 soon after the first is an API server in trouble, not
                        // compaction: it waits like any failure, so relists do not spin.
                        let gone = kind == "gone";
                        let at_once = gone && last_gone.is_none_or(|at| at.elapsed() >= GONE_AGAIN);
                        if gone {
                            last_gone = Some(std::time::Instant::now());
                        }
                        if !at_once && let Some(delay) = backoff.next() {
                            tokio::select! {
                                () = tokio::time::sleep(delay) => {}
                                () = shutdown.cancelled() => return,
                            }
                        }
                    }
                    None => return,
                }
                if health.take_restart() {
                    metrics.watch_restart(resource);
                }
            }
        });
        reader
    }
}
