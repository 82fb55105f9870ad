//! HTTPS end to end over loopback: real rustls clients against a running Lintel serving a
//! manifests directory, with certificates from a test CA made by rcgen.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test loudly")]

mod support;
mod tls_support;

use std::time::{Duration, Instant};

use http::{StatusCode, Version};
use lintel::config::{CertFiles, DefaultCertificate};
use support::{start_proxy as start, write_atomic};
use tls_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const H2: &[u8] = b"h2";
const H1_ALPN: &[u8] = b"http/1.1";

/// A directory with the echo Service and whatever else `files` holds.
async fn manifests(files: &[(&str, String)]) -> tempfile::TempDir {
    let upstream = echo_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("service.yaml"), service_yaml(upstream)).unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    dir
}

#[tokio::test]
async fn sni_picks_each_hosts_certificate_and_the_upstream_sees_https() {
    let ca = TestCa::new();
    let (a, b) = (ca.leaf(&["a.test"]), ca.leaf(&["b.test"]));
    let dir = manifests(&[
        ("a.yaml", ingress_yaml("a", &["a.test"], Some((&["a.test"], "a-tls")), &[])),
        ("b.yaml", ingress_yaml("b", &["b.test"], Some((&["b.test"], "b-tls")), &[])),
        (
            "secrets.yaml",
            format!(
                "{}---\n{}",
                secret_yaml("a-tls", &a.chain_pem, &a.key_pem),
                secret_yaml("b-tls", &b.chain_pem, &b.key_pem)
            ),
        ),
    ])
    .await;
    let lintel = start(dir.path(), |_| {}).await;
    assert_eq!(lintel.live.load().compiled.diagnostics, vec![]);

    for (host, leaf) in [("a.test", &a), ("b.test", &b)] {
        // The client trusts only the root: the intermediate must come from tls.crt's chain.
        let tls = handshake(lintel.https_addr, ca.client(&[H1_ALPN]), host).await.unwrap();
        assert_eq!(peer_leaf(&tls), leaf.der, "{host}");
        let answer = H1::new(tls).await.get(host, "/hello?x=1").await.unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body, format!("proto=https host={host} path=/hello?x=1"));
    }
    lintel.shutdown();
    lintel.wait().await;
}

#[tokio::test]
async fn wildcard_certificate_covers_one_label_only() {
    let ca = TestCa::new();
    let wild = ca.leaf(&["*.wild.test"]);
    let dir = manifests(&[
        ("w.yaml", ingress_yaml("w", &["*.wild.test"], Some((&["*.wild.test"], "wild")), &[])),
        ("s.yaml", secret_yaml("wild", &wild.chain_pem, &wild.key_pem)),
    ])
    .await;
    let lintel = start(dir.path(), |_| {}).await;
    let tls = handshake(lintel.https_addr, ca.client(&[]), "x.wild.test").await.unwrap();
    assert_eq!(peer_leaf(&tls), wild.der);
    let deeper = handshake(lintel.https_addr, trusting_client(&[], true), "y.x.wild.test").await.unwrap();
    assert_ne!(peer_leaf(&deeper), wild.der);
    let bare = handshake(lintel.https_addr, trusting_client(&[], true), "wild.test").await.unwrap();
    assert_ne!(peer_leaf(&bare), wild.der);
    lintel.shutdown();
}

