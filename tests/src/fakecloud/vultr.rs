//! The Vultr dialect of the fake: the v2 `reserved-ips` routes and each instance's metadata
//! service (`/v1/...`, `/v1.json`), as shared/docs/clouds.md says. The account, changes (the
//! fake's actions), faults and request record are the fake's own (shared with the other
//! dialects); only the wire format and the rules that differ live here:
//! - reserved IPs and instances are addressed by UUIDs ([`ip_uuid`], [`instance_uuid`]);
//!   `GET /v2/reserved-ips` lists them in cursor pages (`per_page` default 100, at most 500;
//!   `meta.links.next` is the next page's cursor, `""` on the last), and a Vultr fake starts
//!   with [`FILLER_IPS`] reserved IPv6 subnets, so that the account holds more than one page of
//!   500; `instance_id` is `""` when the IP is not attached;
//! - `POST /v2/reserved-ips/{id}/detach` and `.../attach` `{"instance_id": "<UUID>"}` answer
//!   204 with no body at once; the platform finishes the change after the action time, and
//!   reads show the IP as it was until then. The in-flight window: after a detach the IP still
//!   shows its holder, then `""` (detached, not yet attached anywhere); after an attach it
//!   shows `""`, then the instance. An attach while the IP is attached, or while a change to
//!   it is in flight, is refused with 400 "...is already attached to another server"
//!   (terraform-provider-vultr #77); a detach while a change is in flight is refused with 400
//!   "...a change to this reserved IP is in progress", and a detach of an IP attached nowhere
//!   with 400 "Reserved IP is not attached" *(fake's choices: clouds.md gives no status or text
//!   for these two)*. An injected `ActionErrored` makes a change end with nothing changed, as
//!   a 204 that the platform then drops would;
//! - errors are `{"error": "...", "status": N}` *(fake's choice: clouds.md leaves the shape
//!   unconfirmed, an optional `error` field)*; an unknown instance in an attach is 400;
//! - instances' power (`GET /v2/instances[/{id}]`, `POST /v2/instances/{id}/halt|start`), on
//!   the fake's power (`power.rs`, its hook included): see [`instances`];
//! - the rate limit is 30 requests a second per source address; a 429 carries no rate-limit
//!   header (none is documented).

use super::faults::{FaultKind, OTHER_IP, OTHER_IP_ALT};
use super::http::{Request, Response};
use super::power::Power;
use super::state::{ActionKind, ActionRefused, State};
use super::Shared;
use base64::Engine;
use serde_json::{json, Value};
use std::time::Instant;

/// The reserved IPv6 subnets a Vultr fake starts with (`2001:db8:1:N::/64`, none attached):
/// more than one page of 500.
pub const FILLER_IPS: u32 = 520;
/// The region every reserved IP of the fake lives in.
pub const REGION: &str = "ewr";
/// Requests a second from one source address.
pub const PER_SECOND: u32 = 30;
const DEFAULT_PER_PAGE: u64 = 100;
const MAX_PER_PAGE: u64 = 500;

/// An instance's UUID for the fake's numeric instance `n` (what the other dialects call a
/// droplet or a server).
pub fn instance_uuid(n: u64) -> String {
    format!("5e7f0a11-0000-4000-8000-{n:012x}")
}

/// A reserved IP's UUID for the fake's numeric IP id `n`.
pub fn ip_uuid(n: u64) -> String {
    format!("4e5e4e00-0000-4000-8000-{n:012x}")
}

/// The fake's instance number for an instance UUID.
pub fn instance_of_uuid(uuid: &str) -> Option<u64> {
    super::exoscale::number_of(uuid, instance_uuid)
}

/// The filler subnet `n` (0-based).
pub fn filler(n: u32) -> String {
    format!("2001:db8:1:{n:x}::")
}

pub fn error(status: u16, message: &str) -> Response {
    Response::json(status, &json!({"error": message, "status": status}))
}

fn not_found() -> Response {
    error(404, "Not found")
}

/// 204: no body, no content type.
fn no_content() -> Response {
    Response {
        status: 204,
        headers: Vec::new(),
        body: Vec::new(),
    }
}

fn rate_limited() -> Response {
    error(429, "Rate limit exceeded")
}

