//! Every agent (and the example agent) against what any node can throw at all of them: a log
//! file that is a FIFO nobody reads, bytes that are not UTF-8 in any variable, command lines that
//! cannot run. Each answer is checked through the one helper (the code, and exactly one exit
//! reason for a failure). The agents' own adversarial.rs files cover what is theirs.

use cloudha_tests::{agent_bin, as_pacemaker, bin_dir, run_timed, AgentRun};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

fn agents() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = ["anchorip", "floatip", "haproxy"]
        .iter()
        .map(|a| agent_bin(a))
        .collect();
    v.push(bin_dir().join("examples/dummy"));
    v
}

/// Run `bin args` with exactly `vars` (raw bytes allowed) and a fresh HA_RSCTMP.
fn run(bin: &PathBuf, args: &[&str], vars: &[(&[u8], &[u8])]) -> AgentRun {
    let state = tempfile::tempdir().unwrap();
    let mut c = Command::new(bin);
    as_pacemaker(&mut c)
        .args(args)
        .env("HA_RSCTMP", state.path())
        .env("OCF_RESOURCE_INSTANCE", "adversarial")
        .env("OCF_RESKEY_CRM_meta_timeout", "5000");
    for (k, v) in vars {
        c.env(OsStr::from_bytes(k), OsStr::from_bytes(v));
    }
    run_timed(&mut c)
}

#[test]
fn a_log_fifo_without_a_reader_never_hangs_an_action() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("ha-log");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let f = fifo.as_os_str().as_bytes();
    let vars: [(&[u8], &[u8]); 3] = [(b"HA_LOGFILE", f), (b"HA_DEBUGLOG", f), (b"HA_debug", b"1")];
    for bin in agents() {
        let name = bin.display();
        let r = run(&bin, &["stop"], &vars);
        r.expect(0, &format!("{name} stop, HA_LOGFILE a FIFO"));
        assert!(
            r.took < Duration::from_secs(3),
            "{name}: stop took {:?}",
            r.took
        );
        let r = run(&bin, &["monitor"], &vars);
        r.expect(7, &format!("{name} probe, HA_LOGFILE a FIFO"));
        assert!(
            r.took < Duration::from_secs(3),
            "{name}: probe took {:?}",
            r.took
        );
    }
}

#[test]
fn bytes_that_are_not_utf8_never_abort_and_are_never_shown() {
    for bin in agents() {
        let name = bin.display();
        let foreign: [(&[u8], &[u8]); 2] = [(b"FOO", b"x\xffsekrit"), (b"B\xffR", b"y")];
        run(&bin, &["meta-data"], &foreign).expect(0, &format!("{name} meta-data"));
        let ours: [(&[u8], &[u8]); 3] = [
            (b"OCF_RESKEY_ip", b"\xff\xfesekrit"),
            (b"OCF_RESOURCE_INSTANCE", b"inst\xff"),
            (b"HA_LOGTAG", b"tag\xff"),
        ];
        for (action, code) in [("stop", 0), ("monitor", 7), ("notify", 0)] {
            let r = run(&bin, &[action], &ours);
            r.expect(
                code,
                &format!("{name} {action} with bytes that are not UTF-8"),
            );
            assert!(!r.stderr.contains("sekrit") && !r.stdout.contains("sekrit"));
        }
    }
}

#[test]
fn command_lines_that_cannot_run_are_ocf_answers() {
    for bin in agents() {
        let name = bin.display();
        run(&bin, &[], &[])
            .expect(3, &format!("{name} with no action"))
            .reason(predicates::str::contains("no action given"));
        run(&bin, &["frobnicate"], &[]).expect(3, &format!("{name} frobnicate"));
        run(&bin, &["stop", "extra"], &[]).expect(2, &format!("{name} stop extra"));
        run(&bin, &["--timeout", "-1", "stop"], &[]).expect(6, &format!("{name} --timeout -1"));
        run(&bin, &["--check-level", "7", "monitor"], &[])
            .expect(6, &format!("{name} --check-level 7"));
        run(&bin, &["--help"], &[]).expect(0, &format!("{name} --help"));
    }
}
