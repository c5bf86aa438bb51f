//! Where an address goes, as IPaddr2 decides it (resource-agents' `findif.sh`): the interface
//! whose subnet holds the address, with that subnet's prefix, unless `nic` and `cidr_netmask` say
//! otherwise. Run by start and validate-all only: monitor and stop work from the start record.
//!
//! The rules, for the address A:
//! - The subnets looked at are those of the addresses configured on this node's interfaces (A's
//!   family; single hosts, /32 and /128, are not subnets), on interfaces that are up; with
//!   `nic`, only that interface's. A subnet holds A when A is inside it; with `cidr_netmask` P,
//!   it must hold all of A/P (IPv4; IPv6 without `nic`: its prefix must be P itself). Of those
//!   that hold A, the longest prefix wins (then the first interface in the kernel's order).
//! - Found: A goes on that interface, as A/P or with the subnet's prefix; the broadcast address
//!   (IPv4) is the one the subnet's address has, unless `broadcast` is given.
//! - Not found, `nic` and `cidr_netmask` both given: A/P goes on `nic` (forced).
//! - Not found, `nic` a loopback interface: A goes there as a single host (/32, /128).
//! - Otherwise: 1, naming the subnets looked at. Not 6: another node may have the subnet.
//! - An IPv6 link-local address without `nic` is refused as a parameter error (6) before this.

use crate::netlink::{self, IfAddr, Link, Present, Rtnl};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The `broadcast` parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broadcast {
    Address(Ipv4Addr),
    /// `+`: the host bits of the prefix set.
    HostBitsSet,
    /// `-`: the host bits of the prefix cleared.
    HostBitsCleared,
}

/// What the parameters say about where the address goes.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub addr: IpAddr,
    /// `cidr_netmask` (for `ip=auto`, the metadata netmask).
    pub prefix: Option<u8>,
    pub nic: Option<&'a str>,
    pub broadcast: Option<Broadcast>,
}

/// A subnet configured on an interface: the address that makes it, and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subnet {
    pub nic: String,
    pub base: Present,
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} on {}",
            network(self.base.addr.addr, self.base.addr.prefix),
            self.base.addr.prefix,
            self.nic
        )
    }
}

/// Where the address goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub link: Link,
    pub addr: IfAddr,
    /// IPv4: the broadcast address to add it with.
    pub broadcast: Option<Ipv4Addr>,
    /// The subnet that decided it, if one did (not when forced or on loopback).
    pub subnet: Option<Subnet>,
}

/// Why the address has no place here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `nic` names no interface of this node (5).
    NoSuchNic(String),
    /// No subnet here holds it, as the parameters ask (1): the words say which were looked at.
    NoSubnet(String),
}

/// `addr` with the host bits of `prefix` cleared.
pub fn network(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
        }
    }
}

fn host_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv6() {
        128
    } else {
        32
    }
}

/// Does `subnet` (an address and its prefix) hold `addr`?
fn holds(subnet: IfAddr, addr: IpAddr) -> bool {
    subnet.addr.is_ipv6() == addr.is_ipv6()
        && network(subnet.addr, subnet.prefix) == network(addr, subnet.prefix)
}

/// The subnets that `addresses` make on `links`: single hosts and interfaces that are down left
/// out (a down interface has no route to its subnet).
pub fn subnets(links: &[Link], addresses: &[Present]) -> Vec<Subnet> {
    addresses
        .iter()
        .filter(|a| a.addr.prefix < host_prefix(a.addr.addr))
        .filter_map(|a| {
            let link = links.iter().find(|l| l.index == a.index && l.up)?;
            Some(Subnet {
                nic: link.name.clone(),
                base: *a,
            })
        })
        .collect()
}

/// "192.0.2.0/24 on eth0, 198.51.100.0/24 on eth1", or "none".
fn listed(subnets: &[&Subnet]) -> String {
    const SHOWN: usize = 8;
    if subnets.is_empty() {
        return "none".to_string();
    }
    let mut text = subnets
        .iter()
        .take(SHOWN)
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if subnets.len() > SHOWN {
        text += &format!(" and {} more", subnets.len() - SHOWN);
    }
    text
}

