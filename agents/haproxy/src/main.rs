//! `ocf:cloudha:haproxy`: runs one HAProxy in master-worker mode for Pacemaker. It starts it
//! detached, watches it at three depths, reloads it through the master CLI, and drains it on
//! stop. It never adopts or touches a HAProxy it did not start.

mod holder;
mod master;
mod process;
mod words;

use cloudha_common::agent::{Agent, Context, Status};
use cloudha_common::state::InstanceState;
use cloudha_common::url::HttpUrl;
use cloudha_common::{ActionSpec, AgentSpec, Deadline, OcfError, OcfResult, ParamSpec};
use master::ProcList;
use nix::sys::signal::Signal;
use process::Identity;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

static SPEC: AgentSpec = AgentSpec {
    name: "haproxy",
    version: env!("CARGO_PKG_VERSION"),
    shortdesc: "HAProxy in master-worker mode",
    longdesc: "Starts one HAProxy in master-worker mode with a master CLI socket, detached from \
the agent, and watches it: depth 0 checks that this instance's master process is alive and is \
HAProxy running this configuration; depth 10 that the master CLI answers and a worker runs \
(degraded while the last reload has failed and the previous worker serves); depth 20 that every frontend is open, every backend has a server up \
(degraded otherwise) and check_url answers. reload checks the configuration and reloads through \
the master; stop drains connections (SIGUSR1) within drain_time and the stop timeout, then \
terminates. A HAProxy that this agent did not start is never touched. Parameters conffile, \
binpath and extraconf of the older shell agent are accepted as aliases.",
    params: &[
        ParamSpec::string("config")
            .default("/etc/haproxy/haproxy.cfg")
            .aliases(&["conffile"])
            .short("configuration file")
            .long("Absolute path of the HAProxy configuration file. Checked with 'haproxy -c' before every start and reload."),
        ParamSpec::string("binary")
            .default("/usr/sbin/haproxy")
            .aliases(&["binpath"])
            .short("HAProxy binary")
            .long("Absolute path of the haproxy executable."),
        ParamSpec::string("extra_args")
            .aliases(&["extraconf"])
            .short("extra command-line arguments")
            .long("More haproxy arguments, split into words like a shell would (quotes and backslashes group) but never run through a shell: nothing is expanded. Used for the check and the start."),
        ParamSpec::string("pidfile")
            .short("pid file of the master")
            .long("Where HAProxy writes its master's pid. Default: a file of this instance under HA_RSCTMP (/run/resource-agents/cloudha/haproxy-INSTANCE.pid).")
            .unique(),
        ParamSpec::string("master_socket")
            .short("master CLI socket")
            .long("The master CLI unix socket (mode 600) used for monitoring and reloads. Default: a socket of this instance under HA_RSCTMP (/run/resource-agents/cloudha/haproxy-INSTANCE.sock).")
            .unique(),
        ParamSpec::integer("drain_time")
            .default("30")
            .short("seconds open connections may take to finish on stop")
            .long("On stop HAProxy stops listening and lets open connections finish for at most this many seconds, never beyond the stop timeout (a few seconds are kept to terminate what is left); then the remaining processes are terminated and killed."),
        ParamSpec::string("check_url")
            .short("URL fetched by the depth-20 monitor")
            .long("An http:// URL served through this HAProxy (for example http://127.0.0.1/health). The depth-20 monitor fails unless it answers with a 2xx or 3xx status. Empty: no request is made."),
    ],
    actions: &[
        ActionSpec::new("start", 60),
        ActionSpec::new("stop", 60),
        ActionSpec::new("monitor", 20).interval(10).depth(0),
        ActionSpec::new("monitor", 20).interval(30).depth(10),
        ActionSpec::new("monitor", 30).interval(60).depth(20),
        ActionSpec::new("reload", 60),
        ActionSpec::new("validate-all", 30),
        ActionSpec::new("meta-data", 5),
    ],
};

