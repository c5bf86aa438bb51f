//! What the parameters ask for (an address, its prefix, an interface), checked without touching
//! the system, and resolved (`ip=auto`: the DigitalOcean metadata service) when an action needs it.
//! Where the address goes when `nic` or `cidr_netmask` is not given is `discover`'s business.
//! Also the record of what a start did, kept in the instance state.

use crate::discover::Broadcast;
use crate::netlink::IfAddr;
use cloudha_common::deadline::Backoff;
use cloudha_common::http::MetadataService;
use cloudha_common::url::HttpUrl;
use cloudha_common::{Deadline, OcfError, OcfResult, Params};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// Where the anchor IP and its netmask live under the metadata service's base URL.
pub const ANCHOR_ADDRESS_PATH: &str = "interfaces/public/0/anchor_ipv4/address";
pub const ANCHOR_NETMASK_PATH: &str = "interfaces/public/0/anchor_ipv4/netmask";

/// The `ip` parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpChoice {
    Explicit(IpAddr),
    /// Ask the metadata service for the droplet's anchor IP.
    Auto,
}

/// The parameters, checked for consistency (validate-all level 0). No I/O.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub ip: IpChoice,
    /// `cidr_netmask` when given.
    pub prefix: Option<u8>,
    /// `nic` when given (`eth0` for `ip=auto`); None: the interface whose subnet holds the address.
    pub nic: Option<String>,
    /// `broadcast` when given (IPv4).
    pub broadcast: Option<Broadcast>,
    pub arp_count: u32,
    pub metadata_url: String,
}

/// An address on an interface: what a start puts in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchor {
    pub addr: IfAddr,
    pub nic: String,
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr.addr, self.addr.prefix)
    }
}

/// The name the state and the lock go by when no cluster names the instance (a person running
/// the agent by hand): the same parameters find the same state. Without `nic`: `ip@any`.
pub fn instance_fallback(params: &Params) -> String {
    let ip = params.get("ip").unwrap_or("unset");
    let nic = params
        .get("nic")
        .unwrap_or(if ip == "auto" { "eth0" } else { "any" });
    format!("{ip}@{nic}")
}

/// Why an interface cannot hold `addr`, if it cannot.
pub fn unusable(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(v4) => {
            if v4.is_unspecified() {
                Some("the unspecified address")
            } else if v4.is_multicast() {
                Some("a multicast address")
            } else if v4.is_broadcast() {
                Some("the broadcast address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if v6.is_unspecified() {
                Some("the unspecified address")
            } else if v6.is_multicast() {
                Some("a multicast address")
            } else {
                None
            }
        }
    }
}