/// The decision, from what is configured: `links` (with `nic` given, that interface alone) and
/// the subnets on them. No I/O.
pub fn choose(req: &Request, links: &[Link], subnets: &[Subnet]) -> Result<Placement, Refusal> {
    let addr = req.addr;
    let v6 = addr.is_ipv6();
    let family = if v6 { "IPv6" } else { "IPv4" };
    let nic = match req.nic {
        Some(name) => Some(
            links
                .iter()
                .find(|l| l.name == name)
                .ok_or_else(|| Refusal::NoSuchNic(name.to_string()))?,
        ),
        None => None,
    };
    let looked: Vec<&Subnet> = subnets
        .iter()
        .filter(|s| s.base.addr.addr.is_ipv6() == v6)
        .filter(|s| nic.is_none_or(|l| l.index == s.base.index))
        .collect();
    let holding: Vec<&Subnet> = looked
        .iter()
        .copied()
        .filter(|s| holds(s.base.addr, addr))
        .collect();
    let fits = |s: &&Subnet| match req.prefix {
        None => true,
        // Without nic, an IPv6 address takes its subnet's prefix, as IPaddr2v6's suite demands.
        Some(p) if v6 && nic.is_none() => s.base.addr.prefix == p,
        Some(p) => s.base.addr.prefix <= p,
    };
    // The longest prefix; on a tie the first (max_by_key would take the last).
    let best = holding
        .iter()
        .copied()
        .filter(fits)
        .fold(None::<&Subnet>, |best, s| match best {
            Some(b) if b.base.addr.prefix >= s.base.addr.prefix => Some(b),
            _ => Some(s),
        });
    if let Some(s) = best {
        let link = links
            .iter()
            .find(|l| l.index == s.base.index)
            .expect("a subnet's interface is among the links");
        let prefix = req.prefix.unwrap_or(s.base.addr.prefix);
        return Ok(placement(req, link, prefix, Some(s.clone())));
    }
    match (nic, req.prefix) {
        (Some(link), Some(p)) => return Ok(placement(req, link, p, None)),
        (Some(link), None) if link.loopback => {
            return Ok(placement(req, link, host_prefix(addr), None))
        }
        _ => {}
    }
    // Refused: say what was looked at, and what would do.
    let why = match (holding.first(), req.prefix) {
        (Some(s), Some(p)) if v6 && nic.is_none() => format!(
            "parameter 'cidr_netmask': {s} holds {addr}, but not as /{p}: without 'nic', an IPv6 \
             address takes the prefix of its subnet (set 'nic' to add it as /{p} anyway)"
        ),
        (Some(s), Some(p)) => format!(
            "parameter 'cidr_netmask': {s} holds {addr}, but not all of {}/{p} (set 'nic' to add \
             it as /{p} anyway)",
            network(addr, p)
        ),
        _ => match nic {
            Some(link) => format!(
                "parameter 'nic': no {family} subnet on {} holds {addr} (looked at: {}): set \
                 'cidr_netmask' to add it there anyway",
                link.name,
                listed(&looked)
            ),
            None => format!(
                "parameter 'ip': no interface here has an {family} subnet that holds {addr}{} \
                 (looked at: {}): set 'nic' (and 'cidr_netmask'), e.g. nic=lo for a shared IP",
                match req.prefix {
                    Some(p) => format!("/{p}"),
                    None => String::new(),
                },
                listed(&looked)
            ),
        },
    };
    Err(Refusal::NoSubnet(why))
}

fn placement(req: &Request, link: &Link, prefix: u8, subnet: Option<Subnet>) -> Placement {
    let broadcast = match req.addr {
        IpAddr::V6(_) => None,
        IpAddr::V4(a) => match req.broadcast {
            Some(Broadcast::Address(b)) => Some(b),
            Some(Broadcast::HostBitsSet) => netlink::broadcast(a, prefix),
            Some(Broadcast::HostBitsCleared) => netlink::broadcast_minus(a, prefix),
            // As IPaddr2: the broadcast address of the subnet's own address. With no subnet
            // (forced, loopback): what `brd +` sets.
            None => match &subnet {
                Some(s) => s.base.broadcast,
                None => netlink::broadcast(a, prefix),
            },
        },
    };
    Placement {
        link: link.clone(),
        addr: IfAddr {
            addr: req.addr,
            prefix,
        },
        broadcast,
        subnet,
    }
}

