//! What start, stop, monitor and validate-all do, for any provider: retries and waits bounded
//! by the action's deadline, and the mapping of cloud answers onto OCF exit codes.
//!
//! The rules (also in the meta-data's longdesc and docs/floatip.md):
//! - start makes this server the holder (one assign action, none when it already holds the
//!   address), waits for the action to complete, confirms the holder with the API, and records
//!   that it started.
//! - stop only removes that record. It does not unassign: the next start elsewhere moves the
//!   address in one action, and a stop never needs the API, the token or any parameter.
//! - monitor (probe or recurring) answers 7 without any request when there is no record from
//!   this boot. With a record, the metadata service decides, with no API request: 0 when it
//!   says this server holds exactly the configured address. When it says otherwise within
//!   `METADATA_LAG_GRACE` of the start, the metadata service may still lag the assignment that
//!   start confirmed: one API read decides. After that window, "not here" is 7. A metadata
//!   service that cannot be read or answers garbage is retried until the deadline, then 1.

use crate::config::Config;
use crate::provider::{ActionId, ActionState, Fault, IpHolding, Provider, ServerId};
use crate::record::{self, Started};
use crate::token;
use cloudha_common::state::InstanceState;
use cloudha_common::{
    Agent, AgentSpec, Backoff, Context, Deadline, OcfError, OcfResult, Secret, Status,
};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long after a start the metadata service's "not here" is checked with the API.
pub const METADATA_LAG_GRACE: Duration = Duration::from_secs(60);
/// While an assign action runs, the metadata service is asked this often (free, local, no
/// rate limit): it says "done" first. The API confirms.
const METADATA_POLL: Duration = Duration::from_millis(10);
/// API polls of a running action: quick at first, then backing off.
const API_POLL_FIRST: Duration = Duration::from_millis(300);
const API_POLL_MAX: Duration = Duration::from_secs(2);

/// Makes a provider for a configuration: the real clouds, or a script in tests.
pub trait Connect {
    fn connect(&self, config: &Config, token: Option<Secret>) -> Box<dyn Provider>;
}

/// The clouds named by the `provider` parameter.
pub struct Cloud;

impl Connect for Cloud {
    fn connect(&self, config: &Config, token: Option<Secret>) -> Box<dyn Provider> {
        config.provider.connect(&config.endpoints, token)
    }
}

/// Mask the token given as a parameter before anything is logged, whatever the action.
fn mask_token(ctx: &Context) {
    if let Some(t) = ctx.params.secret("api_token") {
        ctx.log.mask(&t);
    }
}

/// This instance's state: named by the cluster's instance name, else by the address.
fn instance_state(ctx: &Context) -> InstanceState {
    let ip = ctx.params.get("ip").unwrap_or("unset");
    ctx.state(&format!("ip-{ip}"))
}

fn read_record(ctx: &Context, state: &InstanceState) -> OcfResult<Option<Started>> {
    state.read_parsed(record::SUFFIX, &ctx.log, Started::parse)
}

/// A cloud fault as an OCF error. Only a rejected token and an unknown address are 6.
fn fail(ctx: &Context, fault: Fault) -> OcfError {
    match fault {
        Fault::TokenRejected(d) => {
            let param = if ctx.params.is_set("api_token") {
                ctx.params.given_as("api_token")
            } else {
                "api_token_file"
            };
            OcfError::configured(format!(
                "parameter '{param}': the API rejected the token {d}"
            ))
        }
        Fault::IpUnknown(d) => {
            OcfError::configured(format!("parameter '{}': {d}", ctx.params.given_as("ip")))
        }
        Fault::Transient(d) | Fault::Busy(d) | Fault::Refused(d) => OcfError::generic(d),
        Fault::RateLimited { detail, .. } => OcfError::generic(detail),
    }
}

