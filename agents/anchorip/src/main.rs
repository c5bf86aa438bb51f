//! `anchorip`: keep an IP address on a local interface, for HAProxy to bind to: the DigitalOcean
//! anchor IP on eth0, or a shared IP on `lo` (Exoscale, Linode). Cloned on every balancer.

mod anchor;
mod arp;
mod discover;
mod netlink;

use anchor::{instance_fallback, Anchor, IpChoice, Started, Wanted};
use cloudha_common::agent::{Agent, Context, Status};
use cloudha_common::{ActionSpec, AgentSpec, InstanceState, OcfError, OcfResult, ParamSpec};
use discover::{Placement, Refusal};
use netlink::{Link, Present, Rtnl};
use std::io;
use std::net::IpAddr;

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
        ParamSpec::string("ip")
            .required()
            .unique()
            .short("IPv4 or IPv6 address, or auto")
            .long(
                "The address to keep on the interface, IPv4 (10.17.1.18) or IPv6 \
(2001:db8::7). 'auto' reads the droplet's anchor IP and its netmask from the DigitalOcean \
metadata service (interfaces/public/0/anchor_ipv4/address and .../netmask).",
            ),
        ParamSpec::string("cidr_netmask")
            .short("prefix length")
            .long(
                "The prefix length of the address (24, or /24; for IPv4 also a dotted \
netmask such as 255.255.0.0). Default: the prefix of the subnet that holds the address (on \
nic, when given); 32 or 128 on a loopback nic (lo); with ip=auto the netmask the metadata \
service gives. Without nic, the subnet that holds the address must hold all of ip/cidr_netmask \
(IPv6: have exactly this prefix).",
            ),
        ParamSpec::string("nic").short("interface").long(
            "The interface that holds the address. Default: as IPaddr2, the interface \
whose configured subnet holds the address (the longest prefix wins); an address that no \
subnet holds needs nic (and, except on lo, cidr_netmask): start fails (1) and names the \
subnets it looked at. ip=auto: eth0. Required for an IPv6 link-local address. It must exist on \
the node (else the node cannot run the resource: 5). nic and cidr_netmask together put the \
address there whatever the subnets.",
        ),
        ParamSpec::string("broadcast")
            .short("broadcast address")
            .long(
                "IPv4: the broadcast address to add the address with, as IPaddr2 takes it: \
an address, or + (the host bits of the prefix set) or - (cleared). Default: the broadcast \
address of the subnet that holds the address; when none does (nic and cidr_netmask forced \
it), what + gives.",
            ),
        ParamSpec::string("metadata_url")
            .default(cloudha_common::http::DEFAULT_METADATA_URL)
            .short("metadata service")
            .long("The base URL of the DigitalOcean metadata service, read when ip=auto."),
        ParamSpec::integer("arp_count")
            .default("3")
            .short("gratuitous ARP count")
            .long(
                "How many gratuitous ARP announcements start sends, 100 ms apart, for an \
IPv4 address on an interface that speaks ARP (never on lo), so that neighbours update their \
caches at once. 0 sends none.",
            ),
    ],
    actions: &[
        ActionSpec::new("start", 20),
        ActionSpec::new("stop", 20),
        ActionSpec::new("monitor", 20).interval(10).depth(0),
        ActionSpec::new("validate-all", 20),
        ActionSpec::new("meta-data", 5),
    ],
};

struct AnchorIp;

/// An rtnetlink failure as an OCF error: a permission problem is 4, anything else 1.
fn netlink_error(what: &str, e: io::Error) -> OcfError {
    let reason = format!("{what}: {e}");
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => OcfError::perm(reason),
        _ => OcfError::generic(reason),
    }
}

fn open_netlink(ctx: &Context) -> OcfResult<Rtnl> {
    Rtnl::open(&ctx.deadline).map_err(|e| netlink_error("cannot open a route netlink socket", e))
}

/// The interface named by `nic`; 5 when this node has none.
fn require_link(nl: &mut Rtnl, nic: &str) -> OcfResult<Link> {
    nl.link(nic)
        .map_err(|e| netlink_error(&format!("cannot read interface '{nic}'"), e))?
        .ok_or_else(|| {
            OcfError::installed(format!(
                "parameter 'nic': interface '{nic}' does not exist on this node"
            ))
        })
}

