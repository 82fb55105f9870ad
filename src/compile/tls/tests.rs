//! The TLS rules of `compile`: which certificate each host gets, and what is reported when a
//! Secret cannot be used. Builders over `k8s_openapi` structs; certificates made with rcgen.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Secret, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule, IngressServiceBackend, IngressSpec,
    IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rcgen::{CertificateParams, KeyPair};
use rustls::sign::CertifiedKey;

use crate::compile::{CompileOptions, Compiled, SecretRef, compile, compile_cached};
use crate::diagnostic::{Diagnostic, Severity, Subject};
use crate::source::Snapshot;
use crate::table::SslRedirect;
use crate::tls::cache::KeyCache;

struct Pem {
    cert: String,
    key: String,
}

fn pem(names: &[&str]) -> Pem {
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    Pem { cert: params.self_signed(&key).unwrap().pem(), key: key.serialize_pem() }
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta { name: Some(name.to_owned()), namespace: Some("default".to_owned()), ..Default::default() }
}

fn mk_secret(name: &str, pem: &Pem) -> Secret {
    let data = BTreeMap::from([
        ("tls.crt".to_owned(), ByteString(pem.cert.clone().into_bytes())),
        ("tls.key".to_owned(), ByteString(pem.key.clone().into_bytes())),
    ]);
    Secret { metadata: meta(name), type_: Some("kubernetes.io/tls".to_owned()), data: Some(data), ..Default::default() }
}

fn mk_service() -> Service {
    let port = ServicePort { name: Some("http".to_owned()), port: 80, ..Default::default() };
    Service {
        metadata: meta("web"),
        spec: Some(ServiceSpec { ports: Some(vec![port]), ..Default::default() }),
        ..Default::default()
    }
}

fn mk_rule(host: &str) -> IngressRule {
    let backend = IngressBackend {
        service: Some(IngressServiceBackend {
            name: "web".to_owned(),
            port: Some(ServiceBackendPort { number: Some(80), ..Default::default() }),
        }),
        ..Default::default()
    };
    let path = HTTPIngressPath { path: Some("/".to_owned()), path_type: "Prefix".to_owned(), backend };
    IngressRule { host: Some(host.to_owned()), http: Some(HTTPIngressRuleValue { paths: vec![path] }) }
}

/// An Ingress of ours (legacy class annotation) with rules for `hosts` and one TLS entry.
fn mk_ingress(name: &str, hosts: &[&str], tls_hosts: &[&str], secret: Option<&str>) -> Ingress {
    let mut meta = meta(name);
    meta.annotations = Some(BTreeMap::from([("kubernetes.io/ingress.class".to_owned(), "lintel".to_owned())]));
    let tls = IngressTLS {
        hosts: Some(tls_hosts.iter().map(|h| h.to_string()).collect()),
        secret_name: secret.map(str::to_owned),
    };
    let spec = IngressSpec {
        rules: Some(hosts.iter().map(|h| mk_rule(h)).collect()),
        tls: Some(vec![tls]),
        ..Default::default()
    };
    Ingress { metadata: meta, spec: Some(spec), ..Default::default() }
}

fn annotate(mut ingress: Ingress, key: &str, value: &str) -> Ingress {
    ingress.metadata.annotations.get_or_insert_default().insert(key.to_owned(), value.to_owned());
    ingress
}

fn snapshot(ingresses: Vec<Ingress>, secrets: Vec<Secret>) -> Snapshot {
    Snapshot {
        ingresses: ingresses.into_iter().map(Arc::new).collect(),
        services: vec![Arc::new(mk_service())],
        secrets: secrets.into_iter().map(Arc::new).collect(),
        ..Default::default()
    }
}

fn leaf(key: &CertifiedKey) -> &[u8] {
    key.cert[0].as_ref()
}

fn leaf_of(pem: &Pem) -> Vec<u8> {
    crate::tls::keys::certified_key(pem.cert.as_bytes(), pem.key.as_bytes()).unwrap().cert[0].to_vec()
}

