//! What metrics cost a request: the route lookup alone, against the lookup plus everything
//! the data path does for metrics (find the route's pre-resolved handles, clone and drop the
//! `Arc`, classify the method, two clock reads, count and observe). The difference is the
//! per-request overhead. A 1,000-route table; the first request of each series is warmed up.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "bench setup")]

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::Method;
use lintel::compile::{CompileOptions, compile};
use lintel::fixtures;
use lintel::metrics::{MethodClass, Metrics, Outcome};
use lintel::table::normalize_host;

fn per_request(c: &mut Criterion) {
    let table = compile(&fixtures::snapshot(100, 10, 100), &CompileOptions::default()).table;
    let metrics = Metrics::new();
    let index = metrics.bind_routes(&table);
    let requests: Vec<(String, &str, Method)> = (0..1024)
        .map(|i| {
            let method = if i % 4 == 0 { Method::POST } else { Method::GET };
            (fixtures::host((i * 7919) % 100), ["/", "/api/v1/x", "/health", "/static/a.js"][i % 4], method)
        })
        .collect();
    let mut group = c.benchmark_group("per_request");
    group.throughput(Throughput::Elements(requests.len() as u64));
    group.bench_function("lookup_only", |b| {
        b.iter(|| {
            let mut found = 0usize;
            for (host, path, _) in &requests {
                let host = normalize_host(host).unwrap();
                found += table.find(&host, path).map_or(0, |r| r.backend);
            }
            black_box(found)
        });
    });
    group.bench_function("lookup_and_metrics", |b| {
        b.iter(|| {
            let mut found = 0usize;
            for (host, path, method) in &requests {
                let started = Instant::now();
                let method = MethodClass::of(method);
                let host = normalize_host(host).unwrap();
                let route = table.find(&host, path).unwrap();
                let handles = index.find(route).cloned().unwrap_or_else(|| metrics.unrouted().clone());
                found += route.backend;
                let outcome = Outcome { method, status: 200, elapsed: started.elapsed(), bytes_in: 0, bytes_out: 4096 };
                handles.record(&outcome);
            }
            black_box(found)
        });
    });
    group.finish();
}

criterion_group!(benches, per_request);
criterion_main!(benches);