/// Call `op` until it answers or fails for good; transient faults are retried with `backoff`
/// (a rate limit's own wait when longer) while the deadline allows. The last fault otherwise.
fn retry<T>(
    ctx: &Context,
    what: &str,
    mut backoff: Backoff,
    mut op: impl FnMut(&Deadline) -> Result<T, Fault>,
) -> Result<T, Fault> {
    let mut tries = 0u32;
    loop {
        tries += 1;
        match op(&ctx.deadline) {
            Ok(v) => return Ok(v),
            Err(f) if f.is_transient() => {
                let mut wait = backoff.next_delay();
                if let Fault::RateLimited { wait: Some(w), .. } = &f {
                    wait = wait.max(*w);
                }
                if wait >= ctx.deadline.remaining() {
                    let why =
                        format!("{what}: gave up after {tries} tries before the timeout: {f}");
                    return Err(match f {
                        Fault::RateLimited { wait, .. } => Fault::RateLimited { wait, detail: why },
                        _ => Fault::Transient(why),
                    });
                }
                ctx.log.warn(format_args!(
                    "{what}: {f}; retrying in {} ms",
                    wait.as_millis()
                ));
                ctx.deadline.sleep(wait);
            }
            Err(f) => return Err(f),
        }
    }
}

fn api_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(200), Duration::from_secs(2))
}

fn metadata_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(50), Duration::from_millis(500))
}

fn holder_words(h: &Option<ServerId>) -> String {
    match h {
        Some(s) => format!("droplet {s}"),
        None => "no droplet".into(),
    }
}

pub struct Floatip<C: Connect> {
    pub connect: C,
}

impl<C: Connect> Agent for Floatip<C> {
    fn spec(&self) -> &'static AgentSpec {
        &crate::SPEC
    }

    fn start(&self, ctx: &Context) -> OcfResult<Status> {
        mask_token(ctx);
        let cfg = Config::from_params(ctx)?;
        let token = token::token(ctx)?;
        let state = instance_state(ctx);
        let _lock = state.lock(&ctx.deadline)?;
        let p = self.connect.connect(&cfg, Some(token));
        let ip = cfg.ip;

        let me = retry(ctx, "reading this droplet's id", metadata_backoff(), |d| {
            p.server_id(d)
        })
        .map_err(|f| fail(ctx, f))?;
        let read = |what: &str| {
            retry(ctx, what, api_backoff(), |d| p.holding(ip, d)).map_err(|f| fail(ctx, f))
        };
        let first = read("reading the IP")?;
        if first.holder.as_ref() == Some(&me) && !first.locked {
            state.write(record::SUFFIX, &Started::now(ip, me.clone()).to_text())?;
            return Ok(Status::ok(format!(
                "{ip} already points at this droplet ({me}): no action needed"
            )));
        }
        ctx.log.info(format_args!(
            "{ip} points at {}; assigning it to this droplet ({me})",
            holder_words(&first.holder)
        ));

        let mut seen: IpHolding = first.clone();
        let mut wait = Backoff::new(Duration::from_millis(250), Duration::from_secs(2));
        let mut last_busy: Option<String> = None;
        loop {
            if seen.locked {
                // Another action is pending on the address: let it end, then look again.
                if !ctx.deadline.sleep(wait.next_delay()) {
                    let last = last_busy
                        .map(|b| format!(" (last refusal: {b})"))
                        .unwrap_or_default();
                    return Err(OcfError::generic(format!(
                        "{ip} stayed busy with another action until the timeout{last}"
                    )));
                }
                seen = read("reading the IP")?;
                continue;
            }
            if seen.holder.as_ref() == Some(&me) {
                break;
            }
            if seen.holder.is_some() && seen.holder != first.holder {
                // Someone else moved it while this start waited: two starts at once (never
                // Pacemaker's doing). Moving it back would make both answers wrong.
                return Err(OcfError::generic(format!(
                    "{ip} was moved to {} while this start waited: not taking it back",
                    holder_words(&seen.holder)
                )));
            }
            match retry(ctx, "assigning the IP", api_backoff(), |d| {
                p.assign(ip, &me, d)
            }) {
                Ok((action, state)) => {
                    self.wait_for(ctx, p.as_ref(), ip, &action, state)?;
                    break;
                }
                Err(Fault::Busy(d)) => {
                    ctx.log.info(format_args!("{d}; waiting for it to end"));
                    last_busy = Some(d);
                    seen.locked = true;
                }
                Err(f) => return Err(fail(ctx, f)),
            }
        }

        let now = read("confirming the holder")?;
        if now.holder.as_ref() != Some(&me) {
            return Err(OcfError::generic(format!(
                "after the assignment the API says {ip} points at {}, not this droplet ({me})",
                holder_words(&now.holder)
            )));
        }
        state.write(record::SUFFIX, &Started::now(ip, me.clone()).to_text())?;
        Ok(Status::ok(format!(
            "{ip} now points at this droplet ({me}), after {} ms",
            ctx.deadline.elapsed().as_millis()
        )))
    }

    fn stop(&self, ctx: &Context) -> OcfResult<Status> {
        mask_token(ctx);
        let state = instance_state(ctx);
        // Nothing started here: nothing to stop, whatever the parameters say (or lack).
        if state.read(record::SUFFIX)?.is_none() {
            return Ok(Status::ok("not started here: nothing to stop"));
        }
        let _lock = state.lock(&ctx.deadline)?;
        state.remove(record::SUFFIX)?;
        Ok(Status::ok(
            "stopped: the address is no longer claimed here (it moves with the next start elsewhere)",
        ))
    }

    fn monitor(&self, ctx: &Context) -> OcfResult<Status> {
        mask_token(ctx);
        let state = instance_state(ctx);
        let Some(started) = read_record(ctx, &state)? else {
            return Ok(Status::not_running("not started here"));
        };
        let cfg = Config::from_params(ctx)?;
        let ip = cfg.ip;
        if started.ip != ip {
            return Ok(Status::not_running(format!(
                "started here for {}, not {ip}",
                started.ip
            )));
        }
        let p = self.connect.connect(&cfg, None);
        let holds = retry(
            ctx,
            "reading the metadata service",
            metadata_backoff(),
            |d| p.holds_locally(ip, d),
        )
        .map_err(|f| OcfError::generic(format!("cannot tell whether {ip} points here: {f}")))?;
        if holds {
            return Ok(Status::ok(format!("{ip} points at this droplet")));
        }
        if started.age() >= METADATA_LAG_GRACE {
            return Ok(Status::not_running(format!(
                "the metadata service says {ip} no longer points at this droplet"
            )));
        }
        // Just started: the metadata service may lag the assignment the API confirmed.
        let token = token::token(ctx)?;
        let p = self.connect.connect(&cfg, Some(token));
        let h = retry(ctx, "reading the IP", api_backoff(), |d| p.holding(ip, d))
            .map_err(|f| fail(ctx, f))?;
        if h.holder.as_ref() == Some(&started.server) {
            ctx.log.info(format_args!(
                "the metadata service does not show {ip} yet; the API says it points here"
            ));
            Ok(Status::ok(format!(
                "{ip} points at this droplet (per the API; the metadata service lags)"
            )))
        } else {
            Ok(Status::not_running(format!(
                "{ip} points at {}, not this droplet",
                holder_words(&h.holder)
            )))
        }
    }

    fn validate(&self, ctx: &Context) -> OcfResult<Status> {
        mask_token(ctx);
        let cfg = Config::from_params(ctx)?;
        let token = token::token(ctx)?;
        if ctx.check_level() < 10 {
            return Ok(Status::ok("parameters are valid"));
        }
        let p = self.connect.connect(&cfg, Some(token));
        let h = retry(ctx, "reading the IP", api_backoff(), |d| {
            p.holding(cfg.ip, d)
        })
        .map_err(|f| fail(ctx, f))?;
        Ok(Status::ok(format!(
            "the token works and {} is in the account, pointing at {}",
            cfg.ip,
            holder_words(&h.holder)
        )))
    }
}