fn ingress_subject(name: &str) -> Subject {
    Subject::object("Ingress", "default", name)
}

fn served_leaf(compiled: &Compiled, sni: &str) -> Option<Vec<u8>> {
    compiled.table.tls().certificate(Some(sni)).map(|k| leaf(k).to_vec())
}

#[test]
fn each_host_gets_its_secrets_certificate() {
    let (a, b) = (pem(&["a.example.com"]), pem(&["b.example.com"]));
    let ingresses = vec![
        mk_ingress("a", &["a.example.com"], &["a.example.com"], Some("a-tls")),
        mk_ingress("b", &["b.example.com"], &["b.example.com"], Some("b-tls")),
    ];
    let compiled =
        compile(&snapshot(ingresses, vec![mk_secret("a-tls", &a), mk_secret("b-tls", &b)]), &Default::default());
    assert_eq!(compiled.diagnostics, vec![]);
    assert_eq!(served_leaf(&compiled, "a.example.com"), Some(leaf_of(&a)));
    assert_eq!(served_leaf(&compiled, "b.example.com"), Some(leaf_of(&b)));
    assert_eq!(served_leaf(&compiled, "c.example.com"), None, "unknown names get the built-in default");
    assert_eq!(compiled.table.tls().certificate(None).map(|k| leaf(k).to_vec()), None);
}

#[test]
fn wildcard_certificate_covers_exactly_one_label() {
    let wild = pem(&["*.example.com"]);
    let ingress = mk_ingress("w", &["*.example.com"], &["*.example.com"], Some("wild"));
    let compiled = compile(&snapshot(vec![ingress], vec![mk_secret("wild", &wild)]), &Default::default());
    assert_eq!(compiled.diagnostics, vec![]);
    assert_eq!(served_leaf(&compiled, "x.example.com"), Some(leaf_of(&wild)));
    assert_eq!(served_leaf(&compiled, "y.x.example.com"), None);
    assert_eq!(served_leaf(&compiled, "example.com"), None);
    assert!(compiled.table.tls().has_tls("x.example.com"));
    assert!(!compiled.table.tls().has_tls("example.com"));
}

#[test]
fn exact_host_wins_over_wildcard() {
    let (wild, exact) = (pem(&["*.example.com"]), pem(&["a.example.com"]));
    let ingresses = vec![
        mk_ingress("w", &["*.example.com"], &["*.example.com"], Some("wild")),
        mk_ingress("x", &["a.example.com"], &["a.example.com"], Some("exact")),
    ];
    let secrets = vec![mk_secret("wild", &wild), mk_secret("exact", &exact)];
    let compiled = compile(&snapshot(ingresses, secrets), &Default::default());
    assert_eq!(served_leaf(&compiled, "a.example.com"), Some(leaf_of(&exact)));
    assert_eq!(served_leaf(&compiled, "b.example.com"), Some(leaf_of(&wild)));
}

#[test]
fn missing_secret_is_an_error_and_the_host_gets_the_default_not_the_wildcard() {
    let wild = pem(&["*.example.com"]);
    let ingresses = vec![
        mk_ingress("a", &["a.example.com"], &["a.example.com"], Some("gone")),
        mk_ingress("w", &["*.example.com"], &["*.example.com"], Some("wild")),
    ];
    let compiled = compile(&snapshot(ingresses, vec![mk_secret("wild", &wild)]), &Default::default());
    assert_eq!(
        compiled.diagnostics,
        vec![Diagnostic::error(
            ingress_subject("a"),
            "spec.tls[0].secretName",
            "Secret default/gone not found; a.example.com served with the default certificate",
        )]
    );
    assert_eq!(served_leaf(&compiled, "a.example.com"), None);
    assert!(compiled.table.tls().has_tls("a.example.com"), "plain HTTP still redirects");
}

