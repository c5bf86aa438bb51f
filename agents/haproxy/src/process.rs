//! Which processes are this instance's HAProxy, told from `/proc`: the executable is the
//! configured binary and argv carries this instance's master socket and configuration. A pid
//! alone proves nothing (pids are recycled; other HAProxies run beside ours). And how they end:
//! a drain (soft stop), then SIGTERM, then SIGKILL, each wait bounded by the action's deadline.

use cloudha_common::{Attempt, Deadline, Logger, OcfError, OcfResult, Retry};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often a stop looks whether the processes are gone.
const GONE: Retry = Retry::backoff(Duration::from_millis(5), Duration::from_millis(100));
/// How long SIGTERM is given before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(1);
/// Time kept from the stop budget for SIGTERM and SIGKILL after the drain.
const TERMINATE_RESERVE: Duration = Duration::from_secs(3);
/// A pid file is a line; anything longer is not one.
const MAX_PIDFILE: u64 = 64;

/// What makes a process ours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The binary, with symlinks resolved (what `/proc/<pid>/exe` shows).
    pub exe: PathBuf,
    pub config: PathBuf,
    pub socket: PathBuf,
}

impl Identity {
    /// True when `pid` is alive (not a zombie) and is HAProxy started for this instance.
    pub fn matches(&self, pid: u32) -> bool {
        let Ok(args) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        // A zombie has an empty cmdline: it is gone.
        if args.is_empty() || !self.argv_matches(&args) {
            return false;
        }
        if !self.same_files_seen_by(pid) {
            return false;
        }
        let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) else {
            return false;
        };
        // After a package upgrade the kernel shows the replaced file as "<path> (deleted)".
        let exe = exe.to_string_lossy();
        let want = self.exe.to_string_lossy();
        exe == want || exe.strip_suffix(" (deleted)") == Some(&*want)
    }

    /// Paths mean something only in a mount namespace: a HAProxy with the same argv in a
    /// container or another node sharing this kernel has its own socket and configuration and
    /// is not ours. The process must see, at our socket's and configuration's paths, the very
    /// files we see (`ip netns exec` makes a new mount namespace with the same files: ours).
    fn same_files_seen_by(&self, pid: u32) -> bool {
        use std::os::unix::fs::MetadataExt;
        for path in [&self.socket, &self.config] {
            let theirs = Path::new(&format!("/proc/{pid}/root"))
                .join(path.strip_prefix("/").unwrap_or(path));
            match (std::fs::metadata(path), std::fs::metadata(&theirs)) {
                (Ok(a), Ok(b)) => return a.dev() == b.dev() && a.ino() == b.ino(),
                (Err(_), Err(_)) => continue,
                _ => return false,
            }
        }
        // Neither file exists in either view (both removed): argv and exe decide.
        true
    }

    /// argv (NUL-separated) has `-S <socket>[,opts]` and `-f <config>`.
    fn argv_matches(&self, args: &[u8]) -> bool {
        let words: Vec<&[u8]> = args.split(|b| *b == 0).collect();
        let socket = self.socket.as_os_str().as_encoded_bytes();
        let config = self.config.as_os_str().as_encoded_bytes();
        let mut has_socket = false;
        let mut has_config = false;
        for pair in words.windows(2) {
            match pair[0] {
                b"-S" => {
                    let v = pair[1];
                    has_socket |= v == socket
                        || (v.starts_with(socket) && v.get(socket.len()) == Some(&b','));
                }
                b"-f" => has_config |= pair[1] == config,
                _ => {}
            }
        }
        has_socket && has_config
    }

    /// Every live process of this instance: the master, its workers, old workers still draining.
    pub fn all(&self) -> Vec<u32> {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| self.matches(*pid))
            .collect()
    }
}

/// The pid in a pid file, if it holds one. Opened without blocking and read only when it is a
/// regular file: a FIFO at its path cannot hang a monitor.
pub fn read_pidfile(path: &Path) -> Option<u32> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    file.take(MAX_PIDFILE).read_to_string(&mut text).ok()?;
    text.lines().next()?.trim().parse().ok().filter(|p| *p > 0)
}

/// Send `signal` to each pid; a pid already gone is fine.
pub fn signal_all(pids: &[u32], signal: Signal) {
    for pid in pids {
        if let Ok(p) = i32::try_from(*pid) {
            let _ = kill(Pid::from_raw(p), signal);
        }
    }
}

/// Wait until none of `identity`'s processes is left, or the deadline. True when none is.
pub fn wait_gone(identity: &Identity, deadline: &Deadline) -> bool {
    let gone = deadline.retry(&GONE, |_| {
        if identity.all().is_empty() {
            Attempt::Done(())
        } else {
            Attempt::Again(())
        }
    });
    gone.is_ok() || identity.all().is_empty()
}

