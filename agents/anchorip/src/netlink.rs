//! The kernel's addresses read and changed over rtnetlink: one synchronous socket, one request at a
//! time, every wait bounded by the action's deadline. No `ip` binary, no async runtime.

use cloudha_common::Deadline;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope, CacheInfo,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkLayerType, LinkMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use nix::errno::Errno;
use nix::sys::socket::{setsockopt, sockopt::ReceiveTimeout};
use nix::sys::time::TimeVal;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// An interface as far as this agent cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `lo`, or anything else of the loopback kind: no ARP there, /32 and /128 by default.
    pub loopback: bool,
    /// IFF_NOARP: the interface does not speak ARP (a tunnel, say).
    pub noarp: bool,
    /// The hardware address, for the sender field of a gratuitous ARP.
    pub mac: Option<[u8; 6]>,
    /// IFF_UP: administratively up.
    pub up: bool,
}

/// One address on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IfAddr {
    pub addr: IpAddr,
    pub prefix: u8,
}

/// An address as the kernel has it on one interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Present {
    /// The interface's index.
    pub index: u32,
    pub addr: IfAddr,
    /// IPv4: the broadcast address set with it, if any.
    pub broadcast: Option<Ipv4Addr>,
    /// When the kernel created this address (`ifa_cacheinfo.cstamp`, hundredths of a second
    /// since boot): tells the address someone added apart from the same address added again.
    pub created: Option<u32>,
}

/// A route netlink socket, bound and connected to the kernel.
pub struct Rtnl {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
    deadline: Deadline,
}

fn timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the kernel did not answer on netlink before the action's timeout",
    )
}

impl Rtnl {
    pub fn open(deadline: &Deadline) -> io::Result<Rtnl> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Rtnl {
            socket,
            seq: 0,
            buf: Vec::with_capacity(64 * 1024),
            deadline: *deadline,
        })
    }

    /// Bound the next receive by the time the action has left (the kernel answers in
    /// microseconds; this only matters if something is badly wrong).
    fn arm_timeout(&self) -> io::Result<()> {
        let left = self.deadline.remaining();
        if left.is_zero() {
            return Err(timed_out());
        }
        let left = left.max(Duration::from_millis(1));
        let tv = TimeVal::new(
            i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
            i64::from(left.subsec_micros()),
        );
        setsockopt(&self.socket, ReceiveTimeout, &tv).map_err(io::Error::from)
    }

    /// Send one request and collect the answers to it: the messages of a dump up to its end, or
    /// the acknowledgement of a change. A kernel error comes back as an `io::Error` with its errno.
    fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let mut out = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut out);
        self.socket.send(&out, 0)?;

        let mut answers = Vec::new();
        loop {
            self.arm_timeout()?;
            self.buf.clear();
            match self.socket.recv(&mut self.buf, 0) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(timed_out())
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if answers_in(&self.buf, seq, flags, &mut answers)? {
                return Ok(answers);
            }
        }
    }

    /// The interface called `name`, or None when this node has none.
    pub fn link(&mut self, name: &str) -> io::Result<Option<Link>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        let answers = match self.request(RouteNetlinkMessage::GetLink(msg), 0) {
            Ok(a) => a,
            Err(e) if e.raw_os_error() == Some(Errno::ENODEV as i32) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(answers.into_iter().find_map(|answer| match answer {
            RouteNetlinkMessage::NewLink(link) => Some(link_of(link, name)),
            _ => None,
        }))
    }

    /// Every interface of this node (network namespace), in the kernel's order.
    pub fn links(&mut self) -> io::Result<Vec<Link>> {
        let answers = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(answers
            .into_iter()
            .filter_map(|answer| match answer {
                RouteNetlinkMessage::NewLink(link) => Some(link_of(link, "")),
                _ => None,
            })
            .collect())
    }

    /// The addresses of the family of `like`: on the interface `index`, or on every interface.
    pub fn addresses(&mut self, index: Option<u32>, like: IpAddr) -> io::Result<Vec<Present>> {
        let mut msg = AddressMessage::default();
        msg.header.family = family(like);
        msg.header.index = index.unwrap_or(0);
        let answers = self.request(RouteNetlinkMessage::GetAddress(msg), NLM_F_DUMP)?;
        let mut found = Vec::new();
        for answer in answers {
            let RouteNetlinkMessage::NewAddress(a) = answer else {
                continue;
            };
            // The kernel may ignore the index of a dump request: filter here.
            if index.is_some_and(|i| a.header.index != i) || a.header.family != family(like) {
                continue;
            }
            // IPv4 keeps the interface's own address in IFA_LOCAL (IFA_ADDRESS is the peer of a
            // point-to-point link); IPv6 has only IFA_ADDRESS.
            let mut local = None;
            let mut address = None;
            let mut broadcast = None;
            let mut created = None;
            for attr in &a.attributes {
                match attr {
                    AddressAttribute::Local(ip) => local = Some(*ip),
                    AddressAttribute::Address(ip) => address = Some(*ip),
                    AddressAttribute::Broadcast(b) => broadcast = Some(*b),
                    AddressAttribute::CacheInfo(CacheInfo { cstamp, .. }) => {
                        created = Some(*cstamp)
                    }
                    _ => {}
                }
            }
            if let Some(addr) = local.or(address) {
                found.push(Present {
                    index: a.header.index,
                    addr: IfAddr {
                        addr,
                        prefix: a.header.prefix_len,
                    },
                    broadcast,
                    created,
                });
            }
        }
        Ok(found)
    }

    /// The address `addr` on interface `index`, whatever its prefix.
    pub fn find(&mut self, index: u32, addr: IpAddr) -> io::Result<Option<Present>> {
        Ok(self
            .addresses(Some(index), addr)?
            .into_iter()
            .find(|a| a.addr.addr == addr))
    }

    fn address_message(index: u32, a: IfAddr, brd: Option<Ipv4Addr>) -> AddressMessage {
        let mut msg = AddressMessage::default();
        msg.header.family = family(a.addr);
        msg.header.prefix_len = a.prefix;
        msg.header.index = index;
        msg.header.scope = AddressScope::Universe;
        match a.addr {
            IpAddr::V4(_) => {
                msg.attributes.push(AddressAttribute::Local(a.addr));
                msg.attributes.push(AddressAttribute::Address(a.addr));
                if let Some(brd) = brd {
                    msg.attributes.push(AddressAttribute::Broadcast(brd));
                }
            }
            IpAddr::V6(_) => {
                // NODAD: without it the address stays "tentative" for a second or more while
                // duplicate address detection runs, and HAProxy, started right after us, could
                // not bind it. The address is ours by configuration (the cluster guarantees one
                // holder), so there is nothing for DAD to find.
                msg.header.flags = AddressHeaderFlags::Nodad;
                msg.attributes.push(AddressAttribute::Address(a.addr));
                msg.attributes
                    .push(AddressAttribute::Flags(AddressFlags::Nodad));
            }
        }
        msg
    }

    /// Add `a` to interface `index`, with the broadcast address `brd` (IPv4). Fails with EEXIST
    /// when it is there already.
    pub fn add(&mut self, index: u32, a: IfAddr, brd: Option<Ipv4Addr>) -> io::Result<()> {
        let msg = Self::address_message(index, a, brd);
        self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(|_| ())
    }

    /// Remove `a` from interface `index`. Fails with EADDRNOTAVAIL when it is not there.
    pub fn delete(&mut self, index: u32, a: IfAddr) -> io::Result<()> {
        let msg = Self::address_message(index, a, None);
        self.request(RouteNetlinkMessage::DelAddress(msg), NLM_F_ACK)
            .map(|_| ())
    }
}