/// Where the parameters put `addr`: `discover`'s decision, as an OCF error when there is none.
fn place(nl: &mut Rtnl, wanted: &Wanted, addr: IpAddr, prefix: Option<u8>) -> OcfResult<Placement> {
    let req = discover::Request {
        addr,
        prefix,
        nic: wanted.nic.as_deref(),
        broadcast: wanted.broadcast,
    };
    match discover::place(nl, &req) {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(Refusal::NoSuchNic(nic))) => Err(OcfError::installed(format!(
            "parameter 'nic': interface '{nic}' does not exist on this node"
        ))),
        // Not 6: another node may well have the subnet.
        Ok(Err(Refusal::NoSubnet(why))) => Err(OcfError::generic(why)),
        Err(e) => Err(netlink_error("cannot read the interfaces and addresses", e)),
    }
}

/// The start record of this instance in this boot, if any.
fn read_started(ctx: &Context, state: &InstanceState) -> OcfResult<Option<Started>> {
    state.read_parsed(Started::RECORD, &ctx.log, Started::from_record)
}

/// `anchor`'s address as it is on its interface now (with any prefix), and that interface.
fn find(nl: &mut Rtnl, anchor: &Anchor) -> OcfResult<(Option<Link>, Option<Present>)> {
    let Some(link) = nl
        .link(&anchor.nic)
        .map_err(|e| netlink_error(&format!("cannot read interface '{}'", anchor.nic), e))?
    else {
        return Ok((None, None));
    };
    let present = nl
        .find(link.index, anchor.addr.addr)
        .map_err(|e| netlink_error(&format!("cannot read the addresses of '{}'", anchor.nic), e))?;
    Ok((Some(link), present))
}

impl AnchorIp {
    /// Words for a monitor of an instance that was not started here: what the parameters would
    /// find, when they can be read without asking anyone.
    fn describe_unstarted(&self, ctx: &Context) -> String {
        let not_started = "anchorip has not started an address here";
        let Ok(wanted) = Wanted::from_params(&ctx.params) else {
            return not_started.to_string();
        };
        let IpChoice::Explicit(addr) = wanted.ip else {
            let nic = wanted.nic.as_deref().unwrap_or("eth0");
            return format!("{not_started} (ip=auto on {nic})");
        };
        let Ok(mut nl) = open_netlink(ctx) else {
            return not_started.to_string();
        };
        let placed = match place(&mut nl, &wanted, addr, wanted.prefix) {
            Ok(p) => p,
            Err(e) if e.code == cloudha_common::OcfCode::ErrInstalled => {
                let nic = wanted.nic.unwrap_or_default();
                return format!("{addr} is not on {nic}: no such interface");
            }
            Err(e) => return format!("{not_started} ({})", e.reason),
        };
        let nic = &placed.link.name;
        match nl.find(placed.link.index, addr) {
            Ok(None) => format!("{}/{} is not on {nic}", addr, placed.addr.prefix),
            Ok(Some(_)) => format!("{addr} is on {nic}, but this instance has not started it"),
            Err(_) => not_started.to_string(),
        }
    }

    fn announce(&self, ctx: &Context, link: &Link, anchor: &Anchor, count: u32) {
        let IpAddr::V4(v4) = anchor.addr.addr else {
            return;
        };
        if count == 0 || link.loopback || link.noarp {
            return;
        }
        let Some(mac) = link.mac else {
            ctx.log.warn(format!(
                "{} has no Ethernet address: no gratuitous ARP for {anchor}",
                link.name
            ));
            return;
        };
        // The address is up either way; neighbours learn it later if the announcement fails.
        match arp::announce(link.index, mac, v4, count, &ctx.deadline) {
            Ok(n) => ctx.log.info(format!(
                "sent {n} gratuitous ARP announcement(s) of {v4} on {}",
                link.name
            )),
            Err(e) => ctx.log.warn(format!(
                "gratuitous ARP of {v4} on {} failed: {e}",
                link.name
            )),
        }
    }
}

