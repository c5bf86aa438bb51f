//! Logging as resource-agents' ocf-shellfuncs does it: syslog with the `<type>(<instance>)[<pid>]`
//! tag when `HA_LOGFACILITY` is set, `HA_LOGFILE`/`HA_DEBUGLOG` when set, stderr otherwise (and
//! always on a terminal). Debug lines only with `HA_debug`. Registered secrets are masked everywhere.

use crate::env::LogSettings;
use crate::secret::Secret;
use std::fmt::Display;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Err,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARNING",
            Level::Err => "ERROR",
        }
    }
    fn syslog_severity(self) -> u8 {
        match self {
            Level::Debug => 7,
            Level::Info => 6,
            Level::Warn => 4,
            Level::Err => 3,
        }
    }
}

fn facility_code(name: &str) -> Option<u8> {
    let n = name.trim().to_ascii_lowercase();
    let code = match n.as_str() {
        "kern" => 0,
        "user" => 1,
        "mail" => 2,
        "daemon" => 3,
        "auth" => 4,
        "syslog" => 5,
        "lpr" => 6,
        "news" => 7,
        "uucp" => 8,
        "cron" => 9,
        "authpriv" => 10,
        "ftp" => 11,
        _ => {
            let local: u8 = n.strip_prefix("local")?.parse().ok()?;
            if local > 7 {
                return None;
            }
            16 + local
        }
    };
    Some(code)
}

#[derive(Debug)]
enum Sink {
    Syslog { facility: u8 },
    File(PathBuf),
    Stderr,
}

#[derive(Debug)]
pub struct Logger {
    tag: String,
    sinks: Vec<Sink>,
    /// Where debug lines go besides syslog: `HA_DEBUGLOG`, else `HA_LOGFILE`.
    debug_file: Option<PathBuf>,
    debug: bool,
    masked: Mutex<Vec<String>>,
}

impl Logger {
    /// A logger per the environment. `terminal`: stderr is a terminal (a person runs us).
    pub fn new(
        settings: &LogSettings,
        resource_type: &str,
        instance: &str,
        terminal: bool,
    ) -> Logger {
        let tag = settings.tag.clone().unwrap_or_else(|| match instance {
            // Outside a cluster (a person, keepalived) there is no instance to name.
            "" => format!("{resource_type}[{}]", std::process::id()),
            _ => format!("{resource_type}({instance})[{}]", std::process::id()),
        });
        let mut sinks = Vec::new();
        let mut debug_file = None;
        if !terminal {
            if let Some(facility) = settings.facility.as_deref().and_then(facility_code) {
                sinks.push(Sink::Syslog { facility });
            }
            if let Some(f) = &settings.logfile {
                sinks.push(Sink::File(f.clone()));
            }
            debug_file = settings
                .debuglog
                .clone()
                .or_else(|| settings.logfile.clone());
        }
        if sinks.is_empty() {
            sinks.push(Sink::Stderr);
        }
        Logger {
            tag,
            sinks,
            debug_file,
            debug: settings.debug,
            masked: Mutex::new(Vec::new()),
        }
    }

    /// A logger that writes to stderr only.
    pub fn stderr(tag: &str) -> Logger {
        Logger::new(
            &LogSettings {
                tag: Some(tag.to_string()),
                ..LogSettings::default()
            },
            "",
            "",
            true,
        )
    }

    /// True when lines already go to stderr (so an exit reason there need not be logged twice).
    pub fn logs_to_stderr(&self) -> bool {
        self.sinks.iter().any(|s| matches!(s, Sink::Stderr))
    }

    pub fn debug_enabled(&self) -> bool {
        self.debug
    }

    /// Never print this value, whatever message carries it (a token read from a file, say).
    pub fn mask(&self, secret: &Secret) {
        if secret.expose().len() >= 4 {
            if let Ok(mut m) = self.masked.lock() {
                m.push(secret.expose().to_string());
            }
        }
    }

    /// `text` with every registered secret replaced by `***`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        if let Ok(m) = self.masked.lock() {
            for s in m.iter() {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }

    pub fn log(&self, level: Level, msg: impl Display) {
        if level == Level::Debug && !self.debug {
            return;
        }
        let msg = self.scrub(&msg.to_string());
        for sink in &self.sinks {
            match sink {
                Sink::Syslog { facility } => self.syslog(*facility, level, &msg),
                Sink::File(path) if level != Level::Debug => self.append(path, level, &msg),
                Sink::File(_) => {}
                Sink::Stderr => {
                    let _ = writeln!(std::io::stderr(), "{}: {}: {}", self.tag, level.name(), msg);
                }
            }
        }
        if level == Level::Debug {
            if let Some(p) = &self.debug_file {
                self.append(p, level, &msg);
            }
        }
    }

