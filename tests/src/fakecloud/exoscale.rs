//! The Exoscale dialect of the fake: the v2 `elastic-ip`, `instance` and `operation` routes of
//! one zone ([`ZONE`]) and each instance's metadata service (`/latest/meta-data/...`), as
//! shared/docs/clouds.md says. The account, operations (the fake's actions), rate budgets,
//! faults and request record are the fake's own (shared with the other dialects); only the wire
//! format and the rules that differ live here:
//! - every request is signed (`EXO2-HMAC-SHA256`, below); keys are added with their secret;
//! - elastic IPs, instances and operations are addressed by UUIDs ([`ip_uuid`],
//!   [`instance_uuid`]); `GET /v2/elastic-ip` lists the zone's elastic IPs (one page; IPs added
//!   in another zone are not there, as in another zone's API);
//! - `PUT /v2/elastic-ip/{id}:attach` and `:detach` with `{"instance":{"id":...}}` answer 200
//!   with an operation, `pending` for the action time, then `success` (or `failure`, with an
//!   injected `ActionErrored`). An attach does NOT detach the other holders: an elastic IP may
//!   have several. Operations do not lock the IP (several may run at once), and a detach of an
//!   instance that does not hold the IP succeeds without a change *(fake's choices: clouds.md
//!   says neither)*; an unknown instance or IP is 404;
//! - `GET /v2/instance` and `GET /v2/instance/{id}` show each instance's `elastic-ips`, and
//!   its `state` from the fake's power (`power.rs`): `PUT /v2/instance/{id}:stop|:start|:reboot`
//!   answer an operation, pending (the instance `stopping` / `starting`) for the power time,
//!   then `success` (`stopped` / `running`), through the same power hook as the other dialects;
//! - errors are `{"message": ...}`; a 429 carries `retry_after` (seconds) in its body and no
//!   rate-limit headers (none are documented); the budget is the fake's default, per key
//!   *(fake's choice: Exoscale's limits are not documented)*.
//!
//! The signature check is written apart from the agent's signing code, from the same page, so
//! that one cannot hide the other's mistake.
//!
//! The signed message: `"<METHOD> <path>"`, the body, the values of the query parameters named
//! in `signed-query-args` in that order (concatenated), an empty line, the expiry; joined by
//! `\n`. The signature: standard base64 (padded) of HMAC-SHA256 keyed with the secret.
//! Which status a bad signature gets is unconfirmed (401 or 403): the fake answers 401 for a
//! missing, malformed or expired authorization and 403 for an unknown key or a wrong signature,
//! each with Exoscale's `{"message": ...}` *(fake's choice within what clouds.md allows)*.

use super::faults::FaultKind;
use super::http::{Request, Response};
use super::power::{InstancePower, Power};
use super::state::{ActionKind, ActionRefused, ActionStatus, State};
use super::Shared;
use base64::Engine;
use serde_json::{json, Value};
use std::time::{Instant, SystemTime};

/// The zone the fake's API serves (an elastic IP lives in its instance's zone).
pub const ZONE: &str = "ch-gva-2";

/// An instance's UUID for the fake's numeric instance `n` (what the other dialects call a
/// droplet or a server).
pub fn instance_uuid(n: u64) -> String {
    format!("1e57a4ce-0000-4000-8000-{n:012x}")
}

/// An elastic IP's UUID for the fake's numeric IP id `n`.
pub fn ip_uuid(n: u64) -> String {
    format!("e1a571c0-0000-4000-8000-{n:012x}")
}

fn operation_uuid(n: u64) -> String {
    format!("0be7a710-0000-4000-8000-{n:012x}")
}

/// The number inside one of the fake's UUIDs of that kind (`make` builds them).
pub(crate) fn number_of(uuid: &str, make: fn(u64) -> String) -> Option<u64> {
    let prefix = make(0);
    let prefix = &prefix[..prefix.len() - 12];
    let hex = uuid.strip_prefix(prefix)?;
    (hex.len() == 12 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u64::from_str_radix(hex, 16).ok())
        .flatten()
        .filter(|n| make(*n) == uuid)
}