#[tokio::test]
async fn no_sni_and_unknown_sni_get_the_configured_default_files() {
    let ca = TestCa::new();
    let (a, fallback) = (ca.leaf(&["a.test"]), ca.leaf(&["fallback.test"]));
    let dir = manifests(&[
        ("a.yaml", ingress_yaml("a", &["a.test"], Some((&["a.test"], "a-tls")), &[])),
        ("s.yaml", secret_yaml("a-tls", &a.chain_pem, &a.key_pem)),
    ])
    .await;
    let pem_dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (pem_dir.path().join("tls.crt"), pem_dir.path().join("tls.key"));
    std::fs::write(&cert_file, &fallback.chain_pem).unwrap();
    std::fs::write(&key_file, &fallback.key_pem).unwrap();
    let lintel = start(dir.path(), |c| {
        c.default_certificate = Some(DefaultCertificate::Files(CertFiles { cert_file, key_file }))
    })
    .await;

    let no_sni = handshake(lintel.https_addr, trusting_client(&[], false), "a.test").await.unwrap();
    assert_eq!(peer_leaf(&no_sni), fallback.der, "no SNI: the default");
    let unknown = handshake(lintel.https_addr, trusting_client(&[], true), "unknown.test").await.unwrap();
    assert_eq!(peer_leaf(&unknown), fallback.der, "unknown SNI: the default");
    // A request for a host without a route still gets an answer over TLS.
    let answer = H1::new(unknown).await.get("unknown.test", "/").await.unwrap();
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    lintel.shutdown();
}

#[tokio::test]
async fn without_configuration_the_default_is_self_signed() {
    let dir = manifests(&[]).await;
    let lintel = start(dir.path(), |_| {}).await;
    let tls = handshake(lintel.https_addr, trusting_client(&[], false), "x.test").await.unwrap();
    let leaf = rustls::pki_types::CertificateDer::from(peer_leaf(&tls));
    let parsed = rustls::server::ParsedCertificate::try_from(&leaf).unwrap();
    let name = rustls::pki_types::ServerName::try_from(lintel::tls::default_cert::SELF_SIGNED_NAME).unwrap();
    rustls::client::verify_server_name(&parsed, &name).unwrap();
    lintel.shutdown();
}

#[tokio::test]
async fn bad_secret_falls_back_to_the_default_with_a_diagnostic() {
    let ca = TestCa::new();
    let (a, wild, stranger) = (ca.leaf(&["a.w.test"]), ca.leaf(&["*.w.test"]), ca.leaf(&["a.w.test"]));
    let dir = manifests(&[
        ("a.yaml", ingress_yaml("a", &["a.w.test"], Some((&["a.w.test"], "a-tls")), &[])),
        ("w.yaml", ingress_yaml("w", &["*.w.test"], Some((&["*.w.test"], "wild")), &[])),
        // a's certificate with somebody else's key.
        (
            "s.yaml",
            format!(
                "{}---\n{}",
                secret_yaml("a-tls", &a.chain_pem, &stranger.key_pem),
                secret_yaml("wild", &wild.chain_pem, &wild.key_pem)
            ),
        ),
    ])
    .await;
    let lintel = start(dir.path(), |_| {}).await;
    let diagnostics = lintel.live.load().compiled.diagnostics.clone();
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert_eq!(diagnostics[0].field, "spec.tls[0].secretName");
    assert!(diagnostics[0].message.contains("Secret default/a-tls: tls.key does not match"), "{}", diagnostics[0]);

    let tls = handshake(lintel.https_addr, trusting_client(&[], true), "a.w.test").await.unwrap();
    let served = peer_leaf(&tls);
    assert_ne!(served, a.der);
    assert_ne!(served, wild.der, "never another host's certificate, even one that covers the name");
    // The site stays up.
    assert_eq!(H1::new(tls).await.get("a.w.test", "/").await.unwrap().status, StatusCode::OK);
    lintel.shutdown();
}

