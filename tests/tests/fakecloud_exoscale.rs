//! The fake's Exoscale dialect checked against shared/docs/clouds.md (its Exoscale section) with
//! a plain HTTP client: the signature (the two test vectors, and each way a request is refused),
//! elastic IPs of one zone, instances with their `elastic-ips`, an attach that does not detach
//! the other holders, detach, operations pending then success or failure, errors in Exoscale's
//! shape, the metadata service per instance, and the faults that answer in the dialect.

use cloudha_tests::fakecloud::exoscale::{
    self, instance_uuid, parse_authorization, signature, verify, ZONE,
};
use cloudha_tests::fakecloud::{FakeCloud, Fault, FaultKind, Scope};
use cloudha_tests::http::{request, Answer};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const KEY: &str = "EXOxxxxxxxxxxxxxxxxxxxxxxxx";
const EXPIRES: u64 = 3376684800;

fn secret() -> String {
    "X".repeat(43)
}

fn secret_of(key: &str) -> Option<String> {
    (key == KEY).then(secret)
}

const VECTOR_1: &str = "EXO2-HMAC-SHA256 credential=EXOxxxxxxxxxxxxxxxxxxxxxxxx,\
                        expires=3376684800,signature=Ntbq/p0HVmA3Zg1HHY+Lq1vjFGi7HeMrrgXDS5jRNlY=";
const VECTOR_2: &str = "EXO2-HMAC-SHA256 credential=EXOxxxxxxxxxxxxxxxxxxxxxxxx,\
                        signed-query-args=k1;k2,expires=3376684800,\
                        signature=iqOBz13+44L5j0uJclE8hmUhQQcvtCSoPEOXYK6liqY=";

#[test]
fn the_test_vectors_are_signed_and_accepted() {
    assert_eq!(
        signature(&secret(), "GET", "/v2/zone", b"", &[], EXPIRES).unwrap(),
        "Ntbq/p0HVmA3Zg1HHY+Lq1vjFGi7HeMrrgXDS5jRNlY="
    );
    let args = ["k1".to_string(), "k2".to_string()];
    assert_eq!(
        signature(
            &secret(),
            "GET",
            "/v2/zone?k1=v1&k2=v2",
            b"",
            &args,
            EXPIRES
        )
        .unwrap(),
        "iqOBz13+44L5j0uJclE8hmUhQQcvtCSoPEOXYK6liqY="
    );
    let now = EXPIRES - 600;
    assert_eq!(
        verify(Some(VECTOR_1), "GET", "/v2/zone", b"", now, secret_of).unwrap(),
        KEY
    );
    assert_eq!(
        verify(
            Some(VECTOR_2),
            "GET",
            "/v2/zone?k1=v1&k2=v2",
            b"",
            now,
            secret_of
        )
        .unwrap(),
        KEY
    );
    let parsed = parse_authorization(VECTOR_2).unwrap();
    assert_eq!(parsed.signed_query_args, ["k1", "k2"]);
    assert_eq!(parsed.expires, EXPIRES);
}

#[test]
fn every_wrong_request_is_refused_with_401_or_403() {
    let now = EXPIRES - 600;
    let refused = |auth: Option<&str>, method: &str, target: &str, body: &[u8], now: u64| {
        let r = verify(auth, method, target, body, now, secret_of).unwrap_err();
        assert!([401, 403].contains(&r.status), "{r:?}");
        assert!(r.body()["message"].is_string());
        r.status
    };
    // No header, another scheme, a malformed one.
    assert_eq!(refused(None, "GET", "/v2/zone", b"", now), 401);
    assert_eq!(refused(Some("Bearer x"), "GET", "/v2/zone", b"", now), 401);
    assert_eq!(
        refused(
            Some("EXO2-HMAC-SHA256 credential=EXOx"),
            "GET",
            "/v2/zone",
            b"",
            now
        ),
        401
    );
    // Expired.
    assert_eq!(
        refused(Some(VECTOR_1), "GET", "/v2/zone", b"", EXPIRES + 1),
        401
    );
    // Another method, path, body or query than signed.
    assert_eq!(refused(Some(VECTOR_1), "PUT", "/v2/zone", b"", now), 403);
    assert_eq!(refused(Some(VECTOR_1), "GET", "/v2/zonf", b"", now), 403);
    assert_eq!(refused(Some(VECTOR_1), "GET", "/v2/zone", b"{}", now), 403);
    assert_eq!(
        refused(Some(VECTOR_2), "GET", "/v2/zone?k1=v1&k2=v3", b"", now),
        403
    );
    // A wrong secret, an unknown key.
    let wrong = signature(&"Y".repeat(43), "GET", "/v2/zone", b"", &[], EXPIRES).unwrap();
    let header = format!("EXO2-HMAC-SHA256 credential={KEY},expires={EXPIRES},signature={wrong}");
    assert_eq!(refused(Some(&header), "GET", "/v2/zone", b"", now), 403);
    let other = VECTOR_1.replace(KEY, "EXOyyyyyyyyyyyyyyyyyyyyyyyy");
    assert_eq!(refused(Some(&other), "GET", "/v2/zone", b"", now), 403);
}

