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
//!   this boot. With a record, on a cloud whose metadata service says who holds the IP
//!   (DigitalOcean), the metadata service decides, with no API request: 0 when it says this
//!   server holds exactly the configured address. When it says otherwise within
//!   `METADATA_LAG_GRACE` of the start, the metadata service may still lag the assignment that
//!   start confirmed: one API read decides. After that window, "not here" is 7. A metadata
//!   service that cannot be read or answers garbage is retried until the deadline, then 1.
//!   On a cloud whose metadata service cannot tell (Hetzner), one API read of the one IP by the
//!   id kept in the record decides (never a listing); a failed read is retried within the
//!   deadline, then 1: never 7, since an API hiccup must not move the IP.

use crate::provider::{ActionId, ActionState, Fault, IpHolding, IpId, Provider, ServerId};
use crate::record::Started;
use crate::settings::Settings;
use crate::token;
use crate::{API_TOKEN, API_TOKEN_FILE, IP};
use cloudha_common::state::InstanceState;
use cloudha_common::{
    Agent, AgentSpec, Attempt, Backoff, Context, Deadline, OcfCode, OcfError, OcfResult, Retry,
    RetryError, Secret, Status,
};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long after a start the metadata service's "not here" is checked with the API.
pub const METADATA_LAG_GRACE: Duration = Duration::from_secs(60);
/// Retries of a failed API call (5xx, resets, timeouts; a rate limit waits as long as it asks).
const API_RETRY: Retry = Retry::backoff(Duration::from_millis(200), Duration::from_secs(2));
/// Retries of a failed metadata read: the service is local and free.
const METADATA_RETRY: Retry = Retry::backoff(Duration::from_millis(50), Duration::from_millis(500));
/// Looks at an address while another action is pending on it (its lock, a 422, Vultr's refused
/// attach while a detach is in flight): soon at first (the end of a change is what a failover
/// waits for), then every half second: at most 2 looks a second, each a read and a try.
const PENDING_RETRY: Retry = Retry::backoff(Duration::from_millis(100), Duration::from_millis(500));
/// While an assign action runs, the metadata service is asked this often (free, local, no
/// rate limit): it says "done" first. The API confirms.
const METADATA_POLL: Duration = Duration::from_millis(10);
/// The loop that follows a running action: the wait between two looks is the hint each look
/// gives (`METADATA_POLL`, or the time until the next API poll), never less than this.
const ACTION_WATCH: Retry = Retry::every(Duration::from_millis(1));
/// API polls of a running action where the metadata service watches it (DigitalOcean): the API
/// only confirms, so quick at first, then backing off.
const API_POLL_FIRST: Duration = Duration::from_millis(300);
const API_POLL_MAX: Duration = Duration::from_secs(2);
/// Where only the API can tell (Hetzner, Vultr, Exoscale), it is asked this often for the first
/// `API_POLL_STEADY_FOR` (the usual length of an action), then as above: a start learns of the
/// end within this, for about 20 requests a second during the action (within every cloud's
/// limit: Vultr's 30 a second per address is the lowest; BENCHMARKS.md has the counts).
const API_POLL_STEADY: Duration = Duration::from_millis(50);
const API_POLL_STEADY_FOR: Duration = Duration::from_secs(3);

/// Makes a provider for the settings: the real clouds, or a script in tests.
pub trait Connect {
    fn connect(&self, settings: &Settings, token: Option<Secret>) -> Box<dyn Provider>;
}

/// The clouds named by the `provider` parameter.
pub struct Cloud;

impl Connect for Cloud {
    fn connect(&self, settings: &Settings, token: Option<Secret>) -> Box<dyn Provider> {
        settings.provider.connect(&settings.endpoints, token)
    }
}

/// This instance's state: named by the cluster's instance name, else by the address.
fn instance_state(ctx: &Context) -> InstanceState {
    let ip = ctx.params.text(&IP).unwrap_or("unset");
    ctx.state(&format!("ip-{ip}"))
}

