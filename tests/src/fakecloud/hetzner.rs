//! The Hetzner Cloud dialect of the fake: the v1 `floating_ips` and `actions` routes and each
//! server's metadata service (`/hetzner/v1/metadata/...`), as shared/docs/clouds.md says. The
//! account, actions, rate budgets, faults and request record are the fake's own (shared with the
//! DigitalOcean dialect); only the wire format and the rules that differ live here:
//! - floating IPs are addressed by a numeric id and listed in pages (`page`, `per_page` ≤ 50,
//!   default 25), with `meta.pagination`; a Hetzner fake starts with `FILLER_IPS` unheld
//!   floating IPs, so that the account holds more than one page;
//! - `POST /v1/floating_ips/{id}/actions/assign` `{"server": N}` → 201 `{"action"}`, `running`
//!   for the action time, then `success` (or `error`, with an injected `ActionErrored`); while
//!   an action runs on the IP, another is refused with 423 `locked`;
//! - errors are `{"error": {"code", "message", "details"}}`; `RateLimit-Limit`,
//!   `RateLimit-Remaining`, `RateLimit-Reset` on every answer; a 429 carries no `Retry-After`
//!   (the client waits for `RateLimit-Reset`) *(fake's choice: no source shows one)*.

use super::clock::unix_secs;
use super::faults::{FaultKind, OTHER_IP, OTHER_IP_ALT};
use super::http::{Request, Response};
use super::state::{ActionKind, ActionRefused, RateLimit, State};
use super::Shared;
use serde_json::{json, Value};
use std::time::{Instant, SystemTime};

/// The unheld floating IPs a Hetzner fake starts with (192.0.2.101 and up, ids from 4700001):
/// more than two default pages.
pub const FILLER_IPS: u32 = 60;
/// The location every floating IP of the fake lives in.
pub const LOCATION: &str = "fsn1";
/// Hetzner's budget: 3600 requests per hour per project; the fake has no shorter window.
pub const RATE: RateLimit = RateLimit {
    per_minute: 3600,
    per_hour: 3600,
};
const DEFAULT_PER_PAGE: u64 = 25;
const MAX_PER_PAGE: u64 = 50;

pub fn error(status: u16, code: &str, message: &str) -> Response {
    Response::json(
        status,
        &json!({"error": {"code": code, "message": message, "details": {}}}),
    )
}

fn not_found() -> Response {
    error(404, "not_found", "resource not found")
}

fn budget_key(req: &Request) -> String {
    req.header("authorization").unwrap_or("").to_string()
}

/// The budget's headers as Hetzner spells them.
fn with_headers(mut resp: Response, headers: Vec<(String, String)>) -> Response {
    for (k, v) in headers {
        let name = match k.as_str() {
            "ratelimit-limit" => "RateLimit-Limit",
            "ratelimit-remaining" => "RateLimit-Remaining",
            "ratelimit-reset" => "RateLimit-Reset",
            _ => continue,
        };
        resp.headers.push((name.to_string(), v));
    }
    resp
}

/// A 429 as Hetzner gives it: the budget spent, and when it is back.
fn rate_limited(reset_in: u64) -> Response {
    let reset = unix_secs(SystemTime::now()) + reset_in.max(1);
    error(
        429,
        "rate_limit_exceeded",
        "limit of 3600 requests per hour reached",
    )
    .header("RateLimit-Limit", RATE.per_hour.to_string())
    .header("RateLimit-Remaining", "0")
    .header("RateLimit-Reset", reset.to_string())
}

/// The answer an injected fault gives on an API listener: Hetzner's error for that status.
pub(crate) fn fault_answer(shared: &Shared, req: &Request, fault: &FaultKind) -> Response {
    match fault {
        FaultKind::RateLimited { retry_after } => return rate_limited(*retry_after),
        FaultKind::Status(429) => return rate_limited(1),
        _ => {}
    }
    let headers =
        shared
            .lock_state()
            .peek_budget(&budget_key(req), Instant::now(), SystemTime::now());
    let resp = match fault {
        FaultKind::Status(code) => {
            let (c, message) = match code {
                400 => ("invalid_input", "invalid input in field 'server'"),
                401 => ("unauthorized", "unable to authenticate"),
                403 => ("forbidden", "insufficient permissions for this request"),
                404 => ("not_found", "resource not found"),
                409 => (
                    "conflict",
                    "resource has changed during the request, please retry",
                ),
                423 => ("locked", "resource is locked by a running action"),
                502 => ("bad_gateway", "bad gateway"),
                503 => ("unavailable", "service unavailable"),
                504 => ("timeout", "gateway timeout"),
                c if *c >= 500 => ("server_error", "internal server error"),
                _ => ("injected", "an injected fault answered"),
            };
            error(*code, c, message)
        }
        _ => error(500, "server_error", "internal server error"),
    };
    with_headers(resp, headers)
}