impl<C: Connect> Floatip<C> {
    /// Wait until `action` is completed: the metadata service is watched often (it is free), the
    /// API polled quickly at first, then backing off, and asked at once when the metadata
    /// service says the address arrived. Errored or still running at the deadline: 1.
    fn wait_for(
        &self,
        ctx: &Context,
        p: &dyn Provider,
        ip: IpAddr,
        action: &ActionId,
        mut state: ActionState,
    ) -> OcfResult<()> {
        let started = Instant::now();
        let mut api_poll = Backoff::new(API_POLL_FIRST, API_POLL_MAX);
        let mut next_api = Instant::now() + api_poll.next_delay();
        let mut watch_metadata = true;
        let mut last_fault: Option<Fault> = None;
        loop {
            match state {
                ActionState::Completed => {
                    ctx.log.info(format_args!(
                        "action {action} completed after {} ms",
                        started.elapsed().as_millis()
                    ));
                    return Ok(());
                }
                ActionState::Errored => {
                    return Err(OcfError::generic(format!(
                        "the API reports that action {action} (assign {ip}) errored"
                    )))
                }
                ActionState::InProgress => {}
            }
            if ctx.deadline.expired() {
                let last = last_fault
                    .map(|f| format!(" (last error: {f})"))
                    .unwrap_or_default();
                return Err(OcfError::generic(format!(
                    "action {action} (assign {ip}) did not complete before the timeout{last}"
                )));
            }
            let due = Instant::now() >= next_api;
            let arrived = !due
                && watch_metadata
                && p.holds_locally(ip, &ctx.deadline.sooner(Duration::from_millis(250)))
                    .unwrap_or(false);
            if due || arrived {
                let mut not_before = None;
                match p.action_state(ip, action, &ctx.deadline) {
                    Ok(s) => state = s,
                    Err(f) if f.is_transient() => {
                        ctx.log.debug(format_args!("polling action {action}: {f}"));
                        if let Fault::RateLimited { wait: Some(w), .. } = &f {
                            not_before = Some(Instant::now() + *w);
                        }
                        last_fault = Some(f);
                    }
                    Err(f) => return Err(fail(ctx, f)),
                }
                if state != ActionState::InProgress {
                    continue;
                }
                if due {
                    next_api = Instant::now() + api_poll.next_delay();
                    watch_metadata = true;
                } else {
                    // The metadata service ran ahead of the API: wait for the next API poll.
                    watch_metadata = false;
                }
                if let Some(t) = not_before {
                    next_api = next_api.max(t);
                }
            }
            let until_api = next_api.saturating_duration_since(Instant::now());
            let pause = if watch_metadata {
                until_api.min(METADATA_POLL)
            } else {
                until_api
            };
            ctx.deadline.sleep(pause.max(Duration::from_millis(1)));
        }
    }
}

