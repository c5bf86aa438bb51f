//! fence_cloudha with provider=exoscale, run as pacemaker-fenced runs it (parameters on stdin),
//! against the fake's Exoscale dialect: signed requests, `:stop` / `:start` operations polled
//! until the instance is `stopped` / `running`, status, list, reboot, monitor, 503s retried, a
//! refused key, a timeout; the secret never shown.

mod common;

use cloudha_tests::fakecloud::exoscale::instance_uuid;
use cloudha_tests::fakecloud::{FakeCloud, Fault, Scope};
use common::{kinds, ME, PEER};
use std::time::Duration;

const KEY: &str = "EXO0123456789abcdef01234567";
const SECRET: &str = "exoscale-fence-secret-0123";

fn setup() -> (FakeCloud, String) {
    let cloud = FakeCloud::start_exoscale();
    cloud.add_api_key(KEY, SECRET);
    common::setup(cloud)
}

fn fence(cloud: &FakeCloud, metadata: &str, lines: &[&str]) -> (i32, String, String) {
    let head = format!(
        "provider=exoscale\napi_url={}\nmetadata_url={metadata}\napi_key={KEY}\napi_token={SECRET}\n",
        cloud.api_url()
    );
    common::fence(&head, SECRET, lines)
}

#[test]
fn off_on_reboot_status_list_and_monitor() {
    let (cloud, md) = setup();
    let (me, peer) = (instance_uuid(ME), instance_uuid(PEER));
    let (code, out, err) = fence(&cloud, &md, &["action=list"]);
    assert_eq!((code, out), (0, format!("{me},lb1\n{peer},lb2\n")), "{err}");
    let (code, out, err) = fence(&cloud, &md, &["action=monitor"]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    let (code, out, err) = fence(&cloud, &md, &["action=off", "plug=lb2"]);
    assert_eq!((code, out.trim()), (0, "Success: Powered OFF"), "{err}");
    assert_eq!(kinds(&cloud, PEER), ["power_off completed"]);
    assert_eq!(cloud.is_on(PEER), Some(false));
    let (code, out, _) = fence(&cloud, &md, &["action=status", &format!("plug={peer}")]);
    assert_eq!((code, out.trim()), (2, "Status: OFF"));
    let (code, out, _) = fence(&cloud, &md, &["action=list-status"]);
    assert_eq!(out, format!("{me},lb1,on\n{peer},lb2,off\n"));
    assert_eq!(code, 0);
    // Already off: success without a call.
    let (code, out, _) = fence(&cloud, &md, &["action=off", "plug=lb2"]);
    assert_eq!((code, out.trim()), (0, "Success: Already OFF"));
    assert_eq!(kinds(&cloud, PEER), ["power_off completed"]);
    let (code, out, err) = fence(&cloud, &md, &["action=on", "plug=LB2"]);
    assert_eq!((code, out.trim()), (0, "Success: Powered ON"), "{err}");
    let (code, out, err) = fence(&cloud, &md, &["action=reboot", "plug=lb2"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "Success: Powered OFF\nSuccess: Rebooted\n"),
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
    let puts: Vec<String> = cloud
        .api_requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .map(|r| r.path.rsplit(':').next().unwrap_or("").to_string())
        .collect();
    assert_eq!(puts, ["stop", "start", "stop", "start"], "never :reset");
    let (code, _, err) = fence(&cloud, &md, &["action=status", "plug=lb9"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no instance named or with the id 'lb9'"),
        "{err}"
    );
}

#[test]
fn retries_503s_then_fails_on_a_refused_key_and_on_timeout() {
    let (cloud, md) = setup();
    cloud.inject(Fault::status(Scope::Api, 503).times(3));
    let (code, out, err) = fence(&cloud, &md, &["action=off", "plug=lb2"]);
    assert_eq!((code, out.trim()), (0, "Success: Powered OFF"), "{err}");
    assert!(err.contains("HTTP 503"), "the 503s are logged: {err}");
    let (code, _, err) = fence(&cloud, &md, &["action=on", "plug=lb2"]);
    assert_eq!(code, 0, "{err}");
    // Our own stop never ends within power_timeout: a failure, not a success.
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
    assert!(
        err.contains("timed out after 1 s") && err.contains("still in progress"),
        "{err}"
    );
    // This node's own instance is stopping: it does not fence its peer.
    let (code, _, err) = fence(&cloud, &md, &["action=off", "plug=lb2"]);
    assert_eq!(code, 1);
    let me = instance_uuid(ME);
    assert!(
        err.contains(&format!(
            "race check: this node's own instance {me} is 'stopping'"
        )),
        "{err}"
    );
    assert_eq!(
        kinds(&cloud, PEER),
        ["power_off completed", "power_on completed"]
    );
    cloud.set_power_time(Duration::from_millis(300));
    cloud.revoke_api_key(KEY);
    let (code, _, err) = fence(&cloud, &md, &["action=monitor"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("the API rejected the token (HTTP 403") && err.contains("check api_key"),
        "{err}"
    );
    let (code, _, err) = fence(&cloud, &md, &["action=validate-all", "api_key="]);
    assert_eq!(code, 1);
    assert!(
        err.contains("parameter 'api_key' is required but not set"),
        "{err}"
    );
    let (code, _, err) = fence(&cloud, &md, &["action=validate-all", "zone=Bad_Zone"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("parameter 'zone': 'Bad_Zone' is not an Exoscale zone's name"),
        "{err}"
    );
}