/// The fake's instance number for an instance UUID.
pub fn instance_of_uuid(uuid: &str) -> Option<u64> {
    number_of(uuid, instance_uuid)
}

pub fn error(status: u16, message: &str) -> Response {
    Response::json(status, &json!({ "message": message }))
}

fn not_found(what: &str) -> Response {
    error(404, &format!("{what} not found"))
}

/// A 429 as the fake's Exoscale gives it: `retry_after` in the body.
fn rate_limited(retry_after: u64) -> Response {
    Response::json(
        429,
        &json!({"message": "too many requests", "retry_after": retry_after.max(1)}),
    )
}

/// The key a request is signed with (its budget), or the whole header when it names none.
fn budget_key(req: &Request) -> String {
    let header = req.header("authorization").unwrap_or("");
    parse_authorization(header).map_or_else(|| header.to_string(), |a| a.credential)
}

/// The answer an injected fault gives on an API listener: Exoscale's error for that status.
pub(crate) fn fault_answer(fault: &FaultKind) -> Response {
    match fault {
        FaultKind::RateLimited { retry_after } => rate_limited(*retry_after),
        FaultKind::Status(429) => rate_limited(1),
        FaultKind::Status(code) => {
            let message = match code {
                400 => "invalid request",
                401 => "invalid request signature",
                403 => "forbidden",
                404 => "resource not found",
                409 => "conflict",
                423 => "resource is locked",
                502 => "bad gateway",
                503 => "service unavailable",
                504 => "gateway timeout",
                c if *c >= 500 => "internal server error",
                _ => "an injected fault answered",
            };
            error(*code, message)
        }
        _ => error(500, "internal server error"),
    }
}

pub(crate) fn handle(shared: &Shared, req: &Request) -> Response {
    let now = Instant::now();
    let budget = shared
        .lock_state()
        .spend(&budget_key(req), now, SystemTime::now());
    if let Some(secs) = budget.retry_after {
        return rate_limited(secs);
    }
    route(shared, req, now)
}

fn ip_json(st: &State, id: u64) -> Option<Value> {
    let ip = st.ip_of_id(id)?;
    let v6 = ip.contains(':');
    Some(json!({
        "id": ip_uuid(id),
        "ip": ip,
        "addressfamily": if v6 { "inet6" } else { "inet4" },
        "cidr": if v6 { format!("{ip}/128") } else { format!("{ip}/32") },
        "description": "",
        "labels": {},
    }))
}

/// The zone's elastic IPs by id.
fn zone_ips(st: &State) -> Vec<u64> {
    st.ips_by_id()
        .into_iter()
        .filter(|(_, ip)| st.region_of(ip) == Some(ZONE))
        .map(|(id, _)| id)
        .collect()
}

/// A power operation's UUID (`:stop`, `:start`, `:reboot`) for the fake's power action `n`.
fn power_operation_uuid(n: u64) -> String {
    format!("0be7a710-0000-4000-8001-{n:012x}")
}

/// An instance's `state` from its power: `stopping` / `starting` while a stop / start runs,
/// else `running` or `stopped`.
fn instance_state(power: &InstancePower) -> &'static str {
    match (power.pending.as_deref(), power.on) {
        (Some("power_off"), _) => "stopping",
        (Some("power_on"), _) => "starting",
        (_, true) => "running",
        (_, false) => "stopped",
    }
}

fn instance_json(st: &State, p: &Power, n: u64) -> Option<Value> {
    let power = p.instance(n)?;
    let held: Vec<Value> = zone_ips(st)
        .into_iter()
        .filter(|id| {
            st.ip_of_id(*id)
                .is_some_and(|ip| st.holders(ip).contains(&n))
        })
        .filter_map(|id| ip_json(st, id))
        .map(|v| json!({"id": v["id"], "ip": v["ip"]}))
        .collect();
    Some(json!({
        "id": instance_uuid(n),
        "name": power.name,
        "state": instance_state(&power),
        "public-ip": format!("192.0.2.{}", n % 250 + 1),
        "elastic-ips": held,
    }))
}