#[test]
fn the_colon_of_an_action_is_signed_as_written() {
    let target = "/v2/elastic-ip/6c0ad3d7-0ba5-4c87-a6d4-1a1dd7b2a9a1:attach";
    let body = br#"{"instance":{"id":"0b3f5e62-7b64-4c7c-9a38-2d0e4c1f7a10"}}"#;
    let sig = signature(&secret(), "PUT", target, body, &[], EXPIRES).unwrap();
    let header = format!("EXO2-HMAC-SHA256 credential={KEY},expires={EXPIRES},signature={sig}");
    assert!(verify(Some(&header), "PUT", target, body, EXPIRES, secret_of).is_ok());
    let escaped = target.replace(':', "%3A");
    assert!(verify(Some(&header), "PUT", &escaped, body, EXPIRES, secret_of).is_err());
}

// ---- over HTTP ----

const IP: &str = "203.0.113.10";
const SECRET: &str = "fake-secret-0123456789";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// One request signed with `key`/`secret`, expiring at `expires`.
fn signed(
    fake: &FakeCloud,
    method: &str,
    path: &str,
    body: Option<&Value>,
    (key, secret, expires): (&str, &str, u64),
) -> Answer {
    let body = body.map(Value::to_string).unwrap_or_default();
    let sig = signature(secret, method, path, body.as_bytes(), &[], expires).unwrap();
    let auth = format!("EXO2-HMAC-SHA256 credential={key},expires={expires},signature={sig}");
    let url = format!("{}{path}", fake.api_url());
    request(method, &url, &[("Authorization", &auth)], Some(&body))
}

fn call(fake: &FakeCloud, method: &str, path: &str, body: Option<&Value>) -> Answer {
    signed(fake, method, path, body, (KEY, SECRET, now() + 600))
}

fn account(holders: &[u64]) -> FakeCloud {
    let fake = FakeCloud::start_exoscale();
    fake.add_api_key(KEY, SECRET);
    for n in [1, 2, 3] {
        fake.register_droplet(n);
    }
    fake.add_ip_in(IP, ZONE, None);
    fake.add_ip_in("198.51.100.20", "de-fra-1", None);
    fake.set_holders(IP, holders);
    fake
}

fn ip_id(fake: &FakeCloud) -> String {
    let v = call(fake, "GET", "/v2/elastic-ip", None).json();
    let list = v["elastic-ips"].as_array().unwrap();
    let found = list.iter().find(|e| e["ip"] == IP).unwrap();
    found["id"].as_str().unwrap().to_string()
}

fn move_op(fake: &FakeCloud, command: &str, instance: u64) -> Answer {
    let path = format!("/v2/elastic-ip/{}:{command}", ip_id(fake));
    call(
        fake,
        "PUT",
        &path,
        Some(&json!({"instance": {"id": instance_uuid(instance)}})),
    )
}

