//! Instance parameters resolved against their declaration: legacy aliases, defaults, the CIB
//! secret placeholder, and typed reads whose errors name the parameter.
//! Nothing here demands a parameter by itself: each action decides what it needs (a stop with
//! nothing to stop must succeed without any).

use crate::error::{OcfError, OcfResult};
use crate::secret::Secret;
use crate::spec::{AgentSpec, ParamKind, ParamSpec};
use std::collections::BTreeMap;

/// What a stop may receive instead of a `cibsecret` value.
pub const CIB_SECRET_PLACEHOLDER: &str = "lrm://";

/// Pacemaker's `crm_is_true` vocabulary.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "y" | "on" => Some(true),
        "0" | "false" | "no" | "n" | "off" => Some(false),
        _ => None,
    }
}

#[derive(Clone, Debug)]
struct Given {
    value: String,
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
    pub fn resolve(spec: &'static AgentSpec, reskeys: &BTreeMap<String, String>) -> Params {
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

    fn spec_of(&self, name: &str) -> &'static ParamSpec {
        match self.spec.param(name) {
            Some(p) => p,
            // A typo in an agent's own code: fail loudly in tests, never in the field.
            None => panic!("{} declares no parameter '{name}'", self.spec.name),
        }
    }

    /// Messages about conflicting names, for the log.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The value given (by any of its names), `lrm://` included; no default.
    pub fn raw(&self, name: &str) -> Option<&str> {
        let p = self.spec_of(name);
        self.given.get(p.name).map(|g| g.value.as_str())
    }

    /// True when the value is the CIB secret placeholder (its real value is not on this node).
    pub fn is_placeholder(&self, name: &str) -> bool {
        self.raw(name) == Some(CIB_SECRET_PLACEHOLDER)
    }

    /// True when a usable value was given, by the parameter's name or an alias.
    pub fn is_set(&self, name: &str) -> bool {
        self.raw(name).is_some() && !self.is_placeholder(name)
    }

