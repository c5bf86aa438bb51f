//! Droplets' power, as shared/docs/fencing.md §6 describes DigitalOcean's: droplets with a name
//! and a status (`active`, `off`), `POST /v2/droplets/{id}/actions` (`power_off`, `power_on`,
//! `power_cycle`, `shutdown`, `reboot`) answering 201 with an action that stays `in-progress`
//! for the power time, then completes (or errors, with the `ActionErrored` fault), `GET
//! /v2/droplets[?name=][&page=&per_page=]`, `GET /v2/droplets/{id}`, `GET
//! /v2/droplets/{id}/actions`, `GET /v2/actions/{id}`. 422 when the droplet already has a
//! pending event or is already off (on). A hook sees each droplet go off and on: the cluster
//! test kills or boots that node there, so that "powered off" is real.

use super::api::error;
use super::clock::rfc3339;
use super::http::{Request, Response};
use super::Shared;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Called as each droplet goes off (false) or on (true), before any answer tells so.
pub type PowerHook = Arc<dyn Fn(u64, bool) + Send + Sync>;

/// One droplet's power.
#[derive(Clone, Debug)]
struct Droplet {
    name: String,
    on: bool,
}

/// A power action, as tests see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PowerAction {
    pub id: u64,
    pub droplet: u64,
    /// `power_off`, `power_on`, …
    pub kind: String,
    /// `in-progress`, `completed` or `errored`.
    pub status: &'static str,
    pub requested: Instant,
    /// When it completed (or errored): when it was due.
    pub settled: Option<Instant>,
    /// The wall-clock time the fake settled it, after the hook ran (compare with
    /// `RecordedRequest::at`).
    pub settled_wall: Option<SystemTime>,
    /// The API token's last four characters (who asked), for the record.
    pub token_tail: String,
}

#[derive(Default)]
pub struct Power {
    droplets: BTreeMap<u64, Droplet>,
    actions: BTreeMap<u64, (PowerAction, Instant, bool)>,
    next: u64,
    /// How long a power action stays in progress.
    pub time: Duration,
    hook: Option<PowerHook>,
}

const KINDS: [&str; 5] = ["power_off", "power_on", "power_cycle", "shutdown", "reboot"];

impl Power {
    pub fn new() -> Power {
        Power {
            next: 3_100_000_001,
            time: Duration::from_millis(500),
            ..Power::default()
        }
    }

    /// Name a droplet (registering its power, on).
    pub fn name(&mut self, id: u64, name: &str) {
        let d = self.droplets.entry(id).or_insert(Droplet {
            name: String::new(),
            on: true,
        });
        d.name = name.to_string();
    }

    /// Every droplet of the account has power, on and named `droplet-<id>`, until named.
    fn know(&mut self, ids: impl IntoIterator<Item = u64>) {
        for id in ids {
            self.droplets.entry(id).or_insert_with(|| Droplet {
                name: format!("droplet-{id}"),
                on: true,
            });
        }
    }

    pub fn set_hook(&mut self, hook: Option<PowerHook>) {
        self.hook = hook;
    }

    /// Whether droplet `id` is on now (actions due settled first).
    pub fn is_on(&mut self, id: u64, now: Instant) -> Option<bool> {
        self.settle(now);
        self.droplets.get(&id).map(|d| d.on)
    }

    /// Power a droplet off or on behind the API's back (the console, or a crash), now; no hook.
    pub fn set_on(&mut self, id: u64, on: bool) {
        if let Some(d) = self.droplets.get_mut(&id) {
            d.on = on;
        }
    }

    pub fn actions(&mut self, now: Instant) -> Vec<PowerAction> {
        self.settle(now);
        self.actions.values().map(|(a, _, _)| a.clone()).collect()
    }

