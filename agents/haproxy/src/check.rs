//! Level 10: whether this node can run this configuration. The binary and the file are looked
//! at (5 for something missing, 4 for a permission), then `haproxy -c` judges the file, and its
//! first `[ALERT]` line is the reason. The file lives on this node: 5, never 6.

use crate::settings::Settings;
use crate::{BINARY, CONFIG};
use cloudha_common::{child, Deadline, OcfCode, OcfError, OcfResult, Params};
use std::io::ErrorKind;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::process::Command;

/// The binary is an executable file; the configuration a regular file this user can read.
/// The configuration is opened without blocking and never read here: a FIFO at its path is
/// refused at once instead of hanging the action (and `haproxy -c` after it).
pub fn installed(s: &Settings, params: &Params) -> OcfResult<()> {
    match std::fs::metadata(&s.binary) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {}
        Ok(_) => {
            return Err(params.fault(
                OcfCode::ErrInstalled,
                &BINARY,
                format!("{} is not an executable file", s.binary.display()),
            ))
        }
        Err(e) => {
            return Err(params.fault(
                OcfCode::ErrInstalled,
                &BINARY,
                format!("{}: {e}", s.binary.display()),
            ))
        }
    }
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(&s.config);
    let file = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            return Err(params.fault(
                OcfCode::ErrPerm,
                &CONFIG,
                format!("{} is not readable: {e}", s.config.display()),
            ))
        }
        Err(e) => {
            return Err(params.fault(
                OcfCode::ErrInstalled,
                &CONFIG,
                format!("{}: {e}", s.config.display()),
            ))
        }
    };
    let kind = file.metadata().map(|m| m.file_type()).map_err(|e| {
        params.fault(
            OcfCode::ErrInstalled,
            &CONFIG,
            format!("{}: {e}", s.config.display()),
        )
    })?;
    if kind.is_dir() {
        return Err(params.fault(
            OcfCode::ErrInstalled,
            &CONFIG,
            format!("{} is a directory, not a file", s.config.display()),
        ));
    }
    if !kind.is_file() {
        return Err(params.fault(
            OcfCode::ErrInstalled,
            &CONFIG,
            format!(
                "{} is not a regular file (a FIFO, a socket or a device)",
                s.config.display()
            ),
        ));
    }
    Ok(())
}

/// `haproxy -c`, bounded by the deadline (the whole process group is killed at it).
pub fn config(s: &Settings, params: &Params, deadline: &Deadline) -> OcfResult<()> {
    let mut cmd = Command::new(&s.binary);
    cmd.arg("-c").arg("-f").arg(&s.config).args(&s.extra_args);
    let (status, output) = child::run(&mut cmd, deadline)
        .map_err(|e| OcfError::generic(format!("'{} -c' {e}", s.binary.display())))?;
    if status.success() {
        return Ok(());
    }
    Err(params.fault(
        OcfCode::ErrInstalled,
        &CONFIG,
        format!(
            "{} fails the check: {}",
            s.config.display(),
            first_alert(&output)
        ),
    ))
}

/// The first `[ALERT]` line of HAProxy's output without its prefix, or the last line.
pub fn first_alert(output: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `haproxy -c` of a file with an unknown keyword (HAProxy 2.6.12-1+deb12u4).
    const REAL_CHECK: &str = include_str!("../testdata/check-unknown-keyword.txt");
    /// A start whose frontend's port another program holds.
    const REAL_PORT_IN_USE: &str = include_str!("../testdata/start-port-in-use.txt");

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
    fn alert_lines_as_haproxy_2_6_writes_them() {
        assert_eq!(
            first_alert(REAL_CHECK),
            "config : parsing [h.bad:19] : unknown keyword 'bogus_keyword' in 'backend' section"
        );
        assert_eq!(
            first_alert(REAL_PORT_IN_USE),
            "Binding [/tmp/cap/h.cfg:21] for frontend extra: cannot bind socket (Address already in use) for [127.0.0.1:18434]"
        );
        assert_eq!(
            crate::holder::port_in_alert(&first_alert(REAL_PORT_IN_USE)),
            Some(18434)
        );
    }

    fn level() -> impl Strategy<Value = &'static str> {
        prop_oneof![Just("[NOTICE]  "), Just("[WARNING] "), Just("[ALERT]   ")]
    }

    proptest! {
        #[test]
        fn any_output_gives_a_line_without_panic(text in "(?s).{0,400}") {
            let line = first_alert(&text);
            prop_assert!(!line.contains('\n'));
        }

        #[test]
        fn the_first_alert_is_what_haproxy_said(
            before in prop::collection::vec(
                (prop_oneof![Just("[NOTICE]  "), Just("[WARNING] ")], "[^\n]{0,60}"),
                0..4,
            ),
            pid in 1u32..4_194_304,
            message in "[^\\s][^\n]{0,80}",
            after in prop::collection::vec((level(), "[^\n]{0,60}"), 0..4),
        ) {
            let message = message.trim().to_string();
            let line = |level: &str, pid: u32, text: &str| format!("{level} ({pid}) : {text}\n");
            let mut out = String::new();
            for (l, t) in &before {
                out.push_str(&line(l, pid, t));
            }
            out.push_str(&line("[ALERT]   ", pid, &message));
            for (l, t) in &after {
                out.push_str(&line(l, pid, t));
            }
            prop_assert_eq!(first_alert(&out), message);
        }
    }
}