/// Terminate every process of `identity`: SIGTERM, a short wait, then SIGKILL. True when none
/// is left by the deadline.
pub fn terminate(identity: &Identity, deadline: &Deadline) -> bool {
    let pids = identity.all();
    if pids.is_empty() {
        return true;
    }
    signal_all(&pids, Signal::SIGTERM);
    if wait_gone(identity, &deadline.sooner(TERM_GRACE)) {
        return true;
    }
    signal_all(&identity.all(), Signal::SIGKILL);
    wait_gone(identity, deadline)
}

/// What a stop keeps, of `remaining`, to terminate and kill after the drain.
pub fn terminate_reserve(remaining: Duration) -> Duration {
    TERMINATE_RESERVE.min(remaining / 4)
}

/// Stop every process of `identity`: drain for at most `drain` (cut to what the deadline leaves
/// after a reserve to terminate), then terminate. `master`, when known, passes the soft stop to
/// its workers; old workers of earlier reloads get it directly. Files are the caller's.
pub fn drain_and_terminate(
    identity: &Identity,
    master: Option<u32>,
    drain: Duration,
    deadline: &Deadline,
    log: &Logger,
) -> OcfResult<()> {
    let pids = identity.all();
    if pids.is_empty() {
        return Ok(());
    }
    let remaining = deadline.remaining();
    let drain = drain.min(remaining.saturating_sub(terminate_reserve(remaining)));
    if !drain.is_zero() {
        // Soft stop: listeners close, open connections finish.
        log.info(format_args!(
            "soft stop of {} process(es), draining for at most {} ms",
            pids.len(),
            drain.as_millis()
        ));
        if let Some(m) = master {
            signal_all(&[m], Signal::SIGUSR1);
        }
        let others: Vec<u32> = pids
            .iter()
            .copied()
            .filter(|p| Some(*p) != master)
            .collect();
        signal_all(&others, Signal::SIGUSR1);
        if wait_gone(identity, &deadline.sooner(drain)) {
            return Ok(());
        }
        log.warn("connections still open after the drain time: terminating");
    }
    if terminate(identity, deadline) {
        Ok(())
    } else {
        Err(OcfError::generic(format!(
            "HAProxy processes {:?} are still alive after SIGKILL",
            identity.all()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Identity {
        Identity {
            exe: "/usr/sbin/haproxy".into(),
            config: "/etc/haproxy/haproxy.cfg".into(),
            socket: "/run/ra/cloudha/haproxy-lb.sock".into(),
        }
    }

    #[test]
    fn argv_needs_our_socket_and_config() {
        let ours = b"haproxy\0-sf\0pid12\0-x\0sockpair@4\0-W\0-D\0-S\0/run/ra/cloudha/haproxy-lb.sock,mode,600\0-p\0/p\0-f\0/etc/haproxy/haproxy.cfg\0";
        assert!(id().argv_matches(ours));
        let distro = b"/usr/sbin/haproxy\0-Ws\0-f\0/etc/haproxy/haproxy.cfg\0-p\0/run/haproxy.pid\0-S\0/run/haproxy-master.sock\0";
        assert!(!id().argv_matches(distro));
        let other_instance = b"haproxy\0-W\0-S\0/run/ra/cloudha/haproxy-lb.sock2,mode,600\0-f\0/etc/haproxy/haproxy.cfg\0";
        assert!(!id().argv_matches(other_instance));
        let other_config =
            b"haproxy\0-W\0-S\0/run/ra/cloudha/haproxy-lb.sock\0-f\0/etc/other.cfg\0";
        assert!(!id().argv_matches(other_config));
    }

    #[test]
    fn this_process_sees_our_files_a_gone_process_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("h.cfg");
        std::fs::write(&config, "x").unwrap();
        let id = Identity {
            exe: "/usr/sbin/haproxy".into(),
            config: config.clone(),
            socket: dir.path().join("absent.sock"),
        };
        assert!(id.same_files_seen_by(std::process::id()));
        assert!(!id.same_files_seen_by(u32::MAX));
    }

    #[test]
    fn this_test_is_not_haproxy() {
        assert!(!id().matches(std::process::id()));
        assert!(!id().matches(u32::MAX));
    }

    #[test]
    fn pidfile() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pid");
        assert_eq!(read_pidfile(&p), None);
        std::fs::write(&p, "1234\n").unwrap();
        assert_eq!(read_pidfile(&p), Some(1234));
        std::fs::write(&p, "garbage\n").unwrap();
        assert_eq!(read_pidfile(&p), None);
        // A FIFO is not waited on, a directory is not read.
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let t = std::time::Instant::now();
        assert_eq!(read_pidfile(&fifo), None);
        assert!(t.elapsed() < Duration::from_secs(1));
        assert_eq!(read_pidfile(dir.path()), None);
    }

    #[test]
    fn nothing_of_a_stranger_is_waited_for_or_signalled() {
        let d = Deadline::after(Duration::from_millis(200));
        assert!(wait_gone(&id(), &d));
        assert!(terminate(&id(), &d));
        let log = Logger::stderr("t");
        assert_eq!(
            drain_and_terminate(&id(), None, Duration::from_secs(5), &d, &log),
            Ok(())
        );
    }
}
