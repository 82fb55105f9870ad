//! Per-route request metrics, resolved when a table is bound rather than per request: the
//! data path finds its route's [`RouteMetrics`] by index (no label hashing, no lock) and
//! records with relaxed atomic adds. A series is created on its first use (one family lock,
//! once), so routes without traffic export nothing.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use http::Method;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::histogram::AtomicHistogram;
use super::labels::{RequestLabels, RouteLabels};
use crate::table::{Route, RouteTable};

pub type HistogramFamily<L> = Family<L, AtomicHistogram, fn() -> AtomicHistogram>;

/// Method classes: the common methods by name, anything else as `OTHER`.
pub const METHODS: [&str; 8] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "OTHER"];
/// Status classes.
pub const STATUSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const SLOTS: usize = METHODS.len() * STATUSES.len();

/// A request method reduced to one of [`METHODS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodClass(usize);

impl MethodClass {
    pub fn of(method: &Method) -> Self {
        let i = match *method {
            Method::GET => 0,
            Method::HEAD => 1,
            Method::POST => 2,
            Method::PUT => 3,
            Method::DELETE => 4,
            Method::PATCH => 5,
            Method::OPTIONS => 6,
            _ => 7,
        };
        Self(i)
    }

    pub fn as_str(self) -> &'static str {
        METHODS.get(self.0).copied().unwrap_or("OTHER")
    }
}

/// `1xx` .. `5xx`; codes outside 100-599 count as `5xx`.
fn status_class(status: u16) -> usize {
    usize::from((status / 100).clamp(1, 5)) - 1
}

/// The request families, shared by every [`RouteMetrics`].
#[derive(Debug, Clone)]
pub struct RequestFamilies {
    pub requests: Family<RequestLabels, Counter>,
    pub durations: HistogramFamily<RequestLabels>,
    pub request_sizes: HistogramFamily<RouteLabels>,
    pub response_sizes: HistogramFamily<RouteLabels>,
    pub upstream_times: HistogramFamily<RouteLabels>,
}

/// What one finished request contributes.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub method: MethodClass,
    pub status: u16,
    pub elapsed: Duration,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// The handles of one route owner: namespace, Ingress, Service.
///
/// The handles themselves are allocated on the owner's first request: a table of 10,000
/// Ingresses keeps one small struct per owner, not 83 cells each, until traffic arrives.
#[derive(Debug)]
pub struct RouteMetrics {
    labels: RouteLabels,
    families: Arc<RequestFamilies>,
    handles: OnceLock<Box<Handles>>,
}

/// The series of one owner, each created on its first use.
#[derive(Debug)]
struct Handles {
    requests: [OnceLock<Counter>; SLOTS],
    durations: [OnceLock<AtomicHistogram>; SLOTS],
    request_size: OnceLock<AtomicHistogram>,
    response_size: OnceLock<AtomicHistogram>,
    upstream_time: OnceLock<AtomicHistogram>,
}

impl Handles {
    fn new() -> Box<Self> {
        Box::new(Self {
            requests: std::array::from_fn(|_| OnceLock::new()),
            durations: std::array::from_fn(|_| OnceLock::new()),
            request_size: OnceLock::new(),
            response_size: OnceLock::new(),
            upstream_time: OnceLock::new(),
        })
    }
}

impl RouteMetrics {
    pub fn new(labels: RouteLabels, families: Arc<RequestFamilies>) -> Self {
        Self { labels, families, handles: OnceLock::new() }
    }

    fn handles(&self) -> &Handles {
        self.handles.get_or_init(Handles::new)
    }

    pub fn namespace(&self) -> &str {
        &self.labels.namespace
    }

    pub fn ingress(&self) -> &str {
        &self.labels.ingress
    }

    pub fn service(&self) -> &str {
        &self.labels.service
    }

    fn request_labels(&self, slot: usize) -> RequestLabels {
        let RouteLabels { namespace, ingress, service } = self.labels.clone();
        let method = METHODS.get(slot / STATUSES.len()).copied().unwrap_or("OTHER");
        let status = STATUSES.get(slot % STATUSES.len()).copied().unwrap_or("5xx");
        RequestLabels { namespace, ingress, service, method, status }
    }

