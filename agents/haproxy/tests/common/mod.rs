//! What the haproxy agent's tests share: an instance of the agent with its own state directory
//! and configuration, HTTP backends the test runs, and a bounded load generator. Everything is
//! on loopback, on ports the kernel hands out. The agent runs only through `cloudha_tests::
//! run_agent` (or `run_agent_args`, behind a wrapper program), and answers are checked with
//! `AgentRun::expect`.
#![allow(dead_code)]

use cloudha_tests::{
    agent_bin, require_program, require_root, run_agent, run_agent_args, AgentRun,
};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// An HTTP backend on loopback: `/` answers at once, `/slow/<ms>` after `ms` milliseconds.
pub struct Backend {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Backend {
    pub fn start() -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("backend bind");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(c) = conn {
                    std::thread::spawn(move || serve(c, port));
                }
            }
        });
        Backend {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

fn serve(mut c: TcpStream, port: u16) {
    let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match c.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    if let Some(ms) = path.strip_prefix("/slow/").and_then(|m| m.parse().ok()) {
        std::thread::sleep(Duration::from_millis(ms));
    }
    let body = format!("ok from {port}\n");
    let _ = write!(
        c,
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = c.shutdown(Shutdown::Write);
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One HTTP GET through the load balancer; Ok(body) on a 200.
pub fn get(port: u16, path: &str, timeout: Duration) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), timeout)
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("send: {e}"))?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    if answer.starts_with("HTTP/1.1 200") {
        Ok(answer)
    } else {
        Err(format!(
            "answer: {:?}",
            answer.lines().next().unwrap_or("(nothing)")
        ))
    }
}

/// A continuous, bounded load: `threads` clients, each one request at a time with a pause
/// between, until `finish`.
pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    pub fn start(port: u16, threads: usize) -> Load {
        Load::paced(port, threads, Duration::from_millis(2))
    }

    /// `threads` clients, each making a new connection (one request) every `pause` or so.
    pub fn paced(port: u16, threads: usize, pause: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..threads)
            .map(|_| {
                let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        match get(port, "/", Duration::from_secs(5)) {
                            Ok(_) => {
                                ok.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(e) => failures.lock().expect("lock").push(e),
                        }
                        std::thread::sleep(pause);
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failures,
            threads,
        }
    }

    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::SeqCst)
    }

    /// The failures so far.
    pub fn failures(&self) -> Vec<String> {
        self.failures.lock().expect("lock").clone()
    }

    /// Stop the clients; (successful requests, failures).
    pub fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
        let failures = self.failures.lock().expect("lock").clone();
        (self.ok.load(Ordering::SeqCst), failures)
    }

    /// Stop the clients and assert that no request failed; returns the successful ones.
    pub fn finish_without_failures(self, when: &str) -> u64 {
        let (ok, failures) = self.finish();
        assert!(
            failures.is_empty(),
            "{when}: {} of {ok} requests failed: {:?}",
            failures.len(),
            &failures[..failures.len().min(5)]
        );
        ok
    }
}

/// A configuration: frontend on `fe`, backend `be` with `servers`.
pub fn config(fe: u16, servers: &[u16]) -> String {
    let mut c = format!(
        "global\n    maxconn 1000\n\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n    retries 3\n    option redispatch\n\n\
frontend fe\n    bind 127.0.0.1:{fe}\n    default_backend be\n\nbackend be\n"
    );
    for (i, p) in servers.iter().enumerate() {
        c.push_str(&format!(
            "    server s{i} 127.0.0.1:{p} check inter 500ms fall 1 rise 1\n"
        ));
    }
    c
}

/// One instance of the agent: a world-readable temporary directory with its configuration and
/// its HA_RSCTMP, a unique instance name. Stopped (hard) on drop.
pub struct Lb {
    pub dir: tempfile::TempDir,
    pub instance: String,
    pub extra: Vec<(String, String)>,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

impl Lb {
    pub fn new(tag: &str, config_text: &str) -> Lb {
        require_root();
        require_program("/usr/sbin/haproxy");
        let dir = tempfile::Builder::new()
            .prefix("cloudha-hap-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let lb = Lb {
            dir,
            instance: format!(
                "{tag}-{}-{}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::SeqCst)
            ),
            extra: Vec::new(),
        };
        lb.write_config(config_text);
        lb
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("haproxy.cfg")
    }

