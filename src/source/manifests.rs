//! The manifests-directory source: every `*.yaml`, `*.yml` and `*.json` under a directory,
//! multi-document YAML and `List` kinds unrolled, re-read when anything changes.
//!
//! A file that stops parsing (an editor half-way through a save) keeps its last good objects
//! and gets a diagnostic, so a typo never takes routes down.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::Metadata;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::kube::lenient::strip;
use super::{Loaded, Snapshot};
use crate::diagnostic::{Diagnostic, Subject};

/// One object read from a file.
#[derive(Debug, Clone, PartialEq)]
enum Object {
    Ingress(Arc<Ingress>),
    IngressClass(Arc<IngressClass>),
    Service(Arc<Service>),
    EndpointSlice(Arc<EndpointSlice>),
    Secret(Arc<Secret>),
}

impl Object {
    /// `(kind, namespace, name)`: two files defining the same one is a conflict.
    fn identity(&self) -> (&'static str, String, String) {
        let (kind, meta) = match self {
            Self::Ingress(o) => ("Ingress", &o.metadata),
            Self::IngressClass(o) => ("IngressClass", &o.metadata),
            Self::Service(o) => ("Service", &o.metadata),
            Self::EndpointSlice(o) => ("EndpointSlice", &o.metadata),
            Self::Secret(o) => ("Secret", &o.metadata),
        };
        (kind, meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default())
    }
}

/// When the file was last seen: a change of either means it is read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

/// How long a file must be left alone before a shrunken version of it is believed.
const SETTLE: Duration = Duration::from_millis(300);

impl Stamp {
    /// A file changed in the last second may change again within the same coarse file-system
    /// clock tick with the same length, which its stamp cannot show: such files are re-read.
    fn is_recent(&self) -> bool {
        self.modified.and_then(|m| m.elapsed().ok()).is_none_or(|age| age < SETTLE)
    }
}

#[derive(Debug)]
struct CachedFile {
    stamp: Stamp,
    objects: Vec<(Object, usize)>,
    diagnostics: Vec<Diagnostic>,
}

/// A manifests directory and what was last read from it.
#[derive(Debug)]
pub struct ManifestDir {
    root: PathBuf,
    files: HashMap<PathBuf, CachedFile>,
    scanned_once: bool,
    /// A file was caught mid-write: scan again shortly.
    settling: bool,
    /// The last scan could list the directory (a `None` from `scan` then means "unchanged").
    readable: bool,
}

