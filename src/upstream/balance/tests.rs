//! Picking: P2C prefers the less loaded of two, round robin takes turns, unavailable
//! endpoints are skipped unless all are (fail open), and a retry never gets the same one.

use std::collections::HashMap;
use std::time::Duration;

use super::*;
use crate::upstream::endpoint::{ConnSettings, InFlight};
use crate::upstream::passive::PassiveSettings;
use crate::upstream::{Group, UpstreamSettings};

fn group(n: usize) -> Group {
    let conn = ConnSettings { connect_timeout: Duration::from_secs(1), keepalive_idle: Duration::from_secs(1) };
    let endpoints = (0..n)
        .map(|i| Arc::new(Endpoint::new(format!("10.0.0.{i}:80").parse().unwrap(), conn, PassiveSettings::default())))
        .collect();
    Group {
        name: "ns/svc:80".into(),
        endpoints,
        state: Arc::default(),
        settings: Arc::new(UpstreamSettings::default()),
        unresolved: None,
        retries: None,
    }
}

fn eject(endpoint: &Endpoint) {
    for _ in 0..PassiveSettings::default().consecutive_failures {
        endpoint.record_failure();
    }
}

fn counts(g: &Group, balance: Balance, picks: usize) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for _ in 0..picks {
        let e = g.pick(balance, None).unwrap();
        *seen.entry(e.authority.to_string()).or_default() += 1;
    }
    seen
}

#[test]
fn round_robin_takes_turns() {
    let g = group(3);
    let seen = counts(&g, Balance::RoundRobin, 300);
    assert!(seen.values().all(|&n| n == 100), "{seen:?}");
}

#[test]
fn p2c_never_picks_the_busier_of_two() {
    let g = group(2);
    let busy: Vec<_> = (0..5).map(|_| InFlight::new(g.endpoints[0].clone())).collect();
    let seen = counts(&g, Balance::PowerOfTwoChoices, 100);
    assert_eq!(seen.get("10.0.0.1:80"), Some(&100), "{seen:?}");
    drop(busy);
}

#[test]
fn p2c_spreads_equal_load() {
    let g = group(4);
    let seen = counts(&g, Balance::PowerOfTwoChoices, 4000);
    assert_eq!(seen.len(), 4);
    assert!(seen.values().all(|&n| n > 600), "{seen:?}");
}

#[test]
fn ejected_endpoints_are_skipped() {
    let g = group(3);
    eject(&g.endpoints[1]);
    for balance in [Balance::RoundRobin, Balance::PowerOfTwoChoices] {
        let seen = counts(&g, balance, 200);
        assert!(!seen.contains_key("10.0.0.1:80"), "{seen:?}");
    }
    assert!(!g.is_failing_open());
}

#[test]
fn all_unavailable_fails_open_to_all() {
    let g = group(2);
    eject(&g.endpoints[0]);
    eject(&g.endpoints[1]);
    let seen = counts(&g, Balance::RoundRobin, 10);
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(g.is_failing_open());
}

#[test]
fn a_retry_gets_another_endpoint_or_none() {
    let g = group(2);
    for _ in 0..20 {
        let first = g.pick(Balance::PowerOfTwoChoices, None).unwrap();
        let second = g.pick(Balance::PowerOfTwoChoices, Some(&first)).unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
    }
    let single = group(1);
    let only = single.pick(Balance::RoundRobin, None).unwrap();
    assert!(single.pick(Balance::RoundRobin, Some(&only)).is_none());
    assert!(group(0).pick(Balance::RoundRobin, None).is_none());
}

#[test]
fn availability_holds_past_the_first_sixty_four_endpoints() {
    // The first 64 endpoints' availability is kept as bits; the rest are asked directly.
    let g = group(70);
    for endpoint in g.endpoints.iter().take(68) {
        eject(endpoint);
    }
    for balance in [Balance::RoundRobin, Balance::PowerOfTwoChoices] {
        let seen = counts(&g, balance, 200);
        let mut picked: Vec<_> = seen.keys().cloned().collect();
        picked.sort();
        assert_eq!(picked, ["10.0.0.68:80", "10.0.0.69:80"], "{seen:?}");
    }
    assert!(!g.is_failing_open());
    let g = group(70);
    for (i, endpoint) in g.endpoints.iter().enumerate() {
        if i != 66 {
            eject(endpoint);
        }
    }
    let only = g.pick(Balance::RoundRobin, None).unwrap();
    assert_eq!(only.authority.as_str(), "10.0.0.66:80");
    assert!(g.pick(Balance::RoundRobin, Some(&only)).is_none(), "the one available endpoint excluded: no other");
}
