//! The start record: what start leaves for monitor and stop. Its presence means "started here
//! and not stopped since"; it names the processes (their identity) and the pid file.
//!
//! One `key=path` line each. A path is any bytes but NUL: every byte outside printable ASCII,
//! and `%`, is written `%XX`, so that a newline in a path cannot make a line of its own (a
//! `socket=` of someone's choosing) and a path that is not UTF-8 reads back as it was.

use crate::process::{read_pidfile, Identity};
use cloudha_common::{OcfError, OcfResult, Record};
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// `path` as one line of printable ASCII.
fn encode(path: &Path) -> String {
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if (b.is_ascii_graphic() && b != b'%') || b == b' ' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The path `encode` wrote; None for anything it cannot have written.
fn decode(text: &str) -> Option<PathBuf> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    if bytes.contains(&0) {
        return None;
    }
    Some(PathBuf::from(OsString::from_vec(bytes)))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Started {
    pub identity: Identity,
    pub pidfile: PathBuf,
}

impl Record for Started {
    const SUFFIX: &'static str = "started";

    fn to_text(&self) -> String {
        format!(
            "exe={}\nconfig={}\nsocket={}\npidfile={}\n",
            encode(&self.identity.exe),
            encode(&self.identity.config),
            encode(&self.identity.socket),
            encode(&self.pidfile)
        )
    }

    fn parse(text: &str) -> Option<Started> {
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
                .and_then(decode)
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
}

impl Started {
    /// The master's pid, when the pid file names a live process that is ours.
    pub fn master(&self) -> Option<u32> {
        read_pidfile(&self.pidfile).filter(|pid| self.identity.matches(*pid))
    }

    /// Remove the files a stopped HAProxy leaves behind: its pid file and socket (a link is
    /// removed, never followed). The record is the caller's, under the lock.
    pub fn remove_files(&self) -> OcfResult<()> {
        for f in [&self.pidfile, &self.identity.socket] {
            remove(f)?;
        }
        Ok(())
    }
}

fn remove(f: &Path) -> OcfResult<()> {
    match std::fs::remove_file(f) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(OcfError::generic(format!(
            "cannot remove {}: {e}",
            f.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    fn started(exe: &str, config: &str, socket: &str, pidfile: &str) -> Started {
        Started {
            identity: Identity {
                exe: exe.into(),
                config: config.into(),
                socket: socket.into(),
            },
            pidfile: pidfile.into(),
        }
    }

    #[test]
    fn round_trips_and_refuses_a_partial_record() {
        let r = started(
            "/usr/sbin/haproxy",
            "/etc/haproxy/haproxy.cfg",
            "/run/x.sock",
            "/run/x.pid",
        );
        assert_eq!(
            r.to_text(),
            "exe=/usr/sbin/haproxy\nconfig=/etc/haproxy/haproxy.cfg\nsocket=/run/x.sock\npidfile=/run/x.pid\n"
        );
        assert_eq!(Started::parse(&r.to_text()), Some(r));
        assert!(Started::parse("exe=/x\n").is_none());
        assert!(Started::parse("").is_none());
    }

    #[test]
    fn a_newline_in_a_path_cannot_add_a_line() {
        let r = started(
            "/usr/sbin/haproxy",
            "/etc/h.cfg\nsocket=/tmp/theirs.sock",
            "/run/x.sock",
            "/run/100%.pid",
        );
        let text = r.to_text();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(text.contains("config=/etc/h.cfg%0Asocket=/tmp/theirs.sock\n"));
        assert!(text.contains("pidfile=/run/100%25.pid\n"));
        assert_eq!(Started::parse(&text), Some(r));
        // Escapes that `to_text` cannot have written.
        for bad in ["%", "%4", "%zz", "%00", "/a%C"] {
            let text = format!("exe=/x\nconfig={bad}\nsocket=/s\npidfile=/p\n");
            assert!(Started::parse(&text).is_none(), "{bad}");
        }
    }

    fn path() -> impl Strategy<Value = PathBuf> {
        prop_oneof![
            "/[a-z/._-]{0,30}".prop_map(PathBuf::from),
            prop::collection::vec(any::<u8>().prop_filter("no NUL", |b| *b != 0), 0..40).prop_map(
                |mut b| {
                    b.insert(0, b'/');
                    PathBuf::from(OsString::from_vec(b))
                }
            ),
        ]
    }

    proptest! {
        #[test]
        fn any_text_parses_without_panic(text in ".{0,300}") {
            let _ = Started::parse(&text);
        }

        #[test]
        fn any_record_reads_back_as_written(
            exe in path(), config in path(), socket in path(), pidfile in path()
        ) {
            let r = Started { identity: Identity { exe, config, socket }, pidfile };
            prop_assert_eq!(Started::parse(&r.to_text()), Some(r));
        }
    }
}
