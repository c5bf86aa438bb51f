//! Instance parameters resolved against their declaration: legacy aliases, defaults, the CIB
//! secret placeholder, and typed reads through each parameter's handle (`Param<T>`), whose errors
//! all have one shape: `parameter '<name as the user wrote it>': '<value>' <what is wrong>`.
//! Nothing here demands a parameter by itself: each action decides what it needs (a stop with
//! nothing to stop must succeed without any).

use crate::code::OcfCode;
use crate::env::RawValue;
use crate::error::{OcfError, OcfResult};
use crate::spec::{AgentSpec, Param, ParamKind, ParamSpec};
use std::collections::BTreeMap;
use std::fmt::Display;

/// What a stop may receive instead of a `cibsecret` value.
pub const CIB_SECRET_PLACEHOLDER: &str = "lrm://";

/// How much of a value an error message shows (an exit reason lives in the CIB).
const SHOWN_CHARS: usize = 64;

/// Pacemaker's `crm_is_true` vocabulary.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "y" | "on" => Some(true),
        "0" | "false" | "no" | "n" | "off" => Some(false),
        _ => None,
    }
}

/// A type a parameter's text parses to. `parse` errors complete the sentence
/// "parameter 'x': 'value' …", e.g. "is not an IPv4 or IPv6 address".
pub trait ParamValue: Sized {
    /// The type the meta-data advertises.
    const KIND: ParamKind;
    /// Never shown, never a flag.
    const SECRET: bool = false;
    fn parse(text: &str) -> Result<Self, String>;
}

