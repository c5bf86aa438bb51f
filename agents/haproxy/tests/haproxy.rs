//! The haproxy agent against the real HAProxy from Debian, driven as Pacemaker drives it:
//! lifecycle, idempotency, bad input, reloads under load, crashes, draining, degraded backends,
//! ocf-tester. Everything listens on loopback ports the kernel hands out.

mod common;

use common::*;
use std::time::{Duration, Instant};

#[test]
fn metadata_matches_and_validates() {
    cloudha_tests::check_metadata("haproxy");
}

#[test]
fn start_monitor_reload_stop_and_idempotency() {
    let b = Backend::start();
    let fe = free_port();
    let lb = Lb::new("life", &config(fe, &[b.port]));

    lb.probe().expect(7, "probe before start");
    lb.run("stop").expect(0, "stop before start");
    lb.run("validate-all").expect(0, "validate-all");
    lb.run_with("validate-all", &[("OCF_CHECK_LEVEL", "10")])
        .expect(0, "validate-all level 10");

    lb.run("start").expect(0, "start");
    let master = lb.master_pid();
    lb.run("start").expect(0, "start again");
    assert_eq!(
        lb.master_pid(),
        master,
        "a second start must not start another"
    );
    assert!(get(fe, "/", Duration::from_secs(5)).is_ok());
    lb.probe().expect(0, "probe while running");
    lb.monitor(0).expect(0, "monitor depth 0");
    lb.monitor(10).expect(0, "monitor depth 10");
    assert!(
        eventually(Duration::from_secs(5), || lb.monitor(20).code == 0),
        "depth 20 with the backend up: {:?}",
        lb.monitor(20)
    );
    let url = format!("http://127.0.0.1:{fe}/");
    lb.run_with(
        "monitor",
        &[
            ("OCF_CHECK_LEVEL", "20"),
            ("OCF_RESKEY_CRM_meta_interval", "10000"),
            ("OCF_RESKEY_check_url", &url),
        ],
    )
    .expect(0, "depth 20 with check_url");
    // The agent started it detached: the master is a session leader of its own.
    let sid = nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(master as i32))).expect("sid");
    assert_ne!(sid, nix::unistd::getsid(None).expect("own sid"));

    let worker = lb.worker_pid();
    let r = lb.run("reload");
    r.expect(0, "reload");
    assert_ne!(lb.worker_pid(), worker, "reload must bring a new worker");
    assert_eq!(lb.master_pid(), master, "the master stays");
    assert!(get(fe, "/", Duration::from_secs(5)).is_ok());

    lb.run("stop").expect(0, "stop");
    assert!(lb.processes().is_empty(), "left: {:?}", lb.processes());
    assert!(!lb.pidfile().exists(), "pidfile left");
    assert!(!lb.socket().exists(), "socket left");
    lb.monitor(0).expect(7, "monitor after stop");
    lb.probe().expect(7, "probe after stop");
    lb.run("stop").expect(0, "stop again");
    lb.run("reload").expect(7, "reload when stopped");

    // Stop of a stopped instance needs no configuration file.
    std::fs::remove_file(lb.config_path()).expect("rm config");
    lb.run("stop").expect(0, "stop with the config missing");
    lb.probe().expect(7, "probe with the config missing");
}

