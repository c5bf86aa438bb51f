//! fence_cloudha with provider=hetzner, run as pacemaker-fenced runs it, against the fake's
//! Hetzner dialect: off waits for `off`, status, list, the race check, a rejected token, 423.

mod common;

use cloudha_tests::fakecloud::FakeCloud;
use common::{kinds, ME, PEER};
use std::time::Duration;

const TOKEN: &str = "hetzner-fence-token-0123";

fn setup() -> (FakeCloud, String) {
    let cloud = FakeCloud::start_hetzner();
    cloud.add_token(TOKEN);
    common::setup(cloud)
}

fn fence(cloud: &FakeCloud, metadata: &str, lines: &[&str]) -> (i32, String, String) {
    let head = format!(
        "provider=hetzner\napi_url={}\nmetadata_url={metadata}\napi_token={TOKEN}\n",
        cloud.api_url()
    );
    common::fence(&head, TOKEN, lines)
}

#[test]
fn off_status_list_and_already_off() {
    let (cloud, md) = setup();
    let (code, out, err) = fence(&cloud, &md, &["action=list"]);
    assert_eq!((code, out.as_str()), (0, "4711,lb1\n4712,lb2\n"), "{err}");
    let (code, out, err) = fence(&cloud, &md, &["action=off", "plug=lb2"]);
    assert_eq!((code, out.trim()), (0, "Success: Powered OFF"), "{err}");
    assert_eq!(kinds(&cloud, PEER), ["power_off completed"]);
    assert_eq!(cloud.is_on(PEER), Some(false));
    let (code, out, _) = fence(&cloud, &md, &["action=status", "plug=4712"]);
    assert_eq!((code, out.trim()), (2, "Status: OFF"));
    let (code, out, _) = fence(&cloud, &md, &["action=off", "plug=lb2"]);
    assert_eq!((code, out.trim()), (0, "Success: Already OFF"));
    let (code, out, err) = fence(&cloud, &md, &["action=on", "plug=lb2"]);
    assert_eq!((code, out.trim()), (0, "Success: Powered ON"), "{err}");
    assert_eq!(
        kinds(&cloud, PEER),
        ["power_off completed", "power_on completed"]
    );
}

#[test]
fn race_check_locked_server_and_rejected_token() {
    let (cloud, md) = setup();
    cloud.set_power_time(Duration::from_secs(30));
    // The peer fences us: a poweroff runs on our own server.
    let (code, _, _) = fence(
        &cloud,
        &md,
        &[
            "action=off",
            "plug=lb1",
            "power_timeout=1",
            "skip_race_check=1",
        ],
    );
    assert_eq!(code, 1, "times out");
    let (code, _, err) = fence(&cloud, &md, &["action=off", "plug=lb2"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("race check: this node's own server 4711 has a poweroff action under way"),
        "{err}"
    );
    assert!(kinds(&cloud, PEER).is_empty());
    // Asked again while that poweroff runs: 423 `locked`, read as busy and retried until
    // power_timeout, never taken as done.
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
    assert!(
        err.contains("timed out after 1 s") && err.contains("HTTP 423"),
        "{err}"
    );
    assert_eq!(
        kinds(&cloud, ME),
        ["power_off in-progress"],
        "no second action"
    );
    cloud.revoke_token(TOKEN);
    let (code, _, err) = fence(&cloud, &md, &["action=monitor"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("the API rejected the token (HTTP 401: unable to authenticate"),
        "{err}"
    );
}
