//! The fake's Vultr dialect checked against shared/docs/clouds.md (its Vultr section) with a
//! plain HTTP client: cursor pages, UUIDs, detach and attach answered 204 before the platform
//! is done (the in-flight window: still attached, then attached nowhere, then here), an attach
//! refused while the IP is attached or changing, errors as `{"error", "status"}`, 30 requests a
//! second per source address, the metadata service per instance, and the faults that answer in
//! the dialect.

use cloudha_tests::fakecloud::{vultr, FakeCloud, Fault, FaultKind, Scope, OTHER_IP};
use cloudha_tests::http::{bearer, Answer};
use serde_json::{json, Value};
use std::time::Duration;

const IP: &str = "203.0.113.10";
const TOKEN: &str = "VULTRTESTKEY0123456789ABCDEFGHIJKLMNO";
const A: u64 = 3_160_001;
const B: u64 = 3_160_002;

/// Vultr's error, from `{"error": "...", "status": N}`.
trait VultrError {
    fn error(&self) -> String;
}

impl VultrError for Answer {
    fn error(&self) -> String {
        let v = self.json();
        assert_eq!(v["status"], self.status, "{v}");
        v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{v}"))
            .to_string()
    }
}

fn call(method: &str, url: &str, token: Option<&str>, body: Option<&Value>) -> Answer {
    bearer(method, url, token, body)
}

