//! The fake cloud checked against shared/docs/digitalocean.md with a plain HTTP client: each
//! documented behaviour, each fault, the request record, the listeners in network namespaces,
//! the admin interface and the standalone program. This is what makes the fake trustworthy.

use cloudha_tests::fakecloud::{
    ActionKind, ActionStatus, FakeCloud, Fault, Scope, OTHER_IP, OTHER_IP_ALT,
};
use cloudha_tests::http::{agent, bearer, Answer};
use cloudha_tests::{require_root, Netns};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const IP: &str = "203.0.113.10";
const TOKEN: &str = "good-token";

fn call(method: &str, url: &str, token: Option<&str>, body: Option<&Value>) -> Answer {
    bearer(method, url, token, body)
}

fn get(url: &str) -> Answer {
    call("GET", url, Some(TOKEN), None)
}

fn assign(cloud: &FakeCloud, family: &str, droplet: u64) -> Answer {
    call(
        "POST",
        &format!("{}/v2/{family}/{IP}/actions", cloud.api_url()),
        Some(TOKEN),
        Some(&json!({"type": "assign", "droplet_id": droplet})),
    )
}

/// A fake with one token, IP held by 101, droplets 101 and 102 with metadata listeners.
fn setup() -> (FakeCloud, String, String) {
    let cloud = FakeCloud::start();
    cloud.add_token(TOKEN);
    cloud.add_ip(IP, Some(101));
    let md101 = cloud.add_droplet(101);
    let md102 = cloud.add_droplet(102);
    (cloud, md101, md102)
}

fn assert_error(a: &Answer, status: u16, id: &str) {
    assert_eq!(a.status, status, "{}", a.body);
    let v = a.json();
    assert_eq!(v["id"], id, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(
        v["request_id"].as_str().is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    assert!(a
        .header("content-type")
        .unwrap_or("")
        .starts_with("application/json"));
}

fn assert_rate_headers(a: &Answer) {
    for h in ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"] {
        let v = a
            .header(h)
            .unwrap_or_else(|| panic!("{h} missing on a {} answer", a.status));
        v.parse::<u64>()
            .unwrap_or_else(|_| panic!("{h}: {v:?} is not a number"));
    }
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn reads_an_ip_under_both_names() {
    let (cloud, _, _) = setup();
    for (family, key) in [
        ("reserved_ips", "reserved_ip"),
        ("floating_ips", "floating_ip"),
    ] {
        let a = get(&format!("{}/v2/{family}/{IP}", cloud.api_url()));
        assert_eq!(a.status, 200, "{}", a.body);
        assert!(a
            .header("content-type")
            .unwrap_or("")
            .starts_with("application/json"));
        assert_rate_headers(&a);
        let v = a.json();
        let obj = &v[key];
        assert_eq!(
            v.as_object().map(|o| o.len()),
            Some(1),
            "one top-level key: {v}"
        );
        assert_eq!(obj["ip"], IP);
        assert_eq!(obj["region"]["slug"], "nyc3");
        assert_eq!(obj["droplet"]["id"], 101);
        assert_eq!(obj["locked"], false);
        assert!(obj["project_id"].is_string());
    }
    cloud.add_ip("203.0.113.11", None);
    let v = get(&format!("{}/v2/reserved_ips/203.0.113.11", cloud.api_url())).json();
    assert_eq!(v["reserved_ip"]["droplet"], Value::Null);
    let list = get(&format!("{}/v2/floating_ips", cloud.api_url())).json();
    assert_eq!(
        list["floating_ips"].as_array().map(Vec::len),
        Some(2),
        "{list}"
    );
    assert_eq!(list["meta"]["total"], 2);
}

#[test]
fn a_missing_wrong_or_revoked_token_is_401() {
    let (cloud, _, _) = setup();
    let url = format!("{}/v2/reserved_ips/{IP}", cloud.api_url());
    for token in [None, Some("wrong-token"), Some("")] {
        let a = call("GET", &url, token, None);
        assert_error(&a, 401, "unauthorized");
        assert_eq!(a.json()["message"], "Unable to authenticate you.");
        assert_rate_headers(&a);
    }
    // Not Bearer: refused too.
    let a = agent()
        .get(&url)
        .header("Authorization", format!("Basic {TOKEN}"))
        .call()
        .expect("answer");
    assert_eq!(a.status().as_u16(), 401);
    // An assign with a bad token changes nothing.
    let a = call(
        "POST",
        &format!("{url}/actions"),
        Some("wrong"),
        Some(&json!({"type": "assign", "droplet_id": 102})),
    );
    assert_error(&a, 401, "unauthorized");
    assert!(cloud.actions().is_empty());
    assert_eq!(get(&url).status, 200);
    cloud.revoke_token(TOKEN);
    assert_error(&get(&url), 401, "unauthorized");
}

#[test]
fn an_unknown_ip_or_path_is_404() {
    let (cloud, _, _) = setup();
    let api = cloud.api_url();
    for url in [
        format!("{api}/v2/reserved_ips/198.51.100.7"),
        format!("{api}/v2/floating_ips/198.51.100.7"),
        format!("{api}/v2/reserved_ips/198.51.100.7/actions/1"),
        format!("{api}/v2/actions/12345"),
        format!("{api}/v2/droplets/x/y/z"),
        format!("{api}/nothing"),
    ] {
        let a = get(&url);
        assert_error(&a, 404, "not_found");
        assert_rate_headers(&a);
    }
    let a = call(
        "POST",
        &format!("{api}/v2/reserved_ips/198.51.100.7/actions"),
        Some(TOKEN),
        Some(&json!({"type": "assign", "droplet_id": 101})),
    );
    assert_error(&a, 404, "not_found");
    assert!(cloud.actions().is_empty());
}

fn check_action(a: &Value, status: &str, kind: &str, resource_type: &str) {
    assert!(a["id"].is_u64(), "{a}");
    assert_eq!(a["status"], status, "{a}");
    assert_eq!(a["type"], kind, "{a}");
    assert!(
        a["started_at"]
            .as_str()
            .is_some_and(|s| s.len() == 20 && s.ends_with('Z')),
        "{a}"
    );
    if status == "in-progress" {
        assert_eq!(a["completed_at"], Value::Null, "{a}");
    } else {
        assert!(a["completed_at"].is_string(), "{a}");
    }
    assert!(a["resource_id"].is_u64(), "{a}");
    assert_eq!(a["resource_type"], resource_type, "{a}");
    assert_eq!(a["region"]["slug"], "nyc3", "{a}");
    assert_eq!(a["region_slug"], "nyc3", "{a}");
}

#[test]
fn an_assign_stays_in_progress_then_completes_and_moves_the_ip() {
    let (cloud, _, _) = setup();
    let api = cloud.api_url();
    // Long enough for the checks below to run while it is pending, even on a loaded machine.
    cloud.set_action_time(Duration::from_secs(2));
    let a = assign(&cloud, "reserved_ips", 102);
    assert_eq!(a.status, 201, "{}", a.body);
    assert_rate_headers(&a);
    let action = a.json()["action"].clone();
    check_action(&action, "in-progress", "assign_ip", "reserved_ip");
    let id = action["id"].as_u64().expect("id");

    // Pending: locked, still held by 101, a second action refused with 422 by either path.
    let ip = get(&format!("{api}/v2/reserved_ips/{IP}")).json();
    assert_eq!(ip["reserved_ip"]["locked"], true);
    assert_eq!(ip["reserved_ip"]["droplet"]["id"], 101);
    assert_eq!(cloud.holder(IP), Some(101));
    assert!(cloud.locked(IP));
    for family in ["reserved_ips", "floating_ips"] {
        let again = assign(&cloud, family, 101);
        assert_error(&again, 422, "unprocessable_entity");
        assert_eq!(
            again.json()["message"],
            "The floating IP already has a pending event."
        );
    }
    let unassign = call(
        "POST",
        &format!("{api}/v2/reserved_ips/{IP}/actions"),
        Some(TOKEN),
        Some(&json!({"type": "unassign"})),
    );
    assert_error(&unassign, 422, "unprocessable_entity");

    // Status by all three paths.
    let by_reserved = get(&format!("{api}/v2/reserved_ips/{IP}/actions/{id}"));
    assert_eq!(by_reserved.status, 200);
    check_action(
        &by_reserved.json()["action"],
        "in-progress",
        "assign_ip",
        "reserved_ip",
    );
    let by_floating = get(&format!("{api}/v2/floating_ips/{IP}/actions/{id}"));
    check_action(
        &by_floating.json()["action"],
        "in-progress",
        "assign_ip",
        "floating_ip",
    );
    let by_actions = get(&format!("{api}/v2/actions/{id}"));
    check_action(
        &by_actions.json()["action"],
        "in-progress",
        "assign_ip",
        "reserved_ip",
    );
    // An action id under another IP is not found.
    cloud.add_ip("203.0.113.11", None);
    assert_eq!(
        get(&format!("{api}/v2/reserved_ips/203.0.113.11/actions/{id}")).status,
        404
    );

    wait_until("the action to complete", Duration::from_secs(5), || {
        get(&format!("{api}/v2/actions/{id}")).json()["action"]["status"] == "completed"
    });
    let done = get(&format!("{api}/v2/reserved_ips/{IP}/actions/{id}")).json();
    check_action(&done["action"], "completed", "assign_ip", "reserved_ip");
    let ip = get(&format!("{api}/v2/floating_ips/{IP}")).json();
    assert_eq!(
        ip["floating_ip"]["droplet"]["id"], 102,
        "moved in one action"
    );
    assert_eq!(ip["floating_ip"]["locked"], false);
    assert_eq!(cloud.holder(IP), Some(102));
    let actions = cloud.actions();
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].kind, ActionKind::Assign(102));
    assert_eq!(actions[0].status, ActionStatus::Completed);
    // Now a new action is accepted.
    assert_eq!(assign(&cloud, "floating_ips", 101).status, 201);
}

