//! Operator surfaces: `lintel explain` offline and `GET /explain` live, `lintel config --print`
//! with value sources, and configuration errors that name the key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step fails the test")]

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::*;

fn lintel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lintel")).args(args).env_remove("RUST_LOG").output().unwrap()
}

fn site(dir: &Path, endpoint: std::net::SocketAddr) {
    let yaml = [
        CLASS_YAML.to_owned(),
        service_yaml("web", &[endpoint]),
        service_yaml("api", &[endpoint]),
        ingress_yaml("site", "site.example.com", &[("/", "Prefix", "web"), ("/api", "Prefix", "api")]),
    ]
    .join("---\n");
    std::fs::write(dir.join("site.yaml"), yaml).unwrap();
}

#[test]
fn explain_offline_names_the_rule_and_why_the_other_lost() {
    let dir = tempfile::tempdir().unwrap();
    site(dir.path(), "10.1.2.3:8080".parse().unwrap());
    let manifests = dir.path().to_str().unwrap();
    let out = lintel(&["explain", "--manifests", manifests, "--host", "site.example.com", "--path", "/api/x"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("answer: Prefix /api of Ingress default/site -> default/api:80"), "{text}");
    assert!(text.contains("longest match wins"), "{text}");
    assert!(text.contains("endpoint 10.1.2.3:8080"), "{text}");
    let out = lintel(&["explain", "--manifests", manifests, "--host", "x.example.com", "--output", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["answer"]["kind"], "not_found");
}

#[tokio::test]
async fn explain_on_the_admin_listener_answers_json_with_live_endpoints() {
    let web = Upstream::start("web").await;
    let dir = tempfile::tempdir().unwrap();
    site(dir.path(), web.addr);
    let proxy = start_proxy(dir.path(), |_| {}).await;
    let path = "/explain?host=SITE.example.com:80&path=%2Fapi&client=192.0.2.7";
    let (status, headers, body) = get(&client(), proxy.admin_addr, "localhost", path).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["normalized_host"], "site.example.com");
    assert_eq!(json["answer"]["ingress"], "default/site");
    assert_eq!(json["backend"]["endpoints"][0]["address"], web.addr.to_string());
    assert!(json["policy"]["allowlist"].as_str().unwrap().contains("192.0.2.7"));
    let (status, _, _) = get(&client(), proxy.admin_addr, "localhost", "/explain?host=a").await;
    assert_eq!(status, 400);
}

#[test]
fn config_print_shows_each_source() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lintel.yaml");
    std::fs::write(&file, "grace-period: 45s\ntimeouts:\n  connect: 2s\n").unwrap();
    let out = lintel(&["config", "--print", "--config", file.to_str().unwrap(), "--shutdown-delay", "0s"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let line = |key: &str| text.lines().find(|l| l.trim_start().starts_with(key)).unwrap().to_owned();
    assert!(line("grace-period: 45s").ends_with("# file"), "{text}");
    assert!(line("connect: 2s").ends_with("# file"), "{text}");
    assert!(line("shutdown-delay: 0s").ends_with("# flag"), "{text}");
    assert!(line("http-addr: 0.0.0.0:8080").ends_with("# default"), "{text}");
    // The example configuration is all defaults.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/lintel.yaml");
    let out = lintel(&["config", "--print", "--config", example.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("# flag"), "{text}");
}

#[test]
fn a_bad_config_file_is_an_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, "access-log:\n  enabeld: true\n").unwrap();
    let out = lintel(&["config", "--print", "--config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("access-log"), "{err}");
    assert!(err.contains("did you mean `enabled`?"), "{err}");
}
