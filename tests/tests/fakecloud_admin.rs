//! The `fakecloud` program speaking Hetzner, Exoscale and Vultr, set up by its options and steered
//! through its `/_fake/` admin interface over HTTP, each change checked through the cloud's own
//! API (and metadata service) as an agent would see it. DigitalOcean's admin and options are
//! tested in `fakecloud.rs`.

use cloudha_tests::fakecloud::exoscale::{instance_uuid, signature};
use cloudha_tests::http::{request, Answer};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

const IP: &str = "203.0.113.10";
const TOKEN: &str = "admin-test-token";
const KEY: &str = "EXOadmintest0000000000000000";
const SECRET: &str = "admin-test-secret-not-in-argv";

fn call(method: &str, url: &str, auth: Option<&str>, body: Option<&str>) -> Answer {
    let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
    request(method, url, &headers, body)
}

/// The program, killed when dropped, and its ready line.
struct Program {
    child: Child,
    ready: Value,
    _dir: tempfile::TempDir,
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Program {
    /// `fakecloud --cloud CLOUD` with the credentials in files (never in argv) and `args`.
    fn start(cloud: &str, args: &[&str]) -> Program {
        let bin = cloudha_tests::bin_dir().join("fakecloud");
        assert!(
            bin.is_file(),
            "{} missing: cargo build -p cloudha-tests",
            bin.display()
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let tokens = dir.path().join("tokens");
        std::fs::write(&tokens, format!("{TOKEN}\n")).expect("write");
        let keys = dir.path().join("keys");
        std::fs::write(&keys, format!("\n{KEY}  {SECRET}\n")).expect("write");
        let mut child = Command::new(&bin)
            .args(["--cloud", cloud, "--listen", "127.0.0.1:0", "--token-file"])
            .arg(&tokens)
            .arg("--api-key-file")
            .arg(&keys)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn fakecloud");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("ready line");
        let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        Program {
            child,
            ready,
            _dir: dir,
        }
    }

    fn admin(&self) -> String {
        self.ready["admin"].as_str().expect("admin URL").to_string()
    }

    fn post(&self, route: &str, body: Value) -> Answer {
        call(
            "POST",
            &format!("{}/_fake/{route}", self.admin()),
            None,
            Some(&body.to_string()),
        )
    }

    fn state(&self) -> Value {
        call("GET", &format!("{}/_fake/state", self.admin()), None, None).json()
    }

    fn metadata(&self, id: u64, leaf: &str) -> Answer {
        let base = self.ready["metadata"][id.to_string()][0]
            .as_str()
            .expect("a metadata URL");
        call("GET", &format!("{base}/{leaf}"), None, None)
    }
}

fn ip_entry(state: &Value, ip: &str) -> Value {
    state["ips"]
        .as_array()
        .expect("ips")
        .iter()
        .find(|e| e["ip"] == ip)
        .unwrap_or_else(|| panic!("{ip} not in {state}"))
        .clone()
}

#[test]
fn hetzner_is_set_up_by_options_and_steered_through_the_admin() {
    let p = Program::start(
        "hetzner",
        &[
            "--ip",
            &format!("{IP}=101"),
            "--server",
            "101",
            "--server",
            "102",
        ],
    );
    assert_eq!(p.ready["cloud"], "hetzner");
    let api = p.ready["api"][0].as_str().expect("api URL").to_string();
    let bearer = format!("Bearer {TOKEN}");
    let st = p.state();
    assert_eq!(st["dialect"], "hetzner");
    // As FakeCloud::start_hetzner: more floating IPs than one page, Hetzner's hourly budget.
    assert_eq!(
        st["ips"].as_array().unwrap().len(),
        cloudha_tests::fakecloud::hetzner::FILLER_IPS as usize + 1
    );
    assert_eq!(st["rate_limit"]["per_hour"], 3600);
    let entry = ip_entry(&st, IP);
    assert_eq!(entry["holders"], json!([101]));
    let id = entry["id"].as_u64().expect("the IP's id");
    let read = |auth: &str| {
        call(
            "GET",
            &format!("{api}/v1/floating_ips/{id}"),
            Some(auth),
            None,
        )
    };
    let a = read(&bearer);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["floating_ip"]["server"], 101);
    assert_eq!(a.json()["floating_ip"]["home_location"]["name"], "fsn1");
    // Each server's metadata service speaks Hetzner's.
    let md = p.metadata(102, "instance-id");
    assert_eq!((md.status, md.body.trim()), (200, "102"));

    // Holder moved behind the API's back.
    assert_eq!(
        p.post("holder", json!({"ip": IP, "holder": 102})).status,
        200
    );
    assert_eq!(read(&bearer).json()["floating_ip"]["server"], 102);

    // A server added through the admin can be assigned to.
    assert_eq!(p.post("server", json!({"id": 103})).status, 200);
    let assign = call(
        "POST",
        &format!("{api}/v1/floating_ips/{id}/actions/assign"),
        Some(&bearer),
        Some(&json!({"server": 103}).to_string()),
    );
    assert_eq!(assign.status, 201, "{}", assign.body);
    assert_eq!(read(&bearer).json()["floating_ip"]["server"], 103);

    // Tokens: revoked is Hetzner's 401, added back works.
    assert_eq!(p.post("revoke", json!({"token": TOKEN})).status, 200);
    let refused = read(&bearer);
    assert_eq!(refused.status, 401);
    assert_eq!(refused.json()["error"]["code"], "unauthorized");
    assert_eq!(p.post("token", json!({"token": TOKEN})).status, 200);
    assert_eq!(read(&bearer).status, 200);

    // A fault in Hetzner's shape: 423 `locked`, once.
    assert_eq!(
        p.post(
            "fault",
            json!({"kind": "status", "status": 423, "scope": "api", "times": 1})
        )
        .status,
        201
    );
    let locked = read(&bearer);
    assert_eq!(locked.status, 423);
    assert_eq!(locked.json()["error"]["code"], "locked");
    assert_eq!(read(&bearer).status, 200);

    // A new IP goes to Hetzner's location by default.
    assert_eq!(
        p.post("ip", json!({"ip": "198.51.100.7", "holder": null}))
            .status,
        200
    );
    let new_id = ip_entry(&p.state(), "198.51.100.7")["id"]
        .as_u64()
        .expect("an id");
    let n = call(
        "GET",
        &format!("{api}/v1/floating_ips/{new_id}"),
        Some(&bearer),
        None,
    );
    assert_eq!(n.json()["floating_ip"]["home_location"]["name"], "fsn1");
    assert_eq!(n.json()["floating_ip"]["server"], Value::Null);

    // DigitalOcean's anchor IPs are refused here.
    let anchor = p.post(
        "anchor",
        json!({"droplet": 101, "address": "10.17.0.5", "netmask": "255.255.0.0"}),
    );
    assert_eq!(anchor.status, 400);
    // Admin requests are not recorded: what the API saw is the record.
    let st = p.state();
    assert_eq!(st["api_requests"], 9, "{st}");
}

/// Exoscale's `Authorization` for one request (valid ten minutes).
fn exo_auth(secret: &str, method: &str, path: &str, body: &str) -> String {
    let expires = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 600;
    let sig = signature(secret, method, path, body.as_bytes(), &[], expires).expect("signature");
    format!("EXO2-HMAC-SHA256 credential={KEY},expires={expires},signature={sig}")
}

#[test]
fn exoscale_is_set_up_by_options_and_steered_through_the_admin() {
    let p = Program::start(
        "exoscale",
        &["--ip", IP, "--instance", "101", "--instance", "102"],
    );
    assert_eq!(p.ready["cloud"], "exoscale");
    let api = p.ready["api"][0].as_str().expect("api URL").to_string();
    // The secret reached the fake through the file, never through argv.
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", p.child.id())).expect("cmdline");
    assert!(!String::from_utf8_lossy(&cmdline).contains(SECRET));

    let st = p.state();
    assert_eq!(st["dialect"], "exoscale");
    let entry = ip_entry(&st, IP);
    assert_eq!(entry["holders"], json!([]));
    let uuid = entry["uuid"].as_str().expect("the IP's UUID").to_string();
    let get = |path: &str| {
        call(
            "GET",
            &format!("{api}{path}"),
            Some(&exo_auth(SECRET, "GET", path, "")),
            None,
        )
    };
    // The IP is in the zone's list (the default zone), under the UUID the state shows.
    let list = get("/v2/elastic-ip");
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.json()["elastic-ips"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["ip"] == IP && e["id"] == uuid.as_str()));
    let md = p.metadata(101, "instance-id");
    assert_eq!(
        (md.status, md.body.trim()),
        (200, instance_uuid(101).as_str())
    );

