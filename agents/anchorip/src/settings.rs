//! The instance parameters, parsed through their handles and checked together (validate-all
//! level 0): no I/O. Anything wrong here is wrong on every node: 6, naming the parameter.
//! Where the address goes when `nic` or `cidr_netmask` is not given is `discover`'s business;
//! what `ip=auto` stands for is read at start (`anchor`).

use crate::discover::Broadcast;
use crate::{ARP_COUNT, BROADCAST, CIDR_NETMASK, IP, METADATA_URL, NIC};
use cloudha_common::{
    Context, HttpUrl, OcfCode, OcfError, OcfResult, ParamKind, ParamValue, Params,
};
use std::net::{IpAddr, Ipv4Addr};

/// The interface of `ip=auto` when `nic` is not given: the droplet's public interface.
pub const AUTO_NIC: &str = "eth0";
/// The most gratuitous ARP announcements a start sends.
const MAX_ARP_COUNT: u32 = 100;

/// The `ip` parameter: an address an interface can hold, or `auto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpChoice {
    Explicit(IpAddr),
    /// Ask the metadata service for the droplet's anchor IP.
    Auto,
}

impl ParamValue for IpChoice {
    const KIND: ParamKind = ParamKind::String;
    fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("auto") {
            return Ok(IpChoice::Auto);
        }
        let addr: IpAddr = text
            .parse()
            .map_err(|_| "is not an IPv4 or IPv6 address (nor 'auto')".to_string())?;
        match unusable(addr) {
            Some(what) => Err(format!("is {what}, which an interface cannot hold")),
            None => Ok(IpChoice::Explicit(addr)),
        }
    }
}

/// The `cidr_netmask` parameter as written: a prefix length (`24`, `/24`) or a dotted IPv4
/// netmask. Its range depends on the address's family: `prefix` checks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CidrNetmask {
    Length(u32),
    /// A contiguous dotted netmask, as its prefix length.
    Netmask(u8),
}

/// Why a `cidr_netmask` does not fit the address's family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrefixError {
    /// A dotted netmask for an IPv6 address.
    NotALength,
    /// 0, or longer than the family's addresses.
    OutOfRange(u32),
}

impl ParamValue for CidrNetmask {
    const KIND: ParamKind = ParamKind::String;
    fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let digits = text.strip_prefix('/').unwrap_or(text);
        if let Ok(n) = digits.parse::<u32>() {
            return Ok(CidrNetmask::Length(n));
        }
        match text.parse::<Ipv4Addr>() {
            Ok(mask) => netmask_prefix(mask)
                .map(CidrNetmask::Netmask)
                .ok_or_else(|| "is not a valid netmask (its ones are not contiguous)".to_string()),
            Err(_) => Err("is not a prefix length (1-32, or 1-128 for IPv6)".to_string()),
        }
    }
}

impl CidrNetmask {
    /// The prefix length for an address of the family `v6` says (1-32 or 1-128; /0 would claim
    /// every address).
    pub fn prefix(self, v6: bool) -> Result<u8, PrefixError> {
        let n = match self {
            CidrNetmask::Length(n) => n,
            CidrNetmask::Netmask(p) if !v6 => u32::from(p),
            CidrNetmask::Netmask(_) => return Err(PrefixError::NotALength),
        };
        let max = if v6 { 128 } else { 32 };
        match u8::try_from(n) {
            Ok(p) if n > 0 && n <= max => Ok(p),
            _ => Err(PrefixError::OutOfRange(n)),
        }
    }
}

/// The `nic` parameter: an interface name as the kernel accepts one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nic(pub String);

/// Interface names as the kernel accepts them: 1-15 bytes, not `.` or `..`, no '/', ':' or
/// whitespace.
fn valid_nic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
}

impl ParamValue for Nic {
    const KIND: ParamKind = ParamKind::String;
    fn parse(text: &str) -> Result<Self, String> {
        let name = text.trim();
        if valid_nic(name) {
            Ok(Nic(name.to_string()))
        } else {
            Err("is not a valid interface name".into())
        }
    }
}

