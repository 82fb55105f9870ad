//! Table-level tests: host normalisation and a property test that the hash-based path lookup
//! picks exactly what the Ingress spec's "longest match, Exact on a tie" would pick.

use std::sync::Arc;

use proptest::prelude::*;

use super::*;

fn route(rule: PathRule, backend: usize) -> Route {
    Route { backend, ingress: Arc::from("ns/ing"), rule, policy: Arc::default() }
}

#[test]
fn normalize_host_strips_port_and_dot_and_folds_case() {
    let n = |h| normalize_host(h).map(|c| c.into_owned());
    assert_eq!(n("Foo.Example.com:8080").as_deref(), Some("foo.example.com"));
    assert_eq!(n("foo.example.com.").as_deref(), Some("foo.example.com"));
    assert_eq!(n("[::1]:8080").as_deref(), Some("[::1]"));
    assert_eq!(n("127.0.0.1:80").as_deref(), Some("127.0.0.1"));
    assert_eq!(n(""), None);
    assert_eq!(n("a b.com"), None);
    assert_eq!(n("foo.com:http"), None);
    assert_eq!(n("user@foo.com"), None);
    assert_eq!(n("[::1"), None);
}

#[test]
fn normalize_host_borrows_when_already_normal() {
    assert!(matches!(normalize_host("foo.com:80"), Some(std::borrow::Cow::Borrowed("foo.com"))));
}

#[test]
fn rule_hosts_are_validated() {
    assert_eq!(validate_rule_host("Foo.com"), Ok(HostKey::Exact("foo.com".into())));
    assert_eq!(validate_rule_host("*.foo.com"), Ok(HostKey::Wildcard("foo.com".into())));
    assert!(matches!(validate_rule_host("a.*.foo.com"), Err(HostError::BadWildcard(_))));
    assert!(matches!(validate_rule_host("*foo.com"), Err(HostError::BadWildcard(_))));
    assert!(matches!(validate_rule_host("10.0.0.1"), Err(HostError::IpAddress(_))));
    assert!(matches!(validate_rule_host("foo_bar.com"), Err(HostError::Invalid(_))));
    assert!(matches!(validate_rule_host("-foo.com"), Err(HostError::Invalid(_))));
    assert!(matches!(validate_rule_host("foo.com:80"), Err(HostError::Invalid(_))));
}

#[test]
fn conflicting_route_reports_the_existing_one() {
    let mut b = TableBuilder::default();
    assert!(b.add_route(&HostKey::Any, route(PathRule::new("/a", PathKind::Prefix), 0)).is_ok());
    let winner = b.add_route(&HostKey::Any, route(PathRule::new("/a/", PathKind::Prefix), 1)).unwrap_err();
    assert_eq!(winner.backend, 0);
}

/// The spec, the slow way: every matching rule, longest first, Exact before Prefix on a tie.
fn brute_force(rules: &[PathRule], path: &str) -> Option<usize> {
    let len = |r: &PathRule| r.key().len();
    rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.matches(path))
        .max_by(|(ia, a), (ib, b)| {
            len(a).cmp(&len(b)).then((b.kind()).cmp(&a.kind())).then(ib.cmp(ia)) // first inserted wins
        })
        .map(|(i, _)| i)
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_owned()),
        Just("ab".to_owned()),
        Just("b".to_owned()),
        Just(String::new()),
        Just("*".to_owned()),
        // Long enough that paths cross 64 bytes, where key lengths stop having a bit each.
        Just("long-segment-".repeat(3))
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), 0..4).prop_map(|segs| format!("/{}", segs.join("/")))
}

proptest! {
    #[test]
    fn lookup_agrees_with_the_spec(
        rules in prop::collection::vec((path(), any::<bool>()), 0..8),
        requests in prop::collection::vec(path(), 1..8),
    ) {
        let mut vhost = VirtualHost::default();
        let mut inserted = Vec::new();
        for (p, exact) in rules {
            let kind = if exact { PathKind::Exact } else { PathKind::Prefix };
            let rule = PathRule::new(&p, kind);
            if vhost.insert(route(rule.clone(), inserted.len())).is_ok() {
                inserted.push(rule);
            }
        }
        for request in requests {
            let got = vhost.find(&request).map(|r| r.backend);
            prop_assert_eq!(got, brute_force(&inserted, &request), "request {}", request);
        }
    }
}

/// The rules `normalize_host` follows, written the plain way (its one-pass form must agree).
fn normalize_host_by_the_rules(raw: &str) -> Option<String> {
    let host = if raw.starts_with('[') {
        let end = raw.find(']')?;
        let rest = &raw[end + 1..];
        let is_port = |s: &str| !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit());
        if !(rest.is_empty() || rest.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        &raw[..=end]
    } else {
        match raw.rsplit_once(':') {
            Some((h, port)) if !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()) => h,
            Some(_) => return None,
            None => raw,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.bytes().any(|b| b <= b' ' || b == b'/' || b == b'@' || b >= 0x7f) {
        return None;
    }
    Some(host.to_ascii_lowercase())
}

proptest! {
    #[test]
    fn normalize_host_follows_the_rules(raw in "[a-cA-C0-9.:\\[\\]@/ \u{7f}é]{0,12}") {
        let got = normalize_host(&raw);
        let expected = normalize_host_by_the_rules(&raw);
        prop_assert_eq!(got.as_deref(), expected.as_deref(), "host {:?}", raw);
        prop_assert_eq!(matches!(got, Some(std::borrow::Cow::Borrowed(_))), raw == raw.to_ascii_lowercase() && got.is_some());
    }
}
