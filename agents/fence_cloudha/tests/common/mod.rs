//! The per-cloud fence_cloudha tests' shared part: a fake with this node (`ME`, "lb1") and its
//! peer (`PEER`, "lb2"), and the agent run as pacemaker-fenced runs it (parameters on stdin).
#![allow(dead_code)]

use cloudha_tests::agent_bin;
use cloudha_tests::fakecloud::FakeCloud;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

/// This node's server, and its peer's.
pub const ME: u64 = 4711;
pub const PEER: u64 = 4712;

/// `cloud` (with its credentials added) serving this node's metadata; both servers named, power
/// actions taking 300 ms. The metadata service's URL.
pub fn setup(cloud: FakeCloud) -> (FakeCloud, String) {
    let metadata = cloud.add_droplet(ME);
    cloud.name_droplet(ME, "lb1");
    cloud.name_droplet(PEER, "lb2");
    cloud.set_power_time(Duration::from_millis(300));
    (cloud, metadata)
}

/// Run the agent with `head` (the provider, URLs and credentials, a line each) and `lines` on
/// stdin; its exit code, stdout and stderr. `secret` must appear in neither.
pub fn fence(head: &str, secret: &str, lines: &[&str]) -> (i32, String, String) {
    let mut input = head.to_string();
    for l in lines {
        input.push_str(l);
        input.push('\n');
    }
    let mut child = Command::new(agent_bin("fence_cloudha"))
        .env_clear()
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
    let out = child.wait_with_output().expect("wait");
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        !so.contains(secret) && !se.contains(secret),
        "the secret was shown"
    );
    (out.status.code().unwrap_or(-1), so, se)
}

/// The fake's power actions on server `id`, as `<kind> <status>`.
pub fn kinds(cloud: &FakeCloud, id: u64) -> Vec<String> {
    cloud
        .power_actions()
        .into_iter()
        .filter(|a| a.droplet == id)
        .map(|a| format!("{} {}", a.kind, a.status))
        .collect()
}
