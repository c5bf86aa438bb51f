//! The fake's Hetzner dialect checked against shared/docs/clouds.md (its Hetzner section) with a
//! plain HTTP client: paging, ids, actions running → success, 423 while an action runs, errors
//! in Hetzner's shape, the RateLimit-* headers, the metadata service per server, and the faults
//! that answer in the dialect.

use cloudha_tests::fakecloud::{
    hetzner, ActionStatus, FakeCloud, Fault, FaultKind, Scope, OTHER_IP,
};
use cloudha_tests::http::{bearer, Answer};
use serde_json::{json, Value};
use std::time::Duration;

const IP: &str = "203.0.113.10";
const TOKEN: &str = "hcloud-test-token";

/// Hetzner's error code, from `{"error": {"code", "message", "details"}}`.
trait HetznerError {
    fn code(&self) -> String;
}

impl HetznerError for Answer {
    fn code(&self) -> String {
        let v = self.json();
        assert!(v["error"]["message"].is_string(), "{v}");
        assert!(v["error"]["details"].is_object(), "{v}");
        v["error"]["code"].as_str().unwrap_or("").to_string()
    }
}

fn call(method: &str, url: &str, token: Option<&str>, body: Option<&Value>) -> Answer {
    bearer(method, url, token, body)
}

fn project(holder: Option<u64>) -> (FakeCloud, u64) {
    let fake = FakeCloud::start_hetzner();
    fake.add_token(TOKEN);
    fake.add_ip(IP, holder);
    let id = fake.ip_id(IP).unwrap();
    (fake, id)
}

fn get(fake: &FakeCloud, path: &str) -> Answer {
    call(
        "GET",
        &format!("{}{path}", fake.api_url()),
        Some(TOKEN),
        None,
    )
}

fn assign(fake: &FakeCloud, id: u64, server: u64) -> Answer {
    call(
        "POST",
        &format!("{}/v1/floating_ips/{id}/actions/assign", fake.api_url()),
        Some(TOKEN),
        Some(&json!({"server": server})),
    )
}

#[test]
fn the_project_holds_more_than_one_page_and_lists_in_pages() {
    let (fake, id) = project(None);
    let total = u64::from(hetzner::FILLER_IPS) + 1;
    let first = get(&fake, "/v1/floating_ips");
    assert_eq!(first.status, 200);
    let v = first.json();
    assert_eq!(v["floating_ips"].as_array().unwrap().len(), 25);
    let p = &v["meta"]["pagination"];
    assert_eq!(p["page"], 1);
    assert_eq!(p["per_page"], 25);
    assert_eq!(p["previous_page"], Value::Null);
    assert_eq!(p["next_page"], 2);
    assert_eq!(p["last_page"], total.div_ceil(25));
    assert_eq!(p["total_entries"], total);
    // The largest page is 50: the address asked for is on the second one.
    let mut seen = Vec::new();
    let mut page = 1;
    loop {
        let v = get(&fake, &format!("/v1/floating_ips?page={page}&per_page=100")).json();
        assert_eq!(v["meta"]["pagination"]["per_page"], 50);
        seen.extend(v["floating_ips"].as_array().unwrap().iter().cloned());
        match v["meta"]["pagination"]["next_page"].as_u64() {
            Some(n) => page = n,
            None => break,
        }
    }
    assert_eq!(page, 2);
    assert_eq!(seen.len() as u64, total);
    let ours = seen.iter().find(|f| f["ip"] == IP).unwrap();
    assert_eq!(ours["id"], id);
    assert_eq!(ours["type"], "ipv4");
    assert_eq!(ours["server"], Value::Null);
    assert!(ours.get("locked").is_none(), "Hetzner has no locked flag");
    let bad = get(&fake, "/v1/floating_ips?page=0");
    assert_eq!((bad.status, bad.code().as_str()), (400, "invalid_input"));
}

#[test]
fn one_ip_by_id_and_errors_in_hetzners_shape() {
    let (fake, id) = project(Some(7));
    let a = get(&fake, &format!("/v1/floating_ips/{id}"));
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["floating_ip"]["ip"], IP);
    assert_eq!(a.json()["floating_ip"]["server"], 7);
    for h in ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"] {
        assert!(a.header(h).is_some(), "{h} missing: {:?}", a.headers);
    }
    assert_eq!(a.header("RateLimit-Limit"), Some("3600"));
    let unknown = get(&fake, "/v1/floating_ips/1");
    assert_eq!(
        (unknown.status, unknown.code().as_str()),
        (404, "not_found")
    );
    let by_address = get(&fake, &format!("/v1/floating_ips/{IP}"));
    assert_eq!(by_address.status, 404, "Hetzner addresses IPs by id");
    for token in [None, Some("wrong")] {
        let a = call(
            "GET",
            &format!("{}/v1/floating_ips/{id}", fake.api_url()),
            token,
            None,
        );
        assert_eq!((a.status, a.code().as_str()), (401, "unauthorized"));
    }
}

