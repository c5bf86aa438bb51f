//! The contract between the runner and an agent: the actions, what an action answers (`Status`
//! or an `OcfError`), the `Agent` trait every agent implements, and the `Context` an action reads.

use crate::code::OcfCode;
use crate::deadline::Deadline;
use crate::env::{CloneInfo, OcfEnv};
use crate::error::{OcfError, OcfResult};
use crate::log::Logger;
use crate::params::Params;
use crate::spec::AgentSpec;
use crate::state::InstanceState;

/// A successful answer: running (0), stopped (7) or degraded (190), with words for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub code: OcfCode,
    pub message: String,
}

impl Status {
    pub fn ok(message: impl Into<String>) -> Status {
        Status {
            code: OcfCode::Success,
            message: message.into(),
        }
    }
    pub fn not_running(message: impl Into<String>) -> Status {
        Status {
            code: OcfCode::NotRunning,
            message: message.into(),
        }
    }
    /// Running as the promoted instance of a promotable clone (8).
    pub fn promoted(message: impl Into<String>) -> Status {
        Status {
            code: OcfCode::RunningPromoted,
            message: message.into(),
        }
    }
    pub fn degraded(message: impl Into<String>) -> Status {
        Status {
            code: OcfCode::Degraded,
            message: message.into(),
        }
    }
}

/// The actions an agent may implement; anything else returns 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Monitor,
    ValidateAll,
    Reload,
    Notify,
    /// Promotable clones only: an agent that does not advertise them answers 3.
    Promote,
    Demote,
}

impl Action {
    pub fn parse(name: &str) -> Option<Action> {
        Some(match name {
            "start" => Action::Start,
            "stop" => Action::Stop,
            "monitor" => Action::Monitor,
            "validate-all" => Action::ValidateAll,
            "reload" => Action::Reload,
            "notify" => Action::Notify,
            "promote" => Action::Promote,
            "demote" => Action::Demote,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Monitor => "monitor",
            Action::ValidateAll => "validate-all",
            Action::Reload => "reload",
            Action::Notify => "notify",
            Action::Promote => "promote",
            Action::Demote => "demote",
        }
    }
}

/// Everything an action handler may consult, read once.
#[derive(Debug)]
pub struct Context {
    pub spec: &'static AgentSpec,
    pub action: Action,
    pub env: OcfEnv,
    pub params: Params,
    pub deadline: Deadline,
    pub log: Logger,
}

impl Context {
    /// Build a context from an environment (used by `run`, and by agents' unit tests).
    pub fn new(spec: &'static AgentSpec, action: Action, env: OcfEnv, log: Logger) -> Context {
        let params = Params::resolve(spec, &env.reskeys);
        for w in params.warnings() {
            log.warn(w);
        }
        let deadline = Deadline::for_timeout(env.timeout);
        Context {
            spec,
            action,
            env,
            params,
            deadline,
            log,
        }
    }

    /// A monitor with no interval: Pacemaker asking whether the resource is active here.
    pub fn is_probe(&self) -> bool {
        self.action == Action::Monitor && self.env.is_probe()
    }

    /// The depth asked for (`OCF_CHECK_LEVEL`).
    pub fn check_level(&self) -> u32 {
        self.env.check_level
    }

    /// This instance's state files and lock. `fallback` names the instance when no cluster does
    /// (a person running the agent by hand): make it from the parameters that identify it.
    /// Instances of an anonymous clone are interchangeable and Pacemaker may number the one on
    /// this node differently from one operation to the next (`lb:0`, then `lb:1`): they share
    /// one state. A globally unique clone's instances are distinct and keep their own.
    pub fn state(&self, fallback: &str) -> InstanceState {
        let instance = match self.env.instance.as_deref() {
            Some(name) => state_name(name, self.env.clone.as_ref()),
            None => fallback,
        };
        InstanceState::new(&self.env.rsctmp, self.spec.name, instance)
    }
}

/// The name an instance's state goes by: `lb:1` is `lb` unless the clone is globally unique.
/// (A resource id cannot hold a colon, so a `:N` suffix is always Pacemaker's clone number.)
fn state_name<'a>(instance: &'a str, clone: Option<&CloneInfo>) -> &'a str {
    if clone.is_some_and(|c| c.globally_unique) {
        return instance;
    }
    match instance.rsplit_once(':') {
        Some((base, n))
            if !base.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) =>
        {
            base
        }
        _ => instance,
    }
}

/// One agent: its declaration and its handlers. Handlers decide for themselves which parameters
/// they need; a stop with nothing to stop and a probe of an absent resource need none.
pub trait Agent {
    fn spec(&self) -> &'static AgentSpec;
    fn start(&self, ctx: &Context) -> OcfResult<Status>;
    fn stop(&self, ctx: &Context) -> OcfResult<Status>;
    fn monitor(&self, ctx: &Context) -> OcfResult<Status>;
    fn validate(&self, ctx: &Context) -> OcfResult<Status>;
    fn reload(&self, _ctx: &Context) -> OcfResult<Status> {
        Err(OcfError::unimplemented("reload is not implemented"))
    }
    /// Clone notifications: 0, as the contract demands, unless an agent acts on them.
    fn notify(&self, _ctx: &Context) -> OcfResult<Status> {
        Ok(Status::ok("notification ignored"))
    }
    /// Promotable clones: make this instance the promoted one (answer 0).
    fn promote(&self, _ctx: &Context) -> OcfResult<Status> {
        Err(OcfError::unimplemented("promote is not implemented"))
    }
    /// Promotable clones: make this instance unpromoted again (answer 0).
    fn demote(&self, _ctx: &Context) -> OcfResult<Status> {
        Err(OcfError::unimplemented("demote is not implemented"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_clone_instances_share_state() {
        let anon = CloneInfo {
            instance: Some(1),
            max: Some(2),
            globally_unique: false,
        };
        let unique = CloneInfo {
            globally_unique: true,
            ..anon
        };
        assert_eq!(state_name("lb:1", Some(&anon)), "lb");
        assert_eq!(state_name("lb:1", None), "lb");
        assert_eq!(state_name("lb:1", Some(&unique)), "lb:1");
        assert_eq!(state_name("lb", Some(&anon)), "lb");
        assert_eq!(state_name("lb:x", None), "lb:x");
        assert_eq!(state_name(":1", None), ":1");
    }
}