/// Time kept from the stop budget for SIGTERM and SIGKILL after the drain.
const TERMINATE_RESERVE: Duration = Duration::from_secs(3);
/// Record of a started instance: its presence means "started here and not stopped since".
const STARTED: &str = "started";

/// The parameters of one instance, checked (level 0: no look at this node).
#[derive(Debug)]
struct Settings {
    binary: PathBuf,
    config: PathBuf,
    extra_args: Vec<String>,
    pidfile: PathBuf,
    socket: PathBuf,
    drain: Duration,
    check_url: Option<HttpUrl>,
}

/// This instance's state files: the record and the lock. By hand, without a cluster's instance
/// name, the configuration names the instance.
fn state(ctx: &Context) -> InstanceState {
    ctx.state(ctx.params.get("config").unwrap_or("haproxy"))
}

fn absolute(ctx: &Context, name: &str, value: &str) -> OcfResult<PathBuf> {
    let p = PathBuf::from(value);
    if p.is_absolute() {
        Ok(p)
    } else {
        Err(OcfError::configured(format!(
            "parameter '{}': '{value}' is not an absolute path",
            ctx.params.given_as(name)
        )))
    }
}

impl Settings {
    fn resolve(ctx: &Context, state: &InstanceState) -> OcfResult<Settings> {
        ctx.params.check_types()?;
        let binary = absolute(ctx, "binary", ctx.params.require("binary")?)?;
        let config = absolute(ctx, "config", ctx.params.require("config")?)?;
        let extra_args = match ctx.params.get("extra_args") {
            None => Vec::new(),
            Some(s) => words::split(s).map_err(|e| {
                OcfError::configured(format!(
                    "parameter '{}': '{s}' {e}",
                    ctx.params.given_as("extra_args")
                ))
            })?,
        };
        let pidfile = match ctx.params.get("pidfile") {
            Some(p) => absolute(ctx, "pidfile", p)?,
            None => state.path("pid"),
        };
        let socket = match ctx.params.get("master_socket") {
            Some(p) => absolute(ctx, "master_socket", p)?,
            None => state.path("sock"),
        };
        // sun_path holds 108 bytes with its NUL.
        if socket.as_os_str().len() > 107 {
            return Err(OcfError::configured(format!(
                "parameter 'master_socket': '{}' is longer than a unix socket path may be (107 bytes); set a shorter master_socket or HA_RSCTMP",
                socket.display()
            )));
        }
        let drain = match ctx.params.integer("drain_time")? {
            Some(n) if n < 0 => {
                return Err(OcfError::configured(format!(
                    "parameter 'drain_time': {n} is negative"
                )))
            }
            Some(n) => Duration::from_secs(n.unsigned_abs()),
            None => Duration::ZERO,
        };
        let check_url = match ctx.params.get("check_url") {
            None => None,
            Some(u) => {
                let url = HttpUrl::parse(u).map_err(|e| {
                    OcfError::configured(format!("parameter 'check_url': '{u}' {e}"))
                })?;
                if url.https {
                    return Err(OcfError::configured(format!(
                        "parameter 'check_url': '{u}' is https; only http:// URLs are checked"
                    )));
                }
                Some(url)
            }
        };
        Ok(Settings {
            binary,
            config,
            extra_args,
            pidfile,
            socket,
            drain,
            check_url,
        })
    }

    fn identity(&self) -> Identity {
        Identity {
            // /proc/<pid>/exe shows the binary with symlinks resolved.
            exe: std::fs::canonicalize(&self.binary).unwrap_or_else(|_| self.binary.clone()),
            config: self.config.clone(),
            socket: self.socket.clone(),
        }
    }

