//! The parameters of one instance, checked once (level 0: no look at this node). Anything wrong
//! here is wrong on every node: 6, naming the parameter as the user wrote it.

use crate::{
    ASN, DCID, FRR_INSTANCE, HOLD_TIME, IP, KEEPALIVE, MULTIHOP_TTL, PEERS, PEER_ASN, PREFIX,
    PRIMARY_COMMUNITY, SECONDARY_COMMUNITY, VTYSH,
};
use cloudha_common::{Context, OcfError, OcfResult, ParamKind, ParamValue};
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;

/// The `ip` parameter as written: an address, and the /N written with it, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedIp {
    pub addr: IpAddr,
    pub prefix: Option<u8>,
}

impl ParamValue for SharedIp {
    const KIND: ParamKind = ParamKind::String;
    fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let (addr, prefix) = match t.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (t, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| "is not an IPv4 or IPv6 address".to_string())?;
        let prefix = match prefix {
            None => None,
            Some(p) => Some(
                p.parse::<u8>()
                    .map_err(|_| format!("has a prefix length '{p}' that is not a number"))?,
            ),
        };
        match (addr, prefix) {
            (IpAddr::V4(_), Some(p)) if p != 32 => Err(format!(
                "is a /{p}: a shared IPv4 address is announced as one address (/32)"
            )),
            (IpAddr::V6(_), Some(p)) if p != 64 && p != 56 => {
                Err(format!("is a /{p}: a shared IPv6 range is a /64 or a /56"))
            }
            _ => Ok(SharedIp { addr, prefix }),
        }
    }
}

/// A BGP community, AS:NN with two 16-bit numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Community(pub u16, pub u16);

impl ParamValue for Community {
    const KIND: ParamKind = ParamKind::String;
    fn parse(text: &str) -> Result<Self, String> {
        let bad = || "is not a BGP community (AS:NN, each 0-65535)".to_string();
        let (a, n) = text.trim().split_once(':').ok_or_else(bad)?;
        let number = |s: &str| {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse::<u16>().ok()
        };
        Ok(Community(
            number(a).ok_or_else(bad)?,
            number(n).ok_or_else(bad)?,
        ))
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0, self.1)
    }
}

/// Route servers given by hand: addresses separated by blanks or commas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peers(pub Vec<IpAddr>);

impl ParamValue for Peers {
    const KIND: ParamKind = ParamKind::String;
    fn parse(text: &str) -> Result<Self, String> {
        let mut peers = Vec::new();
        for word in text.split([' ', ',', '\t']).filter(|w| !w.is_empty()) {
            let addr: IpAddr = word.parse().map_err(|_| {
                format!(
                    "holds '{}', which is not an IPv4 or IPv6 address",
                    cloudha_common::params::shown(word)
                )
            })?;
            if !peers.contains(&addr) {
                peers.push(addr);
            }
        }
        if peers.is_empty() {
            return Err("names no route server".into());
        }
        Ok(Peers(peers))
    }
}

/// An FRR pathspace name (`vtysh -N NAME`): a file name under /etc/frr and /var/run/frr.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathSpace(pub String);

impl ParamValue for PathSpace {
    const KIND: ParamKind = ParamKind::String;
    fn parse(text: &str) -> Result<Self, String> {
        let ok = !text.is_empty()
            && text.len() <= 64
            && !text.starts_with(['.', '-'])
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if ok {
            Ok(PathSpace(text.to_string()))
        } else {
            Err("is not an FRR instance name (letters, digits, - _ and ., at most 64)".into())
        }
    }
}

/// The announced prefix: an IPv4 /32, or an IPv6 /64 or /56 with its host bits cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    pub fn new(addr: IpAddr, len: u8) -> Prefix {
        let addr = match addr {
            IpAddr::V4(a) => IpAddr::V4(a),
            IpAddr::V6(a) => {
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(len.min(128)))
                };
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        Prefix { addr, len }
    }
    pub fn is_ipv6(&self) -> bool {
        self.addr.is_ipv6()
    }
    /// FRR's address family for it.
    pub fn family(&self) -> &'static str {
        if self.is_ipv6() {
            "ipv6"
        } else {
            "ipv4"
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl std::str::FromStr for Prefix {
    type Err = ();
    fn from_str(s: &str) -> Result<Prefix, ()> {
        let (a, l) = s.split_once('/').ok_or(())?;
        let addr: IpAddr = a.parse().map_err(|_| ())?;
        let len: u8 = l.parse().map_err(|_| ())?;
        if len > if addr.is_ipv6() { 128 } else { 32 } {
            return Err(());
        }
        Ok(Prefix::new(addr, len))
    }
}

/// How to reach FRR: the vtysh program and, optionally, the pathspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frr {
    pub vtysh: PathBuf,
    pub instance: Option<String>,
}