/// The answer an injected fault gives on an API listener: Vultr's error for that status.
pub(crate) fn fault_answer(fault: &FaultKind) -> Response {
    match fault {
        // No rate-limit header is documented: a `retry_after` is not said.
        FaultKind::RateLimited { .. } | FaultKind::Status(429) => rate_limited(),
        FaultKind::Status(code) => {
            let message = match code {
                400 => "Invalid request",
                401 => "Invalid API token.",
                403 => "Unauthorized IP address",
                404 => "Not found",
                c if *c >= 500 => "Internal server error",
                _ => "An injected fault answered",
            };
            error(*code, message)
        }
        _ => error(500, "Internal server error"),
    }
}

/// The answer of an `OtherIp` fault to `GET /v2/reserved-ips/{id}`: the normal answer, but a
/// 200's object names another subnet, still with the real holder and id.
pub(crate) fn other_ip_answer(shared: &Shared, req: &Request) -> Response {
    let mut resp = handle(shared, req);
    if resp.status != 200 {
        return resp;
    }
    if let Ok(mut v) = serde_json::from_slice::<Value>(&resp.body) {
        if let Some(obj) = v.get_mut("reserved_ip").and_then(Value::as_object_mut) {
            let other = match obj.get("subnet").and_then(Value::as_str) {
                Some(OTHER_IP) => OTHER_IP_ALT,
                _ => OTHER_IP,
            };
            obj.insert("subnet".to_string(), json!(other));
        }
        resp.body = v.to_string().into_bytes();
    }
    resp
}

pub(crate) fn handle(shared: &Shared, req: &Request) -> Response {
    let now = Instant::now();
    let source = req.peer.map_or_else(String::new, |p| p.to_string());
    if !shared
        .lock_state()
        .spend_per_second(&source, now, PER_SECOND)
    {
        return rate_limited();
    }
    route(shared, req, now)
}

fn authorized(shared: &Shared, req: &Request) -> bool {
    let Some((scheme, token)) = req.header("authorization").and_then(|h| h.split_once(' ')) else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer") && shared.lock_state().tokens.contains(token.trim())
}

fn ip_json(st: &State, id: u64) -> Option<Value> {
    let ip = st.ip_of_id(id)?;
    let v6 = ip.contains(':');
    Some(json!({
        "id": ip_uuid(id),
        "region": st.region_of(ip).unwrap_or(REGION),
        "ip_type": if v6 { "v6" } else { "v4" },
        "subnet": ip,
        "subnet_size": if v6 { 64 } else { 32 },
        "label": format!("rip-{id}"),
        "instance_id": st.holder(ip).map_or_else(String::new, instance_uuid),
    }))
}

/// A page's cursor: the id of its first IP, base64 as Vultr's cursors look.
fn cursor(first: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("next__{first}"))
}

fn cursor_start(text: &str) -> Option<u64> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix("next__")?
        .parse()
        .ok()
}

/// `%XX` decoded (a cursor's `=` and `+` come escaped).
fn unescape(v: &str) -> Option<String> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `per_page` and the cursor's first id; None when one is not valid.
fn paging(target: &str) -> Option<(u64, Option<u64>)> {
    let (mut per_page, mut start) = (DEFAULT_PER_PAGE, None);
    let query = target.split_once('?').map_or("", |(_, q)| q);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "per_page" => {
                per_page = v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=MAX_PER_PAGE).contains(n))?
            }
            "cursor" if !v.is_empty() => start = Some(cursor_start(&unescape(v)?)?),
            _ => {}
        }
    }
    Some((per_page, start))
}