#[test]
fn bad_input_gets_the_right_code_and_reason() {
    let fe = free_port();
    let mut lb = Lb::new("bad", &config(fe, &[free_port()]));

    // A missing configuration file: 5, naming the parameter and the file.
    let missing = lb.dir.path().join("nope.cfg").display().to_string();
    let r = lb.run_with("start", &[("OCF_RESKEY_config", &missing)]);
    r.expect(5, "missing config");
    let reason = r.exit_reason().expect("reason");
    assert!(
        reason.contains("'config'") && reason.contains("nope.cfg"),
        "{reason}"
    );
    assert_eq!(r.exit_reason_count(), 1);
    // The old shell agent's name works the same.
    let r = lb.run_with(
        "validate-all",
        &[
            ("OCF_RESKEY_config", ""),
            ("OCF_RESKEY_conffile", &missing),
            ("OCF_CHECK_LEVEL", "10"),
        ],
    );
    r.expect(5, "missing conffile");

    // A configuration this user cannot read: 4 (run as nobody; root reads everything).
    {
        use std::os::unix::fs::PermissionsExt;
        let private = lb.dir.path().join("private.cfg");
        std::fs::write(&private, config(fe, &[free_port()])).expect("write");
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let private = private.display().to_string();
        let nobody_state = lb.dir.path().join("nobody").display().to_string();
        cloudha_tests::require_program("/usr/bin/setpriv");
        let r = lb.run_wrapped(
            std::path::Path::new("/usr/bin/setpriv"),
            &["--reuid=65534", "--regid=65534", "--clear-groups"],
            "start",
            &[
                ("OCF_RESKEY_config", &private),
                ("HA_RSCTMP", &nobody_state),
            ],
        );
        r.expect(4, "unreadable config");
        assert!(r.exit_reason().expect("reason").contains("private.cfg"));
    }

    // A configuration that fails the check: 5, HAProxy's first ALERT is the reason.
    lb.write_config(&format!(
        "{}    bogus_keyword here\n",
        config(fe, &[free_port()])
    ));
    let r = lb.run("start");
    r.expect(5, "config failing the check");
    let reason = r.exit_reason().expect("reason");
    assert!(reason.contains("bogus_keyword"), "{reason}");
    let r = lb.run_with("validate-all", &[("OCF_CHECK_LEVEL", "10")]);
    r.expect(5, "validate-all 10 on a bad config");
    lb.run("validate-all")
        .expect(0, "validate-all 0 does not read the file");
    lb.write_config(&config(fe, &[free_port()]));

    // A missing binary: 5 on start; a probe still says 7.
    let r = lb.run_with("start", &[("OCF_RESKEY_binpath", "/usr/sbin/no-haproxy")]);
    r.expect(5, "missing binary");
    assert!(r.exit_reason().expect("reason").contains("no-haproxy"));
    let r = lb.run_with("monitor", &[("OCF_RESKEY_binary", "/usr/sbin/no-haproxy")]);
    r.expect(7, "probe with the binary missing");

    // Parameters wrong everywhere: 6.
    let r = lb.run_with("start", &[("OCF_RESKEY_config", "relative.cfg")]);
    r.expect(6, "relative config");
    let r = lb.run_with("validate-all", &[("OCF_RESKEY_extraconf", "-L 'node")]);
    r.expect(6, "unbalanced extra_args");
    assert!(r.exit_reason().expect("reason").contains("extraconf"));
    let r = lb.run_with("validate-all", &[("OCF_RESKEY_drain_time", "soon")]);
    r.expect(6, "drain_time not an integer");

    // The frontend's port is taken by another program: the reason names the address.
    let holder = std::net::TcpListener::bind(("127.0.0.1", fe)).expect("hold the port");
    let r = lb.run("start");
    r.expect(1, "port taken");
    let reason = r.exit_reason().expect("reason");
    assert!(
        reason.contains(&format!("127.0.0.1:{fe}")) && reason.contains("Address already in use"),
        "{reason}"
    );
    // The holder is named: this test process.
    assert!(
        reason.contains(&format!("port {fe} is held by"))
            && reason.contains(&format!("(pid {})", std::process::id())),
        "{reason}"
    );
    assert!(
        lb.processes().is_empty(),
        "a failed start left {:?}",
        lb.processes()
    );
    lb.probe().expect(7, "probe after a failed start");
    drop(holder);
    lb.run("start").expect(0, "start once the port is free");

    // extra_args reach HAProxy as words, untouched by any shell.
    let r = lb.run("stop");
    r.expect(0, "stop");
    lb.set("OCF_RESKEY_extra_args", "-L 'peer name' -dR");
    lb.run("start").expect(0, "start with extra_args");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", lb.master_pid())).expect("cmdline");
    let argv: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    assert!(
        argv.contains(&&b"peer name"[..]),
        "{:?}",
        String::from_utf8_lossy(&cmdline)
    );
    lb.run("stop").expect(0, "stop");
}

