//! `anchorip`: keep an IP address on a local interface, for HAProxy to bind to: the DigitalOcean
//! anchor IP on eth0, or a shared IP on `lo` (Exoscale, Linode). Cloned on every balancer.
//!
//! The declaration is here; `settings` checks the parameters, `record` is what start leaves for
//! monitor and stop, `actions` the rules; `anchor` reads `ip=auto` from the metadata service,
//! `discover` decides where an address goes (as IPaddr2), `netlink` and `arp` talk to the kernel.

mod actions;
mod anchor;
mod arp;
mod discover;
mod netlink;
mod record;
mod settings;

use cloudha_common::http::DEFAULT_METADATA_URL;
use cloudha_common::{ActionSpec, AgentSpec, HttpUrl, Param};
use discover::Broadcast;
use settings::{CidrNetmask, IpChoice, Nic};

static IP: Param<IpChoice> = Param::new("ip")
    .required()
    .unique()
    .short("IPv4 or IPv6 address, or auto")
    .long(
        "The address to keep on the interface, IPv4 (10.17.1.18) or IPv6 \
(2001:db8::7). 'auto' reads the droplet's anchor IP and its netmask from the DigitalOcean \
metadata service (interfaces/public/0/anchor_ipv4/address and .../netmask).",
    );

static CIDR_NETMASK: Param<CidrNetmask> = Param::new("cidr_netmask").short("prefix length").long(
    "The prefix length of the address (24, or /24; for IPv4 also a dotted \
netmask such as 255.255.0.0). Default: the prefix of the subnet that holds the address (on \
nic, when given); 32 or 128 on a loopback nic (lo); with ip=auto the netmask the metadata \
service gives. Without nic, the subnet that holds the address must hold all of ip/cidr_netmask \
(IPv6: have exactly this prefix).",
);

static NIC: Param<Nic> = Param::new("nic").short("interface").long(
    "The interface that holds the address. Default: as IPaddr2, the interface \
whose configured subnet holds the address (the longest prefix wins); an address that no \
subnet holds needs nic (and, except on lo, cidr_netmask): start fails (1) and names the \
subnets it looked at. ip=auto: eth0. Required for an IPv6 link-local address. It must exist on \
the node (else the node cannot run the resource: 5). nic and cidr_netmask together put the \
address there whatever the subnets.",
);

static BROADCAST: Param<Broadcast> = Param::new("broadcast").short("broadcast address").long(
    "IPv4: the broadcast address to add the address with, as IPaddr2 takes it: \
an address, or + (the host bits of the prefix set) or - (cleared). Default: the broadcast \
address of the subnet that holds the address; when none does (nic and cidr_netmask forced \
it), what + gives.",
);

static METADATA_URL: Param<HttpUrl> = Param::new("metadata_url")
    .default(DEFAULT_METADATA_URL)
    .short("metadata service")
    .long("The base URL of the DigitalOcean metadata service, read when ip=auto.");

static ARP_COUNT: Param<i64> = Param::new("arp_count")
    .default("3")
    .short("gratuitous ARP count")
    .long(
        "How many gratuitous ARP announcements start sends, 100 ms apart, for an \
IPv4 address on an interface that speaks ARP (never on lo), so that neighbours update their \
caches at once. 0 sends none.",
    );

static SPEC: AgentSpec = AgentSpec {
    name: "anchorip",
    version: env!("CARGO_PKG_VERSION"),
    shortdesc:
        "An IP address on a local interface (the DigitalOcean anchor IP, or a shared IP on lo)",
    longdesc: "Puts an IPv4 or IPv6 address on a local interface and keeps it there, for a load \
balancer to bind to. On DigitalOcean the traffic of a floating (reserved) IP arrives on the \
droplet's anchor IP, a private address on eth0: ip=auto reads it from the metadata service. On \
Exoscale and Linode a shared IP must sit on lo as /32 (nic=lo; IPv6: a /64 or /56 range). \
Without nic, the address goes where IPaddr2 puts it: on the interface whose subnet holds it, \
with that subnet's prefix. Clone it on every balancer and order HAProxy after it. Stop removes \
only an address that this agent added: an address the system configured (as cloud-init does \
for the anchor IP) stays.",
    params: &[
        &IP.spec,
        &CIDR_NETMASK.spec,
        &NIC.spec,
        &BROADCAST.spec,
        &METADATA_URL.spec,
        &ARP_COUNT.spec,
    ],
    actions: &[
        ActionSpec::new("start", 20),
        ActionSpec::new("stop", 20),
        ActionSpec::new("monitor", 20).interval(10).depth(0),
        ActionSpec::new("notify", 5),
        ActionSpec::new("validate-all", 20),
        ActionSpec::new("meta-data", 5),
    ],
};

fn main() {
    cloudha_common::runner::main(&actions::AnchorIp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_parses() {
        assert_eq!(SPEC.check_defaults(), Ok(()));
    }
}