#[tokio::test]
async fn alpn_picks_http2_or_http11() {
    let ca = TestCa::new();
    let a = ca.leaf(&["a.test"]);
    let dir = manifests(&[
        ("a.yaml", ingress_yaml("a", &["a.test"], Some((&["a.test"], "a-tls")), &[])),
        ("s.yaml", secret_yaml("a-tls", &a.chain_pem, &a.key_pem)),
    ])
    .await;
    let lintel = start(dir.path(), |_| {}).await;

    let tls = handshake(lintel.https_addr, ca.client(&[H2, H1_ALPN]), "a.test").await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(H2));
    let answer = h2_get(tls, "a.test", "/two").await;
    assert_eq!((answer.status, answer.version), (StatusCode::OK, Version::HTTP_2));
    assert_eq!(answer.body, "proto=https host=a.test path=/two");

    let tls = handshake(lintel.https_addr, ca.client(&[H1_ALPN]), "a.test").await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(H1_ALPN));
    let answer = H1::new(tls).await.get("a.test", "/one").await.unwrap();
    assert_eq!((answer.status, answer.version), (StatusCode::OK, Version::HTTP_11));

    let tls = handshake(lintel.https_addr, ca.client(&[]), "a.test").await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), None);
    assert_eq!(H1::new(tls).await.get("a.test", "/none").await.unwrap().status, StatusCode::OK);
    lintel.shutdown();
}

/// Over TLS, Lintel's own HTTP/1.1 server takes the pipelined `GET`s and hands the
/// connection, with the decrypted bytes it has read, to hyper at the first request with a
/// body; hyper answers that one and the rest, in order.
#[tokio::test]
async fn a_tls_connection_is_handed_to_hyper_mid_way_with_what_was_read() {
    let ca = TestCa::new();
    let a = ca.leaf(&["a.test"]);
    let dir = manifests(&[
        ("a.yaml", ingress_yaml("a", &["a.test"], Some((&["a.test"], "a-tls")), &[])),
        ("s.yaml", secret_yaml("a-tls", &a.chain_pem, &a.key_pem)),
    ])
    .await;
    let lintel = start(dir.path(), |_| {}).await;
    let mut tls = handshake(lintel.https_addr, ca.client(&[H1_ALPN]), "a.test").await.unwrap();
    let script = [
        "GET /one HTTP/1.1\r\nHost: a.test\r\n\r\n",
        "HEAD /two HTTP/1.1\r\nHost: a.test\r\n\r\n",
        "POST /three HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\nhello",
        "GET /four HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    ]
    .concat();
    tls.write_all(script.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(answer.matches("HTTP/1.1 200 OK\r\n").count(), 4, "{answer}");
    let bodies: Vec<usize> =
        ["path=/one", "path=/three", "path=/four"].iter().map(|b| answer.find(b).unwrap()).collect();
    assert!(bodies.windows(2).all(|w| w[0] < w[1]), "answered in order: {answer}");
    assert!(!answer.contains("path=/two"), "no body for HEAD: {answer}");
    lintel.shutdown();
}

/// Over TLS, a client that leaves while its answer is pending is noticed (the own server
/// watches the socket's readiness before asking rustls), and the upstream request is dropped:
/// for a plain FIN and for a `close_notify` first.
#[tokio::test]
async fn a_tls_client_that_goes_away_ends_the_upstream_request() {
    // An upstream that reads a request, never answers, and reports when the proxy hangs up.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = listener.local_addr().unwrap();
    let (hung_up, mut on_hang_up) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let hung_up = hung_up.clone();
            tokio::spawn(async move {
                let mut buf = vec![0; 4096];
                let mut seen = Vec::new();
                while let Ok(n @ 1..) = conn.read(&mut buf).await {
                    seen.extend_from_slice(&buf[..n]);
                }
                let _ = hung_up.send(String::from_utf8_lossy(&seen).into_owned());
            });
        }
    });
    let ca = TestCa::new();
    let a = ca.leaf(&["a.test"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("service.yaml"), service_yaml(silent)).unwrap();
    std::fs::write(dir.path().join("a.yaml"), ingress_yaml("a", &["a.test"], Some((&["a.test"], "a-tls")), &[]))
        .unwrap();
    std::fs::write(dir.path().join("s.yaml"), secret_yaml("a-tls", &a.chain_pem, &a.key_pem)).unwrap();
    let lintel = start(dir.path(), |_| {}).await;
    for close_notify in [false, true] {
        let mut tls = handshake(lintel.https_addr, ca.client(&[H1_ALPN]), "a.test").await.unwrap();
        tls.write_all(b"GET /wait HTTP/1.1\r\nHost: a.test\r\n\r\n").await.unwrap();
        // Only once the upstream has the request does the client leave.
        tokio::time::sleep(Duration::from_millis(300)).await;
        if close_notify {
            tls.shutdown().await.unwrap();
        }
        drop(tls);
        let seen = tokio::time::timeout(Duration::from_secs(5), on_hang_up.recv())
            .await
            .unwrap_or_else(|_| panic!("close_notify {close_notify}: the upstream request is not ended"))
            .unwrap();
        assert!(seen.starts_with("GET /wait HTTP/1.1\r\n"), "{seen:?}");
    }
    lintel.shutdown();
}

