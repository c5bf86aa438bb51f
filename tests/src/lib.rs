//! Helpers shared by every cloudha test: the built binaries, agents run the way Pacemaker runs
//! them, network namespaces made (and removed) by the test, meta-data checks, and ocf-tester.
//! Fakes of cloud APIs live beside these (see `fakecloud` once present). Tests here need root
//! and the packages `.ci/run` installs: they fail loudly, never skip, when those are missing.

pub mod bgp;
pub mod clouds;
pub mod cluster;
pub mod fakecloud;
pub mod http;
pub mod keepalived;
pub mod traffic;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The workspace root (where Cargo.toml, Makefile and metadata-xml/ are).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The directory of the binaries built with this test (target/debug or target/release).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test>-<hash>
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

/// A built agent binary. Panics with the command to build it when it is missing.
pub fn agent_bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build -p {name}` (or `cargo test --workspace`)",
        p.display()
    );
    p
}

/// Fail (never skip) when not root: these tests create namespaces and addresses.
pub fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test needs root (it creates network namespaces): run it as root, as .ci/run does"
    );
}

/// Fail (never skip) when a program the test needs is not installed.
pub fn require_program(path: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: install the packages that .ci/run installs (scripts/deps.sh)"
    );
}

/// Run a command, asserting success; returns stdout.
pub fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An exclusive lock across test processes, for tests that touch something global (the real
/// /usr/lib/ocf tree, a cluster). Held until dropped.
pub struct GlobalLock(#[allow(dead_code)] std::fs::File);

pub fn global_lock(name: &str) -> GlobalLock {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(format!("/tmp/cloudha-test-{name}.lock"))
        .expect("open lock file");
    f.lock().expect("lock");
    GlobalLock(f)
}

static NETNS_SEQ: AtomicU32 = AtomicU32::new(0);

/// A network namespace made by this test, deleted on drop (with everything in it).
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A fresh namespace with `lo` up. `tag` says which test made it.
    pub fn new(tag: &str) -> Netns {
        require_root();
        let name = format!(
            "cloudha-{tag}-{}-{}",
            std::process::id(),
            NETNS_SEQ.fetch_add(1, Ordering::SeqCst)
        );
        sh(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n <ns> <args>`, asserting success; returns stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        sh(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// An ethernet-like interface `name` in this namespace (a veth pair; this kernel has no
    /// `dummy`), up, with its peer `peer` left in the same namespace and up as well.
    pub fn add_veth(&self, name: &str, peer: &str) {
        self.ip(&["link", "add", name, "type", "veth", "peer", "name", peer]);
        self.ip(&["link", "set", name, "up"]);
        self.ip(&["link", "set", peer, "up"]);
    }

    /// The addresses on `dev` as `addr/prefix` strings (IPv4 and IPv6, link-local excluded).
    pub fn addresses(&self, dev: &str) -> Vec<String> {
        let out = self.ip(&["-o", "addr", "show", "dev", dev]);
        out.lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                while let Some(w) = it.next() {
                    if w == "inet" || w == "inet6" {
                        return it.next().map(str::to_string);
                    }
                }
                None
            })
            .filter(|a| !a.starts_with("fe80:"))
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// Every pid in a network namespace, except this process.
pub fn netns_pids(netns: &str) -> Vec<i32> {
    let out = Command::new("ip")
        .args(["netns", "pids", netns])
        .stderr(Stdio::null())
        .output();
    let me = std::process::id() as i32;
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .filter(|&p| p != me)
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// SIGKILL everything in a namespace until nothing is left (bounded).
pub fn kill_netns_processes(netns: &str) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let pids = netns_pids(netns);
        if pids.is_empty() || std::time::Instant::now() >= end {
            return;
        }
        for p in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Namespaces `cloudha-<tag>-<pid>-…` whose test process died without cleaning up: their
/// processes killed, the namespaces deleted.
pub fn remove_stale_namespaces(tag: &str) {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    let prefix = format!("cloudha-{tag}-");
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        kill_netns_processes(&name);
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
    }
}

/// chmod, asserting success.
pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// When a test fails (or `CLOUDHA_KEEP` is set), keep `dir` for a person to read, saying where;
/// `dir` is replaced by an empty directory that goes as usual.
pub fn keep_on_failure(dir: &mut tempfile::TempDir, what: &str) {
    if std::thread::panicking() || std::env::var_os("CLOUDHA_KEEP").is_some() {
        eprintln!("{what} kept in {}", dir.path().display());
        let _ = std::mem::replace(
            dir,
            tempfile::Builder::new()
                .prefix("cloudha-kept-empty-")
                .tempdir_in("/tmp")
                .expect("tempdir"),
        )
        .keep();
    }
}

/// The result of one agent action.
#[derive(Debug)]
pub struct AgentRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Wall time of the run.
    pub took: std::time::Duration,
}