#[test]
fn parameters_wrong_everywhere_are_6_naming_the_parameter_as_written() {
    use predicates::prelude::*;
    use predicates::str::{contains, starts_with};
    let fe = free_port();
    let lb = Lb::new("params", &config(fe, &[free_port()]));
    let long_socket = format!("/tmp/{}.sock", "s".repeat(100));
    for action in ["validate-all", "start"] {
        let run = |vars: &[(&str, &str)]| lb.run_with(action, vars);
        run(&[("OCF_RESKEY_master_socket", &long_socket)])
            .expect(6, "a master_socket longer than 107 bytes")
            .reason(starts_with("parameter 'master_socket':").and(contains("107 bytes")));
        run(&[("OCF_RESKEY_drain_time", "-5")])
            .expect(6, "a negative drain_time")
            .reason(starts_with("parameter 'drain_time': '-5'"));
        for bad in ["-1", "abc"] {
            run(&[("OCF_RESKEY_stop_grace", bad)])
                .expect(6, "a stop_grace that is not a whole number of seconds")
                .reason(starts_with(
                    format!("parameter 'stop_grace': '{bad}' is not").as_str(),
                ));
        }
        run(&[("OCF_RESKEY_check_url", "https://127.0.0.1/health")])
            .expect(6, "an https check_url")
            .reason(starts_with("parameter 'check_url':").and(contains("https")));
        run(&[("OCF_RESKEY_config", "relative.cfg")])
            .expect(6, "a relative config")
            .reason(starts_with(
                "parameter 'config': 'relative.cfg' is not an absolute path",
            ));
        run(&[("OCF_RESKEY_binary", "sbin/haproxy")])
            .expect(6, "a relative binary")
            .reason(starts_with(
                "parameter 'binary': 'sbin/haproxy' is not an absolute path",
            ));
        // The old shell agent's names are the names the reason uses.
        run(&[
            ("OCF_RESKEY_config", ""),
            ("OCF_RESKEY_conffile", "relative"),
        ])
        .expect(6, "a relative conffile")
        .reason(starts_with("parameter 'conffile': 'relative'"));
        run(&[("OCF_RESKEY_binpath", "haproxy")])
            .expect(6, "a relative binpath")
            .reason(contains("'binpath'"));
    }
    // Nothing of that kind keeps a stop from succeeding or a probe from answering.
    for vars in [
        [("OCF_RESKEY_master_socket", long_socket.as_str())],
        [("OCF_RESKEY_conffile", "relative")],
    ] {
        lb.run_with("stop", &vars)
            .expect(0, "stop with a bad parameter");
        lb.run_with("monitor", &vars)
            .expect(7, "probe with a bad parameter");
    }
    assert!(lb.processes().is_empty());
}

