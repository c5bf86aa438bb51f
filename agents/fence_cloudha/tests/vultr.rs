//! fence_cloudha with provider=vultr, run as pacemaker-fenced runs it (parameters on stdin),
//! against the fake's Vultr dialect: `halt` / `start` answered 204 and `power_status` polled
//! until stopped / running, a running instance never started (that would restart it), labels,
//! cursor pages, status, reboot, monitor, 503s retried, a dropped halt asked again, a rejected
//! token, a timeout; the token never shown.

mod common;

use cloudha_tests::fakecloud::vultr::instance_uuid;
use cloudha_tests::fakecloud::{FakeCloud, Fault, Scope};
use common::{kinds, ME, PEER};
use std::time::Duration;

const TOKEN: &str = "vultr-fence-token-0123456789";

fn setup() -> (FakeCloud, String) {
    let cloud = FakeCloud::start_vultr();
    cloud.add_token(TOKEN);
    common::setup(cloud)
}

fn fence(cloud: &FakeCloud, metadata: &str, lines: &[&str]) -> (i32, String, String) {
    let head = format!(
        "provider=vultr\napi_url={}\nmetadata_url={metadata}\napi_token={TOKEN}\n",
        cloud.api_url()
    );
    common::fence(&head, TOKEN, lines)
}

/// The POSTs the agent made, as `<command>`.
fn posts(cloud: &FakeCloud) -> Vec<String> {
    cloud
        .api_requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.path.rsplit('/').next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn off_on_reboot_status_list_and_monitor() {
    let (cloud, md) = setup();
    let (me, peer) = (instance_uuid(ME), instance_uuid(PEER));
    let (code, out, err) = fence(&cloud, &md, &["action=monitor"]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    let (code, out, err) = fence(&cloud, &md, &["action=off", "plug=lb2"]);
    assert_eq!((code, out.trim()), (0, "Success: Powered OFF"), "{err}");
    assert_eq!(kinds(&cloud, PEER), ["power_off completed"]);
    assert_eq!(cloud.is_on(PEER), Some(false));
    let (code, out, _) = fence(&cloud, &md, &["action=status", &format!("plug={peer}")]);
    assert_eq!((code, out.trim()), (2, "Status: OFF"));
    // Already off: success without a call.
    let (code, out, _) = fence(&cloud, &md, &["action=off", "plug=lb2"]);
    assert_eq!((code, out.trim()), (0, "Success: Already OFF"));
    let (code, out, err) = fence(&cloud, &md, &["action=on", "plug=lb2"]);
    assert_eq!((code, out.trim()), (0, "Success: Powered ON"), "{err}");
    // On a running instance: nothing asked (a start would restart it).
    let asked = posts(&cloud);
    let (code, out, _) = fence(&cloud, &md, &["action=on", "plug=lb2"]);
    assert_eq!((code, out.trim()), (0, "Success: Already ON"));
    assert_eq!(posts(&cloud), asked);
    let (code, out, err) = fence(&cloud, &md, &["action=reboot", "plug=lb2"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "Success: Powered OFF\nSuccess: Rebooted\n"),
        "{err}"
    );
    // Only halts and starts (a 429'd one is recorded too: counted by the fake's actions below).
    assert!(
        posts(&cloud).iter().all(|p| p == "halt" || p == "start"),
        "{err}"
    );
    assert_eq!(
        kinds(&cloud, PEER),
        [
            "power_off completed",
            "power_on completed",
            "power_off completed",
            "power_on completed"
        ]
    );
    // More than a page of 500: the listing follows the cursor.
    for n in 0..500 {
        cloud.name_droplet(10_000 + n, &format!("web{n}"));
    }
    let (code, out, err) = fence(&cloud, &md, &["action=list-status"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 502);
    assert_eq!(lines[0], format!("{me},lb1,on"));
    assert_eq!(lines[1], format!("{peer},lb2,on"));
    assert_eq!(lines[501], format!("{},web499,on", instance_uuid(10_499)));
    let (code, _, err) = fence(&cloud, &md, &["action=status", "plug=lb9"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no instance labelled or with the id 'lb9'"),
        "{err}"
    );
}

#[test]
fn retries_503s_then_fails_on_a_rejected_token_and_on_timeout() {
    let (cloud, md) = setup();
    cloud.inject(Fault::status(Scope::Api, 503).times(3));
    let (code, out, err) = fence(&cloud, &md, &["action=off", "plug=lb2"]);
    assert_eq!((code, out.trim()), (0, "Success: Powered OFF"), "{err}");
    assert!(err.contains("HTTP 503"), "the 503s are logged: {err}");
    let (code, _, err) = fence(&cloud, &md, &["action=on", "plug=lb2"]);
    assert_eq!(code, 0, "{err}");
    // A halt the platform drops (204, then nothing): asked again once it had time to work.
    cloud.inject(Fault::action_errored().times(1));
    let (code, out, err) = fence(&cloud, &md, &["action=off", "plug=lb2"]);
    assert_eq!((code, out.trim()), (0, "Success: Powered OFF"), "{err}");
    assert!(err.contains("errored"), "{err}");
    assert_eq!(
        kinds(&cloud, PEER),
        [
            "power_off completed",
            "power_on completed",
            "power_off errored",
            "power_off completed"
        ]
    );
    // Our own halt never ends within power_timeout: a failure, not a success.
    cloud.set_power_time(Duration::from_secs(30));
    let (code, _, err) = fence(
        &cloud,
        &md,
        &[
            "action=off",
            "plug=lb1",
            "power_timeout=1",
            "skip_race_check=1",
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("timed out after 1 s"), "{err}");
    assert_eq!(kinds(&cloud, ME), ["power_off in-progress"]);
    cloud.revoke_token(TOKEN);
    let (code, _, err) = fence(&cloud, &md, &["action=monitor"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("the API rejected the token (HTTP 401: Invalid API token."),
        "{err}"
    );
}
