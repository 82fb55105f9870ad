//! Large bodies stream through the proxy in both directions with bounded memory. Its own
//! test binary, so the peak RSS it checks belongs to this test alone.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step fails the test")]

mod support;

use std::convert::Infallible;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::*;

const SIZE: usize = 192 * 1024 * 1024;
const ALLOWED_GROWTH_KIB: u64 = 96 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_both_ways_with_flat_memory() {
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
    let before = peak_rss_kib();

    // Download: count the bytes as they arrive.
    let c = client();
    let (status, _, _) = get(&c, proxy.http_addr, "big.example.com", "/").await;
    assert_eq!(status, 200);
    let req = Request::get(format!("http://{}/bytes/{SIZE}", proxy.http_addr))
        .header("host", "big.example.com")
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let mut body = c.request(req).await.unwrap().into_body();
    let mut received = 0usize;
    while let Some(frame) = body.frame().await {
        received += frame.unwrap().data_ref().map_or(0, |d| d.len());
    }
    assert_eq!(received, SIZE);

    // Upload: a generated stream the upstream counts.
    let chunk = Bytes::from(vec![b'y'; 64 * 1024]);
    let chunks = SIZE / chunk.len();
    let stream = futures_util::stream::iter((0..chunks).map(move |_| Ok::<_, Infallible>(Frame::data(chunk.clone()))));
    let uploader = Client::builder(TokioExecutor::new()).build_http::<StreamBody<_>>();
    let req = Request::post(format!("http://{}/count-body", proxy.http_addr))
        .header("host", "big.example.com")
        .body(StreamBody::new(stream))
        .unwrap();
    let response = uploader.request(req).await.unwrap();
    assert_eq!(response.status(), 200);
    let counted = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(counted, SIZE.to_string());

    let growth = peak_rss_kib().saturating_sub(before);
    assert!(growth < ALLOWED_GROWTH_KIB, "peak RSS grew by {growth} KiB moving {} MiB each way", SIZE >> 20);
    eprintln!("peak RSS growth: {growth} KiB for {} MiB each way", SIZE >> 20);
}