/// An account with the key, `IP` held by `holder`, instances A and B; the IP's UUID.
fn account(holder: Option<u64>) -> (FakeCloud, String) {
    let fake = FakeCloud::start_vultr();
    fake.add_token(TOKEN);
    fake.register_droplet(A);
    fake.register_droplet(B);
    fake.add_ip_in(IP, vultr::REGION, holder);
    let id = vultr::ip_uuid(fake.ip_id(IP).unwrap());
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

fn post(fake: &FakeCloud, path: &str, body: &Value) -> Answer {
    call(
        "POST",
        &format!("{}{path}", fake.api_url()),
        Some(TOKEN),
        Some(body),
    )
}

fn attach(fake: &FakeCloud, id: &str, n: u64) -> Answer {
    post(
        fake,
        &format!("/v2/reserved-ips/{id}/attach"),
        &json!({"instance_id": vultr::instance_uuid(n)}),
    )
}

fn detach(fake: &FakeCloud, id: &str) -> Answer {
    post(fake, &format!("/v2/reserved-ips/{id}/detach"), &json!({}))
}

/// The `instance_id` a read of the IP shows.
fn shown(fake: &FakeCloud, id: &str) -> String {
    let a = get(fake, &format!("/v2/reserved-ips/{id}"));
    assert_eq!(a.status, 200, "{}", a.body);
    a.json()["reserved_ip"]["instance_id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn the_account_lists_in_cursor_pages_and_reads_one_ip_by_uuid() {
    let (fake, id) = account(Some(A));
    let total = vultr::FILLER_IPS as usize + 1;
    let first = get(&fake, "/v2/reserved-ips");
    assert_eq!(first.status, 200);
    let v = first.json();
    assert_eq!(
        v["reserved_ips"].as_array().unwrap().len(),
        100,
        "default page"
    );
    assert_eq!(v["meta"]["total"], total);
    assert_eq!(v["meta"]["links"]["prev"], "");
    let r = &v["reserved_ips"][0];
    assert_eq!(r["ip_type"], "v6");
    assert_eq!(r["subnet_size"], 64);
    assert_eq!(r["instance_id"], "", "not attached: empty, not null");
    // The largest page is 500: the address asked for is on the second one.
    let big = get(&fake, "/v2/reserved-ips?per_page=500").json();
    assert_eq!(big["reserved_ips"].as_array().unwrap().len(), 500);
    assert!(big["reserved_ips"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["subnet"] != IP));
    let next = big["meta"]["links"]["next"].as_str().unwrap();
    assert!(!next.is_empty());
    let escaped: String = next
        .bytes()
        .map(|b| match b {
            b'=' => "%3D".to_string(),
            b'+' => "%2B".to_string(),
            b'/' => "%2F".to_string(),
            b => (b as char).to_string(),
        })
        .collect();
    let second = get(
        &fake,
        &format!("/v2/reserved-ips?per_page=500&cursor={escaped}"),
    )
    .json();
    let list = second["reserved_ips"].as_array().unwrap();
    assert_eq!(list.len(), total - 500);
    assert_eq!(second["meta"]["links"]["next"], "", "the last page");
    let mine = list.iter().find(|r| r["subnet"] == IP).unwrap();
    assert_eq!(mine["id"], id.as_str());
    assert_eq!(mine["ip_type"], "v4");
    assert_eq!(mine["subnet_size"], 32);
    assert_eq!(mine["region"], vultr::REGION);
    assert_eq!(mine["instance_id"], vultr::instance_uuid(A).as_str());

    let one = get(&fake, &format!("/v2/reserved-ips/{id}"));
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["reserved_ip"], *mine);
    for bad in [
        "/v2/reserved-ips?per_page=501",
        "/v2/reserved-ips?cursor=not-a-cursor",
    ] {
        let a = get(&fake, bad);
        assert_eq!(a.status, 400, "{bad}");
        a.error();
    }
    let unknown = get(&fake, &format!("/v2/reserved-ips/{}", vultr::ip_uuid(1)));
    assert_eq!(unknown.status, 404);
    unknown.error();
}

#[test]
fn detach_then_attach_answer_204_before_the_platform_is_done() {
    let (fake, id) = account(Some(B));
    fake.set_action_time(Duration::from_millis(400));
    let d = detach(&fake, &id);
    assert_eq!(d.status, 204, "{}", d.body);
    assert!(d.body.is_empty());
    assert!(
        !d.headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-length")),
        "a 204 says no length"
    );
    // In flight: still attached to B, and an attach is refused as terraform #77 saw.
    assert_eq!(shown(&fake, &id), vultr::instance_uuid(B));
    let refused = attach(&fake, &id, A);
    assert_eq!(refused.status, 400);
    assert!(refused.error().contains("already attached"));
    let again = detach(&fake, &id);
    assert_eq!(again.status, 400);
    assert!(again.error().contains("in progress"));
    std::thread::sleep(Duration::from_millis(450));
    // Detached, not attached anywhere yet.
    assert_eq!(shown(&fake, &id), "");
    assert_eq!(fake.holder(IP), None);
    let nothing = detach(&fake, &id);
    assert_eq!(nothing.status, 400);
    assert_eq!(nothing.error(), "Reserved IP is not attached");

    let a = attach(&fake, &id, A);
    assert_eq!(a.status, 204, "{}", a.body);
    assert_eq!(shown(&fake, &id), "", "the attach is in flight");
    let second = attach(&fake, &id, B);
    assert_eq!(second.status, 400, "another attach meanwhile is refused");
    assert!(second.error().contains("already attached"));
    std::thread::sleep(Duration::from_millis(450));
    assert_eq!(shown(&fake, &id), vultr::instance_uuid(A));
    assert_eq!(fake.holder(IP), Some(A));
    // Attached: a further attach is refused, whatever the instance.
    assert_eq!(attach(&fake, &id, B).status, 400);
}

#[test]
fn bad_requests_and_credentials_answer_in_vultrs_shape() {
    let (fake, id) = account(None);
    let url = format!("{}/v2/reserved-ips", fake.api_url());
    for token in [None, Some("wrong")] {
        let a = call("GET", &url, token, None);
        assert_eq!(a.status, 401);
        assert_eq!(a.error(), "Invalid API token.");
    }
    let a = attach(&fake, &id, 99);
    assert_eq!(a.status, 400);
    assert_eq!(a.error(), "Invalid instance_id.");
    let a = post(
        &fake,
        &format!("/v2/reserved-ips/{id}/attach"),
        &json!({"instance_id": 7}),
    );
    assert_eq!(a.status, 400);
    let a = attach(&fake, &vultr::ip_uuid(1), A);
    assert_eq!(a.status, 404);
    a.error();
    fake.revoke_token(TOKEN);
    assert_eq!(get(&fake, "/v2/reserved-ips").status, 401);
}

#[test]
fn an_errored_change_leaves_the_ip_as_it_was() {
    let (fake, id) = account(Some(B));
    fake.inject(Fault::action_errored().times(1));
    assert_eq!(detach(&fake, &id).status, 204);
    assert_eq!(fake.holder(IP), Some(B), "the platform dropped the detach");
    // No body is documented for a detach: none at all is fine too.
    let bare = call(
        "POST",
        &format!("{}/v2/reserved-ips/{id}/detach", fake.api_url()),
        Some(TOKEN),
        None,
    );
    assert_eq!(bare.status, 204, "{}", bare.body);
    assert_eq!(fake.holder(IP), None);
}

#[test]
fn thirty_requests_a_second_per_source_address() {
    let (fake, _) = account(None);
    let answers: Vec<Answer> = (0..vultr::PER_SECOND + 5)
        .map(|_| get(&fake, "/v2/reserved-ips?per_page=1"))
        .collect();
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    // The 35 requests may straddle a second: at least 30 pass, and some are refused.
    assert!(ok >= vultr::PER_SECOND as usize, "{statuses:?}");
    let limited = answers
        .iter()
        .find(|a| a.status == 429)
        .unwrap_or_else(|| panic!("no 429 in {statuses:?}"));
    assert_eq!(limited.error(), "Rate limit exceeded");
    assert!(
        !limited
            .headers
            .iter()
            .any(|(k, _)| k.to_ascii_lowercase().starts_with("ratelimit")
                || k.eq_ignore_ascii_case("retry-after")),
        "no rate-limit header is documented: {:?}",
        limited.headers
    );
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(get(&fake, "/v2/reserved-ips?per_page=1").status, 200);
}

#[test]
fn the_metadata_service_names_the_instance_both_ways() {
    let fake = FakeCloud::start_vultr();
    let base = fake.add_droplet(A);
    assert!(base.ends_with("/v1"), "{base}");
    let md = |leaf: &str| call("GET", &format!("{base}/{leaf}"), None, None);
    let v2 = md("instance-v2-id");
    assert_eq!(v2.status, 200);
    assert_eq!(v2.body, vultr::instance_uuid(A));
    assert_eq!(md("instanceid").body, A.to_string());
    assert_eq!(md("region/regioncode").body, "EWR");
    assert_eq!(md("reserved-ips").status, 404);
    let tree = call("GET", &format!("{base}.json"), None, None).json();
    assert_eq!(tree["instance-v2-id"], vultr::instance_uuid(A).as_str());
    assert_eq!(tree["instanceid"], A.to_string().as_str());
}

#[test]
fn faults_answer_in_the_dialect_and_other_ip_acts_on_reads_of_one_ip() {
    let (fake, id) = account(Some(A));
    fake.inject(Fault::status(Scope::Api, 503).times(1));
    let a = get(&fake, "/v2/reserved-ips");
    assert_eq!(a.status, 503);
    a.error();
    fake.inject(Fault::rate_limited(30).times(1));
    let a = get(&fake, "/v2/reserved-ips");
    assert_eq!(a.status, 429);
    assert_eq!(a.error(), "Rate limit exceeded");
    fake.inject(Fault::new(Scope::Api, FaultKind::OtherIp).times(1));
    // A listing is not a read of one IP: it passes and leaves the fault in place.
    assert_eq!(get(&fake, "/v2/reserved-ips").status, 200);
    let other = get(&fake, &format!("/v2/reserved-ips/{id}")).json();
    assert_eq!(other["reserved_ip"]["subnet"], OTHER_IP);
    assert_eq!(other["reserved_ip"]["id"], id.as_str());
    assert_eq!(
        other["reserved_ip"]["instance_id"],
        vultr::instance_uuid(A).as_str()
    );
    assert_eq!(shown(&fake, &id), vultr::instance_uuid(A), "once only");
}