impl AgentRun {
    /// The last `ocf-exit-reason:` line, as Pacemaker would store it.
    pub fn exit_reason(&self) -> Option<&str> {
        self.stderr
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("ocf-exit-reason:"))
    }
    /// Number of `ocf-exit-reason:` lines (an error prints exactly one).
    pub fn exit_reason_count(&self) -> usize {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("ocf-exit-reason:"))
            .count()
    }

    /// Assert the OCF contract of one answer: the exit code, and exactly one
    /// `ocf-exit-reason:` line for a failure, none for success, "not running" or "degraded".
    /// Everything the agent said is shown when it does not hold.
    #[track_caller]
    pub fn expect(&self, code: i32, what: &str) -> &AgentRun {
        use predicates::prelude::*;
        let shown = || {
            format!(
                "{what}: expected {code}, got {} after {:?}\nstdout: {}\nstderr: {}",
                self.code, self.took, self.stdout, self.stderr
            )
        };
        assert!(predicate::eq(code).eval(&self.code), "{}", shown());
        let reasons = if matches!(code, 0 | 7 | 8 | 190 | 191) {
            0
        } else {
            1
        };
        assert_eq!(
            self.exit_reason_count(),
            reasons,
            "{what}: {reasons} ocf-exit-reason line(s) expected\n{}",
            shown()
        );
        self
    }

    /// Assert that the exit reason satisfies `pred` (e.g. `predicates::str::contains("...")`).
    #[track_caller]
    pub fn reason<P: predicates::Predicate<str>>(&self, pred: P) -> &AgentRun {
        let reason = self.exit_reason().unwrap_or("");
        assert!(
            pred.eval(reason),
            "exit reason {reason:?} does not satisfy {pred}\nstderr: {}",
            self.stderr
        );
        self
    }
}

impl AgentRun {
    fn from_output(o: Output, took: std::time::Duration) -> AgentRun {
        AgentRun {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            took,
        }
    }
}

/// Run `bin action` as Pacemaker does: argv is `[path, action]`, a clean environment with only
/// PATH, the OCF variables and `vars` (parameters as `OCF_RESKEY_x`), optionally in `netns`.
pub fn run_agent(
    bin: &Path,
    action: &str,
    vars: &[(&str, &str)],
    netns: Option<&Netns>,
) -> AgentRun {
    run_agent_args(bin, &[action], vars, netns)
}

/// As [`run_agent`], with any arguments (flags, as a person would give them).
pub fn run_agent_args(
    bin: &Path,
    args: &[&str],
    vars: &[(&str, &str)],
    netns: Option<&Netns>,
) -> AgentRun {
    let mut c = match netns {
        Some(ns) => ns.command(bin),
        None => Command::new(bin),
    };
    as_pacemaker(&mut c).args(args).envs(vars.iter().copied());
    run_timed(&mut c)
}

/// Make `cmd` run as Pacemaker runs an agent: a clean environment holding only PATH and the
/// OCF variables, no standard input. Add the action and the instance's variables after.
pub fn as_pacemaker(cmd: &mut Command) -> &mut Command {
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("OCF_ROOT", "/usr/lib/ocf")
        .env("OCF_RA_VERSION_MAJOR", "1")
        .env("OCF_RA_VERSION_MINOR", "1")
        .stdin(Stdio::null())
}

/// Run a prepared command to its end: its code, what it said, how long it took.
pub fn run_timed(cmd: &mut Command) -> AgentRun {
    let t = std::time::Instant::now();
    let out = assert_cmd::Command::from_std(std::mem::replace(cmd, Command::new("true")))
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    AgentRun::from_output(out, t.elapsed())
}

/// The checked-in meta-data of `agent`.
pub fn checked_in_metadata(agent: &str) -> PathBuf {
    workspace_root()
        .join("metadata-xml")
        .join(format!("{agent}.xml"))
}

/// Pipe `xml` into a validator; returns (success, output).
fn xmllint(args: &[&str], dir: &str, xml: &str) -> (bool, String) {
    use std::io::Write;
    require_program("/usr/bin/xmllint");
    let mut child = Command::new("xmllint")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("xmllint");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(xml.as_bytes())
        .expect("write to xmllint");
    let out = child.wait_with_output().expect("xmllint");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Validate meta-data as ocf-tester does (DTD) and as pcs does (OCF 1.1 RelaxNG).
pub fn validate_metadata(xml: &str) -> Result<(), String> {
    require_program("/usr/share/resource-agents/ra-api-1.dtd");
    require_program("/usr/share/pcs/data/ocf-1.1.rng");
    let (ok, out) = xmllint(
        &["--noout", "--valid", "-"],
        "/usr/share/resource-agents",
        xml,
    );
    if !ok {
        return Err(format!("ra-api-1.dtd rejects it:\n{out}"));
    }
    let (ok, out) = xmllint(
        &[
            "--noout",
            "--relaxng",
            "/usr/share/pcs/data/ocf-1.1.rng",
            "-",
        ],
        "/",
        xml,
    );
    if !ok {
        return Err(format!("ocf-1.1.rng rejects it:\n{out}"));
    }
    Ok(())
}

/// The whole meta-data check of one agent: `meta-data` exits 0 with no parameters, prints
/// exactly the checked-in file, and both validators accept it. `CLOUDHA_BLESS=1` rewrites the
/// checked-in file from the binary (then review the diff).
pub fn check_metadata(agent: &str) {
    let run = run_agent(&agent_bin(agent), "meta-data", &[], None);
    assert_eq!(run.code, 0, "meta-data failed: {}", run.stderr);
    let file = checked_in_metadata(agent);
    if std::env::var_os("CLOUDHA_BLESS").is_some() {
        std::fs::write(&file, &run.stdout).expect("write metadata-xml");
    }
    let expected = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e} (CLOUDHA_BLESS=1 writes it)", file.display()));
    assert!(
        run.stdout == expected,
        "{agent} meta-data differs from {}; if the change is intended, rerun with CLOUDHA_BLESS=1 and commit the file",
        file.display()
    );
    if let Err(e) = validate_metadata(&run.stdout) {
        panic!("{agent} meta-data: {e}");
    }
}

