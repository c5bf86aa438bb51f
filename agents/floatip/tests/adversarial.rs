//! Hostile inputs, end to end: parameter bytes that are not text, tokens that can never work,
//! huge values and files, state directories tampered with. Each test reproduces one hardening
//! item of floatip, through the one helper's `AgentRun::expect`.
#![allow(clippy::unwrap_used)] // a test's failure report is its panic

mod common;

use cloudha_tests::{agent_bin, AgentRun};
use common::{cloud, Cloud, A, B, IP};
use predicates::str::contains;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A variable whose value is any bytes.
type RawVar<'a> = (&'a str, &'a [u8]);
/// Variables as `Cloud::run` takes them.
type Vars<'a> = &'a [(&'a str, &'a str)];

/// Run `action` on node 0 of `c` as Pacemaker does, with `extra` variables given as raw bytes
/// (replacing node 0's; an empty value removes one), optionally under `wrapper` (a program and
/// its arguments that run the agent).
fn run_bytes(c: &Cloud, action: &str, extra: &[RawVar], wrapper: &[&str]) -> AgentRun {
    let mut env: Vec<(OsString, OsString)> = c
        .env(0)
        .into_iter()
        .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    for (k, v) in extra {
        if !v.is_empty() {
            env.push((k.into(), std::ffi::OsStr::from_bytes(v).to_os_string()));
        }
    }
    let bin = agent_bin("floatip");
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(&bin);
            c
        }
        None => Command::new(&bin),
    };
    cmd.arg(action)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("OCF_ROOT", "/usr/lib/ocf")
        .env("OCF_RA_VERSION_MAJOR", "1")
        .env("OCF_RA_VERSION_MINOR", "1")
        .envs(env)
        .stdin(Stdio::null());
    let t = Instant::now();
    let out = cmd.output().unwrap();
    AgentRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: t.elapsed(),
    }
}

fn assert_unsaid(run: &AgentRun, what: &str, secret: &str) {
    for (name, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        assert!(
            !text.contains(secret),
            "{what}: {name} shows {secret:?}:\n{text}"
        );
    }
}

/// A root-only file holding `content`.
fn token_file(dir: &Path, content: &[u8]) -> String {
    let p = dir.join("token");
    std::fs::write(&p, content).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p.display().to_string()
}

#[test]
fn a_token_that_is_not_text_is_never_shown_and_only_start_and_validate_refuse_it() {
    let c = cloud(Some(B), &[A]);
    for name in ["OCF_RESKEY_api_token", "OCF_RESKEY_do_token"] {
        let raw: &[RawVar] = &[
            ("OCF_RESKEY_api_token", b""),
            (name, b"sekrit\xff"),
            ("OCF_RESKEY_CRM_meta_timeout", b"4000"),
        ];
        let param = name.trim_start_matches("OCF_RESKEY_");
        for (action, code) in [
            ("stop", 0),
            ("monitor", 7),
            ("start", 6),
            ("validate-all", 6),
        ] {
            let what = format!("{action} with {param} not UTF-8");
            let r = run_bytes(&c, action, raw, &[]);
            r.expect(code, &what);
            if code == 6 {
                r.reason(contains(format!("parameter '{param}'")));
            }
            assert_unsaid(&r, &what, "sekrit");
        }
    }
    assert_eq!(c.fake.api_request_count(), 0);
}

#[test]
fn a_token_with_a_control_character_is_refused_at_once_without_a_request() {
    let c = cloud(Some(B), &[A]);
    let dir = tempfile::tempdir().unwrap();
    let file = token_file(dir.path(), b"dop_v1_s\x7fkrit\n");
    // 6 from the parameter (wrong everywhere), 5 from the file (this node's copy).
    let cases: [(&str, i32, &[RawVar]); 3] = [
        (
            "api_token",
            6,
            &[("OCF_RESKEY_api_token", b"dop_v1_s\x01krit")],
        ),
        (
            "api_token",
            6,
            &[("OCF_RESKEY_api_token", b"dop_v1_skrit\n")],
        ),
        (
            "api_token_file",
            5,
            &[
                ("OCF_RESKEY_api_token", b""),
                ("OCF_RESKEY_api_token_file", file.as_bytes()),
            ],
        ),
    ];
    for (param, code, vars) in cases {
        let mut vars = vars.to_vec();
        vars.push(("OCF_RESKEY_CRM_meta_timeout", b"4000"));
        for action in ["start", "validate-all"] {
            let what = format!("{action} with a control character in {param}");
            let r = run_bytes(&c, action, &vars, &[]);
            r.expect(code, &what)
                .reason(contains(format!("parameter '{param}'")))
                .reason(contains("control character"));
            assert!(r.took < Duration::from_secs(1), "{what}: {:?}", r.took);
            assert_unsaid(&r, &what, "krit");
        }
    }
    assert_eq!(
        c.fake.api_request_count(),
        0,
        "a token that cannot work is not sent"
    );
}

