//! What start, stop, monitor and validate-all do (also in docs/anchorip.md):
//! - start decides where the address goes (`discover`), adds it unless it is there, and records
//!   under the instance lock whether it added it (with the kernel's creation stamp), the intent
//!   first: a start killed right after the add still leaves a stop that removes it.
//! - stop removes only an address that this instance added and that is still the one it added
//!   (same prefix, same creation stamp); with nothing recorded, nothing to stop (no parameter
//!   needed, no lock taken).
//! - monitor works from the record alone: 0 when the address is there, 7 when nothing was started
//!   here in this boot, and when started but gone, 1 (a probe: 7).

use crate::anchor::{self, Anchor};
use crate::arp;
use crate::discover::{self, Placement, Refusal};
use crate::netlink::{Link, Present, Rtnl};
use crate::record::Started;
use crate::settings::{instance_name, IpChoice, Settings, AUTO_NIC};
use crate::NIC;
use cloudha_common::{Agent, AgentSpec, Context, OcfCode, OcfError, OcfResult, Status};
use nix::errno::Errno;
use std::io;
use std::net::IpAddr;

pub struct AnchorIp;

/// Whether `e` carries the kernel's `errno`.
fn is(e: &io::Error, errno: Errno) -> bool {
    e.raw_os_error() == Some(errno as i32)
}

/// An rtnetlink failure as an OCF error: a permission problem is 4, anything else 1.
fn netlink_error(what: &str, e: io::Error) -> OcfError {
    let reason = format!("{what}: {e}");
    if is(&e, Errno::EPERM) || is(&e, Errno::EACCES) {
        OcfError::perm(reason)
    } else {
        OcfError::generic(reason)
    }
}

fn open_netlink(ctx: &Context) -> OcfResult<Rtnl> {
    Rtnl::open(&ctx.deadline).map_err(|e| netlink_error("cannot open a route netlink socket", e))
}

/// 5: the interface `nic` is not on this node.
fn no_such_nic(ctx: &Context, nic: &str) -> OcfError {
    ctx.params.fault(
        OcfCode::ErrInstalled,
        &NIC,
        format!("interface '{nic}' does not exist on this node"),
    )
}

/// The interface named by `nic`; 5 when this node has none.
fn require_link(ctx: &Context, nl: &mut Rtnl, nic: &str) -> OcfResult<Link> {
    nl.link(nic)
        .map_err(|e| netlink_error(&format!("cannot read interface '{nic}'"), e))?
        .ok_or_else(|| no_such_nic(ctx, nic))
}

