//! The cloud's account as the fake keeps it: tokens, reserved IPs and their holders, droplets
//! with their anchor addresses, actions that complete on a timer, and per-token rate budgets.
//! Time is evaluated lazily: every read first settles the actions whose time has come.

use super::clock::{rfc3339, unix_secs};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime};

pub const DEFAULT_REGION: &str = "nyc3";
pub const PROJECT_ID: &str = "4e1c8b22-77d4-4f1e-9b0c-6f3f6a7c2d10";

/// An action's status as the API reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActionStatus {
    InProgress,
    Completed,
    Errored,
}

impl ActionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::InProgress => "in-progress",
            ActionStatus::Completed => "completed",
            ActionStatus::Errored => "errored",
        }
    }
}

/// What an action does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActionKind {
    Assign(u64),
    Unassign,
    /// Exoscale: add this instance to the IP's holders (the others keep it too).
    Attach(u64),
    /// Exoscale: remove this instance from the IP's holders (none else changes).
    Detach(u64),
}

/// One assign/unassign action, as tests see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionView {
    pub id: u64,
    pub ip: String,
    pub kind: ActionKind,
    pub status: ActionStatus,
    /// `reserved_ip` or `floating_ip`: the path family it was created through.
    pub resource_type: &'static str,
}

/// The anchor IP of a droplet (`interfaces/public/0/anchor_ipv4/*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchor {
    pub address: String,
    pub netmask: String,
    pub gateway: String,
}

#[derive(Clone, Debug, Default)]
pub struct Droplet {
    pub anchor: Option<Anchor>,
    pub metadata_urls: Vec<String>,
}

struct IpEntry {
    region: String,
    holder: Option<u64>,
    /// Exoscale: the holders besides `holder` (an elastic IP may be attached to several
    /// instances at once). Always empty in the other dialects.
    also: BTreeSet<u64>,
    pending: Option<u64>,
    /// The holder before any recorded change, then each change with the instant it happened:
    /// metadata with a lag answers from this.
    initial: Option<u64>,
    history: Vec<(Instant, Option<u64>)>,
}

impl IpEntry {
    fn holder_at(&self, t: Instant) -> Option<u64> {
        self.history
            .iter()
            .rev()
            .find(|(at, _)| *at <= t)
            .map_or(self.initial, |(_, h)| *h)
    }
}

struct Action {
    id: u64,
    ip: String,
    kind: ActionKind,
    resource_type: &'static str,
    region: String,
    started_at: SystemTime,
    due: Instant,
    completes_at: SystemTime,
    errored: bool,
    settled: bool,
}

impl Action {
    fn status(&self) -> ActionStatus {
        match (self.settled, self.errored) {
            (false, _) => ActionStatus::InProgress,
            (true, false) => ActionStatus::Completed,
            (true, true) => ActionStatus::Errored,
        }
    }
}

/// Why an action was refused (the API answers 404 or 422).
#[derive(Debug, PartialEq, Eq)]
pub enum ActionRefused {
    NoSuchIp,
    Pending,
    NoSuchDroplet(u64),
    NotAssigned,
}

/// Requests per token: the hourly budget of the headers and the per-minute burst limit.
#[derive(Clone, Copy, Debug)]
pub struct RateLimit {
    pub per_minute: u32,
    pub per_hour: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_minute: 250,
            per_hour: 5000,
        }
    }
}

/// The answer of the rate limiter for one request.
pub struct Budget {
    pub headers: Vec<(String, String)>,
    /// `Some(seconds)`: refuse with 429 and this `retry-after`.
    pub retry_after: Option<u64>,
}

