//! Source-address filters: which client addresses may use an Ingress's routes. Parsed once in
//! `compile`; checked per request with no allocation. IPv4-mapped IPv6 addresses are treated
//! as the IPv4 address they carry, on both sides.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net};

/// A list of networks, from a comma-separated annotation value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CidrList(Vec<IpNet>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{0:?} is not an IP address or CIDR")]
    Invalid(String),
    #[error("the list is empty")]
    Empty,
}

impl CidrList {
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|net| net.contains(&address))
    }

    pub fn nets(&self) -> &[IpNet] {
        &self.0
    }
}

impl FromStr for CidrList {
    type Err = CidrError;

    /// `10.0.0.0/8, 192.168.1.7 ,2001:db8::/32`: a bare address is a /32 or /128; host bits
    /// are cleared; IPv4-mapped IPv6 networks become IPv4 networks. Empty items are skipped,
    /// but a list with nothing in it is an error: an allowlist that allows nobody by accident
    /// should be loud, not silent.
    fn from_str(value: &str) -> Result<Self, CidrError> {
        let mut nets = Vec::new();
        for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let net = match IpNet::from_str(item) {
                Ok(net) => net,
                Err(_) => match IpAddr::from_str(item) {
                    Ok(addr) => IpNet::from(addr),
                    Err(_) => return Err(CidrError::Invalid(item.to_owned())),
                },
            };
            nets.push(unmap(net.trunc()));
        }
        if nets.is_empty() {
            return Err(CidrError::Empty);
        }
        Ok(Self(nets))
    }
}

/// `::ffff:10.0.0.0/104` is `10.0.0.0/8`.
fn unmap(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net
        && let Some(v4) = v6.addr().to_ipv4_mapped()
        && v6.prefix_len() >= 96
        && let Ok(net) = Ipv4Net::new(v4, v6.prefix_len() - 96)
    {
        return IpNet::V4(net);
    }
    net
}

/// Whether refusals are enforced or only reported (to switch an allowlist on safely).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FilterMode {
    #[default]
    Enforce,
    Report,
}

/// The source filter of one Ingress.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceFilter {
    /// `None`: no allowlist, every address may pass (unless denied).
    pub allow: Option<CidrList>,
    pub deny: Option<CidrList>,
    pub mode: FilterMode,
    /// A filter annotation did not parse: refuse everything (fail closed).
    pub invalid: bool,
}

/// Why an address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NotAllowed,
    Denied,
    InvalidFilter,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotAllowed => "not in allowlist",
            Self::Denied => "in denylist",
            Self::InvalidFilter => "allowlist invalid (fail closed)",
        }
    }
}

impl SourceFilter {
    pub fn is_open(&self) -> bool {
        self.allow.is_none() && self.deny.is_none() && !self.invalid
    }

    /// `Err` when the address must be refused (in `Report` mode too: the caller decides).
    pub fn check(&self, address: IpAddr) -> Result<(), Refusal> {
        if self.invalid {
            return Err(Refusal::InvalidFilter);
        }
        if self.deny.as_ref().is_some_and(|d| d.contains(address)) {
            return Err(Refusal::Denied);
        }
        if self.allow.as_ref().is_some_and(|a| !a.contains(address)) {
            return Err(Refusal::NotAllowed);
        }
        Ok(())
    }
}

impl<'de> serde::Deserialize<'de> for CidrList {
    /// From `"10.0.0.0/8, fd00::/8"` or `["10.0.0.0/8", "fd00::/8"]`.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Form {
            One(String),
            Many(Vec<String>),
        }
        let text = match Form::deserialize(deserializer)? {
            Form::One(s) => s,
            Form::Many(v) => v.join(","),
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for CidrList {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(ToString::to_string))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn list(s: &str) -> CidrList {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_mixed_lists_with_spaces_and_bare_addresses() {
        let l = list(" 10.0.0.0/8 ,192.168.1.7, 2001:db8::/32,, fd00::1 ");
        assert_eq!(l.nets().len(), 4);
        assert!(l.contains(ip("10.200.3.4")));
        assert!(l.contains(ip("192.168.1.7")));
        assert!(!l.contains(ip("192.168.1.8")));
        assert!(l.contains(ip("2001:db8:1::5")));
        assert!(l.contains(ip("fd00::1")));
        assert!(!l.contains(ip("fd00::2")));
    }

    #[test]
    fn host_bits_are_cleared() {
        assert_eq!(list("10.1.2.3/8").nets()[0].to_string(), "10.0.0.0/8");
    }

    #[test]
    fn ipv4_mapped_addresses_match_ipv4_ranges() {
        let l = list("10.0.0.0/8");
        assert!(l.contains(ip("::ffff:10.1.2.3")));
        assert!(!l.contains(ip("::ffff:11.1.2.3")));
        let mapped = list("::ffff:10.0.0.0/104");
        assert_eq!(mapped.nets()[0].to_string(), "10.0.0.0/8");
        assert!(mapped.contains(ip("10.9.9.9")));
    }

    #[test]
    fn bad_entries_are_named() {
        assert_eq!("10.0.0.0/8, 10.0.0.300".parse::<CidrList>(), Err(CidrError::Invalid("10.0.0.300".into())));
        assert_eq!("10.0.0.0/33".parse::<CidrList>(), Err(CidrError::Invalid("10.0.0.0/33".into())));
        assert_eq!(" , ".parse::<CidrList>(), Err(CidrError::Empty));
        assert_eq!("office".parse::<CidrList>(), Err(CidrError::Invalid("office".into())));
    }

    #[test]
    fn deny_beats_allow_and_invalid_refuses_all() {
        let f =
            SourceFilter { allow: Some(list("10.0.0.0/8")), deny: Some(list("10.0.0.5")), ..SourceFilter::default() };
        assert_eq!(f.check(ip("10.0.0.4")), Ok(()));
        assert_eq!(f.check(ip("10.0.0.5")), Err(Refusal::Denied));
        assert_eq!(f.check(ip("11.0.0.1")), Err(Refusal::NotAllowed));
        let broken = SourceFilter { invalid: true, ..SourceFilter::default() };
        assert_eq!(broken.check(ip("10.0.0.4")), Err(Refusal::InvalidFilter));
        assert_eq!(SourceFilter::default().check(ip("1.2.3.4")), Ok(()));
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in ".{0,64}") {
            let _ = s.parse::<CidrList>();
        }

        #[test]
        fn a_v4_network_contains_exactly_the_addresses_sharing_its_prefix(a in any::<u32>(), b in any::<u32>(), len in 0u8..=32) {
            let net = list(&format!("{}/{len}", std::net::Ipv4Addr::from(a)));
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            prop_assert_eq!(net.contains(IpAddr::from(std::net::Ipv4Addr::from(b))), a & mask == b & mask);
            let mapped = std::net::Ipv4Addr::from(b).to_ipv6_mapped();
            prop_assert_eq!(net.contains(IpAddr::from(mapped)), a & mask == b & mask);
        }
    }
}
