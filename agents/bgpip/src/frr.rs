//! The agent's own FRR statements, built as data (each one a vtysh `-c` argument: never a shell
//! string), and vtysh run within the action's deadline, its failures told apart: FRR not
//! installed, bgpd not running, a statement refused.

use crate::settings::{Community, Frr, Prefix, Settings};
use cloudha_common::params::shown;
use cloudha_common::{child, Attempt, Deadline, OcfCode, OcfError, Retry};
use std::process::Command;
use std::time::Duration;

/// The route-server peer group the agent declares and owns.
pub const GROUP: &str = "CLOUDHA";
/// Every route-map the agent owns starts with this.
pub const MAP_PREFIX: &str = "cloudha-bgpip-";
/// Inbound: nothing from the route servers is needed (and eBGP needs a policy both ways).
const MAP_IN: &str = "cloudha-bgpip-in";
const MAP_OUT: &str = "cloudha-bgpip-out";
/// Seconds between connection attempts to a route server (Linode's, and lelastic's).
const CONNECT_RETRY: u32 = 5;

/// The route-map that sets `community` on the announcement.
pub fn community_map(c: Community) -> String {
    format!("{MAP_PREFIX}{}-{}", c.0, c.1)
}

/// Every statement of an announcement with `community`, all idempotent: route-maps, the peer
/// group and its members, both address families, and the network line of the prefix (given
/// again with another route-map, FRR replaces the route-map: that is promote and demote).
pub fn announce(s: &Settings, community: Community) -> Vec<String> {
    let map = community_map(community);
    let mut c = vec![
        "configure terminal".to_string(),
        format!("route-map {MAP_IN} deny 10"),
        "exit".into(),
        format!("route-map {MAP_OUT} permit 10"),
        "exit".into(),
        format!("route-map {map} permit 10"),
        format!("set community {community}"),
        "exit".into(),
        format!("router bgp {}", s.asn),
        format!("neighbor {GROUP} peer-group"),
        format!("neighbor {GROUP} remote-as {}", s.peer_asn),
        format!("neighbor {GROUP} ebgp-multihop {}", s.multihop_ttl),
        format!("neighbor {GROUP} timers {} {}", s.keepalive, s.hold_time),
        format!("neighbor {GROUP} timers connect {CONNECT_RETRY}"),
        format!("neighbor {GROUP} capability extended-nexthop"),
    ];
    for peer in &s.peers {
        c.push(format!("neighbor {peer} peer-group {GROUP}"));
    }
    for family in ["ipv4", "ipv6"] {
        c.push(format!("address-family {family} unicast"));
        c.push(format!("neighbor {GROUP} activate"));
        c.push(format!("neighbor {GROUP} route-map {MAP_IN} in"));
        c.push(format!("neighbor {GROUP} route-map {MAP_OUT} out"));
        if s.prefix.family() == family {
            c.push(format!("network {} route-map {map}", s.prefix));
        }
        c.push("exit-address-family".into());
    }
    c
}

/// Remove the network line of `prefix`.
pub fn withdraw(asn: u32, prefix: &Prefix) -> Vec<String> {
    vec![
        "configure terminal".into(),
        format!("router bgp {asn}"),
        format!("address-family {} unicast", prefix.family()),
        format!("no network {prefix}"),
    ]
}

/// Remove the peer group and the route-maps, once no announcement of the agent's is left.
pub fn remove_rest(asn: Option<u32>, group: bool, maps: &[String]) -> Vec<String> {
    let mut c = vec!["configure terminal".to_string()];
    if let (Some(asn), true) = (asn, group) {
        c.push(format!("router bgp {asn}"));
        c.push(format!("no neighbor {GROUP} peer-group"));
        c.push("exit".into());
    }
    for m in maps {
        c.push(format!("no route-map {m}"));
    }
    c
}

/// The show commands a monitor needs: the prefix, and at depth 10 the sessions too.
pub fn show(prefix: &Prefix, sessions: bool) -> Vec<String> {
    let mut c = vec![format!(
        "show bgp {} unicast {prefix} json",
        prefix.family()
    )];
    if sessions {
        c.push(format!("show bgp peer-group {GROUP} json"));
    }
    c
}

/// Why vtysh gave no answer.
#[derive(Debug, PartialEq, Eq)]
pub enum FrrError {
    /// vtysh is not there (5) or may not be run (4).
    NotInstalled(String),
    NotPermitted(String),
    /// bgpd (or every FRR daemon) is not running.
    Down(String),
    /// Another vtysh holds the configuration.
    Locked(String),
    /// A statement was refused: FRR's words.
    Refused(String),
    /// vtysh did not finish in time, or could not be waited for.
    Failed(String),
}