fn route(shared: &Shared, req: &Request, now: Instant) -> Response {
    if !authorized(shared, req) {
        return error(401, "Invalid API token.");
    }
    let Some(rest) = req.path.strip_prefix("/v2/") else {
        return not_found();
    };
    let segs: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let mut st = shared.lock_state();
    st.settle(now);
    let ip_id = |st: &State, s: &str| {
        super::exoscale::number_of(s, ip_uuid).filter(|id| st.ip_of_id(*id).is_some())
    };
    match (segs.as_slice(), req.method.as_str()) {
        (["reserved-ips"], "GET") => {
            let Some((per_page, start)) = paging(&req.target) else {
                return error(400, "Invalid per_page or cursor");
            };
            let all = st.ips_by_id();
            let from = start.map_or(0, |s| all.iter().take_while(|(id, _)| *id < s).count());
            let page: Vec<Value> = all
                .iter()
                .skip(from)
                .take(per_page as usize)
                .filter_map(|(id, _)| ip_json(&st, *id))
                .collect();
            let next = all
                .get(from + per_page as usize)
                .map_or_else(String::new, |(id, _)| cursor(*id));
            let prev = if from == 0 {
                String::new()
            } else {
                all.get(from.saturating_sub(per_page as usize))
                    .map_or_else(String::new, |(id, _)| cursor(*id))
            };
            Response::json(
                200,
                &json!({"reserved_ips": page, "meta": {"total": all.len(), "links": {"next": next, "prev": prev}}}),
            )
        }
        (["reserved-ips", id], "GET") => match ip_id(&st, id).and_then(|id| ip_json(&st, id)) {
            Some(v) => Response::json(200, &json!({"reserved_ip": v})),
            None => not_found(),
        },
        (["reserved-ips", id, command @ ("attach" | "detach")], "POST") => {
            let Some(id) = ip_id(&st, id) else {
                return not_found();
            };
            let ip = st.ip_of_id(id).unwrap_or_default().to_string();
            let kind = if *command == "detach" {
                ActionKind::Unassign
            } else {
                let instance = serde_json::from_slice::<Value>(&req.body)
                    .ok()
                    .and_then(|b| {
                        b.get("instance_id")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .and_then(|u| instance_of_uuid(&u))
                    .filter(|n| st.droplets.contains_key(n));
                let Some(n) = instance else {
                    return error(400, "Invalid instance_id.");
                };
                if st.holder(&ip).is_some() || st.locked(&ip) {
                    return error(400, "Reserved IP is already attached to another server");
                }
                ActionKind::Assign(n)
            };
            // Lock order: state, then faults (as the other dialects).
            let errored = || shared.lock_faults().on_action();
            match st.create_action(&ip, kind, "reserved_ip", errored, now) {
                Ok(_) => no_content(),
                Err(ActionRefused::NoSuchIp) => not_found(),
                Err(ActionRefused::Pending) => error(
                    400,
                    "Unable to detach: a change to this reserved IP is in progress",
                ),
                Err(ActionRefused::NotAssigned) => error(400, "Reserved IP is not attached"),
                Err(ActionRefused::NoSuchDroplet(_)) => error(400, "Invalid instance_id."),
            }
        }
        (["instances", ..], _) => {
            // Lock order: state, then power (then faults).
            let mut p = shared.lock_power();
            p.refresh(st.droplets.keys().copied(), now);
            drop(st);
            instances(shared, req, &mut p, &segs, now)
        }
        (["reserved-ips"] | ["reserved-ips", _] | ["reserved-ips", _, _], _) => {
            error(405, "Method not allowed")
        }
        _ => not_found(),
    }
}

/// One instance's metadata service: `/v1.json` (the tree) and single values under `/v1/`
/// (`instanceid`, `instance-v2-id`, `hostname`, `region/regioncode`,
/// `interfaces/0/ipv4/address`); reserved IPs are not there *(fake's choice: unconfirmed)*.
pub fn metadata(n: u64, req: &Request) -> Response {
    if req.method != "GET" {
        return Response::text(405, "method not allowed\n");
    }
    let public = format!("192.0.2.{}", n % 250 + 1);
    let leaves = [
        ("instanceid", n.to_string()),
        ("instance-v2-id", instance_uuid(n)),
        ("hostname", format!("instance-{n}")),
        ("region/regioncode", REGION.to_ascii_uppercase()),
        ("interfaces/0/ipv4/address", public.clone()),
    ];
    if req.path == "/v1.json" {
        return Response::json(
            200,
            &json!({
                "instanceid": n.to_string(),
                "instance-v2-id": instance_uuid(n),
                "hostname": format!("instance-{n}"),
                "region": {"regioncode": REGION.to_ascii_uppercase()},
                "interfaces": [{"ipv4": {"address": public}, "network-type": "public"}],
            }),
        );
    }
    match req.path.strip_prefix("/v1/") {
        Some(rel) => match leaves.iter().find(|(k, _)| rel == *k) {
            Some((_, v)) => Response::text(200, v.clone()),
            None => Response::text(404, "not found\n"),
        },
        None => Response::text(404, "not found\n"),
    }
}

/// An instance as `GET /v2/instances[/{id}]` shows it: `power_status` `running` or `stopped`,
/// which changes once a halt or start is done (after the power time), not when it is asked.
fn instance_json(p: &Power, n: u64) -> Option<Value> {
    let i = p.instance(n)?;
    Some(json!({
        "id": instance_uuid(n),
        "label": i.name,
        "os": "Debian 12 x64 (bookworm)",
        "region": REGION,
        "plan": "vc2-1c-1gb",
        "main_ip": format!("192.0.2.{}", n % 250 + 1),
        "status": "active",
        "power_status": if i.on { "running" } else { "stopped" },
        "server_status": "ok",
        "tags": [],
    }))
}

/// Vultr's instances' power (fencing.md §6): `GET /v2/instances` (cursor pages, as the
/// reserved IPs; `label=` filters exactly), `GET /v2/instances/{id}`, and `POST
/// /v2/instances/{id}/halt|start|reboot` answered 204 at once (204 is UNCONFIRMED: govultr
/// reads no body), the power changing after the power time. A `start` of a running instance
/// restarts it (govultr: "if the machine is already running, it will be restarted"). Whether
/// `halt` is hard is UNCONFIRMED; here the instance is off once it is done. A call while one
/// runs on the instance is answered 204 and dropped, and a halt of a stopped instance is 204
/// without a change *(fake's choices: no source says)*.
fn instances(
    shared: &Shared,
    req: &Request,
    p: &mut Power,
    segs: &[&str],
    now: Instant,
) -> Response {
    let known = |s: &str| instance_of_uuid(s).filter(|n| p.instance(*n).is_some());
    match (segs, req.method.as_str()) {
        (["instances"], "GET") => {
            let Some((per_page, start)) = paging(&req.target) else {
                return error(400, "Invalid per_page or cursor");
            };
            let label = req
                .target
                .split_once('?')
                .map_or("", |(_, q)| q)
                .split('&')
                .find_map(|kv| kv.strip_prefix("label="))
                .and_then(unescape);
            let all: Vec<u64> = p
                .instance_ids()
                .into_iter()
                .filter(|n| {
                    label
                        .as_ref()
                        .is_none_or(|l| p.instance(*n).is_some_and(|i| i.name == *l))
                })
                .collect();
            let from = start.map_or(0, |s| all.iter().take_while(|n| **n < s).count());
            let page: Vec<Value> = all
                .iter()
                .skip(from)
                .take(per_page as usize)
                .filter_map(|n| instance_json(p, *n))
                .collect();
            let next = all
                .get(from + per_page as usize)
                .map_or_else(String::new, |n| cursor(*n));
            let prev = if from == 0 {
                String::new()
            } else {
                all.get(from.saturating_sub(per_page as usize))
                    .map_or_else(String::new, |n| cursor(*n))
            };
            Response::json(
                200,
                &json!({"instances": page, "meta": {"total": all.len(), "links": {"next": next, "prev": prev}}}),
            )
        }
        (["instances", id], "GET") => match known(id).and_then(|n| instance_json(p, n)) {
            Some(v) => Response::json(200, &json!({"instance": v})),
            None => not_found(),
        },
        (["instances", id, command @ ("halt" | "start" | "reboot")], "POST") => {
            let Some(n) = known(id) else {
                return not_found();
            };
            let Some(i) = p.instance(n) else {
                return not_found();
            };
            let kind = match (*command, i.on) {
                ("halt", _) => "power_off",
                ("start", false) => "power_on",
                _ => "power_cycle", // start of a running instance, reboot
            };
            if i.pending.is_none() {
                p.start_action(shared, n, kind, now, req);
            }
            no_content()
        }
        (["instances"] | ["instances", _] | ["instances", _, _], _) => {
            error(405, "Method not allowed")
        }
        _ => not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_and_uuids_round_trip() {
        assert_eq!(cursor_start(&cursor(4_700_123)), Some(4_700_123));
        assert_eq!(
            paging(&format!(
                "/v2/reserved-ips?per_page=500&cursor={}",
                cursor(7).replace('=', "%3D")
            )),
            Some((500, Some(7)))
        );
        assert_eq!(paging("/v2/reserved-ips?per_page=501"), None);
        assert_eq!(paging("/v2/reserved-ips?cursor=x"), None);
        assert_eq!(instance_of_uuid(&instance_uuid(3_160_001)), Some(3_160_001));
        assert_eq!(instance_of_uuid(&ip_uuid(3_160_001)), None);
    }
}