/// A cloud fault as an OCF error. Only a rejected token and an unknown address are 6.
fn fail(ctx: &Context, fault: Fault) -> OcfError {
    match fault {
        Fault::TokenRejected(d) => {
            let detail = format!("the API rejected the token {d}");
            if ctx.params.has(&API_TOKEN) {
                ctx.params.fault(OcfCode::ErrConfigured, &API_TOKEN, detail)
            } else {
                ctx.params
                    .fault(OcfCode::ErrConfigured, &API_TOKEN_FILE, detail)
            }
        }
        Fault::IpUnknown(d) => ctx.params.fault(OcfCode::ErrConfigured, &IP, d),
        Fault::Transient(d) | Fault::Busy(d) | Fault::Refused(d) => OcfError::generic(d),
        Fault::RateLimited { detail, .. } => OcfError::generic(detail),
    }
}

/// One call's answer as one try of a retry: transient faults again (a rate limit after its own
/// wait when it names one), every other fault for good.
fn attempt<T>(answer: Result<T, Fault>) -> Attempt<T, Fault> {
    match answer {
        Ok(v) => Attempt::Done(v),
        Err(f @ Fault::RateLimited { wait: Some(w), .. }) => Attempt::AgainAfter(f, w),
        Err(f) if f.is_transient() => Attempt::Again(f),
        Err(f) => Attempt::Fail(f),
    }
}

/// Call `op` until it answers or fails for good, retrying transient faults as `policy` says
/// while the deadline allows (each retry logged). The last fault otherwise, saying so.
fn retry<T>(
    ctx: &Context,
    policy: &Retry,
    what: &str,
    op: impl FnMut(&Deadline) -> Result<T, Fault>,
) -> Result<T, Fault> {
    retry_within(ctx, &ctx.deadline, policy, what, op)
}

/// `retry`, within `deadline` (a part of the action's).
fn retry_within<T>(
    ctx: &Context,
    deadline: &Deadline,
    policy: &Retry,
    what: &str,
    mut op: impl FnMut(&Deadline) -> Result<T, Fault>,
) -> Result<T, Fault> {
    deadline
        .retry_logged(policy, &ctx.log, what, |d| attempt(op(d)))
        .map_err(|e| match e {
            RetryError::Failed(f) => f,
            RetryError::GaveUp { last, tries } => {
                let why = format!("{what}: gave up after {tries} tries before the timeout: {last}");
                match last {
                    Fault::RateLimited { wait, .. } => Fault::RateLimited { wait, detail: why },
                    _ => Fault::Transient(why),
                }
            }
        })
}

/// "droplet 42", "no server": in the cloud's own words.
fn holder_words(p: &dyn Provider, h: &Option<ServerId>) -> String {
    match h {
        Some(s) => format!("{} {s}", p.server_word()),
        None => format!("no {}", p.server_word()),
    }
}

