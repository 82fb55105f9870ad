//! Scale figures for `benches/compare.sh`: compile time and route-lookup cost for generated
//! clusters of N Ingresses, and the same clusters written as manifests so the script can
//! measure the RSS of a real `lintel run` serving them.
//!
//!     cargo run --release --example bench_scale -- measure 10 1000 10000
//!     cargo run --release --example bench_scale -- write DIR 10000
//!
//! `measure` prints one line per N: `SCALE n=… routes=… compile_ms_min=… compile_ms_median=…
//! lookup_ns=…`. Each Ingress has 3 paths; there are N/10 Services (at least 1, at most 1,000).

#![expect(clippy::unwrap_used, clippy::expect_used, reason = "a benchmark fails loudly")]

use std::hint::black_box;
use std::time::Instant;

use lintel::compile::{CompileOptions, compile};
use lintel::fixtures;
use lintel::source::Snapshot;
use lintel::table::normalize_host;

const PATHS_EACH: usize = 3;
/// Request paths: exact, prefix, deep prefix and misses.
const REQUEST_PATHS: [&str; 6] = ["/", "/api/v1/dags/x", "/health", "/api", "/static/app.js", "/nope"];

fn cluster(n: usize) -> Snapshot {
    fixtures::snapshot(n, PATHS_EACH, (n / 10).clamp(1, 1_000))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("measure") => args[1..].iter().for_each(|n| measure(n.parse().expect("N"))),
        Some("write") => write(&args[1], args[2].parse().expect("N")),
        _ => {
            eprintln!("usage: bench_scale measure N... | bench_scale write DIR N");
            std::process::exit(2);
        }
    }
}

fn measure(n: usize) {
    let snapshot = cluster(n);
    let options = CompileOptions::default();
    let runs = if n >= 10_000 { 7 } else { 21 };
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            black_box(compile(black_box(&snapshot), &options));
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let table = compile(&snapshot, &options).table;
    // Spread requests over the hosts (with a port, as clients send it) so large tables pay
    // their cache misses.
    let requests: Vec<(String, &str)> = (0..4096)
        .map(|i| (format!("{}:8080", fixtures::host((i * 7919) % n)), REQUEST_PATHS[i % REQUEST_PATHS.len()]))
        .collect();
    let rounds = 200;
    let start = Instant::now();
    let mut found = 0usize;
    for _ in 0..rounds {
        for (host, path) in &requests {
            let host = normalize_host(black_box(host)).unwrap();
            found += table.find(&host, black_box(path)).map_or(0, |r| r.backend);
        }
    }
    let lookup_ns = start.elapsed().as_secs_f64() * 1e9 / (rounds * requests.len()) as f64;
    black_box(found);
    println!(
        "SCALE n={n} routes={} compile_ms_min={:.2} compile_ms_median={:.2} lookup_ns={lookup_ns:.0}",
        table.route_count(),
        times[0],
        times[times.len() / 2],
    );
}

/// Writes the cluster as one multi-document YAML file, plus an IngressClass that is the
/// default (the generated Ingresses name it).
fn write(dir: &str, n: usize) {
    let snapshot = cluster(n);
    let mut out = String::new();
    let mut doc = |value: serde_json::Value| {
        out.push_str("---\n");
        out.push_str(&serde_norway::to_string(&value).unwrap());
    };
    let Snapshot { ingresses, ingress_classes, services, endpoint_slices, .. } = &snapshot;
    ingress_classes.iter().for_each(|o| doc(serde_json::to_value(o).unwrap()));
    services.iter().for_each(|o| doc(serde_json::to_value(o).unwrap()));
    endpoint_slices.iter().for_each(|o| doc(serde_json::to_value(o).unwrap()));
    ingresses.iter().for_each(|o| doc(serde_json::to_value(o).unwrap()));
    let path = format!("{dir}/cluster-{n}.yaml");
    std::fs::write(&path, out).unwrap();
    println!("wrote {n} Ingresses to {path}");
}
