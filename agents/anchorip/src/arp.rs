//! Gratuitous ARP: tell the neighbours (and the switch) that an IPv4 address now lives at this
//! interface's MAC, so traffic follows the address at once instead of after ARP caches expire.
//! A raw AF_PACKET socket (the kernel adds the Ethernet header); no helper binary.

use cloudha_common::Deadline;
use std::io;
use std::net::Ipv4Addr;
use std::time::Duration;

/// The spacing between announcements: a lost first packet is covered quickly.
pub const SPACING: Duration = Duration::from_millis(100);

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

struct PacketSocket(libc::c_int);

impl Drop for PacketSocket {
    fn drop(&mut self) {
        // SAFETY: the fd is ours and closed once.
        unsafe {
            libc::close(self.0);
        }
    }
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
    // SAFETY: plain socket(2) call; the fd is owned by PacketSocket.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            i32::from(ETH_P_ARP.to_be()),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let socket = PacketSocket(fd);
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid start.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_protocol = ETH_P_ARP.to_be();
    to.sll_ifindex = ifindex as i32;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    let packet = announcement(mac, ip);
    let mut sent = 0;
    while sent < count {
        // SAFETY: the buffer and address are valid for the lengths given.
        let rc = unsafe {
            libc::sendto(
                socket.0,
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&to as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        sent += 1;
        if sent < count && !deadline.sleep(SPACING) {
            break;
        }
    }
    Ok(sent)
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
