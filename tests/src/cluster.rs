//! Real Pacemaker + Corosync clusters on this machine, one network and mount namespace per node,
//! for end-to-end tests and the demo.
//!
//! Each node is a network namespace (`cloudha-cluster-<pid>-<n>`, from [`Netns`]) joined to the
//! other by a veth pair named `eth0` on both sides (ring addresses 192.168.77.1 and .2, private to
//! the namespaces), with `169.254.169.254/32` on its `lo` for its own metadata service. Its
//! processes run under `tests/cluster/node.sh` in their own pid namespace (with its own /proc, as
//! on separate machines: an agent that scans /proc must not find the other node's processes) and
//! a private mount namespace: overlays over `/etc`,
//! `/var` and `/usr/lib/ocf` whose upper layers live in the node's directory (the host's files
//! are never written), tmpfs on `/run` and `/dev/shm`, then corosync and pacemakerd. Files staged
//! with [`Cluster::stage`] before [`Cluster::boot`] appear at their path on that node only.
//!
//! Only one cluster runs at a time (`global_lock("cluster")`). Dropping the [`Cluster`] (also
//! while a test panics) stops Pacemaker and corosync, kills whatever is left in the namespaces
//! (HAProxy included), and deletes the namespaces; the mounts die with their mount namespaces.
//! Namespaces left by a test process that was killed are removed by the next cluster.