/// The answer of an `OtherIp` fault to `GET /v1/floating_ips/{id}`: the normal answer, but a
/// 200's object names another address, still with the real holder and id.
pub(crate) fn other_ip_answer(shared: &Shared, req: &Request) -> Response {
    let mut resp = handle(shared, req);
    if resp.status != 200 {
        return resp;
    }
    if let Ok(mut v) = serde_json::from_slice::<Value>(&resp.body) {
        if let Some(obj) = v.get_mut("floating_ip").and_then(Value::as_object_mut) {
            let other = match obj.get("ip").and_then(Value::as_str) {
                Some(OTHER_IP) => OTHER_IP_ALT,
                _ => OTHER_IP,
            };
            obj.insert("ip".to_string(), json!(other));
        }
        resp.body = v.to_string().into_bytes();
    }
    resp
}

pub(crate) fn handle(shared: &Shared, req: &Request) -> Response {
    let now = Instant::now();
    let budget = shared
        .lock_state()
        .spend(&budget_key(req), now, SystemTime::now());
    if let Some(secs) = budget.retry_after {
        return rate_limited(secs);
    }
    with_headers(route(shared, req, now), budget.headers)
}

fn authorized(shared: &Shared, req: &Request) -> bool {
    let Some((scheme, token)) = req.header("authorization").and_then(|h| h.split_once(' ')) else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer") && shared.lock_state().tokens.contains(token.trim())
}

/// `page` and `per_page` of the query string; None when one is not a positive number.
fn paging(target: &str) -> Option<(u64, u64)> {
    let (mut page, mut per_page) = (1, DEFAULT_PER_PAGE);
    let query = target.split_once('?').map_or("", |(_, q)| q);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "page" => page = v.parse().ok().filter(|n| *n >= 1)?,
            // Hetzner caps a page at 50 *(fake's choice: larger asks get 50, not an error)*.
            "per_page" => per_page = v.parse::<u64>().ok().filter(|n| *n >= 1)?.min(MAX_PER_PAGE),
            _ => {}
        }
    }
    Some((page, per_page))
}

fn ip_json(st: &State, id: u64) -> Option<Value> {
    let ip = st.ip_of_id(id)?;
    let v6 = ip.contains(':');
    Some(json!({
        "id": id,
        "name": format!("fip-{id}"),
        "description": null,
        "ip": if v6 { format!("{ip}/64") } else { ip.to_string() },
        "type": if v6 { "ipv6" } else { "ipv4" },
        "server": st.holder(ip),
        "dns_ptr": [],
        "home_location": {"name": st.region_of(ip).unwrap_or(LOCATION), "network_zone": "eu-central"},
        "blocked": false,
        "protection": {"delete": false},
        "labels": {},
        "created": "2026-01-05T10:00:00+00:00",
    }))
}

fn action_json(st: &State, id: u64) -> Option<Value> {
    let view = st.action_view(id)?;
    let base = st.action_json(id, None)?;
    let ip_id = st.id_of_ip(&view.ip);
    let (status, progress, error) = match view.status.as_str() {
        "in-progress" => ("running", 0, Value::Null),
        "completed" => ("success", 100, Value::Null),
        _ => (
            "error",
            100,
            json!({"code": "action_failed", "message": "Action failed"}),
        ),
    };
    Some(json!({
        "id": id,
        "command": match view.kind {
            ActionKind::Assign(_) | ActionKind::Attach(_) => "assign_floating_ip",
            ActionKind::Unassign | ActionKind::Detach(_) => "unassign_floating_ip",
        },
        "status": status,
        "progress": progress,
        "started": base["started_at"],
        "finished": base["completed_at"],
        "resources": [{"id": ip_id, "type": "floating_ip"}],
        "error": error,
    }))
}