#[tokio::test]
async fn plain_http_redirects_by_the_rules() {
    let ca = TestCa::new();
    let a = ca.leaf(&["a.test", "optout.test"]);
    let dir = manifests(&[
        ("a.yaml", ingress_yaml("a", &["a.test"], Some((&["a.test"], "a-tls")), &[])),
        ("plain.yaml", ingress_yaml("plain", &["plain.test"], None, &[])),
        (
            "optout.yaml",
            ingress_yaml(
                "optout",
                &["optout.test"],
                Some((&["optout.test"], "a-tls")),
                &[("nginx.ingress.kubernetes.io/ssl-redirect", "false")],
            ),
        ),
        ("forced.yaml", ingress_yaml("forced", &["forced.test"], None, &[("lintel.dev/force-ssl-redirect", "true")])),
        ("alb.yaml", ingress_yaml("alb", &["alb.test"], None, &[("alb.ingress.kubernetes.io/ssl-redirect", "443")])),
        ("s.yaml", secret_yaml("a-tls", &a.chain_pem, &a.key_pem)),
    ])
    .await;
    let lintel = start(dir.path(), |c| c.https_redirect_port = 8443).await;
    assert_eq!(lintel.live.load().compiled.diagnostics, vec![]);
    let http = lintel.http_addr;

    let answer = http_get(http, "a.test", "/some/path?q=1&r=2").await;
    assert_eq!(answer.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(answer.headers["location"], "https://a.test:8443/some/path?q=1&r=2");
    // The port the client used is not carried over; the configured HTTPS port is.
    let answer = http_get(http, "A.test:8080", "/").await;
    assert_eq!(answer.headers["location"], "https://a.test:8443/");

    let acme = http_get(http, "a.test", "/.well-known/acme-challenge/token123").await;
    assert_eq!(
        (acme.status, acme.body.as_str()),
        (StatusCode::OK, "proto=http host=a.test path=/.well-known/acme-challenge/token123")
    );

    assert_eq!(http_get(http, "plain.test", "/").await.status, StatusCode::OK, "no TLS: no redirect");
    assert_eq!(http_get(http, "optout.test", "/").await.status, StatusCode::OK, "ssl-redirect false");
    for forced in ["forced.test", "alb.test"] {
        let answer = http_get(http, forced, "/x").await;
        assert_eq!(answer.status, StatusCode::PERMANENT_REDIRECT, "{forced}");
        assert_eq!(answer.headers["location"], format!("https://{forced}:8443/x"));
    }
    lintel.shutdown();
}

#[tokio::test]
async fn redirect_to_port_443_leaves_the_port_out() {
    let ca = TestCa::new();
    let a = ca.leaf(&["a.test"]);
    let dir = manifests(&[
        ("a.yaml", ingress_yaml("a", &["a.test"], Some((&["a.test"], "a-tls")), &[])),
        ("s.yaml", secret_yaml("a-tls", &a.chain_pem, &a.key_pem)),
    ])
    .await;
    let lintel = start(dir.path(), |_| {}).await;
    let answer = http_get(lintel.http_addr, "a.test", "/p?q").await;
    assert_eq!(answer.headers["location"], "https://a.test/p?q");
    lintel.shutdown();
}

#[tokio::test]
async fn hsts_is_sent_on_https_only() {
    let ca = TestCa::new();
    let a = ca.leaf(&["a.test", "b.test"]);
    let hsts = [("lintel.dev/hsts", "max-age=31536000; includeSubDomains"), ("lintel.dev/ssl-redirect", "false")];
    // b.test's Service does not exist: its answers are the proxy's own 503s.
    let broken =
        ingress_yaml("b", &["b.test"], Some((&["b.test"], "a-tls")), &hsts).replace("name: echo", "name: gone");
    let dir = manifests(&[
        ("a.yaml", ingress_yaml("a", &["a.test"], Some((&["a.test"], "a-tls")), &hsts)),
        ("b.yaml", broken),
        ("s.yaml", secret_yaml("a-tls", &a.chain_pem, &a.key_pem)),
    ])
    .await;
    let lintel = start(dir.path(), |_| {}).await;
    let tls = handshake(lintel.https_addr, ca.client(&[]), "a.test").await.unwrap();
    let answer = H1::new(tls).await.get("a.test", "/").await.unwrap();
    assert_eq!(answer.headers["strict-transport-security"], "max-age=31536000; includeSubDomains");
    let plain = http_get(lintel.http_addr, "a.test", "/").await;
    assert_eq!(plain.status, StatusCode::OK);
    assert!(!plain.headers.contains_key("strict-transport-security"));
    // The policy holds for the proxy's own error answers too, as nginx's `always` does.
    let tls = handshake(lintel.https_addr, ca.client(&[]), "b.test").await.unwrap();
    let answer = H1::new(tls).await.get("b.test", "/").await.unwrap();
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.headers["strict-transport-security"], "max-age=31536000; includeSubDomains");
    lintel.shutdown();
}