    /// Complete every action whose time has come, in order, calling the hook for each change.
    pub fn settle(&mut self, now: Instant) {
        let due: Vec<u64> = self
            .actions
            .iter()
            .filter(|(_, (a, due, _))| a.settled.is_none() && *due <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some((a, due, errored)) = self.actions.get_mut(&id) else {
                continue;
            };
            a.settled = Some(*due);
            a.status = if *errored { "errored" } else { "completed" };
            if *errored {
                a.settled_wall = Some(SystemTime::now());
                continue;
            }
            let (droplet, kind) = (a.droplet, a.kind.clone());
            let Some(d) = self.droplets.get_mut(&droplet) else {
                continue;
            };
            let (was, mut changes) = (d.on, Vec::new());
            match kind.as_str() {
                "power_off" | "shutdown" => changes.push(false),
                "power_on" => changes.push(true),
                _ => changes.extend([false, true]), // power_cycle, reboot
            }
            let mut now_on = was;
            for on in changes {
                if on != now_on {
                    now_on = on;
                    if let Some(h) = &self.hook {
                        h(droplet, on);
                    }
                }
            }
            if let Some(d) = self.droplets.get_mut(&droplet) {
                d.on = now_on;
            }
            if let Some((a, _, _)) = self.actions.get_mut(&id) {
                a.settled_wall = Some(SystemTime::now());
            }
        }
    }

    fn pending(&self, droplet: u64) -> bool {
        self.actions
            .values()
            .any(|(a, _, _)| a.droplet == droplet && a.settled.is_none())
    }

    /// A new power action on `droplet`, settled at once when the power time is zero.
    fn add_action(
        &mut self,
        droplet: u64,
        kind: &str,
        now: Instant,
        errored: bool,
        req: &Request,
    ) -> u64 {
        let aid = self.next;
        self.next += 1;
        let token = req.header("authorization").unwrap_or("");
        let tail: String = token
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        self.actions.insert(
            aid,
            (
                PowerAction {
                    id: aid,
                    droplet,
                    kind: kind.to_string(),
                    status: "in-progress",
                    requested: now,
                    settled: None,
                    settled_wall: None,
                    token_tail: tail,
                },
                now + self.time,
                errored,
            ),
        );
        self.settle(now);
        aid
    }

    fn droplet_json(&self, id: u64) -> Option<Value> {
        let d = self.droplets.get(&id)?;
        Some(json!({
            "id": id,
            "name": d.name,
            "memory": 1024,
            "vcpus": 1,
            "disk": 25,
            "locked": self.pending(id),
            "status": if d.on { "active" } else { "off" },
            "created_at": "2026-01-01T00:00:00Z",
            "features": [],
            "size_slug": "s-1vcpu-1gb",
            "region": {"slug": super::DEFAULT_REGION, "name": "New York 3"},
            "tags": [],
        }))
    }

    fn action_json(&self, id: u64) -> Option<Value> {
        let (a, due, _) = self.actions.get(&id)?;
        let started = SystemTime::now() - a.requested.elapsed();
        let completed = a
            .settled
            .map(|_| rfc3339(started + due.saturating_duration_since(a.requested)));
        Some(json!({
            "id": a.id,
            "status": a.status,
            "type": a.kind,
            "started_at": rfc3339(started),
            "completed_at": completed,
            "resource_id": a.droplet,
            "resource_type": "droplet",
            "region_slug": super::DEFAULT_REGION,
        }))
    }
}

fn not_found(shared: &Shared) -> Response {
    error(
        404,
        "not_found",
        "The resource you were accessing could not be found.",
        shared,
    )
}

/// The query parameters of a request target (values percent-decoded).
fn query(target: &str) -> BTreeMap<String, String> {
    let Some((_, q)) = target.split_once('?') else {
        return BTreeMap::new();
    };
    q.split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), decode(v)))
        .collect()
}

