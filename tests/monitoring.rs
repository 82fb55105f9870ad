//! The Grafana dashboard and the operations guide name only metrics Lintel exports.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step fails the test")]

use std::collections::BTreeSet;
use std::path::Path;

use lintel::metrics::Metrics;

/// Every sample name the exposition can contain, from its TYPE lines.
fn exported_names() -> BTreeSet<String> {
    let text = Metrics::new().encode().unwrap();
    let mut names = BTreeSet::new();
    for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let (name, kind) = line.split_once(' ').unwrap();
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["", "_bucket", "_sum", "_count"],
            "info" => &["_info"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    names
}

/// `lintel_…` words in `text`.
fn mentioned(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("lintel_") && w.len() > "lintel_".len())
        .map(str::to_owned)
        .collect()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn the_dashboard_queries_only_exported_metrics() {
    let dashboard: serde_json::Value = serde_json::from_str(&read("deploy/monitoring/grafana-dashboard.json")).unwrap();
    let exported = exported_names();
    let mut exprs = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            exprs += 1;
            let unknown: Vec<_> = mentioned(expr).into_iter().filter(|m| !exported.contains(m)).collect();
            assert!(unknown.is_empty(), "panel {:?} uses {unknown:?}", panel["title"]);
        }
    }
    assert!(exprs >= 20, "{exprs} queries");
}

#[test]
fn the_operations_guide_names_only_exported_metrics() {
    let exported = exported_names();
    for doc in ["README.md", "deploy/monitoring/README.md"] {
        let unknown: Vec<_> = mentioned(&read(doc)).into_iter().filter(|m| !exported.contains(m)).collect();
        assert!(unknown.is_empty(), "{doc} names {unknown:?}");
    }
}
