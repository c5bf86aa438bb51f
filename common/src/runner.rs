//! What every agent's `main` is: read argv and the environment once, dispatch the action to the
//! agent's handler, and turn the answer into an exit code, one `ocf-exit-reason:` line on
//! failure and, for a person at a terminal, words. `meta-data` needs nothing: no parameters, no
//! root, no network.

use crate::cli::{self, NotRun};
use crate::code::OcfCode;
use crate::contract::{Action, Agent, Context, Status};
use crate::deadline::Deadline;
use crate::env::OcfEnv;
use crate::error::{OcfError, OcfResult};
use crate::log::Logger;
use crate::metadata;
use std::ffi::OsString;
use std::io::{IsTerminal, Write};

/// Run the action named in `args` with the variables `vars`; returns the exit status.
/// Everything but the exit code goes to stdout/stderr here.
pub fn run<A: Agent, K, V>(agent: &A, args: &[String], vars: Vec<(K, V)>) -> i32
where
    K: Into<OsString>,
    V: Into<OsString>,
{
    let spec = agent.spec();
    let terminal_out = std::io::stdout().is_terminal();
    let invocation = match cli::parse_args(spec, args) {
        Ok(i) => i,
        Err(NotRun::Shown(text)) => {
            print!("{text}");
            return 0;
        }
        Err(NotRun::Refused { usage, error }) => {
            eprint!("{usage}");
            let log = Logger::stderr(spec.name);
            return report(
                &log,
                "command line",
                &Deadline::for_timeout(None),
                Err(error),
                terminal_out,
            );
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
            let _ = cli::command(spec).print_long_help();
            return 0;
        }
        _ => {}
    }

    let mut vars: Vec<(OsString, OsString)> = vars
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    vars.extend(
        invocation
            .overrides
            .into_iter()
            .map(|(k, v)| (k.into(), v.into())),
    );
    let env = OcfEnv::from_vars(vars);
    let log = Logger::new(
        &env.log,
        env.resource_type.as_deref().unwrap_or(spec.name),
        env.instance.as_deref().unwrap_or(""),
        std::io::stderr().is_terminal(),
    );

    // notify is owed a 0 by the contract, advertised or not.
    let action = Action::parse(&invocation.action)
        .filter(|a| *a == Action::Notify || spec.action(a.name()).is_some());
    let Some(action) = action else {
        let e = OcfError::unimplemented(format!(
            "action '{}' is not implemented by {}",
            crate::params::shown(&invocation.action),
            spec.name
        ));
        return report(
            &log,
            &invocation.action,
            &Deadline::for_timeout(None),
            Err(e),
            terminal_out,
        );
    };
    let ctx = Context::new(spec, action, env, log);
    let result = match action {
        Action::Start => agent.start(&ctx),
        Action::Stop => agent.stop(&ctx),
        Action::Monitor => agent.monitor(&ctx),
        Action::ValidateAll => agent.validate(&ctx),
        Action::Reload => agent.reload(&ctx),
        Action::Notify => agent.notify(&ctx),
        Action::Promote => agent.promote(&ctx),
        Action::Demote => agent.demote(&ctx),
    };
    report(&ctx.log, action.name(), &ctx.deadline, result, terminal_out)
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
            // What changes the node is worth a line in every log; monitors are too frequent.
            let line = format!("{action}: {} after {elapsed} ms: {message}", status.code);
            if matches!(action, "start" | "stop" | "reload" | "promote" | "demote") {
                log.info(line);
            } else {
                log.debug(line);
            }
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
    let code = run(agent, &args, std::env::vars_os().collect());
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{ActionSpec, AgentSpec, Param};
    use crate::Secret;
    use std::net::IpAddr;

    static IP: Param<IpAddr> = Param::new("ip").required().short("address");
    static CIDR: Param<u8> = Param::new("cidr_netmask").short("prefix");
    static TOKEN: Param<Secret> = Param::new("api_token").short("token");

    static SPEC: AgentSpec = AgentSpec {
        name: "demo",
        version: "0.1.0",
        shortdesc: "demo",
        longdesc: "demo agent",
        params: &[&IP.spec, &CIDR.spec, &TOKEN.spec],
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
            let ip = ctx.params.need(&IP)?;
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
            ctx.params.need(&IP)?;
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
    fn none() -> Vec<(String, String)> {
        vec![]
    }

    #[test]
    fn pacemaker_form_needs_no_parser() {
        let i = cli::parse_args(&SPEC, &args(&["demo", "monitor"])).unwrap();
        assert_eq!(i.action, "monitor");
        assert!(i.overrides.is_empty());
    }

    #[test]
    fn flags_become_the_same_variables() {
        let i = cli::parse_args(
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
        assert!(cli::parse_args(&SPEC, &args(&["demo", "--api_token", "x", "start"])).is_err());
        let help = cli::command(&SPEC).render_long_help().to_string();
        assert!(help.contains("OCF_RESKEY_api_token"));
        assert!(help.contains("--ip"));
    }

    fn refused(a: &[&str]) -> OcfError {
        match cli::parse_args(&SPEC, &args(a)) {
            Err(NotRun::Refused { error, .. }) => error,
            other => panic!("{a:?}: {other:?}"),
        }
    }

    #[test]
    fn command_lines_that_cannot_run_are_ocf_answers() {
        assert_eq!(refused(&["demo"]).code, OcfCode::ErrUnimplemented);
        assert!(refused(&["demo"]).reason.starts_with("no action given"));
        assert_eq!(
            refused(&["demo", "--timeout", "-1", "start"]).code,
            OcfCode::ErrConfigured
        );
        assert_eq!(
            refused(&["demo", "--check-level", "5", "monitor"]).code,
            OcfCode::ErrConfigured
        );
        let e = refused(&["demo", "start", "extra"]);
        assert_eq!(e.code, OcfCode::ErrArgs);
        assert!(e.reason.contains("'extra'"), "{}", e.reason);
        assert_eq!(
            refused(&["demo", "--bogus", "x", "start"]).code,
            OcfCode::ErrArgs
        );
        assert!(matches!(
            cli::parse_args(&SPEC, &args(&["demo", "--help"])),
            Err(NotRun::Shown(_))
        ));
    }

    #[test]
    fn exit_codes() {
        assert_eq!(run(&Demo, &args(&["demo", "meta-data"]), none()), 0);
        assert_eq!(run(&Demo, &args(&["demo", "promote"]), none()), 3);
        assert_eq!(run(&Demo, &args(&["demo", "frobnicate"]), none()), 3);
        // notify is owed a 0, advertised or not.
        assert_eq!(run(&Demo, &args(&["demo", "notify"]), none()), 0);
        assert_eq!(run(&Demo, &args(&["demo", "start"]), none()), 6);
        assert_eq!(
            run(
                &Demo,
                &args(&["demo", "start"]),
                vars(&[("OCF_RESKEY_ip", "192.0.2.4")])
            ),
            0
        );
        assert_eq!(
            run(
                &Demo,
                &args(&["demo", "--ip", "192.0.2.4", "start"]),
                none()
            ),
            0
        );
        assert_eq!(run(&Demo, &args(&["demo", "monitor"]), none()), 7);
        assert_eq!(
            run(
                &Demo,
                &args(&["demo", "monitor"]),
                vars(&[("OCF_RESKEY_CRM_meta_interval", "10000")])
            ),
            0
        );
        assert_eq!(
            run(&Demo, &args(&["demo", "--bogus", "x", "start"]), none()),
            2
        );
        assert_eq!(run(&Demo, &args(&["demo"]), none()), 3);
        assert_eq!(
            run(&Demo, &args(&["demo", "--timeout", "-1", "start"]), none()),
            6
        );
        assert_eq!(run(&Demo, &args(&["demo", "--help"]), none()), 0);
    }

    static PROMOTABLE: AgentSpec = AgentSpec {
        name: "demo",
        version: "0.1.0",
        shortdesc: "demo",
        longdesc: "promotable demo agent",
        params: &[],
        actions: &[
            ActionSpec::new("start", 20),
            ActionSpec::new("promote", 20),
            ActionSpec::new("demote", 20),
        ],
    };

    struct Promotable;
    impl Agent for Promotable {
        fn spec(&self) -> &'static AgentSpec {
            &PROMOTABLE
        }
        fn start(&self, _: &Context) -> OcfResult<Status> {
            Ok(Status::ok("started"))
        }
        fn stop(&self, _: &Context) -> OcfResult<Status> {
            Ok(Status::ok("stopped"))
        }
        fn monitor(&self, _: &Context) -> OcfResult<Status> {
            Ok(Status::promoted("promoted"))
        }
        fn validate(&self, _: &Context) -> OcfResult<Status> {
            Ok(Status::ok("valid"))
        }
        fn promote(&self, _: &Context) -> OcfResult<Status> {
            Ok(Status::ok("promoted"))
        }
        fn demote(&self, _: &Context) -> OcfResult<Status> {
            Err(OcfError::generic("cannot demote"))
        }
    }

    #[test]
    fn promote_and_demote_reach_an_agent_that_advertises_them() {
        let p = |a: &str| run(&Promotable, &args(&["demo", a]), none());
        assert_eq!(p("promote"), 0);
        assert_eq!(p("demote"), 1);
        // monitor is not advertised by this spec: 3, whatever the handler would say.
        assert_eq!(p("monitor"), 3);
        assert_eq!(Status::promoted("x").code, OcfCode::RunningPromoted);
        assert_eq!(Action::parse("promote"), Some(Action::Promote));
        assert_eq!(Action::Demote.name(), "demote");
    }

    #[test]
    fn bytes_that_are_not_text_never_abort() {
        use std::os::unix::ffi::OsStringExt;
        let bad = || OsString::from_vec(b"sekrit\xff".to_vec());
        let with = |k: &str| {
            let mut v = vec![(OsString::from("FOO"), bad()), (OsString::from(k), bad())];
            if k != "OCF_RESKEY_ip" {
                v.push((OsString::from("OCF_RESKEY_ip"), OsString::from("192.0.2.4")));
            }
            v
        };
        assert_eq!(run(&Demo, &args(&["demo", "meta-data"]), with("FOO")), 0);
        assert_eq!(
            run(
                &Demo,
                &args(&["demo", "stop"]),
                with("OCF_RESKEY_api_token")
            ),
            0
        );
        assert_eq!(
            run(
                &Demo,
                &args(&["demo", "monitor"]),
                with("OCF_RESKEY_api_token")
            ),
            7
        );
        assert_eq!(
            run(&Demo, &args(&["demo", "start"]), with("OCF_RESKEY_ip")),
            6
        );
    }
}