fn decode(v: &str) -> String {
    let b = v.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(hi * 16 + lo);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `{"droplets": [...], "links": {"pages": {...}}, "meta": {"total": N}}`, one page of `all`.
fn paged(
    shared: &Shared,
    key: &str,
    path: &str,
    all: Vec<Value>,
    q: &BTreeMap<String, String>,
) -> Response {
    let per_page: usize = match q.get("per_page").map(|p| p.parse::<usize>()) {
        None => 20,
        Some(Ok(n)) if (1..=200).contains(&n) => n,
        Some(_) => {
            return error(
                400,
                "bad_request",
                "per_page must be an integer between 1 and 200.",
                shared,
            )
        }
    };
    let page: usize = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1);
    let total = all.len();
    let last = total.div_ceil(per_page).max(1);
    let items: Vec<Value> = all
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let base = shared.api_url();
    let link = |n: usize| format!("{base}{path}?page={n}&per_page={per_page}");
    let mut pages = serde_json::Map::new();
    if page > 1 {
        pages.insert("first".into(), json!(link(1)));
        pages.insert("prev".into(), json!(link(page - 1)));
    }
    if page < last {
        pages.insert("next".into(), json!(link(page + 1)));
        pages.insert("last".into(), json!(link(last)));
    }
    Response::json(
        200,
        &json!({key: items, "links": {"pages": pages}, "meta": {"total": total}}),
    )
}

/// `/v2/droplets...` (already authorized).
pub fn route(shared: &Shared, req: &Request, segs: &[&str], now: Instant) -> Response {
    let ids: Vec<u64> = shared.lock_state().droplets.keys().copied().collect();
    let mut p = shared.lock_power();
    p.know(ids);
    p.settle(now);
    let q = query(&req.target);
    let id = segs.get(1).map(|s| s.parse::<u64>());
    match (segs, req.method.as_str()) {
        (["droplets"], "GET") => {
            let name = q.get("name").map(|n| n.to_lowercase());
            let all: Vec<Value> = p
                .droplets
                .iter()
                .filter(|(_, d)| name.as_ref().is_none_or(|n| d.name.to_lowercase() == *n))
                .filter_map(|(id, _)| p.droplet_json(*id))
                .collect();
            drop(p);
            paged(shared, "droplets", "/v2/droplets", all, &q)
        }
        ([_, _], "GET") => match id.and_then(|r| r.ok()).and_then(|id| p.droplet_json(id)) {
            Some(d) => Response::json(200, &json!({"droplet": d})),
            None => {
                drop(p);
                not_found(shared)
            }
        },
        ([_, _, "actions"], "GET") => {
            let Some(id) = id
                .and_then(|r| r.ok())
                .filter(|id| p.droplets.contains_key(id))
            else {
                drop(p);
                return not_found(shared);
            };
            let all: Vec<Value> = p
                .actions
                .iter()
                .rev()
                .filter(|(_, (a, _, _))| a.droplet == id)
                .filter_map(|(aid, _)| p.action_json(*aid))
                .collect();
            drop(p);
            paged(
                shared,
                "actions",
                &format!("/v2/droplets/{id}/actions"),
                all,
                &q,
            )
        }
        ([_, _, "actions"], "POST") => {
            let Some(id) = id
                .and_then(|r| r.ok())
                .filter(|id| p.droplets.contains_key(id))
            else {
                drop(p);
                return not_found(shared);
            };
            let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            let kind = body.get("type").and_then(Value::as_str).unwrap_or("");
            let refuse = |m: &str| error(422, "unprocessable_entity", m, shared);
            if !KINDS.contains(&kind) {
                drop(p);
                return refuse(
                    "type must be one of power_off, power_on, power_cycle, shutdown, reboot.",
                );
            }
            if p.pending(id) {
                drop(p);
                return refuse("Droplet already has a pending event.");
            }
            let on = p.droplets.get(&id).is_some_and(|d| d.on);
            match (kind, on) {
                ("power_off" | "shutdown", false) => {
                    drop(p);
                    return refuse("Droplet is already powered off.");
                }
                ("power_on", true) => {
                    drop(p);
                    return refuse("Droplet is already powered on.");
                }
                ("power_cycle" | "reboot", false) => {
                    drop(p);
                    return refuse("Droplet is powered off.");
                }
                _ => {}
            }
            // Lock order: power, then faults.
            let errored = shared.lock_faults().on_action();
            let aid = p.add_action(id, kind, now, errored, req);
            let a = p.action_json(aid).unwrap_or(Value::Null);
            Response::json(201, &json!({"action": a}))
        }
        ([_] | [_, _] | [_, _, "actions"], _) => {
            drop(p);
            error(405, "method_not_allowed", "Method not allowed.", shared)
        }
        _ => {
            drop(p);
            not_found(shared)
        }
    }
}