/// The answers to request `seq` (sent with `flags`) in one datagram from the kernel, added to
/// `answers`; messages of other requests are skipped. True when the request is answered in
/// full (a dump's end, an acknowledgement, the one answer to a lookup), false when more is to
/// come; an error when the kernel refused it (its errno) or for bytes that are not netlink
/// messages, never a panic.
fn answers_in(
    buf: &[u8],
    seq: u32,
    flags: u16,
    answers: &mut Vec<RouteNetlinkMessage>,
) -> io::Result<bool> {
    let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
    let mut offset = 0;
    while let Some(rest) = buf.get(offset..).filter(|r| !r.is_empty()) {
        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(rest).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("undecodable netlink answer: {e}"),
            )
        })?;
        let len = msg.header.length as usize;
        if msg.header.sequence_number == seq {
            match msg.payload {
                NetlinkPayload::Done(_) => return Ok(true),
                NetlinkPayload::Error(e) => {
                    return match e.code {
                        // An acknowledgement: the change is done.
                        None => Ok(true),
                        Some(_) => Err(e.to_io()),
                    };
                }
                NetlinkPayload::InnerMessage(m) => {
                    answers.push(m);
                    if !dump && flags & NLM_F_ACK == 0 {
                        return Ok(true);
                    }
                }
                _ => {}
            }
        }
        // Messages are 4-byte aligned; a length that does not move on ends the datagram.
        let next = len.checked_add(3).map(|l| l & !3).unwrap_or(usize::MAX);
        if next == 0 {
            break;
        }
        offset = offset.saturating_add(next);
    }
    Ok(false)
}

/// A link message as a [`Link`]; `name` until the message names it.
fn link_of(link: LinkMessage, name: &str) -> Link {
    let mut found = Link {
        index: link.header.index,
        name: name.to_string(),
        loopback: link.header.flags.contains(LinkFlags::Loopback)
            || link.header.link_layer_type == LinkLayerType::Loopback,
        noarp: link.header.flags.contains(LinkFlags::Noarp),
        mac: None,
        up: link.header.flags.contains(LinkFlags::Up),
    };
    for attr in link.attributes {
        match attr {
            LinkAttribute::Address(a) if a.len() == 6 => {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(&a);
                found.mac = Some(mac);
            }
            LinkAttribute::IfName(n) => found.name = n,
            _ => {}
        }
    }
    found
}

