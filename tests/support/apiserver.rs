//! An in-test Kubernetes API server on 127.0.0.1:0 that speaks the real protocol to the real
//! `kube` client: paginated lists (`limit`/`continue`), `?watch=true` streams of
//! ADDED/MODIFIED/DELETED/BOOKMARK lines, 410 Gone after compaction, create/replace with
//! resourceVersion conflicts (409), merge patches, and the `status` subresource.
//!
//! Tests change the world directly (`apply`, `delete`), stop and resume the server to make
//! an outage, compact it to force a relist, and hold a kind's lists to delay a sync.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::listwatch;
use super::world::{Key, Logged, World, merge_patch, resource_of, status};

pub(crate) type Body = BoxBody<Bytes, Infallible>;

pub(crate) struct Shared {
    pub(crate) world: Mutex<World>,
    /// Bumped on every change: wakes the watch streams.
    pub(crate) version: watch::Sender<u64>,
    /// Cancelled by `compact`: every open watch stream ends.
    pub(crate) watches: Mutex<CancellationToken>,
    /// Collections whose lists wait until released.
    pub(crate) held: Mutex<HashSet<String>>,
    pub(crate) released: Notify,
    /// Collections whose next PUT loses a race with another writer (409 Conflict).
    conflicts: Mutex<HashSet<String>>,
    /// Collections whose next PATCHes (this many) answer 500, as an API server in trouble.
    failing_patches: Mutex<HashMap<String, usize>>,
}

pub struct ApiServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    /// Cancelled by `stop`: the listener and every connection close.
    up: Mutex<Option<CancellationToken>>,
}

impl ApiServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            world: Mutex::new(World::default()),
            version: watch::channel(0).0,
            watches: Mutex::new(CancellationToken::new()),
            held: Mutex::new(HashSet::new()),
            released: Notify::new(),
            conflicts: Mutex::new(HashSet::new()),
            failing_patches: Mutex::new(HashMap::new()),
        });
        let server = Self { addr, shared, up: Mutex::new(None) };
        server.serve(listener);
        server
    }

    fn serve(&self, listener: TcpListener) {
        let up = CancellationToken::new();
        *self.up.lock().unwrap() = Some(up.clone());
        let shared = self.shared.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    accepted = listener.accept() => match accepted { Ok(c) => c, Err(_) => continue },
                    () = up.cancelled() => return,
                };
                let shared = shared.clone();
                let up = up.clone();
                tokio::spawn(async move {
                    let conn_up = up.clone();
                    let service = service_fn(move |req| {
                        let shared = shared.clone();
                        let up = conn_up.clone();
                        async move { Ok::<_, Infallible>(handle(&shared, req, up).await) }
                    });
                    let conn =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = conn => {}
                        () = up.cancelled() => {}
                    }
                });
            }
        });
    }

    /// An outage: the listener closes and every open connection (watches too) drops.
    pub fn stop(&self) {
        if let Some(up) = self.up.lock().unwrap().take() {
            up.cancel();
        }
    }

    /// The end of an outage: listens again on the same address.
    pub async fn resume(&self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    /// Forgets the change log up to now: open watches end, and resuming from any older
    /// version gets 410 Gone.
    pub fn compact(&self) {
        {
            let mut world = self.shared.world.lock().unwrap();
            world.compacted = world.rv;
        }
        let old = std::mem::replace(&mut *self.shared.watches.lock().unwrap(), CancellationToken::new());
        old.cancel();
    }

    /// Lists of this collection (`"secrets"`) wait until `release`.
    pub fn hold(&self, plural: &str) {
        self.shared.held.lock().unwrap().insert(plural.to_owned());
    }

    pub fn release(&self, plural: &str) {
        self.shared.held.lock().unwrap().remove(plural);
        self.shared.released.notify_waiters();
    }

    /// The next PUT to this collection (`"leases"`) answers 409 Conflict, as if another
    /// writer had updated the object between the client's read and its write.
    pub fn conflict_next_put(&self, plural: &str) {
        self.shared.conflicts.lock().unwrap().insert(plural.to_owned());
    }

    /// The next `count` PATCHes to this collection (`"ingresses"`, status included) answer
    /// 500 Internal Server Error.
    pub fn fail_next_patches(&self, plural: &str, count: usize) {
        self.shared.failing_patches.lock().unwrap().insert(plural.to_owned(), count);
    }

    fn changed(&self) {
        let rv = self.shared.world.lock().unwrap().rv;
        self.shared.version.send_replace(rv);
    }

    /// Creates or replaces an object (from its apiVersion and kind) and announces it.
    pub fn apply(&self, object: Value) -> Value {
        let resource = resource_of(object["apiVersion"].as_str().unwrap(), object["kind"].as_str().unwrap());
        let stored = self.shared.world.lock().unwrap().put(&resource, object);
        self.changed();
        stored
    }

    /// Applies many objects as one burst.
    pub fn apply_all(&self, objects: impl IntoIterator<Item = Value>) {
        {
            let mut world = self.shared.world.lock().unwrap();
            for object in objects {
                let resource = resource_of(object["apiVersion"].as_str().unwrap(), object["kind"].as_str().unwrap());
                world.put(&resource, object);
            }
        }
        self.changed();
    }

    fn key(api_version: &str, kind: &str, namespace: &str, name: &str) -> Key {
        (resource_of(api_version, kind), namespace.to_owned(), name.to_owned())
    }

    pub fn delete(&self, api_version: &str, kind: &str, namespace: &str, name: &str) {
        let key = Self::key(api_version, kind, namespace, name);
        self.shared.world.lock().unwrap().remove(&key, true).expect("object to delete");
        self.changed();
    }

    /// Deletes without a DELETED event, as if the event had been compacted away.
    pub fn delete_silently(&self, api_version: &str, kind: &str, namespace: &str, name: &str) {
        let key = Self::key(api_version, kind, namespace, name);
        self.shared.world.lock().unwrap().remove(&key, false).expect("object to delete");
    }

    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let key = Self::key(api_version, kind, namespace, name);
        self.shared.world.lock().unwrap().objects.get(&key).cloned()
    }

    /// Every stored object of a kind, in key order.
    pub fn all(&self, api_version: &str, kind: &str) -> Vec<Value> {
        let resource = resource_of(api_version, kind);
        self.shared.world.lock().unwrap().select(&resource, None, "", "")
    }

    pub fn requests(&self) -> Vec<Logged> {
        self.shared.world.lock().unwrap().requests.clone()
    }

    /// A kubeconfig that reaches this server with `token` as the bearer token.
    pub fn kubeconfig(&self, dir: &Path, token: &str) -> PathBuf {
        let path = dir.join(format!("kubeconfig-{token}"));
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: http://{}\n\
             users:\n- name: {token}\n  user:\n    token: {token}\ncontexts:\n- name: test\n  context:\n    \
             cluster: test\n    user: {token}\n    namespace: default\ncurrent-context: test\n",
            self.addr
        );
        std::fs::write(&path, text).unwrap();
        path
    }
}