impl ManifestDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), files: HashMap::new(), scanned_once: false, settling: false, readable: false }
    }

    /// Whether the last scan read the directory: when it returned `None` too, what is in
    /// service is still what the directory holds.
    pub fn was_readable(&self) -> bool {
        self.readable
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the last scan kept an old version of a file caught mid-write, so another scan
    /// is due once the file has settled.
    pub fn is_settling(&self) -> bool {
        self.settling
    }

    /// Reads what changed since the last scan. Returns the whole picture when anything did
    /// (always on the first call), `None` when nothing changed.
    pub fn scan(&mut self) -> Option<Loaded> {
        self.settling = false;
        let mut root_diagnostics = Vec::new();
        let paths = match list_files(&self.root) {
            Ok(paths) => paths,
            Err(err) => {
                // An unreadable directory keeps what was loaded: losing every route because a
                // mount flickered would be worse than serving the last good picture.
                let diag = Diagnostic::error(self.file_subject(&self.root, None), "", err);
                self.readable = false;
                if self.scanned_once {
                    tracing::warn!(%diag, "manifests directory unreadable; keeping the last good table");
                    return None;
                }
                root_diagnostics.push(diag);
                Vec::new()
            }
        };
        self.readable = root_diagnostics.is_empty();
        let mut changed = !self.scanned_once;
        let wanted: HashSet<&PathBuf> = paths.iter().map(|(p, _)| p).collect();
        let before = self.files.len();
        self.files.retain(|p, _| wanted.contains(p));
        changed |= self.files.len() != before;
        for (path, stamp) in &paths {
            if self.files.get(path).is_some_and(|f| f.stamp == *stamp && !stamp.is_recent()) {
                continue;
            }
            let mut previous = self.files.remove(path);
            let (read, reused) = self.read_file(path, *stamp, &mut previous);
            let Some(previous) = previous else {
                changed = true;
                self.files.insert(path.clone(), read);
                continue;
            };
            if !reused && read.objects.len() < previous.objects.len() && stamp.is_recent() {
                // Fewer objects in a file that is still being written is most likely a writer
                // caught between truncating and writing: keep the last version until the
                // file has been quiet for a moment, then believe it.
                self.settling = true;
                let kept = CachedFile { stamp: Stamp { len: u64::MAX, modified: None }, ..previous };
                self.files.insert(path.clone(), kept);
                continue;
            }
            changed |= previous.diagnostics != read.diagnostics || (!reused && previous.objects != read.objects);
            self.files.insert(path.clone(), read);
        }
        self.scanned_once = true;
        if !changed {
            return None;
        }
        let mut loaded = self.assemble(paths.iter().map(|(p, _)| p));
        root_diagnostics.append(&mut loaded.diagnostics);
        loaded.diagnostics = root_diagnostics;
        Some(loaded)
    }

    fn file_subject(&self, path: &Path, line: Option<usize>) -> Subject {
        let shown = path.strip_prefix(&self.root).unwrap_or(path);
        let shown = if shown.as_os_str().is_empty() { path } else { shown };
        Subject::File { path: shown.display().to_string(), line }
    }

    /// Reads one file. When it does not parse and `previous` had objects, they are moved out
    /// of `previous` into the result (kept, not copied), and the flag returned is true.
    fn read_file(&self, path: &Path, stamp: Stamp, previous: &mut Option<CachedFile>) -> (CachedFile, bool) {
        let parsed = std::fs::read_to_string(path)
            .map_err(|e| (None, format!("cannot read: {e}")))
            .and_then(|text| parse_file(path, &text));
        match parsed {
            Ok((objects, problems)) => {
                let diagnostics = problems
                    .into_iter()
                    .map(|(line, msg)| Diagnostic::error(self.file_subject(path, Some(line)), "", msg))
                    .collect();
                (CachedFile { stamp, objects, diagnostics }, false)
            }
            Err((line, msg)) => {
                let subject = self.file_subject(path, line);
                match previous.as_mut() {
                    Some(prev) if !prev.objects.is_empty() => {
                        let msg = format!("{msg} (keeping the objects from its last good version)");
                        let diagnostics = vec![Diagnostic::error(subject, "", msg)];
                        (CachedFile { stamp, objects: std::mem::take(&mut prev.objects), diagnostics }, true)
                    }
                    _ => {
                        let diagnostics = vec![Diagnostic::error(subject, "", msg)];
                        (CachedFile { stamp, objects: Vec::new(), diagnostics }, false)
                    }
                }
            }
        }
    }

    /// Builds the snapshot from the cache, in path order; the first definition of an object wins.
    fn assemble<'a>(&self, paths: impl Iterator<Item = &'a PathBuf>) -> Loaded {
        let mut loaded = Loaded::default();
        let mut seen = HashMap::new();
        for path in paths {
            let Some(file) = self.files.get(path) else { continue };
            loaded.diagnostics.extend(file.diagnostics.iter().cloned());
            for (object, line) in &file.objects {
                let (kind, namespace, name) = object.identity();
                if let Some(first) = seen.get(&(kind, namespace.clone(), name.clone())) {
                    let msg = format!("{kind} {namespace}/{name} is already defined in {first}; this one is ignored");
                    loaded.diagnostics.push(Diagnostic::error(self.file_subject(path, Some(*line)), "", msg));
                    continue;
                }
                seen.insert((kind, namespace, name), self.file_subject(path, Some(*line)).to_string());
                push_object(&mut loaded.snapshot, object.clone());
            }
        }
        loaded
    }
}

fn push_object(snapshot: &mut Snapshot, object: Object) {
    match object {
        Object::Ingress(o) => snapshot.ingresses.push(o),
        Object::IngressClass(o) => snapshot.ingress_classes.push(o),
        Object::Service(o) => snapshot.services.push(o),
        Object::EndpointSlice(o) => snapshot.endpoint_slices.push(o),
        Object::Secret(o) => snapshot.secrets.push(o),
    }
}

