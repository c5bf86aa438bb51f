//! The environment Pacemaker (or a person) hands an agent, read once into a typed value.
//! Nothing else in cloudha reads `std::env`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// A parameter's value as it arrived: text, or bytes that are not UTF-8 (an error only when an
/// action reads that parameter, and then without showing the bytes: they may be a token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawValue {
    Text(String),
    NotUtf8,
}

impl RawValue {
    pub fn is_empty(&self) -> bool {
        matches!(self, RawValue::Text(t) if t.is_empty())
    }
}

/// Whether a variable is one the agents read; every other one is ignored, whatever its bytes.
fn is_ours(key: &str) -> bool {
    key.starts_with("OCF_") || key.starts_with("HA_")
}

/// Debian's (and resource-agents') state directory for agents, emptied at boot.
pub const DEFAULT_RSCTMP: &str = "/run/resource-agents";
pub const DEFAULT_OCF_ROOT: &str = "/usr/lib/ocf";

/// How the agent should log (resource-agents' `HA_*` variables).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogSettings {
    /// `HA_LOGFACILITY`: a syslog facility name, or None (unset, empty or "none").
    pub facility: Option<String>,
    /// `HA_LOGTAG`: overrides the `<type>(<instance>)[<pid>]` syslog tag.
    pub tag: Option<String>,
    /// `HA_LOGFILE`: append every line there.
    pub logfile: Option<PathBuf>,
    /// `HA_DEBUGLOG`: append debug lines there.
    pub debuglog: Option<PathBuf>,
    /// `HA_debug` set and non-zero.
    pub debug: bool,
}

/// Clone instance variables (`OCF_RESKEY_CRM_meta_clone*`), present when the resource is a clone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CloneInfo {
    pub instance: Option<u32>,
    pub max: Option<u32>,
    pub globally_unique: bool,
}

#[derive(Clone, Debug, Default)]
pub struct OcfEnv {
    /// `OCF_RESKEY_<name>` values, meta attributes (`CRM_meta_*`) excluded. Empty values are unset.
    pub reskeys: BTreeMap<String, RawValue>,
    /// `OCF_RESKEY_CRM_meta_timeout`: this action's timeout.
    pub timeout: Option<Duration>,
    /// `OCF_RESKEY_CRM_meta_interval`: the monitor interval; None or zero is a probe.
    pub interval: Option<Duration>,
    /// `OCF_CHECK_LEVEL`: 0, 10 or 20 (anything else counts as the next lower level).
    pub check_level: u32,
    /// `OCF_RESOURCE_INSTANCE` (clones: `name:N`).
    pub instance: Option<String>,
    pub resource_type: Option<String>,
    pub provider: Option<String>,
    pub clone: Option<CloneInfo>,
    /// `HA_RSCTMP`, or `/run/resource-agents`.
    pub rsctmp: PathBuf,
    pub ocf_root: PathBuf,
    pub log: LogSettings,
}

fn nonempty(v: Option<&String>) -> Option<String> {
    v.filter(|s| !s.is_empty()).cloned()
}