    // Two holders at once (traffic split), set by number and by UUID; both instances show it.
    let both = p.post(
        "holders",
        json!({"ip": IP, "holders": [101, instance_uuid(102)]}),
    );
    assert_eq!(both.status, 200, "{}", both.body);
    let entry = ip_entry(&p.state(), IP);
    assert_eq!(entry["holders"], json!([101, 102]));
    assert_eq!(
        entry["holder_uuids"],
        json!([instance_uuid(101), instance_uuid(102)])
    );
    for n in [101, 102] {
        let i = get(&format!("/v2/instance/{}", instance_uuid(n)));
        assert_eq!(i.status, 200, "{}", i.body);
        assert_eq!(i.json()["elastic-ips"][0]["ip"], IP, "instance {n}");
    }
    // One holder again, by the single-holder route.
    assert_eq!(
        p.post("holder", json!({"ip": IP, "holder": 102})).status,
        200
    );
    let i = get(&format!("/v2/instance/{}", instance_uuid(101)));
    assert_eq!(i.json()["elastic-ips"], json!([]));
    assert_eq!(
        p.post("holders", json!({"ip": IP, "holders": ["not-a-uuid"]}))
            .status,
        400
    );

    // Keys: revoked is refused in Exoscale's shape; a key added through the admin signs.
    assert_eq!(p.post("revoke", json!({"api_key": KEY})).status, 200);
    let refused = get("/v2/elastic-ip");
    assert!([401, 403].contains(&refused.status), "{}", refused.body);
    assert!(refused.json()["message"].is_string());
    assert_eq!(
        p.post("api-key", json!({"key": KEY, "secret": "another-secret"}))
            .status,
        200
    );
    let path = "/v2/elastic-ip";
    let with_new = call(
        "GET",
        &format!("{api}{path}"),
        Some(&exo_auth("another-secret", "GET", path, "")),
        None,
    );
    assert_eq!(with_new.status, 200, "{}", with_new.body);
    assert_eq!(p.post("api-key", json!({"key": KEY})).status, 400);