/// A Secret rewritten in the middle of a stream of requests: new handshakes pick the new
/// certificate within a second, no request fails, and a connection opened before the change
/// carries on.
#[tokio::test]
async fn rotation_during_a_stream_of_requests_has_no_failures() {
    let ca = TestCa::new();
    let (old, new) = (ca.leaf(&["a.test"]), ca.leaf(&["a.test"]));
    let dir = manifests(&[("a.yaml", ingress_yaml("a", &["a.test"], Some((&["a.test"], "a-tls")), &[]))]).await;
    let secret_file = dir.path().join("secret.yaml");
    write_atomic(&secret_file, &secret_yaml("a-tls", &old.chain_pem, &old.key_pem));
    let lintel = start(dir.path(), |_| {}).await;

    let tls = handshake(lintel.https_addr, ca.client(&[]), "a.test").await.unwrap();
    assert_eq!(peer_leaf(&tls), old.der);
    let mut kept = H1::new(tls).await;
    assert_eq!(kept.get("a.test", "/kept").await.unwrap().status, StatusCode::OK);

    let mut rotated_at = None;
    let mut first_new = None;
    let mut requests = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if requests == 20 {
            write_atomic(&secret_file, &secret_yaml("a-tls", &new.chain_pem, &new.key_pem));
            rotated_at = Some(Instant::now());
        }
        // A fresh connection each time: every request is a full handshake. The client checks
        // the chain against the CA, so a wrong certificate is a failure here.
        let tls = handshake(lintel.https_addr, ca.client(&[]), "a.test").await.expect("handshake");
        let leaf = peer_leaf(&tls);
        assert!(leaf == old.der || leaf == new.der);
        let answer = H1::new(tls).await.get("a.test", "/stream").await.expect("request");
        assert_eq!(answer.status, StatusCode::OK);
        requests += 1;
        if leaf == new.der && first_new.is_none() {
            first_new = Some(Instant::now());
        }
        if first_new.is_some_and(|t| t.elapsed() > Duration::from_millis(300)) {
            break;
        }
    }
    let took = first_new.expect("the new certificate was never served") - rotated_at.unwrap();
    eprintln!("rotation: new certificate served {took:?} after the Secret was rewritten ({requests} requests)");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let after = kept.get("a.test", "/kept").await.expect("the old connection carries on");
    assert_eq!(after.status, StatusCode::OK);
    lintel.shutdown();
}

