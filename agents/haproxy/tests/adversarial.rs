//! The haproxy agent against a hostile or broken node, end to end through the one helper: an
//! unusable HA_RSCTMP, absurd instance names, a FIFO where the configuration should be, links
//! planted at the instance's files, a binary that forks and lingers, bytes that are not text.
//! Each answer is checked with `AgentRun::expect` (the code, and exactly one exit reason on
//! failure); each wait is bounded far below the action's timeout.

mod common;

use common::*;
use predicates::prelude::*;
use predicates::str::contains;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const PROBE: (&str, &str) = ("OCF_RESKEY_CRM_meta_interval", "0");

/// `<HA_RSCTMP>/cloudha`, made as a start makes it (root's, mode 750).
fn state_dir(lb: &Lb) -> PathBuf {
    let dir = lb.rsctmp().join("cloudha");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(&dir)
        .expect("state dir");
    std::fs::set_permissions(lb.rsctmp(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

#[test]
fn never_started_is_7_and_0_when_ha_rsctmp_is_a_regular_file() {
    let lb = Lb::new("rsctmpfile", &config(free_port(), &[free_port()]));
    let file = lb.dir.path().join("not-a-directory");
    std::fs::write(&file, "x").expect("write");
    let rsctmp = file.display().to_string();
    let vars = [("HA_RSCTMP", rsctmp.as_str()), PROBE];
    lb.run_with("monitor", &vars)
        .expect(7, "probe with HA_RSCTMP a regular file");
    lb.run_with("stop", &vars)
        .expect(0, "stop with HA_RSCTMP a regular file");
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "x");
}

#[test]
fn never_started_is_7_and_0_with_a_5000_character_instance_id_and_its_files_stay_named() {
    let b = Backend::start();
    let fe = free_port();
    let mut lb = Lb::new("longid", &config(fe, &[b.port]));
    lb.instance = format!("{}{}", lb.instance, "x".repeat(5000));
    lb.run_with("monitor", &[PROBE])
        .expect(7, "probe of a 5000-character id");
    lb.run("stop").expect(0, "stop of a 5000-character id");
    assert!(
        !lb.rsctmp().exists(),
        "a stop of nothing made the state directory"
    );

    // Started with a socket and pid file of a sane length, it runs and its state file names
    // stay under the file-name limit.
    let socket = lb.dir.path().join("m.sock").display().to_string();
    let pidfile = lb.dir.path().join("m.pid").display().to_string();
    lb.set("OCF_RESKEY_master_socket", &socket);
    lb.set("OCF_RESKEY_pidfile", &pidfile);
    lb.run("start").expect(0, "start with a 5000-character id");
    for e in std::fs::read_dir(lb.rsctmp().join("cloudha")).expect("state dir") {
        let name = e.expect("entry").file_name();
        assert!(name.len() < 255, "{} bytes: {name:?}", name.len());
    }
    lb.run_with("monitor", &[PROBE])
        .expect(0, "probe while running");
    lb.monitor(10).expect(0, "depth 10 while running");
    lb.run("stop").expect(0, "stop");
    assert!(processes_with(&socket).is_empty(), "HAProxy left running");
    lb.run_with("monitor", &[PROBE])
        .expect(7, "probe after stop");
}

#[test]
fn a_fifo_as_config_is_refused_at_once_and_never_read() {
    let lb = Lb::new("fifo", &config(free_port(), &[free_port()]));
    let fifo = lb.dir.path().join("haproxy-fifo.cfg");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).expect("mkfifo");
    let fifo = fifo.display().to_string();
    let level10 = ("OCF_CHECK_LEVEL", "10");
    for (action, vars) in [
        (
            "validate-all",
            vec![("OCF_RESKEY_config", fifo.as_str()), level10],
        ),
        ("start", vec![("OCF_RESKEY_config", fifo.as_str())]),
        (
            "validate-all",
            vec![
                ("OCF_RESKEY_config", ""),
                ("OCF_RESKEY_conffile", fifo.as_str()),
                level10,
            ],
        ),
    ] {
        let r = lb.run_with(action, &vars);
        r.expect(5, &format!("{action} with a FIFO as config"))
            .reason(contains("is not a regular file").and(contains(fifo.as_str())));
        let named = if vars[0].1.is_empty() {
            "'conffile'"
        } else {
            "'config'"
        };
        r.reason(contains(named));
        // The timeout is 20 s: a read of the FIFO (or `haproxy -c` on it) would use it all.
        assert!(
            r.took < Duration::from_secs(3),
            "{action} took {:?}",
            r.took
        );
    }
    lb.run_with("monitor", &[("OCF_RESKEY_config", fifo.as_str()), PROBE])
        .expect(7, "probe with a FIFO as config");
    lb.run_with("stop", &[("OCF_RESKEY_config", fifo.as_str())])
        .expect(0, "stop with a FIFO as config");
}

#[test]
fn links_planted_at_the_record_and_the_log_are_never_written_through() {
    let b = Backend::start();
    let fe = free_port();
    let lb = Lb::new("links", &config(fe, &[b.port]));
    let dir = state_dir(&lb);
    let precious = "precious: not the agent's\n";
    let plant = |suffix: &str| {
        let victim = lb.dir.path().join(format!("victim-{suffix}"));
        std::fs::write(&victim, precious).expect("victim");
        let link = dir.join(format!("haproxy-{}.{suffix}", lb.instance));
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&victim, &link).expect("symlink");
        victim
    };
    let victims = [plant("started.tmp"), plant("start.log")];
    let untouched = |when: &str| {
        for v in &victims {
            assert_eq!(
                std::fs::read_to_string(v).expect("victim"),
                precious,
                "{when}: {} was written through a link",
                v.display()
            );
        }
    };
    lb.run("start").expect(0, "start with links planted");
    untouched("after start");
    let record = dir.join(format!("haproxy-{}.started", lb.instance));
    assert!(
        std::fs::symlink_metadata(&record)
            .expect("record")
            .file_type()
            .is_file(),
        "the record is not a file of its own"
    );
    lb.monitor(10).expect(0, "depth 10");
    lb.run("stop").expect(0, "stop");
    untouched("after stop");

    // A start that fails reads HAProxy's words from its log: still never through a link.
    plant("start.log");
    let holder = std::net::TcpListener::bind(("127.0.0.1", fe)).expect("hold the port");
    lb.run("start")
        .expect(1, "start with the port taken")
        .reason(contains("Address already in use"));
    untouched("after a failed start");
    drop(holder);
    assert!(lb.processes().is_empty(), "left: {:?}", lb.processes());
}

