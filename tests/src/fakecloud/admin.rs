//! The admin interface under `/_fake/` on every API listener, so that scripts (the demo, the
//! benchmarks, the cluster test in bash) can read and steer the fake, whatever cloud it speaks
//! (servers and instances are the droplets of the common account; Exoscale's UUIDs are shown
//! and accepted beside their numbers). Never recorded or faulted.

use super::clock::rfc3339;
use super::faults::Fault;
use super::http::{Request, Response};
use super::state::{Anchor, RateLimit, DEFAULT_REGION};
use super::{exoscale, hetzner, vultr, Dialect, Listener, Shared};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn bad(msg: impl Into<String>) -> Response {
    Response::json(400, &json!({"error": msg.into()}))
}

fn ok() -> Response {
    Response::json(200, &json!({"ok": true}))
}

/// The dialect's name, as `--cloud` and the state document spell it.
pub fn dialect_name(d: Dialect) -> &'static str {
    if d == Dialect::Hetzner {
        "hetzner"
    } else if d == Dialect::Exoscale {
        "exoscale"
    } else if d == Dialect::Vultr {
        "vultr"
    } else {
        "digitalocean"
    }
}

/// Where `POST /_fake/ip` puts an IP when no region is given: the one the dialect serves.
fn default_region(d: Dialect) -> &'static str {
    if d == Dialect::Hetzner {
        hetzner::LOCATION
    } else if d == Dialect::Exoscale {
        exoscale::ZONE
    } else if d == Dialect::Vultr {
        vultr::REGION
    } else {
        DEFAULT_REGION
    }
}

/// The UUIDs a cloud names IPs and instances by, if it does (Exoscale, Vultr).
type Uuids = (
    fn(u64) -> String,
    fn(u64) -> String,
    fn(&str) -> Option<u64>,
);

fn uuids(d: Dialect) -> Option<Uuids> {
    if d == Dialect::Exoscale {
        Some((
            exoscale::ip_uuid,
            exoscale::instance_uuid,
            exoscale::instance_of_uuid,
        ))
    } else if d == Dialect::Vultr {
        Some((
            vultr::ip_uuid,
            vultr::instance_uuid,
            vultr::instance_of_uuid,
        ))
    } else {
        None
    }
}

pub fn state_json(shared: &Shared) -> Value {
    let uuid = uuids(shared.dialect);
    let mut st = shared.lock_state();
    st.settle(Instant::now());
    let ips: Vec<Value> = st
        .ip_list()
        .iter()
        .map(|ip| {
            let id = st.id_of_ip(ip);
            let mut v = json!({"ip": ip, "holder": st.holder(ip), "locked": st.locked(ip)});
            // DigitalOcean's shape is the original one; the other clouds address IPs by id and
            // (Exoscale) may have several holders.
            if shared.dialect != Dialect::DigitalOcean {
                v["id"] = json!(id);
                v["holders"] = json!(st.holders(ip));
            }
            if let Some((ip_uuid, instance_uuid, _)) = uuid {
                v["uuid"] = json!(id.map(ip_uuid));
                v["holder_uuids"] = json!(st
                    .holders(ip)
                    .into_iter()
                    .map(instance_uuid)
                    .collect::<Vec<_>>());
            }
            v
        })
        .collect();
    let droplets: Vec<Value> = st
        .droplets
        .iter()
        .map(|(id, d)| {
            let mut v = json!({
                "id": id,
                "anchor": d.anchor.as_ref().map(|a| json!({"address": a.address, "netmask": a.netmask, "gateway": a.gateway})),
                "metadata_urls": d.metadata_urls,
            });
            if let Some((_, instance_uuid, _)) = uuid {
                v["uuid"] = json!(instance_uuid(*id));
            }
            v
        })
        .collect();
    let actions: Vec<Value> = st
        .action_ids()
        .into_iter()
        .filter_map(|id| st.action_json(id, None))
        .collect();
    let (action_ms, lag_ms, rate) = (
        st.action_time.as_millis() as u64,
        st.metadata_lag.as_millis() as u64,
        st.rate,
    );
    drop(st);
    let reqs = shared.requests.lock().unwrap_or_else(|e| e.into_inner());
    let api = reqs.iter().filter(|r| r.is_api_call()).count();
    let md = reqs
        .iter()
        .filter(|r| matches!(r.listener, Listener::Metadata(_)))
        .count();
    let total = reqs.len();
    drop(reqs);
    json!({
        "dialect": dialect_name(shared.dialect),
        "api_url": shared.api_url(),
        "ips": ips,
        "droplets": droplets,
        "actions": actions,
        "api_requests": api,
        "metadata_requests": md,
        "requests": total,
        "action_time_ms": action_ms,
        "metadata_lag_ms": lag_ms,
        "rate_limit": {"per_minute": rate.per_minute, "per_hour": rate.per_hour},
        "faults": shared.lock_faults().len(),
    })
}

