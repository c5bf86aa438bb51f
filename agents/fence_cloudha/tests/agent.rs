//! fence_cloudha, the built binary, run as pacemaker-fenced runs it (parameters on stdin, no
//! argv) against the fake DigitalOcean API: off, on, reboot, status, list, monitor, the race
//! check, API faults, the timeout, and the token never shown.

use cloudha_tests::agent_bin;
use cloudha_tests::fakecloud::{FakeCloud, Fault, Scope};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const TOKEN: &str = "fence-test-token-0123";
/// This node's droplet (the fencer) and its peer.
const ME: u64 = 101;
const PEER: u64 = 102;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn setup() -> (FakeCloud, String) {
    let cloud = FakeCloud::start();
    cloud.add_token(TOKEN);
    let metadata = cloud.add_droplet(ME);
    cloud.name_droplet(ME, "node1");
    cloud.name_droplet(PEER, "node2");
    cloud.set_power_time(Duration::from_millis(300));
    (cloud, metadata)
}

/// Run the agent with `lines` on stdin (plus the API and metadata URLs and the token).
fn fence(cloud: &FakeCloud, metadata: &str, lines: &[&str]) -> Run {
    let mut input = format!(
        "api_url={}\nmetadata_url={metadata}\napi_token={TOKEN}\nnodename=node2\n",
        cloud.api_url()
    );
    for l in lines {
        input.push_str(l);
        input.push('\n');
    }
    run(&[], &input)
}

fn run(args: &[&str], input: &str) -> Run {
    let mut child = Command::new(agent_bin("fence_cloudha"))
        .args(args)
        .env_clear()
        .env("PCMK_service", "pacemaker-fenced")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run fence_cloudha");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait for fence_cloudha");
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !r.stdout.contains(TOKEN) && !r.stderr.contains(TOKEN),
        "the token was shown: {} {}",
        r.stdout,
        r.stderr
    );
    r
}

fn kinds(cloud: &FakeCloud, droplet: u64) -> Vec<String> {
    cloud
        .power_actions()
        .into_iter()
        .filter(|a| a.droplet == droplet)
        .map(|a| format!("{} {}", a.kind, a.status))
        .collect()
}

#[test]
fn off_waits_until_the_api_says_off_and_already_off_is_success() {
    let (cloud, md) = setup();
    let r = fence(&cloud, &md, &["action=off", "plug=node2"]);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    assert_eq!(r.stdout.trim(), "Success: Powered OFF");
    assert_eq!(cloud.is_on(PEER), Some(false));
    assert_eq!(kinds(&cloud, PEER), ["power_off completed"]);
    assert_eq!(cloud.is_on(ME), Some(true));

    let r = fence(&cloud, &md, &["action=off", "port=102"]);
    assert_eq!((r.code, r.stdout.trim()), (0, "Success: Already OFF"));
    assert_eq!(kinds(&cloud, PEER).len(), 1, "no second action");

    let r = fence(&cloud, &md, &["action=status", "plug=NODE2"]);
    assert_eq!((r.code, r.stdout.trim()), (2, "Status: OFF"));
    let r = fence(&cloud, &md, &["action=on", "plug=node2"]);
    assert_eq!((r.code, r.stdout.trim()), (0, "Success: Powered ON"));
    let r = fence(&cloud, &md, &["action=status", "plug=102"]);
    assert_eq!((r.code, r.stdout.trim()), (0, "Status: ON"));
    assert_eq!(
        kinds(&cloud, PEER),
        ["power_off completed", "power_on completed"]
    );
}

#[test]
fn reboot_is_off_then_on() {
    let (cloud, md) = setup();
    let r = fence(&cloud, &md, &["plug=node2"]); // the default action
    assert_eq!(
        (r.code, r.stdout.trim()),
        (0, "Success: Powered OFF\nSuccess: Rebooted"),
        "{}",
        r.stderr
    );
    assert_eq!(
        kinds(&cloud, PEER),
        ["power_off completed", "power_on completed"]
    );
    assert_eq!(cloud.is_on(PEER), Some(true));
}

