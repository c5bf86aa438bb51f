//! Real FRR for the bgpip tests: FRR instances (zebra + bgpd) in network namespaces or cluster
//! nodes, a route server (AS 65000) that prefers the primary community by local-preference and
//! installs the best path, balancers behind it, and a client that asks the shared IP who it is.
//!
//! Addresses are documentation ranges only: route-server links 2001:db8:34::/64 (node 1) and
//! 2001:db8:35::/64 (node 2), the client's link 198.51.100.0/24, the shared IP 203.0.113.77.
//! Router advertisements are refused on every link (bgpd sends them for extended-nexthop
//! peers, and a SLAAC address would become the session's source).

use crate::{kill_netns_processes, require_program, sh, Netns};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where a program runs: a namespace (`ip netns exec`) or a cluster node (`nsenter`).
pub type Place = Box<dyn Fn(&str) -> Command + Send + Sync>;

pub fn in_netns(name: &str) -> Place {
    let name = name.to_string();
    Box::new(move |program| {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &name]).arg(program);
        c
    })
}

/// A cluster node (its network, mount, UTS and pid namespaces), as [`crate::cluster::Node`]
/// enters it; the node must be running.
pub fn in_node(node: &crate::cluster::Node) -> Place {
    let pid = node
        .pid()
        .unwrap_or_else(|| panic!("{} is not running", node.name))
        .to_string();
    Box::new(move |program| {
        let mut c = Command::new("nsenter");
        c.args(["-t", &pid, "-n", "-m", "-u", "-p", "--"])
            .arg(program);
        c
    })
}

/// The route server's own address, on its lo, that every balancer peers with (eBGP multihop,
/// as Linode's route servers are reached): one `peers` value for the whole cluster.
pub const RS_LOOPBACK: &str = "2001:db8:ff::1";

pub const SHARED_IP: &str = "203.0.113.77";
pub const CLIENT_NET: &str = "198.51.100.0/24";
/// Each balancer's link to the route server: (route server's address, balancer's address).
pub const LINKS: [(&str, &str); 2] = [
    ("2001:db8:34::1", "2001:db8:34::11"),
    ("2001:db8:35::1", "2001:db8:35::12"),
];
pub const PRIMARY: &str = "65000:1";
pub const SECONDARY: &str = "65000:2";

/// One FRR (zebra and bgpd) with its own configuration; killed (and its files removed) on drop.
pub struct Frr {
    place: Place,
    /// The pathspace (`-N`), or None for the default paths (inside a node's private /etc, /run).
    pub instance: Option<String>,
    etc: String,
    run: String,
}