#[test]
fn twenty_reloads_under_load_fail_no_request() {
    let (b1, b2) = (Backend::start(), Backend::start());
    let fe = free_port();
    let lb = Lb::new("reloads", &config(fe, &[b1.port, b2.port]));
    lb.run("start").expect(0, "start");
    let load = Load::start(fe, 4);
    assert!(eventually(Duration::from_secs(5), || load.ok() > 50));
    let mut workers = vec![lb.worker_pid()];
    for i in 0..20 {
        let r = lb.run("reload");
        r.expect(0, &format!("reload {i}"));
        let w = lb.worker_pid();
        assert!(!workers.contains(&w), "reload {i} brought no new worker");
        workers.push(w);
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = load.ok();
    assert!(eventually(Duration::from_secs(5), || load.ok() > before + 50));
    let ok = load.finish_without_failures("during the reloads");
    assert!(ok > 200, "only {ok} requests were made");
    lb.monitor(10).expect(0, "monitor after the reloads");
    lb.run("stop").expect(0, "stop");
}

#[test]
fn a_failed_reload_keeps_the_old_worker_serving() {
    let b = Backend::start();
    let fe = free_port();
    let good = config(fe, &[b.port]);
    let lb = Lb::new("badreload", &good);
    lb.run("start").expect(0, "start");
    let worker = lb.worker_pid();
    let load = Load::start(fe, 3);
    assert!(eventually(Duration::from_secs(5), || load.ok() > 20));

    // Fails the check: refused before the master is asked.
    lb.write_config(&format!("{good}    this_is_not_haproxy\n"));
    let r = lb.run("reload");
    r.expect(5, "a broken config must not reload");
    assert!(r
        .exit_reason()
        .expect("reason")
        .contains("this_is_not_haproxy"));
    assert_eq!(lb.worker_pid(), worker);
    lb.monitor(10)
        .expect(0, "nothing was tried: no failed reload");

    let before = load.ok();
    assert!(eventually(Duration::from_secs(5), || load.ok() > before + 20));
    load.finish_without_failures("around a reload that fails the check");

    // Passes the check but fails in the master (a port another program holds). HAProxy pauses
    // the old worker's listeners for the new process and leaves them paused when it fails; the
    // agent resumes them, so the old worker serves again once reload returns.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    lb.write_config(&format!(
        "{good}\nfrontend extra\n    bind 127.0.0.1:{port}\n    default_backend be\n"
    ));
    let r = lb.run("reload");
    r.expect(1, "reload the master reports failed");
    assert!(r.exit_reason().expect("reason").contains("failed"));
    assert_eq!(lb.worker_pid(), worker, "the old worker keeps serving");
    lb.monitor(10).expect(190, "depth 10 after a failed reload");
    let load = Load::start(fe, 3);
    assert!(eventually(Duration::from_secs(5), || load.ok() > 50));
    load.finish_without_failures("after the failed reload");

    drop(taken);
    lb.write_config(&good);
    lb.run("reload").expect(0, "reload of the repaired config");
    lb.monitor(10).expect(0, "depth 10 after a good reload");
    lb.run("stop").expect(0, "stop");
}

fn kill9(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9");
}

#[test]
fn killed_worker_then_killed_master_are_noticed_and_start_recovers() {
    let b = Backend::start();
    let fe = free_port();
    let lb = Lb::new("crash", &config(fe, &[b.port]));
    lb.run("start").expect(0, "start");

    // kill -9 of the worker: HAProxy's master exits with it; the monitor reports a failure (1),
    // not a clean stop (7).
    kill9(lb.worker_pid());
    assert!(
        eventually(Duration::from_secs(5), || lb.monitor(10).code == 1),
        "depth 10 after the worker was killed: {:?}",
        lb.monitor(10)
    );
    assert!(eventually(Duration::from_secs(5), || lb.monitor(0).code == 1));
    let r = lb.monitor(0);
    assert!(
        r.exit_reason().expect("reason").contains("master"),
        "{:?}",
        r
    );
    lb.probe().expect(1, "a probe sees the failure too");
    lb.run("start").expect(0, "start recovers");
    lb.monitor(10).expect(0, "depth 10 after recovery");
    assert!(get(fe, "/", Duration::from_secs(5)).is_ok());

    // kill -9 of the master.
    kill9(lb.master_pid());
    assert!(eventually(Duration::from_secs(5), || lb.monitor(0).code == 1));
    lb.run("start").expect(0, "start recovers");
    lb.monitor(10).expect(0, "depth 10 after recovery");
    assert!(
        eventually(Duration::from_secs(5), || get(
            fe,
            "/",
            Duration::from_secs(5)
        )
        .is_ok()),
        "serving after recovery"
    );
    lb.run("stop").expect(0, "stop");
    assert!(lb.processes().is_empty());
}

#[test]
fn stop_lets_requests_finish_that_fit_the_drain_time() {
    let b = Backend::start();
    let fe = free_port();
    let mut lb = Lb::new("drain", &config(fe, &[b.port]));
    lb.set("OCF_RESKEY_drain_time", "10");
    lb.run("start").expect(0, "start");

    let slow: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(move || get(fe, "/slow/2000", Duration::from_secs(15))))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    lb.run("stop").expect(0, "stop");
    let took = t.elapsed();
    for s in slow {
        let r = s.join().expect("client");
        assert!(r.is_ok(), "an in-flight request failed: {r:?}");
    }
    assert!(
        took >= Duration::from_millis(1000),
        "stop did not wait for the requests ({took:?})"
    );
    assert!(lb.processes().is_empty());
    // New connections are refused once stopped.
    assert!(get(fe, "/", Duration::from_secs(2)).is_err());
}

