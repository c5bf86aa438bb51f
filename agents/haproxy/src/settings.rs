//! The parameters of one instance, checked once (level 0: no look at this node). Anything wrong
//! here is wrong on every node: 6, naming the parameter as the user wrote it.

use crate::process::Identity;
use crate::{
    words, BINARY, CHECK_URL, CONFIG, DRAIN_TIME, EXTRA_ARGS, MASTER_SOCKET, PIDFILE, STOP_GRACE,
};
use cloudha_common::params::shown;
use cloudha_common::{Context, HttpUrl, InstanceState, OcfCode, OcfResult};
use std::path::PathBuf;
use std::time::Duration;

/// The longest unix socket path: `sun_path` holds 108 bytes with its NUL.
const MAX_SOCKET_PATH: usize = 107;

#[derive(Debug)]
pub struct Settings {
    pub binary: PathBuf,
    pub config: PathBuf,
    pub extra_args: Vec<String>,
    pub pidfile: PathBuf,
    pub socket: PathBuf,
    pub drain: Duration,
    /// How long a stop may keep accepting while new connections arrive.
    pub grace: Duration,
    pub check_url: Option<HttpUrl>,
}

/// This instance's state files: the record, the lock, the default pid file and socket. By hand,
/// without a cluster's instance name, the configuration names the instance.
pub fn instance_state(ctx: &Context) -> InstanceState {
    let by_hand = ctx
        .params
        .text(&CONFIG)
        .or(CONFIG.spec.default)
        .unwrap_or("haproxy");
    ctx.state(by_hand)
}

impl Settings {
    pub fn from(ctx: &Context) -> OcfResult<Settings> {
        let params = &ctx.params;
        params.check_all()?;
        let state = instance_state(ctx);
        let binary = params.need(&BINARY)?.0;
        let config = params.need(&CONFIG)?.0;
        let extra_args = match params.read(&EXTRA_ARGS)? {
            None => Vec::new(),
            Some(text) => words::split(&text).map_err(|why| params.invalid(&EXTRA_ARGS, why))?,
        };
        let pidfile = match params.read(&PIDFILE)? {
            Some(p) => p.0,
            None => state.path("pid"),
        };
        let socket = match params.read(&MASTER_SOCKET)? {
            Some(p) => p.0,
            None => state.path("sock"),
        };
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            let too_long = format!(
                "is longer than a unix socket path may be ({MAX_SOCKET_PATH} bytes); set a shorter master_socket or HA_RSCTMP"
            );
            return Err(if params.has(&MASTER_SOCKET) {
                params.invalid(&MASTER_SOCKET, too_long)
            } else {
                params.fault(
                    OcfCode::ErrConfigured,
                    &MASTER_SOCKET,
                    format!(
                        "the default '{}' {too_long}",
                        shown(&socket.to_string_lossy())
                    ),
                )
            });
        }
        let drain = params.need(&DRAIN_TIME)?.0;
        let grace = params.need(&STOP_GRACE)?.0;
        let check_url = params.read(&CHECK_URL)?;
        if check_url.as_ref().is_some_and(HttpUrl::is_https) {
            return Err(params.invalid(&CHECK_URL, "is https; only http:// URLs are checked"));
        }
        Ok(Settings {
            binary,
            config,
            extra_args,
            pidfile,
            socket,
            drain,
            grace,
            check_url,
        })
    }

    /// What makes a process this instance's HAProxy.
    pub fn identity(&self) -> Identity {
        Identity {
            // /proc/<pid>/exe shows the binary with symlinks resolved.
            exe: std::fs::canonicalize(&self.binary).unwrap_or_else(|_| self.binary.clone()),
            config: self.config.clone(),
            socket: self.socket.clone(),
        }
    }
}

/// How long a stop drains when its parameters cannot be read: the declared default.
pub fn default_drain() -> Duration {
    declared(&DRAIN_TIME)
}

/// How long a stop keeps accepting when its parameters cannot be read: the declared default.
pub fn default_grace() -> Duration {
    declared(&STOP_GRACE)
}

