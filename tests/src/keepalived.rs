//! Two keepalived load balancers on this machine, for tests of cloudha's agents as keepalived's
//! `vrrp_script` and `notify_master` (docs/keepalived.md).
//!
//! Each node is a network namespace (`cloudha-keepalived-<pid>-<n>`, from [`Netns`]) joined to the
//! other by a veth pair named `eth1` on both sides (the private network of the classic DigitalOcean
//! setup, 10.132.0.11 and .12 here, private to the namespaces), with `169.254.169.254/32` on `lo`
//! for its droplet's metadata service and the fake cloud's API on `127.0.0.1:8080` inside it.
//! Its processes run under a small init ([`NODE_INIT`]) in their own pid namespace and a private
//! mount namespace: a fresh tmpfs on `/run` (so `/run/resource-agents` does not exist until an
//! agent makes it, as after a boot) and a private `/dev` whose `/dev/log` leads to a datagram
//! socket of this test, the node's [`Syslog`]: what keepalived and the agents log there is what a
//! keepalived user finds in the journal.
//!
//! Dropping the [`Pair`] (also while a test panics) kills every process of both nodes (the init
//! of a pid namespace takes them all along) and deletes the namespaces. Namespaces left by a test
//! process that was killed are removed by the next [`Pair`].

use crate::{
    keep_on_failure, kill_netns_processes, netns_pids, remove_stale_namespaces, require_program,
    require_root, set_mode, Netns,
};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The init of a node (arguments: the node's directory). See the module comment.
pub const NODE_INIT: &str = r#"#!/bin/bash
set -euo pipefail
dir=$1
exec >> "$dir/node.log" 2>&1
mount -t tmpfs -o mode=0755 run /run
mount -t tmpfs -o mode=0755 dev /dev
mknod -m 666 /dev/null c 1 3
mknod -m 666 /dev/zero c 1 5
mknod -m 666 /dev/full c 1 7
mknod -m 666 /dev/random c 1 8
mknod -m 666 /dev/urandom c 1 9
mknod -m 666 /dev/tty c 5 0
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
mkdir /dev/shm /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
ln -s "$dir/log.sock" /dev/log
echo "node init: ready (pid $$)"
touch "$dir/ready"
# The init of the pid namespace: reap whatever is left to it until killed.
while :; do sleep 3600 & wait $! || true; done
"#;

const NETNS_TAG: &str = "keepalived";
/// The private interface of the classic setup, and each node's address on it.
pub const INTERFACE: &str = "eth1";
pub const PRIVATE_IPS: [&str; 2] = ["10.132.0.11", "10.132.0.12"];
/// Where each node finds the fake cloud's API (inside its namespace).
pub const API_URL: &str = "http://127.0.0.1:8080";
const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// One node's syslog: every datagram sent to its `/dev/log`, without the `<PRI>` prefix.
pub struct Syslog {
    lines: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Syslog {
    fn bind(path: &Path) -> Syslog {
        let sock = UnixDatagram::bind(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (lines.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 16 * 1024];
            while !s.load(Ordering::SeqCst) {
                if let Ok(n) = sock.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]);
                    let text = text.trim_end_matches(['\n', '\0']);
                    let line = match text.strip_prefix('<').and_then(|t| t.split_once('>')) {
                        Some((pri, rest)) if pri.bytes().all(|b| b.is_ascii_digit()) => rest,
                        _ => text,
                    };
                    l.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(line.to_string());
                }
            }
        });
        Syslog {
            lines,
            stop,
            thread: Some(thread),
        }
    }

    /// Every line so far, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many lines so far contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(needle)).count()
    }

    /// Wait (bounded) until the lines from index `from` on hold one that contains every needle;
    /// returns it, or None after `timeout`.
    pub fn wait_for(&self, from: usize, needles: &[&str], timeout: Duration) -> Option<String> {
        let end = Instant::now() + timeout;
        loop {
            let found = self
                .lines()
                .into_iter()
                .skip(from)
                .find(|l| needles.iter().all(|n| l.contains(n)));
            if found.is_some() || Instant::now() >= end {
                return found;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn len(&self) -> usize {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Syslog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One load balancer (see the module comment).
pub struct Node {
    pub name: String,
    pub netns: Netns,
    pub private_ip: String,
    pub droplet: u64,
    /// The node's directory: its files (configurations, token), `node.log`, `keepalived.out`.
    pub dir: PathBuf,
    pub syslog: Syslog,
    /// `unshare` (the parent of the init) and the init's pid as seen from here.
    init: Mutex<Option<(Child, i32)>>,
    /// `nsenter`, the parent of keepalived.
    keepalived: Mutex<Option<Child>>,
}

impl Node {
    fn init_pid(&self) -> i32 {
        self.init
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(_, pid)| *pid)
            .unwrap_or_else(|| panic!("{} is not running", self.name))
    }

    /// A command that runs `program` on this node (its network, mount and pid namespaces) with
    /// only `PATH` in its environment, as systemd starts a service.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("-t")
            .arg(self.init_pid().to_string())
            .args(["-n", "-m", "-p", "--"])
            .arg(program)
            .env_clear()
            .env("PATH", PATH)
            .stdin(Stdio::null());
        c
    }

    /// Run `program args` on this node: (exit code, stdout then stderr).
    pub fn run(&self, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> (i32, String) {
        crate::output(self.command(program).args(args))
    }

    /// Start keepalived in the foreground (`--dont-fork`, as Debian's unit runs it), VRRP only,
    /// with this configuration and its pid files in the node's directory. It logs to syslog.
    pub fn start_keepalived(&self, config: &Path) {
        let mut slot = self.keepalived.lock().unwrap_or_else(|e| e.into_inner());
        assert!(slot.is_none(), "{}: keepalived already runs", self.name);
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("keepalived.out"))
            .expect("keepalived.out");
        let child = self
            .command("keepalived")
            .arg("--dont-fork")
            .arg("--vrrp")
            .arg("--use-file")
            .arg(config)
            .arg("--pid")
            .arg(self.dir.join("keepalived.pid"))
            .arg("--vrrp_pid")
            .arg(self.dir.join("keepalived_vrrp.pid"))
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("start keepalived");
        *slot = Some(child);
    }

    /// The pids of this node's processes whose name (`comm`) is `name`.
    pub fn pids_of(&self, name: &str) -> Vec<i32> {
        netns_pids(&self.netns.name)
            .into_iter()
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .is_ok_and(|c| c.trim_end() == name)
            })
            .collect()
    }

    /// Crash keepalived: every keepalived process of the node is frozen, then killed, so that
    /// none says goodbye (no priority-0 advertisement): the peer must notice the silence.
    pub fn crash_keepalived(&self) {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        let pids = self.pids_of("keepalived");
        assert!(!pids.is_empty(), "{}: keepalived is not running", self.name);
        for sig in [Signal::SIGSTOP, Signal::SIGKILL] {
            for &p in &pids {
                let _ = kill(Pid::from_raw(p), sig);
            }
        }
        if let Some(mut c) = self
            .keepalived
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = c.wait();
        }
        let end = Instant::now() + Duration::from_secs(10);
        while !self.pids_of("keepalived").is_empty() {
            assert!(
                Instant::now() < end,
                "{}: keepalived survived SIGKILL",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The node's syslog and keepalived's own output, for failure messages.
    pub fn diagnostics(&self) -> String {
        format!(
            "---- {} syslog\n{}\n---- {} keepalived.out\n{}---- {} node.log\n{}",
            self.name,
            self.syslog.lines().join("\n"),
            self.name,
            std::fs::read_to_string(self.dir.join("keepalived.out")).unwrap_or_default(),
            self.name,
            std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default(),
        )
    }

    fn kill_everything(&self) {
        let taken = self.init.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((mut child, init)) = taken {
            // The init of a pid namespace takes every process of it along.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(init),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(mut c) = self
            .keepalived
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
        kill_netns_processes(&self.netns.name);
    }
}

/// Two nodes (see the module comment), served by one fake cloud.
pub struct Pair {
    nodes: Vec<Node>,
    dir: tempfile::TempDir,
}

impl Pair {
    /// Both nodes running (their init, nothing else yet), droplet `droplets[i]` on node `i`,
    /// each with its metadata service and an API listener of `cloud` inside its namespace.
    pub fn new(cloud: &crate::fakecloud::FakeCloud, droplets: [u64; 2]) -> Pair {
        require_root();
        for p in [
            "/usr/sbin/keepalived",
            "/usr/sbin/haproxy",
            "/usr/bin/nsenter",
            "/usr/bin/unshare",
            "/usr/bin/setsid",
        ] {
            require_program(p);
        }
        remove_stale_namespaces(NETNS_TAG);
        let dir = tempfile::Builder::new()
            .prefix("cloudha-keepalived-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        set_mode(dir.path(), 0o755);
        std::fs::write(dir.path().join("node-init.sh"), NODE_INIT).expect("write node init");

        let mut nodes = Vec::new();
        for (i, &droplet) in droplets.iter().enumerate() {
            let netns = Netns::new(NETNS_TAG);
            netns.ip(&["addr", "add", "169.254.169.254/32", "dev", "lo"]);
            cloud.serve_metadata_in_netns(
                droplet,
                &netns.name,
                "169.254.169.254:80".parse().expect("addr"),
            );
            cloud.serve_api_in_netns(&netns.name, "127.0.0.1:8080".parse().expect("addr"));
            let name = format!("lb{}", i + 1);
            let ndir = dir.path().join(&name);
            std::fs::create_dir(&ndir).expect("node dir");
            set_mode(&ndir, 0o755);
            let syslog = Syslog::bind(&ndir.join("log.sock"));
            nodes.push(Node {
                name,
                netns,
                private_ip: PRIVATE_IPS[i].to_string(),
                droplet,
                dir: ndir,
                syslog,
                init: Mutex::new(None),
                keepalived: Mutex::new(None),
            });
        }
        nodes[0].netns.ip(&[
            "link",
            "add",
            INTERFACE,
            "type",
            "veth",
            "peer",
            "name",
            INTERFACE,
            "netns",
            &nodes[1].netns.name,
        ]);
        for n in &nodes {
            n.netns.ip(&[
                "addr",
                "add",
                &format!("{}/16", n.private_ip),
                "dev",
                INTERFACE,
            ]);
            n.netns.ip(&["link", "set", INTERFACE, "up"]);
        }
        let pair = Pair { nodes, dir };
        for n in &pair.nodes {
            pair.start_init(n);
        }
        pair
    }

    fn start_init(&self, n: &Node) {
        let mut child = Command::new("setsid")
            .args(["ip", "netns", "exec", &n.netns.name])
            .args(["unshare", "-m", "-p", "--fork", "--mount-proc"])
            .args(["--propagation", "private"])
            .arg("bash")
            .arg(self.dir.path().join("node-init.sh"))
            .arg(&n.dir)
            .env_clear()
            .env("PATH", PATH)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the node init");
        // The init is unshare's only child.
        let children = format!("/proc/{0}/task/{0}/children", child.id());
        let ready = n.dir.join("ready");
        let end = Instant::now() + Duration::from_secs(10);
        let init = loop {
            let found = std::fs::read_to_string(&children)
                .ok()
                .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()));
            if let (Some(pid), true) = (found, ready.exists()) {
                break pid;
            }
            if Instant::now() >= end || !matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{}: the node init did not start\n{}",
                    n.name,
                    std::fs::read_to_string(n.dir.join("node.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        *n.init.lock().unwrap_or_else(|e| e.into_inner()) = Some((child, init));
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Node `i` (0 or 1).
    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    /// The pair's directory (one directory per node).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Both nodes' logs, for failure messages.
    pub fn diagnostics(&self) -> String {
        self.nodes.iter().map(Node::diagnostics).collect()
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for n in &self.nodes {
            n.kill_everything();
        }
        if std::thread::panicking() || std::env::var_os("CLOUDHA_KEEP").is_some() {
            for n in &self.nodes {
                let mut text = n.syslog.lines().join("\n");
                text.push('\n');
                let _ = std::fs::write(n.dir.join("syslog.log"), text);
            }
        }
        keep_on_failure(&mut self.dir, "keepalived test files");
        // The namespaces and syslog sockets go with `nodes`, the directory with `dir`.
    }
}
