//! The token stays secret: never in stdout, stderr, the log file or syslog fallback, exit reasons,
//! or the agent's argv, whatever the action and whatever fails. And the token file's rules.
#![allow(clippy::unwrap_used)] // a test's failure report is its panic

mod common;

use cloudha_tests::fakecloud::{Fault, Scope};
use common::{cloud, vultr, Cloud, A, B, TOKEN};
use predicates::str::contains;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

fn assert_clean(what: &str, text: &str) {
    assert!(!text.contains(TOKEN), "{what} carries the token:\n{text}");
    // Not even a recognisable part of it.
    assert!(
        !text.contains(&TOKEN[7..27]),
        "{what} carries part of the token:\n{text}"
    );
}

/// The actions `every_action` runs, in order.
const RUNS: [(&str, &[(&str, &str)]); 11] = [
    ("meta-data", &[]),
    ("validate-all", &[]),
    ("validate-all", &[("OCF_CHECK_LEVEL", "10")]),
    ("monitor", &[]),
    ("start", &[]),
    ("monitor", &[("OCF_RESKEY_CRM_meta_interval", "10000")]),
    ("monitor", &[]),
    ("stop", &[]),
    ("notify", &[]),
    ("reload", &[]),
    ("promote", &[]),
];

/// Every action of `RUNS`, each expected to answer its code of `codes`, with debug logging to a
/// file and to syslog (or stderr without a syslog daemon).
fn every_action(c: &Cloud, extra: &[(&str, &str)], label: &str, codes: [i32; 11]) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("ha-log");
    let debug = dir.path().join("ha-debug");
    let logging = [
        ("HA_debug", "1"),
        ("HA_LOGFILE", log.to_str().unwrap()),
        ("HA_DEBUGLOG", debug.to_str().unwrap()),
        ("HA_LOGFACILITY", "daemon"),
    ];
    for ((action, vars), code) in RUNS.iter().zip(codes) {
        let mut all: Vec<(&str, &str)> = logging.to_vec();
        all.extend_from_slice(extra);
        all.extend_from_slice(vars);
        let t = c.run(0, action, &all);
        let what = format!("{label}: {action} {vars:?}");
        t.expect(code, &what);
        assert_clean(&format!("{what} stdout"), &t.stdout);
        assert_clean(&format!("{what} stderr"), &t.stderr);
    }
    for f in [&log, &debug] {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        assert_clean(&format!("{label}: {}", f.display()), &text);
    }
    let debug_text = std::fs::read_to_string(&debug).unwrap_or_default();
    assert!(
        debug_text.contains("DEBUG"),
        "{label}: debug logging was on, yet no debug line was written"
    );
}

#[test]
fn the_token_is_never_printed() {
    require_root_for_files();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let file = file.display().to_string();

    // Fine weather, token as a parameter and as a file.
    // meta-data, validate-all (levels 0 and 10), probe, start, monitor, probe, stop, notify,
    // reload and promote (neither is implemented: 3).
    let fine = [0, 0, 0, 7, 0, 0, 0, 0, 0, 3, 3];
    every_action(
        &cloud(Some(B), &[A]),
        &[("OCF_RESKEY_CRM_meta_timeout", "3000")],
        "param",
        fine,
    );
    every_action(
        &cloud(Some(B), &[A]),
        &[
            ("OCF_RESKEY_api_token", ""),
            ("OCF_RESKEY_api_token_file", &file),
            ("OCF_RESKEY_CRM_meta_timeout", "3000"),
        ],
        "file",
        fine,
    );
    // Failures write the most words: a rejected token, a failing API.
    let c = cloud(Some(B), &[A]);
    c.fake.revoke_token(TOKEN);
    every_action(
        &c,
        &[("OCF_RESKEY_CRM_meta_timeout", "2000")],
        "401",
        [0, 0, 6, 7, 6, 7, 7, 0, 0, 3, 3],
    );
    let c = cloud(Some(B), &[A]);
    c.fake.inject(Fault::status(Scope::Api, 503));
    every_action(
        &c,
        &[("OCF_RESKEY_CRM_meta_timeout", "2000")],
        "503",
        [0, 0, 1, 7, 1, 7, 7, 0, 0, 3, 3],
    );
    // A token the API rejects because it is garbage is still not echoed.
    let c = cloud(Some(B), &[A]);
    every_action(
        &c,
        &[
            ("OCF_RESKEY_api_token", ""),
            ("OCF_RESKEY_do_token", TOKEN),
            ("OCF_RESKEY_CRM_meta_timeout", "2000"),
            ("OCF_RESKEY_ip", "not-an-ip"),
        ],
        "bad ip",
        [0, 6, 6, 7, 6, 7, 7, 0, 0, 3, 3],
    );
}