/// Files to read, sorted, with their stamps. Hidden entries (`.foo.yaml.swp`, `..data`) are
/// skipped, which also avoids reading a ConfigMap mount twice through its symlinks.
fn list_files(root: &Path) -> Result<Vec<(PathBuf, Stamp)>, String> {
    let meta = std::fs::metadata(root).map_err(|e| format!("cannot read directory: {e}"))?;
    if !meta.is_dir() {
        return Err("not a directory".to_owned());
    }
    let mut out = Vec::new();
    let walk = walkdir::WalkDir::new(root).follow_links(true).max_depth(32).sort_by_file_name();
    let entries =
        walk.into_iter().filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in entries {
        let Ok(entry) = entry else { continue };
        let wanted =
            entry.path().extension().and_then(|e| e.to_str()).is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
        if !wanted || !entry.file_type().is_file() {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        out.push((entry.into_path(), Stamp { len: meta.len(), modified: meta.modified().ok() }));
    }
    Ok(out)
}

/// Objects with the line of their document, and per-document problems `(line, message)`.
type Parsed = (Vec<(Object, usize)>, Vec<(usize, String)>);

/// Parses one file. A syntax error fails the whole file (`Err((line, message))`); a document
/// that is valid YAML but not a valid object only loses that object.
///
/// Each document becomes typed objects as soon as it is parsed, so only one document's
/// generic tree is alive at a time (holding all of them first made the parse of a large file
/// peak at several times the size of its objects).
fn parse_file(path: &Path, text: &str) -> Result<Parsed, (Option<usize>, String)> {
    let mut objects = Vec::new();
    let mut problems = Vec::new();
    if path.extension().is_some_and(|e| e == "json") {
        let value: Value = serde_json::from_str(text).map_err(|e| (Some(e.line()), format!("invalid JSON: {e}")))?;
        collect_objects(value, 1, &mut objects, &mut problems);
    } else {
        for (start_line, doc) in split_yaml_documents(text) {
            let value: Value = match serde_norway::from_str(doc) {
                Ok(v) => v,
                Err(_) => {
                    // Parsed again padded with the lines before the document, so the parser's
                    // own positions, also those inside its message, count from the top of the
                    // file. Only on error: padding every document made a file of N documents
                    // cost O(N²) (26 s for 10,000 Ingresses in one file).
                    let padded = format!("{}{doc}", "\n".repeat(start_line - 1));
                    let e = serde_norway::from_str::<Value>(&padded).err();
                    let line = e.as_ref().and_then(|e| e.location()).map_or(start_line, |l| l.line());
                    let message = e.map_or_else(|| "invalid YAML".to_owned(), |e| format!("invalid YAML: {e}"));
                    return Err((Some(line), message));
                }
            };
            collect_objects(value, start_line, &mut objects, &mut problems);
        }
    }
    objects.shrink_to_fit();
    Ok((objects, problems))
}

/// Splits at `---` lines, keeping the 1-based line each document starts on. A `---` at the
/// start of a line is always a document marker: block scalars are indented.
fn split_yaml_documents(text: &str) -> Vec<(usize, &str)> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end();
        let marker = bare == "---" || bare.starts_with("--- ") || bare == "...";
        if marker {
            docs.push((start_line, &text[start..offset]));
            start = offset + line.len();
            start_line = n + 2;
        }
        offset += line.len();
    }
    docs.push((start_line, &text[start..]));
    docs.retain(|(_, d)| d.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')));
    docs
}

fn collect_objects(
    mut value: Value,
    line: usize,
    objects: &mut Vec<(Object, usize)>,
    problems: &mut Vec<(usize, String)>,
) {
    let Value::Object(map) = &mut value else {
        if !value.is_null() {
            problems.push((line, "document is not a Kubernetes object (expected a mapping)".to_owned()));
        }
        return;
    };
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default().to_owned();
    let api_version = map.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_owned();
    if kind.ends_with("List") {
        if let Some(Value::Array(items)) = map.remove("items") {
            for item in items {
                collect_objects(item, line, objects, problems);
            }
        }
        return;
    }
    // What Lintel never reads and should not hold (as the Kubernetes source does): objects
    // saved with `kubectl get -o yaml` carry both.
    strip(&mut value);
    let object = match (api_version.as_str(), kind.as_str()) {
        ("networking.k8s.io/v1", "Ingress") => typed(value, true).map(Object::Ingress),
        ("networking.k8s.io/v1", "IngressClass") => typed(value, false).map(Object::IngressClass),
        ("v1", "Service") => typed(value, true).map(Object::Service),
        ("discovery.k8s.io/v1", "EndpointSlice") => typed(value, true).map(Object::EndpointSlice),
        ("v1", "Secret") => typed(value, true).map(Object::Secret),
        (_, "Ingress" | "IngressClass" | "Service" | "EndpointSlice" | "Secret") => {
            Err(format!("{kind} with apiVersion {api_version:?} is not supported; use the GA version"))
        }
        _ => return, // Other kinds (Deployments, ConfigMaps...) are not ours to read.
    };
    match object {
        Ok(object) => objects.push((object, line)),
        Err(msg) => problems.push((line, msg)),
    }
}