#[test]
fn key_that_does_not_match_the_certificate_is_an_error() {
    let (a, other) = (pem(&["a.example.com"]), pem(&["a.example.com"]));
    let mixed = Pem { cert: a.cert.clone(), key: other.key.clone() };
    let ingress = mk_ingress("a", &["a.example.com"], &["a.example.com"], Some("a-tls"));
    let compiled = compile(&snapshot(vec![ingress], vec![mk_secret("a-tls", &mixed)]), &Default::default());
    assert_eq!(compiled.diagnostics.len(), 1);
    let diag = &compiled.diagnostics[0];
    assert_eq!((diag.severity, diag.field.as_str()), (Severity::Error, "spec.tls[0].secretName"));
    assert!(diag.message.contains("Secret default/a-tls: tls.key does not match"), "{diag}");
    assert_eq!(served_leaf(&compiled, "a.example.com"), None);
}

#[test]
fn unparsable_secret_is_an_error() {
    let garbage = Pem { cert: "not a certificate".to_owned(), key: "nor a key".to_owned() };
    let ingress = mk_ingress("a", &["a.example.com"], &["a.example.com"], Some("a-tls"));
    let compiled = compile(&snapshot(vec![ingress], vec![mk_secret("a-tls", &garbage)]), &Default::default());
    assert_eq!(compiled.diagnostics.len(), 1);
    assert!(
        compiled.diagnostics[0].message.contains("tls.crt holds no PEM certificate"),
        "{}",
        compiled.diagnostics[0]
    );
}

#[test]
fn secret_without_tls_key_is_an_error() {
    let a = pem(&["a.example.com"]);
    let mut secret = mk_secret("a-tls", &a);
    secret.data.as_mut().unwrap().remove("tls.key");
    let ingress = mk_ingress("a", &["a.example.com"], &["a.example.com"], Some("a-tls"));
    let compiled = compile(&snapshot(vec![ingress], vec![secret]), &Default::default());
    assert!(compiled.diagnostics[0].message.starts_with("Secret default/a-tls has no tls.key"));
}

#[test]
fn certificate_not_covering_the_host_is_a_warning_and_still_served() {
    let other = pem(&["other.example.com"]);
    let ingress = mk_ingress("a", &["a.example.com"], &["a.example.com"], Some("a-tls"));
    let compiled = compile(&snapshot(vec![ingress], vec![mk_secret("a-tls", &other)]), &Default::default());
    assert_eq!(
        compiled.diagnostics,
        vec![Diagnostic::warning(
            ingress_subject("a"),
            "spec.tls[0].hosts[0]",
            "the certificate in Secret default/a-tls does not cover host a.example.com",
        )]
    );
    assert_eq!(served_leaf(&compiled, "a.example.com"), Some(leaf_of(&other)));
}

#[test]
fn older_ingress_keeps_a_host_listed_twice() {
    let (first, second) = (pem(&["a.example.com"]), pem(&["a.example.com"]));
    let ingresses = vec![
        mk_ingress("a1", &["a.example.com"], &["a.example.com"], Some("first")),
        mk_ingress("a2", &["a.example.com"], &["a.example.com"], Some("second")),
    ];
    let secrets = vec![mk_secret("first", &first), mk_secret("second", &second)];
    let compiled = compile(&snapshot(ingresses, secrets), &Default::default());
    assert_eq!(served_leaf(&compiled, "a.example.com"), Some(leaf_of(&first)));
    let tls: Vec<_> = compiled.diagnostics.iter().filter(|d| d.field.starts_with("spec.tls")).collect();
    assert_eq!(tls.len(), 1, "{tls:?}");
    assert_eq!(tls[0].subject, ingress_subject("a2"));
    assert!(tls[0].message.contains("already gets its certificate from Secret default/first"), "{}", tls[0]);
}

#[test]
fn tls_without_hosts_applies_to_the_rule_hosts_it_covers() {
    let a = pem(&["a.example.com"]);
    let ingress = mk_ingress("a", &["a.example.com", "b.example.com"], &[], Some("a-tls"));
    let compiled = compile(&snapshot(vec![ingress], vec![mk_secret("a-tls", &a)]), &Default::default());
    assert_eq!(compiled.diagnostics, vec![]);
    assert_eq!(served_leaf(&compiled, "a.example.com"), Some(leaf_of(&a)));
    assert!(!compiled.table.tls().has_tls("b.example.com"));
}