#[test]
fn stop_returns_within_its_deadline_when_requests_outlast_the_drain() {
    let b = Backend::start();
    let fe = free_port();
    let mut lb = Lb::new("drainlong", &config(fe, &[b.port]));
    lb.set("OCF_RESKEY_drain_time", "60");
    lb.run("start").expect(0, "start");
    let slow = std::thread::spawn(move || get(fe, "/slow/20000", Duration::from_secs(30)));
    std::thread::sleep(Duration::from_millis(300));
    // drain_time is longer than the stop timeout: the timeout bounds it.
    let t = Instant::now();
    let r = lb.run_with("stop", &[("OCF_RESKEY_CRM_meta_timeout", "6000")]);
    let took = t.elapsed();
    r.expect(0, "stop");
    assert!(
        took < Duration::from_secs(6),
        "stop took {took:?}, past its 6 s timeout"
    );
    assert!(lb.processes().is_empty(), "left: {:?}", lb.processes());
    assert!(
        slow.join().expect("client").is_err(),
        "the long request cannot have finished"
    );
}

/// Clients making new connections, each every ~20 ms, as clients of a floating IP that still
/// points at this node do while the IP moves away. Two of them, so that one stalled by a busy
/// machine for longer than the quiet window does not look like the end of the arrivals.
fn arriving(fe: u16) -> Load {
    let load = Load::paced(fe, 2, Duration::from_millis(20));
    assert!(
        eventually(Duration::from_secs(5), || load.ok() > 5),
        "the client never got through"
    );
    load
}

#[test]
fn stop_keeps_accepting_while_new_connections_arrive() {
    let b = Backend::start();
    let fe = free_port();
    let mut lb = Lb::new("grace", &config(fe, &[b.port]));
    lb.set("OCF_RESKEY_stop_grace", "3");
    lb.set("OCF_RESKEY_drain_time", "5");
    lb.run("start").expect(0, "start");
    let client = arriving(fe);
    let (stop, during, failures) = std::thread::scope(|s| {
        let before = client.ok();
        let stop = s.spawn(|| lb.run("stop"));
        std::thread::sleep(Duration::from_secs(1));
        let (ok, failures) = client.finish();
        (stop.join().expect("stop"), ok - before, failures)
    });
    stop.expect(0, "stop");
    assert!(
        failures.is_empty(),
        "connections failed while the stop's grace should accept them: {:?}",
        &failures[..failures.len().min(5)]
    );
    assert!(
        stop.took >= Duration::from_secs(1),
        "the stop did not wait for the client ({:?})",
        stop.took
    );
    assert!(
        stop.stderr.contains("new connection(s) during the grace")
            && stop.stderr.contains("quiet since"),
        "{}",
        stop.stderr
    );
    assert!(!stop.stderr.contains("WARN"), "{}", stop.stderr);
    assert!(during > 10, "only {during} requests while the stop ran");
    assert!(lb.processes().is_empty(), "left: {:?}", lb.processes());
    assert!(get(fe, "/", Duration::from_secs(2)).is_err());
}

#[test]
fn stop_grace_0_closes_the_listeners_at_once() {
    let b = Backend::start();
    let fe = free_port();
    let mut lb = Lb::new("at-once", &config(fe, &[b.port]));
    lb.set("OCF_RESKEY_stop_grace", "0");
    lb.set("OCF_RESKEY_drain_time", "10");
    lb.run("start").expect(0, "start");
    // An open request keeps HAProxy draining for a while after the listeners close.
    let slow = std::thread::spawn(move || get(fe, "/slow/2500", Duration::from_secs(15)));
    let client = arriving(fe);
    let stop = std::thread::scope(|s| {
        let stop = s.spawn(|| lb.run("stop"));
        assert!(
            eventually(Duration::from_secs(2), || !client.failures().is_empty()),
            "no connection was refused while HAProxy drained"
        );
        stop.join().expect("stop")
    });
    let (_, failures) = client.finish();
    stop.expect(0, "stop");
    assert!(
        failures[0].contains("refused"),
        "not a refusal: {:?}",
        failures[0]
    );
    assert!(
        slow.join().expect("slow client").is_ok(),
        "the open request was cut"
    );
    assert!(!stop.stderr.contains("grace"), "{}", stop.stderr);
    assert!(lb.processes().is_empty(), "left: {:?}", lb.processes());
}