/// An IPv6 link-local address (fe80::/10): it means nothing without its interface.
pub fn is_link_local(addr: IpAddr) -> bool {
    matches!(addr, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

/// Parse the `ip` parameter.
pub fn parse_ip(value: &str) -> OcfResult<IpChoice> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("auto") {
        return Ok(IpChoice::Auto);
    }
    let addr: IpAddr = value.parse().map_err(|_| {
        OcfError::configured(format!(
            "parameter 'ip': '{value}' is not an IPv4 or IPv6 address (nor 'auto')"
        ))
    })?;
    match unusable(addr) {
        Some(what) => Err(OcfError::configured(format!(
            "parameter 'ip': '{value}' is {what}, which an interface cannot hold"
        ))),
        None => Ok(IpChoice::Explicit(addr)),
    }
}

/// The prefix length of a dotted IPv4 netmask (255.255.0.0 is 16); None when not contiguous.
pub fn netmask_prefix(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let ones = bits.leading_ones();
    if bits.checked_shl(ones).unwrap_or(0) == 0 {
        Some(ones as u8)
    } else {
        None
    }
}

/// Parse `cidr_netmask`: a prefix length (`24` or `/24`), or for IPv4 a dotted netmask.
/// `v6` says which family's range applies (1-32 or 1-128; /0 would claim every address).
pub fn parse_prefix(value: &str, v6: bool) -> OcfResult<u8> {
    let value = value.trim();
    let digits = value.strip_prefix('/').unwrap_or(value);
    let max = if v6 { 128 } else { 32 };
    let prefix = if let Ok(n) = digits.parse::<u32>() {
        n
    } else if let (false, Ok(mask)) = (v6, value.parse::<Ipv4Addr>()) {
        match netmask_prefix(mask) {
            Some(p) => u32::from(p),
            None => {
                return Err(OcfError::configured(format!(
                    "parameter 'cidr_netmask': '{value}' is not a valid netmask (its ones are not contiguous)"
                )))
            }
        }
    } else {
        return Err(OcfError::configured(format!(
            "parameter 'cidr_netmask': '{value}' is not a prefix length (1-{max})"
        )));
    };
    if prefix == 0 || prefix > max {
        let family = if v6 { "IPv6" } else { "IPv4" };
        return Err(OcfError::configured(format!(
            "parameter 'cidr_netmask': {prefix} is out of range for an {family} address (1-{max})"
        )));
    }
    Ok(prefix as u8)
}

/// Parse `broadcast` (IPv4 only): an address, or `+` / `-` (the host bits of the prefix set or
/// cleared), as IPaddr2 takes it.
pub fn parse_broadcast(value: &str) -> OcfResult<Broadcast> {
    match value.trim() {
        "+" => Ok(Broadcast::HostBitsSet),
        "-" => Ok(Broadcast::HostBitsCleared),
        v => v.parse::<Ipv4Addr>().map(Broadcast::Address).map_err(|_| {
            OcfError::configured(format!(
                "parameter 'broadcast': '{v}' is not an IPv4 address (nor '+' or '-')"
            ))
        }),
    }
}

/// Interface names as the kernel accepts them: 1-15 bytes, no '/', ':' or whitespace.
pub fn check_nic(name: &str) -> OcfResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace());
    if ok {
        Ok(())
    } else {
        Err(OcfError::configured(format!(
            "parameter 'nic': '{name}' is not a valid interface name"
        )))
    }
}

impl Wanted {
    /// Everything the parameters say, checked for consistency. A wrong value is wrong on every
    /// node: 6, naming the parameter.
    pub fn from_params(params: &Params) -> OcfResult<Wanted> {
        params.check_types()?;
        let ip = parse_ip(params.require("ip")?)?;
        let prefix = match (params.get("cidr_netmask"), ip) {
            (None, _) => None,
            (Some(v), IpChoice::Explicit(a)) => Some(parse_prefix(v, a.is_ipv6())?),
            // The anchor IP is IPv4.
            (Some(v), IpChoice::Auto) => Some(parse_prefix(v, false)?),
        };
        let nic = match params.get("nic") {
            Some(n) => Some(n.trim().to_string()),
            None if ip == IpChoice::Auto => Some("eth0".to_string()),
            None => None,
        };
        if let Some(nic) = &nic {
            check_nic(nic)?;
        }
        if let (IpChoice::Explicit(a), None) = (ip, &nic) {
            if is_link_local(a) {
                return Err(OcfError::configured(format!(
                    "parameter 'nic' is required for the link-local address {a}: it exists only \
                     on the interface it is given"
                )));
            }
        }
        let broadcast = match (params.get("broadcast"), ip) {
            (None, _) => None,
            (Some(v), IpChoice::Explicit(IpAddr::V6(_))) => {
                return Err(OcfError::configured(format!(
                    "parameter 'broadcast': '{}' is for an IPv4 address; IPv6 has no broadcast",
                    v.trim()
                )))
            }
            (Some(v), _) => Some(parse_broadcast(v)?),
        };
        let arp_count = params.integer("arp_count")?.unwrap_or(0);
        let arp_count = u32::try_from(arp_count)
            .ok()
            .filter(|n| *n <= 100)
            .ok_or_else(|| {
                OcfError::configured(format!(
                    "parameter 'arp_count': {arp_count} is out of range (0-100; 0 sends none)"
                ))
            })?;
        let metadata_url = params
            .get("metadata_url")
            .unwrap_or(cloudha_common::http::DEFAULT_METADATA_URL)
            .trim()
            .to_string();
        if let Err(e) = HttpUrl::parse(&metadata_url) {
            return Err(OcfError::configured(format!(
                "parameter 'metadata_url': '{metadata_url}' {e}"
            )));
        }
        Ok(Wanted {
            ip,
            prefix,
            nic,
            broadcast,
            arp_count,
            metadata_url,
        })
    }