    // An attach through the API to an instance added through the admin; the operation's time
    // set through the admin keeps it pending.
    assert_eq!(p.post("instance", json!({"id": 103})).status, 200);
    assert_eq!(
        p.post("config", json!({"action_time_ms": 60000})).status,
        200
    );
    let attach_path = format!("/v2/elastic-ip/{uuid}:attach");
    let body = json!({"instance": {"id": instance_uuid(103)}}).to_string();
    let op = call(
        "PUT",
        &format!("{api}{attach_path}"),
        Some(&exo_auth("another-secret", "PUT", &attach_path, &body)),
        Some(&body),
    );
    assert_eq!(op.status, 200, "{}", op.body);
    assert_eq!(op.json()["state"], "pending");
    assert_eq!(ip_entry(&p.state(), IP)["holders"], json!([102]));

    // A fault in Exoscale's shape, once.
    assert_eq!(
        p.post(
            "fault",
            json!({"kind": "status", "status": 503, "times": 1})
        )
        .status,
        201
    );
    let path = "/v2/elastic-ip";
    let failed = call(
        "GET",
        &format!("{api}{path}"),
        Some(&exo_auth("another-secret", "GET", path, "")),
        None,
    );
    assert_eq!(failed.status, 503);
    assert!(failed.json()["message"].is_string());
}

#[test]
fn vultr_is_set_up_by_options_and_steered_through_the_admin() {
    use cloudha_tests::fakecloud::vultr;
    let p = Program::start(
        "vultr",
        &[
            "--ip",
            &format!("{IP}=101"),
            "--instance",
            "101",
            "--instance",
            "102",
        ],
    );
    assert_eq!(p.ready["cloud"], "vultr");
    let api = p.ready["api"][0].as_str().expect("api URL").to_string();
    let bearer = format!("Bearer {TOKEN}");
    let st = p.state();
    assert_eq!(st["dialect"], "vultr");
    // As FakeCloud::start_vultr: more reserved IPs than one page of 500.
    assert_eq!(
        st["ips"].as_array().unwrap().len(),
        vultr::FILLER_IPS as usize + 1
    );
    let entry = ip_entry(&st, IP);
    assert_eq!(entry["holders"], json!([101]));
    assert_eq!(entry["holder_uuids"], json!([vultr::instance_uuid(101)]));
    let uuid = entry["uuid"].as_str().expect("the IP's UUID").to_string();
    let read = |id: &str, auth: &str| {
        call(
            "GET",
            &format!("{api}/v2/reserved-ips/{id}"),
            Some(auth),
            None,
        )
    };
    let a = read(&uuid, &bearer);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.json()["reserved_ip"]["instance_id"],
        vultr::instance_uuid(101)
    );
    let md = p.metadata(102, "instanceid");
    assert_eq!((md.status, md.body.trim()), (200, "102"));

    // Moved behind the API's back, the instance named by its UUID.
    let moved = p.post(
        "holder",
        json!({"ip": IP, "holder": vultr::instance_uuid(102)}),
    );
    assert_eq!(moved.status, 200, "{}", moved.body);
    assert_eq!(
        read(&uuid, &bearer).json()["reserved_ip"]["instance_id"],
        vultr::instance_uuid(102)
    );

    // Tokens: revoked is Vultr's 401, added back works.
    assert_eq!(p.post("revoke", json!({"token": TOKEN})).status, 200);
    let refused = read(&uuid, &bearer);
    assert_eq!(refused.status, 401);
    assert!(refused.json()["error"].is_string(), "{}", refused.body);
    assert_eq!(p.post("token", json!({"token": TOKEN})).status, 200);
    assert_eq!(read(&uuid, &bearer).status, 200);

    // A fault in Vultr's shape, once.
    assert_eq!(
        p.post(
            "fault",
            json!({"kind": "status", "status": 503, "times": 1})
        )
        .status,
        201
    );
    let failed = read(&uuid, &bearer);
    assert_eq!(failed.status, 503);
    assert!(failed.json()["error"].is_string(), "{}", failed.body);

    // A new IP goes to Vultr's region by default, attached nowhere.
    assert_eq!(
        p.post("ip", json!({"ip": "198.51.100.7", "holder": null}))
            .status,
        200
    );
    let new_uuid = ip_entry(&p.state(), "198.51.100.7")["uuid"]
        .as_str()
        .expect("a UUID")
        .to_string();
    let n = read(&new_uuid, &bearer).json();
    assert_eq!(n["reserved_ip"]["region"], "ewr");
    assert_eq!(n["reserved_ip"]["instance_id"], "");
}
