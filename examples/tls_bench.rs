//! A quick HTTPS measurement on loopback: keep-alive requests per second and full TLS
//! handshakes per second through Lintel, for an ECDSA P-256 and an RSA-2048 certificate, plus
//! the cost of parsing each kind of Secret (what the key cache saves on every rebuild).
//!
//!     cargo run --release --example tls_bench -- [SECONDS] [CONNECTIONS]
//!
//! With `TLS_BENCH_SERVE=p256` (or `rsa2048`) it only serves, for SECONDS, with that
//! certificate as the default too (so clients that send no usable SNI, like wrk against an IP,
//! get it), and prints the HTTPS address: for an external load tool.
//!
//! Everything runs in this process on its own runtimes: Lintel (2 worker threads), a tiny
//! upstream and the client. On a small machine they share the cores, so the numbers are a
//! floor for Lintel alone. The client skips certificate and signature checks, so its CPU goes
//! to key exchange and HTTP, not to verifying what the server signs.

#![expect(clippy::unwrap_used, clippy::expect_used, reason = "a benchmark fails loudly")]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

const HOST: &str = "bench.test";
const RSA_2048: &str = include_str!("../tests/fixtures/tls/rsa2048.pkcs8.pem");

fn main() {
    let mut args = std::env::args().skip(1);
    let secs: u64 = args.next().map_or(5, |s| s.parse().expect("SECONDS"));
    let conns: usize = args.next().map_or(32, |s| s.parse().expect("CONNECTIONS"));
    let duration = Duration::from_secs(secs);

    let upstream_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let upstream = upstream_rt.block_on(upstream());
    let client_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    let serve_only = std::env::var("TLS_BENCH_SERVE").ok();
    for (label, key) in [
        ("p256", KeyPair::generate().unwrap()),
        ("rsa2048", KeyPair::from_pem_and_sign_algo(RSA_2048, &rcgen::PKCS_RSA_SHA256).unwrap()),
    ] {
        if serve_only.as_deref().is_some_and(|only| only != label) {
            continue;
        }
        let (chain, key_pem) = certificate(key);
        report_parse_cost(label, &chain, &key_pem);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bench.yaml"), manifests(upstream, &chain, &key_pem)).unwrap();

        let server_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let config = lintel::config::Config {
            http_addr: "127.0.0.1:0".parse().unwrap(),
            https_addr: "127.0.0.1:0".parse().unwrap(),
            admin_addr: "127.0.0.1:0".parse().unwrap(),
            manifests: Some(dir.path().to_path_buf()),
            default_certificate: Some(lintel::config::DefaultCertificate::Secret("default/bench".parse().unwrap())),
            ..Default::default()
        };
        let running = server_rt.block_on(lintel::run::start(&config)).unwrap();
        let addr = running.https_addr;
        if serve_only.is_some() {
            println!("serving {label} on https://{addr}/ for {secs} s");
            std::thread::sleep(duration);
            running.shutdown();
            return;
        }

        let rps = client_rt.block_on(keepalive(addr, conns, duration));
        println!("{label}: HTTPS keep-alive, {conns} connections, HTTP/1.1: {rps:.0} requests/s");
        let hps = client_rt.block_on(handshakes(addr, conns, duration));
        println!("{label}: full TLS 1.3 handshakes (no resumption), {conns} clients: {hps:.0} handshakes/s");
        let hps12 = client_rt.block_on(handshakes_with(addr, conns, duration, &rustls::version::TLS12));
        println!("{label}: full TLS 1.2 handshakes (no resumption), {conns} clients: {hps12:.0} handshakes/s");

        running.shutdown();
        server_rt.block_on(running.wait());
    }
}

/// A leaf for [`HOST`] with the given key, signed by a throwaway CA, as PEM chain and key.
fn certificate(key: KeyPair) -> (String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf = CertificateParams::new(vec![HOST.to_owned()]).unwrap().signed_by(&key, &issuer).unwrap();
    (format!("{}{}", leaf.pem(), ca_cert.pem()), key.serialize_pem())
}

fn report_parse_cost(label: &str, chain: &str, key: &str) {
    let rounds = 200;
    let started = Instant::now();
    for _ in 0..rounds {
        lintel::tls::keys::certified_key(chain.as_bytes(), key.as_bytes()).unwrap();
    }
    let per = started.elapsed() / rounds;
    println!("{label}: parsing a Secret (chain + key + match check): {:.1} µs", per.as_secs_f64() * 1e6);
}

fn manifests(upstream: SocketAddr, chain: &str, key: &str) -> String {
    let indent = |pem: &str| pem.lines().map(|l| format!("    {l}\n")).collect::<String>();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: up, namespace: default}}\nspec:\n  type: ExternalName\n  externalName: 127.0.0.1\n  ports: [{{name: http, port: {port}}}]\n---\n\
         apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: bench\n  namespace: default\n  annotations: {{kubernetes.io/ingress.class: lintel}}\n\
         spec:\n  tls: [{{hosts: [{HOST}], secretName: bench}}]\n  rules:\n    - host: {HOST}\n      http:\n        paths:\n          - {{path: /, pathType: Prefix, backend: {{service: {{name: up, port: {{name: http}}}}}}}}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {{name: bench, namespace: default}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
        indent(chain),
        indent(key),
        port = upstream.port(),
    )
}

async fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let _ = stream.set_nodelay(true);
            let service = service_fn(|_req: Request<hyper::body::Incoming>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok\n"))))
            });
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    addr
}

fn client(versions: &[&'static rustls::SupportedProtocolVersion], alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoVerify))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

async fn connect(addr: SocketAddr, config: Arc<ClientConfig>) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    TlsConnector::from(config).connect(ServerName::try_from(HOST).unwrap(), tcp).await.unwrap()
}

async fn keepalive(addr: SocketAddr, conns: usize, duration: Duration) -> f64 {
    let count = Arc::new(AtomicU64::new(0));
    let config = client(&[&rustls::version::TLS13], &[b"http/1.1"]);
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (count, config) = (count.clone(), config.clone());
        tasks.push(tokio::spawn(async move {
            let tls = connect(addr, config).await;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
            tokio::spawn(conn);
            while Instant::now() < deadline {
                let req = Request::get("/").header("host", HOST).body(Empty::<Bytes>::new()).unwrap();
                let response = sender.send_request(req).await.expect("request");
                assert!(response.status().is_success());
                response.into_body().collect().await.unwrap();
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    count.load(Ordering::Relaxed) as f64 / duration.as_secs_f64()
}

async fn handshakes(addr: SocketAddr, conns: usize, duration: Duration) -> f64 {
    handshakes_with(addr, conns, duration, &rustls::version::TLS13).await
}

async fn handshakes_with(
    addr: SocketAddr,
    conns: usize,
    duration: Duration,
    version: &'static rustls::SupportedProtocolVersion,
) -> f64 {
    let count = Arc::new(AtomicU64::new(0));
    let config = client(&[version], &[]);
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (count, config) = (count.clone(), config.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                drop(connect(addr, config.clone()).await);
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    count.load(Ordering::Relaxed) as f64 / duration.as_secs_f64()
}

/// Accepts whatever the server presents: the benchmark measures the server's work.
#[derive(Debug)]
struct NoVerify;

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider().signature_verification_algorithms.supported_schemes()
    }
}
