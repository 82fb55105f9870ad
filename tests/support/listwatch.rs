//! Lists and watches of one collection for the in-test API server: pages by `limit` and
//! `continue`, field and label selectors, and watch streams of JSON lines (ADDED, MODIFIED,
//! DELETED, BOOKMARK, and an ERROR 410 for a version older than the last compaction).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::apiserver::{Body, Shared, Target, json_response};
use super::world::{self, status};

pub(crate) async fn list(shared: &Arc<Shared>, target: &Target, params: &HashMap<String, String>) -> Response<Body> {
    let plural = target.resource.rsplit('/').next().unwrap_or_default().to_owned();
    loop {
        let released = shared.released.notified();
        if !shared.held.lock().unwrap().contains(&plural) {
            break;
        }
        released.await;
    }
    let fields = params.get("fieldSelector").map(String::as_str).unwrap_or_default();
    let labels = params.get("labelSelector").map(String::as_str).unwrap_or_default();
    let world = shared.world.lock().unwrap();
    let items = world.select(&target.resource, target.namespace.as_deref(), fields, labels);
    let offset: usize = params.get("continue").and_then(|c| c.parse().ok()).unwrap_or(0);
    let limit: usize = params.get("limit").and_then(|l| l.parse().ok()).filter(|l| *l > 0).unwrap_or(usize::MAX);
    let end = offset.saturating_add(limit).min(items.len());
    let page: Vec<Value> = items[offset.min(end)..end]
        .iter()
        .map(|item| {
            let mut item = item.clone();
            let map = item.as_object_mut().unwrap();
            map.remove("apiVersion");
            map.remove("kind");
            item
        })
        .collect();
    let (api_version, kind) = world::kind_of(&target.resource);
    let mut metadata = json!({"resourceVersion": world.rv.to_string()});
    if end < items.len() {
        metadata["continue"] = json!(end.to_string());
    }
    json_response(
        StatusCode::OK,
        &json!({"apiVersion": api_version, "kind": format!("{kind}List"), "metadata": metadata, "items": page}),
    )
}

pub(crate) fn watch(
    shared: &Arc<Shared>,
    target: &Target,
    params: &HashMap<String, String>,
    up: CancellationToken,
) -> Response<Body> {
    let from: u64 = params.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
    let bookmarks = params.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let fields = params.get("fieldSelector").cloned().unwrap_or_default();
    let labels = params.get("labelSelector").cloned().unwrap_or_default();
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let closed = shared.watches.lock().unwrap().clone();
    let shared = shared.clone();
    let resource = target.resource.clone();
    let namespace = target.namespace.clone();
    let (api_version, kind) = world::kind_of(&resource);
    tokio::spawn(async move {
        let line = |v: Value| Bytes::from(format!("{v}\n"));
        let mut version = shared.version.subscribe();
        let mut last = from;
        {
            let world = shared.world.lock().unwrap();
            if from < world.compacted {
                let gone = status(410, "Expired", &format!("too old resource version: {from} ({})", world.rv));
                let _ = tx.try_send(line(json!({"type": "ERROR", "object": gone})));
                return;
            }
            if from == 0 {
                last = world.rv;
            }
        }
        loop {
            let lines: Vec<Bytes> = {
                let world = shared.world.lock().unwrap();
                let mut lines: Vec<Bytes> = world
                    .log
                    .iter()
                    .filter(|c| c.rv > last && c.resource == resource)
                    .filter(|c| namespace.as_ref().is_none_or(|ns| *ns == c.namespace))
                    .filter(|c| world::matches(&c.object, &fields, &labels))
                    .map(|c| line(json!({"type": c.kind, "object": c.object})))
                    .collect();
                if lines.is_empty() && bookmarks && world.rv > last {
                    let mark = json!({"apiVersion": api_version, "kind": kind, "metadata": {"resourceVersion": world.rv.to_string()}});
                    lines.push(line(json!({"type": "BOOKMARK", "object": mark})));
                }
                last = world.rv;
                lines
            };
            for l in lines {
                if tx.send(l).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                changed = version.changed() => if changed.is_err() { return },
                () = closed.cancelled() => return,
                () = up.cancelled() => return,
                () = tx.closed() => return,
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|bytes| (Ok::<_, Infallible>(Frame::data(bytes)), rx))
    });
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    response.headers_mut().insert(http::header::CONTENT_TYPE, "application/json".parse().unwrap());
    response
}