#[tokio::test]
async fn tls12_clients_work_and_tls11_is_refused() {
    let ca = TestCa::new();
    let a = ca.leaf(&["a.test"]);
    let dir = manifests(&[
        ("a.yaml", ingress_yaml("a", &["a.test"], Some((&["a.test"], "a-tls")), &[])),
        ("s.yaml", secret_yaml("a-tls", &a.chain_pem, &a.key_pem)),
    ])
    .await;
    let lintel = start(dir.path(), |_| {}).await;

    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(ca_roots(&ca))
            .with_no_client_auth();
        let tls = handshake(lintel.https_addr, config, "a.test").await.unwrap();
        assert_eq!(tls.get_ref().1.protocol_version(), Some(version.version));
        assert_eq!(H1::new(tls).await.get("a.test", "/").await.unwrap().status, StatusCode::OK);
    }

    if let Some(outcome) = openssl_handshake(lintel.https_addr, "-tls1_2").await {
        assert!(outcome.0, "openssl with TLS 1.2 should connect: {}", outcome.1);
        let (ok, output) = openssl_handshake(lintel.https_addr, "-tls1_1").await.unwrap();
        assert!(!ok, "TLS 1.1 must be refused: {output}");
        // rustls answers a TLS 1.1-only hello with a fatal alert (handshake_failure).
        assert!(output.contains("alert") && output.contains("Cipher is (NONE)"), "{output}");
    } else {
        eprintln!("openssl not found: TLS 1.1 refusal checked by the rustls configuration only");
    }
    lintel.shutdown();
}

fn ca_roots(ca: &TestCa) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.root_der()).unwrap();
    roots
}

/// Runs `openssl s_client` with the given version flag, with the system configuration (which
/// may forbid old versions on the client side) replaced by none and the security level at 0,
/// so that only the server can refuse. `None` when openssl is not installed.
async fn openssl_handshake(addr: std::net::SocketAddr, version: &str) -> Option<(bool, String)> {
    let args =
        ["s_client", "-connect", &addr.to_string(), "-servername", "a.test", version, "-cipher", "DEFAULT:@SECLEVEL=0"]
            .map(str::to_owned);
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("openssl")
            .args(args)
            .env("OPENSSL_CONF", "/dev/null")
            .stdin(std::process::Stdio::null())
            .output()
    });
    let output = tokio::time::timeout(Duration::from_secs(20), output).await.ok()?.ok()?.ok()?;
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let connected =
        output.status.success() && text.contains("Verify return code") && !text.contains("Cipher is (NONE)");
    Some((connected, text))
}

#[tokio::test]
async fn failing_and_stalled_handshakes_do_not_disturb_others() {
    let ca = TestCa::new();
    let a = ca.leaf(&["a.test"]);
    let dir = manifests(&[
        ("a.yaml", ingress_yaml("a", &["a.test"], Some((&["a.test"], "a-tls")), &[])),
        ("s.yaml", secret_yaml("a-tls", &a.chain_pem, &a.key_pem)),
    ])
    .await;
    let lintel = start(dir.path(), |c| c.timeouts.tls_handshake = Duration::from_millis(300)).await;

    // A client that never says anything, and one that sends garbage.
    let mut stalled = TcpStream::connect(lintel.https_addr).await.unwrap();
    let mut garbage = TcpStream::connect(lintel.https_addr).await.unwrap();
    garbage.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").await.unwrap();

    let tls = handshake(lintel.https_addr, ca.client(&[]), "a.test").await.unwrap();
    assert_eq!(H1::new(tls).await.get("a.test", "/").await.unwrap().status, StatusCode::OK);

    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(5), garbage.read(&mut buf)).await.unwrap();
    assert!(matches!(closed, Ok(n) if n < buf.len()), "garbage is answered with an alert or a close");
    let started = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(5), stalled.read(&mut buf)).await;
    assert!(matches!(ended, Ok(Ok(0)) | Ok(Err(_))), "the stalled handshake is cut off: {ended:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    lintel.shutdown();
}

