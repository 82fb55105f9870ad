//! Route lookup cost as the table grows (10, 1,000, 100,000 routes: it must stay flat), and
//! the cost of compiling 10,000 Ingresses.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "bench setup")]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lintel::compile::{CompileOptions, compile};
use lintel::fixtures;
use lintel::table::normalize_host;

/// Requests that hit a mix of exact, prefix and deep paths, plus misses.
const REQUEST_PATHS: [&str; 8] = [
    "/",
    "/api/v1/dags/example/dagRuns",
    "/health",
    "/static/js/app.1234.js",
    "/login",
    "/admin/x",
    "/nope",
    "/api/v3",
];

fn lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("lookup");
    for routes in [10usize, 1_000, 100_000] {
        let ingresses = routes / 10;
        let table = compile(&fixtures::snapshot(ingresses, 10, 100), &CompileOptions::default()).table;
        assert_eq!(table.route_count(), routes);
        // Spread requests over the hosts so the cost includes cache misses on large tables.
        let requests: Vec<(String, &str)> = (0..1024)
            .map(|i| {
                (format!("{}:8080", fixtures::host((i * 7919) % ingresses)), REQUEST_PATHS[i % REQUEST_PATHS.len()])
            })
            .collect();
        group.throughput(Throughput::Elements(requests.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(routes), &requests, |b, requests| {
            b.iter(|| {
                let mut found = 0usize;
                for (host, path) in requests {
                    let host = normalize_host(host).unwrap();
                    found += table.find(&host, path).map_or(0, |r| r.backend);
                }
                black_box(found)
            });
        });
    }
    group.finish();
}

fn compile_10k(c: &mut Criterion) {
    let snapshot = fixtures::snapshot(10_000, 3, 1_000);
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    group.bench_function("10000_ingresses", |b| b.iter(|| black_box(compile(&snapshot, &CompileOptions::default()))));
    group.finish();
}

criterion_group!(benches, lookup, compile_10k);
criterion_main!(benches);