    /// The address to put in place, and its prefix when known (`cidr_netmask`; for `ip=auto`
    /// the metadata netmask). For `ip=auto` this reads the metadata service, retrying until
    /// `deadline`: a service that does not answer, or answers something an interface cannot
    /// hold, is a failure here (1), never a configuration error; a droplet without an anchor IP
    /// lacks something on this node (5).
    pub fn resolve(&self, deadline: &Deadline) -> OcfResult<(IpAddr, Option<u8>)> {
        match self.ip {
            IpChoice::Explicit(a) => Ok((a, self.prefix)),
            IpChoice::Auto => {
                let service = MetadataService::new(&self.metadata_url);
                let mut backoff =
                    Backoff::new(Duration::from_millis(50), Duration::from_millis(500));
                loop {
                    let problem = match self.read_anchor(&service, deadline) {
                        Ok((addr, prefix)) => return Ok((IpAddr::V4(addr), Some(prefix))),
                        Err(Attempt::Final(e)) => return Err(e),
                        Err(Attempt::Again(problem)) => problem,
                    };
                    if !deadline.sleep(backoff.next_delay()) {
                        return Err(OcfError::generic(format!(
                            "parameter 'ip' is 'auto', but the metadata service {problem}"
                        )));
                    }
                }
            }
        }
    }

    /// One reading of the anchor IP and its netmask (the netmask only when `cidr_netmask` is
    /// not given), each answer checked as an explicit `ip` and `cidr_netmask` would be.
    fn read_anchor(
        &self,
        service: &MetadataService,
        deadline: &Deadline,
    ) -> Result<(Ipv4Addr, u8), Attempt> {
        let text = read_text(service, ANCHOR_ADDRESS_PATH, deadline)?;
        let url = service.url(ANCHOR_ADDRESS_PATH);
        let addr = match text.parse::<Ipv4Addr>() {
            Err(_) => {
                return Err(Attempt::Again(format!(
                    "answered '{}' at {url} until the timeout, which is not an IPv4 address",
                    shown(&text)
                )))
            }
            Ok(a) => match unusable(IpAddr::V4(a)) {
                Some(what) => {
                    return Err(Attempt::Again(format!(
                        "answered '{a}' at {url} until the timeout: {what}, which an interface \
                         cannot hold"
                    )))
                }
                None => a,
            },
        };
        if let Some(p) = self.prefix {
            return Ok((addr, p));
        }
        let text = read_text(service, ANCHOR_NETMASK_PATH, deadline)?;
        match text
            .parse()
            .ok()
            .and_then(netmask_prefix)
            .filter(|p| *p > 0)
        {
            Some(p) => Ok((addr, p)),
            None => Err(Attempt::Again(format!(
                "answered '{}' at {} until the timeout, which is not a netmask",
                shown(&text),
                service.url(ANCHOR_NETMASK_PATH)
            ))),
        }
    }
}

/// How one reading of the metadata service went wrong.
enum Attempt {
    /// Worth another try within the deadline; the words finish "the metadata service …".
    Again(String),
    /// An answer that will not change (404: no anchor IP on this droplet).
    Final(OcfError),
}