fn family(addr: IpAddr) -> AddressFamily {
    match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// The broadcast address `ip addr add … brd +` would set (the host bits set); none for /31 and
/// /32.
pub fn broadcast(addr: Ipv4Addr, prefix: u8) -> Option<Ipv4Addr> {
    if prefix >= 31 {
        return None;
    }
    let host_bits = u32::MAX >> prefix;
    Some(Ipv4Addr::from(u32::from(addr) | host_bits))
}

/// The broadcast address `brd -` would set (the host bits cleared); none for /31 and /32.
pub fn broadcast_minus(addr: Ipv4Addr, prefix: u8) -> Option<Ipv4Addr> {
    if prefix >= 31 {
        return None;
    }
    let host_bits = u32::MAX >> prefix;
    Some(Ipv4Addr::from(u32::from(addr) & !host_bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_as_ip_computes_it() {
        let a: Ipv4Addr = "10.17.0.5".parse().unwrap();
        assert_eq!(broadcast(a, 16), Some("10.17.255.255".parse().unwrap()));
        assert_eq!(broadcast(a, 24), Some("10.17.0.255".parse().unwrap()));
        assert_eq!(broadcast(a, 31), None);
        assert_eq!(broadcast(a, 32), None);
        assert_eq!(broadcast_minus(a, 16), Some("10.17.0.0".parse().unwrap()));
        assert_eq!(broadcast_minus(a, 31), None);
    }

    #[test]
    fn ipv6_requests_carry_nodad() {
        let m = Rtnl::address_message(
            3,
            IfAddr {
                addr: "2001:db8::5".parse().unwrap(),
                prefix: 128,
            },
            None,
        );
        assert_eq!(m.header.index, 3);
        assert!(m.header.flags.contains(AddressHeaderFlags::Nodad));
        assert!(m
            .attributes
            .contains(&AddressAttribute::Flags(AddressFlags::Nodad)));
    }

    #[test]
    fn answers_are_framed_by_their_headers() {
        let ack = |seq: u32, code: i32| {
            let mut m = Vec::new();
            m.extend_from_slice(&36u32.to_ne_bytes());
            m.extend_from_slice(&2u16.to_ne_bytes()); // NLMSG_ERROR
            m.extend_from_slice(&0u16.to_ne_bytes());
            m.extend_from_slice(&seq.to_ne_bytes());
            m.extend_from_slice(&0u32.to_ne_bytes());
            m.extend_from_slice(&code.to_ne_bytes());
            m.extend_from_slice(&[0u8; 16]);
            m
        };
        let mut answers = Vec::new();
        // Another request's answer is skipped; this one's acknowledgement ends the request.
        let mut buf = ack(6, -17);
        buf.extend(ack(7, 0));
        assert!(answers_in(&buf, 7, NLM_F_ACK, &mut answers).unwrap());
        let refused = answers_in(&ack(7, -17), 7, NLM_F_ACK, &mut answers);
        assert_eq!(refused.unwrap_err().raw_os_error(), Some(17));
        assert!(!answers_in(&ack(6, 0), 7, NLM_F_ACK, &mut answers).unwrap());
        assert!(answers_in(&[1, 2, 3], 7, 0, &mut answers).is_err());
        assert!(!answers_in(&[], 7, 0, &mut answers).unwrap());
        assert!(answers.is_empty());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// A netlink header (length, type, flags, sequence number, port) before any payload.
        fn framed() -> impl Strategy<Value = Vec<u8>> {
            (
                0u32..200,
                prop_oneof![
                    Just(2u16),
                    Just(3u16),
                    Just(16u16),
                    Just(20u16),
                    any::<u16>()
                ],
                any::<u16>(),
                0u32..3,
                proptest::collection::vec(any::<u8>(), 0..160),
            )
                .prop_map(|(len, kind, flags, seq, payload)| {
                    let mut m = Vec::new();
                    m.extend_from_slice(&len.to_ne_bytes());
                    m.extend_from_slice(&kind.to_ne_bytes());
                    m.extend_from_slice(&flags.to_ne_bytes());
                    m.extend_from_slice(&seq.to_ne_bytes());
                    m.extend_from_slice(&0u32.to_ne_bytes());
                    m.extend(payload);
                    m
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1024))]

            /// Whatever a datagram holds: answers, an error or "more to come", never a panic.
            #[test]
            fn any_datagram(
                raw in proptest::collection::vec(any::<u8>(), 0..300),
                messages in proptest::collection::vec(framed(), 0..4),
                flags in prop_oneof![Just(0u16), Just(NLM_F_DUMP), Just(NLM_F_ACK)],
            ) {
                let mut answers = Vec::new();
                let _ = answers_in(&raw, 1, flags, &mut answers);
                let _ = answers_in(&messages.concat(), 1, flags, &mut answers);
            }
        }
    }
}
