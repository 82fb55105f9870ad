//! Diagnostics as Kubernetes Events on their Ingress, so `kubectl describe ingress` shows why
//! a path or a certificate was rejected. Posted by the leader only, when a diagnostic first
//! appears, and at most one Event per Ingress per reason per minute: diagnostics that arrive
//! inside the window wait for it and go out together.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::diagnostic::{Diagnostic, Subject};
use crate::live::SharedLive;
use crate::metrics::Metrics;
use crate::source::Loaded;
use crate::source::kube::api_error_kind;

/// At most one Event per Ingress and reason in this window.
pub const WINDOW: Duration = Duration::from_secs(60);
/// The API refuses notes over 1 kB.
const MAX_NOTE: usize = 1000;
const POLL: Duration = Duration::from_secs(1);

/// The short `PascalCase` reason shown by `kubectl describe`, from the diagnostic's field.
pub fn reason(diag: &Diagnostic) -> &'static str {
    let field = diag.field.as_str();
    if field.starts_with("spec.tls") {
        "InvalidTLS"
    } else if field.starts_with("metadata.annotations") {
        "InvalidAnnotation"
    } else if field.starts_with("spec.ingressClassName") {
        "UnknownIngressClass"
    } else if field.starts_with("spec.defaultBackend") || field.contains(".backend") {
        "InvalidBackend"
    } else if field.ends_with(".host") {
        "InvalidHost"
    } else if field.contains(".path") {
        "InvalidPath"
    } else {
        "Rejected"
    }
}

/// One Event to post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub namespace: String,
    pub name: String,
    pub reason: &'static str,
    pub note: String,
}

