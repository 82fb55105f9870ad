//! Reading samples out of a `/metrics` exposition (OpenMetrics text), for tests that check
//! a value moved. The format itself is checked with the reference parser in tests/metrics.rs.

#![allow(dead_code, reason = "each test file uses a different part")]

/// The values of every sample `name` (the full sample name, e.g. `lintel_leader` or
/// `lintel_upstream_connections_opened_total`) whose labels include every `(key, value)`.
fn samples<'t>(text: &'t str, name: &'t str, labels: &'t [(&str, &str)]) -> impl Iterator<Item = f64> + 't {
    text.lines().filter(|line| !line.starts_with('#')).filter_map(move |line| {
        let (series, sample) = line.rsplit_once(' ')?;
        let (found, label_text) = match series.split_once('{') {
            Some((found, rest)) => (found, rest.strip_suffix('}')?),
            None => (series, ""),
        };
        let wanted = found == name && labels.iter().all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")));
        if wanted { sample.parse().ok() } else { None }
    })
}

/// The first such sample.
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples(text, name, labels).next()
}

/// The sum of all such samples (e.g. across backends).
pub fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(text, name, labels).sum()
}

/// Whether any sample `name` has every label of `labels`.
pub fn has(text: &str, name: &str, labels: &[(&str, &str)]) -> bool {
    value(text, name, labels).is_some()
}