fn operation_json(st: &State, id: u64) -> Option<Value> {
    let view = st.action_view(id)?;
    let ip_id = st.id_of_ip(&view.ip)?;
    let command = match view.kind {
        ActionKind::Attach(_) => "attach-instance-to-elastic-ip",
        ActionKind::Detach(_) => "detach-instance-from-elastic-ip",
        _ => return None,
    };
    let (state, reason) = match view.status {
        ActionStatus::InProgress => ("pending", Value::Null),
        ActionStatus::Completed => ("success", Value::Null),
        ActionStatus::Errored => ("failure", json!("unknown")),
    };
    Some(json!({
        "id": operation_uuid(id),
        "state": state,
        "reason": reason,
        "message": if view.status == ActionStatus::Errored { json!("operation failed") } else { Value::Null },
        "reference": {
            "id": ip_uuid(ip_id),
            "link": format!("/v2/elastic-ip/{}", ip_uuid(ip_id)),
            "command": command,
        },
    }))
}

/// A power operation: `pending` for the power time, then `success` (or `failure`, with an
/// injected `ActionErrored`); its reference is the instance.
fn power_operation_json(p: &Power, id: u64) -> Option<Value> {
    let (n, kind, status) = p.action_of(id)?;
    let command = match kind.as_str() {
        "power_off" => "stop-instance",
        "power_on" => "start-instance",
        _ => "reboot-instance",
    };
    let (state, reason) = match status {
        "in-progress" => ("pending", Value::Null),
        "completed" => ("success", Value::Null),
        _ => ("failure", json!("unknown")),
    };
    Some(json!({
        "id": power_operation_uuid(id),
        "state": state,
        "reason": reason,
        "message": if state == "failure" { json!("operation failed") } else { Value::Null },
        "reference": {
            "id": instance_uuid(n),
            "link": format!("/v2/instance/{}", instance_uuid(n)),
            "command": command,
        },
    }))
}

/// `PUT /v2/instance/{id}:stop|:start|:reboot` (fencing.md §6): 200 with an operation. Whether
/// `:stop` is hard or graceful is UNCONFIRMED; here the instance is off once the operation
/// succeeds. An instance already in the asked state gets an operation that succeeds without a
/// change, and one with a power operation pending is refused with 409 *(fake's choices: no
/// source says)*. `:reset` (a re-install) is not offered: 404.
fn power_switch(
    shared: &Shared,
    req: &Request,
    p: &mut Power,
    target: &str,
    now: Instant,
) -> Response {
    let (id, command) = target.split_once(':').unwrap_or((target, ""));
    let Some(n) = instance_of_uuid(id).filter(|n| p.instance(*n).is_some()) else {
        return not_found("instance");
    };
    let kind = match command {
        "stop" => "power_off",
        "start" => "power_on",
        "reboot" => "power_cycle",
        _ => return not_found("resource"),
    };
    if p.instance(n).is_some_and(|i| i.pending.is_some()) {
        return error(409, "an operation is already in progress on this instance");
    }
    let op = p.start_action(shared, n, kind, now, req);
    match power_operation_json(p, op) {
        Some(v) => Response::json(200, &v),
        None => error(500, "internal server error"),
    }
}