fn requests_json(shared: &Shared) -> Value {
    let reqs = shared.requests.lock().unwrap_or_else(|e| e.into_inner());
    Value::Array(
        reqs.iter()
            .map(|r| {
                json!({
                    "listener": match r.listener { Listener::Api => "api".to_string(), Listener::Metadata(id) => format!("metadata:{id}") },
                    "local_addr": r.local_addr.to_string(),
                    "netns": r.netns,
                    "method": r.method,
                    "path": r.path,
                    "target": r.target,
                    "headers": r.headers.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
                    "body": r.body,
                    "at": rfc3339(r.at),
                    "ms": r.since_start.as_secs_f64() * 1000.0,
                })
            })
            .collect(),
    )
}

fn millis(v: &Value, k: &str) -> Option<Duration> {
    v.get(k).and_then(Value::as_u64).map(Duration::from_millis)
}

/// A server (droplet, instance) named by its number, or for Exoscale and Vultr also by its UUID.
fn server_id(shared: &Shared, v: &Value) -> Result<u64, Response> {
    if let Some(n) = v.as_u64() {
        return Ok(n);
    }
    if let Some((_, _, of_uuid)) = uuids(shared.dialect) {
        if let Some(n) = v.as_str().and_then(of_uuid) {
            return Ok(n);
        }
        return Err(bad(format!(
            "{v} is not an instance number or one of the fake's instance UUIDs"
        )));
    }
    Err(bad(format!("{v} is not a server id (a number)")))
}