/// One read of `path`: its text, or why not.
fn read_text(
    service: &MetadataService,
    path: &str,
    deadline: &Deadline,
) -> Result<String, Attempt> {
    let url = service.url(path);
    match service.get(path, deadline) {
        Ok(Some(text)) => Ok(text.trim().to_string()),
        Ok(None) => Err(Attempt::Final(OcfError::installed(format!(
            "parameter 'ip' is 'auto', but this droplet has no anchor IP ({url} answered 404; \
             droplets made before October 2015 and custom images have none): set 'ip' to the \
             address"
        )))),
        Err(e) => Err(Attempt::Again(format!(
            "could not be read before the timeout: {} ({url})",
            e.detail
        ))),
    }
}

/// An answer as quoted in a reason: its first 40 characters, on one line.
fn shown(text: &str) -> String {
    text.chars()
        .take(40)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// What a start did, remembered until the stop: the address, where, and whether this agent
/// added it (an address that was there before is never removed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Started {
    pub anchor: Anchor,
    pub added: bool,
    /// The kernel's creation stamp of the address this agent added: an address there at stop
    /// with another stamp was added again by someone else, and is not removed.
    pub created: Option<u32>,
}

impl Started {
    pub const RECORD: &'static str = "started";

    pub fn to_record(&self) -> String {
        let mut text = format!(
            "address={}\nnic={}\nadded={}\n",
            self.anchor,
            self.anchor.nic,
            if self.added { "yes" } else { "no" }
        );
        if let Some(c) = self.created {
            text += &format!("created={c}\n");
        }
        text
    }