#[cfg(test)]
mod tests {
    //! The start decisions against a scripted cloud: what happens on each answer, in order.
    use super::*;
    use crate::provider::{ActionId, IpHolding};
    use cloudha_common::{Action, Logger, OcfCode, OcfEnv};
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::rc::Rc;

    const ME: &str = "101";

    #[derive(Default)]
    struct World {
        /// Answers to `holding`, in order; the last one repeats.
        holdings: VecDeque<Result<IpHolding, Fault>>,
        assigns: VecDeque<Result<(ActionId, ActionState), Fault>>,
        calls: Vec<&'static str>,
    }

    #[derive(Clone)]
    struct Scripted(Rc<RefCell<World>>);

    impl Provider for Scripted {
        fn server_id(&self, _: &Deadline) -> Result<ServerId, Fault> {
            Ok(ServerId(ME.into()))
        }
        fn holds_locally(&self, _: IpAddr, _: &Deadline) -> Result<bool, Fault> {
            Ok(false)
        }
        fn holding(&self, _: IpAddr, _: &Deadline) -> Result<IpHolding, Fault> {
            let mut w = self.0.borrow_mut();
            w.calls.push("holding");
            if w.holdings.len() > 1 {
                w.holdings.pop_front().unwrap()
            } else {
                w.holdings.front().cloned().unwrap()
            }
        }
        fn assign(
            &self,
            _: IpAddr,
            _: &ServerId,
            _: &Deadline,
        ) -> Result<(ActionId, ActionState), Fault> {
            let mut w = self.0.borrow_mut();
            w.calls.push("assign");
            w.assigns.pop_front().unwrap()
        }
        fn action_state(
            &self,
            _: IpAddr,
            _: &ActionId,
            _: &Deadline,
        ) -> Result<ActionState, Fault> {
            self.0.borrow_mut().calls.push("action");
            Ok(ActionState::Completed)
        }
    }

    impl Connect for Scripted {
        fn connect(&self, _: &Config, _: Option<Secret>) -> Box<dyn Provider> {
            Box::new(self.clone())
        }
    }

    fn held(by: Option<&str>, locked: bool) -> Result<IpHolding, Fault> {
        Ok(IpHolding {
            holder: by.map(|s| ServerId(s.into())),
            locked,
        })
    }

    fn start(world: World, extra: &[(&str, &str)]) -> (OcfResult<Status>, Vec<&'static str>) {
        let dir = tempfile::tempdir().unwrap();
        let mut vars = vec![
            ("OCF_RESKEY_ip".to_string(), "203.0.113.7".to_string()),
            ("OCF_RESKEY_api_token".into(), "dop_v1_unit".into()),
            ("OCF_RESKEY_CRM_meta_timeout".into(), "3000".into()),
            ("HA_RSCTMP".into(), dir.path().display().to_string()),
        ];
        for (k, v) in extra {
            vars.retain(|(ek, _)| ek != k);
            vars.push((k.to_string(), v.to_string()));
        }
        let ctx = Context::new(
            &crate::SPEC,
            Action::Start,
            OcfEnv::from_vars(vars),
            Logger::stderr("t"),
        );
        let script = Scripted(Rc::new(RefCell::new(world)));
        let agent = Floatip {
            connect: script.clone(),
        };
        let r = agent.start(&ctx);
        let calls = script.0.borrow().calls.clone();
        (r, calls)
    }

