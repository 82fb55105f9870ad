//! The client address: the TCP peer; or what a PROXY protocol header (v1/v2, as an NLB or
//! HAProxy sends) declares; or, when the sender is a trusted proxy, the right-most
//! `X-Forwarded-For` hop that is not itself trusted. Nothing a client sends is believed
//! unless configuration says its sender may be.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;
use ppp::{HeaderResult, PartialResult};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::table::allow::CidrList;

/// Whether listeners expect a PROXY protocol header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ProxyProtocol {
    #[default]
    Off,
    /// Every connection must start with one.
    Required,
    /// Optional, and believed only from these peers; a header from any other peer is refused.
    From(CidrList),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientAddressSettings {
    pub proxy_protocol: ProxyProtocol,
    pub proxy_protocol_timeout: Duration,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Option<CidrList>,
}

/// Where a client address came from, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Socket,
    ProxyHeader,
    /// `hop` counts `X-Forwarded-For` entries from the right, the last one being 1; `via` is
    /// the trusted sender that supplied the header.
    ForwardedFor {
        hop: usize,
        via: IpAddr,
    },
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Socket => f.write_str("socket"),
            Self::ProxyHeader => f.write_str("proxy-protocol"),
            Self::ForwardedFor { hop, via } => write!(f, "x-forwarded-for hop {hop} from trusted {via}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("no PROXY protocol header within the timeout")]
    Timeout,
    #[error("connection does not start with a PROXY protocol header")]
    Missing,
    #[error("invalid PROXY protocol header")]
    Invalid,
    #[error("PROXY protocol header from {0}, which is not allowed to send one")]
    NotAllowed(IpAddr),
    #[error("connection closed before the PROXY protocol header ended")]
    Closed,
    #[error("reading the PROXY protocol header: {0}")]
    Io(#[from] io::Error),
}

const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
const V1_PREFIX: &[u8] = b"PROXY ";
/// v1 headers are at most 107 bytes; v2 ones carry TLVs, an NLB's are small.
const MAX_HEADER: usize = 4096;
const V1_MAX: usize = 107;

/// Reads the PROXY header the settings call for, and returns the stream (with any bytes read
/// past the header put back in front) and the client address the header declares.
pub async fn accept(
    mut stream: TcpStream,
    peer: SocketAddr,
    settings: &ClientAddressSettings,
) -> Result<(ClientStream, IpAddr, Origin), ProxyHeaderError> {
    let peer_ip = peer.ip().to_canonical();
    let required = match &settings.proxy_protocol {
        ProxyProtocol::Off => return Ok((ClientStream::new(stream, Bytes::new()), peer_ip, Origin::Socket)),
        ProxyProtocol::Required => true,
        ProxyProtocol::From(_) => false,
    };
    let read = tokio::time::timeout(settings.proxy_protocol_timeout, read_header(&mut stream, required)).await;
    let (declared, rest) = read.map_err(|_| ProxyHeaderError::Timeout)??;
    let stream = ClientStream::new(stream, rest);
    match (declared, &settings.proxy_protocol) {
        (None, _) => Ok((stream, peer_ip, Origin::Socket)),
        (Some(_), ProxyProtocol::From(allowed)) if !allowed.contains(peer_ip) => {
            Err(ProxyHeaderError::NotAllowed(peer_ip))
        }
        // LOCAL (health checks) and UNKNOWN headers carry no address: the peer is the client.
        (Some(None), _) => Ok((stream, peer_ip, Origin::Socket)),
        (Some(Some(addr)), _) => Ok((stream, addr.to_canonical(), Origin::ProxyHeader)),
    }
}

/// `Ok((None, bytes))`: no header (optional mode). `Ok((Some(address), rest))`: a header,
/// with the source it declares (`None` for LOCAL/UNKNOWN) and the bytes that followed it.
async fn read_header(
    stream: &mut TcpStream,
    required: bool,
) -> Result<(Option<Option<IpAddr>>, Bytes), ProxyHeaderError> {
    let mut buf = BytesMut::with_capacity(512);
    loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(ProxyHeaderError::Closed);
        }
        match parse_header(&buf)? {
            Parsed::NotAHeader if required => return Err(ProxyHeaderError::Missing),
            Parsed::NotAHeader => return Ok((None, buf.freeze())),
            Parsed::Incomplete if buf.len() >= MAX_HEADER => return Err(ProxyHeaderError::Invalid),
            Parsed::Incomplete => {}
            Parsed::Header { len, source } => {
                buf.advance(len);
                return Ok((Some(source), buf.freeze()));
            }
        }
    }
}