pub struct State {
    pub tokens: BTreeSet<String>,
    /// Exoscale: each API key and its secret.
    pub api_keys: BTreeMap<String, String>,
    ips: BTreeMap<String, IpEntry>,
    /// Each IP's numeric id, in the order the IPs were added (Hetzner addresses IPs by id).
    ip_ids: BTreeMap<u64, String>,
    pub droplets: BTreeMap<u64, Droplet>,
    actions: BTreeMap<u64, Action>,
    next_action: u64,
    pub action_time: Duration,
    pub metadata_lag: Duration,
    pub rate: RateLimit,
    buckets: HashMap<String, VecDeque<Instant>>,
    /// Vultr: the requests of the last second, per source address.
    seconds: HashMap<String, VecDeque<Instant>>,
}

impl State {
    pub fn new() -> State {
        State {
            tokens: BTreeSet::new(),
            api_keys: BTreeMap::new(),
            ips: BTreeMap::new(),
            ip_ids: BTreeMap::new(),
            droplets: BTreeMap::new(),
            actions: BTreeMap::new(),
            next_action: 2_100_000_001,
            action_time: Duration::ZERO,
            metadata_lag: Duration::ZERO,
            rate: RateLimit::default(),
            buckets: HashMap::new(),
            seconds: HashMap::new(),
        }
    }

    /// Complete every action whose time has come, in the order they were due.
    pub fn settle(&mut self, now: Instant) {
        let mut due: Vec<(Instant, u64)> = self
            .actions
            .values()
            .filter(|a| !a.settled && a.due <= now)
            .map(|a| (a.due, a.id))
            .collect();
        due.sort();
        for (at, id) in due {
            let Some(a) = self.actions.get_mut(&id) else {
                continue;
            };
            a.settled = true;
            let (ip, kind, errored) = (a.ip.clone(), a.kind, a.errored);
            if let Some(e) = self.ips.get_mut(&ip) {
                if e.pending == Some(id) {
                    e.pending = None;
                }
                if !errored {
                    let new = match kind {
                        ActionKind::Assign(d) => {
                            e.also.clear();
                            Some(d)
                        }
                        ActionKind::Unassign => {
                            e.also.clear();
                            None
                        }
                        ActionKind::Attach(d) => {
                            if e.holder.is_some_and(|h| h != d) {
                                e.also.insert(d);
                                e.holder
                            } else {
                                Some(d)
                            }
                        }
                        ActionKind::Detach(d) => {
                            if e.holder == Some(d) {
                                e.also.pop_first()
                            } else {
                                e.also.remove(&d);
                                e.holder
                            }
                        }
                    };
                    e.holder = new;
                    e.history.push((at, new));
                }
            }
        }
    }

    pub fn add_ip(&mut self, ip: &str, region: &str, holder: Option<u64>) {
        if let Some(h) = holder {
            self.droplets.entry(h).or_default();
        }
        if !self.ips.contains_key(ip) {
            let id = self.ip_ids.keys().next_back().map_or(4_700_001, |n| n + 1);
            self.ip_ids.insert(id, ip.to_string());
        }
        self.ips.insert(
            ip.to_string(),
            IpEntry {
                region: region.to_string(),
                holder,
                also: BTreeSet::new(),
                pending: None,
                initial: holder,
                history: Vec::new(),
            },
        );
    }

    /// The IPs by id, in id order (the order they were added).
    pub fn ips_by_id(&self) -> Vec<(u64, String)> {
        self.ip_ids
            .iter()
            .map(|(id, ip)| (*id, ip.clone()))
            .collect()
    }

    pub fn ip_of_id(&self, id: u64) -> Option<&str> {
        self.ip_ids.get(&id).map(String::as_str)
    }

    pub fn id_of_ip(&self, ip: &str) -> Option<u64> {
        self.ip_ids
            .iter()
            .find(|(_, v)| *v == ip)
            .map(|(id, _)| *id)
    }

    pub fn region_of(&self, ip: &str) -> Option<&str> {
        self.ips.get(ip).map(|e| e.region.as_str())
    }

    pub fn has_ip(&self, ip: &str) -> bool {
        self.ips.contains_key(ip)
    }

    pub fn ip_list(&self) -> Vec<String> {
        self.ips.keys().cloned().collect()
    }