use crate::{
    global_lock, keep_on_failure, kill_netns_processes, netns_pids, remove_stale_namespaces,
    require_program, require_root, set_mode, sh, GlobalLock, Netns,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The script each node runs (see the module comment).
pub const NODE_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/cluster/node.sh");
/// corosync.conf with `@RING1@`, `@RING2@` and `@NODE_DIR@` to fill.
pub const COROSYNC_CONF: &str = include_str!("../cluster/corosync.conf.in");
/// A node's haproxy.cfg with `@ANCHOR@` (the address it binds) and `@NODE@` to fill.
pub const HAPROXY_CFG: &str = include_str!("../cluster/haproxy.cfg.in");
/// The README's `crm configure` block.
pub const CRM_CONFIGURE: &str = include_str!("../../docs/crm-configure.txt");
/// The README's `crm configure` block for Hetzner Cloud (an `anchorip` clone holding the
/// floating IP on `lo`, ordered before HAProxy; floatip with `provider=hetzner`).
pub const CRM_CONFIGURE_HETZNER: &str = include_str!("../../docs/crm-configure-hetzner.txt");
/// The README's `crm configure` block for Exoscale (as Hetzner's, `provider=exoscale`).
pub const CRM_CONFIGURE_EXOSCALE: &str = include_str!("../../docs/crm-configure-exoscale.txt");
/// The README's Vultr block.
pub const CRM_CONFIGURE_VULTR: &str = include_str!("../../docs/crm-configure-vultr.txt");

const NETNS_TAG: &str = "cluster";
/// How long a node gets to stop its resources and leave the cluster before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(200);

/// corosync's token timeout in ms: 1000, or `CLOUDHA_COROSYNC_TOKEN` (benchmarks compare).
pub fn corosync_token_ms() -> u64 {
    std::env::var("CLOUDHA_COROSYNC_TOKEN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

/// One node: its namespace, ring address and directory (logs, overlays, staged files).
pub struct Node {
    pub name: String,
    pub netns: Netns,
    pub ring_addr: String,
    pub dir: PathBuf,
    /// `unshare`, the parent of the node script; and the node script's pid (seen from here),
    /// the init of the node's pid namespace.
    holder: Mutex<Option<(Child, i32)>>,
}

impl Node {
    /// The node script's pid while it runs (its namespaces are the node's; inside, it is the
    /// init of the node's pid namespace).
    pub fn pid(&self) -> Option<i32> {
        let mut holder = self.holder.lock().unwrap_or_else(|e| e.into_inner());
        let (child, init) = holder.as_mut()?;
        match child.try_wait() {
            Ok(None) => Some(*init),
            _ => {
                *holder = None;
                None
            }
        }
    }

    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }

    /// A command that runs `program` on this node (its network, mount, UTS and pid namespaces).
    pub fn command(&self, program: &str) -> Command {
        let pid = self
            .pid()
            .unwrap_or_else(|| panic!("{} is not running", self.name));
        let mut c = Command::new("nsenter");
        c.arg("-t")
            .arg(pid.to_string())
            .args(["-n", "-m", "-u", "-p", "--"])
            .arg(program);
        c
    }

    /// Run `program args` on this node; returns its output whatever the exit status.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{program} on {}: {e}", self.name))
    }

    /// The pids of every process in this node's network namespace (not this test's own).
    pub fn processes(&self) -> Vec<i32> {
        netns_pids(&self.netns.name)
    }

    /// The last `lines` lines of one of the node's logs (`node.log`, `pacemaker.log`,
    /// `corosync.log`), for failure messages.
    pub fn log_tail(&self, log: &str, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir.join(log)).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// When this node's pacemaker.log first says `needle` at or after `after`, by the log's own
    /// timestamps (`Nov 30 17:26:49.064 node1 ...`, UTC like the host; millisecond resolution).
    pub fn logged_at(&self, needle: &str, after: SystemTime) -> Option<SystemTime> {
        let text = std::fs::read_to_string(self.dir.join("pacemaker.log")).ok()?;
        // The log has milliseconds: a line of the same millisecond as `after` counts.
        let from = after.checked_sub(Duration::from_millis(1)).unwrap_or(after);
        text.lines()
            .filter(|l| l.contains(needle))
            .filter_map(|l| log_stamp(l, after))
            .find(|t| *t >= from)
    }
}

/// The wall-clock time of a Pacemaker log line (`Mon DD HH:MM:SS.mmm ...`): its time of day on
/// `near`'s UTC day (or the day after, when that is nearer).
fn log_stamp(line: &str, near: SystemTime) -> Option<SystemTime> {
    let clock = line.split_whitespace().nth(2)?;
    let (hms, ms) = clock.split_once('.')?;
    let mut parts = hms.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, sec) = (parts.next()??, parts.next()??, parts.next()??);
    let of_day = Duration::from_millis(((h * 60 + m) * 60 + sec) * 1000 + ms.parse::<u64>().ok()?);
    let since_epoch = near.duration_since(UNIX_EPOCH).ok()?;
    let today = UNIX_EPOCH + Duration::from_secs(since_epoch.as_secs() / 86_400 * 86_400) + of_day;
    let one = Duration::from_secs(86_400);
    let distance = |t: SystemTime| {
        t.duration_since(near)
            .or_else(|_| near.duration_since(t))
            .unwrap_or_default()
    };
    [today.checked_sub(one), Some(today), today.checked_add(one)]
        .into_iter()
        .flatten()
        .min_by_key(|t| distance(*t))
}

/// A two-node cluster (see the module comment).
pub struct Cluster {
    nodes: Vec<Node>,
    dir: tempfile::TempDir,
    _lock: GlobalLock,
}

