//! Gratuitous ARP: tell the neighbours (and the switch) that an IPv4 address now lives at this
//! interface's MAC, so traffic follows the address at once instead of after ARP caches expire.
//! A raw AF_PACKET socket (the kernel adds the Ethernet header); no helper binary.

use cloudha_common::{Attempt, Deadline, Retry, RetryError};
use nix::libc;
use nix::sys::socket::{
    sendto, socket, AddressFamily, LinkAddr, MsgFlags, SockFlag, SockType, SockaddrLike,
};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// The spacing between announcements: a lost first packet is covered quickly.
pub const SPACING: Duration = Duration::from_millis(100);
/// The announcements of one start: one try sends one, `SPACING` apart, as many as asked for
/// (`attempts`) while the deadline allows.
const ANNOUNCEMENTS: Retry = Retry::every(SPACING);

const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IP: u16 = 0x0800;
const ARPHRD_ETHER: u16 = 1;
const ARPOP_REQUEST: u16 = 1;

/// The 28-byte ARP request announcing `ip` at `mac`: sender and target address both `ip`,
/// target hardware address zero (RFC 5227's ARP announcement).
pub fn announcement(mac: [u8; 6], ip: Ipv4Addr) -> [u8; 28] {
    let mut p = [0u8; 28];
    p[0..2].copy_from_slice(&ARPHRD_ETHER.to_be_bytes());
    p[2..4].copy_from_slice(&ETH_P_IP.to_be_bytes());
    p[4] = 6;
    p[5] = 4;
    p[6..8].copy_from_slice(&ARPOP_REQUEST.to_be_bytes());
    p[8..14].copy_from_slice(&mac);
    p[14..18].copy_from_slice(&ip.octets());
    // p[18..24]: target hardware address, zero.
    p[24..28].copy_from_slice(&ip.octets());
    p
}

/// The link-layer broadcast address of interface `ifindex`, for ARP.
fn broadcast_to(ifindex: u32) -> io::Result<LinkAddr> {
    let ll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: ETH_P_ARP.to_be(),
        sll_ifindex: i32::try_from(ifindex)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 6,
        sll_addr: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0],
    };
    link_addr(&ll).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))
}

/// nix 0.29 has no safe constructor for a `sockaddr_ll` address.
#[allow(unsafe_code)]
fn link_addr(ll: &libc::sockaddr_ll) -> Option<LinkAddr> {
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_ll>()).ok()?;
    // SAFETY: `ll` is a valid, initialised sockaddr_ll of exactly `len` bytes (from_raw checks
    // the length and the family, and copies it).
    unsafe { LinkAddr::from_raw((ll as *const libc::sockaddr_ll).cast(), Some(len)) }
}

/// Send `count` announcements of `ip` on interface `ifindex`, `SPACING` apart, stopping at the
/// deadline. Returns how many were sent.
pub fn announce(
    ifindex: u32,
    mac: [u8; 6],
    ip: Ipv4Addr,
    count: u32,
    deadline: &Deadline,
) -> io::Result<u32> {
    if count == 0 {
        return Ok(0);
    }
    // Protocol 0: this socket only sends (the destination names the protocol, ARP).
    let socket = socket(
        AddressFamily::Packet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let to = broadcast_to(ifindex)?;
    let packet = announcement(mac, ip);
    let spaced = ANNOUNCEMENTS.attempts(count);
    let mut sent = 0;
    let done = deadline.retry(&spaced, |_| {
        match sendto(socket.as_raw_fd(), &packet, &to, MsgFlags::empty()) {
            Err(e) => return Attempt::Fail(Some(io::Error::from(e))),
            Ok(_) => sent += 1,
        }
        if sent < count {
            Attempt::Again(None)
        } else {
            Attempt::Done(())
        }
    });
    match done.map_err(RetryError::into_inner) {
        Err(Some(e)) => Err(e),
        // Sent all, or the deadline came first: as many as were sent.
        Ok(()) | Err(None) => Ok(sent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcement_layout() {
        let p = announcement([2, 0, 0, 0, 0, 1], Ipv4Addr::new(10, 17, 0, 5));
        assert_eq!(&p[0..8], &[0, 1, 8, 0, 6, 4, 0, 1]);
        assert_eq!(&p[8..14], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(&p[14..18], &[10, 17, 0, 5]);
        assert_eq!(&p[18..24], &[0; 6]);
        assert_eq!(&p[24..28], &[10, 17, 0, 5]);
    }
}
