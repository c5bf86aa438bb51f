//! The fake's instance power in its Exoscale and Vultr dialects, as shared/docs/fencing.md §6
//! describes them, with a plain HTTP client. Exoscale: `PUT /v2/instance/{id}:stop|:start`
//! answered with an operation, pending then success (or failure), the instance `stopping` then
//! `stopped`, 409 while one runs, no `:reset`. Vultr: `POST /v2/instances/{id}/halt|start` 204,
//! `power_status` changing only after the power time, a start of a running instance restarting
//! it, cursor pages. Both: the power hook sees each change, errors in the dialect's shape.

use cloudha_tests::fakecloud::exoscale::{self, signature};
use cloudha_tests::fakecloud::{vultr, FakeCloud, Fault, Scope};
use cloudha_tests::http::{bearer, request, Answer};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const KEY: &str = "EXO0123456789abcdef01234567";
const SECRET: &str = "power-secret-0123456789";
const TOKEN: &str = "vultr-power-token";

/// What the power hook saw: each instance as it went off (false) or on (true).
type Seen = Arc<Mutex<Vec<(u64, bool)>>>;

/// The fake, with lb1 and lb2, and the hook's record.
fn fake(start: fn() -> FakeCloud) -> (FakeCloud, Seen) {
    let cloud = start();
    cloud.add_api_key(KEY, SECRET);
    cloud.add_token(TOKEN);
    cloud.name_droplet(1, "lb1");
    cloud.name_droplet(2, "lb2");
    cloud.set_power_time(Duration::from_millis(300));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    cloud.set_power_hook(Some(Arc::new(move |id, on| {
        s.lock().unwrap().push((id, on))
    })));
    (cloud, seen)
}

fn exo(cloud: &FakeCloud, method: &str, path: &str, body: Option<&Value>) -> Answer {
    let body = body.map(Value::to_string).unwrap_or_default();
    let expires = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let sig = signature(SECRET, method, path, body.as_bytes(), &[], expires).unwrap();
    let auth = format!("EXO2-HMAC-SHA256 credential={KEY},expires={expires},signature={sig}");
    let url = format!("{}{path}", cloud.api_url());
    request(method, &url, &[("Authorization", &auth)], Some(&body))
}

