//! Per-instance state under `HA_RSCTMP`: small record files and a lock, so that clones and several
//! resources of one type on a node never collide. Records carry the boot id: a record written
//! before a reboot is not believed (probes stay truthful even where `HA_RSCTMP` is not a tmpfs).

use crate::deadline::Deadline;
use crate::error::{OcfError, OcfResult};
use crate::log::Logger;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

fn boot_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    })
}

/// Keep file names tame: instance names like `anchor:0` are fine, slashes are not.
fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[derive(Clone, Debug)]
pub struct InstanceState {
    dir: PathBuf,
    prefix: String,
}

/// Held while the lock is; released on drop.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> OcfError {
    let reason = format!("{what} {}: {e}", path.display());
    if e.kind() == ErrorKind::PermissionDenied {
        OcfError::perm(reason)
    } else {
        OcfError::generic(reason)
    }
}

impl InstanceState {
    /// State of `agent`'s instance `instance`, in `<rsctmp>/cloudha/`.
    pub fn new(rsctmp: &Path, agent: &str, instance: &str) -> InstanceState {
        InstanceState {
            dir: rsctmp.join("cloudha"),
            prefix: format!("{}-{}", file_safe(agent), file_safe(instance)),
        }
    }

    /// The path of this instance's file with `suffix` (`.lock`, `.added`, `.sock`…).
    pub fn path(&self, suffix: &str) -> PathBuf {
        self.dir
            .join(format!("{}.{}", self.prefix, file_safe(suffix)))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn ensure_dir(&self) -> OcfResult<()> {
        use std::os::unix::fs::DirBuilderExt;
        match std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(&self.dir)
        {
            Ok(()) => Ok(()),
            Err(e) => Err(io_error("cannot create state directory", &self.dir, e)),
        }
    }

    /// Take this instance's lock, waiting at most until `deadline`. Serialises actions that a
    /// person and Pacemaker might run at once.
    pub fn lock(&self, deadline: &Deadline) -> OcfResult<StateLock> {
        self.ensure_dir()?;
        let path = self.path("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io_error("cannot open lock", &path, e))?;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(StateLock { _file: file }),
                Err(TryLockError::WouldBlock) => {
                    if !deadline.sleep(Duration::from_millis(20)) {
                        return Err(OcfError::generic(format!(
                            "another action of this resource holds {} past the timeout",
                            path.display()
                        )));
                    }
                }
                Err(TryLockError::Error(e)) => return Err(io_error("cannot lock", &path, e)),
            }
        }
    }

    /// A record written in this boot, or None (absent, or left from before a reboot).
    pub fn read(&self, suffix: &str) -> OcfResult<Option<String>> {
        let path = self.path(suffix);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
                match first.strip_prefix("boot_id=") {
                    Some(id) if id == boot_id() => Ok(Some(rest.to_string())),
                    _ => Ok(None),
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("cannot read", &path, e)),
        }
    }

    /// A record of this boot, parsed by `parse`. One that does not parse (damaged, or written by
    /// another version) is ignored with a warning: the instance then counts as not started here.
    pub fn read_parsed<T>(
        &self,
        suffix: &str,
        log: &Logger,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> OcfResult<Option<T>> {
        let Some(text) = self.read(suffix)? else {
            return Ok(None);
        };
        let parsed = parse(&text);
        if parsed.is_none() {
            log.warn(format_args!(
                "ignoring an unreadable state record {}",
                self.path(suffix).display()
            ));
        }
        Ok(parsed)
    }

    /// Write a record atomically (a reader sees the old one or the new one, never half).
    pub fn write(&self, suffix: &str, contents: &str) -> OcfResult<()> {
        self.ensure_dir()?;
        let path = self.path(suffix);
        let tmp = self.path(&format!("{suffix}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            write!(f, "boot_id={}\n{contents}", boot_id())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| io_error("cannot write", &path, e))
    }

    /// Remove a record; absent is fine.
    pub fn remove(&self, suffix: &str) -> OcfResult<()> {
        let path = self.path(suffix);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("cannot remove", &path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_per_agent_and_instance() {
        let s = InstanceState::new(Path::new("/run/ra"), "anchorip", "anchor:0");
        assert_eq!(
            s.path("added"),
            PathBuf::from("/run/ra/cloudha/anchorip-anchor:0.added")
        );
        let evil = InstanceState::new(Path::new("/run/ra"), "a", "../../etc/x");
        assert_eq!(
            evil.path("lock"),
            PathBuf::from("/run/ra/cloudha/a-.._.._etc_x.lock")
        );
    }

    #[test]
    fn records_round_trip_and_vanish() {
        let dir = tempfile::tempdir().unwrap();
        let s = InstanceState::new(dir.path(), "anchorip", "one");
        assert_eq!(s.read("added").unwrap(), None);
        s.write("added", "10.0.0.1/32 lo\n").unwrap();
        assert_eq!(
            s.read("added").unwrap().as_deref(),
            Some("10.0.0.1/32 lo\n")
        );
        let other = InstanceState::new(dir.path(), "anchorip", "two");
        assert_eq!(other.read("added").unwrap(), None);
        s.remove("added").unwrap();
        s.remove("added").unwrap();
        assert_eq!(s.read("added").unwrap(), None);
    }

    #[test]
    fn an_unparsable_record_is_ignored_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let log_file = dir.path().join("ha.log");
        let log = Logger::new(
            &crate::env::LogSettings {
                logfile: Some(log_file.clone()),
                ..Default::default()
            },
            "t",
            "i",
            false,
        );
        let s = InstanceState::new(dir.path(), "anchorip", "one");
        let number = |t: &str| t.trim().parse::<u32>().ok();
        assert_eq!(s.read_parsed("rec", &log, number).unwrap(), None);
        s.write("rec", "42\n").unwrap();
        assert_eq!(s.read_parsed("rec", &log, number).unwrap(), Some(42));
        assert!(!log_file.exists());
        s.write("rec", "garbage").unwrap();
        assert_eq!(s.read_parsed("rec", &log, number).unwrap(), None);
        let logged = std::fs::read_to_string(&log_file).unwrap();
        assert!(
            logged.contains("WARNING: ignoring an unreadable state record"),
            "{logged}"
        );
    }

    #[test]
    fn a_record_from_another_boot_is_not_believed() {
        let dir = tempfile::tempdir().unwrap();
        let s = InstanceState::new(dir.path(), "anchorip", "one");
        s.write("added", "x").unwrap();
        std::fs::write(s.path("added"), "boot_id=00000000-old\nx").unwrap();
        assert_eq!(s.read("added").unwrap(), None);
    }

    #[test]
    fn lock_is_exclusive_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let s = InstanceState::new(dir.path(), "anchorip", "one");
        let held = s.lock(&Deadline::after(Duration::from_secs(1))).unwrap();
        let e = s
            .lock(&Deadline::after(Duration::from_millis(60)))
            .unwrap_err();
        assert_eq!(e.code, crate::OcfCode::ErrGeneric);
        drop(held);
        assert!(s.lock(&Deadline::after(Duration::from_millis(60))).is_ok());
    }
}
