//! Per-instance state under `HA_RSCTMP`: one start record per instance and a lock, so that clones
//! and several resources of one type on a node never collide. Records carry the boot id: a record
//! written before a reboot is not believed (probes stay truthful where `HA_RSCTMP` is not a tmpfs).
//!
//! The trust model (also in docs/architecture.md): the state directory `<HA_RSCTMP>/cloudha` must
//! be a real directory owned by this user and writable by no one else, or it is refused (4).
//! Every file in it is opened relative to that directory, never through a symbolic link, never
//! blocking (a FIFO planted there cannot hang an action), and only regular files are read.
//! A missing or unusable `HA_RSCTMP` means nothing was started here: probes say 7, stops 0.

use crate::deadline::{Attempt, Deadline, Retry};
use crate::error::{OcfError, OcfResult};
use crate::log::Logger;
use nix::errno::Errno;
use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::{fstat, Mode, SFlag};
use nix::unistd::{fsync, unlinkat, UnlinkatFlags};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// The longest record read; a larger file is not a record of ours.
const MAX_RECORD: u64 = 64 * 1024;
/// File names stay well under NAME_MAX (255) whatever the instance is called.
const MAX_PREFIX: usize = 160;
/// How often a held lock is tried again.
const LOCK_RETRY: Retry = Retry::every(Duration::from_millis(20));

fn boot_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    })
}

/// FNV-1a, 64 bits: a stable name for a long instance id (std's hasher may change between
/// Rust releases, and a record must be found again after an upgrade).
fn fnv64(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A file-name part that names exactly one input: safe characters as they are, every other
/// byte as `%XX` (so `a/b` and `a_b` stay apart), and a long name cut with a hash of the whole.
fn file_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'@') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.len() > MAX_PREFIX {
        let hash = fnv64(&out);
        out.truncate(MAX_PREFIX - 17);
        out.push_str(&format!("~{hash:016x}"));
    }
    out
}

/// A start record: what an agent keeps between its start and its stop, in one file.
pub trait Record: Sized {
    /// The file's suffix: `<HA_RSCTMP>/cloudha/<agent>-<instance>.<SUFFIX>`.
    const SUFFIX: &'static str;
    fn to_text(&self) -> String;
    /// None for anything that is not a whole record (damaged, or another version's).
    fn parse(text: &str) -> Option<Self>;
}

#[derive(Clone, Debug)]
pub struct InstanceState {
    dir: PathBuf,
    prefix: String,
}

/// Held while the lock is; released on drop. Writing a record needs one.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

fn io_error(what: &str, path: &Path, e: impl Into<std::io::Error>) -> OcfError {
    let e: std::io::Error = e.into();
    let reason = format!("{what} {}: {e}", path.display());
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        OcfError::perm(reason)
    } else {
        OcfError::generic(reason)
    }
}

/// Errors that mean "there is no state here": nothing was started through this path.
fn absent(e: Errno) -> bool {
    matches!(e, Errno::ENOENT | Errno::ENOTDIR | Errno::ENAMETOOLONG)
}

impl InstanceState {
    /// State of `agent`'s instance `instance`, in `<rsctmp>/cloudha/`.
    pub fn new(rsctmp: &Path, agent: &str, instance: &str) -> InstanceState {
        InstanceState {
            dir: rsctmp.join("cloudha"),
            prefix: format!("{}-{}", file_safe(agent), file_safe(instance)),
        }
    }

    fn name(&self, suffix: &str) -> String {
        format!("{}.{}", self.prefix, file_safe(suffix))
    }

