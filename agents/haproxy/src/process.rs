//! Which processes are this instance's HAProxy, told from `/proc`: the executable is the
//! configured binary and argv carries this instance's master socket and configuration. A pid
//! alone proves nothing (pids are recycled; other HAProxies run beside ours).

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};

/// What makes a process ours.
#[derive(Clone, Debug)]
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

/// The pid in a pidfile, if it holds one.
pub fn read_pidfile(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 0)
}

/// Send `signal` to each pid; a pid already gone is fine.
pub fn signal_all(pids: &[u32], signal: Signal) {
    for pid in pids {
        if let Ok(p) = i32::try_from(*pid) {
            let _ = kill(Pid::from_raw(p), signal);
        }
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
    }
}