#[test]
fn unassign_releases_the_ip_and_bad_bodies_are_refused() {
    let (cloud, md101, _) = setup();
    let url = format!("{}/v2/floating_ips/{IP}/actions", cloud.api_url());
    let a = call(
        "POST",
        &url,
        Some(TOKEN),
        Some(&json!({"type": "unassign"})),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    check_action(
        &a.json()["action"],
        "in-progress",
        "unassign_ip",
        "floating_ip",
    );
    wait_until("unassigned", Duration::from_secs(5), || {
        cloud.holder(IP).is_none()
    });
    assert_eq!(
        get(&format!("{md101}/floating_ip/ipv4/active")).body,
        "false"
    );
    assert_eq!(
        get(&format!("{md101}/floating_ip/ipv4/ip_address")).status,
        404
    );
    // Nothing to unassign, unknown type, missing droplet, unknown droplet, not JSON.
    for body in [
        json!({"type": "unassign"}),
        json!({"type": "teleport"}),
        json!({"type": "assign"}),
        json!({"type": "assign", "droplet_id": "102"}),
        json!({"type": "assign", "droplet_id": 999}),
    ] {
        let a = call("POST", &url, Some(TOKEN), Some(&body));
        assert_error(&a, 422, "unprocessable_entity");
    }
    let raw = agent()
        .post(&url)
        .header("Authorization", format!("Bearer {TOKEN}"))
        .send("{not json")
        .expect("answer");
    assert_eq!(raw.status().as_u16(), 400);
    assert_eq!(cloud.actions().len(), 1);
}

#[test]
fn an_injected_error_makes_the_action_errored_and_the_holder_stays() {
    let (cloud, _, _) = setup();
    cloud.set_action_time(Duration::from_millis(100));
    cloud.inject(Fault::action_errored().times(1));
    let id = assign(&cloud, "reserved_ips", 102).json()["action"]["id"]
        .as_u64()
        .expect("id");
    let url = format!("{}/v2/actions/{id}", cloud.api_url());
    wait_until("the action to end", Duration::from_secs(5), || {
        get(&url).json()["action"]["status"] != "in-progress"
    });
    check_action(
        &get(&url).json()["action"],
        "errored",
        "assign_ip",
        "reserved_ip",
    );
    assert_eq!(cloud.holder(IP), Some(101));
    assert!(!cloud.locked(IP));
    // Used up: the next one completes.
    let id = assign(&cloud, "reserved_ips", 102).json()["action"]["id"]
        .as_u64()
        .expect("id");
    wait_until("completed", Duration::from_secs(5), || {
        get(&format!("{}/v2/actions/{id}", cloud.api_url())).json()["action"]["status"]
            == "completed"
    });
    assert_eq!(cloud.holder(IP), Some(102));
}

#[test]
fn the_rate_limit_counts_per_token_and_answers_429_with_retry_after() {
    let (cloud, _, _) = setup();
    cloud.add_token("other-token");
    cloud.set_rate_limit(3, 100);
    let url = format!("{}/v2/reserved_ips/{IP}", cloud.api_url());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    for left in [99, 98, 97] {
        let a = get(&url);
        assert_eq!(a.status, 200);
        assert_eq!(a.header("ratelimit-limit"), Some("100"));
        assert_eq!(
            a.header("ratelimit-remaining"),
            Some(left.to_string().as_str())
        );
        let reset: u64 = a
            .header("ratelimit-reset")
            .and_then(|r| r.parse().ok())
            .expect("reset");
        assert!(
            (now + 3590..=now + 3602).contains(&reset),
            "reset {reset} vs now {now}"
        );
    }
    let a = get(&url);
    assert_error(&a, 429, "too_many_requests");
    let retry: u64 = a
        .header("retry-after")
        .and_then(|r| r.parse().ok())
        .expect("retry-after");
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    assert_eq!(
        a.header("ratelimit-remaining"),
        Some("97"),
        "a refused request is not counted"
    );
    // Another token has its own budget.
    let b = call("GET", &url, Some("other-token"), None);
    assert_eq!(b.status, 200);
    assert_eq!(b.header("ratelimit-remaining"), Some("99"));
    // The hourly budget: once spent, 429 until it resets.
    cloud.set_rate_limit(1000, 4);
    assert_eq!(get(&url).status, 200);
    let a = get(&url);
    assert_error(&a, 429, "too_many_requests");
    assert_eq!(a.header("ratelimit-remaining"), Some("0"));
    let retry: u64 = a
        .header("retry-after")
        .and_then(|r| r.parse().ok())
        .expect("retry-after");
    assert!(retry > 3000, "retry-after {retry}");
}

#[test]
fn metadata_answers_as_the_droplet_sees_it() {
    let (cloud, md101, md102) = setup();
    cloud.set_anchor(101, "10.17.0.5", "255.255.0.0", "10.17.0.1");
    let text = |url: String| {
        let a = call("GET", &url, None, None);
        assert_eq!(a.status, 200, "{url}");
        assert!(
            a.header("content-type")
                .unwrap_or("")
                .starts_with("text/plain"),
            "{url}"
        );
        a.body
    };
    assert_eq!(text(format!("{md101}/id")), "101");
    assert_eq!(text(format!("{md102}/id")), "102");
    for family in ["floating_ip", "reserved_ip"] {
        assert_eq!(text(format!("{md101}/{family}/ipv4/active")), "true");
        assert_eq!(text(format!("{md101}/{family}/ipv4/ip_address")), IP);
        assert_eq!(text(format!("{md102}/{family}/ipv4/active")), "false");
        assert_eq!(
            call(
                "GET",
                &format!("{md102}/{family}/ipv4/ip_address"),
                None,
                None
            )
            .status,
            404
        );
    }
    let anchor = format!("{md101}/interfaces/public/0/anchor_ipv4");
    assert_eq!(text(format!("{anchor}/address")), "10.17.0.5");
    assert_eq!(text(format!("{anchor}/netmask")), "255.255.0.0");
    assert_eq!(text(format!("{anchor}/gateway")), "10.17.0.1");
    // No anchor on 102 (made before Oct 2015, or a custom image).
    assert_eq!(
        call(
            "GET",
            &format!("{md102}/interfaces/public/0/anchor_ipv4/address"),
            None,
            None
        )
        .status,
        404
    );
    for unknown in [
        "nothing",
        "id/x",
        "floating_ip/ipv6/active",
        "interfaces/private/0/ipv4/address",
    ] {
        assert_eq!(
            call("GET", &format!("{md101}/{unknown}"), None, None).status,
            404,
            "{unknown}"
        );
    }
    assert_eq!(
        call("GET", &md101.replace("/metadata/v1", "/other"), None, None).status,
        404
    );
    // Directory listings, as the real service.
    let root = text(format!("{md101}/"));
    for entry in ["id", "floating_ip/", "reserved_ip/", "interfaces/"] {
        assert!(root.lines().any(|l| l == entry), "{entry} in {root:?}");
    }
    assert_eq!(text(format!("{anchor}/")), "address\ngateway\nnetmask");
    // Everything at once.
    let all = call("GET", &format!("{md101}.json"), None, None);
    assert!(all
        .header("content-type")
        .unwrap_or("")
        .starts_with("application/json"));
    let v = all.json();
    assert_eq!(v["droplet_id"], 101);
    assert_eq!(v["floating_ip"]["ipv4"]["active"], true);
    assert_eq!(v["reserved_ip"]["ipv4"]["ip_address"], IP);
    assert_eq!(
        v["interfaces"]["public"][0]["anchor_ipv4"]["ip_address"],
        "10.17.0.5"
    );
    assert_eq!(
        v["interfaces"]["public"][0]["anchor_ipv4"]["netmask"],
        "255.255.0.0"
    );
    let v = call("GET", &format!("{md102}.json"), None, None).json();
    assert_eq!(v["floating_ip"]["ipv4"]["active"], false);
    assert!(v["interfaces"]["public"][0].get("anchor_ipv4").is_none());
    // Not GET: refused.
    assert_eq!(
        call("POST", &format!("{md101}/id"), None, Some(&json!({}))).status,
        405
    );
    cloud.clear_anchor(101);
    assert_eq!(
        call("GET", &format!("{anchor}/address"), None, None).status,
        404
    );
}

#[test]
fn metadata_follows_assignments_after_completion_and_with_a_lag() {
    let (cloud, md101, md102) = setup();
    let active = |md: &str| call("GET", &format!("{md}/reserved_ip/ipv4/active"), None, None).body;
    cloud.set_action_time(Duration::from_millis(1500));
    assert_eq!(assign(&cloud, "reserved_ips", 102).status, 201);
    // While in progress nothing has moved.
    assert_eq!(active(&md101), "true");
    assert_eq!(active(&md102), "false");
    wait_until("the move", Duration::from_secs(5), || {
        cloud.holder(IP) == Some(102)
    });
    assert_eq!(active(&md101), "false");
    assert_eq!(active(&md102), "true");

    // With a lag, metadata sees a change that long after the action completed.
    let (cloud, md101, md102) = setup();
    cloud.set_metadata_lag(Duration::from_millis(1500));
    let moved = Instant::now();
    assert_eq!(assign(&cloud, "reserved_ips", 102).status, 201);
    assert_eq!(cloud.holder(IP), Some(102), "the API sees it at once");
    let (seen101, seen102) = (active(&md101), active(&md102));
    if moved.elapsed() < Duration::from_millis(1400) {
        assert_eq!(
            (seen101.as_str(), seen102.as_str()),
            ("true", "false"),
            "still the old view"
        );
    }
    wait_until("metadata to catch up", Duration::from_secs(5), || {
        active(&md102) == "true"
    });
    assert!(
        moved.elapsed() >= Duration::from_millis(1500),
        "not before the lag"
    );
    assert_eq!(active(&md101), "false");
    // set_holder moves it behind the API's back (as another client would).
    cloud.set_metadata_lag(Duration::ZERO);
    assert_eq!(active(&md102), "true");
    cloud.set_holder(IP, None);
    assert_eq!(active(&md102), "false");
    assert_eq!(cloud.holder(IP), None);
}

#[test]
fn injected_5xx_fire_n_times_or_for_a_fraction_and_are_transient() {
    let (cloud, md101, _) = setup();
    let url = format!("{}/v2/reserved_ips/{IP}", cloud.api_url());
    cloud.inject(Fault::status(Scope::Api, 503).times(2));
    for _ in 0..2 {
        let a = get(&url);
        assert_error(&a, 503, "server_error");
        assert_rate_headers(&a);
    }
    assert_eq!(get(&url).status, 200);
    // Other statuses carry DigitalOcean's error for them.
    cloud.inject(Fault::status(Scope::Api, 422).times(1));
    let a = get(&url);
    assert_error(&a, 422, "unprocessable_entity");
    assert_eq!(
        a.json()["message"],
        "The floating IP already has a pending event."
    );
    cloud.inject(Fault::status(Scope::Api, 401).times(1));
    assert_error(&get(&url), 401, "unauthorized");
    // Narrowed to a method: POSTs fail, GETs do not.
    cloud.inject(Fault::status(Scope::Api, 500).method("POST"));
    assert_eq!(get(&url).status, 200);
    assert_error(&assign(&cloud, "reserved_ips", 102), 500, "server_error");
    assert!(cloud.actions().is_empty(), "a failed request did nothing");
    cloud.clear_faults();
    // A fraction, on metadata only.
    cloud.seed_faults(7);
    cloud.inject(Fault::status(Scope::Metadata, 502).fraction(0.5));
    let failed = (0..60)
        .filter(|_| call("GET", &format!("{md101}/id"), None, None).status == 502)
        .count();
    assert!((15..=45).contains(&failed), "{failed} of 60");
    assert_eq!(get(&url).status, 200, "the API is not affected");
    cloud.clear_faults();
    assert_eq!(call("GET", &format!("{md101}/id"), None, None).status, 200);
}

#[test]
fn an_injected_rate_limit_answers_429() {
    let (cloud, _, _) = setup();
    cloud.inject(Fault::rate_limited(7).times(1));
    let a = get(&format!("{}/v2/reserved_ips/{IP}", cloud.api_url()));
    assert_error(&a, 429, "too_many_requests");
    assert_eq!(a.header("retry-after"), Some("7"));
    assert_rate_headers(&a);
    assert_eq!(
        get(&format!("{}/v2/reserved_ips/{IP}", cloud.api_url())).status,
        200
    );
}

#[test]
fn an_injected_delay_delays_the_answer() {
    let (cloud, md101, _) = setup();
    cloud.inject(Fault::delay(Scope::MetadataOf(101), Duration::from_millis(400)).times(1));
    let t = Instant::now();
    assert_eq!(call("GET", &format!("{md101}/id"), None, None).body, "101");
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
}

fn host_port(url: &str) -> SocketAddr {
    let rest = url.trim_start_matches("http://");
    rest.split('/').next().expect("host").parse().expect("addr")
}

fn raw_get(addr: SocketAddr, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    s
}

#[test]
fn an_injected_reset_resets_the_connection() {
    let (cloud, md101, _) = setup();
    cloud.inject(Fault::reset(Scope::Api).times(1));
    let mut s = raw_get(
        host_port(&cloud.api_url()),
        &format!("/v2/reserved_ips/{IP}"),
    );
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = Vec::new();
    let e = s.read_to_end(&mut buf).expect_err("a reset, not an answer");
    assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
    assert!(buf.is_empty());
    assert_eq!(
        get(&format!("{}/v2/reserved_ips/{IP}", cloud.api_url())).status,
        200
    );
    // The request was received (and recorded) before the reset.
    assert_eq!(cloud.api_request_count(), 2);
    // Outage: every connection to droplet 101's metadata is reset before anything is read.
    cloud.inject(Fault::outage(Scope::MetadataOf(101)));
    for _ in 0..3 {
        assert!(agent().get(&format!("{md101}/id")).call().is_err());
    }
    assert_eq!(cloud.metadata_request_count(101), 0);
    cloud.clear_faults();
    assert_eq!(call("GET", &format!("{md101}/id"), None, None).body, "101");
    // A connection kept alive from before the outage is cut at its next request.
    let mut s = TcpStream::connect(host_port(&md101)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(s, "GET /metadata/v1/id HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let mut first = [0u8; 512];
    let n = s.read(&mut first).expect("first answer");
    assert!(first[..n].starts_with(b"HTTP/1.1 200 OK"));
    cloud.inject(Fault::outage(Scope::Metadata));
    write!(s, "GET /metadata/v1/id HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let mut rest = Vec::new();
    let e = s.read_to_end(&mut rest).expect_err("reset");
    assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
    assert_eq!(
        cloud.metadata_request_count(101),
        2,
        "the cut request is not recorded"
    );
}

#[test]
fn an_injected_hang_never_answers() {
    let (cloud, md101, _) = setup();
    cloud.inject(Fault::hang(Scope::Metadata).path("/metadata/v1/reserved_ip"));
    let mut s = raw_get(host_port(&md101), "/metadata/v1/reserved_ip/ipv4/active");
    s.set_read_timeout(Some(Duration::from_millis(700)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    let e = s.read(&mut buf).expect_err("no answer");
    assert!(
        matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{e}"
    );
    // Other paths still answer; a client with a timeout gives up.
    assert_eq!(call("GET", &format!("{md101}/id"), None, None).body, "101");
    let r = agent()
        .get(&format!("{md101}/reserved_ip/ipv4/active"))
        .config()
        .timeout_global(Some(Duration::from_millis(300)))
        .build()
        .call();
    assert!(r.is_err());
}

#[test]
fn injected_garbled_and_truncated_answers_are_not_what_was_asked() {
    let (cloud, md101, _) = setup();
    cloud.inject(Fault::garbled(Scope::Metadata).times(1));
    let a = call(
        "GET",
        &format!("{md101}/reserved_ip/ipv4/active"),
        None,
        None,
    );
    assert_eq!(a.status, 200);
    assert!(a.body.contains("<html>"), "{}", a.body);
    assert_eq!(
        call(
            "GET",
            &format!("{md101}/reserved_ip/ipv4/active"),
            None,
            None
        )
        .body,
        "true"
    );
    cloud.inject(Fault::garbled(Scope::Api).times(1));
    let a = get(&format!("{}/v2/reserved_ips/{IP}", cloud.api_url()));
    assert_eq!(a.status, 200);
    assert!(
        serde_json::from_str::<Value>(&a.body).is_err(),
        "{}",
        a.body
    );

    cloud.inject(Fault::truncated(Scope::All).times(2));
    let mut s = raw_get(host_port(&md101), "/metadata/v1/id");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut text = String::new();
    s.read_to_string(&mut text)
        .expect("read until the fake closes");
    let (head, body) = text.split_once("\r\n\r\n").expect("headers");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    let promised: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|n| n.parse().ok())
        .expect("content-length");
    assert!(body.len() < promised, "{body:?} vs {promised}");
    let r = agent()
        .get(&format!("{}/v2/reserved_ips/{IP}", cloud.api_url()))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .call()
        .and_then(|mut r| r.body_mut().read_to_string());
    assert!(r.is_err(), "a cut answer reads as an error: {r:?}");
    assert_eq!(
        get(&format!("{}/v2/reserved_ips/{IP}", cloud.api_url())).status,
        200
    );
}

#[test]
fn an_outage_leaves_the_admin_interface_up_so_that_it_can_be_cleared() {
    let (cloud, md101, _) = setup();
    let api = cloud.api_url();
    let admin = |method: &str, path: &str, body: Value| {
        call(method, &format!("{api}/_fake/{path}"), None, Some(&body))
    };
    assert_eq!(
        admin("POST", "fault", json!({"kind": "outage", "scope": "all"})).status,
        201
    );
    // The API and the metadata are down...
    let r = agent()
        .get(&format!("{api}/v2/reserved_ips/{IP}"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .call();
    assert!(r.is_err(), "the API answered during an outage: {r:?}");
    assert!(agent().get(&format!("{md101}/id")).call().is_err());
    // ...the admin interface is not: it reads the state and clears the outage.
    assert_eq!(admin("GET", "state", json!({})).json()["faults"], 1);
    assert_eq!(admin("DELETE", "fault", json!({})).status, 200);
    assert_eq!(get(&format!("{api}/v2/reserved_ips/{IP}")).status, 200);
    assert_eq!(call("GET", &format!("{md101}/id"), None, None).body, "101");
    // The requests cut were not recorded; the admin requests never are.
    assert_eq!(cloud.api_request_count(), 1);
    assert_eq!(cloud.metadata_request_count(101), 1);
    assert_eq!(cloud.requests().len(), 2);
}

#[test]
fn an_injected_proxy_status_answers_with_a_proxys_html_page() {
    let (cloud, md101, _) = setup();
    let api = cloud.api_url();
    for code in [401, 404, 502] {
        cloud.inject(Fault::proxy_status(Scope::Api, code).times(1));
        let a = get(&format!("{api}/v2/reserved_ips/{IP}"));
        assert_eq!(a.status, code, "{}", a.body);
        assert_eq!(a.header("content-type"), Some("text/html"));
        assert!(a.body.contains(&format!("<title>{code} ")), "{}", a.body);
        assert!(a.body.contains("</html>"), "{}", a.body);
        assert!(
            serde_json::from_str::<Value>(&a.body).is_err(),
            "{}",
            a.body
        );
        // The proxy answered, not the API: none of DigitalOcean's headers.
        assert!(a.header("ratelimit-remaining").is_none());
        assert!(a.header("x-request-id").is_none());
    }
    // Recorded, but no budget spent: the next real answer is the first one counted.
    assert_eq!(cloud.api_request_count(), 3);
    let a = get(&format!("{api}/v2/reserved_ips/{IP}"));
    assert_eq!(a.status, 200);
    assert_rate_headers(&a);
    assert_eq!(a.header("ratelimit-remaining"), Some("4999"));
    // On metadata too, and from the admin interface's JSON.
    cloud.inject(Fault::proxy_status(Scope::Metadata, 503).times(1));
    let a = call("GET", &format!("{md101}/id"), None, None);
    assert_eq!(a.status, 503);
    assert!(
        a.body.contains("<h1>503 Service Unavailable</h1>"),
        "{}",
        a.body
    );
    assert_eq!(call("GET", &format!("{md101}/id"), None, None).body, "101");
    let injected = call(
        "POST",
        &format!("{api}/_fake/fault"),
        None,
        Some(&json!({"kind": "proxy_status", "status": 401, "method": "POST", "times": 1})),
    );
    assert_eq!(injected.status, 201);
    let a = assign(&cloud, "reserved_ips", 102);
    assert_eq!(a.status, 401);
    assert_eq!(a.header("content-type"), Some("text/html"));
    assert!(cloud.actions().is_empty(), "the API never saw the assign");
    assert_eq!(assign(&cloud, "reserved_ips", 102).status, 201);
}

#[test]
fn an_injected_other_ip_describes_another_address_held_by_the_real_holder() {
    let (cloud, _, _) = setup();
    let api = cloud.api_url();
    cloud.inject(Fault::other_ip().times(2));
    // Other requests pass untouched and do not use it up.
    assert_eq!(
        get(&format!("{api}/v2/reserved_ips")).json()["reserved_ips"][0]["ip"],
        IP
    );
    for family in ["reserved_ip", "floating_ip"] {
        let a = get(&format!("{api}/v2/{family}s/{IP}"));
        assert_eq!(a.status, 200, "{}", a.body);
        assert_rate_headers(&a);
        let v = a.json();
        assert_eq!(v[family]["ip"], OTHER_IP, "{v}");
        assert_eq!(v[family]["droplet"]["id"], 101, "{v}");
        assert_eq!(v[family]["region"]["slug"], "nyc3", "{v}");
    }
    assert_eq!(
        get(&format!("{api}/v2/reserved_ips/{IP}")).json()["reserved_ip"]["ip"],
        IP
    );
    // From the admin interface's JSON; the holder it names follows the real one.
    cloud.set_holder(IP, Some(102));
    let injected = call(
        "POST",
        &format!("{api}/_fake/fault"),
        None,
        Some(&json!({"kind": "other_ip"})),
    );
    assert_eq!(injected.status, 201);
    let v = get(&format!("{api}/v2/reserved_ips/{IP}")).json();
    assert_eq!(v["reserved_ip"]["ip"], OTHER_IP, "{v}");
    assert_eq!(v["reserved_ip"]["droplet"]["id"], 102, "{v}");
    // Asked for OTHER_IP itself, it describes yet another; an unknown IP stays 404.
    cloud.add_ip(OTHER_IP, None);
    let v = get(&format!("{api}/v2/reserved_ips/{OTHER_IP}")).json();
    assert_eq!(v["reserved_ip"]["ip"], OTHER_IP_ALT, "{v}");
    assert!(v["reserved_ip"]["droplet"].is_null(), "{v}");
    assert_error(
        &get(&format!("{api}/v2/reserved_ips/203.0.113.99")),
        404,
        "not_found",
    );
    cloud.clear_faults();
    assert_eq!(
        get(&format!("{api}/v2/floating_ips/{IP}")).json()["floating_ip"]["ip"],
        IP
    );
}

#[test]
fn every_request_is_recorded_with_headers_body_and_listener() {
    let (cloud, md101, _) = setup();
    get(&format!("{}/v2/reserved_ips/{IP}", cloud.api_url()));
    assign(&cloud, "floating_ips", 102);
    call("GET", &format!("{md101}/id"), None, None);
    call(
        "GET",
        &format!("{}/_fake/state", cloud.api_url()),
        None,
        None,
    );
    let reqs = cloud.requests();
    assert_eq!(reqs.len(), 3, "admin requests are not recorded");
    assert_eq!(cloud.api_request_count(), 2);
    assert_eq!(cloud.metadata_request_count(101), 1);
    let paths: Vec<String> = cloud.api_requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            format!("/v2/reserved_ips/{IP}"),
            format!("/v2/floating_ips/{IP}/actions")
        ]
    );
    assert_eq!(cloud.metadata_request_count(102), 0);
    let post = &reqs[1];
    assert_eq!(post.method, "POST");
    assert_eq!(post.path, format!("/v2/floating_ips/{IP}/actions"));
    assert_eq!(
        post.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(post.header("Content-Type"), Some("application/json"));
    let body: Value = serde_json::from_str(&post.body).expect("json body");
    assert_eq!(body, json!({"type": "assign", "droplet_id": 102}));
    assert!(post.is_api_call());
    assert_eq!(post.local_addr, host_port(&cloud.api_url()));
    assert!(post.netns.is_none());
    assert!(reqs[0].since_start <= post.since_start);
    assert_eq!(
        reqs[2].listener,
        cloudha_tests::fakecloud::Listener::Metadata(101)
    );
    assert!(reqs[2].header("user-agent").is_some());
    cloud.clear_requests();
    assert!(cloud.requests().is_empty());
    assert_eq!(cloud.api_request_count(), 0);
}

#[test]
fn keep_alive_and_chunked_bodies_work() {
    let (cloud, _, _) = setup();
    let mut s = TcpStream::connect(host_port(&cloud.api_url())).expect("connect");
    let body = json!({"type": "assign", "droplet_id": 102}).to_string();
    write!(
        s,
        "GET /v2/reserved_ips/{IP} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n\
         POST /v2/reserved_ips/{IP}/actions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    )
    .expect("write");
    let mut text = String::new();
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    BufReader::new(s).read_to_string(&mut text).expect("read");
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("HTTP/1.1 201 Created\r\n"), "{text}");
    assert_eq!(cloud.actions().len(), 1);
    assert_eq!(cloud.requests()[1].body, body);
}

#[test]
fn the_last_handle_or_shutdown_stops_every_listener() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<FakeCloud>();
    let (cloud, md101, _) = setup();
    let api = host_port(&cloud.api_url());
    let md = host_port(&md101);
    let clone = cloud.clone();
    let t = std::thread::spawn(move || clone.holder(IP));
    assert_eq!(t.join().expect("thread"), Some(101));
    let other = cloud.clone();
    drop(cloud);
    assert_eq!(
        get(&format!("http://{api}/v2/reserved_ips/{IP}")).status,
        200,
        "a clone keeps it"
    );
    // A connection kept open must not keep the fake alive.
    let idle = TcpStream::connect(api).expect("connect");
    drop(other);
    assert!(TcpStream::connect(api).is_err(), "API still listening");
    assert!(TcpStream::connect(md).is_err(), "metadata still listening");
    let mut idle = idle;
    idle.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = [0u8; 8];
    assert!(matches!(idle.read(&mut buf), Ok(0) | Err(_)));

    let (cloud, _, _) = setup();
    let api = host_port(&cloud.api_url());
    cloud.shutdown();
    assert!(TcpStream::connect(api).is_err());
}

/// GET `url` from a thread that entered `netns` (as a process on that node would).
fn get_in_netns(netns: &str, url: &str) -> Answer {
    let (netns, url) = (netns.to_string(), url.to_string());
    std::thread::spawn(move || {
        let f = std::fs::File::open(format!("/run/netns/{netns}")).expect("netns");
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        call("GET", &url, Some(TOKEN), None)
    })
    .join()
    .expect("thread")
}

#[test]
fn listeners_inside_network_namespaces_share_one_state() {
    require_root();
    let (cloud, _, _) = setup();
    let node1 = Netns::new("fake1");
    let node2 = Netns::new("fake2");
    for ns in [&node1, &node2] {
        ns.ip(&["addr", "add", "169.254.169.254/32", "dev", "lo"]);
    }
    let addr: SocketAddr = "169.254.169.254:80".parse().expect("addr");
    let md1 = cloud.serve_metadata_in_netns(101, &node1.name, addr);
    let md2 = cloud.serve_metadata_in_netns(102, &node2.name, addr);
    assert_eq!(md1, "http://169.254.169.254:80/metadata/v1");
    let api_at: SocketAddr = "127.0.0.1:8080".parse().expect("addr");
    let api1 = cloud.serve_api_in_netns(&node1.name, api_at);
    let api2 = cloud.serve_api_in_netns(&node2.name, api_at);
    assert_eq!(api1, "http://127.0.0.1:8080");

    // Same address, different namespaces, different droplets.
    assert_eq!(get_in_netns(&node1.name, &format!("{md1}/id")).body, "101");
    assert_eq!(get_in_netns(&node2.name, &format!("{md2}/id")).body, "102");
    // One state: an assign through node2's API shows in node1's metadata.
    assert_eq!(
        get_in_netns(&node1.name, &format!("{md1}/reserved_ip/ipv4/active")).body,
        "true"
    );
    let a = {
        let (ns, url) = (
            node2.name.clone(),
            format!("{api2}/v2/reserved_ips/{IP}/actions"),
        );
        std::thread::spawn(move || {
            let f = std::fs::File::open(format!("/run/netns/{ns}")).expect("netns");
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            call(
                "POST",
                &url,
                Some(TOKEN),
                Some(&json!({"type": "assign", "droplet_id": 102})),
            )
        })
        .join()
        .expect("thread")
    };
    assert_eq!(a.status, 201, "{}", a.body);
    wait_until("the move", Duration::from_secs(5), || {
        cloud.holder(IP) == Some(102)
    });
    assert_eq!(
        get_in_netns(&node1.name, &format!("{md1}/reserved_ip/ipv4/active")).body,
        "false"
    );
    assert_eq!(
        get_in_netns(&node2.name, &format!("{md2}/reserved_ip/ipv4/ip_address")).body,
        IP
    );
    assert_eq!(
        get_in_netns(&node1.name, &format!("{api1}/v2/floating_ips/{IP}")).json()["floating_ip"]
            ["droplet"]["id"],
        102
    );
    // The record says where each request arrived.
    let posts: Vec<_> = cloud
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].netns.as_deref(), Some(node2.name.as_str()));
    // An address that does not exist in the namespace cannot be served.
    assert!(cloud
        .try_serve_metadata_in_netns(101, &node1.name, "10.99.0.1:80".parse().expect("addr"))
        .is_err());
    assert!(cloud
        .try_serve_api_in_netns("cloudha-no-such-netns", api_at)
        .is_err());
    // Shutting down closes the listeners inside the namespaces too.
    cloud.shutdown();
    let r = std::thread::spawn({
        let ns = node1.name.clone();
        move || {
            let f = std::fs::File::open(format!("/run/netns/{ns}")).expect("netns");
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            TcpStream::connect(addr).is_err()
        }
    })
    .join()
    .expect("thread");
    assert!(
        r,
        "metadata in the namespace still listening after shutdown"
    );
}

#[test]
fn the_admin_interface_reads_and_steers_the_fake() {
    let (cloud, md101, _) = setup();
    let api = cloud.api_url();
    let admin = |method: &str, path: &str, body: Value| {
        call(method, &format!("{api}/_fake/{path}"), None, Some(&body))
    };
    let state = admin("GET", "state", json!({})).json();
    assert_eq!(
        state["ips"],
        json!([{"ip": IP, "holder": 101, "locked": false}])
    );
    assert_eq!(state["api_requests"], 0);
    assert_eq!(
        admin(
            "POST",
            "config",
            json!({"action_time_ms": 5000, "metadata_lag_ms": 0, "rate_per_minute": 100})
        )
        .status,
        200
    );
    assert_eq!(admin("POST", "token", json!({"token": "t2"})).status, 200);
    assert_eq!(
        admin("POST", "ip", json!({"ip": "203.0.113.20", "holder": null})).status,
        200
    );
    assert_eq!(
        admin(
            "POST",
            "anchor",
            json!({"droplet": 101, "address": "10.17.0.5", "netmask": "255.255.0.0"})
        )
        .status,
        200
    );
    assert_eq!(
        call(
            "GET",
            &format!("{md101}/interfaces/public/0/anchor_ipv4/gateway"),
            None,
            None
        )
        .body,
        "10.17.0.1"
    );
    let a = call(
        "POST",
        &format!("{api}/v2/reserved_ips/203.0.113.20/actions"),
        Some("t2"),
        Some(&json!({"type": "assign", "droplet_id": 102})),
    );
    assert_eq!(a.status, 201);
    let state = admin("GET", "state", json!({})).json();
    assert_eq!(state["action_time_ms"], 5000);
    assert_eq!(state["rate_limit"]["per_minute"], 100);
    assert_eq!(state["api_requests"], 1);
    assert_eq!(state["metadata_requests"], 1);
    assert_eq!(state["actions"][0]["status"], "in-progress");
    assert!(state["ips"]
        .as_array()
        .expect("ips")
        .iter()
        .any(|i| i["ip"] == "203.0.113.20" && i["locked"] == true));
    let reqs = admin("GET", "requests", json!({})).json();
    assert_eq!(reqs.as_array().map(Vec::len), Some(2));
    assert_eq!(reqs[1]["method"], "POST");
    assert_eq!(reqs[1]["listener"], "api");
    assert_eq!(reqs[0]["listener"], "metadata:101");
    // Faults.
    assert_eq!(
        admin(
            "POST",
            "fault",
            json!({"kind": "status", "status": 503, "scope": "api", "times": 1})
        )
        .status,
        201
    );
    assert_eq!(get(&format!("{api}/v2/reserved_ips/{IP}")).status, 503);
    assert_eq!(get(&format!("{api}/v2/reserved_ips/{IP}")).status, 200);
    assert_eq!(
        admin("POST", "fault", json!({"kind": "status", "status": 500})).status,
        201
    );
    assert_eq!(admin("GET", "state", json!({})).json()["faults"], 1);
    assert_eq!(get(&format!("{api}/v2/reserved_ips/{IP}")).status, 500);
    assert_eq!(admin("DELETE", "fault", json!({})).status, 200);
    assert_eq!(get(&format!("{api}/v2/reserved_ips/{IP}")).status, 200);
    assert_eq!(
        admin("POST", "fault", json!({"kind": "nonsense"})).status,
        400
    );
    // Holder behind the API's back; revoke; clear requests.
    assert_eq!(
        admin("POST", "holder", json!({"ip": IP, "holder": 102})).status,
        200
    );
    assert_eq!(cloud.holder(IP), Some(102));
    assert_eq!(
        admin(
            "POST",
            "holder",
            json!({"ip": "198.51.100.1", "holder": 102})
        )
        .status,
        404
    );
    assert_eq!(admin("POST", "revoke", json!({"token": TOKEN})).status, 200);
    assert_eq!(get(&format!("{api}/v2/reserved_ips/{IP}")).status, 401);
    assert_eq!(admin("DELETE", "requests", json!({})).status, 200);
    assert!(cloud.requests().is_empty());
    assert_eq!(admin("GET", "nothing", json!({})).status, 404);
}

#[test]
fn the_fakecloud_program_serves_what_its_options_say() {
    let bin = cloudha_tests::bin_dir().join("fakecloud");
    assert!(
        bin.is_file(),
        "{} missing: cargo build -p cloudha-tests",
        bin.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "file-token\n").expect("write");
    let ready_file = dir.path().join("ready.json");
    let mut child = Command::new(&bin)
        .args(["--listen", "127.0.0.1:0", "--token", TOKEN, "--token-file"])
        .arg(&token_file)
        .args(["--ip", &format!("{IP}=101"), "--ip", "203.0.113.11"])
        .args(["--droplet", "101", "--droplet", "102@127.0.0.1:0"])
        .args([
            "--anchor",
            "101=10.17.0.5/255.255.0.0",
            "--anchor",
            "102=10.18.0.6/255.255.0.0/10.18.0.254",
        ])
        .args([
            "--action-time",
            "300ms",
            "--rate-limit",
            "100/1000",
            "--ready-file",
        ])
        .arg(&ready_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fakecloud");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().expect("stdout");
    let child = Kill(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("ready line");
    let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let from_file: Value =
        serde_json::from_str(&std::fs::read_to_string(&ready_file).expect("ready file"))
            .expect("json");
    assert_eq!(ready, from_file);
    let api = ready["api"][0].as_str().expect("api url").to_string();
    assert_eq!(ready["admin"], ready["api"][0]);
    let md101 = ready["metadata"]["101"][0]
        .as_str()
        .expect("md 101")
        .to_string();
    let md102 = ready["metadata"]["102"][0]
        .as_str()
        .expect("md 102")
        .to_string();
    assert_eq!(
        call(
            "GET",
            &format!("{api}/v2/reserved_ips/{IP}"),
            Some("file-token"),
            None
        )
        .json()["reserved_ip"]["droplet"]["id"],
        101
    );
    let a = assign_at(&api, 102);
    assert_eq!(a.json()["action"]["status"], "in-progress");
    assert_eq!(
        call(
            "GET",
            &format!("{md101}/interfaces/public/0/anchor_ipv4/gateway"),
            None,
            None
        )
        .body,
        "10.17.0.1"
    );
    assert_eq!(
        call(
            "GET",
            &format!("{md102}/interfaces/public/0/anchor_ipv4/gateway"),
            None,
            None
        )
        .body,
        "10.18.0.254"
    );
    wait_until("the move", Duration::from_secs(5), || {
        call(
            "GET",
            &format!("{md102}/reserved_ip/ipv4/ip_address"),
            None,
            None,
        )
        .body
            == IP
    });
    let state = call("GET", &format!("{api}/_fake/state"), None, None).json();
    assert_eq!(state["rate_limit"]["per_hour"], 1000);
    assert_eq!(state["api_requests"], 2);
    assert!(state["ips"]
        .as_array()
        .expect("ips")
        .iter()
        .any(|i| i["ip"] == "203.0.113.11" && i["holder"].is_null()));
    // Faults through the program's admin interface: an outage can be cleared there.
    let admin = ready["admin"].as_str().expect("admin url").to_string();
    let fault = |body: Value| call("POST", &format!("{admin}/_fake/fault"), None, Some(&body));
    assert_eq!(fault(json!({"kind": "outage"})).status, 201);
    assert!(agent()
        .get(&format!("{api}/v2/reserved_ips/{IP}"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .call()
        .is_err());
    assert_eq!(
        call("DELETE", &format!("{admin}/_fake/fault"), None, None).status,
        200
    );
    assert_eq!(get(&format!("{api}/v2/reserved_ips/{IP}")).status, 200);
    assert_eq!(
        fault(json!({"kind": "proxy_status", "status": 502, "times": 1})).status,
        201
    );
    let a = get(&format!("{api}/v2/reserved_ips/{IP}"));
    assert_eq!(
        (a.status, a.header("content-type")),
        (502, Some("text/html"))
    );
    assert_eq!(fault(json!({"kind": "other_ip", "times": 1})).status, 201);
    assert_eq!(
        get(&format!("{api}/v2/reserved_ips/{IP}")).json()["reserved_ip"]["ip"],
        OTHER_IP
    );
    drop(child);

    // Bad options exit 2 with a message.
    let out = Command::new(&bin)
        .args(["--ip", "not-an-ip"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an IP address"));
    let out = Command::new(&bin)
        .args(["--action-time", "soon"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_fakecloud_program_serves_inside_network_namespaces() {
    require_root();
    let bin = cloudha_tests::bin_dir().join("fakecloud");
    assert!(
        bin.is_file(),
        "{} missing: cargo build -p cloudha-tests",
        bin.display()
    );
    let node = Netns::new("fakeprog");
    node.ip(&["addr", "add", "169.254.169.254/32", "dev", "lo"]);
    let mut child = Command::new(&bin)
        .args([
            "--listen",
            &format!("127.0.0.1:8080@{}", node.name),
            "--token",
            TOKEN,
        ])
        .args(["--ip", &format!("{IP}=101")])
        .args([
            "--droplet",
            &format!("101@169.254.169.254:80@{}", node.name),
        ])
        .args([
            "--droplet",
            &format!("102@169.254.169.254:81@/run/netns/{}", node.name),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn fakecloud");
    let stdout = child.stdout.take().expect("stdout");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _child = Kill(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("ready line");
    let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert_eq!(ready["api"], json!(["http://127.0.0.1:8080"]));
    assert_eq!(
        ready["metadata"]["101"],
        json!(["http://169.254.169.254:80/metadata/v1"])
    );
    assert_eq!(
        ready["metadata"]["102"],
        json!(["http://169.254.169.254:81/metadata/v1"])
    );
    let admin = ready["admin"].as_str().expect("admin url");
    assert!(admin.starts_with("http://127.0.0.1:"), "{admin}");
    // Inside the node: its API and its metadata. Outside: the admin interface, same state.
    let inside = get_in_netns(
        &node.name,
        &format!("http://127.0.0.1:8080/v2/reserved_ips/{IP}"),
    );
    assert_eq!(inside.json()["reserved_ip"]["droplet"]["id"], 101);
    let md = get_in_netns(&node.name, "http://169.254.169.254:81/metadata/v1/id");
    assert_eq!(md.body, "102");
    let state = call("GET", &format!("{admin}/_fake/state"), None, None).json();
    assert_eq!(state["api_requests"], 1);
    assert_eq!(state["metadata_requests"], 1);
    let reqs = call("GET", &format!("{admin}/_fake/requests"), None, None).json();
    assert_eq!(reqs[0]["netns"], node.name.as_str());
}

fn assign_at(api: &str, droplet: u64) -> Answer {
    call(
        "POST",
        &format!("{api}/v2/reserved_ips/{IP}/actions"),
        Some(TOKEN),
        Some(&json!({"type": "assign", "droplet_id": droplet})),
    )
}