#[test]
fn assign_runs_an_action_and_locks_the_ip_until_it_succeeds() {
    let (fake, id) = project(Some(7));
    fake.add_droplet(8);
    fake.set_action_time(Duration::from_millis(300));
    let a = assign(&fake, id, 8);
    assert_eq!(a.status, 201, "{}", a.body);
    let action = a.json()["action"].clone();
    assert_eq!(action["command"], "assign_floating_ip");
    assert_eq!(action["status"], "running");
    assert_eq!(action["progress"], 0);
    assert_eq!(action["finished"], Value::Null);
    assert_eq!(action["error"], Value::Null);
    assert_eq!(
        action["resources"],
        json!([{"id": id, "type": "floating_ip"}])
    );
    // While it runs: the holder is still the old one, another action is refused (423 locked).
    assert_eq!(
        get(&fake, &format!("/v1/floating_ips/{id}")).json()["floating_ip"]["server"],
        7
    );
    let locked = assign(&fake, id, 8);
    assert_eq!((locked.status, locked.code().as_str()), (423, "locked"));
    std::thread::sleep(Duration::from_millis(350));
    let done = get(&fake, &format!("/v1/actions/{}", action["id"])).json();
    assert_eq!(done["action"]["status"], "success");
    assert_eq!(done["action"]["progress"], 100);
    assert!(done["action"]["finished"].is_string());
    assert_eq!(
        get(&fake, &format!("/v1/floating_ips/{id}")).json()["floating_ip"]["server"],
        8
    );
    assert_eq!(fake.holder(IP), Some(8));
    let bad = call(
        "POST",
        &format!("{}/v1/floating_ips/{id}/actions/assign", fake.api_url()),
        Some(TOKEN),
        Some(&json!({"server": "8"})),
    );
    assert_eq!((bad.status, bad.code().as_str()), (400, "invalid_input"));
}

#[test]
fn an_errored_action_leaves_the_holder() {
    let (fake, id) = project(Some(7));
    fake.add_droplet(8);
    fake.inject(Fault::new(Scope::Api, FaultKind::ActionErrored).times(1));
    let a = assign(&fake, id, 8).json();
    let done = get(&fake, &format!("/v1/actions/{}", a["action"]["id"])).json();
    assert_eq!(done["action"]["status"], "error");
    assert_eq!(done["action"]["error"]["code"], "action_failed");
    assert_eq!(fake.holder(IP), Some(7));
    assert_eq!(fake.actions()[0].status, ActionStatus::Errored);
}

#[test]
fn metadata_says_who_the_server_is_and_nothing_of_floating_ips() {
    let (fake, _) = project(Some(8));
    let url = fake.add_droplet(8);
    assert!(url.ends_with("/hetzner/v1/metadata"), "{url}");
    let id = call("GET", &format!("{url}/instance-id"), None, None);
    assert_eq!((id.status, id.body.as_str()), (200, "8"));
    assert_eq!(
        call("GET", &format!("{url}/hostname"), None, None).body,
        "server-8"
    );
    let all = call("GET", &url, None, None);
    assert!(all.body.contains("instance-id: 8\n"), "{}", all.body);
    assert!(!all.body.contains(IP));
    assert_eq!(
        call("GET", &format!("{url}/floating_ips"), None, None).status,
        404
    );
    assert_eq!(fake.metadata_request_count(8), 4);
}

#[test]
fn the_hourly_budget_ends_in_429_with_no_retry_after() {
    let (fake, id) = project(None);
    fake.set_rate_limit(3600, 3);
    for _ in 0..3 {
        assert_eq!(get(&fake, &format!("/v1/floating_ips/{id}")).status, 200);
    }
    let a = get(&fake, &format!("/v1/floating_ips/{id}"));
    assert_eq!((a.status, a.code().as_str()), (429, "rate_limit_exceeded"));
    assert_eq!(a.header("RateLimit-Remaining"), Some("0"));
    assert!(a.header("RateLimit-Reset").unwrap().parse::<u64>().is_ok());
    assert_eq!(a.header("Retry-After"), None);
}

#[test]
fn injected_faults_answer_in_the_dialect() {
    let (fake, id) = project(Some(7));
    fake.inject(Fault::status(Scope::Api, 423).times(1));
    let a = get(&fake, &format!("/v1/floating_ips/{id}"));
    assert_eq!((a.status, a.code().as_str()), (423, "locked"));
    fake.inject(Fault::status(Scope::Api, 409).times(1));
    assert_eq!(get(&fake, "/v1/floating_ips").code(), "conflict");
    fake.inject(Fault::new(Scope::Api, FaultKind::RateLimited { retry_after: 5 }).times(1));
    let a = get(&fake, "/v1/floating_ips");
    assert_eq!((a.status, a.code().as_str()), (429, "rate_limit_exceeded"));
    assert_eq!(a.header("RateLimit-Remaining"), Some("0"));
    // A read of one IP by id answers about another address, with the real holder.
    fake.inject(Fault::new(Scope::Api, FaultKind::OtherIp).times(1));
    let a = get(&fake, &format!("/v1/floating_ips/{id}")).json();
    assert_eq!(a["floating_ip"]["ip"], OTHER_IP);
    assert_eq!(a["floating_ip"]["server"], 7);
    assert_eq!(
        get(&fake, &format!("/v1/floating_ips/{id}")).json()["floating_ip"]["ip"],
        IP
    );
}
