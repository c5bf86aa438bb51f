//! What every agent's `main` is: read argv and the environment once, dispatch the action to the
//! agent's handler, and turn the answer into an exit code, an `ocf-exit-reason:` line and, for a
//! person at a terminal, words. `meta-data` needs nothing: no parameters, no root, no network.

use crate::code::OcfCode;
use crate::deadline::Deadline;
use crate::env::{CloneInfo, OcfEnv};
use crate::error::{OcfError, OcfResult};
use crate::log::Logger;
use crate::metadata;
use crate::params::Params;
use crate::spec::AgentSpec;
use crate::state::InstanceState;
use std::io::{IsTerminal, Write};

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
    fn notify(&self, _ctx: &Context) -> OcfResult<Status> {
        Ok(Status::ok("notification ignored"))
    }
}

/// What the command line asked for.
#[derive(Debug, PartialEq, Eq)]
pub struct Invocation {
    pub action: String,
    /// Variables that flags set; they take the place of the environment's.
    pub overrides: Vec<(String, String)>,
}

/// The command line for people: `anchorip --ip 10.17.1.18 --nic eth0 monitor`.
pub fn command(spec: &'static AgentSpec) -> clap::Command {
    use clap::{Arg, ArgAction, Command};
    let actions: Vec<&str> = spec.actions.iter().map(|a| a.name).collect();
    let mut cmd = Command::new(spec.name)
        .version(spec.version)
        .about(spec.shortdesc)
        .long_about(spec.longdesc)
        .override_usage(format!("{} [--PARAMETER VALUE]... ACTION", spec.name))
        .arg(
            Arg::new("ACTION")
                .required(true)
                .help(format!("one of: {}", actions.join(", "))),
        );
    let mut secrets = Vec::new();
    for p in spec.params {
        if p.secret {
            secrets.push(p.name);
            continue;
        }
        let mut help = p.shortdesc.to_string();
        if let Some(d) = p.default {
            help.push_str(&format!(" [default: {d}]"));
        }
        if p.required {
            help.push_str(" [required]");
        }
        let dashed = p.name.replace('_', "-");
        let mut arg = Arg::new(p.name)
            .long(p.name)
            .value_name(p.kind.as_str().to_uppercase())
            .action(ArgAction::Set)
            .help(help)
            .long_help(format!("{}\n{}", p.shortdesc, p.longdesc));
        if dashed != p.name {
            arg = arg.visible_alias(dashed);
        }
        for a in p.aliases {
            arg = arg.alias(*a);
        }
        cmd = cmd.arg(arg);
    }
    cmd = cmd
        .arg(
            Arg::new("timeout")
                .long("timeout")
                .value_name("SECONDS")
                .value_parser(clap::value_parser!(u64))
                .help("the action's timeout, as Pacemaker's op timeout [default: 20]"),
        )
        .arg(
            Arg::new("check-level")
                .long("check-level")
                .value_name("LEVEL")
                .value_parser(["0", "10", "20"])
                .help("monitor/validate-all depth (OCF_CHECK_LEVEL)"),
        )
        .arg(
            Arg::new("interval")
                .long("interval")
                .value_name("SECONDS")
                .value_parser(clap::value_parser!(u64))
                .help("run monitor as a recurring monitor of this interval (default: a probe)"),
        )
        .arg(
            Arg::new("instance")
                .long("instance")
                .value_name("NAME")
                .help("the resource's name, to share state with the cluster's instance"),
        );
    let mut after = String::from(
        "Every parameter may also come from the environment as OCF_RESKEY_<name>, as Pacemaker passes it.",
    );
    if !secrets.is_empty() {
        after.push_str(&format!(
            "\nSecrets are never flags (argv is visible to every user): set {} in the environment.",
            secrets
                .iter()
                .map(|s| format!("OCF_RESKEY_{s}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    cmd.after_help(after)
}

/// Parse argv. Pacemaker's `[path, action]` is answered without building a parser at all.
pub fn parse_args(spec: &'static AgentSpec, args: &[String]) -> Result<Invocation, clap::Error> {
    if args.len() == 2 && !args[1].starts_with('-') {
        return Ok(Invocation {
            action: args[1].clone(),
            overrides: Vec::new(),
        });
    }
    let m = command(spec).try_get_matches_from(args)?;
    let mut overrides = Vec::new();
    for p in spec.params.iter().filter(|p| !p.secret) {
        if let Some(v) = m.get_one::<String>(p.name) {
            overrides.push((format!("OCF_RESKEY_{}", p.name), v.clone()));
        }
    }
    if let Some(t) = m.get_one::<u64>("timeout") {
        overrides.push((
            "OCF_RESKEY_CRM_meta_timeout".into(),
            (t.saturating_mul(1000)).to_string(),
        ));
    }
    if let Some(l) = m.get_one::<String>("check-level") {
        overrides.push(("OCF_CHECK_LEVEL".into(), l.clone()));
    }
    if let Some(i) = m.get_one::<u64>("interval") {
        overrides.push((
            "OCF_RESKEY_CRM_meta_interval".into(),
            (i.saturating_mul(1000)).to_string(),
        ));
    }
    if let Some(n) = m.get_one::<String>("instance") {
        overrides.push(("OCF_RESOURCE_INSTANCE".into(), n.clone()));
    }
    let action = m.get_one::<String>("ACTION").cloned().unwrap_or_default();
    Ok(Invocation { action, overrides })
}

/// Run the action named in `args` with the variables `vars`; returns the exit status.
/// Everything but the exit code goes to stdout/stderr here.
pub fn run<A: Agent>(agent: &A, args: &[String], vars: Vec<(String, String)>) -> i32 {
    let spec = agent.spec();
    let invocation = match parse_args(spec, args) {
        Ok(i) => i,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => OcfCode::ErrArgs.as_i32(),
            };
        }
    };
    match invocation.action.as_str() {
        "meta-data" => {
            let mut out = std::io::stdout().lock();
            return match out.write_all(metadata::render(spec).as_bytes()) {
                Ok(()) => 0,
                Err(_) => OcfCode::ErrGeneric.as_i32(),
            };
        }
        "usage" | "help" => {
            let _ = command(spec).print_long_help();
            return 0;
        }
        _ => {}
    }

    let mut vars = vars;
    vars.extend(invocation.overrides);
    let env = OcfEnv::from_vars(vars);
    let terminal_err = std::io::stderr().is_terminal();
    let terminal_out = std::io::stdout().is_terminal();
    let log = Logger::new(
        &env.log,
        env.resource_type.as_deref().unwrap_or(spec.name),
        env.instance.as_deref().unwrap_or(""),
        terminal_err,
    );

    let action =
        Action::parse(&invocation.action).filter(|_| spec.action(&invocation.action).is_some());
    let result = match action {
        None => Err(OcfError::unimplemented(format!(
            "action '{}' is not implemented by {}",
            invocation.action, spec.name
        ))),
        Some(action) => {
            let ctx = Context::new(spec, action, env, log);
            let result = match action {
                Action::Start => agent.start(&ctx),
                Action::Stop => agent.stop(&ctx),
                Action::Monitor => agent.monitor(&ctx),
                Action::ValidateAll => agent.validate(&ctx),
                Action::Reload => agent.reload(&ctx),
                Action::Notify => agent.notify(&ctx),
            };
            return report(&ctx.log, action.name(), &ctx.deadline, result, terminal_out);
        }
    };
    report(
        &log,
        &invocation.action,
        &Deadline::for_timeout(None),
        result,
        terminal_out,
    )
}

fn report(
    log: &Logger,
    action: &str,
    deadline: &Deadline,
    result: OcfResult<Status>,
    terminal: bool,
) -> i32 {
    let elapsed = deadline.elapsed().as_millis();
    match result {
        Ok(status) => {
            let message = log.scrub(&status.message);
            log.debug(format_args!(
                "{action}: {} after {elapsed} ms: {message}",
                status.code
            ));
            if terminal {
                println!("{}: {message}", status.code);
            }
            status.code.as_i32()
        }
        Err(e) => {
            let reason = log.scrub(&e.reason);
            if !log.logs_to_stderr() {
                log.err(format_args!("{action}: {}: {reason}", e.code));
            }
            eprintln!("ocf-exit-reason:{reason}");
            if terminal {
                println!("{}: {reason}", e.code);
            }
            e.code.as_i32()
        }
    }
}

/// The whole `main` of an agent.
pub fn main<A: Agent>(agent: &A) -> ! {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let code = run(agent, &args, std::env::vars().collect());
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{ActionSpec, ParamSpec};

    static SPEC: AgentSpec = AgentSpec {
        name: "demo",
        version: "0.1.0",
        shortdesc: "demo",
        longdesc: "demo agent",
        params: &[
            ParamSpec::string("ip").required().short("address"),
            ParamSpec::string("cidr_netmask").short("prefix"),
            ParamSpec::string("api_token").secret().short("token"),
        ],
        actions: &[
            ActionSpec::new("start", 20),
            ActionSpec::new("stop", 20),
            ActionSpec::new("monitor", 20).interval(10),
            ActionSpec::new("validate-all", 20),
            ActionSpec::new("meta-data", 5),
        ],
    };

    struct Demo;
    impl Agent for Demo {
        fn spec(&self) -> &'static AgentSpec {
            &SPEC
        }
        fn start(&self, ctx: &Context) -> OcfResult<Status> {
            let ip = ctx.params.require("ip")?;
            Ok(Status::ok(format!("{ip} started")))
        }
        fn stop(&self, _: &Context) -> OcfResult<Status> {
            Ok(Status::ok("stopped"))
        }
        fn monitor(&self, ctx: &Context) -> OcfResult<Status> {
            if ctx.is_probe() {
                Ok(Status::not_running("probe"))
            } else {
                Ok(Status::ok("recurring"))
            }
        }
        fn validate(&self, ctx: &Context) -> OcfResult<Status> {
            ctx.params.require("ip")?;
            Ok(Status::ok("valid"))
        }
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }
    fn vars(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

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

    #[test]
    fn pacemaker_form_needs_no_parser() {
        let i = parse_args(&SPEC, &args(&["demo", "monitor"])).unwrap();
        assert_eq!(i.action, "monitor");
        assert!(i.overrides.is_empty());
    }

    #[test]
    fn flags_become_the_same_variables() {
        let i = parse_args(
            &SPEC,
            &args(&[
                "demo",
                "--ip",
                "10.0.0.1",
                "--cidr-netmask",
                "24",
                "--timeout",
                "5",
                "--check-level",
                "10",
                "--interval",
                "10",
                "--instance",
                "a:0",
                "monitor",
            ]),
        )
        .unwrap();
        assert_eq!(i.action, "monitor");
        assert_eq!(
            i.overrides,
            vars(&[
                ("OCF_RESKEY_ip", "10.0.0.1"),
                ("OCF_RESKEY_cidr_netmask", "24"),
                ("OCF_RESKEY_CRM_meta_timeout", "5000"),
                ("OCF_CHECK_LEVEL", "10"),
                ("OCF_RESKEY_CRM_meta_interval", "10000"),
                ("OCF_RESOURCE_INSTANCE", "a:0"),
            ])
        );
    }

    #[test]
    fn secrets_are_not_flags() {
        assert!(parse_args(&SPEC, &args(&["demo", "--api_token", "x", "start"])).is_err());
        let help = command(&SPEC).render_long_help().to_string();
        assert!(help.contains("OCF_RESKEY_api_token"));
        assert!(help.contains("--ip"));
    }

    #[test]
    fn exit_codes() {
        assert_eq!(run(&Demo, &args(&["demo", "meta-data"]), vec![]), 0);
        assert_eq!(run(&Demo, &args(&["demo", "promote"]), vec![]), 3);
        assert_eq!(run(&Demo, &args(&["demo", "frobnicate"]), vec![]), 3);
        // notify is not advertised by this agent: 3.
        assert_eq!(run(&Demo, &args(&["demo", "notify"]), vec![]), 3);
        assert_eq!(run(&Demo, &args(&["demo", "start"]), vec![]), 6);
        assert_eq!(
            run(
                &Demo,
                &args(&["demo", "start"]),
                vars(&[("OCF_RESKEY_ip", "1.2.3.4")])
            ),
            0
        );
        assert_eq!(
            run(&Demo, &args(&["demo", "--ip", "1.2.3.4", "start"]), vec![]),
            0
        );
        assert_eq!(run(&Demo, &args(&["demo", "monitor"]), vec![]), 7);
        assert_eq!(
            run(
                &Demo,
                &args(&["demo", "monitor"]),
                vars(&[("OCF_RESKEY_CRM_meta_interval", "10000")])
            ),
            0
        );
        assert_eq!(
            run(&Demo, &args(&["demo", "--bogus", "x", "start"]), vec![]),
            2
        );
        assert_eq!(run(&Demo, &args(&["demo", "--help"]), vec![]), 0);
    }
}
