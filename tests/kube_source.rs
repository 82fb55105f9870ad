//! The Kubernetes source end to end: the real `kube` client against an in-test API server
//! that speaks list/watch, with Lintel serving real requests to real upstreams.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests and their helpers fail loudly")]

#[path = "support/apiserver.rs"]
mod apiserver;
#[path = "support/harness.rs"]
mod harness;
#[path = "support/listwatch.rs"]
mod listwatch;
#[path = "support/objects.rs"]
mod objects;
#[path = "support/scrape.rs"]
mod scrape;
#[path = "support/world.rs"]
mod world;

use std::time::Duration;

use http::StatusCode;
use lintel::run::Running;

use apiserver::ApiServer;
use harness::{client, get, start_lintel, upstream, wait_until};
use objects::*;

const LIMIT: Duration = Duration::from_secs(10);

fn served(running: &Running) -> Vec<String> {
    running.live.load().compiled.served.clone()
}

#[tokio::test]
async fn an_ingress_added_changed_and_deleted_reaches_the_table() {
    let api = ApiServer::start().await;
    let app = upstream("app").await;
    api.apply_all([ingress_class(), service("web", "app"), slice("web", "app", app.port(), &[("127.0.0.1", true)])]);
    let dir = tempfile::tempdir().unwrap();
    let lintel = start_lintel(&api, dir.path(), "a", |_| {}).await;
    let http = client();
    let proxy = lintel.http_addr;

    api.apply(ingress("web", "app", "app.example.com", "/old", "app"));
    wait_until("the Ingress to be served", LIMIT, || async {
        get(&http, proxy, "app.example.com", "/old/x").await == (StatusCode::OK, "app".to_owned())
    })
    .await;

    api.apply(ingress("web", "app", "app.example.com", "/new", "app"));
    wait_until("the changed path to be served", LIMIT, || async {
        get(&http, proxy, "app.example.com", "/new").await.0 == StatusCode::OK
    })
    .await;
    assert_eq!(get(&http, proxy, "app.example.com", "/old/x").await.0, StatusCode::NOT_FOUND);

    api.delete("networking.k8s.io/v1", "Ingress", "web", "app");
    wait_until("the Ingress to be gone", LIMIT, || async { served(&lintel).is_empty() }).await;
    assert_eq!(get(&http, proxy, "app.example.com", "/new").await.0, StatusCode::NOT_FOUND);
    lintel.shutdown();
    lintel.wait().await;
}

/// `/metrics` on the admin listener.
async fn metrics(running: &Running) -> String {
    let (status, text) = get(&client(), running.admin_addr, "admin", "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    text
}

/// One sample of the scraped `/metrics`, 0 when the series does not exist yet.
async fn sample(running: &Running, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape::value(&metrics(running).await, name, labels).unwrap_or(0.0)
}

const RESTARTS: &str = "lintel_source_watch_restarts_total";
const API_ERRORS: &str = "lintel_source_api_errors_total";
const LAST_SYNC: &str = "lintel_last_successful_sync_timestamp_seconds";

/// `/readyz` on the admin listener.
async fn readyz(running: &Running) -> StatusCode {
    get(&client(), running.admin_addr, "admin", "/readyz").await.0
}

fn lists_of(api: &ApiServer, plural: &str) -> usize {
    api.requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with(plural) && !r.query.contains("watch=true"))
        .count()
}

#[tokio::test]
async fn readyz_waits_until_every_kind_is_listed() {
    let api = ApiServer::start().await;
    api.apply_all([ingress_class(), service("web", "app"), ingress("web", "app", "app.example.com", "/", "app")]);
    api.hold("secrets");
    let dir = tempfile::tempdir().unwrap();
    let lintel = start_lintel(&api, dir.path(), "a", |_| {}).await;
    for plural in ["ingresses", "ingressclasses", "services", "endpointslices", "secrets"] {
        wait_until(plural, LIMIT, || async { lists_of(&api, plural) > 0 }).await;
    }
    // Every other kind is listed; the Secrets list is still in flight.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(readyz(&lintel).await, StatusCode::SERVICE_UNAVAILABLE);
    assert!(served(&lintel).is_empty());
    api.release("secrets");
    wait_until("/readyz 200", LIMIT, || async { readyz(&lintel).await == StatusCode::OK }).await;
    assert_eq!(served(&lintel), ["web/app"]);
    lintel.shutdown();
    lintel.wait().await;
}