/// `GET /v2/actions/{id}` for a power action: its JSON, when it is one.
pub fn action(shared: &Shared, id: &str, now: Instant) -> Option<Value> {
    let id: u64 = id.parse().ok()?;
    let mut p = shared.lock_power();
    p.settle(now);
    p.action_json(id)
}

/// Hetzner's words for the power commands, and the kinds they are here.
const HETZNER_COMMANDS: [(&str, &str); 5] = [
    ("poweroff", "power_off"),
    ("poweron", "power_on"),
    ("reset", "power_cycle"),
    ("shutdown", "shutdown"),
    ("reboot", "reboot"),
];

fn hetzner_command(kind: &str) -> &str {
    HETZNER_COMMANDS
        .iter()
        .find(|(_, k)| *k == kind)
        .map_or(kind, |(c, _)| c)
}

impl Power {
    fn server_json_hetzner(&self, id: u64) -> Option<Value> {
        let d = self.droplets.get(&id)?;
        Some(json!({
            "id": id,
            "name": d.name,
            "status": if d.on { "running" } else { "off" },
            "locked": self.pending(id),
            "created": "2026-01-05T10:00:00+00:00",
            "server_type": {"name": "cx22"},
            "datacenter": {"name": "fsn1-dc14", "location": {"name": "fsn1"}},
            "labels": {},
        }))
    }

    fn action_json_hetzner(&self, id: u64) -> Option<Value> {
        let base = self.action_json(id)?;
        let (a, _, _) = self.actions.get(&id)?;
        let (status, progress, error) = match a.status {
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
            "command": hetzner_command(&a.kind),
            "status": status,
            "progress": progress,
            "started": base["started_at"],
            "finished": base["completed_at"],
            "resources": [{"id": a.droplet, "type": "server"}],
            "error": error,
        }))
    }
}

/// `{"servers": [...], "meta": {"pagination": {...}}}`: one page (`per_page` 1-50, default 25).
fn paged_hetzner(key: &str, all: Vec<Value>, q: &BTreeMap<String, String>) -> Response {
    let per_page = q
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(25)
        .min(50);
    let page = q
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1);
    let total = all.len();
    let last = total.div_ceil(per_page).max(1);
    let items: Vec<Value> = all
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    Response::json(
        200,
        &json!({key: items, "meta": {"pagination": {
            "page": page,
            "per_page": per_page,
            "previous_page": if page > 1 { json!(page - 1) } else { Value::Null },
            "next_page": if page < last { json!(page + 1) } else { Value::Null },
            "last_page": last,
            "total_entries": total,
        }}}),
    )
}