    /// The path of this instance's file with `suffix`, for files that others create (a daemon's
    /// pid file or socket).
    pub fn path(&self, suffix: &str) -> PathBuf {
        self.dir.join(self.name(suffix))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The state directory, checked; None when it does not exist (nothing was started).
    fn open_dir(&self) -> OcfResult<Option<OwnedFd>> {
        let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
        let is_link =
            || std::fs::symlink_metadata(&self.dir).is_ok_and(|m| m.file_type().is_symlink());
        let fd = match nix::fcntl::open(&self.dir, flags, Mode::empty()) {
            Ok(fd) => own(fd),
            Err(Errno::ELOOP | Errno::ENOTDIR) if is_link() => {
                return Err(OcfError::perm(format!(
                    "state directory {} is a symbolic link: refusing to use it",
                    self.dir.display()
                )))
            }
            Err(e) if absent(e) => return Ok(None),
            Err(e) => return Err(io_error("cannot open state directory", &self.dir, e)),
        };
        let st = fstat(fd.as_raw_fd())
            .map_err(|e| io_error("cannot examine state directory", &self.dir, e))?;
        let me = nix::unistd::geteuid().as_raw();
        if st.st_uid != me || st.st_mode & 0o022 != 0 {
            return Err(OcfError::perm(format!(
                "state directory {} is owned by uid {} with mode {:o}: it must belong to uid {me} and be writable by no one else",
                self.dir.display(),
                st.st_uid,
                st.st_mode & 0o7777
            )));
        }
        Ok(Some(fd))
    }

    /// The state directory, made when missing.
    fn make_dir(&self) -> OcfResult<OwnedFd> {
        use std::os::unix::fs::DirBuilderExt;
        if let Some(parent) = self.dir.parent() {
            if let Err(e) = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
            {
                return Err(io_error("cannot create state directory", parent, e));
            }
        }
        match std::fs::DirBuilder::new().mode(0o750).create(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_error("cannot create state directory", &self.dir, e)),
        }
        self.open_dir()?.ok_or_else(|| {
            OcfError::generic(format!(
                "state directory {} vanished while it was made",
                self.dir.display()
            ))
        })
    }