pub(crate) fn json_response(code: StatusCode, value: &Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())).boxed());
    *response.status_mut() = code;
    response.headers_mut().insert(http::header::CONTENT_TYPE, "application/json".parse().unwrap());
    response
}

fn error(code: u16, reason: &str, message: &str) -> Response<Body> {
    json_response(StatusCode::from_u16(code).unwrap(), &status(code, reason, message))
}

/// The parts of an API path.
pub(crate) struct Target {
    pub(crate) resource: String,
    pub(crate) namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (prefix_len, rest) = match *parts.first()? {
        "api" => (2, &parts[2.min(parts.len())..]),
        "apis" => (3, &parts[3.min(parts.len())..]),
        _ => return None,
    };
    let prefix = parts.get(..prefix_len)?.join("/");
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
        _ => (None, rest),
    };
    Some(Target {
        resource: format!("{prefix}/{}", rest.first()?),
        namespace,
        name: rest.get(1).map(|s| (*s).to_owned()),
        subresource: rest.get(2).map(|s| (*s).to_owned()),
    })
}

fn query_map(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

async fn handle(shared: &Arc<Shared>, req: Request<Incoming>, up: CancellationToken) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let who = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("anonymous")
        .to_owned();
    shared.world.lock().unwrap().requests.push(Logged {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        who,
    });
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(400, "BadRequest", "unreadable body"),
    };
    let Some(target) = parse_path(&path) else { return error(404, "NotFound", "unknown path") };
    let params = query_map(&query);
    let answer = match (&method, &target.name) {
        (&Method::GET, None) if params.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            return listwatch::watch(shared, &target, &params, up);
        }
        (&Method::GET, None) => return listwatch::list(shared, &target, &params).await,
        (&Method::GET, Some(name)) => get(shared, &target, name),
        (&Method::POST, None) => create(shared, &target, &body),
        (&Method::PUT, Some(name)) => replace(shared, &target, name, &body),
        (&Method::PATCH, Some(name)) => patch(shared, &target, name, &body),
        (&Method::DELETE, Some(name)) => {
            let key = (target.resource.clone(), target.namespace.clone().unwrap_or_default(), name.clone());
            match shared.world.lock().unwrap().remove(&key, true) {
                Some(object) => Ok((StatusCode::OK, object)),
                None => Err((404, "NotFound", format!("{name} not found"))),
            }
        }
        _ => Err((405, "MethodNotAllowed", "not supported here".to_owned())),
    };
    match answer {
        Ok((code, value)) => {
            if method != Method::GET {
                let rv = shared.world.lock().unwrap().rv;
                shared.version.send_replace(rv);
            }
            json_response(code, &value)
        }
        Err((code, reason, message)) => error(code, reason, &message),
    }
}