fn route(shared: &Shared, req: &Request, now: Instant) -> Response {
    let wall = super::clock::unix_secs(SystemTime::now());
    let signed = {
        let st = shared.lock_state();
        verify(
            req.header("authorization"),
            &req.method,
            &req.target,
            &req.body,
            wall,
            |key| st.api_keys.get(key).cloned(),
        )
    };
    if let Err(r) = signed {
        return Response::json(r.status, &r.body());
    }
    let Some(rest) = req.path.strip_prefix("/v2/") else {
        return not_found("resource");
    };
    let segs: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let mut st = shared.lock_state();
    st.settle(now);
    // Lock order: state, then power (then faults).
    let mut p = shared.lock_power();
    p.refresh(st.droplets.keys().copied(), now);
    let zone_ip = |st: &State, s: &str| {
        number_of(s, ip_uuid).filter(|id| {
            st.ip_of_id(*id)
                .is_some_and(|ip| st.region_of(ip) == Some(ZONE))
        })
    };
    match (segs.as_slice(), req.method.as_str()) {
        (["elastic-ip"], "GET") => {
            let list: Vec<Value> = zone_ips(&st)
                .into_iter()
                .filter_map(|id| ip_json(&st, id))
                .collect();
            Response::json(200, &json!({ "elastic-ips": list }))
        }
        (["elastic-ip", id], "GET") if !id.contains(':') => {
            match zone_ip(&st, id).and_then(|id| ip_json(&st, id)) {
                Some(v) => Response::json(200, &v),
                None => not_found("elastic IP"),
            }
        }
        (["elastic-ip", target], "PUT") if target.contains(':') => {
            let (id, command) = target.split_once(':').unwrap_or((target, ""));
            let Some(id) = zone_ip(&st, id) else {
                return not_found("elastic IP");
            };
            let body: Value = match serde_json::from_slice(&req.body) {
                Ok(v) => v,
                Err(_) => return error(400, "request body is not valid JSON"),
            };
            let Some(instance) = body
                .get("instance")
                .and_then(|i| i.get("id"))
                .and_then(Value::as_str)
            else {
                return error(400, "missing instance.id");
            };
            let Some(n) = instance_of_uuid(instance).filter(|n| st.droplets.contains_key(n)) else {
                return not_found("instance");
            };
            let kind = match command {
                "attach" => ActionKind::Attach(n),
                "detach" => ActionKind::Detach(n),
                _ => return not_found("resource"),
            };
            let ip = st.ip_of_id(id).unwrap_or_default().to_string();
            // Lock order: state, then faults (as the other dialects).
            let errored = || shared.lock_faults().on_action();
            match st.create_action(&ip, kind, "elastic_ip", errored, now) {
                Ok(op) => match operation_json(&st, op) {
                    Some(v) => Response::json(200, &v),
                    None => error(500, "internal server error"),
                },
                Err(ActionRefused::NoSuchIp) => not_found("elastic IP"),
                Err(ActionRefused::NoSuchDroplet(_)) => not_found("instance"),
                // Operations do not lock, and a detach needs no holder.
                Err(ActionRefused::Pending | ActionRefused::NotAssigned) => {
                    error(500, "internal server error")
                }
            }
        }
        (["instance"], "GET") => {
            let list: Vec<Value> = p
                .instance_ids()
                .into_iter()
                .filter_map(|n| instance_json(&st, &p, n))
                .collect();
            Response::json(200, &json!({ "instances": list }))
        }
        (["instance", target], "PUT") if target.contains(':') => {
            drop(st);
            power_switch(shared, req, &mut p, target, now)
        }
        (["instance", id], "GET") => {
            match instance_of_uuid(id).and_then(|n| instance_json(&st, &p, n)) {
                Some(v) => Response::json(200, &v),
                None => not_found("instance"),
            }
        }
        (["operation", id], "GET") => {
            match number_of(id, operation_uuid).and_then(|op| operation_json(&st, op)) {
                Some(v) => Response::json(200, &v),
                None => match number_of(id, power_operation_uuid)
                    .and_then(|op| power_operation_json(&p, op))
                {
                    Some(v) => Response::json(200, &v),
                    None => not_found("operation"),
                },
            }
        }
        (
            ["elastic-ip"] | ["elastic-ip", _] | ["instance"] | ["instance", _] | ["operation", _],
            _,
        ) => error(405, "method not allowed"),
        _ => not_found("resource"),
    }
}