    /// The name the value arrived under, for messages: `floating_ip` when the alias was used.
    pub fn given_as(&self, name: &str) -> &'static str {
        let p = self.spec_of(name);
        self.given.get(p.name).map(|g| g.via).unwrap_or(p.name)
    }

    /// The usable value, or the declared default.
    pub fn get(&self, name: &str) -> Option<&str> {
        let p = self.spec_of(name);
        if self.is_set(name) {
            self.raw(name)
        } else {
            p.default
        }
    }

    /// The value, or an error naming the parameter: 6 when it is missing (wrong on every node),
    /// 5 when it is the CIB secret placeholder (its value is missing on this node only).
    pub fn require(&self, name: &str) -> OcfResult<&str> {
        if self.is_placeholder(name) {
            return Err(OcfError::installed(format!(
                "parameter '{}' arrived as the CIB secret placeholder '{}': its value is missing on this node (run 'cibsecret sync')",
                self.given_as(name),
                CIB_SECRET_PLACEHOLDER
            )));
        }
        let p = self.spec_of(name);
        self.get(name).ok_or_else(|| {
            let names = std::iter::once(p.name)
                .chain(p.aliases.iter().copied())
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(" or ");
            OcfError::configured(format!("parameter {names} is required but not set"))
        })
    }

    /// A secret parameter's value, never printed.
    pub fn secret(&self, name: &str) -> Option<Secret> {
        if self.is_set(name) {
            self.raw(name).map(Secret::new)
        } else {
            None
        }
    }

    /// The value shown in a message: secrets are never shown.
    fn shown(&self, p: &ParamSpec, value: &str) -> String {
        if p.secret {
            "***".into()
        } else {
            format!("'{value}'")
        }
    }

    /// An integer parameter (given or default); 6 naming it when it does not parse.
    pub fn integer(&self, name: &str) -> OcfResult<Option<i64>> {
        let p = self.spec_of(name);
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.trim().parse::<i64>().map(Some).map_err(|_| {
                OcfError::configured(format!(
                    "parameter '{}' must be an integer, got {}",
                    self.given_as(name),
                    self.shown(p, v)
                ))
            }),
        }
    }

    /// A boolean parameter (given or default); 6 naming it when it is not a boolean word.
    pub fn boolean(&self, name: &str) -> OcfResult<Option<bool>> {
        let p = self.spec_of(name);
        match self.get(name) {
            None => Ok(None),
            Some(v) => parse_bool(v).map(Some).ok_or_else(|| {
                OcfError::configured(format!(
                    "parameter '{}' must be a boolean (true/false, yes/no, 1/0), got {}",
                    self.given_as(name),
                    self.shown(p, v)
                ))
            }),
        }
    }

    /// Check every given integer and boolean parameter against its declared type.
    pub fn check_types(&self) -> OcfResult<()> {
        for p in self.spec.params {
            match p.kind {
                ParamKind::Integer => {
                    self.integer(p.name)?;
                }
                ParamKind::Boolean => {
                    self.boolean(p.name)?;
                }
                ParamKind::String => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{ActionSpec, AgentSpec};

    static SPEC: AgentSpec = AgentSpec {
        name: "demo",
        version: "0",
        shortdesc: "",
        longdesc: "",
        params: &[
            ParamSpec::string("ip").required().aliases(&["floating_ip"]),
            ParamSpec::string("token").secret().aliases(&["do_token"]),
            ParamSpec::integer("count").default("3"),
            ParamSpec::boolean("flag"),
            ParamSpec::string("nic").default("lo"),
        ],
        actions: &[ActionSpec::new("start", 20)],
    };

    fn params(kv: &[(&str, &str)]) -> Params {
        let m = kv
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Params::resolve(&SPEC, &m)
    }

    #[test]
    fn defaults_apply_when_unset() {
        let p = params(&[]);
        assert_eq!(p.get("nic"), Some("lo"));
        assert_eq!(p.integer("count").unwrap(), Some(3));
        assert_eq!(p.get("ip"), None);
        assert!(!p.is_set("nic"));
    }

    #[test]
    fn legacy_alias_carries_the_value() {
        let p = params(&[("floating_ip", "203.0.113.7")]);
        assert_eq!(p.require("ip").unwrap(), "203.0.113.7");
        assert_eq!(p.given_as("ip"), "floating_ip");
        assert!(p.warnings().is_empty());
    }

    #[test]
    fn own_name_wins_over_alias_with_a_warning() {
        let p = params(&[("ip", "203.0.113.7"), ("floating_ip", "203.0.113.8")]);
        assert_eq!(p.get("ip"), Some("203.0.113.7"));
        assert_eq!(p.warnings().len(), 1);
        assert!(p.warnings()[0].contains("'ip' and 'floating_ip' disagree"));
    }

    #[test]
    fn missing_required_is_6_naming_every_name() {
        let e = params(&[]).require("ip").unwrap_err();
        assert_eq!(e.code, crate::OcfCode::ErrConfigured);
        assert_eq!(
            e.reason,
            "parameter 'ip' or 'floating_ip' is required but not set"
        );
    }

    #[test]
    fn cib_secret_placeholder_is_not_a_value() {
        let p = params(&[("do_token", "lrm://")]);
        assert!(p.is_placeholder("token"));
        assert!(!p.is_set("token"));
        assert!(p.secret("token").is_none());
        let e = p.require("token").unwrap_err();
        assert_eq!(e.code, crate::OcfCode::ErrInstalled);
        assert!(e.reason.contains("'do_token'"));
    }

    #[test]
    fn typed_errors_name_the_parameter_and_hide_secrets() {
        let e = params(&[("count", "many")]).integer("count").unwrap_err();
        assert_eq!(e.code, crate::OcfCode::ErrConfigured);
        assert_eq!(e.reason, "parameter 'count' must be an integer, got 'many'");
        let e = params(&[("flag", "maybe")]).check_types().unwrap_err();
        assert!(e.reason.starts_with("parameter 'flag' must be a boolean"));
        assert!(params(&[("flag", "yes"), ("count", " 7 ")])
            .check_types()
            .is_ok());
    }

    #[test]
    fn secret_value_is_wrapped() {
        let p = params(&[("token", "dop_v1_x")]);
        let s = p.secret("token").unwrap();
        assert_eq!(s.expose(), "dop_v1_x");
        assert_eq!(format!("{s:?}"), "Secret(***)");
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
    #[should_panic(expected = "declares no parameter 'typo'")]
    fn undeclared_parameter_is_a_programming_error() {
        params(&[]).get("typo");
    }
}