/// Behind an NLB: the PROXY header comes first, in clear, then the TLS handshake; the client
/// address is the one the header declares.
#[tokio::test]
async fn proxy_protocol_header_then_tls() {
    let ca = TestCa::new();
    let a = ca.leaf(&["a.test"]);
    let dir = manifests(&[
        ("a.yaml", ingress_yaml("a", &["a.test"], Some((&["a.test"], "a-tls")), &[])),
        ("s.yaml", secret_yaml("a-tls", &a.chain_pem, &a.key_pem)),
    ])
    .await;
    let lintel = start(dir.path(), |c| c.client_address.proxy_protocol = true).await;
    let mut tcp = TcpStream::connect(lintel.https_addr).await.unwrap();
    tcp.write_all(b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 443\r\n").await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("a.test").unwrap();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(ca.client(&[])));
    let tls = connector.connect(name, tcp).await.unwrap();
    assert_eq!(peer_leaf(&tls), a.der);
    let answer = H1::new(tls).await.get("a.test", "/").await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["x-seen-real-ip"], "203.0.113.7");
    lintel.shutdown();
}

#[tokio::test]
async fn certificate_expiry_is_exported_per_secret_and_leaves_with_the_secret() {
    use support::scrape::{has, value};

    const EXPIRY: &str = "lintel_tls_certificate_expiry_timestamp_seconds";
    let ca = TestCa::new();
    let (a, b) = (ca.leaf_until(&["a.test"], (2031, 5, 17)), ca.leaf_until(&["b.test"], (2032, 2, 29)));
    let dir = manifests(&[
        ("a.yaml", ingress_yaml("a", &["a.test"], Some((&["a.test"], "a-tls")), &[])),
        ("b.yaml", ingress_yaml("b", &["b.test"], Some((&["b.test"], "b-tls")), &[])),
        ("a-secret.yaml", secret_yaml("a-tls", &a.chain_pem, &a.key_pem)),
        ("b-secret.yaml", secret_yaml("b-tls", &b.chain_pem, &b.key_pem)),
    ])
    .await;
    let lintel = start(dir.path(), |_| {}).await;
    let text = support::scrape_metrics(&lintel).await;
    // notAfter as Unix time (`date -u -d 2031-05-17 +%s`, `date -u -d 2032-02-29 +%s`).
    assert_eq!(value(&text, EXPIRY, &[("namespace", "default"), ("secret", "a-tls")]), Some(1_936_742_400.0), "{text}");
    assert_eq!(value(&text, EXPIRY, &[("namespace", "default"), ("secret", "b-tls")]), Some(1_961_625_600.0), "{text}");

    // The Secret goes away: its series goes too, the other one stays.
    std::fs::remove_file(dir.path().join("b-secret.yaml")).unwrap();
    support::eventually("b-tls's series to leave /metrics", Duration::from_secs(10), || async {
        !has(&support::scrape_metrics(&lintel).await, EXPIRY, &[("secret", "b-tls")])
    })
    .await;
    let text = support::scrape_metrics(&lintel).await;
    assert_eq!(value(&text, EXPIRY, &[("secret", "a-tls")]), Some(1_936_742_400.0), "{text}");
    lintel.shutdown();
}