/// Hetzner's `/v1/servers...` (already authorized): the same servers and power as
/// DigitalOcean's droplets, in Hetzner's words (`running`/`off`; actions `running`/`success`/
/// `error`; `POST /v1/servers/{id}/actions/{poweroff,poweron,reset,shutdown,reboot}` without a
/// body; 423 `locked` while an action runs). A power action on a server already in that state
/// is accepted and completes without a change *(fake's choice; no source says)*.
pub fn route_hetzner(shared: &Shared, req: &Request, segs: &[&str], now: Instant) -> Response {
    use super::hetzner::error as herror;
    let ids: Vec<u64> = shared.lock_state().droplets.keys().copied().collect();
    let mut p = shared.lock_power();
    p.know(ids);
    p.settle(now);
    let q = query(&req.target);
    let id = segs
        .get(1)
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|id| p.droplets.contains_key(id));
    let not_found = || herror(404, "not_found", "resource not found");
    match (segs, req.method.as_str()) {
        (["servers"], "GET") => {
            let name = q.get("name").cloned();
            let all: Vec<Value> = p
                .droplets
                .iter()
                .filter(|(_, d)| name.as_ref().is_none_or(|n| d.name == *n))
                .filter_map(|(id, _)| p.server_json_hetzner(*id))
                .collect();
            paged_hetzner("servers", all, &q)
        }
        (["servers", _], "GET") => match id.and_then(|id| p.server_json_hetzner(id)) {
            Some(v) => Response::json(200, &json!({"server": v})),
            None => not_found(),
        },
        (["servers", _, "actions"], "GET") => {
            let Some(id) = id else { return not_found() };
            let status = q.get("status").map(|s| s.as_str());
            let all: Vec<Value> = p
                .actions
                .iter()
                .rev()
                .filter(|(_, (a, _, _))| a.droplet == id)
                .filter_map(|(aid, _)| p.action_json_hetzner(*aid))
                .filter(|a| status.is_none_or(|s| a["status"] == s))
                .collect();
            paged_hetzner("actions", all, &q)
        }
        (["servers", _, "actions", command], "POST") => {
            let Some(id) = id else { return not_found() };
            let Some((_, kind)) = HETZNER_COMMANDS.iter().find(|(c, _)| c == command) else {
                return not_found();
            };
            if p.pending(id) {
                return herror(423, "locked", "server is locked");
            }
            let errored = shared.lock_faults().on_action();
            let aid = p.add_action(id, kind, now, errored, req);
            Response::json(201, &json!({"action": p.action_json_hetzner(aid)}))
        }
        (
            ["servers"] | ["servers", _] | ["servers", _, "actions"] | ["servers", _, "actions", _],
            _,
        ) => herror(405, "method_not_allowed", "method not allowed"),
        _ => not_found(),
    }
}

/// `GET /v1/actions/{id}` for a power action, in Hetzner's words.
pub fn action_hetzner(shared: &Shared, id: &str, now: Instant) -> Option<Value> {
    let id: u64 = id.parse().ok()?;
    let mut p = shared.lock_power();
    p.settle(now);
    p.action_json_hetzner(id)
}

/// What an Exoscale or Vultr instance's power looks like now: its name (the fake's
/// `instance-<n>` until named) and whether it is on, and the kind of the power action under
/// way on it, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InstancePower {
    pub name: String,
    pub on: bool,
    pub pending: Option<String>,
}

impl Power {
    /// Register the account's instances (on), and settle what is due.
    pub(crate) fn refresh(&mut self, ids: impl IntoIterator<Item = u64>, now: Instant) {
        self.know(ids);
        self.settle(now);
    }

    /// Every instance with power, by number.
    pub(crate) fn instance_ids(&self) -> Vec<u64> {
        self.droplets.keys().copied().collect()
    }

    pub(crate) fn instance(&self, id: u64) -> Option<InstancePower> {
        let d = self.droplets.get(&id)?;
        let name = if d.name == format!("droplet-{id}") {
            format!("instance-{id}")
        } else {
            d.name.clone()
        };
        let pending = self
            .actions
            .values()
            .find(|(a, _, _)| a.droplet == id && a.settled.is_none())
            .map(|(a, _, _)| a.kind.clone());
        Some(InstancePower {
            name,
            on: d.on,
            pending,
        })
    }

    /// A power action (`power_off`, `power_on`, `power_cycle`) on instance `id`, with the
    /// `ActionErrored` fault drawn as for the other dialects; its number.
    pub(crate) fn start_action(
        &mut self,
        shared: &Shared,
        id: u64,
        kind: &str,
        now: Instant,
        req: &Request,
    ) -> u64 {
        // Lock order: (state,) power, then faults.
        let errored = shared.lock_faults().on_action();
        self.add_action(id, kind, now, errored, req)
    }

    /// One action's instance, kind and status (`in-progress`, `completed`, `errored`).
    pub(crate) fn action_of(&self, id: u64) -> Option<(u64, String, &'static str)> {
        let (a, _, _) = self.actions.get(&id)?;
        Some((a.droplet, a.kind.clone(), a.status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode() {
        let q = query("/v2/droplets?name=lb%201&per_page=200");
        assert_eq!(q.get("name").map(String::as_str), Some("lb 1"));
        assert_eq!(q.get("per_page").map(String::as_str), Some("200"));
        assert_eq!(decode("a%2"), "a%2");
        assert_eq!(decode("%41%zz"), "A%zz");
    }
}