    pub fn holder(&self, ip: &str) -> Option<u64> {
        self.ips.get(ip).and_then(|e| e.holder)
    }

    /// Every holder of `ip` (Exoscale: possibly several), in id order after the first.
    pub fn holders(&self, ip: &str) -> Vec<u64> {
        self.ips.get(ip).map_or_else(Vec::new, |e| {
            e.holder.iter().chain(e.also.iter()).copied().collect()
        })
    }

    /// Set every holder of `ip` behind the API's back, now (Exoscale: an IP with two holders).
    pub fn set_holders(&mut self, ip: &str, holders: &[u64], now: Instant) -> bool {
        for h in holders {
            self.droplets.entry(*h).or_default();
        }
        match self.ips.get_mut(ip) {
            Some(e) => {
                e.holder = holders.first().copied();
                e.also = holders.iter().skip(1).copied().collect();
                e.history.push((now, e.holder));
                true
            }
            None => false,
        }
    }

    pub fn locked(&self, ip: &str) -> bool {
        self.ips.get(ip).is_some_and(|e| e.pending.is_some())
    }

    /// Move an IP behind the API's back (as another client or the console would), now.
    pub fn set_holder(&mut self, ip: &str, holder: Option<u64>, now: Instant) -> bool {
        if let Some(h) = holder {
            self.droplets.entry(h).or_default();
        }
        match self.ips.get_mut(ip) {
            Some(e) => {
                e.holder = holder;
                e.also.clear();
                e.history.push((now, holder));
                true
            }
            None => false,
        }
    }

    /// The IPs `droplet` holds as its metadata service sees them (`lag` ago).
    pub fn held_by_as_of(&self, droplet: u64, t: Instant) -> Vec<String> {
        self.ips
            .iter()
            .filter(|(_, e)| e.holder_at(t) == Some(droplet))
            .map(|(ip, _)| ip.clone())
            .collect()
    }

    pub fn create_action(
        &mut self,
        ip: &str,
        kind: ActionKind,
        resource_type: &'static str,
        errored: impl FnOnce() -> bool,
        now: Instant,
    ) -> Result<u64, ActionRefused> {
        let e = self.ips.get(ip).ok_or(ActionRefused::NoSuchIp)?;
        // Exoscale's operations do not lock the IP: nothing in clouds.md says one refuses
        // another, and several may run at once.
        let locks = matches!(kind, ActionKind::Assign(_) | ActionKind::Unassign);
        if locks && e.pending.is_some() {
            return Err(ActionRefused::Pending);
        }
        match kind {
            ActionKind::Assign(d) | ActionKind::Attach(d) | ActionKind::Detach(d)
                if !self.droplets.contains_key(&d) =>
            {
                return Err(ActionRefused::NoSuchDroplet(d))
            }
            ActionKind::Unassign if e.holder.is_none() => return Err(ActionRefused::NotAssigned),
            _ => {}
        }
        // Asked only now, so that a refused action does not use up an injected fault.
        let errored = errored();
        let id = self.next_action;
        self.next_action += 1;
        let region = e.region.clone();
        let wall = SystemTime::now();
        self.actions.insert(
            id,
            Action {
                id,
                ip: ip.to_string(),
                kind,
                resource_type,
                region,
                started_at: wall,
                due: now + self.action_time,
                completes_at: wall + self.action_time,
                errored,
                settled: false,
            },
        );
        if let Some(e) = self.ips.get_mut(ip).filter(|_| locks) {
            e.pending = Some(id);
        }
        Ok(id)
    }

    pub fn action_ip(&self, id: u64) -> Option<&str> {
        self.actions.get(&id).map(|a| a.ip.as_str())
    }

    pub fn action_ids_for(&self, ip: &str) -> Vec<u64> {
        self.actions
            .values()
            .filter(|a| a.ip == ip)
            .map(|a| a.id)
            .collect()
    }

