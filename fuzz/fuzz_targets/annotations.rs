//! Any annotation values on an Ingress compile without a panic, and an allowlist value that
//! does not parse never leaves the Ingress open.
#![no_main]

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::Ingress;
use libfuzzer_sys::fuzz_target;
use lintel::compile::{CompileOptions, compile};
use lintel::fixtures;

const KEYS: [&str; 8] = [
    "lintel.dev/allow-source-cidrs",
    "lintel.dev/deny-source-cidrs",
    "lintel.dev/allow-source-mode",
    "lintel.dev/max-body-size",
    "nginx.ingress.kubernetes.io/whitelist-source-range",
    "nginx.ingress.kubernetes.io/proxy-body-size",
    "alb.ingress.kubernetes.io/inbound-cidrs",
    "nginx.ingress.kubernetes.io/denylist-source-range",
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut snapshot = fixtures::snapshot(1, 2, 1);
    let annotations: BTreeMap<String, String> =
        text.split('\n').zip(KEYS).map(|(value, key)| (key.to_owned(), value.to_owned())).collect();
    let ingress: &mut Ingress = std::sync::Arc::make_mut(&mut snapshot.ingresses[0]);
    ingress.metadata.annotations = Some(annotations.clone());
    let compiled = compile(&snapshot, &CompileOptions::default());
    let allow = annotations.get(KEYS[0]).map(String::as_str);
    if let Some(value) = allow
        && value.parse::<lintel::table::allow::CidrList>().is_err()
    {
        let host = fixtures::host(0);
        let route = compiled.table.find(&host, "/").expect("the route exists");
        assert!(route.policy.source.check("203.0.113.1".parse().unwrap()).is_err(), "fail closed");
    }
});