#[tokio::test]
async fn an_empty_cluster_is_ready_with_an_empty_table() {
    let api = ApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let lintel = start_lintel(&api, dir.path(), "a", |_| {}).await;
    wait_until("/readyz 200", LIMIT, || async { readyz(&lintel).await == StatusCode::OK }).await;
    assert_eq!(get(&client(), lintel.http_addr, "any.example.com", "/").await.0, StatusCode::NOT_FOUND);
    lintel.shutdown();
    lintel.wait().await;
}

#[tokio::test]
async fn long_lists_are_read_page_by_page() {
    let api = ApiServer::start().await;
    api.apply_all([ingress_class(), service("web", "app")]);
    api.apply_all((0..620).map(|i| ingress("web", &format!("app-{i:03}"), &format!("h{i}.example.com"), "/", "app")));
    let dir = tempfile::tempdir().unwrap();
    let lintel = start_lintel(&api, dir.path(), "a", |_| {}).await;
    wait_until("all 620 Ingresses", LIMIT, || async { served(&lintel).len() == 620 }).await;
    let pages: Vec<String> = api
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/ingresses") && !r.query.contains("watch=true"))
        .map(|r| r.query)
        .collect();
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert!(pages[0].contains("limit=500") && pages[1].contains("continue=500"), "{pages:?}");
    lintel.shutdown();
    lintel.wait().await;
}

#[tokio::test]
async fn an_endpoint_going_not_ready_leaves_the_rotation() {
    let api = ApiServer::start().await;
    let (a, b) = (upstream("a").await, upstream("b").await);
    // Both upstreams listen on 127.0.0.1 with their own port, so each gets its own slice.
    let mut first = slice("web", "app", a.port(), &[("127.0.0.1", true)]);
    first["metadata"]["name"] = "app-a".into();
    let mut other = slice("web", "app", b.port(), &[("127.0.0.1", true)]);
    other["metadata"]["name"] = "app-b".into();
    api.apply_all([ingress_class(), service("web", "app"), first, other.clone()]);
    api.apply(ingress("web", "app", "app.example.com", "/", "app"));
    let dir = tempfile::tempdir().unwrap();
    let lintel = start_lintel(&api, dir.path(), "a", |_| {}).await;
    let http = client();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..500 {
        let (status, body) = get(&http, lintel.http_addr, "app.example.com", "/").await;
        if status == StatusCode::OK {
            seen.insert(body);
        }
        if seen.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen.len(), 2, "both endpoints should answer: {seen:?}");

    other["endpoints"][0]["conditions"] = serde_json::json!({"ready": false, "serving": false});
    api.apply(other);
    wait_until("one endpoint left", LIMIT, || async {
        lintel.live.load().groups.iter().map(|g| g.endpoints().len()).sum::<usize>() == 1
    })
    .await;
    for _ in 0..20 {
        assert_eq!(get(&http, lintel.http_addr, "app.example.com", "/").await, (StatusCode::OK, "a".to_owned()));
    }
    lintel.shutdown();
    lintel.wait().await;
}

