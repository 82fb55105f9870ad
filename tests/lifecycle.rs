//! The real binary's shutdown: SIGTERM turns `/readyz` 503 at once, listeners keep accepting
//! for the shutdown delay, then refuse new connections, a request in flight at SIGTERM still
//! completes, and the process exits 0. Also: start to ready is logged and under a second.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step fails the test")]

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::*;

/// Kills the child if the test fails half-way.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `lintel is ready` line's fields, read from the child's JSON logs.
fn wait_ready(lines: &mpsc::Receiver<String>) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Ok(line) = lines.recv_timeout(left) else { break };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if v["fields"]["message"].as_str().is_some_and(|m| m.starts_with("lintel is ready")) {
            return v["fields"].clone();
        }
    }
    panic!("lintel did not report ready");
}

fn sigterm(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn sigterm_drains_then_refuses_and_lets_requests_in_flight_finish() {
    let web = Upstream::start("web").await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = [
        CLASS_YAML.to_owned(),
        service_yaml("web", &[web.addr]),
        ingress_yaml("site", "site.example.com", &[("/", "Prefix", "web")]),
    ]
    .join("---\n");
    std::fs::write(dir.path().join("site.yaml"), yaml).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_lintel"))
        .args(["run", "--manifests"])
        .arg(dir.path())
        .args(["--http-addr", "127.0.0.1:0", "--https-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"])
        .args(["--log-format", "json", "--shutdown-delay", "1s", "--grace-period", "10s"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut child = Proc(child);
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let ready = wait_ready(&lines);
    let startup_ms = ready["startup_ms"].as_f64().unwrap();
    eprintln!("startup to ready: {startup_ms:.1} ms");
    assert!(startup_ms < 1000.0, "startup took {startup_ms} ms");
    let http: SocketAddr = ready["http_addr"].as_str().unwrap().parse().unwrap();
    let admin: SocketAddr = ready["admin_addr"].as_str().unwrap().parse().unwrap();
    let c = client();
    assert_eq!(get(&c, admin, "localhost", "/readyz").await.0, 200);

    // A request in flight at SIGTERM (the upstream answers after 2.5 s).
    let in_flight = tokio::spawn(async move { get(&client(), http, "site.example.com", "/slow/2500").await });
    eventually("the slow request reached the upstream", Duration::from_secs(5), || async { web.hits() >= 1 }).await;
    sigterm(&child.0);
    let signalled = Instant::now();

    eventually("/readyz turns 503", Duration::from_secs(2), || async {
        get(&client(), admin, "localhost", "/readyz").await.0 == 503
    })
    .await;
    assert!(signalled.elapsed() < Duration::from_millis(900), "readiness must drop at once");
    // Still accepting during the delay: a new connection is served.
    let (status, _, _) = get(&client(), http, "site.example.com", "/").await;
    assert_eq!(status, 200, "listeners keep accepting during the shutdown delay");

    // After the delay, new connections are refused.
    eventually("the listener closes after the delay", Duration::from_secs(5), || async {
        tokio::net::TcpStream::connect(http).await.is_err()
    })
    .await;
    assert!(signalled.elapsed() >= Duration::from_millis(900), "not before the delay");

    let (status, _, body) = in_flight.await.unwrap();
    assert_eq!((status.as_u16(), body.as_str()), (200, "slow done"), "the request in flight completes");

    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "lintel did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(exit.code(), Some(0));
}