/// `broadcast`, as IPaddr2 takes it: an address, or `+` / `-` (the host bits of the prefix set
/// or cleared).
impl ParamValue for Broadcast {
    const KIND: ParamKind = ParamKind::String;
    fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "+" => Ok(Broadcast::HostBitsSet),
            "-" => Ok(Broadcast::HostBitsCleared),
            v => v
                .parse::<Ipv4Addr>()
                .map(Broadcast::Address)
                .map_err(|_| "is not an IPv4 address (nor '+' or '-')".into()),
        }
    }
}

/// Why an interface cannot hold `addr`, if it cannot.
pub fn unusable(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(v4) if v4.is_unspecified() => Some("the unspecified address"),
        IpAddr::V4(v4) if v4.is_multicast() => Some("a multicast address"),
        IpAddr::V4(v4) if v4.is_broadcast() => Some("the broadcast address"),
        IpAddr::V6(v6) if v6.is_unspecified() => Some("the unspecified address"),
        IpAddr::V6(v6) if v6.is_multicast() => Some("a multicast address"),
        _ => None,
    }
}

/// An IPv6 link-local address (fe80::/10): it means nothing without its interface.
pub fn is_link_local(addr: IpAddr) -> bool {
    matches!(addr, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

/// The prefix length of a dotted IPv4 netmask (255.255.0.0 is 16); None when not contiguous.
pub fn netmask_prefix(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let ones = bits.leading_ones();
    if bits.checked_shl(ones).unwrap_or(0) == 0 {
        u8::try_from(ones).ok()
    } else {
        None
    }
}

/// The parameters, checked for consistency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub ip: IpChoice,
    /// `cidr_netmask` when given.
    pub prefix: Option<u8>,
    /// `nic` when given (`AUTO_NIC` for `ip=auto`); None: the interface whose subnet holds the
    /// address.
    pub nic: Option<String>,
    /// `broadcast` when given (IPv4).
    pub broadcast: Option<Broadcast>,
    pub arp_count: u32,
    pub metadata_url: HttpUrl,
}

impl Settings {
    /// Everything the parameters say, checked for consistency. A wrong value is wrong on every
    /// node: 6, naming the parameter.
    pub fn from(ctx: &Context) -> OcfResult<Settings> {
        let p = &ctx.params;
        let ip = p.need(&IP)?;
        // The anchor IP is IPv4.
        let v6 = matches!(ip, IpChoice::Explicit(IpAddr::V6(_)));
        let prefix = match p.read(&CIDR_NETMASK)? {
            None => None,
            Some(c) => Some(c.prefix(v6).map_err(|e| {
                let (family, max) = if v6 { ("IPv6", 128) } else { ("IPv4", 32) };
                match e {
                    PrefixError::NotALength => {
                        p.invalid(&CIDR_NETMASK, format!("is not a prefix length (1-{max})"))
                    }
                    PrefixError::OutOfRange(n) => p.fault(
                        OcfCode::ErrConfigured,
                        &CIDR_NETMASK,
                        format!("{n} is out of range for an {family} address (1-{max})"),
                    ),
                }
            })?),
        };
        let nic = match p.read(&NIC)? {
            Some(Nic(n)) => Some(n),
            None if ip == IpChoice::Auto => Some(AUTO_NIC.to_string()),
            None => None,
        };
        if let (IpChoice::Explicit(a), None) = (ip, &nic) {
            if is_link_local(a) {
                return Err(OcfError::configured(format!(
                    "parameter '{}' is required for the link-local address {a}: it exists only \
                     on the interface it is given",
                    p.name_of(&NIC)
                )));
            }
        }
        let broadcast = p.read(&BROADCAST)?;
        if broadcast.is_some() && v6 {
            return Err(p.invalid(&BROADCAST, "is for an IPv4 address; IPv6 has no broadcast"));
        }
        // Read signed, so that a negative count is "out of range" like any other.
        let arp_count = u32::try_from(p.need(&ARP_COUNT)?)
            .ok()
            .filter(|n| *n <= MAX_ARP_COUNT)
            .ok_or_else(|| {
                p.invalid(
                    &ARP_COUNT,
                    format!("is out of range (0-{MAX_ARP_COUNT}; 0 sends none)"),
                )
            })?;
        let metadata_url = p.need(&METADATA_URL)?;
        Ok(Settings {
            ip,
            prefix,
            nic,
            broadcast,
            arp_count,
            metadata_url,
        })
    }
}

/// The name the state and the lock go by when no cluster names the instance (a person running
/// the agent by hand): the same parameters find the same state. Without `nic`: `ip@any`.
pub fn instance_name(params: &Params) -> String {
    let ip = given(params, &IP).unwrap_or("unset");
    let nic = given(params, &NIC).unwrap_or(if ip == "auto" { AUTO_NIC } else { "any" });
    format!("{ip}@{nic}")
}

/// The text of `p` as given, unless it is missing (or the CIB secret placeholder).
fn given<'a, T>(params: &'a Params, p: &cloudha_common::Param<T>) -> Option<&'a str> {
    params.text(p).filter(|_| params.has(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SPEC;
    use cloudha_common::{Action, Logger, OcfEnv};

    fn context(vars: &[(&str, &str)]) -> Context {
        let env = OcfEnv::from_vars(
            vars.iter()
                .map(|(k, v)| (format!("OCF_RESKEY_{k}"), v.to_string())),
        );
        Context::new(&SPEC, Action::ValidateAll, env, Logger::stderr("t"))
    }

    fn settings(vars: &[(&str, &str)]) -> OcfResult<Settings> {
        Settings::from(&context(vars))
    }

    /// The exit reason of parameters that are wrong everywhere.
    fn reason(vars: &[(&str, &str)]) -> String {
        let e = settings(vars).unwrap_err();
        assert_eq!(e.code, OcfCode::ErrConfigured, "{vars:?}: {}", e.reason);
        e.reason
    }

    #[test]
    fn ip_accepts_both_families_and_auto() {
        assert_eq!(
            IpChoice::parse("10.17.1.18"),
            Ok(IpChoice::Explicit("10.17.1.18".parse().unwrap()))
        );
        assert_eq!(
            IpChoice::parse("2001:db8::7"),
            Ok(IpChoice::Explicit("2001:db8::7".parse().unwrap()))
        );
        assert_eq!(IpChoice::parse(" AUTO "), Ok(IpChoice::Auto));
        let s = settings(&[("ip", "auto")]).unwrap();
        assert_eq!(s.nic.as_deref(), Some(AUTO_NIC));
        assert_eq!(s.arp_count, 3);
        assert_eq!(
            s.metadata_url.as_str(),
            cloudha_common::http::DEFAULT_METADATA_URL
        );
        assert_eq!(settings(&[("ip", "10.17.1.18")]).unwrap().nic, None);
    }

    #[test]
    fn malformed_ip_is_6_naming_the_parameter() {
        assert_eq!(
            reason(&[("ip", "10.1.2")]),
            "parameter 'ip': '10.1.2' is not an IPv4 or IPv6 address (nor 'auto')"
        );
        assert_eq!(reason(&[]), "parameter 'ip' is required but not set");
        for bad in ["0.0.0.0", "::", "224.0.0.1", "ff02::1", "255.255.255.255"] {
            assert!(
                reason(&[("ip", bad)]).ends_with("which an interface cannot hold"),
                "{bad}"
            );
        }
    }

    #[test]
    fn broadcast_as_ipaddr2_takes_it() {
        assert_eq!(
            Broadcast::parse("192.0.2.255"),
            Ok(Broadcast::Address("192.0.2.255".parse().unwrap()))
        );
        assert_eq!(Broadcast::parse("+"), Ok(Broadcast::HostBitsSet));
        assert_eq!(Broadcast::parse(" - "), Ok(Broadcast::HostBitsCleared));
        assert_eq!(
            reason(&[("ip", "10.17.1.18"), ("broadcast", "192.0.2")]),
            "parameter 'broadcast': '192.0.2' is not an IPv4 address (nor '+' or '-')"
        );
        assert_eq!(
            reason(&[("ip", "2001:db8::7"), ("nic", "lo"), ("broadcast", "+")]),
            "parameter 'broadcast': '+' is for an IPv4 address; IPv6 has no broadcast"
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
        assert!(reason(&[("ip", "fe80::7")])
            .starts_with("parameter 'nic' is required for the link-local address fe80::7"));
        assert!(settings(&[("ip", "fe80::7"), ("nic", "eth0")]).is_ok());
    }

    fn prefix(value: &str, v6: bool) -> OcfResult<u8> {
        let addr = if v6 { "2001:db8::7" } else { "10.17.1.18" };
        settings(&[("ip", addr), ("cidr_netmask", value)]).map(|s| s.prefix.unwrap())
    }

    #[test]
    fn prefixes_in_every_spelling() {
        assert_eq!(prefix("24", false), Ok(24));
        assert_eq!(prefix("/16", false), Ok(16));
        assert_eq!(prefix("255.255.0.0", false), Ok(16));
        assert_eq!(prefix("64", true), Ok(64));
        assert_eq!(prefix("128", true), Ok(128));
        // ip=auto: the anchor IP is IPv4.
        let s = settings(&[("ip", "auto"), ("cidr_netmask", "255.255.255.0")]).unwrap();
        assert_eq!(s.prefix, Some(24));
    }

    #[test]
    fn prefixes_out_of_range_are_6() {
        let e = prefix("33", false).unwrap_err();
        assert_eq!(e.code, OcfCode::ErrConfigured);
        assert_eq!(
            e.reason,
            "parameter 'cidr_netmask': 33 is out of range for an IPv4 address (1-32)"
        );
        assert!(prefix("129", true).is_err());
        assert!(prefix("0", false).is_err());
        assert!(prefix("99999999999", false).is_err());
        assert!(prefix("255.0.255.0", false)
            .unwrap_err()
            .reason
            .contains("not contiguous"));
        assert_eq!(
            prefix("255.255.0.0", true).unwrap_err().reason,
            "parameter 'cidr_netmask': '255.255.0.0' is not a prefix length (1-128)"
        );
        assert!(prefix("wide", false)
            .unwrap_err()
            .reason
            .starts_with("parameter 'cidr_netmask': 'wide' is not a prefix length"));
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
        assert_eq!(Nic::parse(" eth0 "), Ok(Nic("eth0".into())));
        assert!(Nic::parse("a-very-long-name").is_err());
        assert!(Nic::parse("eth0/x").is_err());
        assert!(Nic::parse("").is_err());
        assert!(Nic::parse("eth0\n").is_ok() && Nic::parse("eth\n0").is_err());
        assert_eq!(
            reason(&[("ip", "10.17.1.18"), ("nic", "eth 0")]),
            "parameter 'nic': 'eth 0' is not a valid interface name"
        );
    }

    #[test]
    fn arp_count_and_metadata_url() {
        assert_eq!(
            reason(&[("ip", "10.17.1.18"), ("arp_count", "101")]),
            "parameter 'arp_count': '101' is out of range (0-100; 0 sends none)"
        );
        assert!(reason(&[("ip", "10.17.1.18"), ("arp_count", "-1")]).contains("out of range"));
        assert_eq!(
            settings(&[("ip", "10.17.1.18"), ("arp_count", "0")])
                .unwrap()
                .arp_count,
            0
        );
        assert!(
            reason(&[("ip", "auto"), ("metadata_url", "ftp://169.254.169.254/")])
                .starts_with("parameter 'metadata_url': 'ftp://169.254.169.254/' must start with")
        );
    }

    #[test]
    fn the_instance_is_named_by_ip_and_nic_by_hand() {
        let name = |vars: &[(&str, &str)]| instance_name(&context(vars).params);
        assert_eq!(name(&[("ip", "10.17.1.18")]), "10.17.1.18@any");
        assert_eq!(name(&[("ip", "auto")]), "auto@eth0");
        assert_eq!(
            name(&[("ip", "10.17.1.18"), ("nic", "lo")]),
            "10.17.1.18@lo"
        );
        assert_eq!(name(&[]), "unset@any");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Any text: an address an interface can hold, `auto`, or an error; never a panic.
            #[test]
            fn ip_parses_or_refuses(text in "\\PC{0,40}|[0-9a-fA-F:.]{0,45}|[ \t]*(?i:auto)[ \t]*") {
                match IpChoice::parse(&text) {
                    Ok(IpChoice::Auto) => prop_assert!(text.trim().eq_ignore_ascii_case("auto")),
                    Ok(IpChoice::Explicit(a)) => {
                        prop_assert_eq!(text.trim().parse::<IpAddr>().ok(), Some(a));
                        prop_assert!(unusable(a).is_none());
                    }
                    Err(why) => prop_assert!(why.starts_with("is ")),
                }
            }

            #[test]
            fn every_usable_address_parses_as_written(a in any::<IpAddr>()) {
                let parsed = IpChoice::parse(&format!(" {a} "));
                match unusable(a) {
                    None => prop_assert_eq!(parsed, Ok(IpChoice::Explicit(a))),
                    Some(_) => prop_assert!(parsed.is_err()),
                }
            }

            /// Any text: a prefix in range for each family, or an error; never a panic.
            #[test]
            fn cidr_netmask_parses_or_refuses(text in "\\PC{0,20}|/?[0-9]{1,12}|[0-9.]{0,16}", v6 in any::<bool>()) {
                if let Ok(c) = CidrNetmask::parse(&text) {
                    if let Ok(p) = c.prefix(v6) {
                        let max = if v6 { 128 } else { 32 };
                        prop_assert!((1..=max).contains(&p), "{} for {:?}", p, text);
                    }
                }
            }

            /// Every prefix, in each spelling, reads back as itself.
            #[test]
            fn prefixes_round_trip(p in 1u8..=128) {
                for text in [p.to_string(), format!("/{p}"), format!(" {p} ")] {
                    prop_assert_eq!(CidrNetmask::parse(&text).unwrap().prefix(true), Ok(p));
                }
                if p <= 32 {
                    let mask = Ipv4Addr::from(u32::MAX << (32 - u32::from(p)));
                    prop_assert_eq!(netmask_prefix(mask), Some(p));
                    let c = CidrNetmask::parse(&mask.to_string()).unwrap();
                    prop_assert_eq!(c.prefix(false), Ok(p));
                    prop_assert_eq!(c.prefix(true), Err(PrefixError::NotALength));
                }
            }

            /// A netmask reads as a prefix exactly when its ones are contiguous.
            #[test]
            fn netmasks_are_contiguous_ones(bits in any::<u32>()) {
                let contiguous = bits.leading_ones() + bits.trailing_zeros() >= 32;
                prop_assert_eq!(netmask_prefix(Ipv4Addr::from(bits)).is_some(), contiguous);
            }

            /// Any text: a name the kernel would take, or an error; never a panic.
            #[test]
            fn nic_names_are_kernel_names(text in "\\PC{0,20}|[a-z0-9./: \t-]{0,20}|[\\x00-\\x7f]{0,16}") {
                if let Ok(Nic(name)) = Nic::parse(&text) {
                    prop_assert!(!name.is_empty() && name.len() <= 15, "{:?}", name);
                    prop_assert!(!name.contains(['/', ':']) && !name.contains(char::is_whitespace));
                    prop_assert!(name != "." && name != "..");
                    prop_assert_eq!(name.as_str(), text.trim());
                }
            }

            /// Any text: an address, `+`, `-` or an error; every IPv4 address reads back.
            #[test]
            fn broadcast_parses_or_refuses(text in "\\PC{0,20}|[0-9.+-]{0,16}", a in any::<Ipv4Addr>()) {
                if let Ok(Broadcast::Address(b)) = Broadcast::parse(&text) {
                    prop_assert_eq!(text.trim().parse::<Ipv4Addr>().ok(), Some(b));
                }
                prop_assert_eq!(Broadcast::parse(&a.to_string()), Ok(Broadcast::Address(a)));
            }
        }
    }
}
