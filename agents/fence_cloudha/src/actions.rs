//! The fencer's actions (shared/docs/fencing.md §2): off, on, reboot, status, list,
//! list-status, monitor, metadata, validate-all, with its exit codes (0 done; status: 0 on,
//! 2 off; 1 anything else). Every wait goes through `Deadline::retry`, bounded by power_timeout.

use crate::input::Input;
use crate::settings::Settings;
use crate::{metadata, token, PLUG, SPEC};
use cloudha_cloud::power::{self, Power, PowerState, Server, Switch};
use cloudha_cloud::provider::{ActionId, ActionState, Fault};
use cloudha_common::{Action, Attempt, Context, Deadline, Logger, OcfEnv, Retry, RetryError};
use std::io::BufRead;
use std::time::Duration;

/// API calls that failed in passing: again soon, then less often.
const API: Retry = Retry::backoff(Duration::from_millis(250), Duration::from_secs(2));
/// Polling a power action, one request a round (the action; the server once it settled).
/// For its first `FAST_FOR`, every 50 ms: a quick cloud's power-off (about a second) is seen
/// done within 50 ms, for at most 40 requests.
const FAST: Retry = Retry::every(Duration::from_millis(50));
const FAST_FOR: Duration = Duration::from_secs(2);
/// Then from 100 ms up to twice a second: a 20 s power-off costs about 40 more requests, well
/// within DigitalOcean's 250 a minute and Hetzner's 3600 an hour.
const POLL: Retry = Retry::backoff(Duration::from_millis(100), Duration::from_millis(500));

const USAGE: &str = "Usage: fence_cloudha [-o ACTION] [-n PLUG] [--NAME=VALUE ...]
  Without arguments the parameters are read as key=value lines on stdin (as pacemaker-fenced
  sends them). Actions: off, on, reboot (default), status, list, list-status, monitor,
  metadata, validate-all. Options: -o/--action, -n/--plug (a server's name or id), --provider,
  --api-token-file, --api-url, --metadata-url, --api-key and --zone (Exoscale),
  --power-timeout, --skip-race-check.
  The API token is never taken from the command line: use --api-token-file (or api_token= on
  stdin). Exit: 0 done (status: on), 2 status: off, 1 failed.";

/// Run one invocation; returns the exit code.
pub fn main(args: &[String], stdin: impl BufRead) -> i32 {
    let log = Logger::stderr(&format!("fence_cloudha[{}]", std::process::id()));
    let input = if args.is_empty() {
        Input::from_stdin(stdin)
    } else {
        match Input::from_args(args) {
            Ok(i) => i,
            Err(e) => {
                log.err(e);
                return 1;
            }
        }
    };
    if input.help {
        println!("{USAGE}");
        return 0;
    }
    for k in &input.unknown {
        log.warn(format_args!(
            "parameter '{k}' is not one of fence_cloudha's: ignored"
        ));
    }
    // As it may be shown: escaped and cut short (it comes from stdin or argv).
    let action = cloudha_common::params::shown(input.action());
    if action == "metadata" {
        print!("{}", metadata::render());
        return 0;
    }
    let ctx = Context::new(
        &SPEC,
        Action::ValidateAll,
        OcfEnv::from_vars(input.vars()),
        log,
    );
    token::mask_parameter(&ctx, &crate::TOKEN);
    match run(&action, &ctx) {
        Ok(code) => code,
        Err(reason) => {
            ctx.log.err(format_args!("{action} failed: {reason}"));
            1
        }
    }
}

fn run(action: &str, ctx: &Context) -> Result<i32, String> {
    let known = [
        "off",
        "on",
        "reboot",
        "status",
        "list",
        "list-status",
        "monitor",
        "validate-all",
    ];
    if !known.contains(&action) {
        return Err(format!("unsupported action '{action}' (see --help)"));
    }
    let settings = Settings::from(ctx).map_err(|e| e.reason)?;
    let token = token::token(ctx, &crate::TOKEN).map_err(|e| e.reason)?;
    if action == "validate-all" {
        println!("Configuration is valid");
        return Ok(0);
    }
    let power = power::connect(settings.provider, &settings.endpoints, token)?;
    let fence = Fence {
        power,
        settings: &settings,
        log: &ctx.log,
    };
    let plug = || ctx.params.need(&PLUG).map_err(|e| e.reason);
    match action {
        "monitor" => fence.monitor(),
        "list" => fence.list(false),
        "list-status" => fence.list(true),
        "status" => fence.status(&plug()?),
        "off" => fence.off(&plug()?),
        "on" => fence.on(&plug()?),
        _ => fence.reboot(&plug()?),
    }
}

struct Fence<'a> {
    power: Box<dyn Power>,
    settings: &'a Settings,
    log: &'a Logger,
}

