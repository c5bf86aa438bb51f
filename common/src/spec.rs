//! An agent declared as data: its parameters and actions, each written once.
//! The meta-data XML, `--help`, defaults, legacy aliases and type checks all derive from this.

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

/// One instance parameter. Build it with the `const fn` methods:
/// `ParamSpec::string("ip").required().unique().short("…").long("…").alias("floating_ip")`.
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
        }
    }
    pub const fn string(name: &'static str) -> ParamSpec {
        Self::new(name, ParamKind::String)
    }
    pub const fn integer(name: &'static str) -> ParamSpec {
        Self::new(name, ParamKind::Integer)
    }
    pub const fn boolean(name: &'static str) -> ParamSpec {
        Self::new(name, ParamKind::Boolean)
    }
    pub const fn required(mut self) -> ParamSpec {
        self.required = true;
        self
    }
    pub const fn unique(mut self) -> ParamSpec {
        self.unique = true;
        self
    }
    pub const fn default(mut self, value: &'static str) -> ParamSpec {
        self.default = Some(value);
        self
    }
    pub const fn short(mut self, text: &'static str) -> ParamSpec {
        self.shortdesc = text;
        self
    }
    pub const fn long(mut self, text: &'static str) -> ParamSpec {
        self.longdesc = text;
        self
    }
    pub const fn aliases(mut self, names: &'static [&'static str]) -> ParamSpec {
        self.aliases = names;
        self
    }
    pub const fn secret(mut self) -> ParamSpec {
        self.secret = true;
        self
    }
    /// Whether `name` is this parameter or one of its aliases.
    pub fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.aliases.contains(&name)
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
    pub params: &'static [ParamSpec],
    /// Advertised actions. An action not listed here returns 3 (OCF_ERR_UNIMPLEMENTED).
    pub actions: &'static [ActionSpec],
}

impl AgentSpec {
    pub fn param(&self, name: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.answers_to(name))
    }
    pub fn action(&self, name: &str) -> Option<&ActionSpec> {
        self.actions.iter().find(|a| a.name == name)
    }
}