/// The typed object. A `namespaced` object without a namespace lands in `default`, as
/// `kubectl apply` would put it; IngressClass is cluster-scoped and keeps none.
fn typed<T>(value: Value, namespaced: bool) -> Result<Arc<T>, String>
where
    T: serde::de::DeserializeOwned + Metadata<Ty = ObjectMeta>,
{
    let mut object: T = serde_json::from_value(value).map_err(|e| format!("invalid object: {e}"))?;
    if namespaced {
        object.metadata_mut().namespace.get_or_insert_with(|| "default".to_owned());
    }
    Ok(Arc::new(object))
}

/// Parses manifests held in memory as if they were one YAML file named `name`: for tests,
/// benches and tools that build manifests on the fly.
pub fn load_str(name: &str, text: &str) -> Loaded {
    let mut loaded = Loaded::default();
    match parse_file(Path::new(name), text) {
        Ok((objects, problems)) => {
            for (object, _) in objects {
                push_object(&mut loaded.snapshot, object);
            }
            for (line, msg) in problems {
                let subject = Subject::File { path: name.to_owned(), line: Some(line) };
                loaded.diagnostics.push(Diagnostic::error(subject, "", msg));
            }
        }
        Err((line, msg)) => {
            loaded.diagnostics.push(Diagnostic::error(Subject::File { path: name.to_owned(), line }, "", msg));
        }
    }
    loaded
}

/// Watches the directory and publishes a new [`Loaded`] whenever its contents change.
/// Events are coalesced (`debounce`); a periodic rescan catches anything the OS did not report.
/// A rescan that reads the directory and finds nothing new calls `synced`, so the time of the
/// last successful sync stays fresh on a quiet directory.
///
/// The OS watch is registered before this returns, so no change made after the call is missed
/// even if the returned future is polled later; the first poll rescans once to cover changes
/// made between the caller's first scan and the registration.
pub fn watch(
    mut dir: ManifestDir,
    tx: watch::Sender<Arc<Loaded>>,
    debounce: Duration,
    rescan: Duration,
    synced: impl Fn() + Send + 'static,
    shutdown: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    let wake = Arc::new(Notify::new());
    let watcher = start_watcher(dir.root(), wake.clone());
    // Without OS events, rescanning often is all that keeps changes live within a second.
    let rescan = if watcher.is_some() { rescan } else { rescan.min(Duration::from_secs(1)) };
    wake.notify_one();
    async move {
        let _watcher = watcher;
        loop {
            let next_scan = if dir.is_settling() { SETTLE } else { rescan };
            tokio::select! {
                () = wake.notified() => tokio::time::sleep(debounce).await,
                () = tokio::time::sleep(next_scan) => {}
                () = shutdown.cancelled() => return,
            }
            let scanned = tokio::task::spawn_blocking(move || {
                let loaded = dir.scan();
                (dir, loaded)
            })
            .await;
            let Ok((back, loaded)) = scanned else {
                tracing::error!("manifests scan task failed; stopping the watcher");
                return;
            };
            dir = back;
            match loaded {
                Some(loaded) => {
                    tracing::info!(dir = %dir.root().display(), "manifests changed");
                    tx.send_replace(Arc::new(loaded));
                }
                None if dir.was_readable() => synced(),
                None => {}
            }
        }
    }
}

fn start_watcher(root: &Path, wake: Arc<Notify>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let handler = move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            wake.notify_one();
        }
    };
    let watcher = notify::recommended_watcher(handler).and_then(|mut w| {
        w.watch(root, notify::RecursiveMode::Recursive)?;
        Ok(w)
    });
    match watcher {
        Ok(w) => Some(w),
        Err(err) => {
            tracing::warn!(%err, dir = %root.display(), "cannot watch the manifests directory; relying on periodic rescans");
            None
        }
    }
}

#[cfg(test)]
mod tests;
