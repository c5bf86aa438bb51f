//! One droplet's metadata service (`/metadata/v1/...`, text/plain, 404 for unknown paths), which
//! follows the IP assignments of the shared state, optionally seeing them `metadata_lag` late.

use super::faults::FaultKind;
use super::http::{Request, Response};
use super::state::{Anchor, State, DEFAULT_REGION};
use super::Shared;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Instant;

const BASE: &str = "/metadata/v1";

/// The answer an injected fault gives on a metadata listener.
pub fn fault_answer(fault: &FaultKind) -> Response {
    match fault {
        FaultKind::Status(code) => Response::text(*code, "injected fault\n"),
        FaultKind::RateLimited { retry_after } => Response::text(429, "Too Many Requests\n")
            .header("retry-after", retry_after.to_string()),
        _ => Response::text(500, "injected fault\n"),
    }
}

/// What droplet `id` sees now: the reserved IP it holds (lagging if configured) and its anchor.
struct View {
    id: u64,
    ip: Option<String>,
    anchor: Option<Anchor>,
}

fn view(st: &mut State, id: u64) -> View {
    let now = Instant::now();
    st.settle(now);
    let seen_at = now.checked_sub(st.metadata_lag).unwrap_or(now);
    View {
        id,
        // A droplet holds at most one reserved IPv4 at DigitalOcean; should the fake be told
        // otherwise, the first in address order shows.
        ip: st.held_by_as_of(id, seen_at).into_iter().next(),
        anchor: st.droplets.get(&id).and_then(|d| d.anchor.clone()),
    }
}

fn leaves(v: &View) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("id".to_string(), v.id.to_string());
    m.insert("hostname".to_string(), format!("droplet-{}", v.id));
    m.insert("region".to_string(), DEFAULT_REGION.to_string());
    for family in ["floating_ip", "reserved_ip"] {
        m.insert(format!("{family}/ipv4/active"), v.ip.is_some().to_string());
        if let Some(ip) = &v.ip {
            m.insert(format!("{family}/ipv4/ip_address"), ip.clone());
        }
    }
    if let Some(a) = &v.anchor {
        let p = "interfaces/public/0/anchor_ipv4";
        m.insert(format!("{p}/address"), a.address.clone());
        m.insert(format!("{p}/netmask"), a.netmask.clone());
        m.insert(format!("{p}/gateway"), a.gateway.clone());
    }
    m
}

fn everything(v: &View) -> Value {
    let ipv4 = |ip: &Option<String>| match ip {
        Some(ip) => json!({"ipv4": {"active": true, "ip_address": ip}}),
        None => json!({"ipv4": {"active": false}}),
    };
    let mut public = json!({"type": "public"});
    if let Some(a) = &v.anchor {
        public["anchor_ipv4"] =
            json!({"ip_address": a.address, "netmask": a.netmask, "gateway": a.gateway});
    }
    json!({
        "droplet_id": v.id,
        "hostname": format!("droplet-{}", v.id),
        "region": DEFAULT_REGION,
        "floating_ip": ipv4(&v.ip),
        "reserved_ip": ipv4(&v.ip),
        "interfaces": {"public": [public]},
    })
}

pub fn handle(shared: &Shared, id: u64, req: &Request) -> Response {
    if req.method != "GET" {
        return Response::text(405, "method not allowed\n");
    }
    let v = view(&mut shared.lock_state(), id);
    if req.path == "/metadata/v1.json" {
        return Response::json(200, &everything(&v));
    }
    let rel = match req.path.strip_prefix(BASE) {
        Some("") => "/",
        Some(r) if r.starts_with('/') => r,
        _ => return Response::text(404, "not found\n"),
    };
    let rel = &rel[1..];
    let m = leaves(&v);
    if let Some(value) = m.get(rel) {
        return Response::text(200, value.clone());
    }
    // A directory (as the real service, with a trailing slash or at the root): its entries.
    if rel.is_empty() || rel.ends_with('/') {
        let mut entries: Vec<String> = m
            .keys()
            .filter_map(|k| k.strip_prefix(rel))
            .map(|k| match k.split_once('/') {
                Some((dir, _)) => format!("{dir}/"),
                None => k.to_string(),
            })
            .collect();
        entries.dedup();
        if !entries.is_empty() {
            return Response::text(200, entries.join("\n"));
        }
    }
    Response::text(404, "not found\n")
}