#[test]
fn stop_without_new_connections_is_not_held_for_stop_grace() {
    let b = Backend::start();
    let fe = free_port();
    let mut lb = Lb::new("quiet", &config(fe, &[b.port]));
    lb.set("OCF_RESKEY_CRM_meta_timeout", "60000");
    lb.run("start").expect(0, "start");
    assert!(get(fe, "/", Duration::from_secs(5)).is_ok());
    let r = lb.run_with("stop", &[("OCF_RESKEY_stop_grace", "30")]);
    r.expect(0, "stop");
    assert!(
        r.took < Duration::from_secs(3),
        "a stop with no new connections took {:?}",
        r.took
    );
    assert!(r.stderr.contains("no new connections"), "{}", r.stderr);
    assert!(lb.processes().is_empty(), "left: {:?}", lb.processes());

    // A bad stop_grace does not keep a stop from working: the default grace applies.
    lb.run("start").expect(0, "start again");
    let r = lb.run_with("stop", &[("OCF_RESKEY_stop_grace", "abc")]);
    r.expect(0, "stop with a bad stop_grace");
    assert!(r.stderr.contains("no new connections"), "{}", r.stderr);
    assert!(lb.processes().is_empty(), "left: {:?}", lb.processes());

    // A dead HAProxy (the worker killed takes its master down): no grace, no wait.
    lb.run("start").expect(0, "start a third time");
    kill9(lb.worker_pid());
    assert!(eventually(Duration::from_secs(5), || lb.monitor(0).code == 1));
    let r = lb.run_with("stop", &[("OCF_RESKEY_stop_grace", "30")]);
    r.expect(0, "stop of a failed instance");
    assert!(
        r.took < Duration::from_secs(3),
        "the stop of a dead HAProxy took {:?}",
        r.took
    );
    assert!(r.stderr.contains("no grace"), "{}", r.stderr);
}

