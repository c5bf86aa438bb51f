//! The DigitalOcean API routes the agents use, answered as shared/docs/digitalocean.md says:
//! bearer tokens, per-token rate budgets with `ratelimit-*` headers, reserved/floating IP reads,
//! assign/unassign actions that stay `in-progress` for the configured time, action status.

use super::faults::{ip_read, FaultKind, OTHER_IP, OTHER_IP_ALT};
use super::http::{Request, Response};
use super::state::{ActionKind, ActionRefused};
use super::Shared;
use serde_json::{json, Value};
use std::time::{Instant, SystemTime};

/// `reserved_ips` or `floating_ips`: the family a path belongs to, and its JSON names.
#[derive(Clone, Copy)]
struct Family {
    plural: &'static str,
    singular: &'static str,
}

const RESERVED: Family = Family {
    plural: "reserved_ips",
    singular: "reserved_ip",
};
const FLOATING: Family = Family {
    plural: "floating_ips",
    singular: "floating_ip",
};

pub fn error(status: u16, id: &str, message: &str, shared: &Shared) -> Response {
    let request_id = shared.request_id();
    Response::json(
        status,
        &json!({"id": id, "message": message, "request_id": request_id}),
    )
    .header("x-request-id", request_id)
}

fn not_found(shared: &Shared) -> Response {
    error(
        404,
        "not_found",
        "The resource you were accessing could not be found.",
        shared,
    )
}

fn budget_key(req: &Request) -> String {
    req.header("authorization").unwrap_or("").to_string()
}

fn with_headers(mut resp: Response, headers: Vec<(String, String)>, shared: &Shared) -> Response {
    resp.headers.extend(headers);
    if !resp.headers.iter().any(|(k, _)| k == "x-request-id") {
        resp.headers
            .push(("x-request-id".into(), shared.request_id()));
    }
    resp
}

/// The answer an injected fault gives on an API listener.
pub fn fault_answer(shared: &Shared, req: &Request, fault: &FaultKind) -> Response {
    let headers =
        shared
            .lock_state()
            .peek_budget(&budget_key(req), Instant::now(), SystemTime::now());
    let resp = match fault {
        FaultKind::RateLimited { retry_after } => {
            error(429, "too_many_requests", "API Rate limit exceeded.", shared)
                .header("retry-after", retry_after.to_string())
        }
        FaultKind::Status(429) => {
            error(429, "too_many_requests", "API Rate limit exceeded.", shared)
                .header("retry-after", "1")
        }
        // The error DigitalOcean gives with that status, so that a client's handling is tested.
        FaultKind::Status(code) => {
            let (id, message) = match code {
                400 => ("bad_request", "The request could not be understood."),
                401 => ("unauthorized", "Unable to authenticate you."),
                403 => (
                    "forbidden",
                    "You do not have access for the attempted action.",
                ),
                404 => (
                    "not_found",
                    "The resource you were accessing could not be found.",
                ),
                422 => (
                    "unprocessable_entity",
                    "The floating IP already has a pending event.",
                ),
                c if *c >= 500 => ("server_error", "Server was unable to give you a response."),
                _ => ("injected", "An injected fault answered."),
            };
            error(*code, id, message, shared)
        }
        _ => error(
            500,
            "server_error",
            "Server was unable to give you a response.",
            shared,
        ),
    };
    with_headers(resp, headers, shared)
}

/// The answer of an `OtherIp` fault to a read of one IP: the normal answer (budget, token and
/// 404 included), but a 200's IP object names another address, still with the real holder.
pub fn other_ip_answer(shared: &Shared, req: &Request) -> Response {
    let mut resp = handle(shared, req);
    if resp.status != 200 {
        return resp;
    }
    let other = match ip_read(&req.method, &req.path) {
        Some(OTHER_IP) => OTHER_IP_ALT,
        _ => OTHER_IP,
    };
    if let Ok(mut v) = serde_json::from_slice::<Value>(&resp.body) {
        for family in [RESERVED, FLOATING] {
            if let Some(obj) = v.get_mut(family.singular).and_then(Value::as_object_mut) {
                obj.insert("ip".to_string(), json!(other));
            }
        }
        resp.body = v.to_string().into_bytes();
    }
    resp
}

pub fn handle(shared: &Shared, req: &Request) -> Response {
    let now = Instant::now();
    let key = budget_key(req);
    let budget = shared.lock_state().spend(&key, now, SystemTime::now());
    if let Some(secs) = budget.retry_after {
        let resp = error(429, "too_many_requests", "API Rate limit exceeded.", shared)
            .header("retry-after", secs.to_string());
        return with_headers(resp, budget.headers, shared);
    }
    let resp = route(shared, req, now);
    with_headers(resp, budget.headers, shared)
}

fn authorized(shared: &Shared, req: &Request) -> bool {
    let Some(h) = req.header("authorization") else {
        return false;
    };
    let mut parts = h.splitn(2, ' ');
    let (Some(scheme), Some(token)) = (parts.next(), parts.next()) else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer") && shared.lock_state().tokens.contains(token.trim())
}

