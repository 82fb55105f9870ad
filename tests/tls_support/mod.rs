//! Helpers for the TLS end-to-end tests: a test CA (root → intermediate → leaves) made with
//! rcgen, an echo upstream, Ingress and Secret manifests with TLS, and rustls clients speaking
//! HTTP/1.1 or HTTP/2 over loopback. The proxy itself is started by `support::start_proxy`.

#![allow(dead_code, reason = "each test file uses a different part")]
#![expect(clippy::unwrap_used, reason = "test helpers fail the test loudly")]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::ClientConfig;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A root CA and an intermediate that signs the leaves; clients trust the root only, so a
/// handshake succeeds only when the server sends the chain.
pub struct TestCa {
    root: CertificateDer<'static>,
    intermediate_pem: String,
    intermediate: Issuer<'static, KeyPair>,
}

/// A leaf certificate as a Secret holds it.
#[derive(Clone)]
pub struct Leaf {
    /// Leaf then intermediate, PEM.
    pub chain_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

impl TestCa {
    pub fn new() -> Self {
        let root_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "Lintel Test Root");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let root = params.self_signed(&root_key).unwrap();
        let root_issuer = Issuer::new(params, root_key);

        let int_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "Lintel Test Intermediate");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let intermediate = params.signed_by(&int_key, &root_issuer).unwrap();
        Self {
            root: root.der().clone(),
            intermediate_pem: intermediate.pem(),
            intermediate: Issuer::new(params, int_key),
        }
    }

    /// A leaf for `names` with a fresh ECDSA P-256 key.
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_with_key(names, KeyPair::generate().unwrap())
    }

    pub fn leaf_with_key(&self, names: &[&str], key: KeyPair) -> Leaf {
        self.make_leaf(names, key, None)
    }

    /// A leaf for `names` whose `notAfter` is midnight UTC of `(year, month, day)`.
    pub fn leaf_until(&self, names: &[&str], (year, month, day): (i32, u8, u8)) -> Leaf {
        self.make_leaf(names, KeyPair::generate().unwrap(), Some((year, month, day)))
    }

    fn make_leaf(&self, names: &[&str], key: KeyPair, not_after: Option<(i32, u8, u8)>) -> Leaf {
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        if let Some((year, month, day)) = not_after {
            params.not_after = rcgen::date_time_ymd(year, month, day);
        }
        let cert = params.signed_by(&key, &self.intermediate).unwrap();
        Leaf {
            chain_pem: format!("{}{}", cert.pem(), self.intermediate_pem),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    pub fn root_der(&self) -> CertificateDer<'static> {
        self.root.clone()
    }

    /// A client that trusts this CA's root and offers `alpn`.
    pub fn client(&self, alpn: &[&[u8]]) -> ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.root.clone()).unwrap();
        let mut config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config
    }
}

/// A client that accepts any certificate: for looking at the default certificate, which no
/// test CA signed. Only the peer certificate is checked by such tests.
pub fn trusting_client(alpn: &[&[u8]], sni: bool) -> ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.enable_sni = sni;
    config
}

#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Connects and completes a TLS handshake, sending `sni` as the server name.
pub async fn handshake(addr: SocketAddr, config: ClientConfig, sni: &str) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    let connect = TlsConnector::from(Arc::new(config)).connect(name, tcp);
    tokio::time::timeout(Duration::from_secs(10), connect).await.map_err(|_| std::io::ErrorKind::TimedOut)?
}

/// The leaf certificate the server presented.
pub fn peer_leaf(tls: &TlsStream<TcpStream>) -> Vec<u8> {
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// A response with its body read whole.
pub struct Answer {
    pub status: StatusCode,
    pub version: Version,
    pub headers: http::HeaderMap,
    pub body: String,
}

async fn read(response: Response<Incoming>) -> Answer {
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// An HTTP/1.1 connection (over TLS or plain TCP) that can send several requests.
pub struct H1 {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
}

impl H1 {
    pub async fn new<S>(io: S) -> Self
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await.unwrap();
        tokio::spawn(conn);
        Self { sender }
    }

    pub async fn get(&mut self, host: &str, path: &str) -> Result<Answer, hyper::Error> {
        let req = Request::get(path).header(http::header::HOST, host).body(Empty::new()).unwrap();
        self.sender.ready().await?;
        let response = self.sender.send_request(req).await?;
        Ok(read(response).await)
    }
}

/// One HTTP/2 request on a TLS stream that negotiated `h2`.
pub async fn h2_get(tls: TlsStream<TcpStream>, host: &str, path: &str) -> Answer {
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    let req = Request::get(format!("https://{host}{path}")).body(Empty::<Bytes>::new()).unwrap();
    read(sender.send_request(req).await.unwrap()).await
}

/// A plain-HTTP GET on a fresh connection.
pub async fn http_get(addr: SocketAddr, host: &str, path: &str) -> Answer {
    let tcp = TcpStream::connect(addr).await.unwrap();
    H1::new(tcp).await.get(host, path).await.unwrap()
}

/// An upstream that answers every request with what the proxy told it:
/// `proto=<X-Forwarded-Proto> host=<Host> path=<path and query>`, and `X-Real-IP` in the
/// response header `x-seen-real-ip`.
pub async fn echo_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let service = service_fn(|req: Request<Incoming>| async move {
                let header =
                    |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
                let path = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
                let body = format!("proto={} host={} path={path}", header("x-forwarded-proto"), header("host"));
                let mut response = Response::new(Full::new(Bytes::from(body)));
                response.headers_mut().insert("x-seen-real-ip", header("x-real-ip").parse().unwrap());
                Ok::<_, Infallible>(response)
            });
            tokio::spawn(async move {
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    addr
}

/// An Ingress of ours routing `hosts` to the echo upstream, with one TLS entry if `secret`
/// is given (for `tls_hosts`), and extra annotations.
pub fn ingress_yaml(name: &str, hosts: &[&str], tls: Option<(&[&str], &str)>, annotations: &[(&str, &str)]) -> String {
    let mut out = format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: default\n  annotations:\n    kubernetes.io/ingress.class: lintel\n"
    );
    for (k, v) in annotations {
        out.push_str(&format!("    {k}: {v:?}\n"));
    }
    out.push_str("spec:\n  rules:\n");
    for host in hosts {
        out.push_str(&format!(
            "    - host: {host:?}\n      http:\n        paths:\n          - path: /\n            pathType: Prefix\n            backend:\n              service:\n                name: echo\n                port:\n                  name: http\n"
        ));
    }
    if let Some((tls_hosts, secret)) = tls {
        out.push_str("  tls:\n    - hosts:\n");
        for host in tls_hosts {
            out.push_str(&format!("        - {host:?}\n"));
        }
        out.push_str(&format!("      secretName: {secret}\n"));
    }
    out
}

/// A `kubernetes.io/tls` Secret with the PEM in `stringData`.
pub fn secret_yaml(name: &str, chain_pem: &str, key_pem: &str) -> String {
    let indent = |pem: &str| pem.lines().map(|l| format!("    {l}\n")).collect::<String>();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: default\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
        indent(chain_pem),
        indent(key_pem)
    )
}

/// The ExternalName Service pointing at the echo upstream.
pub fn service_yaml(upstream: SocketAddr) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: echo\n  namespace: default\nspec:\n  type: ExternalName\n  externalName: 127.0.0.1\n  ports:\n    - name: http\n      port: {}\n",
        upstream.port()
    )
}