#[test]
fn a_huge_token_file_is_not_read_whole() {
    let c = cloud(Some(B), &[A]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..100 {
            f.write_all(&chunk).unwrap();
        }
        f.write_all(b"\n").unwrap();
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let file = path.display().to_string();
    // 64 MiB of heap is plenty for the agent, and too little for a 100 MB token.
    let r = run_bytes(
        &c,
        "start",
        &[
            ("OCF_RESKEY_api_token", b""),
            ("OCF_RESKEY_api_token_file", file.as_bytes()),
            ("OCF_RESKEY_CRM_meta_timeout", b"4000"),
        ],
        &["prlimit", "--data=67108864", "--"],
    );
    r.expect(5, "start with a 100 MB one-line token file")
        .reason(contains("parameter 'api_token_file'"))
        .reason(contains("no token within its first 4096 bytes"));
    assert!(r.took < Duration::from_secs(1), "{:?}", r.took);
    assert_eq!(c.fake.api_request_count(), 0);
}

#[test]
fn a_short_token_is_never_shown() {
    // Three characters that no path, address or message of a run holds by chance.
    const SHORT: &str = "q^Z";
    let c = cloud(Some(B), &[A]);
    c.fake.add_token(SHORT);
    let dir = tempfile::tempdir().unwrap();
    let file = token_file(dir.path(), format!("{SHORT}\n").as_bytes());
    let log = dir.path().join("ha-log");
    let debug = dir.path().join("ha-debug");
    let logging = [
        ("HA_debug", "1"),
        ("HA_LOGFILE", log.to_str().unwrap()),
        ("HA_DEBUGLOG", debug.to_str().unwrap()),
        ("OCF_RESKEY_CRM_meta_timeout", "3000"),
    ];
    let by_param = [("OCF_RESKEY_api_token", SHORT)];
    let by_file = [
        ("OCF_RESKEY_api_token", ""),
        ("OCF_RESKEY_api_token_file", &file),
    ];
    let level10 = [("OCF_CHECK_LEVEL", "10")];
    let recurring = [("OCF_RESKEY_CRM_meta_interval", "10000")];
    let check = |label: &str, source: Vars, runs: &[(&str, Vars, i32)]| {
        for (action, vars, code) in runs {
            let mut all = logging.to_vec();
            all.extend_from_slice(source);
            all.extend_from_slice(vars);
            let what = format!("{label}: {action} {vars:?}");
            let r = c.run(0, action, &all);
            r.expect(*code, &what);
            assert_unsaid(&r, &what, SHORT);
        }
    };
    let fine: &[(&str, Vars, i32)] = &[
        ("validate-all", &level10, 0),
        ("start", &[], 0),
        ("monitor", &recurring, 0),
        ("stop", &[], 0),
    ];
    check("param", &by_param, fine);
    check("file", &by_file, fine);
    c.fake.revoke_token(SHORT);
    let rejected: &[(&str, Vars, i32)] = &[("validate-all", &level10, 6), ("start", &[], 6)];
    check("param, revoked", &by_param, rejected);
    check("file, revoked", &by_file, rejected);
    for f in [&log, &debug] {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        assert!(!text.contains(SHORT), "{}:\n{text}", f.display());
    }
}

#[test]
fn a_huge_parameter_value_is_cut_in_the_exit_reason() {
    let c = cloud(Some(B), &[A]);
    let huge = "9".repeat(100_000);
    for (action, vars) in [
        ("start", vec![("OCF_RESKEY_ip", huge.as_str())]),
        ("validate-all", vec![("OCF_RESKEY_ip", huge.as_str())]),
        (
            "start",
            vec![
                ("OCF_RESKEY_floating_ip", huge.as_str()),
                ("OCF_RESKEY_ip", ""),
            ],
        ),
    ] {
        let what = format!("{action} with a 100 kB {}", vars[0].0);
        let r = c.run(0, action, &vars);
        r.expect(6, &what)
            .reason(contains("is not an IPv4 or IPv6 address"));
        let reason = r.exit_reason().unwrap();
        assert!(
            reason.len() < 300,
            "{what}: a reason of {} bytes",
            reason.len()
        );
        assert!(
            r.stderr.len() < 2_000,
            "{what}: {} bytes of stderr",
            r.stderr.len()
        );
    }
    // Nothing started by that name (nor by the address it would name the state after).
    c.run(0, "monitor", &[("OCF_RESKEY_ip", &huge)])
        .expect(7, "probe with a 100 kB ip");
    c.run(
        0,
        "monitor",
        &[("OCF_RESKEY_ip", &huge), ("OCF_RESOURCE_INSTANCE", "")],
    )
    .expect(7, "probe with a 100 kB ip and no instance name");
    c.run(
        0,
        "stop",
        &[("OCF_RESKEY_ip", &huge), ("OCF_RESOURCE_INSTANCE", "")],
    )
    .expect(0, "stop with a 100 kB ip and no instance name");
}

/// Probe (7) and stop (0) of a resource never started here, each well within its timeout.
fn never_started(c: &Cloud, what: &str, vars: &[(&str, &str)]) {
    let mut vars = vars.to_vec();
    vars.push(("OCF_RESKEY_CRM_meta_timeout", "4000"));
    for (action, extra, code) in [
        ("monitor", None, 7),
        (
            "monitor",
            Some(("OCF_RESKEY_CRM_meta_interval", "10000")),
            7,
        ),
        ("stop", None, 0),
    ] {
        let mut all = vars.clone();
        all.extend(extra);
        let r = c.run(0, action, &all);
        r.expect(code, &format!("{what}: {action} {extra:?}"));
        assert!(
            r.took < Duration::from_secs(2),
            "{what}: {action} took {:?}",
            r.took
        );
    }
}

#[test]
fn an_unusable_state_path_means_never_started() {
    let c = cloud(Some(A), &[A]);
    c.fake.inject(cloudha_tests::fakecloud::Fault::outage(
        cloudha_tests::fakecloud::Scope::All,
    ));
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("a-file");
    std::fs::write(&plain, "x").unwrap();
    never_started(
        &c,
        "HA_RSCTMP a regular file",
        &[("HA_RSCTMP", plain.to_str().unwrap())],
    );
    let long = "x".repeat(5000);
    never_started(
        &c,
        "a 5000-character instance",
        &[("OCF_RESOURCE_INSTANCE", &long)],
    );
    let state = c.nodes[0].rsctmp.path().join("cloudha");
    std::fs::create_dir_all(c.record(0)).unwrap();
    never_started(&c, "a directory at the record", &[]);
    std::fs::remove_dir(c.record(0)).unwrap();
    nix::unistd::mkfifo(
        &c.record(0),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    never_started(&c, "a FIFO at the record", &[]);
    assert!(state.join("floatip-public-ip.started").exists());
}

#[test]
fn a_long_instance_name_starts_and_stops() {
    let c = cloud(Some(B), &[A]);
    let long = "x".repeat(5000);
    let vars = [("OCF_RESOURCE_INSTANCE", long.as_str())];
    c.run(0, "start", &vars).expect(0, "start");
    c.run(0, "monitor", &vars).expect(0, "probe");
    c.run(0, "stop", &vars).expect(0, "stop");
    c.run(0, "monitor", &vars).expect(7, "probe after stop");
}

#[test]
fn a_link_at_the_temporary_record_is_never_written_through() {
    let c = cloud(Some(B), &[A]);
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "root:x:0:0\n").unwrap();
    let state = c.nodes[0].rsctmp.path().join("cloudha");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::symlink(&victim, state.join("floatip-public-ip.started.tmp")).unwrap();
    c.run(0, "start", &[]).expect(0, "start");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root:x:0:0\n");
    c.run(0, "monitor", &[]).expect(0, "probe after start");
    assert_eq!(c.fake.holder(IP), Some(A));
}

#[test]
fn a_state_directory_others_may_write_is_refused() {
    let c = cloud(Some(B), &[A]);
    c.run(0, "start", &[]).expect(0, "start");
    let state = c.nodes[0].rsctmp.path().join("cloudha");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    for (action, vars) in [
        ("monitor", vec![]),
        ("monitor", vec![("OCF_RESKEY_CRM_meta_interval", "10000")]),
        ("start", vec![]),
        ("stop", vec![]),
    ] {
        c.run(0, action, &vars)
            .expect(
                4,
                &format!("{action} {vars:?} with a world-writable state directory"),
            )
            .reason(contains("writable by no one else"));
    }
}