/// Look at this node's interfaces and addresses (two netlink dumps; one lookup and one dump with
/// `nic`) and decide.
pub fn place(nl: &mut Rtnl, req: &Request) -> std::io::Result<Result<Placement, Refusal>> {
    let links = match req.nic {
        Some(name) => match nl.link(name)? {
            Some(mut link) => {
                // With nic, its subnets count whether it is up or not.
                link.up = true;
                vec![link]
            }
            None => return Ok(Err(Refusal::NoSuchNic(name.to_string()))),
        },
        None => nl.links()?,
    };
    let index = req.nic.map(|_| links[0].index);
    let addresses = nl.addresses(index, req.addr)?;
    Ok(choose(req, &links, &subnets(&links, &addresses)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(index: u32, name: &str, up: bool) -> Link {
        Link {
            index,
            name: name.to_string(),
            loopback: name == "lo",
            noarp: name == "lo",
            mac: None,
            up,
        }
    }

    fn present(index: u32, a: &str, brd: Option<&str>) -> Present {
        let (addr, prefix) = a.split_once('/').unwrap();
        Present {
            index,
            addr: IfAddr {
                addr: addr.parse().unwrap(),
                prefix: prefix.parse().unwrap(),
            },
            broadcast: brd.map(|b| b.parse().unwrap()),
            created: None,
        }
    }

    /// lo (127.0.0.1/8, ::1/128), eth0 (192.168.144.1/24 brd .255, 2001:db8:1234::1/64,
    /// fe80::1/64), eth1 (fe80::2/64), eth2 down (198.51.100.1/24).
    fn node() -> (Vec<Link>, Vec<Present>) {
        let links = vec![
            link(1, "lo", true),
            link(2, "eth0", true),
            link(3, "eth1", true),
            link(4, "eth2", false),
        ];
        let addresses = vec![
            present(1, "127.0.0.1/8", None),
            present(1, "::1/128", None),
            present(2, "192.168.144.1/24", Some("192.168.144.255")),
            present(2, "2001:db8:1234::1/64", None),
            present(2, "fe80::1/64", None),
            present(3, "fe80::2/64", None),
            present(4, "198.51.100.1/24", Some("198.51.100.255")),
        ];
        (links, addresses)
    }

    fn decide(ip: &str, prefix: Option<u8>, nic: Option<&str>) -> Result<Placement, Refusal> {
        decide_brd(ip, prefix, nic, None)
    }

    fn decide_brd(
        ip: &str,
        prefix: Option<u8>,
        nic: Option<&str>,
        broadcast: Option<Broadcast>,
    ) -> Result<Placement, Refusal> {
        let (mut links, addresses) = node();
        if let Some(n) = nic {
            links.retain(|l| l.name == n);
            for l in &mut links {
                l.up = true;
            }
        }
        let req = Request {
            addr: ip.parse().unwrap(),
            prefix,
            nic,
            broadcast,
        };
        choose(&req, &links, &subnets(&links, &addresses))
    }

    fn at(p: &Result<Placement, Refusal>) -> String {
        match p {
            Ok(p) => format!("{}/{} {}", p.addr.addr, p.addr.prefix, p.link.name),
            Err(e) => format!("{e:?}"),
        }
    }

    fn refused(p: Result<Placement, Refusal>) -> String {
        match p {
            Err(Refusal::NoSubnet(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn networks() {
        assert_eq!(
            network("192.168.144.2".parse().unwrap(), 24),
            "192.168.144.0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            network("2001:db8:1234::2".parse().unwrap(), 48),
            "2001:db8:1234::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            network("10.1.2.3".parse().unwrap(), 0),
            "0.0.0.0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            network("10.1.2.3".parse().unwrap(), 32),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn the_subnet_that_holds_it_decides_interface_prefix_and_broadcast() {
        let p = decide("192.168.144.2", None, None).unwrap();
        assert_eq!(at(&Ok(p.clone())), "192.168.144.2/24 eth0");
        assert_eq!(p.broadcast, Some("192.168.144.255".parse().unwrap()));
        assert_eq!(p.subnet.unwrap().to_string(), "192.168.144.0/24 on eth0");
        assert_eq!(
            at(&decide("2001:db8:1234::2", None, None)),
            "2001:db8:1234::2/64 eth0"
        );
        assert_eq!(at(&decide("127.0.0.2", None, None)), "127.0.0.2/8 lo");
        // With nic: that interface's subnet.
        assert_eq!(
            at(&decide("192.168.144.2", None, Some("eth0"))),
            "192.168.144.2/24 eth0"
        );
        assert_eq!(
            at(&decide("fe80::9", None, Some("eth1"))),
            "fe80::9/64 eth1"
        );
    }

    #[test]
    fn cidr_netmask_within_the_subnet() {
        // IPv4: a longer prefix inside the subnet is fine; the subnet's broadcast stays.
        let p = decide("192.168.144.2", Some(28), None).unwrap();
        assert_eq!(at(&Ok(p.clone())), "192.168.144.2/28 eth0");
        assert_eq!(p.broadcast, Some("192.168.144.255".parse().unwrap()));
        assert_eq!(
            at(&decide("192.168.144.2", Some(24), None)),
            "192.168.144.2/24 eth0"
        );
        let why = refused(decide("192.168.144.2", Some(16), None));
        assert_eq!(
            why,
            "parameter 'cidr_netmask': 192.168.144.0/24 on eth0 holds 192.168.144.2, but not all \
             of 192.168.0.0/16 (set 'nic' to add it as /16 anyway)"
        );
        // IPv6 without nic: exactly the subnet's prefix.
        assert_eq!(
            at(&decide("2001:db8:1234::2", Some(64), None)),
            "2001:db8:1234::2/64 eth0"
        );
        let why = refused(decide("2001:db8:1234::2", Some(80), None));
        assert!(
            why.contains("2001:db8:1234::/64 on eth0 holds 2001:db8:1234::2, but not as /80"),
            "{why}"
        );
        let why = refused(decide("2001:db8:1234::2", Some(48), None));
        assert!(why.contains("but not as /48"), "{why}");
    }

    #[test]
    fn nic_and_cidr_netmask_force_it() {
        let p = decide("192.168.144.2", Some(16), Some("eth1")).unwrap();
        assert_eq!(at(&Ok(p.clone())), "192.168.144.2/16 eth1");
        assert_eq!(p.subnet, None);
        // No subnet to take a broadcast from: what `brd +` sets.
        assert_eq!(p.broadcast, Some("192.168.255.255".parse().unwrap()));
        assert_eq!(
            at(&decide("2001:db8:1234::2", Some(48), Some("eth1"))),
            "2001:db8:1234::2/48 eth1"
        );
        // A /24 subnet on eth0 does not hold all of a /16: forced too.
        let p = decide("192.168.144.2", Some(16), Some("eth0")).unwrap();
        assert_eq!(at(&Ok(p.clone())), "192.168.144.2/16 eth0");
        assert_eq!(p.subnet, None);
        // With nic and a subnet there that holds it, the subnet's broadcast.
        let p = decide("192.168.144.2", Some(26), Some("eth0")).unwrap();
        assert_eq!(p.broadcast, Some("192.168.144.255".parse().unwrap()));
    }

    #[test]
    fn broadcast_as_given() {
        let b = |v| {
            decide_brd("192.168.144.2", None, None, Some(v))
                .unwrap()
                .broadcast
        };
        assert_eq!(
            b(Broadcast::Address("192.168.255.255".parse().unwrap())),
            Some("192.168.255.255".parse().unwrap())
        );
        assert_eq!(
            b(Broadcast::HostBitsSet),
            Some("192.168.144.255".parse().unwrap())
        );
        assert_eq!(
            b(Broadcast::HostBitsCleared),
            Some("192.168.144.0".parse().unwrap())
        );
        let p = decide_brd("2001:db8:1234::2", None, None, Some(Broadcast::HostBitsSet));
        assert_eq!(p.unwrap().broadcast, None);
    }

    #[test]
    fn loopback_takes_a_single_host() {
        assert_eq!(
            at(&decide("203.0.113.7", None, Some("lo"))),
            "203.0.113.7/32 lo"
        );
        assert_eq!(
            at(&decide("2001:db8:5::1", None, Some("lo"))),
            "2001:db8:5::1/128 lo"
        );
        assert_eq!(
            at(&decide("2001:db8:5::1", Some(64), Some("lo"))),
            "2001:db8:5::1/64 lo"
        );
        let p = decide("203.0.113.7", None, Some("lo")).unwrap();
        assert_eq!(p.broadcast, None);
    }

    #[test]
    fn no_subnet_no_place() {
        let why = refused(decide("192.168.120.1", None, None));
        assert_eq!(
            why,
            "parameter 'ip': no interface here has an IPv4 subnet that holds 192.168.120.1 \
             (looked at: 127.0.0.0/8 on lo, 192.168.144.0/24 on eth0): set 'nic' (and \
             'cidr_netmask'), e.g. nic=lo for a shared IP"
        );
        // eth2 is down: its subnet is not looked at.
        let why = refused(decide("198.51.100.7", None, None));
        assert!(!why.contains("eth2"), "{why}");
        let why = refused(decide("2001:db8:5678::2", None, None));
        assert!(
            why.contains("no interface here has an IPv6 subnet that holds 2001:db8:5678::2 (looked at: 2001:db8:1234::/64 on eth0, fe80::/64 on eth0, fe80::/64 on eth1)"),
            "{why}"
        );
        // With nic but without cidr_netmask, on an interface that has no subnet for it.
        let why = refused(decide("192.168.144.2", None, Some("eth1")));
        assert_eq!(
            why,
            "parameter 'nic': no IPv4 subnet on eth1 holds 192.168.144.2 (looked at: none): set \
             'cidr_netmask' to add it there anyway"
        );
        assert_eq!(
            decide("192.168.144.2", None, Some("eth9")),
            Err(Refusal::NoSuchNic("eth9".into()))
        );
    }

    #[test]
    fn the_longest_prefix_wins_then_the_first_interface() {
        let links = vec![link(2, "eth0", true), link(3, "eth1", true)];
        let addresses = vec![
            present(2, "10.0.0.1/8", None),
            present(3, "10.1.0.1/16", None),
            present(2, "10.2.0.1/16", None),
        ];
        let req = |ip: &str| Request {
            addr: ip.parse().unwrap(),
            prefix: None,
            nic: None,
            broadcast: None,
        };
        let subnets = subnets(&links, &addresses);
        assert_eq!(
            at(&choose(&req("10.1.2.3"), &links, &subnets)),
            "10.1.2.3/16 eth1"
        );
        assert_eq!(
            at(&choose(&req("10.9.2.3"), &links, &subnets)),
            "10.9.2.3/8 eth0"
        );
        let tie = vec![
            present(3, "10.1.0.1/16", None),
            present(2, "10.1.0.2/16", None),
        ];
        let subnets = super::subnets(&links, &tie);
        assert_eq!(
            at(&choose(&req("10.1.2.3"), &links, &subnets)),
            "10.1.2.3/16 eth1"
        );
        // Single hosts are not subnets: 10.1.2.3/32 on eth0 does not take it.
        let host = vec![
            present(2, "10.1.2.3/32", None),
            present(3, "10.1.0.1/16", None),
        ];
        let subnets = super::subnets(&links, &host);
        assert_eq!(
            at(&choose(&req("10.1.2.3"), &links, &subnets)),
            "10.1.2.3/16 eth1"
        );
    }
}