#[test]
fn a_worker_that_does_not_answer_gets_no_grace() {
    let b = Backend::start();
    let fe = free_port();
    let mut lb = Lb::new("hung", &config(fe, &[b.port]));
    lb.set("OCF_RESKEY_stop_grace", "30");
    lb.set("OCF_RESKEY_drain_time", "1");
    lb.run("start").expect(0, "start");
    // A stopped worker: the master answers `show proc`, never the worker's `show info`.
    let worker = nix::unistd::Pid::from_raw(lb.worker_pid() as i32);
    nix::sys::signal::kill(worker, nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP");
    let r = lb.run("stop");
    r.expect(0, "stop of a hung worker");
    assert!(
        r.stderr.contains("no grace before the soft stop")
            && r.stderr.contains("gave no answer within 500 ms"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("new connection(s)"), "{}", r.stderr);
    // No grace (30 s), only the drain (1 s) and the terminate (SIGTERM, 1 s, SIGKILL).
    assert!(r.took < Duration::from_secs(10), "took {:?}", r.took);
    assert!(lb.processes().is_empty(), "left: {:?}", lb.processes());
}

#[test]
fn stop_grace_bounds_a_stop_while_connections_never_stop() {
    let b = Backend::start();
    let fe = free_port();
    let mut lb = Lb::new("endless", &config(fe, &[b.port]));
    lb.set("OCF_RESKEY_stop_grace", "2");
    lb.run("start").expect(0, "start");
    let client = arriving(fe);
    let stop = lb.run("stop");
    let (ok, _) = client.finish();
    stop.expect(0, "stop");
    assert!(
        stop.took >= Duration::from_millis(1500) && stop.took < Duration::from_secs(10),
        "a stop with stop_grace=2 under endless arrivals took {:?}",
        stop.took
    );
    assert!(stop.stderr.contains("(bound 2000 ms)"), "{}", stop.stderr);
    assert!(ok > 10, "only {ok} requests");
    assert!(lb.processes().is_empty(), "left: {:?}", lb.processes());

    // A stop_grace longer than the stop timeout allows: the grace takes at most half of what the
    // budget (3.6 s of 4 s) leaves after the reserve to terminate (0.9 s), and the stop returns
    // within its timeout.
    lb.run("start").expect(0, "start again");
    let client = arriving(fe);
    let stop = lb.run_with(
        "stop",
        &[
            ("OCF_RESKEY_stop_grace", "30"),
            ("OCF_RESKEY_CRM_meta_timeout", "4000"),
        ],
    );
    client.finish();
    stop.expect(0, "stop with a short timeout");
    let bound: u64 = stop
        .stderr
        .split("(bound ")
        .nth(1)
        .and_then(|rest| rest.split(" ms)").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no bound in: {}", stop.stderr));
    assert!((1000..=1350).contains(&bound), "{}", stop.stderr);
    assert!(stop.took < Duration::from_secs(4), "took {:?}", stop.took);
    assert!(lb.processes().is_empty(), "left: {:?}", lb.processes());
}

#[test]
fn a_backend_with_all_servers_down_is_degraded_at_depth_20() {
    let fe = free_port();
    let lb = Lb::new("down", &config(fe, &[free_port(), free_port()]));
    lb.run("start").expect(0, "start");
    assert!(
        eventually(Duration::from_secs(5), || lb.monitor(20).code == 190),
        "depth 20: {:?}",
        lb.monitor(20)
    );
    lb.monitor(10)
        .expect(0, "depth 10 does not look at backends");
    lb.monitor(0).expect(0, "depth 0 does not look at backends");
    lb.run("stop").expect(0, "stop");
}

#[test]
fn another_haproxy_is_never_adopted_or_touched() {
    let b = Backend::start();
    let fe = free_port();
    let lb = Lb::new("foreign", &config(fe, &[b.port]));
    // A HAProxy with the same configuration that the agent did not start.
    let foreign_sock = lb.dir.path().join("foreign.sock");
    let foreign_pid = lb.dir.path().join("foreign.pid");
    let st = std::process::Command::new("/usr/sbin/haproxy")
        .arg("-W")
        .arg("-D")
        .arg("-S")
        .arg(&foreign_sock)
        .arg("-p")
        .arg(&foreign_pid)
        .arg("-f")
        .arg(lb.config_path())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("foreign haproxy");
    assert!(st.success());
    // Its master and its worker.
    let foreign_procs = || processes_with(&foreign_sock.display().to_string());
    assert!(eventually(Duration::from_secs(5), || foreign_procs().len() == 2));
    let foreign = foreign_procs();

    lb.probe()
        .expect(7, "a foreign HAProxy is not this resource");
    lb.run("stop").expect(0, "stop with nothing of ours");
    lb.run("start").expect(0, "start beside it");
    // Our pidfile pointing at the foreign master (a recycled pid) is not believed.
    let ours = lb.master_pid();
    let foreign_master: u32 = std::fs::read_to_string(&foreign_pid)
        .expect("foreign pid")
        .trim()
        .parse()
        .expect("pid");
    std::fs::write(lb.pidfile(), format!("{foreign_master}\n")).expect("pidfile");
    lb.monitor(0).expect(1, "a pid that is not ours");
    std::fs::write(lb.pidfile(), format!("{ours}\n")).expect("pidfile");
    lb.monitor(0).expect(0, "our master again");
    lb.run("stop").expect(0, "stop");
    assert!(lb.processes().is_empty());
    assert_eq!(foreign_procs(), foreign, "the foreign HAProxy was touched");
    for p in foreign {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[test]
fn ocf_tester_passes() {
    let b = Backend::start();
    let fe = free_port();
    let lb = Lb::new("tester", &config(fe, &[b.port]));
    let installed = cloudha_tests::Installed::new();
    let config = lb.config_path().display().to_string();
    let name = format!("haproxy-tester-{}", std::process::id());
    let (ok, out) = cloudha_tests::ocf_tester(
        &installed.agent("cloudha", "haproxy"),
        &name,
        &[("config", &config)],
        None,
    );
    assert!(ok, "ocf-tester:\n{out}");
    assert!(
        processes_with(&config).is_empty(),
        "ocf-tester's last stop left HAProxy running"
    );
}

#[test]
fn the_daemon_keeps_no_descriptor_the_agent_inherited() {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let b = Backend::start();
    let fe = free_port();
    let lb = Lb::new("fds", &config(fe, &[b.port]));
    // A pipe handed down to the agent alone as fd 40, as a caller's pipe may be: a FIFO whose
    // write end a shell opens as fd 40 just before it execs the agent (nothing else holds it).
    let fifo = lb.dir.path().join("inherited.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("fifo");
    let read_end = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(&fifo)
        .expect("read end");
    let script = format!("exec 40>'{}'; exec \"$0\" \"$1\"", fifo.display());
    let r = lb.run_wrapped(
        std::path::Path::new("/bin/bash"),
        &["-c", &script],
        "start",
        &[],
    );
    r.expect(0, "start");
    // EOF (0) only when no process holds the write end any more; EAGAIN while HAProxy keeps it.
    let mut buf = [0u8; 8];
    let got = nix::unistd::read(read_end.as_raw_fd(), &mut buf);
    assert_eq!(got, Ok(0), "HAProxy kept the agent's inherited pipe open");
    lb.run("stop").expect(0, "stop");
}

#[test]
fn an_anonymous_clone_is_one_instance_whatever_its_number() {
    let b = Backend::start();
    let fe = free_port();
    let lb = Lb::new("clone", &config(fe, &[b.port]));
    let as_clone = |n: &str| {
        (
            format!("{}:{n}", lb.instance),
            vec![
                ("OCF_RESKEY_CRM_meta_clone", n.to_string()),
                ("OCF_RESKEY_CRM_meta_clone_max", "2".to_string()),
                ("OCF_RESKEY_CRM_meta_globally_unique", "false".to_string()),
            ],
        )
    };
    let run = |action: &str, n: &str, interval: &str| {
        let (instance, meta) = as_clone(n);
        let mut vars: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (*k, v.as_str())).collect();
        vars.push(("OCF_RESOURCE_INSTANCE", &instance));
        vars.push(("OCF_RESKEY_CRM_meta_interval", interval));
        lb.run_with(action, &vars)
    };
    run("start", "0", "0").expect(0, "start as :0");
    run("monitor", "1", "10000").expect(0, "monitor as :1");
    // A person names it without the number.
    lb.monitor(10).expect(0, "monitor by the resource's name");
    run("stop", "1", "0").expect(0, "stop as :1");
    assert!(lb.processes().is_empty(), "left: {:?}", lb.processes());
    run("monitor", "0", "0").expect(7, "probe as :0");
}

#[test]
fn runs_inside_a_network_namespace_of_its_own() {
    // Every `ip netns exec` makes a new mount namespace over the same files: each action must
    // still recognise the HAProxy that start left, and nothing outside the namespace is used.
    let ns = cloudha_tests::Netns::new("hap");
    let lb = Lb::new("netns", &config(8080, &[8081]));
    let interval = [("OCF_RESKEY_CRM_meta_interval", "10000")];
    lb.run_in("start", &[], Some(&ns))
        .expect(0, "start in the namespace");
    lb.run_in("monitor", &interval, Some(&ns))
        .expect(0, "monitor");
    let depth10 = [
        ("OCF_RESKEY_CRM_meta_interval", "10000"),
        ("OCF_CHECK_LEVEL", "10"),
    ];
    lb.run_in("monitor", &depth10, Some(&ns))
        .expect(0, "depth 10");
    lb.run_in("reload", &[], Some(&ns)).expect(0, "reload");
    let curl = ns
        .command("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://127.0.0.1:8080/",
        ])
        .output()
        .expect("curl in the namespace");
    // No server behind it: HAProxy itself answers 503, proving it listens in the namespace.
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "503");
    lb.run_in("stop", &[], Some(&ns)).expect(0, "stop");
    assert!(lb.processes().is_empty(), "left: {:?}", lb.processes());
    lb.run_in("monitor", &interval, Some(&ns))
        .expect(7, "monitor after stop");
}