/// Every holder: "instance a", "instances a and b", "no instance".
fn holders_words(p: &dyn Provider, h: &IpHolding) -> String {
    let all = h.holders();
    match all.as_slice() {
        [] | [_] => holder_words(p, &all.first().cloned()),
        [init @ .., last] => format!(
            "{}s {} and {last}",
            p.server_word(),
            init.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Of the time left when the other holders are detached, the part kept to detach this
/// instance again should that fail: two holders must not be left behind.
const UNDO_RESERVE: f64 = 0.3;

pub struct Floatip<C: Connect> {
    pub connect: C,
}

impl<C: Connect> Agent for Floatip<C> {
    fn spec(&self) -> &'static AgentSpec {
        &crate::SPEC
    }

    fn start(&self, ctx: &Context) -> OcfResult<Status> {
        token::mask_parameter(ctx, &crate::TOKEN);
        let s = Settings::from(ctx)?;
        let token = token::token(ctx, &crate::TOKEN)?;
        let state = instance_state(ctx);
        let lock = state.lock(&ctx.deadline)?;
        let p = self.connect.connect(&s, Some(token));
        let ip = s.ip;
        let server = p.server_word();

        let me = retry(
            ctx,
            &METADATA_RETRY,
            &format!("reading this {server}'s id"),
            |d| p.server_id(d),
        )
        .map_err(|f| fail(ctx, f))?;
        // The first read finds the IP (whatever that takes: a listing at Hetzner); every later
        // one reads it by the id found.
        let read = |what: &str, id: Option<&IpId>| {
            retry(ctx, &API_RETRY, what, |d| p.holding(ip, id, d)).map_err(|f| fail(ctx, f))
        };
        let first = read("reading the IP", None)?;
        let id = first.id.clone();
        if p.assign_keeps_others() {
            self.take_alone(ctx, p.as_ref(), ip, &me, &first)?;
            state.save(&lock, &Started::now(s.provider, ip, me.clone(), id))?;
            return Ok(Status::ok(format!(
                "{ip} now points at this {server} ({me}) alone, after {} ms",
                ctx.deadline.elapsed().as_millis()
            )));
        }
        if first.holder.as_ref() == Some(&me) && !first.locked {
            state.save(&lock, &Started::now(s.provider, ip, me.clone(), id))?;
            return Ok(Status::ok(format!(
                "{ip} already points at this {server} ({me}): no action needed"
            )));
        }
        ctx.log.info(format_args!(
            "{ip} points at {}; assigning it to this {server} ({me})",
            holder_words(p.as_ref(), &first.holder)
        ));

        // Each try looks at the address (the first one has just been read) and assigns it when
        // no other action is pending on it; a pending one is waited out, then looked at again.
        let mut seen = Some(first.clone());
        let mut last_busy: Option<String> = None;
        let assigned = ctx.deadline.retry(&PENDING_RETRY, |_| {
            let now = match seen.take() {
                Some(h) => h,
                None => match read("reading the IP", Some(&id)) {
                    Ok(h) => h,
                    Err(e) => return Attempt::Fail(e),
                },
            };
            let busy = |last: &Option<String>| {
                let last = last
                    .as_ref()
                    .map(|b| format!(" (last refusal: {b})"))
                    .unwrap_or_default();
                OcfError::generic(format!(
                    "{ip} stayed busy with another action until the timeout{last}"
                ))
            };
            if now.locked {
                return Attempt::Again(busy(&last_busy));
            }
            if now.holder.as_ref() == Some(&me) {
                return Attempt::Done(None);
            }
            if now.holder.is_some() && now.holder != first.holder {
                // Someone else moved it while this start waited: two starts at once (never
                // Pacemaker's doing). Moving it back would make both answers wrong.
                return Attempt::Fail(OcfError::generic(format!(
                    "{ip} was moved to {} while this start waited: not taking it back",
                    holder_words(p.as_ref(), &now.holder)
                )));
            }
            match retry(ctx, &API_RETRY, "assigning the IP", |d| {
                p.assign(&now, ip, &me, d)
            }) {
                Ok(action) => Attempt::Done(Some(action)),
                Err(Fault::Busy(d)) => {
                    ctx.log.info(format_args!("{d}; waiting for it to end"));
                    last_busy = Some(d);
                    Attempt::Again(busy(&last_busy))
                }
                Err(f) => Attempt::Fail(fail(ctx, f)),
            }
        });
        if let Some((action, action_state)) = assigned.map_err(RetryError::into_inner)? {
            self.wait_for(ctx, &ctx.deadline, p.as_ref(), ip, &action, action_state)?;
        }

        let now = read("confirming the holder", Some(&id))?;
        if now.holder.as_ref() != Some(&me) {
            return Err(OcfError::generic(format!(
                "after the assignment the API says {ip} points at {}, not this {server} ({me})",
                holder_words(p.as_ref(), &now.holder)
            )));
        }
        state.save(&lock, &Started::now(s.provider, ip, me.clone(), id))?;
        Ok(Status::ok(format!(
            "{ip} now points at this {server} ({me}), after {} ms",
            ctx.deadline.elapsed().as_millis()
        )))
    }

    fn stop(&self, ctx: &Context) -> OcfResult<Status> {
        token::mask_parameter(ctx, &crate::TOKEN);
        let state = instance_state(ctx);
        // Nothing started here: nothing to stop, whatever the parameters say (or lack).
        let Some((lock, _)) = state.hold::<Started>(&ctx.deadline, &ctx.log)? else {
            return Ok(Status::ok("not started here: nothing to stop"));
        };
        state.clear::<Started>(&lock)?;
        Ok(Status::ok(
            "stopped: the address is no longer claimed here (it moves with the next start elsewhere)",
        ))
    }

    fn monitor(&self, ctx: &Context) -> OcfResult<Status> {
        token::mask_parameter(ctx, &crate::TOKEN);
        let Some(started) = instance_state(ctx).load::<Started>(&ctx.log)? else {
            return Ok(Status::not_running("not started here"));
        };
        let s = Settings::from(ctx)?;
        let ip = s.ip;
        if started.ip != ip {
            return Ok(Status::not_running(format!(
                "started here for {}, not {ip}",
                started.ip
            )));
        }
        // Ids and servers of one cloud mean nothing in another.
        if started.provider != s.provider {
            return Ok(Status::not_running(format!(
                "started here through {}, not {}",
                started.provider.name(),
                s.provider.name()
            )));
        }
        let p = self.connect.connect(&s, None);
        let server = p.server_word();
        let holds = retry(ctx, &METADATA_RETRY, "reading the metadata service", |d| {
            p.holds_locally(ip, d)
        })
        .map_err(|f| OcfError::generic(format!("cannot tell whether {ip} points here: {f}")))?;
        let lagging = match holds {
            Some(true) => return Ok(Status::ok(format!("{ip} points at this {server}"))),
            Some(false) if started.age() >= METADATA_LAG_GRACE => {
                return Ok(Status::not_running(format!(
                    "the metadata service says {ip} no longer points at this {server}"
                )))
            }
            // Just started: the metadata service may lag the assignment the API confirmed.
            Some(false) => true,
            // The metadata service cannot tell (Hetzner): the API decides.
            None => false,
        };
        // One read of the one IP, by the id kept in the record (never a listing): a failed
        // read is retried within the deadline, then 1; it never reads as "not running".
        let token = token::token(ctx, &crate::TOKEN)?;
        let p = self.connect.connect(&s, Some(token));
        let h = retry(ctx, &API_RETRY, "reading the IP", |d| {
            p.holds(ip, started.id.as_ref(), &started.server, d)
        })
        .map_err(|f| fail(ctx, f))?;
        if p.assign_keeps_others() && !h.held_by(&started.server) {
            // One instance read tells only whether this one holds it.
            return Ok(Status::not_running(format!(
                "{ip} is not attached to this {server} ({})",
                started.server
            )));
        }
        if h.held_by(&started.server) {
            if lagging {
                ctx.log.info(format_args!(
                    "the metadata service does not show {ip} yet; the API says it points here"
                ));
                return Ok(Status::ok(format!(
                    "{ip} points at this {server} (per the API; the metadata service lags)"
                )));
            }
            Ok(Status::ok(format!("{ip} points at this {server}")))
        } else {
            Ok(Status::not_running(format!(
                "{ip} points at {}, not this {server}",
                holder_words(p.as_ref(), &h.holder)
            )))
        }
    }

    fn validate(&self, ctx: &Context) -> OcfResult<Status> {
        token::mask_parameter(ctx, &crate::TOKEN);
        let s = Settings::from(ctx)?;
        let token = token::token(ctx, &crate::TOKEN)?;
        if ctx.check_level() < 10 {
            return Ok(Status::ok("parameters are valid"));
        }
        let p = self.connect.connect(&s, Some(token));
        let h = retry(ctx, &API_RETRY, "reading the IP", |d| {
            p.holding(s.ip, None, d)
        })
        .map_err(|f| fail(ctx, f))?;
        Ok(Status::ok(format!(
            "the token works and {} is in the account, pointing at {}",
            s.ip,
            holders_words(p.as_ref(), &h)
        )))
    }
}

impl<C: Connect> Floatip<C> {
    /// Where an assign adds a holder and leaves the others (Exoscale): attach here unless this
    /// instance holds it already, then detach every other holder, each operation waited for,
    /// until the API shows this instance alone. Two starts at once (never Pacemaker's doing):
    /// a holder that appeared after `first` is another start's; the lower id keeps the IP.
    /// When a detach fails for good or the time runs out, this instance is detached again
    /// (with time kept for it), so that the start that fails leaves the holders it found.
    fn take_alone(
        &self,
        ctx: &Context,
        p: &dyn Provider,
        ip: IpAddr,
        me: &ServerId,
        first: &IpHolding,
    ) -> OcfResult<()> {
        let server = p.server_word();
        let id = first.id.clone();
        let read = |d: &Deadline| {
            retry_within(ctx, d, &API_RETRY, "reading the holders", |d| {
                p.holding(ip, Some(&id), d)
            })
        };
        // Keep a part of the time to undo the attach.
        let reserve = ctx.deadline.remaining().mul_f64(UNDO_RESERVE);
        let work = ctx
            .deadline
            .sooner(ctx.deadline.remaining().saturating_sub(reserve));
        let attached_here = !first.held_by(me);
        let outcome = (|| -> Result<(), Fault> {
            if attached_here {
                ctx.log.info(format_args!(
                    "{ip} is attached to {}; attaching it to this {server} ({me})",
                    holders_words(p, first)
                ));
                let (op, state) = retry_within(ctx, &work, &API_RETRY, "attaching the IP", |d| {
                    match p.assign(first, ip, me, d) {
                        // No operation runs on an elastic IP that another would wait for.
                        Err(Fault::Busy(d)) => Err(Fault::Transient(d)),
                        other => other,
                    }
                })?;
                self.wait_for(ctx, &work, p, ip, &op, state)
                    .map_err(|e| Fault::Refused(e.reason))?;
            }
            loop {
                let now = read(&work)?;
                if !now.held_by(me) {
                    return Err(Fault::Refused(format!(
                        "{ip} is no longer attached to this {server} ({me}): another start at \
                         once detached it (now {})",
                        holders_words(p, &now)
                    )));
                }
                let others: Vec<ServerId> = now.holders().into_iter().filter(|h| h != me).collect();
                if others.is_empty() {
                    return Ok(());
                }
                // A newcomer with a lower id: another start at once; it keeps the IP.
                if let Some(winner) = others.iter().find(|o| !first.held_by(o) && o.0 < me.0) {
                    return Err(Fault::Refused(format!(
                        "{server} {winner} was attached to {ip} while this start ran (another \
                         start at once): it keeps the IP"
                    )));
                }
                for other in &others {
                    ctx.log
                        .info(format_args!("detaching {ip} from {server} {other}"));
                    let what = format!("detaching {ip} from {server} {other}");
                    let (op, state) = retry_within(ctx, &work, &API_RETRY, &what, |d| {
                        match p.release(&now, ip, other, d) {
                            Err(Fault::Busy(d)) => Err(Fault::Transient(d)),
                            r => r,
                        }
                    })?;
                    if let Err(e) = self.wait_for(ctx, &work, p, ip, &op, state) {
                        // The next look tells whether it is still attached there.
                        ctx.log.warn(format_args!("{what}: {}", e.reason));
                        let again = read(&work)?;
                        if again.held_by(other) {
                            return Err(Fault::Refused(format!("{what}: {}", e.reason)));
                        }
                    }
                }
            }
        })();
        let fault = match outcome {
            Ok(()) => return Ok(()),
            Err(f) => f,
        };
        if !attached_here {
            return Err(fail(ctx, fault));
        }
        // Undo: detach this instance again, with the time kept for it.
        let why = fault.to_string();
        ctx.log.warn(format_args!(
            "{why}; detaching {ip} from this {server} ({me}) again, so that it is not left with two holders"
        ));
        let undone = (|| -> Result<IpHolding, Fault> {
            let (op, state) = retry(
                ctx,
                &API_RETRY,
                "detaching this instance again",
                |d| match p.release(first, ip, me, d) {
                    Err(Fault::Busy(d)) => Err(Fault::Transient(d)),
                    r => r,
                },
            )?;
            self.wait_for(ctx, &ctx.deadline, p, ip, &op, state)
                .map_err(|e| Fault::Refused(e.reason))?;
            retry(ctx, &API_RETRY, "reading the holders", |d| {
                p.holding(ip, Some(&id), d)
            })
        })();
        let code_of = |f: Fault| fail(ctx, f);
        match undone {
            Ok(h) if !h.held_by(me) => Err(code_of(Fault::Refused(format!(
                "{why}; this {server} ({me}) was detached again: {ip} is attached to {}",
                holders_words(p, &h)
            )))),
            Ok(h) => Err(OcfError::generic(format!(
                "{why}; detaching this {server} ({me}) again did not take: {ip} is attached to {}",
                holders_words(p, &h)
            ))),
            Err(f) => Err(OcfError::generic(format!(
                "{why}; detaching this {server} ({me}) again failed too ({f}): {ip} may be \
                 attached to this {server} and others"
            ))),
        }
    }

    /// Wait until `action` is completed: the metadata service is watched often (it is free), the
    /// API polled quickly at first, then backing off, and asked at once when the metadata
    /// service says the address arrived. Errored or still running at the deadline: 1.
    fn wait_for(
        &self,
        ctx: &Context,
        deadline: &Deadline,
        p: &dyn Provider,
        ip: IpAddr,
        action: &ActionId,
        mut state: ActionState,
    ) -> OcfResult<()> {
        let started = Instant::now();
        let mut api_poll = Backoff::new(API_POLL_FIRST, API_POLL_MAX);
        let mut next_api = Instant::now() + api_poll.next_delay();
        let mut last_api = started;
        // Steady quick polls while only the API can tell and the action is young.
        let steady = |can_tell: bool| !can_tell && started.elapsed() < API_POLL_STEADY_FOR;
        // Watched only where it can tell (one look says; DigitalOcean's can, Hetzner's cannot).
        let mut can_tell = true;
        let mut watch_metadata = true;
        let mut last_fault: Option<Fault> = None;
        let settled = |state: ActionState| match state {
            ActionState::Completed => {
                ctx.log.info(format_args!(
                    "action {action} completed after {} ms",
                    started.elapsed().as_millis()
                ));
                Some(Attempt::Done(()))
            }
            ActionState::Errored => Some(Attempt::Fail(OcfError::generic(format!(
                "the API reports that action {action} (assign {ip}) errored"
            )))),
            ActionState::InProgress => None,
        };
        deadline
            .retry(&ACTION_WATCH, |d| {
                if let Some(end) = settled(state) {
                    return end;
                }
                let due = Instant::now() >= next_api;
                let arrived = !due
                    && watch_metadata
                    && match p.holds_locally(ip, &d.sooner(Duration::from_millis(250))) {
                        Ok(Some(here)) => here,
                        Ok(None) => {
                            can_tell = false;
                            watch_metadata = false;
                            false
                        }
                        Err(_) => false,
                    };
                if steady(can_tell) {
                    next_api = next_api.min(last_api + API_POLL_STEADY);
                }
                let due = due || Instant::now() >= next_api;
                if due || arrived {
                    last_api = Instant::now();
                    let mut not_before = None;
                    match p.action_state(ip, action, d) {
                        Ok(s) => state = s,
                        Err(f) if f.is_transient() => {
                            ctx.log.debug(format_args!("polling action {action}: {f}"));
                            if let Fault::RateLimited { wait: Some(w), .. } = &f {
                                not_before = Some(Instant::now() + *w);
                            }
                            last_fault = Some(f);
                        }
                        Err(f) => return Attempt::Fail(fail(ctx, f)),
                    }
                    if let Some(end) = settled(state) {
                        return end;
                    }
                    if due {
                        next_api = Instant::now()
                            + if steady(can_tell) {
                                API_POLL_STEADY
                            } else {
                                api_poll.next_delay()
                            };
                        watch_metadata = can_tell;
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
                let last = last_fault
                    .as_ref()
                    .map(|f| format!(" (last error: {f})"))
                    .unwrap_or_default();
                Attempt::AgainAfter(
                    OcfError::generic(format!(
                        "action {action} (assign {ip}) did not complete before the timeout{last}"
                    )),
                    pause,
                )
            })
            .map_err(RetryError::into_inner)
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
        fn server_word(&self) -> &'static str {
            "droplet"
        }
        fn server_id(&self, _: &Deadline) -> Result<ServerId, Fault> {
            Ok(ServerId(ME.into()))
        }
        fn holds_locally(&self, _: IpAddr, _: &Deadline) -> Result<Option<bool>, Fault> {
            Ok(Some(false))
        }
        fn holding(&self, _: IpAddr, _: Option<&IpId>, _: &Deadline) -> Result<IpHolding, Fault> {
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
            _: &IpHolding,
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
        fn connect(&self, _: &Settings, _: Option<Secret>) -> Box<dyn Provider> {
            Box::new(self.clone())
        }
    }

    fn held(by: Option<&str>, locked: bool) -> Result<IpHolding, Fault> {
        Ok(IpHolding {
            id: IpId("203.0.113.7".into()),
            holder: by.map(|s| ServerId(s.into())),
            locked,
            also: Vec::new(),
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