    /// Take this instance's lock, waiting at most until `deadline`. Serialises actions that a
    /// person and Pacemaker might run at once.
    pub fn lock(&self, deadline: &Deadline) -> OcfResult<StateLock> {
        let dir = self.make_dir()?;
        let name = self.name("lock");
        let path = self.dir.join(&name);
        let fd = openat(
            Some(dir.as_raw_fd()),
            name.as_str(),
            OFlag::O_CREAT
                | OFlag::O_RDWR
                | OFlag::O_NOFOLLOW
                | OFlag::O_NONBLOCK
                | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map(own)
        .map_err(|e| io_error("cannot open lock", &path, e))?;
        let file = regular(fd, &path)?;
        deadline
            .retry(&LOCK_RETRY, |_| match file.try_lock() {
                Ok(()) => Attempt::Done(()),
                Err(std::fs::TryLockError::WouldBlock) => Attempt::Again(None),
                Err(std::fs::TryLockError::Error(e)) => Attempt::Fail(Some(e)),
            })
            .map_err(|e| match e.into_inner() {
                Some(e) => io_error("cannot lock", &path, e),
                None => OcfError::generic(format!(
                    "another action of this resource holds {} past the timeout",
                    path.display()
                )),
            })?;
        Ok(StateLock { _file: file })
    }

    /// A record file's text written in this boot, or None (absent, from before a reboot, or
    /// not a regular file of ours: a link, a directory, a FIFO are ignored with a warning).
    fn read_text(&self, suffix: &str, log: &Logger) -> OcfResult<Option<String>> {
        let Some(dir) = self.open_dir()? else {
            return Ok(None);
        };
        let name = self.name(suffix);
        let path = self.dir.join(&name);
        let fd = match openat(
            Some(dir.as_raw_fd()),
            name.as_str(),
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => own(fd),
            Err(e) if absent(e) => return Ok(None),
            Err(Errno::ELOOP) | Err(Errno::EISDIR) | Err(Errno::ENXIO) => {
                log.warn(format_args!(
                    "ignoring {}: not a record file",
                    path.display()
                ));
                return Ok(None);
            }
            Err(e) => return Err(io_error("cannot read", &path, e)),
        };
        let Ok(file) = regular(fd, &path) else {
            log.warn(format_args!(
                "ignoring {}: not a regular file",
                path.display()
            ));
            return Ok(None);
        };
        let mut text = String::new();
        if file.take(MAX_RECORD).read_to_string(&mut text).is_err() {
            log.warn(format_args!("ignoring {}: not text", path.display()));
            return Ok(None);
        }
        let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
        match first.strip_prefix("boot_id=") {
            Some(id) if id == boot_id() => Ok(Some(rest.to_string())),
            _ => Ok(None),
        }
    }

    /// This instance's record from this boot, if any, without the lock (probes and monitors
    /// read; they never write). One that does not parse is ignored with a warning: the instance
    /// then counts as not started here.
    pub fn load<R: Record>(&self, log: &Logger) -> OcfResult<Option<R>> {
        let Some(text) = self.read_text(R::SUFFIX, log)? else {
            return Ok(None);
        };
        let parsed = R::parse(&text);
        if parsed.is_none() {
            log.warn(format_args!(
                "ignoring an unreadable state record {}",
                self.path(R::SUFFIX).display()
            ));
        }
        Ok(parsed)
    }

    /// The lock and the record, for an action that ends what a start began (stop): None, and
    /// no lock taken (nor a directory made), when nothing was started here.
    pub fn hold<R: Record>(
        &self,
        deadline: &Deadline,
        log: &Logger,
    ) -> OcfResult<Option<(StateLock, R)>> {
        if self.load::<R>(log)?.is_none() {
            return Ok(None);
        }
        let lock = self.lock(deadline)?;
        // Read again under the lock: another action may have ended it meanwhile.
        Ok(self.load::<R>(log)?.map(|r| (lock, r)))
    }

    /// Write the record atomically (a reader sees the old one or the new one, never half),
    /// under the lock, never through a link.
    pub fn save<R: Record>(&self, _held: &StateLock, record: &R) -> OcfResult<()> {
        let dir = self.make_dir()?;
        let name = self.name(R::SUFFIX);
        let tmp = self.name(&format!("{}.tmp", R::SUFFIX));
        let path = self.dir.join(&name);
        let fail = |e: Errno| io_error("cannot write", &path, e);
        let open = || {
            openat(
                Some(dir.as_raw_fd()),
                tmp.as_str(),
                OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_WRONLY
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
        };
        let fd = match open() {
            Err(Errno::EEXIST) => {
                // Left by a writer that was killed (or planted): remove the name, never follow it.
                unlinkat(
                    Some(dir.as_raw_fd()),
                    tmp.as_str(),
                    UnlinkatFlags::NoRemoveDir,
                )
                .map_err(fail)?;
                open().map_err(fail)?
            }
            r => r.map_err(fail)?,
        };
        let fd = own(fd);
        let mut file = File::from(fd);
        write!(file, "boot_id={}\n{}", boot_id(), record.to_text())
            .map_err(|e| io_error("cannot write", &path, e))?;
        fsync(file.as_fd().as_raw_fd()).map_err(fail)?;
        renameat(
            Some(dir.as_raw_fd()),
            tmp.as_str(),
            Some(dir.as_raw_fd()),
            name.as_str(),
        )
        .map_err(fail)
    }

    /// Remove the record (absent is fine), under the lock.
    pub fn clear<R: Record>(&self, _held: &StateLock) -> OcfResult<()> {
        self.remove_file(R::SUFFIX)
    }

    /// Remove this instance's file with `suffix`; absent is fine. A link is removed, never followed.
    pub fn remove_file(&self, suffix: &str) -> OcfResult<()> {
        let Some(dir) = self.open_dir()? else {
            return Ok(());
        };
        let name = self.name(suffix);
        match unlinkat(
            Some(dir.as_raw_fd()),
            name.as_str(),
            UnlinkatFlags::NoRemoveDir,
        ) {
            Ok(()) => Ok(()),
            Err(e) if absent(e) => Ok(()),
            Err(e) => Err(io_error("cannot remove", &self.dir.join(name), e)),
        }
    }

    /// A new, empty file of this instance (whatever had its name is removed first, never
    /// followed), for a child's output.
    pub fn create_file(&self, suffix: &str) -> OcfResult<(File, PathBuf)> {
        let dir = self.make_dir()?;
        let name = self.name(suffix);
        let path = self.dir.join(&name);
        match unlinkat(
            Some(dir.as_raw_fd()),
            name.as_str(),
            UnlinkatFlags::NoRemoveDir,
        ) {
            Ok(()) => {}
            Err(e) if absent(e) => {}
            Err(e) => return Err(io_error("cannot remove", &path, e)),
        }
        let fd = openat(
            Some(dir.as_raw_fd()),
            name.as_str(),
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map(own)
        .map_err(|e| io_error("cannot create", &path, e))?;
        Ok((File::from(fd), path))
    }
}

/// Take ownership of a descriptor that nix's `open`/`openat` (0.29: raw descriptors) returned.
fn own(fd: std::os::fd::RawFd) -> OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: `fd` was just returned by a successful open(2)/openat(2) and nothing else owns it.
    #[allow(unsafe_code)]
    unsafe {
        OwnedFd::from_raw_fd(fd)
    }
}

/// `fd` as a file, if it is a regular one.
fn regular(fd: OwnedFd, path: &Path) -> OcfResult<File> {
    let file = File::from(fd);
    match fstat(file.as_raw_fd()) {
        Ok(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG => {
            Ok(file)
        }
        Ok(_) => Err(OcfError::generic(format!(
            "{} is not a regular file",
            path.display()
        ))),
        Err(e) => Err(io_error("cannot examine", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Number(u32);
    impl Record for Number {
        const SUFFIX: &'static str = "rec";
        fn to_text(&self) -> String {
            format!("{}\n", self.0)
        }
        fn parse(text: &str) -> Option<Self> {
            text.trim().parse().ok().map(Number)
        }
    }

    fn quiet() -> Logger {
        Logger::stderr("t")
    }
    fn soon() -> Deadline {
        Deadline::after(Duration::from_secs(2))
    }

    #[test]
    fn paths_are_per_agent_and_instance_and_never_collide() {
        let s = InstanceState::new(Path::new("/run/ra"), "anchorip", "anchor:0");
        assert_eq!(
            s.path("added"),
            PathBuf::from("/run/ra/cloudha/anchorip-anchor:0.added")
        );
        let evil = InstanceState::new(Path::new("/run/ra"), "a", "../../etc/x");
        assert_eq!(
            evil.path("lock"),
            PathBuf::from("/run/ra/cloudha/a-..%2F..%2Fetc%2Fx.lock")
        );
        let a = InstanceState::new(Path::new("/r"), "a", "x/y");
        let b = InstanceState::new(Path::new("/r"), "a", "x_y");
        assert_ne!(a.path("lock"), b.path("lock"));
        let long1 = InstanceState::new(Path::new("/r"), "a", &"x".repeat(5000));
        let long2 = InstanceState::new(Path::new("/r"), "a", &format!("{}y", "x".repeat(4999)));
        let name = |s: &InstanceState| s.path("started.tmp").file_name().unwrap().len();
        assert!(name(&long1) < 255, "{}", name(&long1));
        assert_ne!(long1.path("lock"), long2.path("lock"));
    }

    #[test]
    fn records_round_trip_under_the_lock_and_vanish() {
        let dir = tempfile::tempdir().unwrap();
        let s = InstanceState::new(dir.path(), "anchorip", "one");
        assert_eq!(s.load::<Number>(&quiet()).unwrap(), None);
        let lock = s.lock(&soon()).unwrap();
        s.save(&lock, &Number(42)).unwrap();
        assert_eq!(s.load::<Number>(&quiet()).unwrap(), Some(Number(42)));
        let other = InstanceState::new(dir.path(), "anchorip", "two");
        assert_eq!(other.load::<Number>(&quiet()).unwrap(), None);
        s.clear::<Number>(&lock).unwrap();
        s.clear::<Number>(&lock).unwrap();
        drop(lock);
        assert_eq!(s.load::<Number>(&quiet()).unwrap(), None);
        assert!(s.hold::<Number>(&soon(), &quiet()).unwrap().is_none());
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
        let lock = s.lock(&soon()).unwrap();
        s.save(&lock, &Number(1)).unwrap();
        std::fs::write(s.path("rec"), format!("boot_id={}\ngarbage", boot_id())).unwrap();
        assert_eq!(s.load::<Number>(&log).unwrap(), None);
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
        let lock = s.lock(&soon()).unwrap();
        s.save(&lock, &Number(1)).unwrap();
        std::fs::write(s.path("rec"), "boot_id=00000000-old\n1\n").unwrap();
        assert_eq!(s.load::<Number>(&quiet()).unwrap(), None);
    }

    #[test]
    fn an_unusable_state_path_means_nothing_started() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, "x").unwrap();
        let s = InstanceState::new(&file, "haproxy", "lb");
        assert_eq!(s.load::<Number>(&quiet()).unwrap(), None);
        assert!(s.hold::<Number>(&soon(), &quiet()).unwrap().is_none());
        assert!(s.remove_file("rec").is_ok());
        assert!(s.lock(&soon()).is_err());
        // A directory where the record should be is not a record.
        let s = InstanceState::new(dir.path(), "floatip", "fip");
        std::fs::create_dir_all(s.path("rec")).unwrap();
        assert_eq!(s.load::<Number>(&quiet()).unwrap(), None);
    }

    #[test]
    fn links_and_fifos_are_never_followed_nor_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let s = InstanceState::new(dir.path(), "floatip", "fip");
        let lock = s.lock(&soon()).unwrap();
        let victim = dir.path().join("passwd-copy");
        std::fs::write(&victim, "root:x:0:0\n").unwrap();
        std::os::unix::fs::symlink(&victim, s.path("rec.tmp")).unwrap();
        s.save(&lock, &Number(7)).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root:x:0:0\n");
        assert_eq!(s.load::<Number>(&quiet()).unwrap(), Some(Number(7)));
        // A record that is a link to a record-shaped file is not believed.
        std::fs::remove_file(s.path("rec")).unwrap();
        std::fs::write(&victim, format!("boot_id={}\n9\n", boot_id())).unwrap();
        std::os::unix::fs::symlink(&victim, s.path("rec")).unwrap();
        assert_eq!(s.load::<Number>(&quiet()).unwrap(), None);
        std::fs::remove_file(s.path("rec")).unwrap();
        nix::unistd::mkfifo(&s.path("rec"), Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(s.load::<Number>(&quiet()).unwrap(), None);
        // create_file replaces a planted link instead of writing through it.
        std::os::unix::fs::symlink(&victim, s.path("start.log")).unwrap();
        let (mut f, _) = s.create_file("start.log").unwrap();
        f.write_all(b"child output").unwrap();
        assert!(std::fs::read_to_string(&victim)
            .unwrap()
            .starts_with("boot_id"));
        drop(lock);
        // A lock that is a link is refused, not created at its target.
        let t = InstanceState::new(dir.path(), "floatip", "other");
        let target = dir.path().join("made-elsewhere");
        std::os::unix::fs::symlink(&target, t.path("lock")).unwrap();
        assert!(t.lock(&soon()).is_err());
        assert!(!target.exists());
    }

    #[test]
    fn a_directory_others_may_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let s = InstanceState::new(dir.path(), "anchorip", "one");
        drop(s.lock(&soon()).unwrap());
        std::fs::set_permissions(s.dir(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = s.lock(&soon()).unwrap_err();
        assert_eq!(e.code, crate::OcfCode::ErrPerm, "{}", e.reason);
        assert_eq!(
            s.load::<Number>(&quiet()).unwrap_err().code,
            crate::OcfCode::ErrPerm
        );
        std::fs::set_permissions(s.dir(), std::fs::Permissions::from_mode(0o750)).unwrap();
        std::fs::remove_dir_all(s.dir()).unwrap();
        std::os::unix::fs::symlink(dir.path(), s.dir()).unwrap();
        assert_eq!(s.lock(&soon()).unwrap_err().code, crate::OcfCode::ErrPerm);
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