/// Which diagnostics were posted, and when each (Ingress, reason) last got an Event.
#[derive(Debug, Default)]
pub struct Gate {
    posted: HashSet<Diagnostic>,
    last: HashMap<(String, String, &'static str), Instant>,
}

impl Gate {
    /// The Events to post now for `diagnostics` (the current set). A diagnostic that goes
    /// away and comes back is posted again.
    pub fn due(&mut self, diagnostics: &[Diagnostic], now: Instant) -> Vec<Due> {
        let present: HashSet<&Diagnostic> = diagnostics.iter().collect();
        self.posted.retain(|d| present.contains(d));
        self.last.retain(|_, at| now.duration_since(*at) < WINDOW);
        let mut fresh: BTreeMap<(String, String, &'static str), Vec<&Diagnostic>> = BTreeMap::new();
        for diag in diagnostics {
            let Subject::Object { kind, namespace, name } = &diag.subject else { continue };
            if kind != "Ingress" || self.posted.contains(diag) {
                continue;
            }
            fresh.entry((namespace.clone(), name.clone(), reason(diag))).or_default().push(diag);
        }
        let mut due = Vec::new();
        for (key, diags) in fresh {
            if self.last.contains_key(&key) {
                continue; // inside the window: wait
            }
            let mut note = diags.iter().map(|d| describe(d)).collect::<Vec<_>>().join("; ");
            truncate(&mut note, MAX_NOTE);
            self.posted.extend(diags.into_iter().cloned());
            self.last.insert(key.clone(), now);
            let (namespace, name, reason) = key;
            due.push(Due { namespace, name, reason, note });
        }
        due
    }
}

fn describe(diag: &Diagnostic) -> String {
    if diag.field.is_empty() { diag.message.clone() } else { format!("{}: {}", diag.field, diag.message) }
}

fn truncate(note: &mut String, max: usize) {
    if note.len() > max {
        let mut cut = max.saturating_sub(3);
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
        note.push_str("...");
    }
}

/// Posts the diagnostics of the table in service as Events while this replica leads.
pub async fn run(
    client: Client,
    identity: String,
    mut leader: watch::Receiver<bool>,
    pictures: watch::Receiver<Arc<Loaded>>,
    live: SharedLive,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let reporter = Reporter { controller: "lintel".to_owned(), instance: Some(identity) };
    let mut gate = Gate::default();
    let mut failing = false;
    loop {
        tokio::select! {
            Ok(()) = leader.changed() => {}
            () = tokio::time::sleep(POLL) => {}
            () = shutdown.cancelled() => return,
        }
        if !*leader.borrow() {
            gate = Gate::default();
            continue;
        }
        let table = live.load_full();
        let due = gate.due(&table.compiled.diagnostics, Instant::now());
        if due.is_empty() {
            continue;
        }
        let loaded = pictures.borrow().clone();
        for event in due {
            let uid = loaded
                .snapshot
                .ingresses
                .iter()
                .find(|i| {
                    i.metadata.namespace.as_deref() == Some(event.namespace.as_str())
                        && i.metadata.name.as_deref() == Some(event.name.as_str())
                })
                .and_then(|i| i.metadata.uid.clone());
            let reference = ObjectReference {
                api_version: Some("networking.k8s.io/v1".to_owned()),
                kind: Some("Ingress".to_owned()),
                namespace: Some(event.namespace.clone()),
                name: Some(event.name.clone()),
                uid,
                ..ObjectReference::default()
            };
            let posted = Event {
                type_: EventType::Warning,
                reason: event.reason.to_owned(),
                note: Some(event.note),
                action: "Compile".to_owned(),
                secondary: None,
            };
            // A fresh Recorder per Event: its cache would turn a later Event with the same
            // reason into a count bump on the old one, keeping the old note. `Gate` dedups.
            let recorder = Recorder::new(client.clone(), reporter.clone());
            let published = recorder.publish(&posted, &reference).await;
            if let Err(err) = &published {
                metrics.api_error(api_error_kind(err));
            }
            match published {
                Ok(()) => failing = false,
                Err(err) if !failing => {
                    failing = true;
                    tracing::warn!(ingress = %format!("{}/{}", event.namespace, event.name), %err, "cannot post an Event");
                }
                Err(err) => tracing::debug!(%err, "cannot post an Event"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(name: &str, field: &str, message: &str) -> Diagnostic {
        Diagnostic::error(Subject::object("Ingress", "ns", name), field, message)
    }

    #[test]
    fn reasons_follow_the_field() {
        assert_eq!(reason(&diag("a", "spec.rules[0].http.paths[1].path", "x")), "InvalidPath");
        assert_eq!(reason(&diag("a", "spec.rules[0].http.paths[1].backend", "x")), "InvalidBackend");
        assert_eq!(reason(&diag("a", "spec.rules[0].host", "x")), "InvalidHost");
        assert_eq!(reason(&diag("a", "spec.tls[0].secretName", "x")), "InvalidTLS");
        assert_eq!(reason(&diag("a", "", "x")), "Rejected");
    }

    #[tokio::test(start_paused = true)]
    async fn one_event_per_ingress_and_reason_per_minute() {
        let mut gate = Gate::default();
        let first = [diag("a", "spec.rules[0].http.paths[0].path", "bad one")];
        let due = gate.due(&first, Instant::now());
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].reason, "InvalidPath");
        assert_eq!(due[0].note, "spec.rules[0].http.paths[0].path: bad one");
        // The same diagnostic again: nothing new.
        assert!(gate.due(&first, Instant::now()).is_empty());
        // A second path problem inside the window waits; another reason goes out now.
        let second = [
            first[0].clone(),
            diag("a", "spec.rules[0].http.paths[1].path", "bad two"),
            diag("a", "spec.rules[1].host", "bad host"),
        ];
        let due = gate.due(&second, Instant::now());
        assert_eq!(due.iter().map(|d| d.reason).collect::<Vec<_>>(), vec!["InvalidHost"]);
        tokio::time::advance(WINDOW).await;
        let due = gate.due(&second, Instant::now());
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].note, "spec.rules[0].http.paths[1].path: bad two");
    }

    #[tokio::test(start_paused = true)]
    async fn other_subjects_are_not_events() {
        let mut gate = Gate::default();
        let file = Diagnostic::error(Subject::File { path: "x.yaml".to_owned(), line: None }, "", "bad");
        let service = Diagnostic::error(Subject::object("Service", "ns", "s"), "", "bad");
        assert!(gate.due(&[file, service], Instant::now()).is_empty());
    }

    #[test]
    fn long_notes_are_cut_on_a_char_boundary() {
        let mut note = "é".repeat(600);
        truncate(&mut note, MAX_NOTE);
        assert!(note.len() <= MAX_NOTE && note.ends_with("..."));
    }
}
