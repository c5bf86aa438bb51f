//! An agent declared as data: its parameters and actions, each written once.
//! The meta-data XML, `--help`, defaults, legacy aliases and type checks all derive from this.
//! A parameter is declared as a typed handle, `static IP: Param<IpAddr> = Param::new("ip")…`,
//! and read only through that handle (`ctx.params.need(&IP)`): a misspelt parameter is a
//! compile error, and its value arrives parsed, with the one error shape of `params`.

use crate::params::ParamValue;
use std::marker::PhantomData;

/// The type of a parameter's value, as OCF meta-data names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    String,
    Integer,
    Boolean,
}

impl ParamKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            ParamKind::String => "string",
            ParamKind::Integer => "integer",
            ParamKind::Boolean => "boolean",
        }
    }
}

/// One instance parameter, as the meta-data, `--help` and the resolver see it (whatever its
/// type). Agents declare `Param<T>` handles, whose `spec` this is.
#[derive(Clone, Copy, Debug)]
pub struct ParamSpec {
    pub name: &'static str,
    pub kind: ParamKind,
    /// The agent cannot start without it. A parameter with legacy aliases is advertised as not
    /// required (either name may carry it); the agent still demands one of them.
    pub required: bool,
    pub unique: bool,
    pub default: Option<&'static str>,
    pub shortdesc: &'static str,
    pub longdesc: &'static str,
    /// Older names that mean the same (the tutorial agent's `do_token`, the shell agent's `conffile`).
    pub aliases: &'static [&'static str],
    /// Never printed, never a command-line flag (argv is public): environment or file only.
    pub secret: bool,
    /// Whether a text parses as this parameter's type (the `ParamValue` of its handle).
    pub check: fn(&str) -> Result<(), String>,
}

fn accept_any(_: &str) -> Result<(), String> {
    Ok(())
}

fn check_as<T: ParamValue>(text: &str) -> Result<(), String> {
    T::parse(text).map(|_| ())
}

impl ParamSpec {
    const fn new(name: &'static str, kind: ParamKind) -> ParamSpec {
        ParamSpec {
            name,
            kind,
            required: false,
            unique: false,
            default: None,
            shortdesc: "",
            longdesc: "",
            aliases: &[],
            secret: false,
            check: accept_any,
        }
    }
    /// Whether `name` is this parameter or one of its aliases.
    pub fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.aliases.contains(&name)
    }
}

/// A declared parameter with the type its value parses to: the only way an agent reads it.
/// Build it like a `ParamSpec`: `Param::<IpAddr>::new("ip").required().short("…")`, then list
/// `&IP.spec` in the agent's `AgentSpec::params`.
#[derive(Debug)]
pub struct Param<T> {
    pub spec: ParamSpec,
    _type: PhantomData<fn() -> T>,
}

impl<T: ParamValue> Param<T> {
    pub const fn new(name: &'static str) -> Param<T> {
        let mut spec = ParamSpec::new(name, T::KIND);
        spec.check = check_as::<T>;
        spec.secret = T::SECRET;
        Param {
            spec,
            _type: PhantomData,
        }
    }
    pub const fn required(mut self) -> Self {
        self.spec.required = true;
        self
    }
    pub const fn unique(mut self) -> Self {
        self.spec.unique = true;
        self
    }
    /// The default, as the meta-data shows it (a unit test of each agent parses every default).
    pub const fn default(mut self, value: &'static str) -> Self {
        self.spec.default = Some(value);
        self
    }
    pub const fn short(mut self, text: &'static str) -> Self {
        self.spec.shortdesc = text;
        self
    }
    pub const fn long(mut self, text: &'static str) -> Self {
        self.spec.longdesc = text;
        self
    }
    pub const fn aliases(mut self, names: &'static [&'static str]) -> Self {
        self.spec.aliases = names;
        self
    }
}

/// One action as advertised in the meta-data.
#[derive(Clone, Copy, Debug)]
pub struct ActionSpec {
    pub name: &'static str,
    /// Seconds. An honest value: what the action can really need, waits included.
    pub timeout: u32,
    pub interval: Option<u32>,
    pub depth: Option<u32>,
}

impl ActionSpec {
    pub const fn new(name: &'static str, timeout: u32) -> ActionSpec {
        ActionSpec {
            name,
            timeout,
            interval: None,
            depth: None,
        }
    }
    pub const fn interval(mut self, seconds: u32) -> ActionSpec {
        self.interval = Some(seconds);
        self
    }
    pub const fn depth(mut self, level: u32) -> ActionSpec {
        self.depth = Some(level);
        self
    }
}

/// A whole agent.
#[derive(Debug)]
pub struct AgentSpec {
    pub name: &'static str,
    /// The agent's own version (`resource-agent@version`).
    pub version: &'static str,
    pub shortdesc: &'static str,
    pub longdesc: &'static str,
    pub params: &'static [&'static ParamSpec],
    /// Advertised actions. An action not listed here returns 3 (OCF_ERR_UNIMPLEMENTED).
    pub actions: &'static [ActionSpec],
}

impl AgentSpec {
    pub fn param(&self, name: &str) -> Option<&'static ParamSpec> {
        self.params.iter().copied().find(|p| p.answers_to(name))
    }
    /// Whether `p` is one of this agent's declared parameters (the very declaration).
    pub fn declares(&self, p: &ParamSpec) -> bool {
        self.params.iter().any(|q| std::ptr::eq(*q, p))
    }
    /// Every declared default parses as its parameter's type; for each agent's unit tests.
    pub fn check_defaults(&self) -> Result<(), String> {
        for p in self.params {
            if let Some(d) = p.default {
                (p.check)(d).map_err(|e| format!("{}: default '{d}' {e}", p.name))?;
            }
        }
        Ok(())
    }
    pub fn action(&self, name: &str) -> Option<&ActionSpec> {
        self.actions.iter().find(|a| a.name == name)
    }
}