    /// Level 10: what this node must have. 5 for something missing, 4 for a permission.
    fn check_installed(&self) -> OcfResult<()> {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::metadata(&self.binary) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {}
            Ok(_) => {
                return Err(OcfError::installed(format!(
                    "parameter 'binary': {} is not an executable file",
                    self.binary.display()
                )))
            }
            Err(e) => {
                return Err(OcfError::installed(format!(
                    "parameter 'binary': {}: {e}",
                    self.binary.display()
                )))
            }
        }
        if std::fs::metadata(&self.config).is_ok_and(|m| m.is_dir()) {
            return Err(OcfError::installed(format!(
                "parameter 'config': {} is a directory, not a file",
                self.config.display()
            )));
        }
        match std::fs::File::open(&self.config) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::PermissionDenied => Err(OcfError::perm(format!(
                "parameter 'config': {} is not readable: {e}",
                self.config.display()
            ))),
            Err(e) => Err(OcfError::installed(format!(
                "parameter 'config': {}: {e}",
                self.config.display()
            ))),
        }
    }

    /// `haproxy -c`: the first ALERT line is the reason. The file lives on this node: 5.
    fn check_config(&self, deadline: &Deadline) -> OcfResult<()> {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("-c")
            .arg("-f")
            .arg(&self.config)
            .args(&self.extra_args);
        let (status, output) = run_bounded(&mut cmd, deadline)
            .map_err(|e| OcfError::generic(format!("'{} -c' {e}", self.binary.display())))?;
        if status.success() {
            return Ok(());
        }
        Err(OcfError::installed(format!(
            "parameter 'config': {} fails the check: {}",
            self.config.display(),
            first_alert(&output)
        )))
    }

    fn record(&self, exe: &Path) -> String {
        format!(
            "exe={}\nconfig={}\nsocket={}\npidfile={}\n",
            exe.display(),
            self.config.display(),
            self.socket.display(),
            self.pidfile.display()
        )
    }
}

/// What the `started` record says about a running instance.
#[derive(Debug)]
struct Started {
    identity: Identity,
    pidfile: PathBuf,
}

impl Started {
    fn parse(text: &str) -> Option<Started> {
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
                .map(PathBuf::from)
        };
        Some(Started {
            identity: Identity {
                exe: field("exe")?,
                config: field("config")?,
                socket: field("socket")?,
            },
            pidfile: field("pidfile")?,
        })
    }

    fn read(state: &InstanceState) -> OcfResult<Option<Started>> {
        Ok(state.read(STARTED)?.as_deref().and_then(Started::parse))
    }

    /// The master's pid, when the pidfile names a live process that is ours.
    fn master(&self) -> Option<u32> {
        process::read_pidfile(&self.pidfile).filter(|pid| self.identity.matches(*pid))
    }

    /// Remove what a stopped instance leaves behind: pidfile, socket, and the record last.
    fn remove_files(&self, state: &InstanceState) -> OcfResult<()> {
        for f in [&self.pidfile, &self.identity.socket] {
            match std::fs::remove_file(f) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(OcfError::generic(format!(
                        "cannot remove {}: {e}",
                        f.display()
                    )))
                }
            }
        }
        state.remove(STARTED)
    }
}

/// The first `[ALERT]` line of HAProxy's output without its prefix, or the last line.
fn first_alert(output: &str) -> String {
    let strip = |l: &str| -> String {
        // "[ALERT]    (1234) : config : parsing [...] : unknown keyword"
        let l = l.trim();
        let rest = l.split_once(']').map(|(_, r)| r.trim_start()).unwrap_or(l);
        let rest = match rest.strip_prefix('(') {
            Some(r) => r.split_once(')').map(|(_, r)| r.trim_start()).unwrap_or(r),
            None => rest,
        };
        rest.strip_prefix(": ").unwrap_or(rest).trim().to_string()
    };
    output
        .lines()
        .find(|l| l.trim_start().starts_with("[ALERT]"))
        .or_else(|| output.lines().rev().find(|l| !l.trim().is_empty()))
        .map(strip)
        .unwrap_or_else(|| "no output".into())
}