/// An installed copy of the agents, made by the Makefile's `install-files` target from the
/// binaries of this build, in a temporary root whose every directory is world-executable
/// (ocf-tester runs meta-data as `nobody`). Removed on drop.
pub struct Installed {
    root: tempfile::TempDir,
}

impl Installed {
    pub fn new() -> Installed {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::Builder::new()
            .prefix("cloudha-install-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        sh(Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(workspace_root())
            .arg("install-files")
            .arg(format!("DESTDIR={}", root.path().display()))
            .arg(format!("BUILT={}", bin_dir().display())));
        Installed { root }
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// `<root>/usr/lib/ocf/resource.d/<provider>/<agent>`.
    pub fn agent(&self, provider: &str, agent: &str) -> PathBuf {
        self.root
            .path()
            .join("usr/lib/ocf/resource.d")
            .join(provider)
            .join(agent)
    }
}

impl Default for Installed {
    fn default() -> Self {
        Self::new()
    }
}

/// One agent of an [`Installed`] tree put where Pacemaker looks for it: Pacemaker 2.1's agent
/// path is compiled in (no variable moves it), so `crm_resource` finds agents only under the real
/// /usr/lib/ocf. Holds `global_lock("ocf-root")`; whatever was there is put back on drop.
pub struct SystemInstall {
    path: PathBuf,
    saved: Option<Vec<u8>>,
    made_dir: bool,
    _lock: GlobalLock,
}

impl Installed {
    /// Put `cloudha/<agent>` of this tree at /usr/lib/ocf/resource.d/cloudha/<agent>.
    pub fn to_system(&self, agent: &str) -> SystemInstall {
        let lock = global_lock("ocf-root");
        let path = Path::new("/usr/lib/ocf/resource.d/cloudha").join(agent);
        let made_dir = !path.parent().expect("parent").exists();
        let saved = std::fs::read(&path).ok();
        sh(Command::new("install")
            .args(["-D", "-m", "0755"])
            .arg(self.agent("cloudha", agent))
            .arg(&path));
        SystemInstall {
            path,
            saved,
            made_dir,
            _lock: lock,
        }
    }
}

impl Drop for SystemInstall {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        match &self.saved {
            Some(bytes) => {
                let _ = std::fs::write(&self.path, bytes);
                let _ =
                    std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o755));
            }
            None => {
                let _ = std::fs::remove_file(&self.path);
            }
        }
        if self.made_dir {
            if let Some(dir) = self.path.parent() {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}

/// Run a command to its end: (exit code, -1 when a signal ended it; stdout then stderr).
pub fn output(cmd: &mut Command) -> (i32, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `crm_resource --validate --class ocf --provider cloudha --agent <agent> --option k=v…`, as a
/// person checks a configuration without a cluster (the agent must be where Pacemaker looks:
/// [`Installed::to_system`]). Returns the agent's code and what was printed.
pub fn crm_validate<S: AsRef<str>>(agent: &str, options: &[S]) -> (i32, String) {
    require_program("/usr/sbin/crm_resource");
    let mut c = Command::new("crm_resource");
    c.args([
        "--validate",
        "--class",
        "ocf",
        "--provider",
        "cloudha",
        "--agent",
        agent,
    ]);
    for o in options {
        c.args(["--option", o.as_ref()]);
    }
    output(&mut c)
}

/// Run `ocf-tester -n <name> -o k=v… <agent>`; returns (passed, output). Set `netns` to run the
/// agent's actions inside a namespace.
pub fn ocf_tester(
    agent: &Path,
    name: &str,
    params: &[(&str, &str)],
    netns: Option<&Netns>,
) -> (bool, String) {
    require_program("/usr/sbin/ocf-tester");
    let mut c = match netns {
        Some(ns) => ns.command("/usr/sbin/ocf-tester"),
        None => Command::new("/usr/sbin/ocf-tester"),
    };
    c.arg("-n").arg(name);
    for (k, v) in params {
        c.arg("-o").arg(format!("{k}={v}"));
    }
    c.arg(agent);
    let out = c.output().expect("ocf-tester");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success() && text.contains("passed all tests"),
        text,
    )
}
