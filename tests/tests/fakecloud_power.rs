//! The fake's droplet power over HTTP, as shared/docs/fencing.md §6 describes DigitalOcean's:
//! droplets by id and by name with paging, power actions pending then completed, the 422s,
//! 404s and 401, and the hook that sees each change before any answer says so.

use cloudha_tests::fakecloud::FakeCloud;
use cloudha_tests::http::bearer;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TOKEN: &str = "power-token";

fn call(method: &str, url: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let a = bearer(method, url, Some(token), body.as_ref());
    (
        a.status,
        serde_json::from_str(&a.body).unwrap_or(Value::Null),
    )
}

fn cloud() -> (FakeCloud, String) {
    let cloud = FakeCloud::start();
    cloud.add_token(TOKEN);
    for id in 1..=25u64 {
        cloud.name_droplet(100 + id, &format!("lb{id}"));
    }
    let api = cloud.api_url();
    (cloud, api)
}

#[test]
fn droplets_by_id_by_name_and_by_page() {
    let (_cloud, api) = cloud();
    let (s, v) = call("GET", &format!("{api}/v2/droplets"), TOKEN, None);
    assert_eq!(s, 200);
    assert_eq!(
        v["droplets"].as_array().unwrap().len(),
        20,
        "20 a page by default"
    );
    assert_eq!(v["meta"]["total"], 25);
    let next = v["links"]["pages"]["next"].as_str().unwrap();
    assert!(next.ends_with("/v2/droplets?page=2&per_page=20"), "{next}");
    let (_, v) = call("GET", next, TOKEN, None);
    assert_eq!(v["droplets"].as_array().unwrap().len(), 5);
    assert!(v["links"]["pages"].get("next").is_none());
    let (s, v) = call("GET", &format!("{api}/v2/droplets?name=LB7"), TOKEN, None);
    assert_eq!(s, 200);
    let found = v["droplets"].as_array().unwrap();
    assert_eq!(found.len(), 1, "exact, case-insensitive");
    assert_eq!(
        (found[0]["id"].clone(), found[0]["status"].clone()),
        (json!(107), json!("active"))
    );
    let (s, _) = call(
        "GET",
        &format!("{api}/v2/droplets?per_page=201"),
        TOKEN,
        None,
    );
    assert_eq!(s, 400);
    let (s, v) = call("GET", &format!("{api}/v2/droplets/107"), TOKEN, None);
    assert_eq!((s, v["droplet"]["name"].clone()), (200, json!("lb7")));
    let (s, v) = call("GET", &format!("{api}/v2/droplets/999"), TOKEN, None);
    assert_eq!((s, v["id"].clone()), (404, json!("not_found")));
    let (s, v) = call("GET", &format!("{api}/v2/droplets/107"), "wrong", None);
    assert_eq!((s, v["id"].clone()), (401, json!("unauthorized")));
}

#[test]
fn power_actions_are_pending_then_completed_and_the_hook_sees_them_first() {
    let (cloud, api) = cloud();
    cloud.set_power_time(Duration::from_millis(300));
    let seen: Arc<Mutex<Vec<(u64, bool)>>> = Arc::default();
    let s2 = seen.clone();
    cloud.set_power_hook(Some(Arc::new(move |d, on| {
        s2.lock().unwrap().push((d, on))
    })));
    let post = |id: u64, kind: &str| {
        call(
            "POST",
            &format!("{api}/v2/droplets/{id}/actions"),
            TOKEN,
            Some(json!({"type": kind})),
        )
    };
    let (s, v) = post(107, "power_off");
    assert_eq!(s, 201);
    assert_eq!(
        (v["action"]["status"].clone(), v["action"]["type"].clone()),
        (json!("in-progress"), json!("power_off"))
    );
    assert_eq!(v["action"]["resource_id"], 107);
    let id = v["action"]["id"].as_u64().unwrap();
    let (s, v) = post(107, "power_on");
    assert_eq!(
        (s, v["message"].clone()),
        (422, json!("Droplet already has a pending event."))
    );
    let (_, v) = call("GET", &format!("{api}/v2/droplets/107"), TOKEN, None);
    assert_eq!(
        (
            v["droplet"]["status"].clone(),
            v["droplet"]["locked"].clone()
        ),
        (json!("active"), json!(true))
    );
    let (_, v) = call(
        "GET",
        &format!("{api}/v2/droplets/107/actions"),
        TOKEN,
        None,
    );
    assert_eq!(v["actions"][0]["status"], "in-progress");
    assert!(seen.lock().unwrap().is_empty());
    std::thread::sleep(Duration::from_millis(400));
    let (s, v) = call("GET", &format!("{api}/v2/actions/{id}"), TOKEN, None);
    assert_eq!(
        (s, v["action"]["status"].clone()),
        (200, json!("completed"))
    );
    assert!(v["action"]["completed_at"].is_string());
    assert_eq!(*seen.lock().unwrap(), [(107, false)]);
    let (_, v) = call("GET", &format!("{api}/v2/droplets/107"), TOKEN, None);
    assert_eq!(v["droplet"]["status"], "off");
    let (s, v) = post(107, "power_off");
    assert_eq!(
        (s, v["message"].clone()),
        (422, json!("Droplet is already powered off."))
    );
    let (s, _) = post(107, "dance");
    assert_eq!(s, 422);
    let (s, _) = post(999, "power_off");
    assert_eq!(s, 404);
    cloud.set_power_time(Duration::ZERO);
    let (s, v) = post(107, "power_on");
    assert_eq!(
        (s, v["action"]["status"].clone()),
        (201, json!("completed"))
    );
    assert_eq!(*seen.lock().unwrap(), [(107, false), (107, true)]);
    let record = cloud.power_actions();
    assert_eq!(record.len(), 2);
    assert!(record
        .iter()
        .all(|a| a.settled_wall.is_some() && a.droplet == 107));
    assert_eq!(cloud.is_on(107), Some(true));
}