    pub fn rsctmp(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    pub fn write_config(&self, text: &str) {
        let p = self.config_path();
        std::fs::write(&p, text).expect("write config");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }

    pub fn set(&mut self, k: &str, v: &str) {
        self.extra.retain(|(name, _)| name != k);
        self.extra.push((k.to_string(), v.to_string()));
    }

    /// Run an action with Pacemaker's variables; `more` adds or overrides variables.
    pub fn run_with(&self, action: &str, more: &[(&str, &str)]) -> AgentRun {
        self.run_in(action, more, None)
    }

    /// The variables of an action: Pacemaker's, then `extra`, then `more` (each overriding).
    fn vars(&self, more: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut vars: Vec<(String, String)> = vec![
            (
                "OCF_RESKEY_config".into(),
                self.config_path().display().to_string(),
            ),
            ("HA_RSCTMP".into(), self.rsctmp().display().to_string()),
            ("OCF_RESOURCE_INSTANCE".into(), self.instance.clone()),
            ("OCF_RESOURCE_TYPE".into(), "haproxy".into()),
            ("OCF_RESKEY_CRM_meta_timeout".into(), "20000".into()),
        ];
        let overrides = self
            .extra
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(more.iter().copied());
        for (k, v) in overrides {
            vars.retain(|(name, _)| name != k);
            vars.push((k.to_string(), v.to_string()));
        }
        vars
    }

    /// `run_with`, inside `netns` when given (`ip netns exec`: a new mount namespace each time).
    pub fn run_in(
        &self,
        action: &str,
        more: &[(&str, &str)],
        netns: Option<&cloudha_tests::Netns>,
    ) -> AgentRun {
        let vars = self.vars(more);
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_agent(&agent_bin("haproxy"), action, &vars, netns)
    }

    /// The action run behind `wrapper`: `wrapper <wrapper_args…> <agent> <action>`, with the
    /// same variables (a program that changes the user, or a shell that adds descriptors or
    /// variables, then execs the agent).
    pub fn run_wrapped(
        &self,
        wrapper: &Path,
        wrapper_args: &[&str],
        action: &str,
        more: &[(&str, &str)],
    ) -> AgentRun {
        let agent = agent_bin("haproxy").display().to_string();
        let args: Vec<&str> = wrapper_args
            .iter()
            .copied()
            .chain([agent.as_str(), action])
            .collect();
        let vars = self.vars(more);
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_agent_args(wrapper, &args, &vars, None)
    }

    pub fn run(&self, action: &str) -> AgentRun {
        self.run_with(action, &[])
    }

    /// A recurring monitor at `depth`.
    pub fn monitor(&self, depth: u32) -> AgentRun {
        let d = depth.to_string();
        self.run_with(
            "monitor",
            &[
                ("OCF_CHECK_LEVEL", &d),
                ("OCF_RESKEY_CRM_meta_interval", "10000"),
            ],
        )
    }

    /// A probe (interval 0).
    pub fn probe(&self) -> AgentRun {
        self.run_with("monitor", &[("OCF_RESKEY_CRM_meta_interval", "0")])
    }

    pub fn pidfile(&self) -> PathBuf {
        self.rsctmp()
            .join("cloudha")
            .join(format!("haproxy-{}.pid", self.instance))
    }

    pub fn socket(&self) -> PathBuf {
        self.rsctmp()
            .join("cloudha")
            .join(format!("haproxy-{}.sock", self.instance))
    }

    pub fn master_pid(&self) -> u32 {
        std::fs::read_to_string(self.pidfile())
            .expect("pidfile")
            .trim()
            .parse()
            .expect("pid")
    }

    /// Live processes whose argv carries this instance's socket.
    pub fn processes(&self) -> Vec<u32> {
        processes_with(&self.socket().display().to_string())
    }

    /// The serving worker, from the master CLI.
    pub fn worker_pid(&self) -> u32 {
        let answer = master_cli(&self.socket(), "show proc");
        let mut in_workers = false;
        let mut best: Option<(u32, u32)> = None;
        for l in answer.lines() {
            if l.starts_with("# workers") {
                in_workers = true;
                continue;
            }
            if l.starts_with('#') {
                in_workers = false;
            }
            let f: Vec<&str> = l.split_whitespace().collect();
            if in_workers && f.len() > 2 && f[1] == "worker" {
                let (pid, reloads) = (f[0].parse().expect("pid"), f[2].parse().expect("reloads"));
                if best.is_none_or(|(_, r)| reloads < r) {
                    best = Some((pid, reloads));
                }
            }
        }
        // The newest worker: the one that has lived through the fewest reloads.
        best.map(|(pid, _)| pid)
            .unwrap_or_else(|| panic!("no worker in: {answer}"))
    }
}

impl Drop for Lb {
    fn drop(&mut self) {
        // Never leave a HAProxy behind, whatever the test did.
        for pid in self.processes() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Live (non-zombie) processes whose argv contains `needle`.
pub fn processes_with(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if !cmd.is_empty() && String::from_utf8_lossy(&cmd).contains(needle) {
            pids.push(pid);
        }
    }
    pids
}

/// One command on a master CLI socket.
pub fn master_cli(socket: &Path, command: &str) -> String {
    let mut s = std::os::unix::net::UnixStream::connect(socket)
        .unwrap_or_else(|e| panic!("connect {}: {e}", socket.display()));
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    writeln!(s, "{command}").expect("send");
    s.shutdown(Shutdown::Write).expect("shutdown");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read");
    answer
}

/// Poll `f` until it returns true or `limit` passes; returns whether it did.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}
