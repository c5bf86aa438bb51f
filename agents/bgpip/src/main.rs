//! `bgpip`: a shared IP announced by BGP through FRR, as a promotable clone (Linode's shared IPs,
//! or any cloud whose route servers prefer one community). Promoted: announced with the primary
//! community; unpromoted: with the secondary one; stopped: not announced.
//!
//! The declaration is here; `settings` checks the parameters, `record` is what start leaves for
//! monitor and stop, `actions` the rules; `frr` builds the agent's own FRR statements and runs
//! vtysh, `show` reads FRR's JSON answers.

mod actions;
mod frr;
mod record;
mod settings;
mod show;

use cloudha_common::{AbsPath, ActionSpec, AgentSpec, Param};
use settings::{Community, Peers, SharedIp};

static IP: Param<SharedIp> = Param::new("ip")
    .required()
    .unique()
    .short("shared IPv4 address (/32) or IPv6 range")
    .long(
        "The shared address to announce: an IPv4 address (203.0.113.7, or 203.0.113.7/32), or \
an IPv6 address of the shared /64 or /56 range (2001:db8:1::, or 2001:db8:1::/56; see prefix). \
It must sit on lo of this node (the anchorip agent keeps it there): FRR announces only what \
is in the routing table.",
    );

static PREFIX: Param<u8> = Param::new("prefix")
    .short("IPv6 prefix length (64 or 56)")
    .long(
        "For an IPv6 ip: the length of the shared range, 64 or 56 (default 64, or the /N given \
with ip). An IPv4 ip is always announced as /32.",
    );

static DCID: Param<u32> = Param::new("dcid").short("Linode data center id").long(
    "The Linode data center id (Linode's table, e.g. Newark 6, Frankfurt 10): the route \
servers are then 2600:3c0f:<dcid>:34::1 to ::4. Set dcid or peers.",
);

static PEERS: Param<Peers> = Param::new("peers")
    .short("route servers")
    .long("The route servers' addresses, separated by blanks or commas, instead of dcid.");

static ASN: Param<u32> = Param::new("asn")
    .default("65001")
    .short("this node's AS number")
    .long("The AS number of this node's BGP speaker (the `router bgp` of FRR).");

static PEER_ASN: Param<u32> = Param::new("peer_asn")
    .default("65000")
    .short("the route servers' AS number")
    .long("The AS number of the route servers.");

static PRIMARY_COMMUNITY: Param<Community> = Param::new("primary_community")
    .default("65000:1")
    .short("community of the promoted node")
    .long("The BGP community (AS:NN) the promoted instance announces the address with.");

static SECONDARY_COMMUNITY: Param<Community> = Param::new("secondary_community")
    .default("65000:2")
    .short("community of an unpromoted node")
    .long("The BGP community (AS:NN) an unpromoted instance announces the address with.");

static HOLD_TIME: Param<u32> = Param::new("hold_time")
    .default("9")
    .short("BGP hold time (s)")
    .long(
        "The BGP hold time in seconds (0, or 3 to 65535): how long a route server keeps the \
announcement of a node that stopped talking. It bounds the failover time after a crash.",
    );

static KEEPALIVE: Param<u32> = Param::new("keepalive")
    .default("3")
    .short("BGP keepalive interval (s)")
    .long("The BGP keepalive interval in seconds, less than hold_time.");

static MULTIHOP_TTL: Param<u32> = Param::new("multihop_ttl")
    .default("10")
    .short("eBGP multihop TTL")
    .long("The TTL of the eBGP multihop sessions to the route servers (1 to 255).");

static VTYSH: Param<AbsPath> = Param::new("vtysh")
    .default("/usr/bin/vtysh")
    .short("vtysh path")
    .long("The vtysh program of FRR, through which the agent reads and changes bgpd.");

static FRR_INSTANCE: Param<settings::PathSpace> =
    Param::new("frr_instance").short("FRR pathspace").long(
        "The FRR instance to talk to (vtysh -N NAME: /etc/frr/NAME, /var/run/frr/NAME), for \
several FRR instances on one machine. Default: the system's FRR.",
    );

static SPEC: AgentSpec = AgentSpec {
    name: "bgpip",
    version: env!("CARGO_PKG_VERSION"),
    shortdesc: "A shared IP announced by BGP through FRR, as a promotable clone",
    longdesc: "Announces a shared IP (on lo of every node, kept there by anchorip) to the \
route servers by BGP through FRR's bgpd, as Linode's shared IPs work: the route servers prefer \
the announcement with the primary community. Run it as a promotable clone: the promoted \
instance announces the address with primary_community, an unpromoted one with \
secondary_community (so the route servers fall back to it at once when the primary's session \
drops), a stopped one not at all. Colocate the promoted role with HAProxy. The agent owns only \
its own FRR statements: the route-server peer group CLOUDHA, the route-maps named \
cloudha-bgpip-*, and the network line of its address; configuration written by hand is never \
changed. The statements live in bgpd's running configuration only (never written to disk). \
Monitor depth 0: bgpd holds the announcement with the community of the role; depth 10: a \
route-server session is Established and the address is advertised to it (a promoted instance \
without one fails, an unpromoted one is degraded).",
    params: &[
        &IP.spec,
        &PREFIX.spec,
        &DCID.spec,
        &PEERS.spec,
        &ASN.spec,
        &PEER_ASN.spec,
        &PRIMARY_COMMUNITY.spec,
        &SECONDARY_COMMUNITY.spec,
        &HOLD_TIME.spec,
        &KEEPALIVE.spec,
        &MULTIHOP_TTL.spec,
        &VTYSH.spec,
        &FRR_INSTANCE.spec,
    ],
    actions: &[
        ActionSpec::new("start", 30),
        ActionSpec::new("stop", 30),
        ActionSpec::new("promote", 30),
        ActionSpec::new("demote", 30),
        ActionSpec::new("monitor", 20).interval(10).depth(0),
        ActionSpec::new("monitor", 20).interval(30).depth(10),
        ActionSpec::new("notify", 5),
        ActionSpec::new("validate-all", 20),
        ActionSpec::new("meta-data", 5),
    ],
};

fn main() {
    cloudha_common::runner::main(&actions::BgpIp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_parses() {
        assert_eq!(SPEC.check_defaults(), Ok(()));
    }
}