impl FrrError {
    pub fn into_ocf(self, what: &str) -> OcfError {
        match self {
            FrrError::NotInstalled(e) => OcfError::new(OcfCode::ErrInstalled, e),
            FrrError::NotPermitted(e) => OcfError::new(OcfCode::ErrPerm, e),
            FrrError::Refused(e) if e.contains("BGP is already running") => OcfError::args(
                format!("{what}: FRR refused: {e} (parameter 'asn' does not match this node's router bgp)"),
            ),
            FrrError::Down(e) | FrrError::Locked(e) | FrrError::Refused(e) | FrrError::Failed(e) => {
                OcfError::generic(format!("{what}: {e}"))
            }
        }
    }
}

/// Read vtysh's words when it exits non-zero.
pub fn classify(output: &str) -> FrrError {
    let text: Vec<&str> = output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let joined = text.join("; ");
    if output.contains("bgpd is not running") {
        return FrrError::Down("bgpd is not running".into());
    }
    if output.contains("failed to connect to any daemons") {
        return FrrError::Down(format!("bgpd is not running (vtysh: {})", shown(&joined)));
    }
    if output.contains("locked by other client") {
        return FrrError::Locked(format!(
            "FRR's configuration is locked ({})",
            shown(&joined)
        ));
    }
    // FRR's complaints start with '%'; keep those, or everything when there is none.
    let complaints: Vec<&str> = text
        .iter()
        .copied()
        .filter(|l| l.starts_with('%') || l.contains("already running"))
        .collect();
    let words = if complaints.is_empty() {
        joined
    } else {
        complaints.join("; ")
    };
    FrrError::Refused(shown(&words))
}

/// Waits while bgpd starts or another vtysh holds the configuration.
const TRANSIENT: Retry = Retry::backoff(Duration::from_millis(200), Duration::from_secs(1));
/// How long a transient fault is waited out before it is reported.
const TRANSIENT_BUDGET: Duration = Duration::from_secs(3);

pub struct Vtysh<'a> {
    pub frr: &'a Frr,
}