    pub fn action_ids(&self) -> Vec<u64> {
        self.actions.keys().copied().collect()
    }

    pub fn action_view(&self, id: u64) -> Option<ActionView> {
        self.actions.get(&id).map(|a| ActionView {
            id: a.id,
            ip: a.ip.clone(),
            kind: a.kind,
            status: a.status(),
            resource_type: a.resource_type,
        })
    }

    /// The API's action object. `resource_type` overrides the recorded one when the caller asks
    /// through the other path family.
    pub fn action_json(&self, id: u64, resource_type: Option<&'static str>) -> Option<Value> {
        let a = self.actions.get(&id)?;
        let resource_id = a.ip.parse::<Ipv4Addr>().map_or(0, u32::from);
        Some(json!({
            "id": a.id,
            "status": a.status().as_str(),
            "type": match a.kind {
                ActionKind::Assign(_) | ActionKind::Attach(_) => "assign_ip",
                ActionKind::Unassign | ActionKind::Detach(_) => "unassign_ip",
            },
            "started_at": rfc3339(a.started_at),
            "completed_at": if a.settled { Value::String(rfc3339(a.completes_at)) } else { Value::Null },
            "resource_id": resource_id,
            "resource_type": resource_type.unwrap_or(a.resource_type),
            "region": region_json(&a.region),
            "region_slug": a.region,
        }))
    }

    /// The API's IP object.
    pub fn ip_json(&self, ip: &str) -> Option<Value> {
        let e = self.ips.get(ip)?;
        Some(json!({
            "ip": ip,
            "region": region_json(&e.region),
            "droplet": e.holder.map_or(Value::Null, |d| droplet_json(d, &e.region)),
            "locked": e.pending.is_some(),
            "project_id": PROJECT_ID,
        }))
    }

    /// Count one request against `key`'s budget (unless it is refused) and say what to answer.
    pub fn spend(&mut self, key: &str, now: Instant, wall: SystemTime) -> Budget {
        let rate = self.rate;
        let q = self.buckets.entry(key.to_string()).or_default();
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(3600))
        {
            q.pop_front();
        }
        let minute_ago = now.checked_sub(Duration::from_secs(60));
        let in_minute: Vec<Instant> = q
            .iter()
            .copied()
            .filter(|t| minute_ago.is_none_or(|m| *t > m))
            .collect();
        let secs_until = |t: Instant, window: u64| -> u64 {
            let left = (t + Duration::from_secs(window)).saturating_duration_since(now);
            left.as_secs() + u64::from(left.subsec_nanos() > 0)
        };
        let mut retry_after = None;
        if q.len() >= rate.per_hour as usize {
            retry_after = q.front().map(|t| secs_until(*t, 3600).max(1));
        } else if in_minute.len() >= rate.per_minute as usize {
            retry_after = in_minute.first().map(|t| secs_until(*t, 60).max(1));
        }
        if retry_after.is_none() {
            q.push_back(now);
        }
        let remaining = (rate.per_hour as usize).saturating_sub(q.len());
        let reset = unix_secs(wall) + q.front().map_or(3600, |t| secs_until(*t, 3600));
        Budget {
            headers: vec![
                ("ratelimit-limit".into(), rate.per_hour.to_string()),
                ("ratelimit-remaining".into(), remaining.to_string()),
                ("ratelimit-reset".into(), reset.to_string()),
            ],
            retry_after,
        }
    }

    /// Count one request from `key` within a limit per second (Vultr's); false when it is over
    /// (and not counted).
    pub fn spend_per_second(&mut self, key: &str, now: Instant, limit: u32) -> bool {
        let q = self.seconds.entry(key.to_string()).or_default();
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            q.pop_front();
        }
        if q.len() >= limit as usize {
            return false;
        }
        q.push_back(now);
        true
    }

    /// The headers of an answer that does not count (a fault's), for the same budget.
    pub fn peek_budget(
        &mut self,
        key: &str,
        now: Instant,
        wall: SystemTime,
    ) -> Vec<(String, String)> {
        let rate = self.rate;
        let q = self.buckets.entry(key.to_string()).or_default();
        let remaining = (rate.per_hour as usize).saturating_sub(q.len());
        let reset = unix_secs(wall)
            + q.front().map_or(3600, |t| {
                (*t + Duration::from_secs(3600))
                    .saturating_duration_since(now)
                    .as_secs()
            });
        vec![
            ("ratelimit-limit".into(), rate.per_hour.to_string()),
            ("ratelimit-remaining".into(), remaining.to_string()),
            ("ratelimit-reset".into(), reset.to_string()),
        ]
    }
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

