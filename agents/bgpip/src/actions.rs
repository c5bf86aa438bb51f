//! The rules: start announces the prefix with the secondary community, promote with the
//! primary one, demote back, stop withdraws it; monitor reads bgpd's own path for the prefix
//! (depth 0) and the route-server sessions (depth 10). FRR, not the record, says the role.

use crate::frr::{self, FrrError, Vtysh, GROUP, MAP_PREFIX};
use crate::record::Started;
use crate::settings::{Community, Frr, Settings};
use crate::show::{self, LocalPath};
use crate::SPEC;
use cloudha_common::{
    child, Agent, AgentSpec, Attempt, Context, OcfError, OcfResult, Retry, Status,
};
use std::process::Command;
use std::time::Duration;

pub struct BgpIp;

/// Promotion scores: an instance that is promoted prefers to stay so.
const SCORE_UNPROMOTED: &str = "5";
const SCORE_PROMOTED: &str = "10";

/// Polling bgpd for the effect of a change: it takes milliseconds, sessions take seconds.
const POLL: Retry = Retry::backoff(Duration::from_millis(50), Duration::from_millis(500));
/// How long a start waits for the prefix to be usable (in the routing table) before it says the
/// address is not on this node.
const USABLE_WITHIN: Duration = Duration::from_secs(5);

fn state(ctx: &Context) -> cloudha_common::InstanceState {
    let by_hand = ctx.params.text(&crate::IP).unwrap_or("bgpip");
    ctx.state(by_hand)
}

/// What bgpd says of this node's announcement, and of the sessions when asked.
struct Seen {
    path: Option<LocalPath>,
    /// Members of the peer group and their states (depth 10 only).
    sessions: Option<Vec<(String, String)>>,
}

fn look(frr: &Frr, s: &Settings, sessions: bool, ctx: &Context) -> Result<Seen, FrrError> {
    let out = Vtysh { frr }.once(&frr::show(&s.prefix, sessions), &ctx.deadline)?;
    let docs = show::documents(&out).map_err(FrrError::Failed)?;
    let path = match docs.first() {
        Some(d) => show::local_path(d).map_err(FrrError::Failed)?,
        None => return Err(FrrError::Failed("vtysh gave no answer".into())),
    };
    let sessions = if sessions {
        let members = match docs.get(1) {
            Some(d) => show::peer_group(d, GROUP).map_err(FrrError::Failed)?,
            None => {
                return Err(FrrError::Failed(
                    "vtysh gave no answer on the sessions".into(),
                ))
            }
        };
        Some(members.unwrap_or_default().into_iter().collect())
    } else {
        None
    };
    Ok(Seen { path, sessions })
}

/// Route servers with an Established session that have the announcement.
fn reached(seen: &Seen) -> Vec<String> {
    let (Some(path), Some(sessions)) = (&seen.path, &seen.sessions) else {
        return Vec::new();
    };
    sessions
        .iter()
        .filter(|(peer, state)| state == "Established" && path.advertised_to.contains(peer))
        .map(|(peer, _)| peer.clone())
        .collect()
}

fn session_words(seen: &Seen) -> String {
    match &seen.sessions {
        Some(s) if !s.is_empty() => s
            .iter()
            .map(|(p, st)| format!("{p} {st}"))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "no route server configured".into(),
    }
}

fn has(path: &LocalPath, c: Community) -> bool {
    let c = c.to_string();
    path.communities.contains(&c)
}

/// Set (Some) or delete (None) this instance's promotion score, when Pacemaker runs it as a
/// clone (by hand or under ocf-tester there is no cluster to tell).
fn promotion_score(ctx: &Context, score: Option<&str>) -> OcfResult<()> {
    if ctx.env.clone.is_none() || ctx.env.instance.is_none() {
        return Ok(());
    }
    let mut cmd = Command::new("crm_attribute");
    cmd.arg("--promotion");
    match score {
        Some(v) => cmd.args(["-v", v]),
        None => cmd.arg("-D"),
    };
    let r = child::run(&mut cmd, &ctx.deadline.sooner(Duration::from_secs(10)));
    match r {
        Ok((status, _)) if status.success() => Ok(()),
        Ok((_, out)) | Err(out) => {
            let e = format!(
                "crm_attribute --promotion could not {} the promotion score: {}",
                if score.is_some() { "set" } else { "delete" },
                cloudha_common::params::shown(out.trim())
            );
            if score.is_some() {
                Err(OcfError::generic(e))
            } else {
                ctx.log.warn(e);
                Ok(())
            }
        }
    }
}