    pub fn from_record(text: &str) -> Option<Started> {
        let mut address = None;
        let mut nic = None;
        let mut added = None;
        let mut created = None;
        for line in text.lines() {
            match line.split_once('=') {
                Some(("address", v)) => address = Some(v),
                Some(("nic", v)) => nic = Some(v),
                Some(("added", v)) => added = Some(v == "yes"),
                Some(("created", v)) => created = Some(v.parse().ok()?),
                _ => {}
            }
        }
        let (addr, prefix) = address?.split_once('/')?;
        Some(Started {
            anchor: Anchor {
                addr: IfAddr {
                    addr: addr.parse().ok()?,
                    prefix: prefix.parse().ok()?,
                },
                nic: nic?.to_string(),
            },
            added: added?,
            created,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudha_common::OcfCode;

    #[test]
    fn ip_accepts_both_families_and_auto() {
        assert_eq!(
            parse_ip("10.17.1.18").unwrap(),
            IpChoice::Explicit("10.17.1.18".parse().unwrap())
        );
        assert_eq!(
            parse_ip("2001:db8::7").unwrap(),
            IpChoice::Explicit("2001:db8::7".parse().unwrap())
        );
        assert_eq!(parse_ip("AUTO").unwrap(), IpChoice::Auto);
    }

    #[test]
    fn malformed_ip_is_6_naming_the_parameter() {
        let e = parse_ip("10.1.2").unwrap_err();
        assert_eq!(e.code, OcfCode::ErrConfigured);
        assert_eq!(
            e.reason,
            "parameter 'ip': '10.1.2' is not an IPv4 or IPv6 address (nor 'auto')"
        );
        for bad in ["0.0.0.0", "::", "224.0.0.1", "ff02::1", "255.255.255.255"] {
            assert_eq!(
                parse_ip(bad).unwrap_err().code,
                OcfCode::ErrConfigured,
                "{bad}"
            );
        }
    }

    #[test]
    fn broadcast_as_ipaddr2_takes_it() {
        assert_eq!(
            parse_broadcast("192.0.2.255").unwrap(),
            Broadcast::Address("192.0.2.255".parse().unwrap())
        );
        assert_eq!(parse_broadcast("+").unwrap(), Broadcast::HostBitsSet);
        assert_eq!(parse_broadcast(" - ").unwrap(), Broadcast::HostBitsCleared);
        let e = parse_broadcast("192.0.2").unwrap_err();
        assert_eq!(e.code, OcfCode::ErrConfigured);
        assert_eq!(
            e.reason,
            "parameter 'broadcast': '192.0.2' is not an IPv4 address (nor '+' or '-')"
        );
    }

    #[test]
    fn link_local_and_unusable_addresses() {
        assert!(is_link_local("fe80::2".parse().unwrap()));
        assert!(is_link_local("febf::2".parse().unwrap()));
        assert!(!is_link_local("fec0::2".parse().unwrap()));
        assert!(!is_link_local("2001:db8::2".parse().unwrap()));
        assert!(!is_link_local("169.254.1.1".parse().unwrap()));
        assert_eq!(
            unusable("224.0.0.5".parse().unwrap()),
            Some("a multicast address")
        );
        assert_eq!(
            unusable("0.0.0.0".parse().unwrap()),
            Some("the unspecified address")
        );
        assert_eq!(unusable("10.17.0.5".parse().unwrap()), None);
    }

    #[test]
    fn prefixes_in_every_spelling() {
        assert_eq!(parse_prefix("24", false).unwrap(), 24);
        assert_eq!(parse_prefix("/16", false).unwrap(), 16);
        assert_eq!(parse_prefix("255.255.0.0", false).unwrap(), 16);
        assert_eq!(parse_prefix("64", true).unwrap(), 64);
        assert_eq!(parse_prefix("128", true).unwrap(), 128);
    }

    #[test]
    fn prefixes_out_of_range_are_6() {
        let e = parse_prefix("33", false).unwrap_err();
        assert_eq!(e.code, OcfCode::ErrConfigured);
        assert_eq!(
            e.reason,
            "parameter 'cidr_netmask': 33 is out of range for an IPv4 address (1-32)"
        );
        assert!(parse_prefix("129", true).is_err());
        assert!(parse_prefix("0", false).is_err());
        assert!(parse_prefix("255.0.255.0", false)
            .unwrap_err()
            .reason
            .contains("not contiguous"));
        assert!(parse_prefix("255.255.0.0", true).is_err());
        assert!(parse_prefix("wide", false)
            .unwrap_err()
            .reason
            .starts_with("parameter 'cidr_netmask': 'wide'"));
    }

    #[test]
    fn netmasks() {
        assert_eq!(netmask_prefix("255.255.0.0".parse().unwrap()), Some(16));
        assert_eq!(netmask_prefix("255.255.255.255".parse().unwrap()), Some(32));
        assert_eq!(netmask_prefix("0.0.0.0".parse().unwrap()), Some(0));
        assert_eq!(netmask_prefix("255.0.255.0".parse().unwrap()), None);
    }

    #[test]
    fn nic_names() {
        assert!(check_nic("eth0").is_ok());
        assert!(check_nic("a-very-long-name").is_err());
        assert!(check_nic("eth0/x").is_err());
        assert!(check_nic("").is_err());
        assert_eq!(
            check_nic("eth 0").unwrap_err().reason,
            "parameter 'nic': 'eth 0' is not a valid interface name"
        );
    }

    #[test]
    fn record_round_trip() {
        let s = Started {
            anchor: Anchor {
                addr: IfAddr {
                    addr: "2001:db8::7".parse().unwrap(),
                    prefix: 64,
                },
                nic: "eth0".into(),
            },
            added: true,
            created: Some(4711),
        };
        assert_eq!(
            s.to_record(),
            "address=2001:db8::7/64\nnic=eth0\nadded=yes\ncreated=4711\n"
        );
        assert_eq!(Started::from_record(&s.to_record()), Some(s.clone()));
        // A record of the previous version (no creation stamp) still reads.
        let old = Started::from_record("address=2001:db8::7/64\nnic=eth0\nadded=yes\n").unwrap();
        assert_eq!(old.created, None);
        assert_eq!(Started::from_record("garbage"), None);
    }
}
