//! A 1 GiB response streams through the proxy with flat memory. Its own test binary, so
//! the peak RSS (VmHWM) it checks belongs to this test alone. (About 2 s in a debug build.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step fails the test")]

mod support;

use std::time::Instant;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use support::*;

const ALLOWED_GROWTH_KIB: u64 = 64 * 1024;

async fn stream_through(size: usize) {
    let upstream = Upstream::start("big").await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = [
        CLASS_YAML.to_owned(),
        service_yaml("big", &[upstream.addr]),
        ingress_yaml("b", "big.example.com", &[("/", "Prefix", "big")]),
    ]
    .join("---\n");
    std::fs::write(dir.path().join("b.yaml"), yaml).unwrap();
    let proxy = start_proxy(dir.path(), |_| {}).await;
    let c = client();
    let (status, _, _) = get(&c, proxy.http_addr, "big.example.com", "/").await;
    assert_eq!(status, 200);
    let before = peak_rss_kib();

    let started = Instant::now();
    let req = Request::get(format!("http://{}/bytes/{size}", proxy.http_addr))
        .header("host", "big.example.com")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let mut body = c.request(req).await.unwrap().into_body();
    let mut received = 0usize;
    while let Some(frame) = body.frame().await {
        received += frame.unwrap().data_ref().map_or(0, |d| d.len());
    }
    assert_eq!(received, size);
    let growth = peak_rss_kib().saturating_sub(before);
    let took = started.elapsed();
    eprintln!(
        "{} MiB streamed in {took:?} ({:.0} MiB/s); peak RSS {} KiB before, grew by {growth} KiB",
        size >> 20,
        (size >> 20) as f64 / took.as_secs_f64(),
        before
    );
    assert!(growth < ALLOWED_GROWTH_KIB, "peak RSS grew by {growth} KiB streaming {} MiB", size >> 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_gib_response_streams_with_flat_memory() {
    stream_through(1 << 30).await;
}