#[tokio::test]
async fn a_tls_secret_appearing_after_its_ingress_reaches_the_snapshot() {
    use std::sync::Arc;

    use lintel::source::Loaded;
    use lintel::source::kube::{TLS_SECRETS, WatchSettings};

    let api = ApiServer::start().await;
    let tls_ingress = with_tls(ingress("web", "app", "app.example.com", "/", "app"), "app.example.com", "app-tls");
    api.apply_all([ingress_class(), service("web", "app"), tls_ingress]);
    let dir = tempfile::tempdir().unwrap();
    let client = lintel::cluster::connect(Some(&api.kubeconfig(dir.path(), "a"))).await.unwrap();
    let (tx, rx) = tokio::sync::watch::channel(Arc::new(Loaded::default()));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let source = tokio::spawn(lintel::source::kube::watch(
        client,
        WatchSettings::default(),
        tx,
        Default::default(),
        shutdown.clone(),
    ));
    let has = |f: &dyn Fn(&Loaded) -> bool| f(&rx.borrow());
    wait_until("the first picture", LIMIT, || async { has(&|l| l.snapshot.ingresses.len() == 1) }).await;
    assert!(rx.borrow().snapshot.secrets.is_empty());

    api.apply(secret("web", "other", "Opaque"));
    api.apply(secret("web", "app-tls", "kubernetes.io/tls"));
    wait_until("the TLS Secret", LIMIT, || async { has(&|l| !l.snapshot.secrets.is_empty()) }).await;
    let names: Vec<_> = rx.borrow().snapshot.secrets.iter().map(|s| s.metadata.name.clone().unwrap()).collect();
    assert_eq!(names, ["app-tls"], "only TLS Secrets are ever read");
    let secret_calls: Vec<_> = api.requests().into_iter().filter(|r| r.path.ends_with("/secrets")).collect();
    let selector = TLS_SECRETS.replace('=', "%3D").replace('/', "%2F");
    assert!(secret_calls.iter().all(|r| r.query.contains(&selector)), "{secret_calls:?}");
    shutdown.cancel();
    source.await.unwrap();
}

#[tokio::test]
async fn a_tls_secret_appearing_after_its_ingress_is_served() {
    let api = ApiServer::start().await;
    let tls_ingress = with_tls(ingress("web", "app", "app.example.com", "/", "app"), "app.example.com", "app-tls");
    api.apply_all([ingress_class(), service("web", "app"), tls_ingress]);
    let dir = tempfile::tempdir().unwrap();
    let lintel = start_lintel(&api, dir.path(), "a", |_| {}).await;
    wait_until("the Ingress", LIMIT, || async { served(&lintel) == ["web/app"] }).await;
    let own_cert =
        |lintel: &Running| lintel.live.load().compiled.table.tls().certificate(Some("app.example.com")).is_some();
    assert!(!own_cert(&lintel), "no certificate before its Secret exists");

    api.apply(tls_secret_for("web", "app-tls", "app.example.com"));
    wait_until("the certificate in the table", LIMIT, || async { own_cert(&lintel) }).await;
    lintel.shutdown();
    lintel.wait().await;
}