/// Announce with `community` and wait until bgpd's own path carries it and is usable.
fn announce(ctx: &Context, s: &Settings, community: Community, what: &str) -> OcfResult<()> {
    let vtysh = Vtysh { frr: &s.frr };
    vtysh
        .run(&frr::announce(s, community), &ctx.deadline)
        .map_err(|e| e.into_ocf(what))?;
    let d = ctx.deadline.sooner(USABLE_WITHIN);
    let r = d.retry(&POLL, |_| match look(&s.frr, s, false, ctx) {
        Ok(Seen {
            path: Some(p), ..
        }) if p.valid && has(&p, community) => Attempt::Done(()),
        Ok(Seen { path: Some(p), .. }) if !p.valid => Attempt::Again(OcfError::generic(format!(
            "{what}: {} is not in this node's routing table, so bgpd cannot announce it: is the address on lo (the anchorip clone)?",
            s.prefix
        ))),
        Ok(_) => Attempt::Again(OcfError::generic(format!(
            "{what}: bgpd does not show {} with community {community} after configuring it",
            s.prefix
        ))),
        Err(e) => Attempt::Fail(e.into_ocf(what)),
    });
    r.map_err(|e| e.into_inner())
}

/// Remove the network line of the record's prefix and, when no announcement of ours is left,
/// the peer group and route-maps. bgpd not running (or FRR gone) means nothing is announced.
fn withdraw(ctx: &Context, frr: &Frr, rec: &Started) -> OcfResult<String> {
    let vtysh = Vtysh { frr };
    let config = match vtysh.once(&["show running-config".into()], &ctx.deadline) {
        Ok(c) => c,
        Err(FrrError::Down(e) | FrrError::NotInstalled(e)) => {
            return Ok(format!("nothing is announced: {e}"))
        }
        Err(e) => return Err(e.into_ocf("stop")),
    };
    let mut owned = show::owned(&config, MAP_PREFIX, GROUP);
    let prefix = rec.prefix.to_string();
    if owned.networks.contains(&prefix) {
        vtysh
            .run(&frr::withdraw(rec.asn, &rec.prefix), &ctx.deadline)
            .map_err(|e| e.into_ocf("stop"))?;
        owned.networks.retain(|n| *n != prefix);
    }
    if owned.networks.is_empty() && (owned.peer_group || !owned.route_maps.is_empty()) {
        vtysh
            .run(
                &frr::remove_rest(owned.router_asn, owned.peer_group, &owned.route_maps),
                &ctx.deadline,
            )
            .map_err(|e| e.into_ocf("stop"))?;
    }
    Ok(format!("{prefix} withdrawn"))
}