impl Frr {
    pub fn start(place: Place, instance: Option<&str>, config: &str, scratch: &Path) -> Frr {
        require_program("/usr/lib/frr/bgpd");
        require_program("/usr/bin/vtysh");
        let (etc, run) = match instance {
            Some(n) => (format!("/etc/frr/{n}"), format!("/var/run/frr/{n}")),
            None => ("/etc/frr".to_string(), "/var/run/frr".to_string()),
        };
        let frr = Frr {
            place,
            instance: instance.map(str::to_string),
            etc,
            run,
        };
        let conf = scratch.join(format!(
            "frr-{}.conf",
            instance.unwrap_or("default").replace('/', "_")
        ));
        std::fs::write(&conf, config).expect("write frr.conf");
        let conf = conf.display().to_string();
        frr.sh(
            "install",
            &[
                "-d", "-o", "frr", "-g", "frr", "-m", "755", &frr.etc, &frr.run,
            ],
        );
        let target = format!("{}/frr.conf", frr.etc);
        frr.sh(
            "install",
            &["-o", "frr", "-g", "frr", "-m", "640", &conf, &target],
        );
        let vtysh_conf = format!("{}/vtysh.conf", frr.etc);
        frr.sh(
            "install",
            &[
                "-o",
                "frr",
                "-g",
                "frr",
                "-m",
                "640",
                "/dev/null",
                &vtysh_conf,
            ],
        );
        for daemon in ["zebra", "bgpd"] {
            let mut args = vec!["-d", "-A", "127.0.0.1", "-f", &target];
            if let Some(n) = instance {
                args.extend(["-N", n]);
            }
            frr.sh(&format!("/usr/lib/frr/{daemon}"), &args);
        }
        let end = Instant::now() + Duration::from_secs(15);
        while !frr.vtysh(&["show bgp summary json"]).0 {
            assert!(
                Instant::now() < end,
                "FRR {instance:?} does not answer vtysh"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        frr
    }

    fn sh(&self, program: &str, args: &[&str]) -> String {
        sh((self.place)(program).args(args).stdin(Stdio::null()))
    }

    /// vtysh with these commands: (success, output).
    pub fn vtysh(&self, commands: &[&str]) -> (bool, String) {
        let mut c = (self.place)("/usr/bin/vtysh");
        if let Some(n) = &self.instance {
            c.args(["-N", n]);
        }
        for cmd in commands {
            c.args(["-c", cmd]);
        }
        let out = c.stdin(Stdio::null()).output().expect("vtysh");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// One JSON answer.
    pub fn json(&self, command: &str) -> Value {
        let (ok, out) = self.vtysh(&[command]);
        assert!(ok, "vtysh {command}: {out}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("vtysh {command}: {e}: {out}"))
    }

    /// The running configuration.
    pub fn config(&self) -> String {
        let (ok, out) = self.vtysh(&["show running-config"]);
        assert!(ok, "show running-config: {out}");
        out
    }

    /// The pid of `daemon` as its pid file says (in the daemon's own pid namespace).
    pub fn pid(&self, daemon: &str) -> Option<String> {
        let out = (self.place)("cat")
            .arg(format!("{}/{daemon}.pid", self.run))
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !pid.is_empty()).then_some(pid)
    }

    /// Send `signal` (e.g. "KILL", "STOP") to `daemon`.
    pub fn signal(&self, daemon: &str, signal: &str) {
        if let Some(pid) = self.pid(daemon) {
            let _ = (self.place)("kill")
                .args([&format!("-{signal}"), &pid])
                .stderr(Stdio::null())
                .status();
        }
    }

    pub fn stop(&self) {
        for d in ["bgpd", "zebra"] {
            self.signal(d, "CONT");
            self.signal(d, "KILL");
        }
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        self.stop();
        // A pathspace's files are the host's (only cluster nodes have their own /etc, /run).
        if self.instance.is_some() {
            let _ = Command::new("rm")
                .args(["-rf", &self.etc, &self.run])
                .status();
        }
    }
}

/// The route server's configuration: AS 65000, each neighbor (`address`, AS), local-preference
/// 200 for the primary community and 100 for the secondary one.
pub fn route_server_config(neighbors: &[(&str, u32)]) -> String {
    let mut c = String::from(
        "frr defaults traditional\nhostname rs\nip forwarding\n!\nrouter bgp 65000\n bgp router-id 192.0.2.1\n no bgp ebgp-requires-policy\n",
    );
    for (addr, asn) in neighbors {
        c += &format!(
            " neighbor {addr} remote-as {asn}\n neighbor {addr} capability extended-nexthop\n neighbor {addr} timers connect 5\n"
        );
    }
    c += " address-family ipv4 unicast\n";
    for (addr, _) in neighbors {
        c +=
            &format!("  neighbor {addr} activate\n  neighbor {addr} route-map prefer-primary in\n");
    }
    c += " exit-address-family\n address-family ipv6 unicast\n";
    for (addr, _) in neighbors {
        c +=
            &format!("  neighbor {addr} activate\n  neighbor {addr} route-map prefer-primary in\n");
    }
    c += " exit-address-family\nexit\n!\n";
    c += &format!(
        "bgp community-list standard primary permit {PRIMARY}\nbgp community-list standard secondary permit {SECONDARY}\n\
route-map prefer-primary permit 10\n match community primary\n set local-preference 200\nexit\n\
route-map prefer-primary permit 20\n match community secondary\n set local-preference 100\nexit\n\
route-map prefer-primary permit 30\nexit\n"
    );
    c
}

/// A balancer's own FRR configuration, as an operator writes it: a router id (the shared IP on
/// lo would otherwise be every node's) and one statement of the operator's that the agent must
/// never touch.
pub fn balancer_config(router_id: &str) -> String {
    format!(
        "frr defaults traditional\n!\nrouter bgp 65001\n bgp router-id {router_id}\nexit\n!\nroute-map operator-own permit 10\nexit\n"
    )
}

/// One path the route server has for a prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RsPath {
    /// The peer it came from.
    pub peer: String,
    pub communities: Vec<String>,
    pub local_pref: Option<u64>,
    pub best: bool,
}

/// The paths in `show bgp ipv4 unicast <prefix> json` (none for `{}`).
pub fn rs_paths(doc: &Value) -> Vec<RsPath> {
    let Some(paths) = doc.get("paths").and_then(Value::as_array) else {
        return Vec::new();
    };
    paths
        .iter()
        .map(|p| RsPath {
            peer: p
                .pointer("/peer/peerId")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            communities: p
                .pointer("/community/list")
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            local_pref: p.get("locPrf").and_then(Value::as_u64),
            best: p.pointer("/bestpath/overall").and_then(Value::as_bool) == Some(true),
        })
        .collect()
}

/// Link a balancer's namespace to the route server's: `rs_if` on the route server, `rs0` on the
/// balancer, IPv6 addresses of `LINKS[i]`; the balancer reaches the client's network through it.
pub fn link_balancer(rs: &str, rs_if: &str, balancer: &str, i: usize) {
    let (rs_addr, b_addr) = LINKS[i];
    sh(Command::new("ip").args([
        "-n", rs, "link", "add", rs_if, "type", "veth", "peer", "name", "rs0", "netns", balancer,
    ]));
    no_router_advertisements(rs, rs_if);
    no_router_advertisements(balancer, "rs0");
    for (ns, dev, addr) in [(rs, rs_if, rs_addr), (balancer, "rs0", b_addr)] {
        sh(Command::new("ip").args([
            "-n",
            ns,
            "addr",
            "add",
            &format!("{addr}/64"),
            "dev",
            dev,
            "nodad",
        ]));
        sh(Command::new("ip").args(["-n", ns, "link", "set", dev, "up"]));
    }
    sh(Command::new("ip").args([
        "-n", balancer, "route", "replace", CLIENT_NET, "via", "inet6", rs_addr, "dev", "rs0",
    ]));
    let rs_lo = format!("{RS_LOOPBACK}/128");
    sh(Command::new("ip").args([
        "-n", balancer, "-6", "route", "replace", &rs_lo, "via", rs_addr, "dev", "rs0",
    ]));
}

fn no_router_advertisements(ns: &str, dev: &str) {
    sh(Command::new("ip")
        .args(["netns", "exec", ns, "sysctl", "-qw"])
        .args([
            format!("net.ipv6.conf.{dev}.accept_ra=0"),
            format!("net.ipv6.conf.{dev}.autoconf=0"),
        ]));
}

/// A client network behind the route server: `cl` on the route server (198.51.100.1), `eth0` in
/// the client's namespace (198.51.100.2, default route through the route server).
pub fn link_client(rs: &str, client: &str) {
    sh(Command::new("ip").args([
        "-n", rs, "link", "add", "cl", "type", "veth", "peer", "name", "eth0", "netns", client,
    ]));
    for (ns, dev, addr) in [
        (rs, "cl", "198.51.100.1/24"),
        (client, "eth0", "198.51.100.2/24"),
    ] {
        sh(Command::new("ip").args(["-n", ns, "addr", "add", addr, "dev", dev]));
        sh(Command::new("ip").args(["-n", ns, "link", "set", dev, "up"]));
    }
    sh(Command::new("ip").args([
        "-n",
        client,
        "route",
        "add",
        "default",
        "via",
        "198.51.100.1",
    ]));
    let rs_lo = format!("{RS_LOOPBACK}/128");
    sh(Command::new("ip").args(["-n", rs, "addr", "add", &rs_lo, "dev", "lo"]));
    sh(Command::new("ip").args([
        "netns",
        "exec",
        rs,
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=1",
    ]));
}

/// Ask the shared IP who answers, from the client (one HTTP request, 1 s at most): the node's
/// name as its HAProxy says it, or None when nothing answered.
pub fn who_answers(client: &str) -> Option<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", client, "curl", "-s", "-m", "1"])
        .arg(format!("http://{SHARED_IP}/"))
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// Pathspaces (`/etc/frr/cloudha-<tag>-<pid>-<n>-…`) of labs whose namespace is gone: their test
/// process was killed before it could remove them.
fn remove_stale_pathspaces(tag: &str) {
    let prefix = format!("cloudha-{tag}-");
    for top in ["/etc/frr", "/var/run/frr"] {
        let Ok(entries) = std::fs::read_dir(top) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(ns) = name
                .strip_prefix(&prefix)
                .and_then(|_| name.rsplit_once('-'))
                .map(|(ns, _)| ns)
            else {
                continue;
            };
            if !Path::new("/run/netns").join(ns).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// The standalone lab: a route server, a client, two balancers with FRR (pathspaces) and an
/// HAProxy each answering its name on the shared IP (which sits on their lo). No Pacemaker: the
/// tests run the agent as Pacemaker would.
pub struct Lab {
    // FRR first: dropped (files removed inside the namespaces) before the namespaces go.
    pub rs_frr: Frr,
    pub frr: Vec<Frr>,
    pub rs: Netns,
    pub client: Netns,
    pub balancers: Vec<Netns>,
    pub dir: tempfile::TempDir,
}

impl Lab {
    pub fn new(tag: &str) -> Lab {
        crate::remove_stale_namespaces(tag);
        remove_stale_pathspaces(tag);
        require_program("/usr/sbin/haproxy");
        require_program("/usr/bin/curl");
        let dir = tempfile::Builder::new()
            .prefix("cloudha-bgp-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        crate::set_mode(dir.path(), 0o755);
        let rs = Netns::new(tag);
        let client = Netns::new(tag);
        let balancers = vec![Netns::new(tag), Netns::new(tag)];
        link_client(&rs.name, &client.name);
        for (i, b) in balancers.iter().enumerate() {
            link_balancer(&rs.name, &format!("b{}", i + 1), &b.name, i);
            b.ip(&["addr", "add", &format!("{SHARED_IP}/32"), "dev", "lo"]);
            let cfg = crate::cluster::HAPROXY_CFG
                .replace("@ANCHOR@", SHARED_IP)
                .replace("@NODE@", &format!("b{}", i + 1));
            let path = dir.path().join(format!("haproxy-b{}.cfg", i + 1));
            std::fs::write(&path, cfg).expect("haproxy.cfg");
            sh(b.command("haproxy").arg("-D").arg("-f").arg(&path));
        }
        // Pathspaces named after the route server's namespace: unique to this lab.
        let rs_frr = Frr::start(
            in_netns(&rs.name),
            Some(&format!("{}-rs", rs.name)),
            &route_server_config(&[(LINKS[0].1, 65001), (LINKS[1].1, 65001)]),
            dir.path(),
        );
        let frr = balancers
            .iter()
            .enumerate()
            .map(|(i, b)| {
                Frr::start(
                    in_netns(&b.name),
                    Some(&format!("{}-b{}", rs.name, i + 1)),
                    &balancer_config(&format!("192.0.2.{}", 11 + i)),
                    dir.path(),
                )
            })
            .collect();
        Lab {
            rs_frr,
            frr,
            rs,
            client,
            balancers,
            dir,
        }
    }

    /// The route server's paths for the shared IP.
    pub fn rs_paths(&self) -> Vec<RsPath> {
        rs_paths(
            &self
                .rs_frr
                .json(&format!("show bgp ipv4 unicast {SHARED_IP}/32 json")),
        )
    }

    /// Poll (bounded) until `ok` holds of the route server's paths; returns how long it took.
    pub fn wait_paths(
        &self,
        what: &str,
        timeout: Duration,
        ok: impl Fn(&[RsPath]) -> bool,
    ) -> Duration {
        let t = Instant::now();
        loop {
            let p = self.rs_paths();
            if ok(&p) {
                return t.elapsed();
            }
            assert!(
                t.elapsed() < timeout,
                "waited {timeout:?} for {what}; paths: {p:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Poll (bounded) until the client's requests land on `node`; returns how long it took.
    pub fn wait_client(&self, node: &str, timeout: Duration) -> Duration {
        let t = Instant::now();
        loop {
            let who = who_answers(&self.client.name);
            if who.as_deref() == Some(node) {
                return t.elapsed();
            }
            assert!(
                t.elapsed() < timeout,
                "waited {timeout:?} for the client to reach {node}; last answer {who:?}; paths {:?}",
                self.rs_paths()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.balancers.iter().chain([&self.rs, &self.client]) {
            kill_netns_processes(&ns.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(name: &str) -> Value {
        let p = crate::workspace_root()
            .join("agents/bgpip/tests/data")
            .join(name);
        serde_json::from_str(&std::fs::read_to_string(&p).expect("capture")).expect("json")
    }

    #[test]
    fn route_server_paths_as_frr_gives_them() {
        let two = rs_paths(&capture("rs-prefix-two-paths.json"));
        assert_eq!(two.len(), 2);
        let best: Vec<&RsPath> = two.iter().filter(|p| p.best).collect();
        assert_eq!(best.len(), 1);
        assert_eq!(best[0].peer, "2001:db8:34::11");
        assert_eq!(best[0].communities, ["65000:1"]);
        assert_eq!(best[0].local_pref, Some(200));
        let other = two.iter().find(|p| !p.best).unwrap();
        assert_eq!(other.peer, "2001:db8:35::12");
        assert_eq!(other.local_pref, Some(100));
        assert_eq!(rs_paths(&capture("rs-prefix-one-path.json")).len(), 1);
        assert!(rs_paths(&capture("node-prefix-absent.json")).is_empty());
    }
}
