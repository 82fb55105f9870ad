//! Hot reload of the manifests directory: changes take effect quickly, and requests in flight
//! or arriving during a swap never fail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step fails the test")]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::*;

fn site(endpoint: &Upstream) -> String {
    [
        CLASS_YAML.to_owned(),
        service_yaml("app", &[endpoint.addr]),
        ingress_yaml("app", "app.example.com", &[("/", "Prefix", "app")]),
    ]
    .join("---\n")
}

async fn served_by(c: &HttpClient, proxy: std::net::SocketAddr, host: &str) -> Option<String> {
    let (status, _, body) = get(c, proxy, host, "/").await;
    (status == 200).then(|| echo(&body)["name"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrites_under_load_fail_no_request() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.yaml");
    std::fs::write(&file, site(&a)).unwrap();
    let proxy = start_proxy(dir.path(), |_| {}).await;
    let addr = proxy.http_addr;

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stop, ok) = (stop.clone(), ok.clone());
        load.push(tokio::spawn(async move {
            let c = client();
            let mut failures = Vec::new();
            // Bounded: at most 20,000 requests per task, and the writer stops it sooner.
            for _ in 0..20_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let (status, _, body) = get(&c, addr, "app.example.com", "/").await;
                if status == 200 {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failures.push(format!("{status}: {body}"));
                }
            }
            failures
        }));
    }

    let c = client();
    let mut latencies = Vec::new();
    for i in 0..20 {
        let (next, name) = if i % 2 == 0 { (&b, "b") } else { (&a, "a") };
        let written = Instant::now();
        if i % 4 < 2 {
            write_atomic(&file, &site(next));
        } else {
            std::fs::write(&file, site(next)).unwrap();
        }
        eventually("the new backend serves", Duration::from_secs(5), || async {
            served_by(&c, addr, "app.example.com").await.as_deref() == Some(name)
        })
        .await;
        latencies.push(written.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for task in load {
        failures.extend(task.await.unwrap());
    }
    latencies.sort();
    eprintln!(
        "{} requests during 20 reloads; change-to-live p50 {:?}, max {:?}",
        ok.load(Ordering::Relaxed),
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    assert!(failures.is_empty(), "{} failed requests, first: {:?}", failures.len(), failures.first());
    assert!(ok.load(Ordering::Relaxed) > 100, "the load ran");
}

#[tokio::test]
async fn files_created_renamed_and_deleted_take_effect() {
    let a = Upstream::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.yaml"), site(&a)).unwrap();
    let proxy = start_proxy(dir.path(), |_| {}).await;
    let c = client();
    let addr = proxy.http_addr;
    assert_eq!(served_by(&c, addr, "app.example.com").await.as_deref(), Some("a"));

    // A new file in a new subdirectory.
    std::fs::create_dir(dir.path().join("more")).unwrap();
    let other = ingress_yaml("other", "other.example.com", &[("/", "Prefix", "app")]);
    std::fs::write(dir.path().join("more/other.yml"), &other).unwrap();
    eventually("new file served", Duration::from_secs(5), || async {
        served_by(&c, addr, "other.example.com").await.is_some()
    })
    .await;

    // An editor swap file is ignored, a rename keeps serving.
    std::fs::write(dir.path().join("more/.other.yml.swp"), "garbage: [").unwrap();
    std::fs::rename(dir.path().join("more/other.yml"), dir.path().join("more/renamed.yaml")).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(served_by(&c, addr, "other.example.com").await.is_some());

    // Deleting removes the routes.
    std::fs::remove_file(dir.path().join("more/renamed.yaml")).unwrap();
    eventually("deleted file no longer served", Duration::from_secs(5), || async {
        served_by(&c, addr, "other.example.com").await.is_none()
    })
    .await;
    assert_eq!(served_by(&c, addr, "app.example.com").await.as_deref(), Some("a"));

    let routes: serde_json::Value = {
        let (_, _, body) = get(&c, proxy.admin_addr, "admin", "/routes").await;
        serde_json::from_str(&body).unwrap()
    };
    assert!(routes["diagnostics"].as_array().unwrap().is_empty(), "the swap file was never read: {routes}");
}

#[tokio::test]
async fn a_broken_edit_keeps_serving_the_last_good_version() {
    let a = Upstream::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.yaml");
    std::fs::write(&file, site(&a)).unwrap();
    let proxy = start_proxy(dir.path(), |_| {}).await;
    let c = client();
    std::fs::write(&file, format!("{}\n  broken: [", site(&a))).unwrap();
    eventually("the diagnostic shows", Duration::from_secs(5), || async {
        let (_, _, body) = get(&c, proxy.admin_addr, "admin", "/routes").await;
        body.contains("keeping the objects from its last good version")
    })
    .await;
    assert_eq!(served_by(&c, proxy.http_addr, "app.example.com").await.as_deref(), Some("a"));
}