fn declared(param: &cloudha_common::Param<cloudha_common::Seconds>) -> Duration {
    param
        .spec
        .default
        .and_then(|d| <cloudha_common::Seconds as cloudha_common::ParamValue>::parse(d).ok())
        .map_or(Duration::ZERO, |s| s.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudha_common::{Action, Logger, OcfEnv};

    fn ctx(vars: &[(&str, &str)]) -> Context {
        let env = OcfEnv::from_vars(
            vars.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .chain([
                    ("HA_RSCTMP".to_string(), "/run/ra".to_string()),
                    ("OCF_RESOURCE_INSTANCE".to_string(), "lb".to_string()),
                ]),
        );
        Context::new(
            &crate::SPEC,
            Action::ValidateAll,
            env,
            Logger::stderr("haproxy"),
        )
    }

    fn reason(vars: &[(&str, &str)]) -> (OcfCode, String) {
        let e = Settings::from(&ctx(vars)).unwrap_err();
        (e.code, e.reason)
    }

    #[test]
    fn defaults_and_state_paths() {
        let s = Settings::from(&ctx(&[])).unwrap();
        assert_eq!(s.config, PathBuf::from("/etc/haproxy/haproxy.cfg"));
        assert_eq!(s.binary, PathBuf::from("/usr/sbin/haproxy"));
        assert_eq!(s.pidfile, PathBuf::from("/run/ra/cloudha/haproxy-lb.pid"));
        assert_eq!(s.socket, PathBuf::from("/run/ra/cloudha/haproxy-lb.sock"));
        assert_eq!(s.drain, Duration::from_secs(30));
        assert_eq!(default_drain(), Duration::from_secs(30));
        assert_eq!(s.grace, Duration::from_secs(5));
        assert_eq!(default_grace(), Duration::from_secs(5));
        assert!(s.extra_args.is_empty() && s.check_url.is_none());
    }

    #[test]
    fn errors_name_the_parameter_as_written() {
        let (code, r) = reason(&[("OCF_RESKEY_conffile", "relative.cfg")]);
        assert_eq!(code, OcfCode::ErrConfigured);
        assert_eq!(
            r,
            "parameter 'conffile': 'relative.cfg' is not an absolute path"
        );
        let (_, r) = reason(&[("OCF_RESKEY_binpath", "haproxy")]);
        assert!(r.starts_with("parameter 'binpath': 'haproxy'"), "{r}");
        let (_, r) = reason(&[("OCF_RESKEY_extraconf", "-L 'node")]);
        assert_eq!(
            r,
            "parameter 'extraconf': '-L 'node' has an unclosed single quote"
        );
        let (_, r) = reason(&[("OCF_RESKEY_drain_time", "-5")]);
        assert!(r.starts_with("parameter 'drain_time': '-5' is not"), "{r}");
        for bad in ["-1", "abc"] {
            let (code, r) = reason(&[("OCF_RESKEY_stop_grace", bad)]);
            assert_eq!(code, OcfCode::ErrConfigured);
            let want = format!("parameter 'stop_grace': '{bad}' is not");
            assert!(r.starts_with(&want), "{r}");
        }
        let s = Settings::from(&ctx(&[("OCF_RESKEY_stop_grace", "0")])).unwrap();
        assert_eq!(s.grace, Duration::ZERO);
        let (_, r) = reason(&[("OCF_RESKEY_check_url", "https://127.0.0.1/")]);
        assert!(r.starts_with("parameter 'check_url'") && r.contains("https"));
        let long = format!("/{}", "s".repeat(107));
        let (code, r) = reason(&[("OCF_RESKEY_master_socket", &long)]);
        assert_eq!(code, OcfCode::ErrConfigured);
        assert!(r.starts_with("parameter 'master_socket'") && r.contains("107"));
    }

    #[test]
    fn a_default_socket_too_long_says_where_it_comes_from() {
        let deep = format!("/{}", "d".repeat(90));
        let env = OcfEnv::from_vars([
            ("HA_RSCTMP".to_string(), deep),
            ("OCF_RESOURCE_INSTANCE".to_string(), "lb".to_string()),
        ]);
        let c = Context::new(&crate::SPEC, Action::Start, env, Logger::stderr("t"));
        let e = Settings::from(&c).unwrap_err();
        assert_eq!(e.code, OcfCode::ErrConfigured);
        assert!(
            e.reason
                .starts_with("parameter 'master_socket': the default '/ddd"),
            "{}",
            e.reason
        );
    }
}