impl Cluster {
    /// Two nodes' namespaces, veth and directories, with a seeded CIB (no fencing: the nodes are
    /// on one machine; `dc-deadtime` 2 s) staged on each. Nothing runs until [`Cluster::boot`].
    pub fn new() -> Cluster {
        require_root();
        for p in [
            "/usr/sbin/corosync",
            "/usr/sbin/pacemakerd",
            "/usr/sbin/crm",
            "/usr/sbin/crm_mon",
            "/usr/sbin/cibadmin",
            "/usr/bin/nsenter",
            "/usr/bin/unshare",
        ] {
            require_program(p);
        }
        let lock = global_lock("cluster");
        remove_stale_namespaces(NETNS_TAG);

        let dir = tempfile::Builder::new()
            .prefix("cloudha-cluster-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        set_mode(dir.path(), 0o755);

        let seed = dir.path().join("seed.xml");
        let empty = sh(Command::new("cibadmin").arg("--empty"));
        std::fs::write(&seed, empty).expect("write seed CIB");
        for (name, value) in [
            ("stonith-enabled", "false"),
            ("dc-deadtime", "2s"),
            ("cluster-recheck-interval", "30s"),
        ] {
            sh(Command::new("crm_attribute").env("CIB_file", &seed).args([
                "-t",
                "crm_config",
                "-n",
                name,
                "-v",
                value,
            ]));
        }
        let seed = std::fs::read(&seed).expect("read seed CIB");

        let mut nodes = Vec::new();
        for i in 1..=2 {
            let netns = Netns::new(NETNS_TAG);
            netns.ip(&["addr", "add", "169.254.169.254/32", "dev", "lo"]);
            let ndir = dir.path().join(format!("node{i}"));
            std::fs::create_dir(&ndir).expect("node dir");
            set_mode(&ndir, 0o755);
            nodes.push(Node {
                name: format!("node{i}"),
                netns,
                ring_addr: format!("192.168.77.{i}"),
                dir: ndir,
                holder: Mutex::new(None),
            });
        }
        nodes[0].netns.ip(&[
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &nodes[1].netns.name,
        ]);
        for n in &nodes {
            n.netns
                .ip(&["addr", "add", &format!("{}/24", n.ring_addr), "dev", "eth0"]);
            n.netns.ip(&["link", "set", "eth0", "up"]);
        }

        let cluster = Cluster {
            nodes,
            dir,
            _lock: lock,
        };
        for i in 0..2 {
            let conf = COROSYNC_CONF
                .replace("token: 1000", &format!("token: {}", corosync_token_ms()))
                .replace("@RING1@", &cluster.nodes[0].ring_addr)
                .replace("@RING2@", &cluster.nodes[1].ring_addr)
                .replace("@NODE_DIR@", &cluster.nodes[i].dir.display().to_string());
            cluster.stage(i, "/etc/corosync/corosync.conf", conf.as_bytes(), 0o644);
            cluster.stage(i, "/var/lib/pacemaker/cib/cib.xml", &seed, 0o600);
        }
        cluster
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Node `i` (0 or 1).
    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    /// The index of the node named `name`.
    pub fn index_of(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node named {name}"))
    }

    /// The cluster's directory (node directories, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Put a file at `path` (absolute) on node `i` only, before [`Cluster::boot`].
    pub fn stage(&self, i: usize, path: &str, contents: &[u8], mode: u32) {
        let rel = path.strip_prefix('/').expect("an absolute path");
        assert!(
            ["etc/", "var/", "usr/lib/ocf/", "usr/sbin/"]
                .iter()
                .any(|top| rel.starts_with(top)),
            "{path}: a node's own files live under /etc, /var or /usr/lib/ocf (its overlays)"
        );
        let dest = self.nodes[i].dir.join("root").join(rel);
        let parent = dest.parent().expect("a parent");
        std::fs::create_dir_all(parent).expect("create staging dirs");
        std::fs::write(&dest, contents).expect("write staged file");
        set_mode(&dest, mode);
    }

    /// Install the agents of an [`crate::Installed`] root (made by the Makefile from this
    /// build) into every node's `/usr/lib/ocf/resource.d`.
    pub fn stage_agents(&self, installed: &crate::Installed) {
        for n in &self.nodes {
            let dest = n.dir.join("root/usr/lib/ocf");
            std::fs::create_dir_all(&dest).expect("create staging dirs");
            sh(Command::new("cp")
                .arg("-a")
                .arg(installed.root().join("usr/lib/ocf/resource.d"))
                .arg(&dest));
        }
    }

    /// Install the fence agent of an [`crate::Installed`] root (`usr/sbin/fence_cloudha`) into
    /// every node's `/usr/sbin`, where pacemaker-fenced looks for fence agents.
    pub fn stage_fence_agent(&self, installed: &crate::Installed) {
        let agent = std::fs::read(installed.root().join("usr/sbin/fence_cloudha"))
            .expect("the installed fence_cloudha");
        for i in 0..self.nodes.len() {
            self.stage(i, "/usr/sbin/fence_cloudha", &agent, 0o755);
        }
    }

    /// Power node `i` off, as a cloud's power-off does: exactly a crash ([`Cluster::crash`]).
    pub fn power_off(&self, i: usize) -> Instant {
        self.crash(i)
    }

    /// Power node `i` on: a fresh start of that node (its CIB seeded again), not waited for.
    /// Nothing is done when it runs already.
    pub fn power_on(&self, i: usize) {
        let n = &self.nodes[i];
        if !n.is_running() {
            self.start_node(n);
        }
    }

    /// Start both nodes and wait (bounded) until both are online and a DC is elected.
    pub fn boot(&self) {
        for n in &self.nodes {
            self.start_node(n);
        }
        self.wait_until("both nodes online", Duration::from_secs(60), |s| {
            s.dc.is_some() && s.nodes.iter().filter(|n| n.online).count() == 2
        });
    }

    /// Each node gets its own pid namespace (and /proc), as separate machines have: agents
    /// that look for their processes in /proc must not find the other node's.
    fn start_node(&self, n: &Node) {
        let mut child = Command::new("setsid")
            .args(["ip", "netns", "exec", &n.netns.name])
            .args(["unshare", "-m", "-u", "-p", "--fork", "--mount-proc"])
            .args(["--propagation", "private"])
            .arg("bash")
            .arg(NODE_SCRIPT)
            .arg(&n.dir)
            .arg(&n.name)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the node script");
        // The node script is unshare's only child.
        let children = format!("/proc/{0}/task/{0}/children", child.id());
        let end = Instant::now() + Duration::from_secs(10);
        let init = loop {
            let found = std::fs::read_to_string(&children)
                .ok()
                .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()));
            if let Some(pid) = found {
                break pid;
            }
            if Instant::now() >= end || !matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{}: the node script did not start\n{}",
                    n.name,
                    n.log_tail("node.log", 20)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        *n.holder.lock().unwrap_or_else(|e| e.into_inner()) = Some((child, init));
    }

    /// A node that is running, to ask about the cluster.
    pub fn live_node(&self) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.is_running())
            .expect("no node is running")
    }

    /// Run `program args` on a running node, asserting success; returns stdout.
    pub fn sh(&self, program: &str, args: &[&str]) -> String {
        let node = self.live_node();
        let out = node.run(program, args);
        assert!(
            out.status.success(),
            "{program} {args:?} on {} failed ({}): {}{}",
            node.name,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `crm configure load update` of a block in crm shell syntax.
    pub fn configure(&self, block: &str) {
        let file = self.dir.path().join(format!(
            "configure-{}.crm",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::write(&file, block).expect("write crm block");
        let path = file.display().to_string();
        self.sh("crm", &["-w", "configure", "load", "update", &path]);
    }

    /// The cluster's state as `crm_mon --output-as=xml` reports it (with fail counts and bans).
    pub fn status(&self) -> ClusterStatus {
        let node = self.live_node();
        let out = node.run("crm_mon", &["-1", "--output-as=xml", "--include=all"]);
        let xml = String::from_utf8_lossy(&out.stdout).into_owned();
        ClusterStatus::parse(&xml).unwrap_or_else(|e| {
            panic!(
                "crm_mon on {} ({}): {e}\n{xml}{}",
                node.name,
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// Poll the cluster's state until `ok` holds; panics after `timeout` with the last state
    /// and the nodes' logs.
    pub fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        ok: impl Fn(&ClusterStatus) -> bool,
    ) -> ClusterStatus {
        let end = Instant::now() + timeout;
        loop {
            let node = self.live_node();
            let out = node.run("crm_mon", &["-1", "--output-as=xml", "--include=all"]);
            let xml = String::from_utf8_lossy(&out.stdout).into_owned();
            let last = match ClusterStatus::parse(&xml) {
                Ok(s) if ok(&s) => return s,
                Ok(s) => s.xml,
                Err(e) => format!("{e}: {xml}{}", String::from_utf8_lossy(&out.stderr)),
            };
            if Instant::now() >= end {
                panic!(
                    "waited {timeout:?} for {what}; last crm_mon:\n{last}\n{}",
                    self.diagnostics()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Wait (bounded) until Pacemaker has no action pending: the cluster is settled.
    pub fn settle(&self, timeout: Duration) {
        self.sh(
            "crm_resource",
            &[
                "--wait",
                &format!("--timeout={}s", timeout.as_secs().max(1)),
            ],
        );
    }

    /// Put node `i` in standby (or take it out), as `crm_standby` does from any node.
    pub fn standby(&self, i: usize, on: bool) {
        let name = self.nodes[i].name.clone();
        self.sh(
            "crm_standby",
            &["-N", &name, "-v", if on { "on" } else { "off" }],
        );
    }

    /// Crash node `i`: SIGKILL of every process of the node (corosync, pacemakerd and its
    /// daemons, the resources' processes), as a power loss would. Returns when none is left.
    pub fn crash(&self, i: usize) -> Instant {
        let n = &self.nodes[i];
        let taken = n.holder.lock().unwrap_or_else(|e| e.into_inner()).take();
        let at = Instant::now();
        if let Some((mut child, init)) = taken {
            // The init of a pid namespace takes every process of it along.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(init),
                nix::sys::signal::Signal::SIGKILL,
            );
            kill_netns_processes(&n.netns.name);
            let _ = child.kill();
            let _ = child.wait();
        }
        kill_netns_processes(&n.netns.name);
        at
    }

    /// Stop node `i` cleanly: TERM to its script, which stops Pacemaker (and so the resources
    /// there) and corosync; anything left after the grace period is killed.
    pub fn stop_node(&self, i: usize) {
        let n = &self.nodes[i];
        let taken = n.holder.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((mut child, init)) = taken {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(init),
                nix::sys::signal::Signal::SIGTERM,
            );
            let end = Instant::now() + STOP_GRACE;
            while Instant::now() < end {
                match child.try_wait() {
                    Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                    _ => break,
                }
            }
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(init),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = child.kill();
            let _ = child.wait();
        }
        kill_netns_processes(&n.netns.name);
    }

    /// The tails of every node's logs.
    pub fn diagnostics(&self) -> String {
        let mut s = String::new();
        for n in &self.nodes {
            for log in ["node.log", "pacemaker.log"] {
                s.push_str(&format!(
                    "---- {} {log} (last 40 lines)\n{}\n",
                    n.name,
                    n.log_tail(log, 40)
                ));
            }
        }
        s
    }
}

impl Default for Cluster {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Both nodes at once: a lone survivor would try to recover the other's resources.
        for n in &self.nodes {
            if let Some(pid) = n.pid() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        for i in 0..self.nodes.len() {
            self.stop_node(i);
        }
        keep_on_failure(&mut self.dir, "cluster logs");
        // The namespaces go with `nodes`, the directory with `dir`, then the lock.
    }
}

/// A node as `crm_mon` sees it.
#[derive(Clone, Debug)]
pub struct NodeState {
    pub name: String,
    pub online: bool,
    pub standby: bool,
}

/// One resource instance (a clone has one per instance).
#[derive(Clone, Debug)]
pub struct ResourceState {
    pub id: String,
    pub agent: String,
    pub role: String,
    pub active: bool,
    pub failed: bool,
    pub nodes: Vec<String>,
}

/// The last operation of each kind per resource and node (`node_history`).
#[derive(Clone, Debug)]
pub struct Operation {
    pub node: String,
    pub resource: String,
    pub task: String,
    pub rc: i32,
    pub interval_ms: u64,
    pub call: i64,
    /// How long the agent ran, as Pacemaker measured it.
    pub exec_ms: u64,
}

/// A failed operation (`failures`), with the agent's exit reason.
#[derive(Clone, Debug)]
pub struct Failure {
    pub node: String,
    pub op_key: String,
    pub task: String,
    pub exitcode: i32,
    pub exitreason: String,
}

/// A location constraint against a node (`bans`: a -INFINITY score or any negative one).
#[derive(Clone, Debug)]
pub struct Ban {
    pub id: String,
    pub resource: String,
    pub node: String,
    pub weight: i64,
}

/// The parsed `crm_mon --output-as=xml --include=all`.
#[derive(Clone, Debug)]
pub struct ClusterStatus {
    pub dc: Option<String>,
    pub nodes: Vec<NodeState>,
    pub resources: Vec<ResourceState>,
    pub history: Vec<Operation>,
    /// Fail counts per (node, resource).
    pub fail_counts: BTreeMap<(String, String), u64>,
    pub failures: Vec<Failure>,
    pub bans: Vec<Ban>,
    pub xml: String,
}

impl ClusterStatus {
    pub fn parse(xml: &str) -> Result<ClusterStatus, String> {
        let doc = roxmltree::Document::parse(xml).map_err(|e| format!("not XML: {e}"))?;
        let root = doc.root_element();
        if root.tag_name().name() != "pacemaker-result" {
            return Err("not a crm_mon result".into());
        }
        let attr = |n: &roxmltree::Node, a: &str| n.attribute(a).unwrap_or("").to_string();
        let is_true = |n: &roxmltree::Node, a: &str| n.attribute(a) == Some("true");
        let summary = root
            .children()
            .find(|c| c.has_tag_name("summary"))
            .ok_or("no summary (is the cluster up?)")?;
        let dc = summary
            .children()
            .find(|c| c.has_tag_name("current_dc"))
            .filter(|c| is_true(c, "present"))
            .map(|c| attr(&c, "name"));
        let mut s = ClusterStatus {
            dc,
            nodes: Vec::new(),
            resources: Vec::new(),
            history: Vec::new(),
            fail_counts: BTreeMap::new(),
            failures: Vec::new(),
            bans: Vec::new(),
            xml: xml.to_string(),
        };
        for section in root.children().filter(|c| c.is_element()) {
            match section.tag_name().name() {
                "nodes" => {
                    for n in section.children().filter(|c| c.has_tag_name("node")) {
                        s.nodes.push(NodeState {
                            name: attr(&n, "name"),
                            online: is_true(&n, "online"),
                            standby: is_true(&n, "standby"),
                        });
                    }
                }
                "resources" => {
                    for r in section.descendants().filter(|c| c.has_tag_name("resource")) {
                        s.resources.push(ResourceState {
                            id: attr(&r, "id"),
                            agent: attr(&r, "resource_agent"),
                            role: attr(&r, "role"),
                            active: is_true(&r, "active"),
                            failed: is_true(&r, "failed"),
                            nodes: r
                                .children()
                                .filter(|c| c.has_tag_name("node"))
                                .map(|c| attr(&c, "name"))
                                .collect(),
                        });
                    }
                }
                "node_history" => {
                    for n in section.children().filter(|c| c.has_tag_name("node")) {
                        let node = attr(&n, "name");
                        for r in n.children().filter(|c| c.has_tag_name("resource_history")) {
                            let resource = attr(&r, "id");
                            if let Some(fc) = r.attribute("fail-count") {
                                let count = if fc == "INFINITY" {
                                    u64::MAX
                                } else {
                                    fc.parse().unwrap_or(0)
                                };
                                s.fail_counts
                                    .insert((node.clone(), resource.clone()), count);
                            }
                            for o in r.children().filter(|c| c.has_tag_name("operation_history")) {
                                s.history.push(Operation {
                                    node: node.clone(),
                                    resource: resource.clone(),
                                    task: attr(&o, "task"),
                                    rc: o
                                        .attribute("rc")
                                        .and_then(|v| v.parse().ok())
                                        .unwrap_or(-1),
                                    interval_ms: millis(o.attribute("interval")),
                                    call: o
                                        .attribute("call")
                                        .and_then(|v| v.parse().ok())
                                        .unwrap_or(-1),
                                    exec_ms: millis(o.attribute("exec-time")),
                                });
                            }
                        }
                    }
                }
                "failures" => {
                    for f in section.children().filter(|c| c.has_tag_name("failure")) {
                        s.failures.push(Failure {
                            node: attr(&f, "node"),
                            op_key: attr(&f, "op_key"),
                            task: attr(&f, "task"),
                            exitcode: f
                                .attribute("exitcode")
                                .and_then(|v| v.parse().ok())
                                .unwrap_or(-1),
                            // crm_mon 2.1.5 escapes the reason twice in XML.
                            exitreason: unescape_xml(&attr(&f, "exitreason")),
                        });
                    }
                }
                "bans" => {
                    for b in section.children().filter(|c| c.has_tag_name("ban")) {
                        s.bans.push(Ban {
                            id: attr(&b, "id"),
                            resource: attr(&b, "resource"),
                            node: attr(&b, "node"),
                            weight: b
                                .attribute("weight")
                                .map(|w| {
                                    if w.contains("INFINITY") {
                                        -1_000_000
                                    } else {
                                        w.parse().unwrap_or(0)
                                    }
                                })
                                .unwrap_or(0),
                        });
                    }
                }
                _ => {}
            }
        }
        Ok(s)
    }

    /// The nodes where `id` (a primitive, or each instance of a cloned one) is started and not
    /// failed.
    pub fn running_on(&self, id: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .resources
            .iter()
            .filter(|r| r.id == id && r.active && !r.failed && r.role == "Started")
            .flat_map(|r| r.nodes.iter().cloned())
            .collect();
        v.sort();
        v
    }

    /// The one node where `id` is started, if exactly one.
    pub fn single_node_of(&self, id: &str) -> Option<String> {
        let v = self.running_on(id);
        (v.len() == 1).then(|| v[0].clone())
    }

    pub fn online_nodes(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.online)
            .map(|n| n.name.clone())
            .collect()
    }

    /// The last recorded operation `task` (with `interval_ms`) of `resource` on `node`.
    pub fn operation(
        &self,
        node: &str,
        resource: &str,
        task: &str,
        interval_ms: u64,
    ) -> Option<&Operation> {
        self.history
            .iter()
            .filter(|o| {
                o.node == node
                    && o.resource == resource
                    && o.task == task
                    && o.interval_ms == interval_ms
            })
            .max_by_key(|o| o.call)
    }

    /// The highest fail count of `resource` on any node.
    pub fn max_fail_count(&self, resource: &str) -> u64 {
        self.fail_counts
            .iter()
            .filter(|((_, r), _)| r == resource)
            .map(|(_, c)| *c)
            .max()
            .unwrap_or(0)
    }
}

/// The five predefined XML entities, decoded.
fn unescape_xml(s: &str) -> String {
    s.replace("&apos;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// "5000ms" -> 5000 (0 when absent or garbled).
fn millis(v: Option<&str>) -> u64 {
    v.map(|s| s.trim_end_matches("ms"))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_stamps_are_read_on_the_nearest_day() {
        let line = "Nov 30 17:26:49.064 node1 pacemaker-based     [54] (update_peer_state_iter) \tnotice: Node node2 state is now lost";
        // 2026-11-30 17:26:00 UTC.
        let near = UNIX_EPOCH + Duration::from_secs(1_796_059_560);
        let t = log_stamp(line, near).unwrap();
        assert_eq!(
            t.duration_since(near).unwrap(),
            Duration::from_millis(49_064)
        );
        // Just after midnight, a line from 23:59 is of the day before.
        let after_midnight = UNIX_EPOCH + Duration::from_secs(1_796_083_200 + 5);
        let late = "Nov 30 23:59:59.500 node1 x";
        let t = log_stamp(late, after_midnight).unwrap();
        assert_eq!(
            after_midnight.duration_since(t).unwrap(),
            Duration::from_millis(5_500)
        );
        assert!(log_stamp("garbage", near).is_none());
        assert!(log_stamp("Nov 30 17:26:49 node1 no millis", near).is_none());
    }
}