#[tokio::test]
async fn watch_namespaces_limit_what_is_read_but_the_default_certificate_is_always_read() {
    use std::sync::Arc;

    use lintel::source::Loaded;
    use lintel::source::kube::WatchSettings;

    let api = ApiServer::start().await;
    api.apply_all([
        ingress_class(),
        ingress("web", "app", "app.example.com", "/", "app"),
        ingress("other", "app", "other.example.com", "/", "app"),
        secret("web", "app-tls", "kubernetes.io/tls"),
        secret("lintel", "fallback", "kubernetes.io/tls"),
        secret("lintel", "unrelated", "kubernetes.io/tls"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let client = lintel::cluster::connect(Some(&api.kubeconfig(dir.path(), "a"))).await.unwrap();
    let settings = WatchSettings {
        namespaces: vec!["web".to_owned()],
        extra_secrets: vec![("lintel".to_owned(), "fallback".to_owned())],
        ..WatchSettings::default()
    };
    let (tx, mut rx) = tokio::sync::watch::channel(Arc::new(Loaded::default()));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let source = tokio::spawn(lintel::source::kube::watch(client, settings, tx, Default::default(), shutdown.clone()));
    tokio::time::timeout(LIMIT, rx.changed()).await.unwrap().unwrap();
    let names = |items: Vec<(Option<String>, Option<String>)>| -> Vec<String> {
        items.into_iter().map(|(ns, name)| format!("{}/{}", ns.unwrap(), name.unwrap())).collect()
    };
    let loaded = rx.borrow().clone();
    let ingresses = loaded.snapshot.ingresses.iter().map(|i| (i.metadata.namespace.clone(), i.metadata.name.clone()));
    assert_eq!(names(ingresses.collect()), ["web/app"]);
    let secrets = loaded.snapshot.secrets.iter().map(|s| (s.metadata.namespace.clone(), s.metadata.name.clone()));
    assert_eq!(names(secrets.collect()), ["lintel/fallback", "web/app-tls"]);
    assert_eq!(loaded.snapshot.ingress_classes.len(), 1, "IngressClasses are cluster-wide");
    shutdown.cancel();
    source.await.unwrap();
}

#[tokio::test]
async fn an_object_that_does_not_parse_costs_only_itself() {
    let api = ApiServer::start().await;
    let mut broken = ingress("web", "broken", "broken.example.com", "/", "app");
    broken["spec"]["rules"] = serde_json::json!(5);
    api.apply_all([
        ingress_class(),
        service("web", "app"),
        ingress("web", "good", "good.example.com", "/", "app"),
        broken,
    ]);
    let dir = tempfile::tempdir().unwrap();
    let lintel = start_lintel(&api, dir.path(), "a", |_| {}).await;
    wait_until("the good Ingress", LIMIT, || async { served(&lintel) == ["web/good"] }).await;
    let diagnostics = lintel.live.load().compiled.diagnostics.clone();
    assert!(
        diagnostics.iter().any(|d| d.to_string().contains("Ingress web/broken") && d.message.contains("cannot read")),
        "{diagnostics:?}"
    );
    // The watch goes on.
    api.apply(ingress("web", "later", "later.example.com", "/", "app"));
    wait_until("a later Ingress", LIMIT, || async { served(&lintel) == ["web/good", "web/later"] }).await;
    lintel.shutdown();
    lintel.wait().await;
}

#[tokio::test]
async fn an_api_outage_during_traffic_fails_no_request() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let api = ApiServer::start().await;
    let app = upstream("app").await;
    api.apply_all([
        ingress_class(),
        service("web", "app"),
        slice("web", "app", app.port(), &[("127.0.0.1", true)]),
        ingress("web", "app", "app.example.com", "/", "app"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let lintel = start_lintel(&api, dir.path(), "a", |_| {}).await;
    wait_until("ready", LIMIT, || async { readyz(&lintel).await == StatusCode::OK }).await;

    let running = Arc::new(AtomicBool::new(true));
    let traffic = tokio::spawn({
        let running = running.clone();
        let proxy = lintel.http_addr;
        async move {
            let http = client();
            let (mut ok, mut failed) = (0u32, 0u32);
            // Bounded: at most 20,000 requests even if the test forgets to stop it.
            for _ in 0..20_000 {
                if !running.load(Ordering::Relaxed) {
                    break;
                }
                match get(&http, proxy, "app.example.com", "/").await {
                    (StatusCode::OK, body) if body == "app" => ok += 1,
                    _ => failed += 1,
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (ok, failed)
        }
    });

    tokio::time::sleep(Duration::from_millis(200)).await;
    api.stop();
    // While the API is away: a change it will only learn later, and readiness holds.
    api.apply(ingress("web", "later", "later.example.com", "/", "app"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(readyz(&lintel).await, StatusCode::OK);
    assert_eq!(served(&lintel), ["web/app"]);
    api.resume().await;
    wait_until("the change made during the outage", Duration::from_secs(40), || async {
        served(&lintel) == ["web/app", "web/later"]
    })
    .await;
    running.store(false, Ordering::Relaxed);
    let (ok, failed) = traffic.await.unwrap();
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
    assert!(ok > 100, "only {ok} requests went through");
    // The outage shows: the watches restarted, and reconnecting failed while the API was away.
    for resource in ["ingresses", "services", "endpointslices", "secrets", "ingressclasses"] {
        assert!(sample(&lintel, RESTARTS, &[("resource", resource)]).await >= 1.0, "{resource}");
    }
    assert!(sample(&lintel, API_ERRORS, &[("kind", "connection")]).await >= 1.0, "{}", metrics(&lintel).await);
    lintel.shutdown();
    lintel.wait().await;
}

#[tokio::test]
async fn a_relist_that_changes_nothing_still_counts_as_a_sync() {
    // No Ingress: nothing writes status, so nothing but the relist can move the sync time.
    let api = ApiServer::start().await;
    let other_lease = serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "unrelated", "namespace": "lintel"}, "spec": {}
    });
    api.apply_all([ingress_class(), service("web", "app"), other_lease]);
    let dir = tempfile::tempdir().unwrap();
    let lintel = start_lintel(&api, dir.path(), "a", |_| {}).await;
    wait_until("/readyz 200", LIMIT, || async { readyz(&lintel).await == StatusCode::OK }).await;
    let synced = sample(&lintel, LAST_SYNC, &[]).await;
    assert!(synced > 1.7e9, "{synced}");
    tokio::time::sleep(Duration::from_millis(50)).await;

    // A change no watch is told about, then compaction: every watch resumes from a version
    // older than the compaction, gets 410 Gone and lists again, finding nothing new.
    api.delete_silently("coordination.k8s.io/v1", "Lease", "lintel", "unrelated");
    api.compact();
    wait_until("every watch to restart", Duration::from_secs(20), || async {
        let text = metrics(&lintel).await;
        ["ingresses", "services", "endpointslices", "secrets", "ingressclasses"]
            .iter()
            .all(|r| scrape::value(&text, RESTARTS, &[("resource", r)]).unwrap_or(0.0) >= 1.0)
    })
    .await;
    wait_until("the sync time to move after the relist", Duration::from_secs(20), || async {
        sample(&lintel, LAST_SYNC, &[]).await > synced
    })
    .await;
    let rebuilds = sample(&lintel, "lintel_table_rebuilds_total", &[("outcome", "swapped")]).await;
    assert_eq!(rebuilds, 1.0, "nothing changed, so the table was not rebuilt");
    lintel.shutdown();
    lintel.wait().await;
}

#[tokio::test]
async fn gone_410_leads_to_a_relist_that_catches_lost_deletes() {
    let api = ApiServer::start().await;
    api.apply_all([
        ingress_class(),
        service("web", "app"),
        ingress("web", "kept", "kept.example.com", "/", "app"),
        ingress("web", "lost", "lost.example.com", "/", "app"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let lintel = start_lintel(&api, dir.path(), "a", |_| {}).await;
    wait_until("both Ingresses", LIMIT, || async { served(&lintel).len() == 2 }).await;
    let lists_before = lists_of(&api, "/ingresses");
    assert_eq!(sample(&lintel, RESTARTS, &[("resource", "ingresses")]).await, 0.0);

    // The delete event is lost to compaction; only a relist can notice it.
    api.delete_silently("networking.k8s.io/v1", "Ingress", "web", "lost");
    api.compact();
    wait_until("the relist to drop the lost Ingress", Duration::from_secs(20), || async {
        served(&lintel) == ["web/kept"]
    })
    .await;
    assert!(lists_of(&api, "/ingresses") > lists_before, "a new list of Ingresses");
    assert!(sample(&lintel, RESTARTS, &[("resource", "ingresses")]).await >= 1.0);
    assert!(sample(&lintel, API_ERRORS, &[("kind", "gone")]).await >= 1.0);
    // And the watch resumed after the relist.
    api.apply(ingress("web", "new", "new.example.com", "/", "app"));
    wait_until("a change after the relist", LIMIT, || async { served(&lintel) == ["web/kept", "web/new"] }).await;
    lintel.shutdown();
    lintel.wait().await;
}

/// Who (by bearer token) sent each `PATCH` to this Ingress's status.
fn status_writers(api: &ApiServer, name: &str) -> Vec<String> {
    let path = format!("/ingresses/{name}/status");
    api.requests().into_iter().filter(|r| r.method == "PATCH" && r.path.ends_with(&path)).map(|r| r.who).collect()
}

fn lb_status(api: &ApiServer, name: &str) -> serde_json::Value {
    let ingress = api.get("networking.k8s.io/v1", "Ingress", "web", name).unwrap();
    ingress["status"]["loadBalancer"]["ingress"].clone()
}

#[tokio::test]
async fn only_the_leader_writes_status_and_the_other_takes_over_when_it_stops() {
    let api = ApiServer::start().await;
    api.apply_all([
        ingress_class(),
        other_ingress_class(),
        service("web", "app"),
        ingress("web", "app", "app.example.com", "/", "app"),
        with_class(ingress("web", "theirs", "theirs.example.com", "/", "app"), "nginx"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let edit = |c: &mut lintel::config::Config| {
        c.publish_address = vec!["lb.example.com".to_owned(), "192.0.2.10".to_owned()];
        c.election_lease_duration = Duration::from_secs(2);
    };
    let mut replicas = vec![
        ("a", start_lintel(&api, dir.path(), "a", edit).await),
        ("b", start_lintel(&api, dir.path(), "b", edit).await),
    ];
    let published = serde_json::json!([{"ip": "192.0.2.10"}, {"hostname": "lb.example.com"}]);
    wait_until("status on the served Ingress", LIMIT, || async { lb_status(&api, "app") == published }).await;
    // Give the follower time to (wrongly) write too, then check only one replica wrote, once.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let writers = status_writers(&api, "app");
    assert_eq!(writers.len(), 1, "one write, then none while the status is right: {writers:?}");
    let leader = writers[0].clone();

    let at = replicas.iter().position(|(token, _)| *token == leader).unwrap();
    let (_, stopped) = replicas.remove(at);
    stopped.shutdown();
    stopped.wait().await;
    let (follower, _) = replicas[0];
    api.apply(ingress("web", "second", "second.example.com", "/", "app"));
    wait_until("the new leader writing status", LIMIT, || async { lb_status(&api, "second") == published }).await;
    assert_eq!(status_writers(&api, "second"), [follower]);

    // An Ingress that leaves for a class nobody serves is cleared by the leader.
    api.apply(with_class(ingress("web", "app", "app.example.com", "/", "app"), "gone"));
    wait_until("the status to be cleared", LIMIT, || async { lb_status(&api, "app").is_null() }).await;
    assert_eq!(status_writers(&api, "app"), [leader.clone(), follower.to_owned()]);
    assert!(status_writers(&api, "theirs").is_empty(), "another class's Ingress is never written");
    assert!(lb_status(&api, "theirs").is_null());
    for (_, running) in replicas {
        running.shutdown();
        running.wait().await;
    }
}

/// A status write the API refuses is counted, logged, and retried until it lands.
#[tokio::test]
async fn a_failed_status_write_is_counted_and_retried() {
    let api = ApiServer::start().await;
    api.apply_all([ingress_class(), service("web", "app"), ingress("web", "app", "app.example.com", "/", "app")]);
    api.fail_next_patches("ingresses", 1);
    let dir = tempfile::tempdir().unwrap();
    let running = start_lintel(&api, dir.path(), "a", |c| c.publish_address = vec!["192.0.2.10".to_owned()]).await;
    let published = serde_json::json!([{"ip": "192.0.2.10"}]);
    wait_until("status written after the retry", LIMIT, || async { lb_status(&api, "app") == published }).await;
    assert_eq!(sample(&running, API_ERRORS, &[("kind", "server_error")]).await, 1.0);
    running.shutdown();
    running.wait().await;
}

#[tokio::test]
async fn diagnostics_become_at_most_one_event_per_reason() {
    let api = ApiServer::start().await;
    let mut bad = ingress("web", "bad", "bad.example.com", "no-slash", "app");
    api.apply_all([ingress_class(), service("web", "app"), bad.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let lintel = start_lintel(&api, dir.path(), "a", |_| {}).await;
    let events = || {
        api.requests().into_iter().filter(|r| r.method == "POST" && r.path.ends_with("/namespaces/web/events")).count()
    };
    wait_until("an Event", LIMIT, || async { events() == 1 }).await;
    let event = api.all("events.k8s.io/v1", "Event").pop().unwrap();
    assert_eq!(event["reason"], "InvalidPath");
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["regarding"]["kind"], "Ingress");
    assert_eq!(event["regarding"]["name"], "bad");
    assert!(event["note"].as_str().unwrap().contains("must start with"), "{event}");

    // A second path problem on the same Ingress within the minute: no second Event.
    bad["spec"]["rules"][0]["http"]["paths"][0]["path"] = "still-no-slash".into();
    api.apply(bad);
    wait_until("the new diagnostic", LIMIT, || async {
        lintel.live.load().compiled.diagnostics.iter().any(|d| d.message.contains("still-no-slash"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(events(), 1);
    lintel.shutdown();
    lintel.wait().await;
}

#[tokio::test]
async fn a_lease_left_by_a_dead_leader_is_taken_over_once_it_expires() {
    let api = ApiServer::start().await;
    api.apply_all([
        ingress_class(),
        service("web", "app"),
        ingress("web", "app", "app.example.com", "/", "app"),
        serde_json::json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "lintel-leader", "namespace": "lintel"},
            "spec": {"holderIdentity": "dead-replica", "leaseDurationSeconds": 2,
                     "renewTime": "2024-01-01T00:00:00.000000Z", "leaseTransitions": 3}
        }),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let started = tokio::time::Instant::now();
    let lintel = start_lintel(&api, dir.path(), "a", |c| {
        c.publish_address = vec!["192.0.2.10".to_owned()];
        c.election_lease_duration = Duration::from_secs(2);
    })
    .await;
    assert_eq!(sample(&lintel, "lintel_leader", &[]).await, 0.0, "not leading while the Lease is held");
    wait_until("the takeover", LIMIT, || async { !lb_status(&api, "app").is_null() }).await;
    wait_until("lintel_leader 1", LIMIT, || async { sample(&lintel, "lintel_leader", &[]).await == 1.0 }).await;
    // Expiry is judged on our own clock from when the record was first seen, not from the
    // (ancient) renewTime written by another node.
    assert!(started.elapsed() >= Duration::from_secs(2), "took over after {:?}", started.elapsed());
    let lease = api.get("coordination.k8s.io/v1", "Lease", "lintel", "lintel-leader").unwrap();
    assert_ne!(lease["spec"]["holderIdentity"], "dead-replica");
    assert_eq!(lease["spec"]["leaseTransitions"], 4);
    lintel.shutdown();
    lintel.wait().await;
    let lease = api.get("coordination.k8s.io/v1", "Lease", "lintel", "lintel-leader").unwrap();
    assert!(lease["spec"]["holderIdentity"].is_null(), "released on shutdown: {lease}");
}

#[tokio::test]
async fn a_lease_write_that_loses_a_race_makes_no_leader() {
    use lintel::cluster::lease::{self, LeaseSettings};

    let api = ApiServer::start().await;
    api.apply(serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "lintel-leader", "namespace": "lintel"},
        "spec": {"leaseDurationSeconds": 1}
    }));
    api.conflict_next_put("leases");
    let dir = tempfile::tempdir().unwrap();
    let client = lintel::cluster::connect(Some(&api.kubeconfig(dir.path(), "a"))).await.unwrap();
    let settings = LeaseSettings::new("lintel".into(), "lintel-leader".into(), "me".into(), Duration::from_secs(1));
    let (tx, mut leader) = tokio::sync::watch::channel(false);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let metrics = std::sync::Arc::new(lintel::metrics::Metrics::new());
    let elector = tokio::spawn(lease::run(client, settings, tx, metrics.clone(), shutdown.clone()));
    tokio::time::timeout(LIMIT, leader.changed()).await.unwrap().unwrap();
    assert!(*leader.borrow());
    let leader_gauge = || scrape::value(&metrics.encode().unwrap(), "lintel_leader", &[]);
    wait_until("lintel_leader 1", LIMIT, || async { leader_gauge() == Some(1.0) }).await;
    let conflicts =
        scrape::value(&metrics.encode().unwrap(), "lintel_source_api_errors_total", &[("kind", "conflict")]);
    assert_eq!(conflicts, None, "a lost race (409) is no error");
    let puts = api.requests().iter().filter(|r| r.method == "PUT" && r.path.contains("/leases/")).count();
    assert_eq!(puts, 2, "the first write lost the race (409) and made no leader; the retry won");
    let lease = api.get("coordination.k8s.io/v1", "Lease", "lintel", "lintel-leader").unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "me");
    shutdown.cancel();
    elector.await.unwrap();
    assert!(!*leader.borrow());
    assert_eq!(leader_gauge(), Some(0.0), "not leading after shutdown");
    let lease = api.get("coordination.k8s.io/v1", "Lease", "lintel", "lintel-leader").unwrap();
    assert!(lease["spec"]["holderIdentity"].is_null());
}