/// Run `cmd` to completion within `deadline`, collecting stdout and stderr; killed at the deadline.
fn run_bounded(cmd: &mut Command, deadline: &Deadline) -> Result<(ExitStatus, String), String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run: {e}"))?;
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|mut r| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    })
    .collect();
    let status = wait_bounded(&mut child, deadline)?;
    let output = readers
        .into_iter()
        .filter_map(|t| t.join().ok())
        .collect::<Vec<_>>()
        .join("");
    Ok((status, output))
}

/// Wait for `child` until `deadline`; kill it then.
fn wait_bounded(
    child: &mut std::process::Child,
    deadline: &Deadline,
) -> Result<ExitStatus, String> {
    let mut delay =
        cloudha_common::Backoff::new(Duration::from_millis(1), Duration::from_millis(20));
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => {
                if !deadline.sleep(delay.next_delay()) {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err("did not finish within the action's timeout".into());
                }
            }
            Err(e) => return Err(format!("cannot wait: {e}")),
        }
    }
}

/// Wait until none of `identity`'s processes is left, or the deadline. True when none is.
fn wait_gone(identity: &Identity, deadline: &Deadline) -> bool {
    let mut delay =
        cloudha_common::Backoff::new(Duration::from_millis(5), Duration::from_millis(100));
    loop {
        if identity.all().is_empty() {
            return true;
        }
        if !deadline.sleep(delay.next_delay()) {
            return identity.all().is_empty();
        }
    }
}

/// Terminate every process of `identity`: SIGTERM, a short wait, then SIGKILL. True when none
/// is left by the deadline.
fn terminate(identity: &Identity, deadline: &Deadline) -> bool {
    let pids = identity.all();
    if pids.is_empty() {
        return true;
    }
    process::signal_all(&pids, Signal::SIGTERM);
    if wait_gone(identity, &deadline.sooner(Duration::from_secs(1))) {
        return true;
    }
    process::signal_all(&identity.all(), Signal::SIGKILL);
    wait_gone(identity, deadline)
}

/// `show proc`, parsed, checked to come from the master we started.
fn show_proc(started: &Started, master: u32, deadline: &Deadline) -> OcfResult<ProcList> {
    let answer =
        master::ask(&started.identity.socket, "show proc", deadline).map_err(OcfError::generic)?;
    let list = ProcList::parse(&answer);
    match &list.master {
        Some(m) if m.pid == master => Ok(list),
        _ => Err(OcfError::generic(format!(
            "master CLI {} does not answer for master pid {master}: {}",
            started.identity.socket.display(),
            answer.lines().next().unwrap_or("empty answer")
        ))),
    }
}

/// Wait until the master lists a current worker that answers; returns its pid.
fn wait_worker(started: &Started, master: u32, deadline: &Deadline, not: &[u32]) -> OcfResult<u32> {
    let mut delay =
        cloudha_common::Backoff::new(Duration::from_millis(2), Duration::from_millis(20));
    loop {
        let list = show_proc(started, master, deadline)?;
        if let Some(w) = list.current_worker().filter(|w| !not.contains(&w.pid)) {
            let info = master::ask(
                &started.identity.socket,
                &format!("@!{} show info", w.pid),
                deadline,
            );
            if info.is_ok_and(|i| i.contains(&format!("Pid: {}", w.pid))) {
                return Ok(w.pid);
            }
        }
        if !deadline.sleep(delay.next_delay()) {
            return Err(OcfError::generic(format!(
                "no HAProxy worker answered through {} within the timeout",
                started.identity.socket.display()
            )));
        }
    }
}