/// What the start of a connection holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    NotAHeader,
    Incomplete,
    Header { len: usize, source: Option<IpAddr> },
}

/// Parses the start of a connection. Pure, so the fuzz and property tests can drive it.
pub fn parse_header(data: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    let n = data.len();
    let may_be_v2 = data[..n.min(V2_SIGNATURE.len())] == V2_SIGNATURE[..n.min(V2_SIGNATURE.len())];
    let may_be_v1 = data[..n.min(V1_PREFIX.len())] == V1_PREFIX[..n.min(V1_PREFIX.len())];
    if !may_be_v1 && !may_be_v2 {
        return Ok(Parsed::NotAHeader);
    }
    if n < V1_PREFIX.len().min(V2_SIGNATURE.len()) || (may_be_v2 && n < V2_SIGNATURE.len()) {
        return Ok(Parsed::Incomplete);
    }
    let header = HeaderResult::parse(data);
    if header.is_incomplete() {
        // A v1 header is one line of at most 107 bytes: once the line has ended (or cannot
        // end in time), more bytes will not make it valid.
        let line_done = data.iter().take(V1_MAX).any(|&b| b == b'\n') || data.len() > V1_MAX;
        if may_be_v1 && line_done {
            return Err(ProxyHeaderError::Invalid);
        }
        return Ok(Parsed::Incomplete);
    }
    match header {
        HeaderResult::V1(Ok(h)) => {
            let source = match h.addresses {
                ppp::v1::Addresses::Tcp4(a) => Some(IpAddr::V4(a.source_address)),
                ppp::v1::Addresses::Tcp6(a) => Some(IpAddr::V6(a.source_address)),
                ppp::v1::Addresses::Unknown => None,
            };
            Ok(Parsed::Header { len: h.header.len(), source })
        }
        HeaderResult::V2(Ok(h)) => {
            let source = match (h.command, h.addresses) {
                (ppp::v2::Command::Proxy, ppp::v2::Addresses::IPv4(a)) => Some(IpAddr::V4(a.source_address)),
                (ppp::v2::Command::Proxy, ppp::v2::Addresses::IPv6(a)) => Some(IpAddr::V6(a.source_address)),
                _ => None,
            };
            Ok(Parsed::Header { len: h.len(), source })
        }
        _ => Err(ProxyHeaderError::Invalid),
    }
}

/// The client address for one request: `address` as the connection established it, unless
/// it is a trusted proxy, in which case the right-most untrusted `X-Forwarded-For` hop. A hop
/// that does not parse stops the walk: the last address known to be real is used.
pub fn forwarded_client(
    headers: &HeaderMap,
    address: IpAddr,
    origin: Origin,
    trusted: Option<&CidrList>,
) -> (IpAddr, Origin) {
    let Some(trusted) = trusted else { return (address, origin) };
    if !trusted.contains(address) {
        return (address, origin);
    }
    let mut current = (address, origin);
    let mut hop = 0;
    let values: Vec<&str> = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
    for value in values.iter().rev() {
        for item in value.rsplit(',') {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            hop += 1;
            let Some(ip) = parse_hop(item) else { return current };
            current = (ip, Origin::ForwardedFor { hop, via: address });
            if !trusted.contains(ip) {
                return current;
            }
        }
    }
    current
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:443`.
fn parse_hop(item: &str) -> Option<IpAddr> {
    if let Ok(ip) = item.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    item.parse::<SocketAddr>().ok().map(|s| s.ip().to_canonical())
}

/// A client connection with any bytes read past a PROXY header replayed first.
pub type ClientStream = super::Prefixed<TcpStream>;

#[cfg(test)]
mod tests;
