//! anchorip against a hostile or broken node, end to end through the one helper: an unusable
//! HA_RSCTMP, an absurd instance name, bytes that are not text, links planted at the instance's
//! files, a state directory others may write, command lines that cannot run. Each answer is
//! checked with `AgentRun::expect` (the code, and exactly one exit reason on failure); each run
//! is bounded far below the action's timeout. Everything happens in a namespace the test made.
#![allow(clippy::unwrap_used)] // a test's failure report is its panic

mod support;

use cloudha_tests::{agent_bin, as_pacemaker, run_agent_args, run_timed, AgentRun, Netns};
use predicates::str::contains;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use std::time::Duration;
use support::{netns_with_eth0, Rsc};

/// Run `action` as `rsc` with `extra` variables given as raw bytes (replacing the instance's
/// own; an empty value removes one), inside its namespace.
fn run_bytes(rsc: &Rsc, action: &str, extra: &[(&str, &[u8])]) -> AgentRun {
    let rsctmp = rsc.state.path().display().to_string();
    let mut vars: Vec<(String, Vec<u8>)> = vec![
        ("HA_RSCTMP".into(), rsctmp.into_bytes()),
        ("OCF_RESOURCE_INSTANCE".into(), rsc.instance.clone().into()),
        ("OCF_RESOURCE_TYPE".into(), b"anchorip".to_vec()),
        ("OCF_RESKEY_CRM_meta_timeout".into(), b"5000".to_vec()),
    ];
    vars.extend(
        rsc.params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into_bytes())),
    );
    for (k, v) in extra {
        vars.retain(|(name, _)| name != k);
        if !v.is_empty() {
            vars.push((k.to_string(), v.to_vec()));
        }
    }
    let mut cmd = rsc.ns.command(agent_bin("anchorip"));
    as_pacemaker(&mut cmd).arg(action);
    for (k, v) in &vars {
        cmd.env(k, OsStr::from_bytes(v));
    }
    run_timed(&mut cmd)
}

/// A probe (7), a recurring monitor (7) and a stop (0) of a resource never started here, each
/// well within its timeout; `vars` replace the instance's own.
fn never_started(rsc: &Rsc, what: &str, vars: &[(&str, &str)]) {
    for (action, interval, code) in [
        ("monitor", "0", 7),
        ("monitor", "10000", 7),
        ("stop", "0", 0),
    ] {
        let mut all = vars.to_vec();
        all.push(("OCF_RESKEY_CRM_meta_interval", interval));
        all.push(("OCF_RESKEY_CRM_meta_timeout", "5000"));
        let r = rsc.run_with(action, &all);
        r.expect(code, &format!("{what}: {action} (interval {interval})"));
        assert!(
            r.took < Duration::from_secs(2),
            "{what}: {action} took {:?}",
            r.took
        );
    }
}

/// This instance's file with `suffix` in its state directory, the directory made as the agent
/// makes it (a directory of root's, writable by no one else).
fn planted(rsc: &Rsc, suffix: &str) -> PathBuf {
    let dir = rsc.state.path().join("cloudha");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
    dir.join(format!("anchorip-{}.{suffix}", rsc.instance))
}

#[test]
fn an_unusable_state_path_means_never_started() {
    let ns = Netns::new("x-state");
    let rsc = Rsc::new(&ns, "anchor", &[("ip", "10.17.1.18"), ("nic", "lo")]);
    let plain = rsc.state.path().join("a-file");
    std::fs::write(&plain, "x").unwrap();
    never_started(
        &rsc,
        "HA_RSCTMP a regular file",
        &[("HA_RSCTMP", plain.to_str().unwrap())],
    );
    let long = "x".repeat(5000);
    never_started(
        &rsc,
        "a 5000-character instance",
        &[("OCF_RESOURCE_INSTANCE", &long)],
    );
    // Nothing was made on the way: no state directory, no lock.
    assert!(!rsc.state.path().join("cloudha").exists());
    // And that instance starts, monitors and stops like any other.
    let vars = [("OCF_RESOURCE_INSTANCE", long.as_str())];
    rsc.run_with("start", &vars)
        .expect(0, "start of a 5000-character instance");
    assert!(ns.addresses("lo").contains(&"10.17.1.18/32".to_string()));
    rsc.run_with("monitor", &vars)
        .expect(0, "probe after start");
    rsc.run_with("stop", &vars).expect(0, "stop");
    assert!(!ns.addresses("lo").contains(&"10.17.1.18/32".to_string()));
    rsc.run_with("monitor", &vars).expect(7, "probe after stop");
}

