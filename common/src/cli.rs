//! The command line for people: `anchorip --ip 10.17.1.18 --nic eth0 monitor`. Flags become the
//! same variables Pacemaker would set; Pacemaker's own `[path, action]` needs no parser at all.
//! A command line that cannot be run is an OCF answer too: 3 for a missing action, 2 for an
//! unknown argument, 6 for a flag with a bad value, each with its exit reason.

use crate::error::OcfError;
use crate::spec::AgentSpec;

/// What the command line asked for.
#[derive(Debug, PartialEq, Eq)]
pub struct Invocation {
    pub action: String,
    /// Variables that flags set; they take the place of the environment's.
    pub overrides: Vec<(String, String)>,
}

/// Why the command line does not name an action to run.
#[derive(Debug)]
pub enum NotRun {
    /// `--help` or `--version`: print this and exit 0.
    Shown(String),
    /// A command line that cannot be run: the text clap printed for a person, and the OCF answer.
    Refused { usage: String, error: OcfError },
}

/// The `clap` command of an agent, derived from its declaration.
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
            .allow_hyphen_values(true)
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
                .allow_hyphen_values(true)
                .value_parser(clap::value_parser!(u64))
                .help("the action's timeout, as Pacemaker's op timeout [default: 20]"),
        )
        .arg(
            Arg::new("check-level")
                .long("check-level")
                .value_name("LEVEL")
                .allow_hyphen_values(true)
                .value_parser(["0", "10", "20"])
                .help("monitor/validate-all depth (OCF_CHECK_LEVEL)"),
        )
        .arg(
            Arg::new("interval")
                .long("interval")
                .value_name("SECONDS")
                .allow_hyphen_values(true)
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

/// clap's one-line message, without its "error: " prefix and its usage.
fn headline(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let line = text.lines().next().unwrap_or("bad command line");
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

/// Parse argv. Pacemaker's `[path, action]` is answered without building a parser at all.
pub fn parse_args(spec: &'static AgentSpec, args: &[String]) -> Result<Invocation, NotRun> {
    use clap::error::ErrorKind;
    if args.len() == 2 && !args[1].starts_with('-') {
        return Ok(Invocation {
            action: args[1].clone(),
            overrides: Vec::new(),
        });
    }
    let m = match command(spec).try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => {
            let usage = e.render().to_string();
            let error = match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    return Err(NotRun::Shown(usage))
                }
                ErrorKind::MissingRequiredArgument
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    OcfError::unimplemented(format!(
                        "no action given (one of: {})",
                        spec.actions
                            .iter()
                            .map(|a| a.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }
                ErrorKind::InvalidValue | ErrorKind::ValueValidation | ErrorKind::InvalidUtf8 => {
                    OcfError::configured(format!("command line: {}", headline(&e)))
                }
                _ => OcfError::args(format!("command line: {}", headline(&e))),
            };
            return Err(NotRun::Refused { usage, error });
        }
    };
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