/// A process the test must not leave behind: killed on drop, or by a watchdog after `limit`
/// (so that an agent which waits for it cannot hold the test for its whole life).
struct Stray {
    pidfile: PathBuf,
    done: Arc<AtomicBool>,
}

impl Stray {
    fn watch(pidfile: PathBuf, limit: Duration) -> Stray {
        let done = Arc::new(AtomicBool::new(false));
        let (flag, file) = (done.clone(), pidfile.clone());
        std::thread::spawn(move || {
            let t = std::time::Instant::now();
            while !flag.load(Ordering::SeqCst) && t.elapsed() < limit {
                std::thread::sleep(Duration::from_millis(100));
            }
            kill_stray(&file);
        });
        Stray { pidfile, done }
    }

    fn pid(&self) -> Option<i32> {
        stray_pid(&self.pidfile)
    }
}

impl Drop for Stray {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        kill_stray(&self.pidfile);
    }
}

fn stray_pid(pidfile: &Path) -> Option<i32> {
    std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()
}

/// Whether `pid` runs (not a zombie) the test's `sleep 300`.
fn sleeping(pid: i32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat
        .rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
    cmdline == b"sleep\x00300\x00" && !zombie
}

fn kill_stray(pidfile: &Path) {
    if let Some(pid) = stray_pid(pidfile).filter(|p| sleeping(*p)) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[test]
fn a_binary_that_forks_leaves_no_grandchild_past_the_deadline() {
    let lb = Lb::new("forks", &config(free_port(), &[free_port()]));
    let pidfile = lb.dir.path().join("grandchild.pid");
    let wrapper = lb.dir.path().join("haproxy-wrapper");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n# A wrapper that starts something long-lived and waits for it.\nsleep 300 &\necho $! > {}\nwait\n",
            pidfile.display()
        ),
    )
    .expect("wrapper");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let stray = Stray::watch(pidfile.clone(), Duration::from_secs(30));
    let wrapper = wrapper.display().to_string();
    // `haproxy -c` through the wrapper never ends: the deadline (4 s less the margin) does.
    let r = lb.run_with(
        "validate-all",
        &[
            ("OCF_RESKEY_binary", &wrapper),
            ("OCF_CHECK_LEVEL", "10"),
            ("OCF_RESKEY_CRM_meta_timeout", "4000"),
        ],
    );
    r.expect(1, "validate-all 10 with a check that never ends")
        .reason(contains("-c").and(contains("timeout")));
    assert!(r.took < Duration::from_secs(4), "took {:?}", r.took);
    let pid = stray.pid().expect("the wrapper wrote its grandchild's pid");
    assert!(
        eventually(Duration::from_secs(2), || !sleeping(pid)),
        "the wrapper's grandchild {pid} outlived the action"
    );
}

#[test]
fn bytes_that_are_not_text_never_abort_a_stop_or_a_probe() {
    let lb = Lb::new("bytes", &config(free_port(), &[free_port()]));
    let sh = Path::new("/bin/sh");
    for (what, exports) in [
        (
            "a parameter",
            r#"export OCF_RESKEY_config="$(printf '/etc/h\377.cfg')""#,
        ),
        (
            "an unused parameter",
            r#"export OCF_RESKEY_extra_args="$(printf 'x\376\377')""#,
        ),
        (
            "the instance name",
            r#"export OCF_RESOURCE_INSTANCE="$(printf 'lb\377')""#,
        ),
        (
            "a foreign variable",
            r#"export LANGUAGE="$(printf '\377\376')""#,
        ),
    ] {
        let script = format!("{exports}; exec \"$0\" \"$1\"");
        lb.run_wrapped(sh, &["-c", &script], "stop", &[])
            .expect(0, &format!("stop with {what} not UTF-8"));
        lb.run_wrapped(sh, &["-c", &script], "monitor", &[PROBE])
            .expect(7, &format!("probe with {what} not UTF-8"));
    }
    // A variable whose very name is not text.
    let script = r#"exec env "$(printf 'CLOUDHA\377X')=1" "$0" "$1""#;
    lb.run_wrapped(sh, &["-c", script], "stop", &[])
        .expect(0, "stop with a variable name not UTF-8");
    lb.run_wrapped(sh, &["-c", script], "monitor", &[PROBE])
        .expect(7, "probe with a variable name not UTF-8");
}