fn millis(v: Option<&String>) -> Option<Duration> {
    v.and_then(|s| s.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
}

impl OcfEnv {
    /// Read the process environment. Call once, in `main`. Never fails: a variable that is not
    /// ours is ignored whatever its bytes, and one of ours that is not UTF-8 is kept as such.
    pub fn from_process() -> OcfEnv {
        Self::from_vars(std::env::vars_os())
    }

    /// Build from any list of variables (the process's, or a test's).
    pub fn from_vars<I, K, V>(vars: I) -> OcfEnv
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        let mut all: BTreeMap<String, String> = BTreeMap::new();
        let mut reskeys = BTreeMap::new();
        let mut meta = BTreeMap::new();
        let mut rsctmp = None;
        for (k, v) in vars {
            let (k, v) = (k.into(), v.into());
            let Ok(k) = k.into_string() else { continue };
            if !is_ours(&k) {
                continue;
            }
            if k == "HA_RSCTMP" {
                // A path may be any bytes.
                rsctmp = Some(PathBuf::from(v)).filter(|p| !p.as_os_str().is_empty());
                continue;
            }
            let value = match v.into_string() {
                Ok(t) => RawValue::Text(t),
                Err(_) => RawValue::NotUtf8,
            };
            if let Some(name) = k.strip_prefix("OCF_RESKEY_CRM_meta_") {
                if let RawValue::Text(t) = value {
                    meta.insert(name.to_string(), t);
                }
            } else if let Some(name) = k.strip_prefix("OCF_RESKEY_") {
                if !value.is_empty() {
                    reskeys.insert(name.to_string(), value);
                }
            } else if let RawValue::Text(t) = value {
                all.insert(k, t);
            }
        }
        let clone = meta.get("clone").map(|c| CloneInfo {
            instance: c.parse().ok(),
            max: meta.get("clone_max").and_then(|m| m.parse().ok()),
            globally_unique: meta
                .get("globally_unique")
                .is_some_and(|g| crate::params::parse_bool(g) == Some(true)),
        });
        // Pacemaker passes the depth as OCF_CHECK_LEVEL; some tools pass it as a meta attribute.
        let check_level = all
            .get("OCF_CHECK_LEVEL")
            .or_else(|| meta.get("OCF_CHECK_LEVEL"))
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0);
        let facility = nonempty(all.get("HA_LOGFACILITY")).filter(|f| f != "none");
        OcfEnv {
            reskeys,
            timeout: millis(meta.get("timeout")),
            interval: millis(meta.get("interval")),
            check_level,
            instance: nonempty(all.get("OCF_RESOURCE_INSTANCE")),
            resource_type: nonempty(all.get("OCF_RESOURCE_TYPE")),
            provider: nonempty(all.get("OCF_RESOURCE_PROVIDER")),
            clone,
            rsctmp: rsctmp.unwrap_or_else(|| PathBuf::from(DEFAULT_RSCTMP)),
            ocf_root: nonempty(all.get("OCF_ROOT"))
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_OCF_ROOT)),
            log: LogSettings {
                facility,
                tag: nonempty(all.get("HA_LOGTAG")),
                logfile: nonempty(all.get("HA_LOGFILE")).map(PathBuf::from),
                debuglog: nonempty(all.get("HA_DEBUGLOG")).map(PathBuf::from),
                debug: all
                    .get("HA_debug")
                    .is_some_and(|d| !d.is_empty() && d.trim() != "0"),
            },
        }
    }

    /// A monitor with no interval is a probe: "is it running here?", asked before anything starts.
    pub fn is_probe(&self) -> bool {
        self.interval.is_none_or(|i| i.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> OcfEnv {
        OcfEnv::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn empty_environment_has_safe_defaults() {
        let e = env(&[]);
        assert!(e.reskeys.is_empty());
        assert_eq!(e.timeout, None);
        assert!(e.is_probe());
        assert_eq!(e.check_level, 0);
        assert_eq!(e.rsctmp, PathBuf::from("/run/resource-agents"));
        assert_eq!(e.ocf_root, PathBuf::from("/usr/lib/ocf"));
        assert_eq!(e.log, LogSettings::default());
        assert_eq!(e.clone, None);
    }

    #[test]
    fn parameters_and_meta_are_separated() {
        let e = env(&[
            ("OCF_RESKEY_ip", "10.0.0.1"),
            ("OCF_RESKEY_nic", ""),
            ("OCF_RESKEY_CRM_meta_timeout", "30000"),
            ("OCF_RESKEY_CRM_meta_interval", "10000"),
            ("OCF_RESKEY_CRM_meta_clone", "1"),
            ("OCF_RESKEY_CRM_meta_clone_max", "2"),
            ("OCF_RESKEY_CRM_meta_globally_unique", "false"),
            ("OCF_CHECK_LEVEL", "10"),
            ("OCF_RESOURCE_INSTANCE", "anchor:1"),
            ("OCF_RESOURCE_TYPE", "anchorip"),
            ("OCF_RESOURCE_PROVIDER", "cloudha"),
            ("HA_RSCTMP", "/tmp/x"),
            ("PATH", "/bin"),
        ]);
        assert_eq!(e.reskeys.len(), 1);
        assert_eq!(e.reskeys["ip"], RawValue::Text("10.0.0.1".into()));
        assert_eq!(e.timeout, Some(Duration::from_secs(30)));
        assert_eq!(e.interval, Some(Duration::from_secs(10)));
        assert!(!e.is_probe());
        assert_eq!(e.check_level, 10);
        assert_eq!(e.instance.as_deref(), Some("anchor:1"));
        assert_eq!(e.resource_type.as_deref(), Some("anchorip"));
        assert_eq!(e.provider.as_deref(), Some("cloudha"));
        assert_eq!(
            e.clone,
            Some(CloneInfo {
                instance: Some(1),
                max: Some(2),
                globally_unique: false
            })
        );
        assert_eq!(e.rsctmp, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn interval_zero_is_a_probe() {
        assert!(env(&[("OCF_RESKEY_CRM_meta_interval", "0")]).is_probe());
    }

    #[test]
    fn logging_variables() {
        let e = env(&[
            ("HA_LOGFACILITY", "daemon"),
            ("HA_LOGFILE", "/var/log/x"),
            ("HA_DEBUGLOG", "/var/log/y"),
            ("HA_LOGTAG", "tag"),
            ("HA_debug", "1"),
        ]);
        assert_eq!(e.log.facility.as_deref(), Some("daemon"));
        assert_eq!(e.log.logfile, Some(PathBuf::from("/var/log/x")));
        assert_eq!(e.log.debuglog, Some(PathBuf::from("/var/log/y")));
        assert_eq!(e.log.tag.as_deref(), Some("tag"));
        assert!(e.log.debug);
        assert!(!env(&[("HA_debug", "0")]).log.debug);
        assert_eq!(env(&[("HA_LOGFACILITY", "none")]).log.facility, None);
    }

    #[test]
    fn bytes_that_are_not_utf8_never_abort() {
        use std::os::unix::ffi::OsStringExt;
        let bad = || OsString::from_vec(b"sekrit\xff".to_vec());
        let e = OcfEnv::from_vars(vec![
            (OsString::from("OCF_RESKEY_api_token"), bad()),
            (OsString::from("FOO"), bad()),
            (OsString::from_vec(b"BAR\xff".to_vec()), bad()),
            (
                OsString::from("HA_RSCTMP"),
                OsString::from_vec(b"/run/x\xff".to_vec()),
            ),
            (OsString::from("OCF_RESOURCE_INSTANCE"), bad()),
        ]);
        assert_eq!(e.reskeys["api_token"], RawValue::NotUtf8);
        assert_eq!(e.reskeys.len(), 1);
        assert_eq!(e.rsctmp.as_os_str().len(), 7);
        assert_eq!(e.instance, None);
    }

    #[test]
    fn garbage_numbers_are_ignored() {
        let e = env(&[
            ("OCF_RESKEY_CRM_meta_timeout", "soon"),
            ("OCF_CHECK_LEVEL", "deep"),
        ]);
        assert_eq!(e.timeout, None);
        assert_eq!(e.check_level, 0);
    }
}