/// GET `url`; Ok for 2xx and 3xx.
fn fetch(url: &HttpUrl, deadline: &Deadline) -> Result<u16, String> {
    use std::net::{TcpStream, ToSocketAddrs};
    let timeout = deadline.cap(Duration::from_secs(10));
    let addr = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", url.host))?
        .next()
        .ok_or_else(|| format!("{} has no address", url.host))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout.max(Duration::from_millis(1)))
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    s.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
        .and_then(|_| s.set_write_timeout(Some(timeout.max(Duration::from_millis(1)))))
        .map_err(|e| e.to_string())?;
    let path = if url.path.is_empty() { "/" } else { &url.path };
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {}\r\nUser-Agent: cloudha-haproxy-monitor\r\nConnection: close\r\n\r\n",
        url.host
    )
    .map_err(|e| format!("cannot send: {e}"))?;
    let mut head = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        match s.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(format!("no answer: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&head[..got]);
    let code = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| {
            format!(
                "not an HTTP answer: {:?}",
                line.lines().next().unwrap_or("")
            )
        })?;
    if (200..400).contains(&code) {
        Ok(code)
    } else {
        Err(format!("answered HTTP {code}"))
    }
}

struct Haproxy;

impl Haproxy {
    /// Depth 0: the record says started, and the pidfile names a live master that is ours.
    fn status(&self, state: &InstanceState) -> OcfResult<Option<(Started, u32)>> {
        let Some(started) = Started::read(state)? else {
            return Ok(None);
        };
        match started.master() {
            Some(pid) => Ok(Some((started, pid))),
            None => Err(OcfError::generic(format!(
                "HAProxy failed: its master ({}) is gone",
                match process::read_pidfile(&started.pidfile) {
                    Some(pid) => format!("pid {pid} from {}", started.pidfile.display()),
                    None => format!("no pid in {}", started.pidfile.display()),
                }
            ))),
        }
    }

    /// Stop every process of `identity`: drain, then terminate. Files are the caller's.
    fn stop_processes(
        &self,
        ctx: &Context,
        identity: &Identity,
        master: Option<u32>,
        drain: Duration,
    ) -> OcfResult<()> {
        let pids = identity.all();
        if pids.is_empty() {
            return Ok(());
        }
        let remaining = ctx.deadline.remaining();
        let reserve = TERMINATE_RESERVE.min(remaining / 4);
        let drain = drain.min(remaining.saturating_sub(reserve));
        if !drain.is_zero() {
            // Soft stop: listeners close, open connections finish. Through the master, which
            // passes it to its workers; old workers of earlier reloads get it directly.
            ctx.log.info(format_args!(
                "soft stop of {} process(es), draining for at most {} ms",
                pids.len(),
                drain.as_millis()
            ));
            if let Some(m) = master {
                process::signal_all(&[m], Signal::SIGUSR1);
            }
            let others: Vec<u32> = pids
                .iter()
                .copied()
                .filter(|p| Some(*p) != master)
                .collect();
            process::signal_all(&others, Signal::SIGUSR1);
            if wait_gone(identity, &ctx.deadline.sooner(drain)) {
                return Ok(());
            }
            ctx.log
                .warn("connections still open after the drain time: terminating");
        }
        if terminate(identity, &ctx.deadline) {
            Ok(())
        } else {
            Err(OcfError::generic(format!(
                "HAProxy processes {:?} are still alive after SIGKILL",
                identity.all()
            )))
        }
    }