#[test]
fn default_certificate_from_a_secret() {
    let (a, fallback) = (pem(&["a.example.com"]), pem(&["default.example.com"]));
    let ingress = mk_ingress("a", &["a.example.com"], &["a.example.com"], Some("gone"));
    let options = CompileOptions {
        default_certificate: Some(SecretRef { namespace: "default".to_owned(), name: "fallback".to_owned() }),
        ..Default::default()
    };
    let secrets = vec![mk_secret("a-unused", &a), mk_secret("fallback", &fallback)];
    let compiled = compile(&snapshot(vec![ingress], secrets), &options);
    assert_eq!(served_leaf(&compiled, "unknown.example.com"), Some(leaf_of(&fallback)));
    assert_eq!(served_leaf(&compiled, "a.example.com"), Some(leaf_of(&fallback)), "bad Secret: the default");
    assert_eq!(compiled.table.tls().certificate(None).map(|k| leaf(k).to_vec()), Some(leaf_of(&fallback)));

    let missing = compile(&snapshot(vec![], vec![]), &options);
    assert_eq!(missing.table.tls().default_cert(), None);
    assert_eq!(missing.diagnostics[0].subject, Subject::object("Secret", "default", "fallback"));
}

#[test]
fn pkcs1_and_sec1_keys_in_string_data() {
    for (pkcs8, other) in [
        (
            include_str!("../../../tests/fixtures/tls/rsa2048.pkcs8.pem"),
            include_str!("../../../tests/fixtures/tls/rsa2048.pkcs1.pem"),
        ),
        (
            include_str!("../../../tests/fixtures/tls/p384.pkcs8.pem"),
            include_str!("../../../tests/fixtures/tls/p384.sec1.pem"),
        ),
    ] {
        let key = KeyPair::from_pem(pkcs8).unwrap();
        let cert = CertificateParams::new(vec!["a.example.com".to_owned()]).unwrap().self_signed(&key).unwrap().pem();
        let secret = Secret {
            metadata: meta("a-tls"),
            string_data: Some(BTreeMap::from([
                ("tls.crt".to_owned(), cert.clone()),
                ("tls.key".to_owned(), other.to_owned()),
            ])),
            ..Default::default()
        };
        let ingress = mk_ingress("a", &["a.example.com"], &["a.example.com"], Some("a-tls"));
        let compiled = compile(&snapshot(vec![ingress], vec![secret]), &Default::default());
        assert_eq!(compiled.diagnostics, vec![]);
        assert!(served_leaf(&compiled, "a.example.com").is_some());
    }
}

#[test]
fn rebuilds_reuse_parsed_keys_and_compare_equal() {
    let a = pem(&["a.example.com"]);
    let ingress = mk_ingress("a", &["a.example.com"], &["a.example.com"], Some("a-tls"));
    let snap = snapshot(vec![ingress], vec![mk_secret("a-tls", &a)]);
    let mut cache = KeyCache::default();
    let first = compile_cached(&snap, &Default::default(), &mut cache);
    let second = compile_cached(&snap, &Default::default(), &mut cache);
    assert_eq!(first, second);
    let key = |c: &Compiled| c.table.tls().certificate(Some("a.example.com")).cloned().unwrap();
    assert!(Arc::ptr_eq(&key(&first), &key(&second)));
    assert_eq!(first, compile(&snap, &Default::default()), "same content, fresh parse: still equal");

    let b = pem(&["a.example.com"]);
    let rotated = snapshot(snap.ingresses.iter().map(|i| (**i).clone()).collect(), vec![mk_secret("a-tls", &b)]);
    let third = compile_cached(&rotated, &Default::default(), &mut cache);
    assert_ne!(first, third);
    assert_eq!(cache.len(), 1, "the old key is forgotten");
}