#[test]
fn list_monitor_and_bad_plugs() {
    let (cloud, md) = setup();
    let r = fence(&cloud, &md, &["action=list"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "101,node1\n102,node2\n");
    let r = fence(&cloud, &md, &["action=list-status"]);
    assert_eq!(r.stdout, "101,node1,on\n102,node2,on\n");
    let r = fence(&cloud, &md, &["action=monitor"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = fence(&cloud, &md, &["action=off", "plug=node9"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("no droplet named or numbered 'node9'"),
        "{}",
        r.stderr
    );
    let r = fence(&cloud, &md, &["action=off"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("parameter 'plug' or 'port' is required"),
        "{}",
        r.stderr
    );
    let r = fence(&cloud, &md, &["action=dance", "plug=node2"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("unsupported action 'dance'"),
        "{}",
        r.stderr
    );
    assert!(cloud.power_actions().is_empty());
}

#[test]
fn a_rejected_token_fails_monitor_with_a_clear_reason() {
    let (cloud, md) = setup();
    cloud.revoke_token(TOKEN);
    let r = fence(&cloud, &md, &["action=monitor"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("the API rejected the token (HTTP 401: Unable to authenticate you."),
        "{}",
        r.stderr
    );
}

#[test]
fn server_errors_are_retried_until_off() {
    let (cloud, md) = setup();
    cloud.inject(Fault::status(Scope::Api, 503).times(4));
    let r = fence(&cloud, &md, &["action=off", "plug=node2"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("HTTP 503"), "{}", r.stderr);
    assert_eq!(kinds(&cloud, PEER), ["power_off completed"]);
}

#[test]
fn an_errored_action_is_asked_again() {
    let (cloud, md) = setup();
    cloud.inject(Fault::action_errored().times(1));
    let r = fence(&cloud, &md, &["action=off", "plug=node2"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        kinds(&cloud, PEER),
        ["power_off errored", "power_off completed"]
    );
}

#[test]
fn a_timeout_is_a_failure() {
    let (cloud, md) = setup();
    cloud.set_power_time(Duration::from_secs(30));
    let r = fence(
        &cloud,
        &md,
        &["action=off", "plug=node2", "power_timeout=2"],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("timed out after 2 s"), "{}", r.stderr);
    assert_eq!(cloud.is_on(PEER), Some(true));
}

#[test]
fn a_node_going_down_does_not_fence_its_peer() {
    let (cloud, md) = setup();
    cloud.set_power_time(Duration::from_secs(30));
    // The peer fenced us first: our own droplet has a power_off under way.
    let other = fence(
        &cloud,
        &md,
        &[
            "action=off",
            "plug=node1",
            "power_timeout=1",
            "skip_race_check=true",
        ],
    );
    assert_eq!(other.code, 1, "times out: {}", other.stderr);
    assert_eq!(kinds(&cloud, ME), ["power_off in-progress"]);
    let r = fence(&cloud, &md, &["action=off", "plug=node2"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("race check: this node's own droplet 101 has a power_off action under way"),
        "{}",
        r.stderr
    );
    assert!(kinds(&cloud, PEER).is_empty(), "the peer was not touched");
    // Our own droplet already off: the same.
    cloud.set_on(ME, false);
    cloud.set_power_time(Duration::ZERO);
    let r = fence(&cloud, &md, &["action=off", "plug=node2"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("droplet 101 is off"), "{}", r.stderr);
    assert!(kinds(&cloud, PEER).is_empty());
}

#[test]
fn metadata_is_fence_agents_xml_and_secrets_stay_off_argv() {
    let r = run(&[], "action=metadata\n");
    assert_eq!(r.code, 0);
    assert!(r
        .stdout
        .starts_with("<?xml version=\"1.0\" ?>\n<resource-agent name=\"fence_cloudha\""));
    let r = run(&["-o", "metadata"], "");
    assert_eq!(r.code, 0);
    let r = run(&["-o", "off", "-n", "x", "--api-token", TOKEN], "");
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("never taken from the command line"),
        "{}",
        r.stderr
    );
}