impl Vtysh<'_> {
    fn command(&self, commands: &[String]) -> Command {
        let mut cmd = Command::new(&self.frr.vtysh);
        if let Some(name) = &self.frr.instance {
            cmd.arg("-N").arg(name);
        }
        for c in commands {
            cmd.arg("-c").arg(c);
        }
        cmd
    }

    /// Run once: vtysh's output, or why there is none.
    pub fn once(&self, commands: &[String], deadline: &Deadline) -> Result<String, FrrError> {
        let vtysh = self.frr.vtysh.display().to_string();
        match std::fs::metadata(&self.frr.vtysh) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(FrrError::NotInstalled(format!(
                    "vtysh '{}' is not installed (FRR's package frr)",
                    shown(&vtysh)
                )))
            }
            _ => {}
        }
        let (status, out) = child::run(&mut self.command(commands), deadline).map_err(|e| {
            if e.contains("Permission denied") {
                FrrError::NotPermitted(format!("vtysh '{}': {e}", shown(&vtysh)))
            } else {
                FrrError::Failed(format!("vtysh '{}': {e}", shown(&vtysh)))
            }
        })?;
        if status.success() {
            Ok(out)
        } else {
            Err(classify(&out))
        }
    }

    /// Run, waiting out a bgpd that is starting or a configuration locked by another vtysh for
    /// a few seconds (within the deadline).
    pub fn run(&self, commands: &[String], deadline: &Deadline) -> Result<String, FrrError> {
        let d = deadline.sooner(TRANSIENT_BUDGET);
        d.retry(&TRANSIENT, |_| match self.once(commands, deadline) {
            Ok(out) => Attempt::Done(out),
            Err(e @ (FrrError::Down(_) | FrrError::Locked(_))) => Attempt::Again(e),
            Err(e) => Attempt::Fail(e),
        })
        .map_err(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{Community, Prefix};
    use std::path::PathBuf;

    fn settings(prefix: &str) -> Settings {
        Settings {
            prefix: prefix.parse().unwrap(),
            peers: vec![
                "2001:db8:34::1".parse().unwrap(),
                "192.0.2.1".parse().unwrap(),
            ],
            asn: 65001,
            peer_asn: 65000,
            primary: Community(65000, 1),
            secondary: Community(65000, 2),
            hold_time: 9,
            keepalive: 3,
            multihop_ttl: 10,
            frr: Frr {
                vtysh: PathBuf::from("/usr/bin/vtysh"),
                instance: None,
            },
        }
    }

    #[test]
    fn announcement_statements() {
        let c = announce(&settings("203.0.113.7/32"), Community(65000, 1));
        assert_eq!(c[0], "configure terminal");
        assert!(c.contains(&"route-map cloudha-bgpip-65000-1 permit 10".to_string()));
        assert!(c.contains(&"set community 65000:1".to_string()));
        assert!(c.contains(&"router bgp 65001".to_string()));
        assert!(c.contains(&"neighbor CLOUDHA remote-as 65000".to_string()));
        assert!(c.contains(&"neighbor CLOUDHA timers 3 9".to_string()));
        assert!(c.contains(&"neighbor CLOUDHA ebgp-multihop 10".to_string()));
        assert!(c.contains(&"neighbor 2001:db8:34::1 peer-group CLOUDHA".to_string()));
        assert!(c.contains(&"neighbor 192.0.2.1 peer-group CLOUDHA".to_string()));
        let v4 = c
            .iter()
            .position(|l| l == "address-family ipv4 unicast")
            .unwrap();
        let v6 = c
            .iter()
            .position(|l| l == "address-family ipv6 unicast")
            .unwrap();
        let net = c
            .iter()
            .position(|l| l == "network 203.0.113.7/32 route-map cloudha-bgpip-65000-1")
            .unwrap();
        assert!(v4 < net && net < v6);
        assert_eq!(c.iter().filter(|l| l.starts_with("network")).count(), 1);
    }

    #[test]
    fn an_ipv6_range_goes_under_ipv6() {
        let c = announce(&settings("2001:db8:1::/56"), Community(65000, 2));
        let v6 = c
            .iter()
            .position(|l| l == "address-family ipv6 unicast")
            .unwrap();
        let net = c
            .iter()
            .position(|l| l == "network 2001:db8:1::/56 route-map cloudha-bgpip-65000-2")
            .unwrap();
        assert!(v6 < net);
    }

    #[test]
    fn withdrawal_and_cleanup() {
        let p: Prefix = "203.0.113.7/32".parse().unwrap();
        assert_eq!(
            withdraw(65001, &p),
            [
                "configure terminal",
                "router bgp 65001",
                "address-family ipv4 unicast",
                "no network 203.0.113.7/32"
            ]
        );
        let maps = vec!["cloudha-bgpip-in".to_string()];
        assert_eq!(
            remove_rest(Some(65001), true, &maps),
            [
                "configure terminal",
                "router bgp 65001",
                "no neighbor CLOUDHA peer-group",
                "exit",
                "no route-map cloudha-bgpip-in"
            ]
        );
        assert_eq!(remove_rest(None, true, &[]), ["configure terminal"]);
    }

    #[test]
    fn vtysh_failures_as_frr_words_them() {
        // Seen from FRR 8.4's vtysh, exit status 1 each.
        assert!(matches!(
            classify("bgpd is not running\n"),
            FrrError::Down(_)
        ));
        assert!(matches!(
            classify("% Can't open configuration file /etc/frr/x/vtysh.conf due to 'No such file or directory'.\nExiting: failed to connect to any daemons.\n"),
            FrrError::Down(_)
        ));
        assert_eq!(
            classify("BGP is already running; AS is 65001\n"),
            FrrError::Refused("BGP is already running; AS is 65001".into())
        );
        assert_eq!(
            classify("% Malformed communities attribute '65000:99999'\n"),
            FrrError::Refused("% Malformed communities attribute '65000:99999'".into())
        );
        let e = classify("BGP is already running; AS is 65001\n").into_ocf("start");
        assert_eq!(e.code, OcfCode::ErrArgs);
        assert_eq!(
            classify("bgpd is not running\n").into_ocf("monitor").code,
            OcfCode::ErrGeneric
        );
    }

    #[test]
    fn vtysh_missing_is_not_installed() {
        let frr = Frr {
            vtysh: PathBuf::from("/nonexistent/vtysh"),
            instance: None,
        };
        let e = Vtysh { frr: &frr }
            .run(
                &["show version".into()],
                &Deadline::after(Duration::from_secs(2)),
            )
            .unwrap_err();
        assert!(matches!(e, FrrError::NotInstalled(_)), "{e:?}");
        assert_eq!(e.into_ocf("start").code, OcfCode::ErrInstalled);
    }
}