    /// Launch the master (detached) and wait for a worker that answers.
    fn launch(
        &self,
        ctx: &Context,
        s: &Settings,
        state: &InstanceState,
        started: &Started,
    ) -> OcfResult<u32> {
        use std::os::unix::process::CommandExt;
        for f in [&s.pidfile, &s.socket] {
            let _ = std::fs::remove_file(f);
        }
        let errlog_path = state.path("start.log");
        let errlog = std::fs::File::create(&errlog_path).map_err(|e| {
            OcfError::generic(format!("cannot create {}: {e}", errlog_path.display()))
        })?;
        let mut cmd = Command::new(&s.binary);
        cmd.arg("-W")
            .arg("-D")
            .arg("-S")
            .arg(format!("{},mode,600", s.socket.display()))
            .arg("-p")
            .arg(&s.pidfile)
            .arg("-f")
            .arg(&s.config)
            .args(&s.extra_args)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(errlog);
        // Leave the agent's session and process group: Pacemaker SIGKILLs that group when an
        // action times out, and HAProxy must outlive the agent.
        // Descriptors the agent inherited (Pacemaker's, a caller's pipes) must not live on in
        // the daemon, or whoever waits for their end waits forever: close them at exec.
        // SAFETY: setsid and close_range are async-signal-safe system calls; nothing else runs
        // between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                // Best effort: kernels before 5.11 lack the flag; std's own pipe is CLOEXEC anyway.
                libc::close_range(
                    3,
                    libc::c_uint::MAX,
                    libc::CLOSE_RANGE_CLOEXEC as libc::c_int,
                );
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| {
            OcfError::installed(format!(
                "parameter 'binary': cannot run {}: {e}",
                s.binary.display()
            ))
        })?;
        let status = wait_bounded(&mut child, &ctx.deadline)
            .map_err(|e| OcfError::generic(format!("haproxy {e}")));
        let output = std::fs::read_to_string(&errlog_path).unwrap_or_default();
        let _ = std::fs::remove_file(&errlog_path);
        let status = status?;
        if !status.success() {
            let alert = first_alert(&output);
            return Err(OcfError::generic(format!(
                "HAProxy did not start ({status}): {alert}{}",
                holder::describe(&alert)
            )));
        }
        let mut delay =
            cloudha_common::Backoff::new(Duration::from_millis(1), Duration::from_millis(20));
        let master = loop {
            if let Some(pid) = started.master() {
                break pid;
            }
            if !ctx.deadline.sleep(delay.next_delay()) {
                return Err(OcfError::generic(format!(
                    "HAProxy started but no master of this instance is named in {}",
                    s.pidfile.display()
                )));
            }
        };
        wait_worker(started, master, &ctx.deadline, &[])?;
        Ok(master)
    }
}