fn policy_of(ingress: Ingress) -> (crate::table::Policy, Vec<Diagnostic>) {
    let compiled = compile(&snapshot(vec![ingress], vec![]), &Default::default());
    let route = compiled.table.find("a.example.com", "/").unwrap();
    let diagnostics = compiled.diagnostics.into_iter().filter(|d| d.field.starts_with("metadata")).collect();
    ((*route.policy).clone(), diagnostics)
}

fn plain(name: &str) -> Ingress {
    let mut ingress = mk_ingress(name, &["a.example.com"], &[], None);
    ingress.spec.as_mut().unwrap().tls = None;
    ingress
}

#[test]
fn redirect_annotations() {
    let cases = [
        (vec![], SslRedirect::IfTls),
        (vec![("lintel.dev/ssl-redirect", "false")], SslRedirect::Never),
        (vec![("nginx.ingress.kubernetes.io/ssl-redirect", "false")], SslRedirect::Never),
        (vec![("nginx.ingress.kubernetes.io/ssl-redirect", "true")], SslRedirect::IfTls),
        (vec![("lintel.dev/force-ssl-redirect", "true")], SslRedirect::Always),
        (vec![("nginx.ingress.kubernetes.io/force-ssl-redirect", "true")], SslRedirect::Always),
        (vec![("alb.ingress.kubernetes.io/ssl-redirect", "443")], SslRedirect::Always),
        (
            vec![("lintel.dev/ssl-redirect", "false"), ("nginx.ingress.kubernetes.io/ssl-redirect", "true")],
            SslRedirect::Never,
        ),
        (vec![("lintel.dev/ssl-redirect", "false"), ("lintel.dev/force-ssl-redirect", "true")], SslRedirect::Always),
    ];
    for (annotations, expected) in cases {
        let ingress = annotations.iter().fold(plain("a"), |i, (k, v)| annotate(i, k, v));
        let (policy, diagnostics) = policy_of(ingress);
        assert_eq!(policy.ssl_redirect, expected, "{annotations:?}");
        assert_eq!(diagnostics, vec![], "{annotations:?}");
    }
}

#[test]
fn bad_redirect_values_are_errors() {
    let (policy, diagnostics) = policy_of(annotate(plain("a"), "lintel.dev/ssl-redirect", "nope"));
    assert_eq!(policy.ssl_redirect, SslRedirect::IfTls);
    assert_eq!(
        diagnostics,
        vec![Diagnostic::error(
            ingress_subject("a"),
            "metadata.annotations[\"lintel.dev/ssl-redirect\"]",
            "\"nope\" is not \"true\" or \"false\"; ignored",
        )]
    );
    let (_, diagnostics) = policy_of(annotate(plain("a"), "alb.ingress.kubernetes.io/ssl-redirect", "https"));
    assert_eq!(diagnostics.len(), 1);
    let (policy, diagnostics) = policy_of(annotate(plain("a"), "alb.ingress.kubernetes.io/ssl-redirect", "8443"));
    assert_eq!((policy.ssl_redirect, diagnostics[0].severity), (SslRedirect::Always, Severity::Warning));
}

#[test]
fn hsts_is_validated_and_written_canonically() {
    let (policy, diagnostics) =
        policy_of(annotate(plain("a"), "lintel.dev/hsts", "max-age=31536000;includesubdomains"));
    assert_eq!(diagnostics, vec![]);
    assert_eq!(policy.hsts.unwrap(), "max-age=31536000; includeSubDomains");
    for bad in ["includeSubDomains", "max-age=abc", "max-age=1; max-age=2", "max-age=1; nonsense"] {
        let (policy, diagnostics) = policy_of(annotate(plain("a"), "lintel.dev/hsts", bad));
        assert_eq!(policy.hsts, None, "{bad}");
        assert_eq!(diagnostics.len(), 1, "{bad}");
    }
    assert_eq!(super::super::ssl::parse_hsts("max-age=60; preload").unwrap(), "max-age=60; preload");
}