/// Vultr's key is a Bearer token too, and its errors are plain `error` texts: fine weather, a
/// rejected key, a failing API.
#[test]
fn the_vultr_key_is_never_printed() {
    require_root_for_files();
    let timeout = [("OCF_RESKEY_CRM_meta_timeout", "2000")];
    every_action(
        &vultr(Some(B), &[A]),
        &timeout,
        "vultr",
        [0, 0, 0, 7, 0, 0, 0, 0, 0, 3, 3],
    );
    let c = vultr(Some(B), &[A]);
    c.fake.revoke_token(TOKEN);
    every_action(&c, &timeout, "vultr 401", [0, 0, 6, 7, 6, 7, 7, 0, 0, 3, 3]);
    let c = vultr(Some(B), &[A]);
    c.fake.inject(Fault::status(Scope::Api, 503));
    every_action(&c, &timeout, "vultr 503", [0, 0, 1, 7, 1, 7, 7, 0, 0, 3, 3]);
}

fn require_root_for_files() {
    // Token files must belong to root (or to the agent's user): the test runs as root, as CI.
    cloudha_tests::require_root();
}

#[test]
fn the_token_is_not_in_the_agents_argv() {
    let c = cloud(Some(B), &[A]);
    c.fake.set_action_time(Duration::from_millis(1500));
    let mut cmd = std::process::Command::new(cloudha_tests::agent_bin("floatip"));
    cmd.arg("start").env_clear();
    for (k, v) in c.env(0) {
        cmd.env(k, v);
    }
    let started = std::time::Instant::now();
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", child.id())).unwrap();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert_eq!(args.len(), 2, "{args:?}");
    assert_eq!(args[1], "start");
    // No helper process either (a curl with the token on its command line, as the tutorial's).
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id()))
        .unwrap_or_default();
    assert!(
        children.trim().is_empty(),
        "the agent runs children: {children}"
    );
    let out = child.wait_with_output().unwrap();
    let run = cloudha_tests::AgentRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    };
    run.expect(0, "start, watched from outside");
    assert_clean("stderr", &run.stderr);
}

#[test]
fn token_file_rules() {
    require_root_for_files();
    let c = cloud(Some(B), &[A]);
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str, mode: u32| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p.display().to_string()
    };
    let ok = write("ok", &format!("{TOKEN}\n"), 0o600);
    let readable = write("readable", TOKEN, 0o644);
    let writable = write("writable", TOKEN, 0o666);
    let empty = write("empty", "\n", 0o600);
    let missing = dir.path().join("missing").display().to_string();
    let with = |file: &str, action: &str| {
        c.run(
            0,
            action,
            &[
                ("OCF_RESKEY_api_token", ""),
                ("OCF_RESKEY_api_token_file", file),
            ],
        )
    };
    with(&ok, "validate-all").expect(0, "a root-only file");
    let r = with(&readable, "validate-all");
    r.expect(0, "a world-readable file works");
    assert!(r.stderr.contains("readable by others"), "{}", r.stderr);
    with(&writable, "start")
        .expect(
            4,
            "a world-writable file is refused (a permission problem on this node)",
        )
        .reason(contains("writable by others"));
    with(&empty, "start").expect(5, "an empty file is missing on this node");
    with(&missing, "start").expect(5, "a missing file is missing on this node");
    assert!(c.fake.actions().is_empty());
    with(&ok, "start").expect(0, "start with the file");
    assert_eq!(c.fake.holder(common::IP), Some(A));
}

/// An HTTPS API with a self-signed certificate (openssl s_server) is refused: TLS is verified
/// with the system's roots, and a failed verification is a transient fault (1), never 6.
#[test]
fn tls_is_verified_with_the_system_roots() {
    use std::process::{Command, Stdio};
    cloudha_tests::require_program("/usr/bin/openssl");
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    cloudha_tests::sh(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
                "-addext",
                "basicConstraints=critical,CA:FALSE",
                "-keyout",
                key.to_str().unwrap(),
                "-out",
                cert.to_str().unwrap(),
            ])
            .stderr(Stdio::null()),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let up = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let c = cloud(Some(B), &[A]);
    let api = format!("https://127.0.0.1:{port}");
    let t = c.run(
        0,
        "validate-all",
        &[
            ("OCF_CHECK_LEVEL", "10"),
            ("OCF_RESKEY_api_url", &api),
            ("OCF_RESKEY_CRM_meta_timeout", "2000"),
        ],
    );
    let _ = server.kill();
    let _ = server.wait();
    assert!(up, "openssl s_server did not listen");
    t.expect(1, "a self-signed API certificate")
        .reason(contains("invalid peer certificate: UnknownIssuer"));
    assert_clean("exit reason", t.exit_reason().unwrap());
}