impl Agent for Haproxy {
    fn spec(&self) -> &'static AgentSpec {
        &SPEC
    }

    fn validate(&self, ctx: &Context) -> OcfResult<Status> {
        let state = state(ctx);
        let s = Settings::resolve(ctx, &state)?;
        if ctx.check_level() >= 10 {
            s.check_installed()?;
            s.check_config(&ctx.deadline)?;
            return Ok(Status::ok(format!(
                "parameters valid; {} passes the check",
                s.config.display()
            )));
        }
        Ok(Status::ok("parameters valid"))
    }

    fn start(&self, ctx: &Context) -> OcfResult<Status> {
        let state = state(ctx);
        let s = Settings::resolve(ctx, &state)?;
        s.check_installed()?;
        let _lock = state.lock(&ctx.deadline)?;
        let identity = s.identity();
        if let Some(old) = Started::read(&state)? {
            if let Some(pid) = old.master() {
                if old.identity.config == identity.config && old.identity.socket == identity.socket
                {
                    return Ok(Status::ok(format!("already running (master pid {pid})")));
                }
            }
            // A failed instance (or one started with other settings): clear it away first.
            ctx.log
                .warn("clearing what a failed HAProxy instance left behind");
            if !terminate(&old.identity, &ctx.deadline) {
                return Err(OcfError::generic(format!(
                    "processes of the failed instance {:?} survive SIGKILL",
                    old.identity.all()
                )));
            }
            old.remove_files(&state)?;
        }
        s.check_config(&ctx.deadline)?;
        let started = Started {
            identity: identity.clone(),
            pidfile: s.pidfile.clone(),
        };
        // Written before the launch, so that a stop after a start killed midway finds the processes.
        state.write(STARTED, &s.record(&identity.exe))?;
        match self.launch(ctx, &s, &state, &started) {
            Ok(master) => {
                ctx.log
                    .info(format_args!("started HAProxy (master pid {master})"));
                Ok(Status::ok(format!("started (master pid {master})")))
            }
            Err(e) => {
                // Nothing left half-done: take down whatever did start.
                // Within the margin the deadline keeps before Pacemaker's timeout.
                let margin = ctx
                    .deadline
                    .timeout()
                    .saturating_sub(Deadline::budget(ctx.deadline.timeout()));
                let cleanup = Deadline::after(margin.min(Duration::from_secs(2)));
                terminate(&identity, &cleanup);
                let _ = started.remove_files(&state);
                Err(e)
            }
        }
    }

    fn stop(&self, ctx: &Context) -> OcfResult<Status> {
        let state = state(ctx);
        // Stop works with whatever parameters arrive; a bad drain_time drains for the default.
        let settings = Settings::resolve(ctx, &state);
        let nothing_here = Started::read(&state).is_ok_and(|s| s.is_none())
            && settings
                .as_ref()
                .map_or(true, |s| s.identity().all().is_empty());
        if nothing_here {
            // Not even the lock: a node without a writable HA_RSCTMP still stops cleanly.
            return Ok(Status::ok("not running"));
        }
        let _lock = state.lock(&ctx.deadline)?;
        let drain = settings
            .as_ref()
            .map(|s| s.drain)
            .unwrap_or(Duration::from_secs(30));
        match Started::read(&state)? {
            Some(started) => {
                let master = started.master();
                self.stop_processes(ctx, &started.identity, master, drain)?;
                started.remove_files(&state)?;
                Ok(Status::ok("stopped"))
            }
            None => {
                // Nothing recorded. Processes carrying this instance's socket and configuration
                // can only be ours (a start killed before it could record); stop them too.
                if let Ok(s) = &settings {
                    let identity = s.identity();
                    if !identity.all().is_empty() {
                        self.stop_processes(ctx, &identity, None, drain)?;
                        let _ = std::fs::remove_file(&s.pidfile);
                        let _ = std::fs::remove_file(&s.socket);
                    }
                }
                Ok(Status::ok("not running"))
            }
        }
    }

    fn monitor(&self, ctx: &Context) -> OcfResult<Status> {
        let state = state(ctx);
        let Some((started, master)) = self.status(&state)? else {
            return Ok(Status::not_running("not running"));
        };
        let level = ctx.check_level();
        if level < 10 {
            return Ok(Status::ok(format!("master pid {master} runs")));
        }
        let list = show_proc(&started, master, &ctx.deadline)?;
        let Some(worker) = list.current_worker() else {
            return Err(OcfError::generic(format!(
                "master pid {master} runs no current worker"
            )));
        };
        let worker = worker.pid;
        let mut degraded = Vec::new();
        if list.failed > 0 {
            degraded.push(format!(
                "the last reload failed ({} in a row); the worker of the previous configuration keeps serving",
                list.failed
            ));
        }
        if level >= 20 {
            let answer = master::ask(
                &started.identity.socket,
                &format!("@!{worker} show stat"),
                &ctx.deadline,
            )
            .map_err(OcfError::generic)?;
            let rows = master::parse_stat(&answer)
                .map_err(|e| OcfError::generic(format!("worker {worker}: {e}")))?;
            let closed: Vec<String> = rows
                .iter()
                .filter(|r| r.name == "FRONTEND" && r.status != "OPEN")
                .map(|r| format!("{} ({})", r.proxy, r.status))
                .collect();
            if !closed.is_empty() {
                return Err(OcfError::generic(format!(
                    "frontend(s) not open: {}",
                    closed.join(", ")
                )));
            }
            let down: Vec<&str> = rows
                .iter()
                .filter(|r| r.name == "BACKEND" && r.status == "DOWN")
                .map(|r| r.proxy.as_str())
                .collect();
            if !down.is_empty() {
                degraded.push(format!("backend(s) with no server up: {}", down.join(", ")));
            }
            if let Some(url) = Settings::resolve(ctx, &state)?.check_url {
                let shown = ctx.params.get("check_url").unwrap_or_default();
                fetch(&url, &ctx.deadline)
                    .map_err(|e| OcfError::generic(format!("check_url {shown}: {e}")))?;
            }
        }
        if degraded.is_empty() {
            Ok(Status::ok(format!(
                "master pid {master}, worker pid {worker}"
            )))
        } else {
            Ok(Status::degraded(degraded.join("; ")))
        }
    }

    fn reload(&self, ctx: &Context) -> OcfResult<Status> {
        let state = state(ctx);
        let s = Settings::resolve(ctx, &state)?;
        let _lock = state.lock(&ctx.deadline)?;
        let Some((started, master)) = self.status(&state)? else {
            return Err(OcfError::not_running(
                "HAProxy is not running: nothing to reload",
            ));
        };
        s.check_config(&ctx.deadline)?;
        let before = show_proc(&started, master, &ctx.deadline)?;
        let reloads = before.master.as_ref().map(|m| m.reloads).unwrap_or(0);
        let old: Vec<u32> = before.workers.iter().map(|w| w.pid).collect();
        // The master re-executes itself; the answer (none, in 2.6) and a reset connection are fine.
        let _ = master::ask_once(&started.identity.socket, "reload", &ctx.deadline);
        let mut delay =
            cloudha_common::Backoff::new(Duration::from_millis(2), Duration::from_millis(20));
        let after = loop {
            let list = show_proc(&started, master, &ctx.deadline)?;
            if list.master.as_ref().is_some_and(|m| m.reloads > reloads) {
                break list;
            }
            if !ctx.deadline.sleep(delay.next_delay()) {
                return Err(OcfError::generic(
                    "the master did not reload within the timeout",
                ));
            }
        };
        if after.failed > 0 {
            // HAProxy 2.6 paused the old worker's listeners for the new process and does not
            // resume them when that process fails (connections are refused): resume them.
            let serving: Vec<u32> = after
                .workers
                .iter()
                .map(|w| w.pid)
                .filter(|pid| started.identity.matches(*pid))
                .collect();
            process::signal_all(&serving, Signal::SIGTTIN);
            return Err(OcfError::generic(format!(
                "the master reports the reload of {} failed; the previous worker {serving:?} keeps serving",
                s.config.display()
            )));
        }
        let worker = wait_worker(&started, master, &ctx.deadline, &old)?;
        ctx.log
            .info(format_args!("reloaded: worker pid {worker} serves"));
        Ok(Status::ok(format!(
            "reloaded: new worker pid {worker} serves"
        )))
    }
}