fn held_by(fake: &FakeCloud, instance: u64) -> Vec<String> {
    let v = call(
        fake,
        "GET",
        &format!("/v2/instance/{}", instance_uuid(instance)),
        None,
    )
    .json();
    v["elastic-ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["ip"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn only_signed_requests_are_answered() {
    let fake = account(&[]);
    assert_eq!(call(&fake, "GET", "/v2/elastic-ip", None).status, 200);
    let later = now() + 600;
    for (who, want) in [
        ((KEY, "wrong secret", later), 403),
        (("EXOunknown", SECRET, later), 403),
        ((KEY, SECRET, now() - 1), 401),
    ] {
        let a = signed(&fake, "GET", "/v2/elastic-ip", None, who);
        assert_eq!(a.status, want, "{}", a.body);
        assert!(a.json()["message"].is_string());
    }
    fake.revoke_api_key(KEY);
    assert_eq!(call(&fake, "GET", "/v2/elastic-ip", None).status, 403);
}

#[test]
fn elastic_ips_of_the_zone_and_instances_with_theirs() {
    let fake = account(&[1]);
    let v = call(&fake, "GET", "/v2/elastic-ip", None).json();
    let list = v["elastic-ips"].as_array().unwrap();
    // The IP of another zone is not in this zone's API.
    assert_eq!(list.len(), 1, "{v}");
    assert_eq!(list[0]["ip"], IP);
    assert_eq!(list[0]["addressfamily"], "inet4");
    let id = ip_id(&fake);
    let one = call(&fake, "GET", &format!("/v2/elastic-ip/{id}"), None);
    assert_eq!(one.json()["ip"], IP);
    assert_eq!(held_by(&fake, 1), [IP]);
    assert!(held_by(&fake, 2).is_empty());
    let all = call(&fake, "GET", "/v2/instance", None).json();
    assert_eq!(all["instances"].as_array().unwrap().len(), 3);
    let missing = call(
        &fake,
        "GET",
        &format!("/v2/instance/{}", instance_uuid(9)),
        None,
    );
    assert_eq!(missing.status, 404);
    assert!(missing.json()["message"].is_string());
}

#[test]
fn an_attach_does_not_detach_the_other_holder() {
    let fake = account(&[1]);
    fake.set_action_time(Duration::from_millis(300));
    let op = move_op(&fake, "attach", 2);
    assert_eq!(op.status, 200, "{}", op.body);
    let op = op.json();
    assert_eq!(op["state"], "pending");
    assert_eq!(op["reference"]["command"], "attach-instance-to-elastic-ip");
    let path = format!("/v2/operation/{}", op["id"].as_str().unwrap());
    assert_eq!(call(&fake, "GET", &path, None).json()["state"], "pending");
    assert_eq!(fake.holders(IP), [1]);
    std::thread::sleep(Duration::from_millis(350));
    assert_eq!(call(&fake, "GET", &path, None).json()["state"], "success");
    // Two holders now: the fake allows it, as Exoscale does.
    assert_eq!(fake.holders(IP), [1, 2]);
    assert_eq!(held_by(&fake, 1), [IP]);
    assert_eq!(held_by(&fake, 2), [IP]);
    // Detach the old one; a detach of a non-holder changes nothing and succeeds.
    fake.set_action_time(Duration::ZERO);
    assert_eq!(move_op(&fake, "detach", 1).json()["state"], "pending");
    assert_eq!(fake.holders(IP), [2]);
    let again = move_op(&fake, "detach", 1).json();
    let path = format!("/v2/operation/{}", again["id"].as_str().unwrap());
    assert_eq!(call(&fake, "GET", &path, None).json()["state"], "success");
    assert_eq!(fake.holders(IP), [2]);
    // Unknown instance: 404.
    assert_eq!(move_op(&fake, "attach", 9).status, 404);
}

#[test]
fn an_errored_operation_is_a_failure_and_changes_nothing() {
    let fake = account(&[1]);
    fake.inject(Fault::action_errored().times(1));
    let op = move_op(&fake, "detach", 1).json();
    let path = format!("/v2/operation/{}", op["id"].as_str().unwrap());
    let op = call(&fake, "GET", &path, None).json();
    assert_eq!(op["state"], "failure");
    assert_eq!(fake.holders(IP), [1]);
}

#[test]
fn faults_answer_in_exoscales_shape() {
    let fake = account(&[]);
    fake.inject(Fault::status(Scope::Api, 503).times(1));
    let a = call(&fake, "GET", "/v2/elastic-ip", None);
    assert_eq!(a.status, 503);
    assert!(a.json()["message"].is_string());
    fake.inject(Fault::new(Scope::Api, FaultKind::RateLimited { retry_after: 7 }).times(1));
    let a = call(&fake, "GET", "/v2/elastic-ip", None);
    assert_eq!(a.status, 429);
    assert_eq!(a.json()["retry_after"], 7);
    fake.set_rate_limit(1, 100);
    assert_eq!(call(&fake, "GET", "/v2/elastic-ip", None).status, 200);
    let a = call(&fake, "GET", "/v2/elastic-ip", None);
    assert_eq!(a.status, 429);
    assert!(a.json()["retry_after"].as_u64().unwrap() >= 1);
}

#[test]
fn each_instance_has_its_metadata() {
    let fake = account(&[]);
    let url = fake.add_droplet(2);
    assert!(url.ends_with("/latest/meta-data"), "{url}");
    let get = |leaf: &str| {
        let mut r = ureq::get(&format!("{url}/{leaf}")).call().unwrap();
        r.body_mut().read_to_string().unwrap()
    };
    assert_eq!(get("instance-id"), instance_uuid(2));
    assert_eq!(get("availability-zone"), exoscale::ZONE);
    assert!(exoscale::instance_of_uuid(&instance_uuid(2)) == Some(2));
}
