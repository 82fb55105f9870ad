//! How long a change in the Kubernetes API takes to be live in the table, with 1,000
//! Ingresses loaded: a measurement (p50/p99 printed), not a timed assertion.
//!
//! `cargo test --test kube_latency -- --ignored --nocapture`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests and their helpers fail loudly")]

#[path = "support/apiserver.rs"]
#[allow(dead_code, reason = "shared with kube_source")]
mod apiserver;
#[path = "support/harness.rs"]
#[allow(dead_code, reason = "shared with kube_source")]
mod harness;
#[path = "support/listwatch.rs"]
mod listwatch;
#[path = "support/objects.rs"]
#[allow(dead_code, reason = "shared with kube_source")]
mod objects;
#[path = "support/world.rs"]
#[allow(dead_code, reason = "shared with kube_source")]
mod world;

use std::time::Duration;

use apiserver::ApiServer;
use harness::{start_lintel, wait_until};
use objects::{ingress, ingress_class, service, slice};

/// Not a timed assertion: measures how long a change in the API takes to be live in the
/// table with 1,000 Ingresses loaded, and prints p50/p99.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test: run with --ignored --nocapture"]
async fn latency_from_api_change_to_live_table_with_1000_ingresses() {
    let api = ApiServer::start().await;
    api.apply_all([ingress_class(), service("web", "app"), slice("web", "app", 9, &[("127.0.0.1", true)])]);
    api.apply_all((0..1000).map(|i| ingress("web", &format!("app-{i:04}"), &format!("h{i}.example.com"), "/", "app")));
    let dir = tempfile::tempdir().unwrap();
    let lintel = start_lintel(&api, dir.path(), "a", |_| {}).await;
    wait_until("1,000 Ingresses", Duration::from_secs(60), || async {
        lintel.live.load().compiled.served.len() == 1000
    })
    .await;

    let rounds = 200;
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..rounds {
        // Alternate: add an Ingress, and change the host of an existing one.
        let (name, host) = if i % 2 == 0 {
            (format!("probe-{i:04}"), format!("probe{i}.example.com"))
        } else {
            (format!("app-{i:04}"), format!("moved{i}.example.com"))
        };
        let started = std::time::Instant::now();
        api.apply(ingress("web", &name, &host, "/", "app"));
        loop {
            if lintel.live.load().compiled.table.find(&host, "/").is_some() {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "change {i} never became live");
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        samples.push(started.elapsed());
        // Let the control loop settle between probes, so each probe measures one change.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    samples.sort();
    let pick = |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    println!(
        "API change to live table, 1,000 Ingresses, {rounds} changes: p50 {:?}, p99 {:?}, max {:?}",
        pick(0.50),
        pick(0.99),
        samples[samples.len() - 1]
    );
    lintel.shutdown();
    lintel.wait().await;
}