/// A value as it may be shown in a message: credentials of a URL hidden, control characters
/// escaped, cut to a bounded length.
pub fn shown(value: &str) -> String {
    let hidden;
    let value = match value.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            match authority.rfind('@') {
                Some(at) => {
                    hidden = format!("{scheme}://***{}", &rest[at..]);
                    hidden.as_str()
                }
                None => value,
            }
        }
        None => value,
    };
    let mut out = String::new();
    for (i, c) in value.chars().enumerate() {
        if i == SHOWN_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[derive(Clone, Debug)]
struct Given {
    value: RawValue,
    /// The name it arrived under (the parameter's own, or a legacy alias).
    via: &'static str,
}

#[derive(Clone, Debug)]
pub struct Params {
    spec: &'static AgentSpec,
    given: BTreeMap<&'static str, Given>,
    warnings: Vec<String>,
}

impl Params {
    /// Resolve `reskeys` (`OCF_RESKEY_*` without the prefix) against the agent's declaration.
    pub fn resolve(spec: &'static AgentSpec, reskeys: &BTreeMap<String, RawValue>) -> Params {
        let mut given = BTreeMap::new();
        let mut warnings = Vec::new();
        for p in spec.params {
            let mut found: Option<Given> = None;
            for name in std::iter::once(&p.name).chain(p.aliases.iter()) {
                let Some(value) = reskeys.get(*name).filter(|v| !v.is_empty()) else {
                    continue;
                };
                match &found {
                    None => {
                        found = Some(Given {
                            value: value.clone(),
                            via: name,
                        })
                    }
                    Some(first) if first.value != *value => warnings.push(format!(
                        "parameters '{}' and '{}' disagree; using '{}'",
                        first.via, name, first.via
                    )),
                    Some(_) => {}
                }
            }
            if let Some(g) = found {
                given.insert(p.name, g);
            }
        }
        Params {
            spec,
            given,
            warnings,
        }
    }

    /// Messages about conflicting names, for the log.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn given(&self, p: &ParamSpec) -> Option<&Given> {
        debug_assert!(
            self.spec.declares(p),
            "{} does not list parameter '{}' in its AgentSpec",
            self.spec.name,
            p.name
        );
        self.given.get(p.name)
    }

    /// The name the value arrived under, for messages: `floating_ip` when the alias was used.
    pub fn name_of<T>(&self, p: &Param<T>) -> &'static str {
        self.given(&p.spec).map(|g| g.via).unwrap_or(p.spec.name)
    }

    /// The text given (by any of its names), placeholder included; no default. None for a value
    /// that is not UTF-8. For words and for naming an instance, never for decisions.
    pub fn text<T>(&self, p: &Param<T>) -> Option<&str> {
        match &self.given(&p.spec)?.value {
            RawValue::Text(t) => Some(t),
            RawValue::NotUtf8 => None,
        }
    }

    /// True when a usable value was given, by the parameter's name or an alias.
    pub fn has<T>(&self, p: &Param<T>) -> bool {
        self.given(&p.spec).is_some() && self.text(p) != Some(CIB_SECRET_PLACEHOLDER)
    }

    /// The given text, or the declared default; errors for the placeholder and for bytes that
    /// are not text.
    fn effective<T>(&self, p: &Param<T>) -> OcfResult<Option<&str>> {
        let Some(g) = self.given(&p.spec) else {
            return Ok(p.spec.default);
        };
        match &g.value {
            RawValue::NotUtf8 => Err(OcfError::configured(format!(
                "parameter '{}' is not valid UTF-8 text",
                g.via
            ))),
            RawValue::Text(t) if t == CIB_SECRET_PLACEHOLDER => Err(OcfError::installed(format!(
                "parameter '{}' arrived as the CIB secret placeholder '{CIB_SECRET_PLACEHOLDER}': its value is missing on this node (run 'cibsecret sync')",
                g.via
            ))),
            RawValue::Text(t) => Ok(Some(t)),
        }
    }

    /// The value (given, else the default), parsed; None when neither exists. 6 naming the
    /// parameter when it does not parse.
    pub fn read<T: ParamValue>(&self, p: &Param<T>) -> OcfResult<Option<T>> {
        match self.effective(p)? {
            None => Ok(None),
            Some(text) => T::parse(text)
                .map(Some)
                .map_err(|why| self.invalid_text(&p.spec, self.name_of(p), text, why)),
        }
    }

    /// The value, parsed; 6 naming every name it may be given by when it is missing.
    pub fn need<T: ParamValue>(&self, p: &Param<T>) -> OcfResult<T> {
        self.read(p)?.ok_or_else(|| {
            let names = std::iter::once(p.spec.name)
                .chain(p.spec.aliases.iter().copied())
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(" or ");
            OcfError::configured(format!("parameter {names} is required but not set"))
        })
    }

    fn invalid_text(
        &self,
        spec: &ParamSpec,
        name: &str,
        text: &str,
        why: impl Display,
    ) -> OcfError {
        if spec.secret {
            OcfError::configured(format!("parameter '{name}' {why}"))
        } else {
            OcfError::configured(format!("parameter '{name}': '{}' {why}", shown(text)))
        }
    }

    /// 6: the value of `p` is wrong on every node, because `why` ("is out of range (0-100)").
    pub fn invalid<T>(&self, p: &Param<T>, why: impl Display) -> OcfError {
        let text = self.text(p).or(p.spec.default).unwrap_or("");
        self.invalid_text(&p.spec, self.name_of(p), text, why)
    }

    /// An error of any code about `p`: `parameter '<name>': <detail>`.
    pub fn fault<T>(&self, code: OcfCode, p: &Param<T>, detail: impl Display) -> OcfError {
        OcfError::new(code, format!("parameter '{}': {detail}", self.name_of(p)))
    }

    /// Every given parameter parses as its declared type (validate-all level 0 and start).
    pub fn check_all(&self) -> OcfResult<()> {
        for p in self.spec.params {
            let Some(g) = self.given.get(p.name) else {
                continue;
            };
            let RawValue::Text(text) = &g.value else {
                return Err(OcfError::configured(format!(
                    "parameter '{}' is not valid UTF-8 text",
                    g.via
                )));
            };
            if text == CIB_SECRET_PLACEHOLDER {
                continue;
            }
            (p.check)(text).map_err(|why| self.invalid_text(p, g.via, text, why))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::spec::{ActionSpec, AgentSpec};
    use crate::values::Seconds;
    use std::net::IpAddr;

    static IP: Param<IpAddr> = Param::new("ip").required().aliases(&["floating_ip"]);
    static TOKEN: Param<Secret> = Param::new("token").aliases(&["do_token"]);
    static COUNT: Param<u32> = Param::new("count").default("3");
    static FLAG: Param<bool> = Param::new("flag");
    static NIC: Param<String> = Param::new("nic").default("lo");
    static WAIT: Param<Seconds> = Param::new("wait");
    static UNLISTED: Param<String> = Param::new("unlisted");

    static SPEC: AgentSpec = AgentSpec {
        name: "demo",
        version: "0",
        shortdesc: "",
        longdesc: "",
        params: &[
            &IP.spec,
            &TOKEN.spec,
            &COUNT.spec,
            &FLAG.spec,
            &NIC.spec,
            &WAIT.spec,
        ],
        actions: &[ActionSpec::new("start", 20)],
    };

    fn params(kv: &[(&str, &str)]) -> Params {
        let m = kv
            .iter()
            .map(|(k, v)| (k.to_string(), RawValue::Text(v.to_string())))
            .collect();
        Params::resolve(&SPEC, &m)
    }

    #[test]
    fn defaults_apply_when_unset() {
        let p = params(&[]);
        assert_eq!(p.read(&NIC).unwrap().as_deref(), Some("lo"));
        assert_eq!(p.read(&COUNT).unwrap(), Some(3));
        assert_eq!(p.read(&IP).unwrap(), None);
        assert!(!p.has(&NIC));
        assert!(SPEC.check_defaults().is_ok());
    }

    #[test]
    fn legacy_alias_carries_the_value() {
        let p = params(&[("floating_ip", "203.0.113.7")]);
        assert_eq!(p.need(&IP).unwrap().to_string(), "203.0.113.7");
        assert_eq!(p.name_of(&IP), "floating_ip");
        assert!(p.warnings().is_empty());
    }

    #[test]
    fn own_name_wins_over_alias_with_a_warning() {
        let p = params(&[("ip", "203.0.113.7"), ("floating_ip", "203.0.113.8")]);
        assert_eq!(p.need(&IP).unwrap().to_string(), "203.0.113.7");
        assert_eq!(p.warnings().len(), 1);
        assert!(p.warnings()[0].contains("'ip' and 'floating_ip' disagree"));
    }

    #[test]
    fn missing_required_is_6_naming_every_name() {
        let e = params(&[]).need(&IP).unwrap_err();
        assert_eq!(e.code, OcfCode::ErrConfigured);
        assert_eq!(
            e.reason,
            "parameter 'ip' or 'floating_ip' is required but not set"
        );
    }

    #[test]
    fn cib_secret_placeholder_is_not_a_value() {
        let p = params(&[("do_token", "lrm://")]);
        assert!(!p.has(&TOKEN));
        let e = p.read(&TOKEN).unwrap_err();
        assert_eq!(e.code, OcfCode::ErrInstalled);
        assert!(e.reason.contains("'do_token'"));
        assert!(p.check_all().is_ok());
    }

    #[test]
    fn one_error_shape_naming_the_parameter_as_written() {
        let e = params(&[("count", "many")]).read(&COUNT).unwrap_err();
        assert_eq!(e.code, OcfCode::ErrConfigured);
        assert_eq!(e.reason, "parameter 'count': 'many' is not a whole number");
        let e = params(&[("floating_ip", "10.1.2")]).need(&IP).unwrap_err();
        assert_eq!(
            e.reason,
            "parameter 'floating_ip': '10.1.2' is not an IPv4 or IPv6 address"
        );
        let e = params(&[("flag", "maybe")]).check_all().unwrap_err();
        assert!(e
            .reason
            .starts_with("parameter 'flag': 'maybe' is not a boolean"));
        let e = params(&[("wait", "-1")]).check_all().unwrap_err();
        assert!(
            e.reason.starts_with("parameter 'wait': '-1' is not"),
            "{}",
            e.reason
        );
        assert!(params(&[("flag", "yes"), ("count", " 7 ")])
            .check_all()
            .is_ok());
        let p = params(&[("count", "7")]);
        let e = p.invalid(&COUNT, "is out of range (0-5)");
        assert_eq!(e.reason, "parameter 'count': '7' is out of range (0-5)");
        let e = p.fault(OcfCode::ErrInstalled, &NIC, "interface 'lo' is missing");
        assert_eq!(
            (e.code, e.reason.as_str()),
            (
                OcfCode::ErrInstalled,
                "parameter 'nic': interface 'lo' is missing"
            )
        );
    }

    #[test]
    fn shown_values_are_bounded_and_escaped_and_secrets_never_shown() {
        let long = "x".repeat(100_000);
        let e = params(&[("ip", &long)]).need(&IP).unwrap_err();
        assert!(e.reason.len() < 200, "{}", e.reason.len());
        assert_eq!(
            shown("https://user:pw@api.example.com/v2"),
            "https://***@api.example.com/v2"
        );
        let e = params(&[("ip", "a\u{1b}[2Jb")]).need(&IP).unwrap_err();
        assert!(e.reason.contains("a\\u{1b}[2Jb"), "{}", e.reason);
        let p = params(&[("token", "dop_v1_x")]);
        let e = p.invalid(&TOKEN, "holds a control character");
        assert_eq!(e.reason, "parameter 'token' holds a control character");
        assert!(!e.reason.contains("dop_v1_x"));
    }

    #[test]
    fn bytes_that_are_not_text_are_6_without_the_value() {
        let mut m = BTreeMap::new();
        m.insert("token".to_string(), RawValue::NotUtf8);
        m.insert("ip".to_string(), RawValue::NotUtf8);
        let p = Params::resolve(&SPEC, &m);
        let e = p.read(&TOKEN).unwrap_err();
        assert_eq!(e.code, OcfCode::ErrConfigured);
        assert_eq!(e.reason, "parameter 'token' is not valid UTF-8 text");
        assert_eq!(p.text(&IP), None);
        assert!(p.check_all().is_err());
        // What is not asked for is no error: a stop with nothing to stop reads nothing.
        assert_eq!(p.read(&NIC).unwrap().as_deref(), Some("lo"));
    }

    #[test]
    fn secret_value_is_wrapped() {
        let p = params(&[("token", "dop_v1_x")]);
        let s = p.read(&TOKEN).unwrap().unwrap();
        assert_eq!(s.expose(), "dop_v1_x");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert!(TOKEN.spec.secret);
    }

    #[test]
    fn booleans_follow_crm_is_true() {
        for t in ["true", "YES", "1", "on", "y"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["false", "no", "0", "off", "N"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        assert_eq!(parse_bool("2"), None);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "does not list parameter 'unlisted'")]
    fn an_unlisted_handle_is_caught_in_tests() {
        let _ = params(&[]).read(&UNLISTED);
    }
}