    pub fn debug(&self, msg: impl Display) {
        self.log(Level::Debug, msg)
    }
    pub fn info(&self, msg: impl Display) {
        self.log(Level::Info, msg)
    }
    pub fn warn(&self, msg: impl Display) {
        self.log(Level::Warn, msg)
    }
    pub fn err(&self, msg: impl Display) {
        self.log(Level::Err, msg)
    }

    fn syslog(&self, facility: u8, level: Level, msg: &str) {
        let pri = facility as u16 * 8 + level.syslog_severity() as u16;
        let line = format!("<{pri}>{}: {}: {}", self.tag, level.name(), msg);
        let sent = UnixDatagram::unbound()
            .and_then(|s| s.send_to(line.as_bytes(), "/dev/log"))
            .is_ok();
        if !sent {
            // No syslog daemon: do not lose the line.
            let _ = writeln!(std::io::stderr(), "{}: {}: {}", self.tag, level.name(), msg);
        }
    }

    fn append(&self, path: &PathBuf, level: Level, msg: &str) {
        use std::os::unix::fs::OpenOptionsExt;
        let line = format!("{}: {} {}: {}\n", self.tag, utc_now(), level.name(), msg);
        // Never block: a FIFO with no reader, or a full one, must not hang an action (a stop
        // that hangs gets the node fenced). O_NONBLOCK makes such an open or write fail at once,
        // and the line goes to stderr instead.
        let ok = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .custom_flags((nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_NOCTTY).bits())
            .open(path)
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .is_ok();
        if !ok {
            let _ = writeln!(std::io::stderr(), "{}: {}: {}", self.tag, level.name(), msg);
        }
    }
}

/// Now as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    utc_string(secs)
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (Howard Hinnant's civil-from-days).
pub fn utc_string(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facilities() {
        assert_eq!(facility_code("daemon"), Some(3));
        assert_eq!(facility_code("LOCAL7"), Some(23));
        assert_eq!(facility_code("local8"), None);
        assert_eq!(facility_code("bogus"), None);
    }

    #[test]
    fn utc_formatting() {
        assert_eq!(utc_string(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_string(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_string(1_795_000_000), "2026-11-18T11:06:40Z");
    }

    #[test]
    fn file_sink_with_tag_levels_and_masking() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("ha.log");
        let dbg = dir.path().join("debug.log");
        let settings = LogSettings {
            facility: None,
            tag: None,
            logfile: Some(log.clone()),
            debuglog: Some(dbg.clone()),
            debug: true,
        };
        let l = Logger::new(&settings, "anchorip", "anchor:0", false);
        assert!(!l.logs_to_stderr());
        l.mask(&Secret::new("dop_v1_secret"));
        l.info("started with dop_v1_secret inside");
        l.debug("a debug line");
        let text = std::fs::read_to_string(&log).unwrap();
        let tag = format!("anchorip(anchor:0)[{}]: ", std::process::id());
        assert!(text.starts_with(&tag), "{text}");
        assert!(text.contains("INFO: started with *** inside"));
        assert!(!text.contains("dop_v1_secret"));
        assert!(!text.contains("a debug line"));
        let debug = std::fs::read_to_string(&dbg).unwrap();
        assert!(debug.contains("DEBUG: a debug line"));
    }

    #[test]
    fn a_fifo_without_a_reader_never_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let settings = LogSettings {
            logfile: Some(fifo.clone()),
            debuglog: Some(fifo),
            debug: true,
            ..LogSettings::default()
        };
        let l = Logger::new(&settings, "t", "i", false);
        let t = std::time::Instant::now();
        l.err("goes to stderr instead");
        l.debug("so does this");
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn debug_off_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("ha.log");
        let settings = LogSettings {
            logfile: Some(log.clone()),
            ..LogSettings::default()
        };
        let l = Logger::new(&settings, "t", "i", false);
        l.debug("hidden");
        assert!(!log.exists());
    }

    #[test]
    fn terminal_means_stderr_only() {
        let settings = LogSettings {
            facility: Some("daemon".into()),
            logfile: Some("/nonexistent/x".into()),
            ..LogSettings::default()
        };
        assert!(Logger::new(&settings, "t", "i", true).logs_to_stderr());
        assert!(!Logger::new(&settings, "t", "i", false).logs_to_stderr());
    }
}