type Answer = Result<(StatusCode, Value), (u16, &'static str, String)>;

fn key_of(target: &Target, name: &str) -> Key {
    (target.resource.clone(), target.namespace.clone().unwrap_or_default(), name.to_owned())
}

fn get(shared: &Shared, target: &Target, name: &str) -> Answer {
    let world = shared.world.lock().unwrap();
    match world.objects.get(&key_of(target, name)) {
        Some(object) => Ok((StatusCode::OK, object.clone())),
        None => Err((404, "NotFound", format!("{} {name} not found", target.resource))),
    }
}

fn parse_body(body: &Bytes) -> Result<Value, (u16, &'static str, String)> {
    serde_json::from_slice(body).map_err(|e| (400, "BadRequest", e.to_string()))
}

fn create(shared: &Shared, target: &Target, body: &Bytes) -> Answer {
    let mut object = parse_body(body)?;
    if let Some(ns) = &target.namespace {
        object["metadata"]["namespace"] = json!(ns);
    }
    let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    let mut world = shared.world.lock().unwrap();
    if world.objects.contains_key(&key_of(target, &name)) {
        return Err((409, "AlreadyExists", format!("{name} already exists")));
    }
    Ok((StatusCode::CREATED, world.put(&target.resource, object)))
}

/// Applies `edit` to the stored object; only `status` changes through the status subresource
/// and `status` never changes through the main resource.
fn update(
    shared: &Shared,
    target: &Target,
    name: &str,
    edit: impl FnOnce(&Value) -> Value,
    check_version: bool,
) -> Answer {
    let mut world = shared.world.lock().unwrap();
    let Some(stored) = world.objects.get(&key_of(target, name)).cloned() else {
        return Err((404, "NotFound", format!("{name} not found")));
    };
    let edited = edit(&stored);
    let wanted = edited["metadata"]["resourceVersion"].as_str().unwrap_or_default();
    if check_version
        && !wanted.is_empty()
        && wanted != stored["metadata"]["resourceVersion"].as_str().unwrap_or_default()
    {
        return Err((
            409,
            "Conflict",
            format!("the object has been modified; please apply your changes to the latest version ({name})"),
        ));
    }
    let mut next = stored.clone();
    let is_ingress = target.resource.ends_with("/ingresses");
    if target.subresource.as_deref() == Some("status") {
        next["status"] = edited["status"].clone();
    } else {
        next = edited;
        next["metadata"]["namespace"] = stored["metadata"]["namespace"].clone();
        if is_ingress {
            next["status"] = stored["status"].clone();
        }
    }
    Ok((StatusCode::OK, world.put(&target.resource, next)))
}

fn replace(shared: &Shared, target: &Target, name: &str, body: &Bytes) -> Answer {
    let object = parse_body(body)?;
    let plural = target.resource.rsplit('/').next().unwrap_or_default();
    if shared.conflicts.lock().unwrap().remove(plural) {
        return Err((
            409,
            "Conflict",
            format!("the object has been modified; please apply your changes to the latest version ({name})"),
        ));
    }
    update(shared, target, name, |_| object, true)
}

fn patch(shared: &Shared, target: &Target, name: &str, body: &Bytes) -> Answer {
    let plural = target.resource.rsplit('/').next().unwrap_or_default();
    if let Some(left) = shared.failing_patches.lock().unwrap().get_mut(plural).filter(|left| **left > 0) {
        *left -= 1;
        return Err((500, "InternalError", format!("injected failure patching {name}")));
    }
    let patch = parse_body(body)?;
    update(
        shared,
        target,
        name,
        |stored| {
            let mut next = stored.clone();
            merge_patch(&mut next, &patch);
            next
        },
        false,
    )
}