impl Agent for BgpIp {
    fn spec(&self) -> &'static AgentSpec {
        &SPEC
    }

    fn start(&self, ctx: &Context) -> OcfResult<Status> {
        let s = Settings::from(ctx)?;
        let state = state(ctx);
        let lock = state.lock(&ctx.deadline)?;
        let rec = Started {
            prefix: s.prefix,
            asn: s.asn,
        };
        // Recorded first, so that a stop after a failed start withdraws whatever got in.
        state.save(&lock, &rec)?;
        if let Err(e) = announce(ctx, &s, s.secondary, "start") {
            // Nothing left half-done: withdraw what went in, and forget it.
            if withdraw(ctx, &s.frr, &rec).is_ok() {
                let _ = state.clear::<Started>(&lock);
            }
            return Err(e);
        }
        promotion_score(ctx, Some(SCORE_UNPROMOTED))?;
        Ok(Status::ok(format!(
            "{} announced with the secondary community {}",
            s.prefix, s.secondary
        )))
    }

    fn stop(&self, ctx: &Context) -> OcfResult<Status> {
        let state = state(ctx);
        let Some((lock, rec)) = state.hold::<Started>(&ctx.deadline, &ctx.log)? else {
            return Ok(Status::ok("not started here: nothing to stop"));
        };
        let frr = Frr::from(ctx)?;
        let words = withdraw(ctx, &frr, &rec)?;
        promotion_score(ctx, None)?;
        state.clear::<Started>(&lock)?;
        Ok(Status::ok(words))
    }

    fn promote(&self, ctx: &Context) -> OcfResult<Status> {
        let s = Settings::from(ctx)?;
        if state(ctx).load::<Started>(&ctx.log)?.is_none() {
            return Err(OcfError::generic("promote: not started here"));
        }
        announce(ctx, &s, s.primary, "promote")?;
        // Promoted means the route servers have it: wait for a session that took it.
        let r = ctx
            .deadline
            .retry(&POLL, |_| match look(&s.frr, &s, true, ctx) {
                Ok(seen) if !reached(&seen).is_empty() => Attempt::Done(reached(&seen)),
                Ok(seen) => Attempt::Again(OcfError::generic(format!(
                    "promote: no route server took the announcement of {} ({})",
                    s.prefix,
                    session_words(&seen)
                ))),
                Err(e) => Attempt::Fail(e.into_ocf("promote")),
            });
        let peers = match r {
            Ok(p) => p,
            Err(e) => {
                // Back to the secondary community: a failed promote leaves no primary behind.
                let _ = Vtysh { frr: &s.frr }.run(&frr::announce(&s, s.secondary), &ctx.deadline);
                return Err(e.into_inner());
            }
        };
        promotion_score(ctx, Some(SCORE_PROMOTED))?;
        Ok(Status::ok(format!(
            "{} announced with the primary community {} to {}",
            s.prefix,
            s.primary,
            peers.join(", ")
        )))
    }

    fn demote(&self, ctx: &Context) -> OcfResult<Status> {
        let s = Settings::from(ctx)?;
        if state(ctx).load::<Started>(&ctx.log)?.is_none() {
            return Ok(Status::ok("not started here: nothing to demote"));
        }
        // No bgpd (or no FRR), nothing announced: nothing is primary here any more, and the
        // stop that follows has nothing to do either.
        if let Err(FrrError::Down(e) | FrrError::NotInstalled(e)) = look(&s.frr, &s, false, ctx) {
            return Ok(Status::ok(format!("nothing is announced: {e}")));
        }
        announce(ctx, &s, s.secondary, "demote")?;
        promotion_score(ctx, Some(SCORE_UNPROMOTED))?;
        Ok(Status::ok(format!(
            "{} announced with the secondary community {}",
            s.prefix, s.secondary
        )))
    }

    fn monitor(&self, ctx: &Context) -> OcfResult<Status> {
        let Some(rec) = state(ctx).load::<Started>(&ctx.log)? else {
            return Ok(Status::not_running("not started here"));
        };
        let mut s = Settings::from(ctx)?;
        // The record says what was announced, whatever the parameters say now.
        s.prefix = rec.prefix;
        let deep = ctx.check_level() >= 10;
        let seen = look(&s.frr, &s, deep, ctx).map_err(|e| e.into_ocf("monitor"))?;
        let Some(path) = &seen.path else {
            return Err(OcfError::generic(format!(
                "{} is not announced: bgpd holds no network line for it (bgpd restarted, or the line removed by hand)",
                s.prefix
            )));
        };
        if !path.valid {
            return Err(OcfError::generic(format!(
                "{} is not in this node's routing table, so bgpd does not announce it: is the address on lo?",
                s.prefix
            )));
        }
        let promoted = if has(path, s.primary) {
            true
        } else if has(path, s.secondary) {
            false
        } else {
            return Err(OcfError::generic(format!(
                "{} is announced with communities [{}], neither primary_community {} nor secondary_community {}",
                s.prefix,
                path.communities.join(" "),
                s.primary,
                s.secondary
            )));
        };
        let role = if promoted { "primary" } else { "secondary" };
        if deep {
            let peers = reached(&seen);
            if peers.is_empty() {
                let words = format!(
                    "{} with the {role} community reaches no route server ({})",
                    s.prefix,
                    session_words(&seen)
                );
                return if promoted {
                    Err(OcfError::generic(words))
                } else {
                    Ok(Status::degraded(words))
                };
            }
        }
        let words = format!("{} announced with the {role} community", s.prefix);
        Ok(if promoted {
            Status::promoted(words)
        } else {
            Status::ok(words)
        })
    }

    fn validate(&self, ctx: &Context) -> OcfResult<Status> {
        let s = Settings::from(ctx)?;
        if ctx.check_level() >= 10 && !s.frr.vtysh.exists() {
            return Err(OcfError::installed(format!(
                "vtysh '{}' is not installed (FRR's package frr)",
                s.frr.vtysh.display()
            )));
        }
        Ok(Status::ok("parameters are valid"))
    }
}