/// Re-read until `done` holds (at most 5 s).
fn until(mut read: impl FnMut() -> Value, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let v = read();
        if done(&v) || start.elapsed() > Duration::from_secs(5) {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn exoscale_stop_and_start_are_operations_and_instance_states() {
    let (cloud, seen) = fake(FakeCloud::start_exoscale);
    let id = exoscale::instance_uuid(2);
    let all = exo(&cloud, "GET", "/v2/instance", None).json();
    let names: Vec<(&str, &str)> = all["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["name"].as_str().unwrap(), i["state"].as_str().unwrap()))
        .collect();
    assert_eq!(names, [("lb1", "running"), ("lb2", "running")]);
    let stop = exo(
        &cloud,
        "PUT",
        &format!("/v2/instance/{id}:stop"),
        Some(&json!({})),
    );
    assert_eq!(stop.status, 200, "{}", stop.body);
    let op = stop.json();
    assert_eq!(op["state"], "pending");
    assert_eq!(
        (
            op["reference"]["id"].as_str(),
            op["reference"]["command"].as_str()
        ),
        (Some(id.as_str()), Some("stop-instance"))
    );
    let read = || exo(&cloud, "GET", &format!("/v2/instance/{id}"), None).json();
    assert_eq!(read()["state"], "stopping");
    let again = exo(
        &cloud,
        "PUT",
        &format!("/v2/instance/{id}:stop"),
        Some(&json!({})),
    );
    assert_eq!(again.status, 409, "one operation at a time");
    assert!(again.json()["message"].is_string());
    assert!(seen.lock().unwrap().is_empty(), "nothing changed yet");
    let op_path = format!("/v2/operation/{}", op["id"].as_str().unwrap());
    let done = until(
        || exo(&cloud, "GET", &op_path, None).json(),
        |v| v["state"] != "pending",
    );
    assert_eq!(done["state"], "success");
    assert_eq!(read()["state"], "stopped");
    assert_eq!(*seen.lock().unwrap(), [(2, false)]);
    let start = exo(
        &cloud,
        "PUT",
        &format!("/v2/instance/{id}:start"),
        Some(&json!({})),
    );
    assert_eq!(start.json()["reference"]["command"], "start-instance");
    assert_eq!(read()["state"], "starting");
    assert_eq!(until(read, |v| v["state"] == "running")["state"], "running");
    assert_eq!(*seen.lock().unwrap(), [(2, false), (2, true)]);
    // `:reset` re-installs: not offered. An unknown instance: 404 in Exoscale's shape.
    let reset = exo(
        &cloud,
        "PUT",
        &format!("/v2/instance/{id}:reset"),
        Some(&json!({})),
    );
    assert_eq!(reset.status, 404);
    let other = exoscale::instance_uuid(9);
    let missing = exo(
        &cloud,
        "PUT",
        &format!("/v2/instance/{other}:stop"),
        Some(&json!({})),
    );
    assert_eq!(missing.status, 404);
    assert!(missing.json()["message"].is_string());
    // An errored operation: failure, and the instance stays running.
    cloud.inject(Fault::action_errored().times(1));
    let op = exo(
        &cloud,
        "PUT",
        &format!("/v2/instance/{id}:stop"),
        Some(&json!({})),
    )
    .json();
    let op_path = format!("/v2/operation/{}", op["id"].as_str().unwrap());
    let failed = until(
        || exo(&cloud, "GET", &op_path, None).json(),
        |v| v["state"] != "pending",
    );
    assert_eq!(failed["state"], "failure");
    assert_eq!(read()["state"], "running");
    cloud.inject(Fault::status(Scope::Api, 503).times(1));
    let busy = exo(&cloud, "GET", "/v2/instance", None);
    assert_eq!(busy.status, 503);
    assert!(busy.json()["message"].is_string());
}

fn vultr_call(cloud: &FakeCloud, method: &str, path: &str) -> Answer {
    bearer(
        method,
        &format!("{}{path}", cloud.api_url()),
        Some(TOKEN),
        None,
    )
}

#[test]
fn vultr_halt_and_start_answer_204_and_power_status_follows() {
    let (cloud, seen) = fake(FakeCloud::start_vultr);
    let id = vultr::instance_uuid(2);
    // Cursor pages: one instance a page, `meta.links.next` "" on the last.
    let first = vultr_call(&cloud, "GET", "/v2/instances?per_page=1").json();
    assert_eq!(first["instances"][0]["label"], "lb1");
    let next = first["meta"]["links"]["next"].as_str().unwrap().to_string();
    assert!(!next.is_empty());
    let cursor: String = url_escape(&next);
    let second = vultr_call(
        &cloud,
        "GET",
        &format!("/v2/instances?per_page=1&cursor={cursor}"),
    );
    let second = second.json();
    assert_eq!(second["instances"][0]["label"], "lb2");
    assert_eq!(second["meta"]["links"]["next"], "");
    let labelled = vultr_call(&cloud, "GET", "/v2/instances?label=lb2").json();
    assert_eq!(labelled["instances"].as_array().unwrap().len(), 1);
    assert_eq!(labelled["instances"][0]["id"], id.as_str());

    let read =
        || vultr_call(&cloud, "GET", &format!("/v2/instances/{id}")).json()["instance"].clone();
    assert_eq!(read()["power_status"], "running");
    let halt = vultr_call(&cloud, "POST", &format!("/v2/instances/{id}/halt"));
    assert_eq!((halt.status, halt.body.as_str()), (204, ""));
    assert_eq!(
        read()["power_status"],
        "running",
        "not before the power time"
    );
    let off = until(read, |v| v["power_status"] == "stopped");
    assert_eq!(off["power_status"], "stopped");
    assert_eq!(*seen.lock().unwrap(), [(2, false)]);
    let start = vultr_call(&cloud, "POST", &format!("/v2/instances/{id}/start"));
    assert_eq!(start.status, 204);
    assert_eq!(
        until(read, |v| v["power_status"] == "running")["power_status"],
        "running"
    );
    // A start of a running instance restarts it (govultr): off, then on.
    vultr_call(&cloud, "POST", &format!("/v2/instances/{id}/start"));
    until(
        || json!(cloud.power_actions().iter().all(|a| a.settled.is_some())),
        |v| v == &json!(true),
    );
    assert_eq!(
        *seen.lock().unwrap(),
        [(2, false), (2, true), (2, false), (2, true)]
    );
    let kinds: Vec<String> = cloud.power_actions().into_iter().map(|a| a.kind).collect();
    assert_eq!(kinds, ["power_off", "power_on", "power_cycle"]);
    // Errors in Vultr's shape.
    let missing = vultr_call(
        &cloud,
        "POST",
        &format!("/v2/instances/{}/halt", vultr::instance_uuid(9)),
    );
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"].is_string());
    let url = format!("{}/v2/instances", cloud.api_url());
    let denied = bearer("GET", &url, Some("wrong-token"), None);
    assert_eq!(denied.status, 401);
    assert_eq!(denied.json()["error"], "Invalid API token.");
}

/// A cursor as a query value (its `=` and `+` escaped).
fn url_escape(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