    #[test]
    fn held_but_locked_waits_and_needs_no_assign() {
        let (r, calls) = start(
            World {
                holdings: [
                    held(Some(ME), true),
                    held(Some(ME), true),
                    held(Some(ME), false),
                ]
                .into(),
                ..World::default()
            },
            &[],
        );
        assert_eq!(r.unwrap().code, OcfCode::Success);
        assert!(!calls.contains(&"assign"), "{calls:?}");
    }

    #[test]
    fn a_pending_move_to_a_third_droplet_is_not_taken_back() {
        let (r, calls) = start(
            World {
                holdings: [held(Some("7"), true), held(Some("300"), false)].into(),
                ..World::default()
            },
            &[],
        );
        let e = r.unwrap_err();
        assert_eq!(e.code, OcfCode::ErrGeneric);
        assert!(e.reason.contains("moved to droplet 300"), "{}", e.reason);
        assert!(!calls.contains(&"assign"), "{calls:?}");
    }

    #[test]
    fn busy_assign_waits_and_succeeds_when_our_own_action_lands() {
        // The first assign's answer was lost; the retry meets its lock (422).
        let (r, calls) = start(
            World {
                holdings: [
                    held(Some("7"), false),
                    held(Some("7"), true),
                    held(Some(ME), false),
                ]
                .into(),
                assigns: [Err(Fault::Busy("422".into()))].into(),
                ..World::default()
            },
            &[],
        );
        assert_eq!(r.unwrap().code, OcfCode::Success);
        assert_eq!(calls.iter().filter(|c| **c == "assign").count(), 1);
    }

    #[test]
    fn assign_completes_then_holder_is_confirmed() {
        let (r, calls) = start(
            World {
                holdings: [held(None, false), held(Some(ME), false)].into(),
                assigns: [Ok((ActionId("9".into()), ActionState::InProgress))].into(),
                ..World::default()
            },
            &[],
        );
        assert_eq!(r.unwrap().code, OcfCode::Success);
        assert_eq!(calls, vec!["holding", "assign", "action", "holding"]);
    }

    #[test]
    fn a_holder_other_than_us_after_completion_is_1() {
        let (r, _) = start(
            World {
                holdings: [held(None, false), held(Some("300"), false)].into(),
                assigns: [Ok((ActionId("9".into()), ActionState::Completed))].into(),
                ..World::default()
            },
            &[],
        );
        assert_eq!(r.unwrap_err().code, OcfCode::ErrGeneric);
    }

    #[test]
    fn configuration_faults_name_the_parameter_used() {
        let (r, _) = start(
            World {
                holdings: [Err(Fault::TokenRejected("401".into()))].into(),
                ..World::default()
            },
            &[
                ("OCF_RESKEY_api_token", ""),
                ("OCF_RESKEY_do_token", "dop_v1_unit"),
            ],
        );
        let e = r.unwrap_err();
        assert_eq!(e.code, OcfCode::ErrConfigured);
        assert_eq!(
            e.reason,
            "parameter 'do_token': the API rejected the token 401"
        );
        let (r, _) = start(
            World {
                holdings: [Err(Fault::IpUnknown("404".into()))].into(),
                ..World::default()
            },
            &[
                ("OCF_RESKEY_ip", ""),
                ("OCF_RESKEY_floating_ip", "203.0.113.7"),
            ],
        );
        let e = r.unwrap_err();
        assert_eq!(e.code, OcfCode::ErrConfigured);
        assert_eq!(e.reason, "parameter 'floating_ip': 404");
    }

    #[test]
    fn a_rate_limit_past_the_deadline_fails_at_once() {
        let t = Instant::now();
        let (r, _) = start(
            World {
                holdings: [Err(Fault::RateLimited {
                    wait: Some(Duration::from_secs(60)),
                    detail: "429".into(),
                })]
                .into(),
                ..World::default()
            },
            &[],
        );
        assert_eq!(r.unwrap_err().code, OcfCode::ErrGeneric);
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    }
}