fn route(shared: &Shared, req: &Request, now: Instant) -> Response {
    if !authorized(shared, req) {
        return error(401, "unauthorized", "unable to authenticate");
    }
    let Some(rest) = req.path.strip_prefix("/v1/") else {
        return not_found();
    };
    let segs: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    if segs.first() == Some(&"servers") {
        return super::power::route_hetzner(shared, req, &segs, now);
    }
    let mut st = shared.lock_state();
    st.settle(now);
    let ip_id = |s: &str| {
        s.parse::<u64>()
            .ok()
            .filter(|id| st.ip_of_id(*id).is_some())
    };
    match (segs.as_slice(), req.method.as_str()) {
        (["floating_ips"], "GET") => {
            let Some((page, per_page)) = paging(&req.target) else {
                return error(
                    400,
                    "invalid_input",
                    "invalid input in fields 'page', 'per_page'",
                );
            };
            let all = st.ips_by_id();
            let total = all.len() as u64;
            let last = total.div_ceil(per_page).max(1);
            let list: Vec<Value> = all
                .iter()
                .skip(((page - 1) * per_page) as usize)
                .take(per_page as usize)
                .filter_map(|(id, _)| ip_json(&st, *id))
                .collect();
            Response::json(
                200,
                &json!({"floating_ips": list, "meta": {"pagination": {
                    "page": page,
                    "per_page": per_page,
                    "previous_page": if page > 1 { json!(page - 1) } else { Value::Null },
                    "next_page": if page < last { json!(page + 1) } else { Value::Null },
                    "last_page": last,
                    "total_entries": total,
                }}}),
            )
        }
        (["floating_ips", id], "GET") => match ip_id(id).and_then(|id| ip_json(&st, id)) {
            Some(v) => Response::json(200, &json!({"floating_ip": v})),
            None => not_found(),
        },
        (["floating_ips", id, "actions", command], "POST") => {
            let Some(id) = ip_id(id) else {
                return not_found();
            };
            let ip = st.ip_of_id(id).unwrap_or_default().to_string();
            drop(st);
            create_action(shared, req, &ip, command, now)
        }
        (["floating_ips", id, "actions", action], "GET") => {
            let found = action
                .parse::<u64>()
                .ok()
                .filter(|a| ip_id(id).and_then(|id| st.ip_of_id(id)) == st.action_ip(*a));
            match found.and_then(|a| action_json(&st, a)) {
                Some(a) => Response::json(200, &json!({"action": a})),
                None => not_found(),
            }
        }
        (["actions", action], "GET") => {
            match action.parse().ok().and_then(|a| action_json(&st, a)) {
                Some(a) => Response::json(200, &json!({"action": a})),
                None => {
                    drop(st);
                    match super::power::action_hetzner(shared, action, now) {
                        Some(a) => Response::json(200, &json!({"action": a})),
                        None => not_found(),
                    }
                }
            }
        }
        (["floating_ips"] | ["floating_ips", _] | ["actions", _], _)
        | (["floating_ips", _, "actions", _], _) => {
            error(405, "method_not_allowed", "method not allowed")
        }
        _ => not_found(),
    }
}

fn create_action(
    shared: &Shared,
    req: &Request,
    ip: &str,
    command: &str,
    now: Instant,
) -> Response {
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(_) => return error(400, "invalid_input", "request body is not valid JSON"),
    };
    let kind = match command {
        "assign" => match body.get("server").and_then(Value::as_u64) {
            Some(server) => ActionKind::Assign(server),
            None => return error(400, "invalid_input", "invalid input in field 'server'"),
        },
        "unassign" => ActionKind::Unassign,
        _ => return not_found(),
    };
    let mut st = shared.lock_state();
    // Lock order: state, then faults (as the DigitalOcean dialect).
    let errored = || shared.lock_faults().on_action();
    match st.create_action(ip, kind, "floating_ip", errored, now) {
        Ok(id) => {
            let a = action_json(&st, id).unwrap_or(Value::Null);
            Response::json(201, &json!({"action": a}))
        }
        Err(ActionRefused::NoSuchIp) => not_found(),
        Err(ActionRefused::Pending) => {
            error(423, "locked", "floating IP is locked by a running action")
        }
        // *(fake's choice)*: no source shows these two answers.
        Err(ActionRefused::NoSuchDroplet(d)) => error(
            400,
            "invalid_input",
            &format!("server with ID '{d}' not found"),
        ),
        Err(ActionRefused::NotAssigned) => error(
            400,
            "invalid_input",
            "floating IP is not assigned to a server",
        ),
    }
}

/// One server's metadata service: `/hetzner/v1/metadata/{instance-id,hostname,region,
/// availability-zone}` as text, `/hetzner/v1/metadata` as YAML; floating IPs are not there.
pub fn metadata(id: u64, req: &Request) -> Response {
    if req.method != "GET" {
        return Response::text(405, "method not allowed\n");
    }
    let leaves = [
        ("instance-id", id.to_string()),
        ("hostname", format!("server-{id}")),
        ("region", "eu-central".to_string()),
        ("availability-zone", format!("{LOCATION}-dc14")),
    ];
    match req.path.strip_prefix("/hetzner/v1/metadata") {
        Some("" | "/") => {
            let yaml: String = leaves.iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
            Response::new(200, "text/yaml", yaml)
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