/// One instance's metadata service: `/latest/meta-data/{instance-id,availability-zone,
/// public-ipv4,local-hostname}` as text; elastic IPs are not there.
pub fn metadata(n: u64, req: &Request) -> Response {
    if req.method != "GET" {
        return Response::text(405, "method not allowed\n");
    }
    let leaves = [
        ("instance-id", instance_uuid(n)),
        ("availability-zone", ZONE.to_string()),
        ("public-ipv4", format!("192.0.2.{}", n % 250 + 1)),
        ("local-hostname", format!("instance-{n}")),
    ];
    match req.path.strip_prefix("/latest/meta-data") {
        Some("" | "/") => {
            let list: String = leaves.iter().map(|(k, _)| format!("{k}\n")).collect();
            Response::text(200, list)
        }
        Some(rel) => match leaves
            .iter()
            .find(|(k, _)| rel.strip_prefix('/') == Some(*k))
        {
            Some((_, v)) => Response::text(200, v.clone()),
            None => Response::text(404, "not found\n"),
        },
        None => Response::text(404, "not found\n"),
    }
}

/// Why a request's authorization is refused: the status and the message of the answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

impl Refusal {
    fn new(status: u16, message: &str) -> Refusal {
        Refusal {
            status,
            message: message.to_string(),
        }
    }

    /// The answer's body, in Exoscale's shape.
    pub fn body(&self) -> serde_json::Value {
        json!({"message": self.message})
    }
}

/// The parts of an `Authorization: EXO2-HMAC-SHA256 ...` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    pub credential: String,
    pub signed_query_args: Vec<String>,
    pub expires: u64,
    pub signature: String,
}

/// Reads the header; None when it is not a well-formed EXO2 authorization.
pub fn parse_authorization(header: &str) -> Option<Authorization> {
    let rest = header.strip_prefix("EXO2-HMAC-SHA256 ")?;
    let (mut credential, mut args, mut expires, mut signature) = (None, None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.split_once('=')?;
        let slot = match k {
            "credential" => &mut credential,
            "signed-query-args" => &mut args,
            "expires" => &mut expires,
            "signature" => &mut signature,
            _ => return None,
        };
        if slot.replace(v.to_string()).is_some() {
            return None;
        }
    }
    Some(Authorization {
        credential: credential.filter(|c| !c.is_empty())?,
        signed_query_args: args
            .map(|a| a.split(';').map(str::to_string).collect())
            .unwrap_or_default(),
        expires: expires?.parse().ok()?,
        signature: signature.filter(|s| !s.is_empty())?,
    })
}

/// The signature of one request, as the API computes it: `target` is the path with its query
/// string, the query's parameters taken as written.
pub fn signature(
    secret: &str,
    method: &str,
    target: &str,
    body: &[u8],
    signed_query_args: &[String],
    expires: u64,
) -> Option<String> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let params: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    let mut values = String::new();
    for name in signed_query_args {
        let mut named = params.iter().filter(|(n, _)| n == name);
        let (_, v) = named.next()?;
        if named.next().is_some() {
            return None;
        }
        values.push_str(v);
    }
    let mut message = format!("{method} {path}\n").into_bytes();
    message.extend_from_slice(body);
    message.extend_from_slice(format!("\n{values}\n\n{expires}").as_bytes());
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    Some(base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, &message)))
}

/// The API's check of one request: the key must be known (`secret_of` gives its secret), the
/// expiry not past (`now`, UNIX seconds), the signature exact. Ok: the key it was signed with.
pub fn verify(
    authorization: Option<&str>,
    method: &str,
    target: &str,
    body: &[u8],
    now: u64,
    secret_of: impl Fn(&str) -> Option<String>,
) -> Result<String, Refusal> {
    let Some(header) = authorization else {
        return Err(Refusal::new(401, "missing authorization"));
    };
    let Some(auth) = parse_authorization(header) else {
        return Err(Refusal::new(401, "malformed authorization"));
    };
    if auth.expires < now {
        return Err(Refusal::new(401, "request expired"));
    }
    let Some(secret) = secret_of(&auth.credential) else {
        return Err(Refusal::new(403, "invalid API key"));
    };
    let want = signature(
        &secret,
        method,
        target,
        body,
        &auth.signed_query_args,
        auth.expires,
    );
    if want.as_deref() == Some(auth.signature.as_str()) {
        Ok(auth.credential)
    } else {
        Err(Refusal::new(403, "invalid request signature"))
    }
}