fn main() {
    cloudha_common::agent::main(&Haproxy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_lines() {
        let out = "[NOTICE]   (11846) : haproxy version is 2.6.12\n\
[ALERT]    (11846) : Binding [/tmp/h.cfg:9] for frontend fe: cannot bind socket (Address already in use) for [127.0.0.1:18080]\n\
[ALERT]    (11846) : [haproxy.main()] Some protocols failed to start their listeners! Exiting.\n";
        assert_eq!(
            first_alert(out),
            "Binding [/tmp/h.cfg:9] for frontend fe: cannot bind socket (Address already in use) for [127.0.0.1:18080]"
        );
        assert_eq!(first_alert("just this\n\n"), "just this");
        assert_eq!(first_alert(""), "no output");
    }

    #[test]
    fn started_record_round_trips() {
        let s = Settings {
            binary: "/usr/sbin/haproxy".into(),
            config: "/etc/haproxy/haproxy.cfg".into(),
            extra_args: vec![],
            pidfile: "/run/x.pid".into(),
            socket: "/run/x.sock".into(),
            drain: Duration::ZERO,
            check_url: None,
        };
        let r = Started::parse(&s.record(Path::new("/usr/sbin/haproxy"))).unwrap();
        assert_eq!(r.identity.config, s.config);
        assert_eq!(r.identity.socket, s.socket);
        assert_eq!(r.pidfile, s.pidfile);
        assert!(Started::parse("exe=/x\n").is_none());
    }
}