fn route(shared: &Shared, req: &Request, now: Instant) -> Response {
    if !authorized(shared, req) {
        return error(401, "unauthorized", "Unable to authenticate you.", shared);
    }
    let Some(rest) = req.path.strip_prefix("/v2/") else {
        return not_found(shared);
    };
    let segs: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let method = req.method.as_str();
    if segs.first() == Some(&"droplets") {
        return super::power::route(shared, req, &segs, now);
    }
    let family = match segs.first() {
        Some(&"reserved_ips") => Some(RESERVED),
        Some(&"floating_ips") => Some(FLOATING),
        _ => None,
    };
    let mut st = shared.lock_state();
    st.settle(now);
    match (family, segs.as_slice(), method) {
        (Some(f), [_], "GET") => {
            let list: Vec<Value> = st
                .ip_list()
                .iter()
                .filter_map(|ip| st.ip_json(ip))
                .collect();
            let total = list.len();
            Response::json(
                200,
                &json!({f.plural: list, "links": {}, "meta": {"total": total}}),
            )
        }
        (Some(f), [_, ip], "GET") => match st.ip_json(ip) {
            Some(v) => Response::json(200, &json!({f.singular: v})),
            None => {
                drop(st);
                not_found(shared)
            }
        },
        (Some(f), [_, ip, "actions"], "POST") => {
            if !st.has_ip(ip) {
                drop(st);
                return not_found(shared);
            }
            drop(st);
            create_action(shared, req, ip, f, now)
        }
        (Some(f), [_, ip, "actions"], "GET") => {
            if !st.has_ip(ip) {
                drop(st);
                return not_found(shared);
            }
            let list: Vec<Value> = st
                .action_ids_for(ip)
                .into_iter()
                .filter_map(|id| st.action_json(id, Some(f.singular)))
                .collect();
            let total = list.len();
            Response::json(
                200,
                &json!({"actions": list, "links": {}, "meta": {"total": total}}),
            )
        }
        (Some(f), [_, ip, "actions", id], "GET") => {
            let found = id
                .parse::<u64>()
                .ok()
                .filter(|id| st.action_ip(*id) == Some(*ip))
                .and_then(|id| st.action_json(id, Some(f.singular)));
            match found {
                Some(a) => Response::json(200, &json!({"action": a})),
                None => {
                    drop(st);
                    not_found(shared)
                }
            }
        }
        (None, ["actions"], "GET") => {
            let list: Vec<Value> = st
                .action_ids()
                .into_iter()
                .filter_map(|id| st.action_json(id, None))
                .collect();
            let total = list.len();
            Response::json(
                200,
                &json!({"actions": list, "links": {}, "meta": {"total": total}}),
            )
        }
        (None, ["actions", id], "GET") => {
            match id.parse().ok().and_then(|id| st.action_json(id, None)) {
                Some(a) => Response::json(200, &json!({"action": a})),
                None => {
                    drop(st);
                    match super::power::action(shared, id, now) {
                        Some(a) => Response::json(200, &json!({"action": a})),
                        None => not_found(shared),
                    }
                }
            }
        }
        (Some(_), [_] | [_, _] | [_, _, "actions"] | [_, _, "actions", _], _)
        | (None, ["actions"] | ["actions", _], _) => {
            drop(st);
            error(405, "method_not_allowed", "Method not allowed.", shared)
        }
        _ => {
            drop(st);
            not_found(shared)
        }
    }
}

fn create_action(shared: &Shared, req: &Request, ip: &str, f: Family, now: Instant) -> Response {
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                400,
                "bad_request",
                &format!("The request body is not JSON: {e}."),
                shared,
            )
        }
    };
    let kind = match body.get("type").and_then(Value::as_str) {
        Some("assign") => match body.get("droplet_id").and_then(Value::as_u64) {
            Some(d) => ActionKind::Assign(d),
            None => {
                return error(
                    422,
                    "unprocessable_entity",
                    "droplet_id is required and must be an integer.",
                    shared,
                )
            }
        },
        Some("unassign") => ActionKind::Unassign,
        _ => {
            return error(
                422,
                "unprocessable_entity",
                "type must be one of assign, unassign.",
                shared,
            )
        }
    };
    let mut st = shared.lock_state();
    // Lock order: state, then faults (nothing takes them the other way round).
    let errored = || shared.lock_faults().on_action();
    match st.create_action(ip, kind, f.singular, errored, now) {
        Ok(id) => {
            let a = st.action_json(id, Some(f.singular)).unwrap_or(Value::Null);
            Response::json(201, &json!({"action": a}))
        }
        Err(refused) => {
            drop(st);
            match refused {
                ActionRefused::NoSuchIp => not_found(shared),
                ActionRefused::Pending => error(
                    422,
                    "unprocessable_entity",
                    "The floating IP already has a pending event.",
                    shared,
                ),
                ActionRefused::NoSuchDroplet(d) => error(
                    422,
                    "unprocessable_entity",
                    &format!("Droplet {d} was not found."),
                    shared,
                ),
                ActionRefused::NotAssigned => error(
                    422,
                    "unprocessable_entity",
                    "The floating IP is not assigned to a Droplet.",
                    shared,
                ),
            }
        }
    }
}