impl Frr {
    pub fn from(ctx: &Context) -> OcfResult<Frr> {
        Ok(Frr {
            vtysh: ctx.params.need(&VTYSH)?.0,
            instance: ctx.params.read(&FRR_INSTANCE)?.map(|p| p.0),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub prefix: Prefix,
    pub peers: Vec<IpAddr>,
    pub asn: u32,
    pub peer_asn: u32,
    pub primary: Community,
    pub secondary: Community,
    pub hold_time: u32,
    pub keepalive: u32,
    pub multihop_ttl: u32,
    pub frr: Frr,
}

/// Linode's route servers of a data center: `2600:3c0f:<dcid>:34::1` to `::4`.
pub fn linode_route_servers(dcid: u32) -> Result<Vec<IpAddr>, String> {
    let group = u16::try_from(dcid)
        .ok()
        .filter(|d| *d > 0 && *d <= 0x9999)
        .ok_or_else(|| "is not a Linode data center id (1-9999)".to_string())?;
    // The data center id is written as decimal digits in the address's third group.
    let third = u16::from_str_radix(&group.to_string(), 16)
        .map_err(|_| "is not a Linode data center id (1-9999)".to_string())?;
    Ok((1..=4)
        .map(|n| IpAddr::V6(Ipv6Addr::new(0x2600, 0x3c0f, third, 0x34, 0, 0, 0, n)))
        .collect())
}

impl Settings {
    pub fn from(ctx: &Context) -> OcfResult<Settings> {
        let params = &ctx.params;
        params.check_all()?;
        let ip = params.need(&IP)?;
        let len = match (ip.addr, ip.prefix, params.read(&PREFIX)?) {
            (IpAddr::V4(_), _, Some(p)) if p != 32 => {
                return Err(params.invalid(
                    &PREFIX,
                    "is not 32: a shared IPv4 address is announced as /32",
                ))
            }
            (IpAddr::V4(_), _, _) => 32,
            (IpAddr::V6(_), Some(a), Some(b)) if a != b => {
                return Err(params.invalid(
                    &PREFIX,
                    format_args!("disagrees with the /{a} written in 'ip'"),
                ))
            }
            (IpAddr::V6(_), _, Some(p)) if p != 64 && p != 56 => {
                return Err(params.invalid(&PREFIX, "is not 64 or 56"))
            }
            (IpAddr::V6(_), given, from_param) => from_param.or(given).unwrap_or(64),
        };
        let peers =
            match (params.read(&DCID)?, params.read(&PEERS)?) {
                (Some(_), Some(_)) => {
                    return Err(OcfError::configured(
                        "parameters 'dcid' and 'peers' are both set; set one of them",
                    ))
                }
                (Some(dcid), None) => {
                    linode_route_servers(dcid).map_err(|why| params.invalid(&DCID, why))?
                }
                (None, Some(p)) => p.0,
                (None, None) => return Err(OcfError::configured(
                    "neither parameter 'dcid' nor 'peers' is set: the route servers are unknown",
                )),
            };
        let asn = params.need(&ASN)?;
        if asn == 0 {
            return Err(params.invalid(&ASN, "is not an AS number (1-4294967295)"));
        }
        let peer_asn = params.need(&PEER_ASN)?;
        if peer_asn == 0 {
            return Err(params.invalid(&PEER_ASN, "is not an AS number (1-4294967295)"));
        }
        let primary = params.need(&PRIMARY_COMMUNITY)?;
        let secondary = params.need(&SECONDARY_COMMUNITY)?;
        if primary == secondary {
            return Err(params.invalid(
                &SECONDARY_COMMUNITY,
                "is the primary_community too: the route servers could not tell the roles apart",
            ));
        }
        let hold_time = params.need(&HOLD_TIME)?;
        if hold_time != 0 && !(3..=65535).contains(&hold_time) {
            return Err(params.invalid(&HOLD_TIME, "is out of range (0, or 3-65535)"));
        }
        let keepalive = params.need(&KEEPALIVE)?;
        if keepalive > 65535 || (hold_time != 0 && keepalive >= hold_time) {
            return Err(params.invalid(
                &KEEPALIVE,
                format_args!("is not below hold_time ({hold_time})"),
            ));
        }
        let multihop_ttl = params.need(&MULTIHOP_TTL)?;
        if !(1..=255).contains(&multihop_ttl) {
            return Err(params.invalid(&MULTIHOP_TTL, "is out of range (1-255)"));
        }
        Ok(Settings {
            prefix: Prefix::new(ip.addr, len),
            peers,
            asn,
            peer_asn,
            primary,
            secondary,
            hold_time,
            keepalive,
            multihop_ttl,
            frr: Frr::from(ctx)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudha_common::{Action, Logger, OcfCode, OcfEnv};

    fn settings(vars: &[(&str, &str)]) -> OcfResult<Settings> {
        let env = OcfEnv::from_vars(
            vars.iter()
                .map(|(k, v)| (format!("OCF_RESKEY_{k}"), v.to_string())),
        );
        let ctx = Context::new(&crate::SPEC, Action::ValidateAll, env, Logger::stderr("t"));
        Settings::from(&ctx)
    }

    fn reason(vars: &[(&str, &str)]) -> String {
        let e = settings(vars).unwrap_err();
        assert_eq!(e.code, OcfCode::ErrConfigured, "{}", e.reason);
        e.reason
    }

    #[test]
    fn defaults_with_peers() {
        let s = settings(&[
            ("ip", "203.0.113.7"),
            ("peers", "2001:db8:34::1, 2001:db8:34::2"),
        ])
        .unwrap();
        assert_eq!(s.prefix.to_string(), "203.0.113.7/32");
        assert_eq!(s.peers.len(), 2);
        assert_eq!((s.asn, s.peer_asn), (65001, 65000));
        assert_eq!(s.primary, Community(65000, 1));
        assert_eq!(s.secondary, Community(65000, 2));
        assert_eq!((s.hold_time, s.keepalive, s.multihop_ttl), (9, 3, 10));
        assert_eq!(s.frr.vtysh, PathBuf::from("/usr/bin/vtysh"));
        assert_eq!(s.frr.instance, None);
    }

    #[test]
    fn dcid_gives_linode_route_servers() {
        let s = settings(&[("ip", "203.0.113.7/32"), ("dcid", "10")]).unwrap();
        let shown: Vec<String> = s.peers.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            shown,
            [
                "2600:3c0f:10:34::1",
                "2600:3c0f:10:34::2",
                "2600:3c0f:10:34::3",
                "2600:3c0f:10:34::4"
            ]
        );
        assert!(reason(&[("ip", "203.0.113.7"), ("dcid", "0")]).contains("'dcid': '0'"));
        assert!(reason(&[
            ("ip", "203.0.113.7"),
            ("dcid", "10"),
            ("peers", "2001:db8::1")
        ])
        .contains("both set"));
        assert!(reason(&[("ip", "203.0.113.7")]).contains("'peers'"));
    }

    #[test]
    fn ipv6_ranges() {
        let p = |vars: &[(&str, &str)]| settings(vars).unwrap().prefix.to_string();
        let peers = ("peers", "2001:db8:34::1");
        assert_eq!(p(&[("ip", "2001:db8:1:2::7"), peers]), "2001:db8:1:2::/64");
        assert_eq!(p(&[("ip", "2001:db8:1:2::/56"), peers]), "2001:db8:1::/56");
        assert_eq!(
            p(&[("ip", "2001:db8:1:2::"), ("prefix", "56"), peers]),
            "2001:db8:1::/56"
        );
        assert!(reason(&[("ip", "2001:db8::"), ("prefix", "48"), peers]).contains("'prefix'"));
        assert!(reason(&[("ip", "2001:db8::/64"), ("prefix", "56"), peers]).contains("disagrees"));
    }

    #[test]
    fn bad_inputs_name_their_parameter() {
        let peers = ("peers", "2001:db8:34::1");
        assert_eq!(
            reason(&[("ip", "203.0.113.0/24"), peers]),
            "parameter 'ip': '203.0.113.0/24' is a /24: a shared IPv4 address is announced as one address (/32)"
        );
        assert!(reason(&[("ip", "203.0.113.7"), ("prefix", "24"), peers]).contains("'prefix'"));
        assert!(reason(&[("ip", "nonsense"), peers]).starts_with("parameter 'ip': 'nonsense'"));
        assert_eq!(
            reason(&[
                ("ip", "203.0.113.7"),
                ("primary_community", "65000-1"),
                peers
            ]),
            "parameter 'primary_community': '65000-1' is not a BGP community (AS:NN, each 0-65535)"
        );
        assert!(reason(&[
            ("ip", "203.0.113.7"),
            ("secondary_community", "65000:70000"),
            peers
        ])
        .starts_with("parameter 'secondary_community'"));
        assert!(reason(&[
            ("ip", "203.0.113.7"),
            ("secondary_community", "65000:1"),
            peers
        ])
        .contains("primary_community too"));
        assert!(reason(&[("ip", "203.0.113.7"), ("peers", "rs1")]).contains("'peers': 'rs1'"));
        assert!(reason(&[("ip", "203.0.113.7"), ("hold_time", "2"), peers]).contains("'hold_time'"));
        assert!(reason(&[("ip", "203.0.113.7"), ("keepalive", "9"), peers]).contains("'keepalive'"));
        assert!(
            reason(&[("ip", "203.0.113.7"), ("multihop_ttl", "0"), peers])
                .contains("'multihop_ttl'")
        );
        assert!(reason(&[("ip", "203.0.113.7"), ("asn", "0"), peers]).contains("'asn'"));
        assert!(reason(&[("ip", "203.0.113.7"), ("vtysh", "vtysh"), peers]).contains("'vtysh'"));
        assert!(
            reason(&[("ip", "203.0.113.7"), ("frr_instance", "../x"), peers])
                .contains("'frr_instance'")
        );
        assert!(reason(&[peers]).contains("'ip'"));
    }

    #[test]
    fn prefixes_parse_and_mask() {
        let p: Prefix = "2001:db8:1:2::9/56".parse().unwrap();
        assert_eq!(p.to_string(), "2001:db8:1::/56");
        assert!("203.0.113.7/33".parse::<Prefix>().is_err());
        assert!("203.0.113.7".parse::<Prefix>().is_err());
    }
}