    /// Counts one finished request: the hot path's whole metrics cost.
    pub fn record(&self, outcome: &Outcome) {
        let slot = outcome.method.0 * STATUSES.len() + status_class(outcome.status);
        let families = &self.families;
        let handles = self.handles();
        if let Some(cell) = handles.requests.get(slot) {
            cell.get_or_init(|| families.requests.get_or_create_owned(&self.request_labels(slot))).inc();
        }
        if let Some(cell) = handles.durations.get(slot) {
            cell.get_or_init(|| families.durations.get_or_create_owned(&self.request_labels(slot)))
                .observe_duration(outcome.elapsed);
        }
        handles
            .request_size
            .get_or_init(|| families.request_sizes.get_or_create_owned(&self.labels))
            .observe(outcome.bytes_in);
        handles
            .response_size
            .get_or_init(|| families.response_sizes.get_or_create_owned(&self.labels))
            .observe(outcome.bytes_out);
    }

    /// Time from sending the request upstream to its response header.
    pub fn record_upstream_time(&self, elapsed: Duration) {
        self.handles()
            .upstream_time
            .get_or_init(|| self.families.upstream_times.get_or_create_owned(&self.labels))
            .observe_duration(elapsed);
    }

    /// Removes this owner's series (its routes are gone from the table).
    fn forget(&self) {
        if self.handles.get().is_none() {
            return; // never used: it has no series
        }
        for slot in 0..SLOTS {
            let labels = self.request_labels(slot);
            self.families.requests.remove(&labels);
            self.families.durations.remove(&labels);
        }
        self.families.request_sizes.remove(&self.labels);
        self.families.response_sizes.remove(&self.labels);
        self.families.upstream_times.remove(&self.labels);
    }
}

/// The Ingresses sending to one backend, each with its handles (usually just one).
type Owners = Box<[(Arc<str>, Arc<RouteMetrics>)]>;

/// The handles of one table, by backend index, then by Ingress.
#[derive(Debug, Default)]
pub struct RouteIndex {
    by_backend: Vec<Owners>,
}

impl RouteIndex {
    /// The handles for a route of the table this index was bound to.
    pub fn find(&self, route: &Route) -> Option<&Arc<RouteMetrics>> {
        let owners = self.by_backend.get(route.backend)?;
        owners
            .iter()
            .find(|(ingress, _)| Arc::ptr_eq(ingress, &route.ingress))
            .or_else(|| owners.iter().find(|(ingress, _)| **ingress == *route.ingress))
            .map(|(_, metrics)| metrics)
    }
}

/// Owns every [`RouteMetrics`] by label set, so handles (and their first-use work) survive
/// table swaps. Only the control plane takes its lock.
#[derive(Debug)]
pub struct RouteRegistry {
    families: Arc<RequestFamilies>,
    known: Mutex<HashMap<RouteLabels, Arc<RouteMetrics>>>,
    unrouted: Arc<RouteMetrics>,
}

impl RouteRegistry {
    pub fn new(families: RequestFamilies) -> Self {
        let families = Arc::new(families);
        let labels = RouteLabels { namespace: String::new(), ingress: String::new(), service: String::new() };
        let unrouted = Arc::new(RouteMetrics::new(labels, families.clone()));
        Self { families, known: Mutex::new(HashMap::new()), unrouted }
    }

    /// Handles for requests that matched no route (400, 404): empty labels.
    pub fn unrouted(&self) -> &Arc<RouteMetrics> {
        &self.unrouted
    }

    /// Resolves the handles of every route of `table`, reusing those of earlier tables, and
    /// drops the series of owners that are no longer in the table.
    pub fn bind(&self, table: &RouteTable) -> RouteIndex {
        let mut known = self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut by_backend: Vec<Vec<(Arc<str>, Arc<RouteMetrics>)>> = vec![Vec::new(); table.backends().len()];
        let mut seen = HashSet::new();
        for route in table.routes() {
            let (Some(backend), Some(owners)) = (table.backend(route.backend), by_backend.get_mut(route.backend))
            else {
                continue;
            };
            if owners.iter().any(|(ingress, _)| **ingress == *route.ingress) {
                continue;
            }
            let (namespace, ingress) = route.ingress.split_once('/').unwrap_or(("", &route.ingress));
            let labels = RouteLabels {
                namespace: namespace.to_owned(),
                ingress: ingress.to_owned(),
                service: backend.id.service.clone(),
            };
            let metrics = known
                .entry(labels.clone())
                .or_insert_with(|| Arc::new(RouteMetrics::new(labels.clone(), self.families.clone())))
                .clone();
            seen.insert(labels);
            owners.push((route.ingress.clone(), metrics));
        }
        known.retain(|labels, metrics| {
            let keep = seen.contains(labels);
            if !keep {
                metrics.forget();
            }
            keep
        });
        RouteIndex { by_backend: by_backend.into_iter().map(Vec::into_boxed_slice).collect() }
    }
}