#[test]
fn bytes_that_are_not_text_never_abort_and_are_never_shown() {
    let ns = netns_with_eth0("x-utf8");
    let rsc = Rsc::new(&ns, "anchor", &[("ip", "10.17.1.18"), ("nic", "lo")]);
    let before = ns.addresses("lo");
    for (param, bytes) in [
        ("ip", b"10.17.1.18\xff\xfesekrit".as_slice()),
        ("nic", b"lo\xffsekrit".as_slice()),
        ("cidr_netmask", b"3\xff2sekrit".as_slice()),
        ("arp_count", b"\xffsekrit".as_slice()),
    ] {
        let var = format!("OCF_RESKEY_{param}");
        let raw: [(&str, &[u8]); 1] = [(&var, bytes)];
        for (action, code) in [
            ("stop", 0),
            ("monitor", 7),
            ("start", 6),
            ("validate-all", 6),
        ] {
            let what = format!("{action} with {param} not UTF-8");
            let r = run_bytes(&rsc, action, &raw);
            r.expect(code, &what);
            if code == 6 {
                r.reason(contains(format!("parameter '{param}'")));
            }
            for (name, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
                assert!(!text.contains("sekrit"), "{what}: {name} shows it:\n{text}");
            }
        }
        // Nor without the cluster's instance name (the state is then named by the parameters).
        let nameless: [(&str, &[u8]); 2] = [(&var, bytes), ("OCF_RESOURCE_INSTANCE", b"")];
        run_bytes(&rsc, "monitor", &nameless).expect(7, &format!("probe, {param}, no name"));
        run_bytes(&rsc, "stop", &nameless).expect(0, &format!("stop, {param}, no name"));
    }
    assert_eq!(ns.addresses("lo"), before);
    assert!(rsc.records().is_empty(), "{:?}", rsc.records());
    // A variable that is not ours, with bytes that are not text: the life cycle as ever.
    let foreign: [(&str, &[u8]); 1] = [("FOO", b"x\xffsekrit")];
    run_bytes(&rsc, "start", &foreign).expect(0, "start with a foreign variable not UTF-8");
    run_bytes(&rsc, "monitor", &foreign).expect(0, "probe");
    run_bytes(&rsc, "stop", &foreign).expect(0, "stop");
    assert_eq!(ns.addresses("lo"), before);
}

#[test]
fn a_link_at_the_temporary_record_is_never_written_through() {
    let ns = Netns::new("x-tmp");
    let rsc = Rsc::new(&ns, "anchor", &[("ip", "10.17.1.18"), ("nic", "lo")]);
    let elsewhere = support::StateDir::new();
    let victim = elsewhere.path().join("victim");
    std::fs::write(&victim, "root:x:0:0\n").unwrap();
    std::os::unix::fs::symlink(&victim, planted(&rsc, "started.tmp")).unwrap();
    rsc.start().expect(0, "start with a link at started.tmp");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root:x:0:0\n");
    assert!(rsc.claims(), "{:?}", rsc.record());
    rsc.monitor().expect(0, "monitor");
    rsc.stop().expect(0, "stop");
    assert!(!ns.addresses("lo").contains(&"10.17.1.18/32".to_string()));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root:x:0:0\n");
}

#[test]
fn a_link_at_the_lock_is_never_followed() {
    let ns = Netns::new("x-lock");
    let rsc = Rsc::new(&ns, "anchor", &[("ip", "10.17.1.18"), ("nic", "lo")]);
    let elsewhere = support::StateDir::new();
    let target = elsewhere.path().join("made-elsewhere");
    std::os::unix::fs::symlink(&target, planted(&rsc, "lock")).unwrap();
    let before = ns.addresses("lo");
    rsc.start()
        .expect(1, "start with a link at the lock")
        .reason(contains("cannot open lock"));
    assert!(!target.exists(), "the lock was created through the link");
    assert_eq!(ns.addresses("lo"), before, "start went on without its lock");
    rsc.probe().expect(7, "probe");
    rsc.stop().expect(0, "stop with nothing started");
    assert!(!target.exists());
    // A link to an existing file: not written either.
    std::fs::write(&target, "keep\n").unwrap();
    rsc.start()
        .expect(1, "start with a link at the lock to a file");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep\n");
}

#[test]
fn a_state_directory_others_may_write_is_refused() {
    let ns = Netns::new("x-perm");
    let rsc = Rsc::new(&ns, "anchor", &[("ip", "10.17.1.18"), ("nic", "lo")]);
    rsc.start().expect(0, "start");
    let state = rsc.state.path().join("cloudha");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    for (what, run) in [
        ("probe", rsc.probe()),
        ("monitor", rsc.monitor()),
        ("start", rsc.start()),
        ("stop", rsc.stop()),
    ] {
        run.expect(4, &format!("{what} with a world-writable state directory"))
            .reason(contains("writable by no one else"));
    }
    // Refused, not acted on: the address stays until the directory is right again.
    assert!(ns.addresses("lo").contains(&"10.17.1.18/32".to_string()));
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o750)).unwrap();
    rsc.stop().expect(0, "stop");
    assert!(!ns.addresses("lo").contains(&"10.17.1.18/32".to_string()));
}

#[test]
fn command_lines_that_cannot_run_are_ocf_answers() {
    let ns = Netns::new("x-args");
    let state = support::StateDir::new();
    let rsctmp = state.path().display().to_string();
    let vars = [
        ("HA_RSCTMP", rsctmp.as_str()),
        ("OCF_RESKEY_ip", "10.17.1.18"),
        ("OCF_RESKEY_nic", "lo"),
    ];
    let run = |args: &[&str]| run_agent_args(&agent_bin("anchorip"), args, &vars, Some(&ns));
    run(&["--timeout", "-1", "start"])
        .expect(6, "--timeout -1")
        .reason(contains("timeout"));
    run(&[])
        .expect(3, "no action")
        .reason(contains("no action given"));
    run(&["start", "extra"])
        .expect(2, "start extra")
        .reason(contains("'extra'"));
    assert!(ns.addresses("lo").iter().all(|a| !a.starts_with("10.17.")));
    assert!(!state.path().join("cloudha").exists());
}