pub fn region_json(slug: &str) -> Value {
    let name = match slug {
        "nyc1" => "New York 1",
        "nyc2" => "New York 2",
        "nyc3" => "New York 3",
        "sfo2" => "San Francisco 2",
        "sfo3" => "San Francisco 3",
        "ams3" => "Amsterdam 3",
        "fra1" => "Frankfurt 1",
        "lon1" => "London 1",
        "sgp1" => "Singapore 1",
        "tor1" => "Toronto 1",
        "blr1" => "Bangalore 1",
        "syd1" => "Sydney 1",
        other => other,
    };
    json!({
        "name": name,
        "slug": slug,
        "features": ["private_networking", "backups", "ipv6", "metadata"],
        "available": true,
        "sizes": ["s-1vcpu-1gb", "s-2vcpu-2gb"],
    })
}

fn droplet_json(id: u64, region: &str) -> Value {
    json!({
        "id": id,
        "name": format!("droplet-{id}"),
        "status": "active",
        "region": region_json(region),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_moves_the_holder_when_due_and_keeps_history() {
        let mut s = State::new();
        s.action_time = Duration::from_secs(2);
        s.add_ip("203.0.113.10", DEFAULT_REGION, Some(1));
        s.droplets.entry(2).or_default();
        let t0 = Instant::now();
        let id = s
            .create_action(
                "203.0.113.10",
                ActionKind::Assign(2),
                "reserved_ip",
                || false,
                t0,
            )
            .unwrap();
        assert!(s.locked("203.0.113.10"));
        assert_eq!(
            s.create_action(
                "203.0.113.10",
                ActionKind::Unassign,
                "reserved_ip",
                || false,
                t0
            ),
            Err(ActionRefused::Pending)
        );
        s.settle(t0 + Duration::from_secs(1));
        assert_eq!(s.holder("203.0.113.10"), Some(1));
        s.settle(t0 + Duration::from_secs(2));
        assert_eq!(s.holder("203.0.113.10"), Some(2));
        assert_eq!(s.action_view(id).unwrap().status, ActionStatus::Completed);
        assert_eq!(
            s.held_by_as_of(1, t0 + Duration::from_millis(1999)),
            vec!["203.0.113.10"]
        );
        assert_eq!(
            s.held_by_as_of(2, t0 + Duration::from_secs(2)),
            vec!["203.0.113.10"]
        );
    }

    #[test]
    fn the_minute_budget_refuses_with_retry_after() {
        let mut s = State::new();
        s.rate = RateLimit {
            per_minute: 3,
            per_hour: 10,
        };
        let t0 = Instant::now();
        let w = SystemTime::now();
        for i in 0..3 {
            let b = s.spend("t", t0 + Duration::from_secs(i), w);
            assert!(b.retry_after.is_none());
            assert_eq!(b.headers[1].1, (9 - i).to_string());
        }
        let b = s.spend("t", t0 + Duration::from_secs(10), w);
        assert_eq!(b.retry_after, Some(50));
        // Another token has its own budget.
        assert!(s.spend("u", t0, w).retry_after.is_none());
        // A minute later the burst budget is back.
        assert!(s
            .spend("t", t0 + Duration::from_secs(61), w)
            .retry_after
            .is_none());
    }
}