/// Where the parameters put `addr`: `discover`'s decision, as an OCF error when there is none.
fn place(
    ctx: &Context,
    nl: &mut Rtnl,
    s: &Settings,
    addr: IpAddr,
    prefix: Option<u8>,
) -> OcfResult<Placement> {
    let req = discover::Request {
        addr,
        prefix,
        nic: s.nic.as_deref(),
        broadcast: s.broadcast,
    };
    match discover::place(nl, &req) {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(Refusal::NoSuchNic(nic))) => Err(no_such_nic(ctx, &nic)),
        // Not 6: another node may well have the subnet.
        Ok(Err(Refusal::NoSubnet(why))) => Err(OcfError::generic(why)),
        Err(e) => Err(netlink_error("cannot read the interfaces and addresses", e)),
    }
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
        let Ok(s) = Settings::from(ctx) else {
            return not_started.to_string();
        };
        let IpChoice::Explicit(addr) = s.ip else {
            let nic = s.nic.as_deref().unwrap_or(AUTO_NIC);
            return format!("{not_started} (ip=auto on {nic})");
        };
        let Ok(mut nl) = open_netlink(ctx) else {
            return not_started.to_string();
        };
        let placed = match place(ctx, &mut nl, &s, addr, s.prefix) {
            Ok(p) => p,
            Err(e) if e.code == OcfCode::ErrInstalled => {
                let nic = s.nic.unwrap_or_default();
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
        &crate::SPEC
    }

    fn start(&self, ctx: &Context) -> OcfResult<Status> {
        let s = Settings::from(ctx)?;
        let mut nl = open_netlink(ctx)?;
        // A missing interface is 5 before anything is asked of the metadata service.
        if let Some(nic) = &s.nic {
            require_link(ctx, &mut nl, nic)?;
        }
        let (addr, prefix) = anchor::resolve(&s, &ctx.deadline)?;
        let placed = place(ctx, &mut nl, &s, addr, prefix)?;
        if let Some(subnet) = &placed.subnet {
            ctx.log.debug(format!("{subnet} holds {addr}"));
        }
        let link = placed.link;
        let anchor = Anchor {
            addr: placed.addr,
            nic: link.name.clone(),
        };
        let state = ctx.state(&instance_name(&ctx.params));
        let lock = state.lock(&ctx.deadline)?;
        let previous = state.load::<Started>(&ctx.log)?;
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
                state.save(&lock, &intent)?;
                let added = match nl.add(link.index, anchor.addr, placed.broadcast) {
                    Ok(()) => true,
                    // Someone else added it between our look and our add: theirs, not ours.
                    Err(e) if is(&e, Errno::EEXIST) => false,
                    Err(e) => {
                        let _ = state.clear::<Started>(&lock);
                        return Err(netlink_error(
                            &format!("cannot add {anchor} to {}", link.name),
                            e,
                        ));
                    }
                };
                let Some(found) = nl.find(link.index, anchor.addr.addr).map_err(read_error)? else {
                    let _ = state.clear::<Started>(&lock);
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
        state.save(&lock, &record)?;
        let message = if added {
            format!("{} is on {} (added by anchorip)", record.anchor, link.name)
        } else {
            format!(
                "{} is on {} (it was there already: stop leaves it)",
                record.anchor, link.name
            )
        };
        self.announce(ctx, &link, &anchor, s.arp_count);
        Ok(Status::ok(message))
    }

    fn stop(&self, ctx: &Context) -> OcfResult<Status> {
        // Everything needed is in the start record: no parameter is required (a stop with
        // nothing to stop succeeds), and ip=auto needs no metadata service here.
        let state = ctx.state(&instance_name(&ctx.params));
        let Some((lock, started)) = state.hold::<Started>(&ctx.deadline, &ctx.log)? else {
            return Ok(Status::ok(
                "nothing to stop: anchorip has not started an address here",
            ));
        };
        let anchor = &started.anchor;
        if !started.added {
            state.clear::<Started>(&lock)?;
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
            state.clear::<Started>(&lock)?;
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
            state.clear::<Started>(&lock)?;
            return Ok(Status::ok(format!(
                "stopped; {anchor} stays on {}: it was added again since, not by this resource",
                anchor.nic
            )));
        }
        if let (Some(link), Some(_)) = (link, present) {
            match nl.delete(link.index, anchor.addr) {
                Ok(()) => {}
                // Gone already (removed by someone else, or with its interface).
                Err(e) if is(&e, Errno::EADDRNOTAVAIL) || is(&e, Errno::ENODEV) => {}
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
        state.clear::<Started>(&lock)?;
        Ok(Status::ok(message))
    }

    fn monitor(&self, ctx: &Context) -> OcfResult<Status> {
        // Running means: started by this instance in this boot (the record carries the boot id)
        // and the address is there. An address the system configured is not "running" before a
        // start or after a stop, so a probe after a reboot answers 7 and Pacemaker starts us.
        let state = ctx.state(&instance_name(&ctx.params));
        let Some(started) = state.load::<Started>(&ctx.log)? else {
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
        let s = Settings::from(ctx)?;
        let on = match &s.nic {
            Some(nic) => format!("on {nic}"),
            None => "on the interface whose subnet holds it".to_string(),
        };
        if ctx.check_level() < 10 {
            let what = match s.ip {
                IpChoice::Auto => "ip=auto".to_string(),
                IpChoice::Explicit(a) => a.to_string(),
            };
            return Ok(Status::ok(format!("parameters are valid ({what} {on})")));
        }
        let mut nl = open_netlink(ctx)?;
        match s.ip {
            // The metadata service is start's business: validate-all does not depend on it.
            IpChoice::Auto => {
                let nic = s.nic.as_deref().unwrap_or(AUTO_NIC);
                require_link(ctx, &mut nl, nic)?;
                Ok(Status::ok(format!(
                    "parameters are valid and interface {nic} exists for ip=auto"
                )))
            }
            IpChoice::Explicit(a) => {
                let placed = place(ctx, &mut nl, &s, a, s.prefix)?;
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