impl Agent for AnchorIp {
    fn spec(&self) -> &'static AgentSpec {
        &SPEC
    }

    fn start(&self, ctx: &Context) -> OcfResult<Status> {
        let wanted = Wanted::from_params(&ctx.params)?;
        let mut nl = open_netlink(ctx)?;
        // A missing interface is 5 before anything is asked of the metadata service.
        if let Some(nic) = &wanted.nic {
            require_link(&mut nl, nic)?;
        }
        let (addr, prefix) = wanted.resolve(&ctx.deadline)?;
        let placed = place(&mut nl, &wanted, addr, prefix)?;
        if let Some(subnet) = &placed.subnet {
            ctx.log.debug(format!("{subnet} holds {addr}"));
        }
        let link = placed.link;
        let anchor = Anchor {
            addr: placed.addr,
            nic: link.name.clone(),
        };
        let state = ctx.state(&instance_fallback(&ctx.params));
        let _lock = state.lock(&ctx.deadline)?;
        let previous = read_started(ctx, &state)?;
        let same =
            |p: &Started| p.anchor.addr.addr == anchor.addr.addr && p.anchor.nic == anchor.nic;
        if let Some(p) = previous.as_ref().filter(|p| !same(p)) {
            ctx.log.warn(format!(
                "this instance last started {} on {}; now starting {anchor} on {}",
                p.anchor, p.anchor.nic, anchor.nic
            ));
        }
        let read_error =
            |e| netlink_error(&format!("cannot read the addresses of '{}'", link.name), e);
        let existing = nl.find(link.index, anchor.addr.addr).map_err(read_error)?;
        let (found, added) = match existing {
            // Ours if a start of this instance added this very address (the kernel's creation
            // stamp tells it from the same address removed and added again by someone else);
            // otherwise the system's, or another resource's: left alone.
            Some(found) => {
                let ours = previous.as_ref().is_some_and(|p| {
                    p.added && same(p) && p.created.is_none_or(|c| found.created == Some(c))
                });
                (found, ours)
            }
            None => {
                // Record the intent first: if we are killed right after the kernel adds the
                // address, the stop that follows still knows to remove it.
                let intent = Started {
                    anchor: anchor.clone(),
                    added: true,
                    created: None,
                };
                state.write(Started::RECORD, &intent.to_record())?;
                let added = match nl.add(link.index, anchor.addr, placed.broadcast) {
                    Ok(()) => true,
                    // Someone else added it between our look and our add: theirs, not ours.
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => false,
                    Err(e) => {
                        let _ = state.remove(Started::RECORD);
                        return Err(netlink_error(
                            &format!("cannot add {anchor} to {}", link.name),
                            e,
                        ));
                    }
                };
                let Some(found) = nl.find(link.index, anchor.addr.addr).map_err(read_error)? else {
                    let _ = state.remove(Started::RECORD);
                    return Err(OcfError::generic(format!(
                        "{anchor} was added to {} but is not there",
                        link.name
                    )));
                };
                if added {
                    ctx.log.info(format!("added {anchor} to {}", link.name));
                } else {
                    ctx.log.warn(format!(
                        "{} appeared on {} while anchorip was adding it: someone else's, left to them",
                        anchor.addr.addr, link.name
                    ));
                }
                (found, added)
            }
        };
        if found.addr.prefix != anchor.addr.prefix {
            ctx.log.warn(format!(
                "{} is on {} as /{}, not /{}: left as it is",
                anchor.addr.addr, link.name, found.addr.prefix, anchor.addr.prefix
            ));
        }
        let record = Started {
            anchor: Anchor {
                addr: found.addr,
                nic: anchor.nic.clone(),
            },
            added,
            created: found.created.filter(|_| added),
        };
        state.write(Started::RECORD, &record.to_record())?;
        let message = if added {
            format!("{} is on {} (added by anchorip)", record.anchor, link.name)
        } else {
            format!(
                "{} is on {} (it was there already: stop leaves it)",
                record.anchor, link.name
            )
        };
        self.announce(ctx, &link, &anchor, wanted.arp_count);
        Ok(Status::ok(message))
    }

    fn stop(&self, ctx: &Context) -> OcfResult<Status> {
        // Everything needed is in the start record: no parameter is required (a stop with
        // nothing to stop succeeds), and ip=auto needs no metadata service here.
        let state = ctx.state(&instance_fallback(&ctx.params));
        let _lock = state.lock(&ctx.deadline)?;
        let Some(started) = read_started(ctx, &state)? else {
            return Ok(Status::ok(
                "nothing to stop: anchorip has not started an address here",
            ));
        };
        let anchor = &started.anchor;
        if !started.added {
            state.remove(Started::RECORD)?;
            ctx.log.info(format!(
                "left {anchor} on {}: it was there before start",
                anchor.nic
            ));
            return Ok(Status::ok(format!(
                "stopped; {anchor} stays on {}: anchorip did not add it",
                anchor.nic
            )));
        }
        let mut nl = open_netlink(ctx)?;
        let (link, present) = find(&mut nl, anchor)?;
        let mut message = format!("{anchor} is not on {} (it was gone already)", anchor.nic);
        if let Some(other) = present.filter(|p| p.addr.prefix != anchor.addr.prefix) {
            // Replaced since the start by someone else's, with another prefix: not ours any more.
            ctx.log.warn(format!(
                "{} is on {} as /{}, not the /{} anchorip added: left as it is",
                anchor.addr.addr, anchor.nic, other.addr.prefix, anchor.addr.prefix
            ));
            state.remove(Started::RECORD)?;
            return Ok(Status::ok(format!(
                "stopped; {}/{} stays on {}: anchorip did not add it",
                other.addr.addr, other.addr.prefix, anchor.nic
            )));
        }
        let recreated = match (started.created, present) {
            (Some(ours), Some(now)) => now.created.is_some_and(|c| c != ours),
            _ => false,
        };
        if recreated {
            // Removed since the start and added again, by someone else (another resource).
            ctx.log.warn(format!(
                "{anchor} on {} is not the address anchorip added (that one was removed, and \
                 this one added since): left as it is",
                anchor.nic
            ));
            state.remove(Started::RECORD)?;
            return Ok(Status::ok(format!(
                "stopped; {anchor} stays on {}: it was added again since, not by this resource",
                anchor.nic
            )));
        }
        if let (Some(link), Some(_)) = (link, present) {
            match nl.delete(link.index, anchor.addr) {
                Ok(()) => {}
                // Gone already (removed by someone else, or with its interface).
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EADDRNOTAVAIL) | Some(libc::ENODEV)
                    ) => {}
                Err(e) => {
                    return Err(netlink_error(
                        &format!("cannot remove {anchor} from {}", anchor.nic),
                        e,
                    ))
                }
            }
            if find(&mut nl, anchor)?.1.is_some() {
                return Err(OcfError::generic(format!(
                    "{anchor} is still on {} after its removal",
                    anchor.nic
                )));
            }
            message = format!("removed {anchor} from {}", anchor.nic);
            ctx.log.info(&message);
        }
        state.remove(Started::RECORD)?;
        Ok(Status::ok(message))
    }

    fn monitor(&self, ctx: &Context) -> OcfResult<Status> {
        // Running means: started by this instance in this boot (the record carries the boot id)
        // and the address is there. An address the system configured is not "running" before a
        // start or after a stop, so a probe after a reboot answers 7 and Pacemaker starts us.
        let state = ctx.state(&instance_fallback(&ctx.params));
        let Some(started) = read_started(ctx, &state)? else {
            return Ok(Status::not_running(self.describe_unstarted(ctx)));
        };
        let anchor = &started.anchor;
        let mut nl = open_netlink(ctx)?;
        let (link, present) = find(&mut nl, anchor)?;
        if present.is_some() {
            return Ok(Status::ok(format!("{anchor} is on {}", anchor.nic)));
        }
        let why = match link {
            None => format!("{anchor} is not on {}: the interface is gone", anchor.nic),
            Some(_) => format!(
                "{anchor} is not on {} any more: it was removed behind the cluster's back",
                anchor.nic
            ),
        };
        if ctx.is_probe() {
            Ok(Status::not_running(why))
        } else {
            Err(OcfError::generic(why))
        }
    }

    fn validate(&self, ctx: &Context) -> OcfResult<Status> {
        let wanted = Wanted::from_params(&ctx.params)?;
        let on = match &wanted.nic {
            Some(nic) => format!("on {nic}"),
            None => "on the interface whose subnet holds it".to_string(),
        };
        if ctx.check_level() < 10 {
            let what = match wanted.ip {
                IpChoice::Auto => "ip=auto".to_string(),
                IpChoice::Explicit(a) => a.to_string(),
            };
            return Ok(Status::ok(format!("parameters are valid ({what} {on})")));
        }
        let mut nl = open_netlink(ctx)?;
        match wanted.ip {
            // The metadata service is start's business: validate-all does not depend on it.
            IpChoice::Auto => {
                let nic = wanted.nic.as_deref().unwrap_or("eth0");
                require_link(&mut nl, nic)?;
                Ok(Status::ok(format!(
                    "parameters are valid and interface {nic} exists for ip=auto"
                )))
            }
            IpChoice::Explicit(a) => {
                let placed = place(&mut nl, &wanted, a, wanted.prefix)?;
                let why = match &placed.subnet {
                    Some(s) => format!(" ({s} holds it)"),
                    None => String::new(),
                };
                Ok(Status::ok(format!(
                    "parameters are valid: {}/{} goes on {}{why}",
                    a, placed.addr.prefix, placed.link.name
                )))
            }
        }
    }
}

fn main() {
    cloudha_common::agent::main(&AnchorIp)
}