pub fn handle(shared: &Shared, req: &Request) -> Response {
    let body: Value = if req.body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&req.body) {
            Ok(v) => v,
            Err(e) => return bad(format!("body is not JSON: {e}")),
        }
    };
    let s = |k: &str| body.get(k).and_then(Value::as_str);
    let holder = |v: &Value| -> Result<Option<u64>, Response> {
        match v.get("holder") {
            None | Some(Value::Null) => Ok(None),
            Some(h) => server_id(shared, h).map(Some),
        }
    };
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/_fake/state") => Response::json(200, &state_json(shared)),
        ("GET", "/_fake/requests") => Response::json(200, &requests_json(shared)),
        ("DELETE", "/_fake/requests") | ("POST", "/_fake/requests/clear") => {
            shared
                .requests
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
            ok()
        }
        ("POST", "/_fake/fault") => match Fault::from_json(&body) {
            Ok(f) => {
                shared.lock_faults().add(f);
                Response::json(201, &json!({"ok": true}))
            }
            Err(e) => bad(e),
        },
        ("DELETE", "/_fake/fault") | ("POST", "/_fake/faults/clear") => {
            shared.lock_faults().clear();
            ok()
        }
        ("POST", "/_fake/config") => {
            let mut st = shared.lock_state();
            if let Some(d) = millis(&body, "action_time_ms") {
                st.action_time = d;
            }
            if let Some(d) = millis(&body, "metadata_lag_ms") {
                st.metadata_lag = d;
            }
            let pm = body.get("rate_per_minute").and_then(Value::as_u64);
            let ph = body.get("rate_per_hour").and_then(Value::as_u64);
            if pm.is_some() || ph.is_some() {
                st.rate = RateLimit {
                    per_minute: pm.map_or(st.rate.per_minute, |x| x as u32),
                    per_hour: ph.map_or(st.rate.per_hour, |x| x as u32),
                };
            }
            ok()
        }
        ("POST", "/_fake/token") => match s("token") {
            Some(t) => {
                shared.lock_state().tokens.insert(t.to_string());
                ok()
            }
            None => bad("\"token\" is missing"),
        },
        ("POST", "/_fake/revoke") => match (s("token"), s("api_key")) {
            (Some(t), _) => {
                shared.lock_state().tokens.remove(t);
                ok()
            }
            (None, Some(k)) => {
                shared.lock_state().api_keys.remove(k);
                ok()
            }
            (None, None) => bad("\"token\" (or \"api_key\") is missing"),
        },
        ("POST", "/_fake/api-key") => match (s("key"), s("secret")) {
            (Some(k), Some(secret)) if !k.is_empty() && !secret.is_empty() => {
                shared
                    .lock_state()
                    .api_keys
                    .insert(k.to_string(), secret.to_string());
                ok()
            }
            _ => bad("needs \"key\" and \"secret\" (Exoscale's API key and its secret)"),
        },
        ("POST", "/_fake/server" | "/_fake/droplet" | "/_fake/instance") => {
            let id = match body.get("id").map(|v| server_id(shared, v)) {
                Some(Ok(id)) => id,
                Some(Err(r)) => return r,
                None => return bad("\"id\" is missing"),
            };
            shared.lock_state().droplets.entry(id).or_default();
            ok()
        }
        ("POST", "/_fake/holders") => {
            let Some(ip) = s("ip") else {
                return bad("\"ip\" is missing");
            };
            let Some(list) = body.get("holders").and_then(Value::as_array) else {
                return bad("\"holders\" must be a list of server ids");
            };
            let mut ids = Vec::new();
            for h in list {
                match server_id(shared, h) {
                    Ok(id) => ids.push(id),
                    Err(r) => return r,
                }
            }
            let mut st = shared.lock_state();
            let now = Instant::now();
            st.settle(now);
            if st.set_holders(ip, &ids, now) {
                ok()
            } else {
                Response::json(404, &json!({"error": format!("no IP {ip}")}))
            }
        }
        ("POST", "/_fake/ip") => {
            let Some(ip) = s("ip") else {
                return bad("\"ip\" is missing");
            };
            if ip.parse::<std::net::IpAddr>().is_err() {
                return bad(format!("{ip:?} is not an IP address"));
            }
            let h = match holder(&body) {
                Ok(h) => h,
                Err(r) => return r,
            };
            shared.lock_state().add_ip(
                ip,
                s("region").unwrap_or(default_region(shared.dialect)),
                h,
            );
            ok()
        }
        ("POST", "/_fake/holder") => {
            let Some(ip) = s("ip") else {
                return bad("\"ip\" is missing");
            };
            let h = match holder(&body) {
                Ok(h) => h,
                Err(r) => return r,
            };
            let mut st = shared.lock_state();
            let now = Instant::now();
            st.settle(now);
            if st.set_holder(ip, h, now) {
                ok()
            } else {
                Response::json(404, &json!({"error": format!("no IP {ip}")}))
            }
        }
        ("POST", "/_fake/anchor") => {
            if shared.dialect != Dialect::DigitalOcean {
                return bad("anchor IPs are DigitalOcean's: this fake speaks another cloud");
            }
            let (Some(id), Some(address), Some(netmask)) = (
                body.get("droplet").and_then(Value::as_u64),
                s("address"),
                s("netmask"),
            ) else {
                return bad("needs \"droplet\", \"address\", \"netmask\" (and \"gateway\")");
            };
            let gateway = s("gateway")
                .map(str::to_string)
                .unwrap_or_else(|| super::default_gateway(address, netmask));
            shared.lock_state().droplets.entry(id).or_default().anchor = Some(Anchor {
                address: address.to_string(),
                netmask: netmask.to_string(),
                gateway,
            });
            ok()
        }
        _ => Response::json(
            404,
            &json!({"error": format!("no admin route {} {}", req.method, req.path)}),
        ),
    }
}