/// A retried call's fault as an attempt: transient ones again (a rate limit after its wait).
fn again<T>(f: Fault) -> Attempt<T, Fault> {
    match f {
        Fault::RateLimited { wait: Some(w), .. } => Attempt::AgainAfter(f, w),
        f if f.is_transient() => Attempt::Again(f),
        f => Attempt::Fail(f),
    }
}

fn said(what: &str, e: RetryError<Fault>, timeout: Duration) -> String {
    match e {
        RetryError::Failed(Fault::TokenRejected(m)) => {
            format!("{what}: the API rejected the token {m}")
        }
        RetryError::Failed(f) => format!("{what}: {f}"),
        RetryError::GaveUp { last, tries } => format!(
            "{what}: {last} (gave up after {tries} tries, power_timeout {} s)",
            timeout.as_secs()
        ),
    }
}

impl Fence<'_> {
    fn word(&self) -> &'static str {
        self.power.server_word()
    }

    fn deadline(&self) -> Deadline {
        Deadline::after(self.settings.power_timeout)
    }

    /// One API call, its transient faults retried within `deadline`.
    fn call<T>(
        &self,
        what: &str,
        deadline: &Deadline,
        mut f: impl FnMut(&Deadline) -> Result<T, Fault>,
    ) -> Result<T, String> {
        deadline
            .retry_logged(&API, self.log, what, |d| match f(d) {
                Ok(v) => Attempt::Done(v),
                Err(e) => again(e),
            })
            .map_err(|e| said(what, e, self.settings.power_timeout))
    }

    fn find(&self, plug: &str, deadline: &Deadline) -> Result<Server, String> {
        self.call(&format!("find {} '{plug}'", self.word()), deadline, |d| {
            self.power.find(plug, d)
        })
    }

    fn monitor(&self) -> Result<i32, String> {
        self.call("check the token", &self.deadline(), |d| {
            self.power.check_token(d)
        })?;
        Ok(0)
    }

    fn list(&self, with_status: bool) -> Result<i32, String> {
        let servers = self.call("list servers", &self.deadline(), |d| self.power.list(d))?;
        for s in servers {
            let name = s.name.replace([',', '\n'], "_");
            match (with_status, &s.state) {
                (false, _) => println!("{},{name}", s.id),
                (true, PowerState::Other(_)) => println!("{},{name},unknown", s.id),
                (true, state) => println!("{},{name},{state}", s.id),
            }
        }
        Ok(0)
    }

    fn status(&self, plug: &str) -> Result<i32, String> {
        let s = self.find(plug, &self.deadline())?;
        match s.state {
            PowerState::On => {
                println!("Status: ON");
                Ok(0)
            }
            PowerState::Off => {
                println!("Status: OFF");
                Ok(2)
            }
            PowerState::Other(o) => Err(format!(
                "{} {} ({}) is '{o}': neither on nor off",
                self.word(),
                s.id,
                s.name
            )),
        }
    }

    fn off(&self, plug: &str) -> Result<i32, String> {
        let deadline = self.deadline();
        let target = self.find(plug, &deadline)?;
        if target.state == PowerState::Off {
            println!("Success: Already OFF");
            return Ok(0);
        }
        if self.settings.race_check {
            self.race_check(&target, &deadline)?;
        }
        self.switch(&target, Switch::Off, &deadline)?;
        println!("Success: Powered OFF");
        Ok(0)
    }

    fn on(&self, plug: &str) -> Result<i32, String> {
        let deadline = self.deadline();
        let target = self.find(plug, &deadline)?;
        if target.state == PowerState::On {
            println!("Success: Already ON");
            return Ok(0);
        }
        self.switch(&target, Switch::On, &deadline)?;
        println!("Success: Powered ON");
        Ok(0)
    }

    /// Off, then on; once off succeeded, a failure to power on is only logged (fencing.md §2).
    fn reboot(&self, plug: &str) -> Result<i32, String> {
        self.off(plug)?;
        let deadline = self.deadline();
        let on = self
            .find(plug, &deadline)
            .and_then(|t| self.switch(&t, Switch::On, &deadline));
        if let Err(e) = on {
            self.log.warn(format_args!(
                "reboot: {plug} is off (fenced), but powering it on failed: {e}"
            ));
        }
        println!("Success: Rebooted");
        Ok(0)
    }

    /// As fence_aws: a node whose own server is not on, or has a power-off under way, is the
    /// one being fenced; it must not take its peer down with it.
    fn race_check(&self, target: &Server, deadline: &Deadline) -> Result<(), String> {
        let word = self.word();
        let own = self.call(
            &format!("this node's {word} id (metadata service)"),
            deadline,
            |d| self.power.own_id(d),
        )?;
        if own == target.id {
            return Err(format!(
                "{word} {} ({}) is this node's own: a node does not fence itself",
                target.id, target.name
            ));
        }
        let me = self.call(&format!("read this node's {word} {own}"), deadline, |d| {
            self.power.server(&own, d)
        })?;
        let why = if me.state != PowerState::On {
            Some(format!("is {}", me.state))
        } else {
            self.call(
                &format!("actions of this node's {word} {own}"),
                deadline,
                |d| self.power.going_down(&own, d),
            )?
            .map(|kind| format!("has a {kind} action under way"))
        };
        match why {
            Some(why) => Err(format!(
                "race check: this node's own {word} {own} {why}: this node is the one going down, so it does not fence {} ({}) (skip_race_check=true turns the check off)",
                target.id, target.name
            )),
            None => Ok(()),
        }
    }

    /// Ask the API to switch `target` and wait until it reports the state reached. While an
    /// action runs, only the action is read; once it settled, the server. An action that
    /// errors, or completes without the state reached, is asked again; a refusal while another
    /// action is pending (or the server is already there) is read again.
    fn switch(&self, target: &Server, to: Switch, deadline: &Deadline) -> Result<(), String> {
        let word = self.word();
        let id = &target.id;
        let mut action: Option<ActionId> = None;
        let mut asked = 0u32;
        let what = format!("power {} {word} {id} ({})", to.word(), target.name);
        let warned = |e: Fault| {
            self.log.warn(format_args!("{what}: {e}"));
            again(e)
        };
        let mut round = |d: &Deadline| {
            if let Some(a) = &action {
                match self.power.action_state(a, d) {
                    Ok(ActionState::InProgress) => {
                        return Attempt::Again(Fault::Transient(format!(
                            "action {a} still in progress"
                        )))
                    }
                    Ok(ActionState::Completed) => {}
                    Ok(ActionState::Errored) => {
                        self.log.warn(format_args!("{what}: action {a} errored"));
                    }
                    Err(e) => return warned(e),
                }
                action = None;
            }
            let state = match self.power.server(id, d) {
                Ok(s) if s.state == to.target() => return Attempt::Done(()),
                Ok(s) => s.state,
                Err(e) => return warned(e),
            };
            asked += 1;
            match self.power.switch(id, to, d) {
                Ok((a, done)) => {
                    self.log
                        .info(format_args!("{what}: action {a} started ({state} now)"));
                    // Already completed (a fast cloud): read the server at once.
                    if done == ActionState::Completed {
                        if let Ok(s) = self.power.server(id, d) {
                            if s.state == to.target() {
                                return Attempt::Done(());
                            }
                        }
                    }
                    action = Some(a);
                }
                Err(Fault::Busy(m)) => return Attempt::Again(Fault::Busy(m)),
                Err(e) => return warned(e),
            }
            Attempt::Again(Fault::Transient(format!(
                "{word} {id} is {state}, not yet {}",
                to.word()
            )))
        };
        // The fast phase ends by giving up at its own bound; the slow one goes on to the
        // action's deadline. A failure for good ends both. A cloud with a low limit per
        // second (Vultr) has no fast phase.
        let result = if self.power.fast_polling() {
            match deadline.sooner(FAST_FOR).retry(&FAST, &mut round) {
                Err(RetryError::GaveUp { .. }) => deadline.retry(&POLL, &mut round),
                other => other,
            }
        } else {
            deadline.retry(&POLL, &mut round)
        };
        result.map_err(|e| match e {
            RetryError::GaveUp { last, .. } => format!(
                "{what}: timed out after {} s (power_timeout; asked {asked} times): {last}",
                self.settings.power_timeout.as_secs()
            ),
            e => said(&what, e, self.settings.power_timeout),
        })
    }
}
