//! Fault injection: what can go wrong between an agent and the cloud, chosen per listener, path
//! and method, firing always, N times, or for a fraction of requests (seeded, so reproducible).

use super::Listener;
use serde_json::Value;
use std::time::Duration;

/// Which listeners a fault applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every API listener (not the `/_fake/` admin paths, which never fail).
    Api,
    /// Every droplet's metadata listener.
    Metadata,
    /// The metadata listeners of one droplet.
    MetadataOf(u64),
    /// API and metadata.
    All,
}

impl Scope {
    fn matches(&self, l: &Listener) -> bool {
        match (self, l) {
            (Scope::All, _) => true,
            (Scope::Api, Listener::Api) => true,
            (Scope::Metadata, Listener::Metadata(_)) => true,
            (Scope::MetadataOf(a), Listener::Metadata(b)) => a == b,
            _ => false,
        }
    }
}

/// When a matching fault fires.
#[derive(Clone, Debug, PartialEq)]
pub enum Trigger {
    /// Every matching request, until `clear_faults`.
    Always,
    /// The next N matching requests, then the fault is gone.
    Times(u32),
    /// Each matching request with this probability (0.0..=1.0), from a seeded generator.
    Fraction(f64),
}

/// What happens to a request the fault fires on.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultKind {
    /// Answer normally (or with another fault) after this delay.
    Delay(Duration),
    /// Answer with this status (5xx: DigitalOcean's error JSON, `server_error`).
    Status(u16),
    /// Read the request, then reset the connection (RST, no answer).
    Reset,
    /// Read the request and never answer; the connection stays open until the client gives up.
    Hang,
    /// The service is down: each new connection is reset at once, before a request is read,
    /// and so is a connection opened before, at its next request. Not recorded; paths and
    /// methods are not looked at. `Times(n)` counts connections and requests cut. On an API
    /// listener the request is read first (then cut, unanswered and unrecorded), so that the
    /// `/_fake/` admin paths, which are never faulted, still answer.
    Outage,
    /// 429 `too_many_requests` with this `retry-after`, whatever the budget says.
    RateLimited { retry_after: u64 },
    /// 200 with a body that is not what was asked for (an HTML error page, as a proxy or a
    /// captive portal would send): neither the text nor the JSON the path promises.
    Garbled,
    /// The normal answer cut short: the headers promise more body than is sent, then the
    /// connection closes.
    Truncated,
    /// This status with an HTML error page (`text/html`), as a corporate proxy or a load balancer
    /// in front of the API would answer: not DigitalOcean's JSON error, and none of its headers
    /// (`ratelimit-*`, `x-request-id`); the request does not reach the API (no budget spent).
    ProxyStatus(u16),
    /// `GET /v2/{reserved,floating}_ips/{ip}` answers 200 with well-formed JSON that describes
    /// another address ([`OTHER_IP`], or [`OTHER_IP_ALT`] when that is the address asked for),
    /// held by the droplet that holds the address asked for, as a buggy cache might. Fires only
    /// on those reads (API listeners, GET, one IP); other requests pass and do not consume it.
    OtherIp,
    /// The next assign/unassign actions created end `errored` (the holder does not change).
    /// Only the trigger matters (use `Times`); scope, path and method are ignored.
    ActionErrored,
}

/// The address an [`FaultKind::OtherIp`] answer describes.
pub const OTHER_IP: &str = "198.51.100.1";
/// The address it describes when [`OTHER_IP`] itself is asked for.
pub const OTHER_IP_ALT: &str = "198.51.100.2";

/// Is this request a read of one IP, `GET /v2/{reserved,floating}_ips/{ip}` (Hetzner:
/// `GET /v1/floating_ips/{id}`; Vultr: `GET /v2/reserved-ips/{id}`), what `OtherIp` acts on? The IP (or id) as asked for, if so.
pub fn ip_read<'a>(method: &str, path: &'a str) -> Option<&'a str> {
    if !method.eq_ignore_ascii_case("GET") {
        return None;
    }
    // Hetzner's read of one floating IP, by id: `/v1/floating_ips/{id}`.
    let rest = match path.strip_prefix("/v1/") {
        Some(rest) => rest,
        None => path.strip_prefix("/v2/")?,
    }
    .trim_end_matches('/');
    let (family, ip) = rest.split_once('/')?;
    // Vultr's read of one reserved IP, by UUID: `/v2/reserved-ips/{id}`.
    ((family == "reserved_ips" || family == "floating_ips" || family == "reserved-ips")
        && !ip.is_empty()
        && !ip.contains('/'))
    .then_some(ip)
}

/// One injected fault. Build with the constructors, narrow with `times`/`fraction`/`path`/
/// `method`: `Fault::status(Scope::Api, 503).times(2).method("POST")`.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    pub kind: FaultKind,
    pub scope: Scope,
    pub trigger: Trigger,
    /// Only requests whose path (without query) starts with this.
    pub path_prefix: Option<String>,
    /// Only requests with this method (case-insensitive).
    pub method: Option<String>,
}

impl Fault {
    pub fn new(scope: Scope, kind: FaultKind) -> Fault {
        Fault {
            kind,
            scope,
            trigger: Trigger::Always,
            path_prefix: None,
            method: None,
        }
    }
    pub fn delay(scope: Scope, d: Duration) -> Fault {
        Fault::new(scope, FaultKind::Delay(d))
    }
    pub fn status(scope: Scope, code: u16) -> Fault {
        Fault::new(scope, FaultKind::Status(code))
    }
    pub fn reset(scope: Scope) -> Fault {
        Fault::new(scope, FaultKind::Reset)
    }
    pub fn hang(scope: Scope) -> Fault {
        Fault::new(scope, FaultKind::Hang)
    }
    pub fn outage(scope: Scope) -> Fault {
        Fault::new(scope, FaultKind::Outage)
    }
    pub fn rate_limited(retry_after: u64) -> Fault {
        Fault::new(Scope::Api, FaultKind::RateLimited { retry_after })
    }
    pub fn garbled(scope: Scope) -> Fault {
        Fault::new(scope, FaultKind::Garbled)
    }
    pub fn truncated(scope: Scope) -> Fault {
        Fault::new(scope, FaultKind::Truncated)
    }
    pub fn action_errored() -> Fault {
        Fault::new(Scope::Api, FaultKind::ActionErrored)
    }
    pub fn proxy_status(scope: Scope, code: u16) -> Fault {
        Fault::new(scope, FaultKind::ProxyStatus(code))
    }
    pub fn other_ip() -> Fault {
        Fault::new(Scope::Api, FaultKind::OtherIp)
    }
    pub fn times(mut self, n: u32) -> Fault {
        self.trigger = Trigger::Times(n);
        self
    }
    pub fn fraction(mut self, f: f64) -> Fault {
        self.trigger = Trigger::Fraction(f.clamp(0.0, 1.0));
        self
    }
    pub fn path(mut self, prefix: &str) -> Fault {
        self.path_prefix = Some(prefix.to_string());
        self
    }
    pub fn method(mut self, m: &str) -> Fault {
        self.method = Some(m.to_ascii_uppercase());
        self
    }

    /// The admin interface's JSON form, e.g.
    /// `{"kind":"status","status":503,"scope":"api","times":2,"path":"/v2/","method":"POST"}`.
    pub fn from_json(v: &Value) -> Result<Fault, String> {
        let s = |k: &str| v.get(k).and_then(Value::as_str);
        let n = |k: &str| v.get(k).and_then(Value::as_u64);
        let scope = match s("scope").unwrap_or("api") {
            "api" => Scope::Api,
            "metadata" => Scope::Metadata,
            "all" => Scope::All,
            other => match other.strip_prefix("metadata:").map(str::parse) {
                Some(Ok(id)) => Scope::MetadataOf(id),
                _ => {
                    return Err(format!(
                        "scope {other:?}: expected api, metadata, metadata:<droplet id> or all"
                    ))
                }
            },
        };
        let kind = match s("kind").ok_or("\"kind\" is missing")? {
            "delay" => {
                FaultKind::Delay(Duration::from_millis(n("ms").ok_or("delay needs \"ms\"")?))
            }
            kind @ ("status" | "proxy_status") => {
                let code = n("status").ok_or(format!("{kind} needs \"status\""))?;
                match u16::try_from(code) {
                    Ok(c) if (100..=599).contains(&c) && kind == "status" => FaultKind::Status(c),
                    Ok(c) if (100..=599).contains(&c) => FaultKind::ProxyStatus(c),
                    _ => return Err(format!("status {code} is not an HTTP status")),
                }
            }
            "reset" => FaultKind::Reset,
            "hang" => FaultKind::Hang,
            "outage" => FaultKind::Outage,
            "rate_limited" => FaultKind::RateLimited {
                retry_after: n("retry_after").unwrap_or(1),
            },
            "garbled" => FaultKind::Garbled,
            "truncated" => FaultKind::Truncated,
            "action_errored" => FaultKind::ActionErrored,
            "other_ip" => FaultKind::OtherIp,
            other => return Err(format!("kind {other:?} is unknown")),
        };
        let mut f = Fault::new(scope, kind);
        if let Some(t) = v.get("times") {
            let t = t
                .as_u64()
                .and_then(|t| u32::try_from(t).ok())
                .ok_or("\"times\" must be a count")?;
            f = f.times(t);
        } else if let Some(fr) = v.get("fraction") {
            let fr = fr
                .as_f64()
                .filter(|x| (0.0..=1.0).contains(x))
                .ok_or("\"fraction\" must be 0.0..1.0")?;
            f = f.fraction(fr);
        }
        if let Some(p) = s("path") {
            f = f.path(p);
        }
        if let Some(m) = s("method") {
            f = f.method(m);
        }
        Ok(f)
    }
}

/// What the server should do with one request after the faults had their say.
#[derive(Debug, Default)]
pub struct Decision {
    pub delay: Duration,
    /// A fault that replaces or spoils the normal answer (all kinds but Delay, Outage and
    /// ActionErrored; OtherIp only on a read of one IP).
    pub answer: Option<FaultKind>,
}

/// The installed faults and the seeded generator used by `Trigger::Fraction`.
pub struct Faults {
    list: Vec<Fault>,
    rng: u64,
}

impl Faults {
    pub fn new() -> Faults {
        Faults {
            list: Vec::new(),
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }

    pub fn add(&mut self, f: Fault) {
        self.list.push(f);
    }

    pub fn clear(&mut self) {
        self.list.clear();
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn seed(&mut self, seed: u64) {
        self.rng = seed | 1;
    }

    fn next_f64(&mut self) -> f64 {
        // xorshift64*: plenty for "about a fraction of requests".
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let x = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Does fault `i` fire now? Consumes one of its `Times`; removes it when used up.
    fn fire(&mut self, i: usize) -> bool {
        match self.list[i].trigger {
            Trigger::Always => true,
            Trigger::Times(0) => false,
            Trigger::Times(n) => {
                self.list[i].trigger = Trigger::Times(n - 1);
                true
            }
            Trigger::Fraction(f) => self.next_f64() < f,
        }
    }

    fn sweep(&mut self) {
        self.list.retain(|f| f.trigger != Trigger::Times(0));
    }

    /// A new connection, or a request on an open one, on `listener`: is the service down?
    pub fn on_connect(&mut self, listener: &Listener) -> bool {
        let mut down = false;
        for i in 0..self.list.len() {
            let f = &self.list[i];
            if !down && f.kind == FaultKind::Outage && f.scope.matches(listener) && self.fire(i) {
                down = true;
            }
        }
        self.sweep();
        down
    }

    /// A request read on `listener`: its delay and the fault (if any) that answers it. Delays
    /// add up; the first answering fault that fires wins (later ones are not consumed).
    pub fn on_request(&mut self, listener: &Listener, method: &str, path: &str) -> Decision {
        let mut d = Decision::default();
        for i in 0..self.list.len() {
            let f = &self.list[i];
            let applies = f.scope.matches(listener)
                && f.path_prefix.as_deref().is_none_or(|p| path.starts_with(p))
                && f.method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method));
            if !applies {
                continue;
            }
            let other_ip_here = *listener == Listener::Api && ip_read(method, path).is_some();
            match f.kind.clone() {
                FaultKind::Delay(t) => {
                    if self.fire(i) {
                        d.delay += t;
                    }
                }
                k @ (FaultKind::Status(_)
                | FaultKind::Reset
                | FaultKind::Hang
                | FaultKind::RateLimited { .. }
                | FaultKind::Garbled
                | FaultKind::Truncated
                | FaultKind::ProxyStatus(_)) => {
                    if d.answer.is_none() && self.fire(i) {
                        d.answer = Some(k);
                    }
                }
                FaultKind::OtherIp => {
                    if other_ip_here && d.answer.is_none() && self.fire(i) {
                        d.answer = Some(FaultKind::OtherIp);
                    }
                }
                FaultKind::Outage | FaultKind::ActionErrored => {}
            }
        }
        self.sweep();
        d
    }

    /// An action is being created: should it end `errored`?
    pub fn on_action(&mut self) -> bool {
        let mut errored = false;
        for i in 0..self.list.len() {
            if !errored && self.list[i].kind == FaultKind::ActionErrored && self.fire(i) {
                errored = true;
            }
        }
        self.sweep();
        errored
    }
}

impl Default for Faults {
    fn default() -> Self {
        Faults::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_consumed_and_removed() {
        let mut f = Faults::new();
        f.add(Fault::status(Scope::Api, 503).times(2));
        for _ in 0..2 {
            let d = f.on_request(&Listener::Api, "GET", "/v2/x");
            assert_eq!(d.answer, Some(FaultKind::Status(503)));
        }
        assert!(f
            .on_request(&Listener::Api, "GET", "/v2/x")
            .answer
            .is_none());
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn scope_path_and_method_narrow_a_fault() {
        let mut f = Faults::new();
        f.add(
            Fault::reset(Scope::MetadataOf(7))
                .path("/metadata/v1/id")
                .method("get"),
        );
        assert!(f
            .on_request(&Listener::Api, "GET", "/metadata/v1/id")
            .answer
            .is_none());
        assert!(f
            .on_request(&Listener::Metadata(8), "GET", "/metadata/v1/id")
            .answer
            .is_none());
        assert!(f
            .on_request(&Listener::Metadata(7), "POST", "/metadata/v1/id")
            .answer
            .is_none());
        assert!(f
            .on_request(&Listener::Metadata(7), "GET", "/metadata/v1/x")
            .answer
            .is_none());
        assert_eq!(
            f.on_request(&Listener::Metadata(7), "GET", "/metadata/v1/id")
                .answer,
            Some(FaultKind::Reset)
        );
    }

    #[test]
    fn a_fraction_fires_about_that_often() {
        let mut f = Faults::new();
        f.add(Fault::status(Scope::Api, 500).fraction(0.25));
        let hits = (0..4000)
            .filter(|_| f.on_request(&Listener::Api, "GET", "/").answer.is_some())
            .count();
        assert!((800..1200).contains(&hits), "{hits} of 4000");
    }

    #[test]
    fn json_form_parses_and_rejects_nonsense() {
        let f = Fault::from_json(&serde_json::json!({
            "kind": "status", "status": 502, "scope": "metadata:101", "times": 3, "method": "get"
        }))
        .unwrap();
        assert_eq!(
            f,
            Fault::status(Scope::MetadataOf(101), 502)
                .times(3)
                .method("GET")
        );
        assert!(Fault::from_json(&serde_json::json!({"kind": "explode"})).is_err());
        assert!(Fault::from_json(&serde_json::json!({"kind": "status", "status": 1000})).is_err());
        assert!(Fault::from_json(&serde_json::json!({"kind": "reset", "scope": "moon"})).is_err());
        assert_eq!(
            Fault::from_json(&serde_json::json!({"kind": "proxy_status", "status": 502})).unwrap(),
            Fault::proxy_status(Scope::Api, 502)
        );
        assert!(Fault::from_json(&serde_json::json!({"kind": "proxy_status"})).is_err());
        assert!(
            Fault::from_json(&serde_json::json!({"kind": "proxy_status", "status": 99})).is_err()
        );
        assert_eq!(
            Fault::from_json(&serde_json::json!({"kind": "other_ip", "times": 1})).unwrap(),
            Fault::other_ip().times(1)
        );
    }

    #[test]
    fn other_ip_fires_only_on_reads_of_one_ip() {
        assert_eq!(
            ip_read("GET", "/v2/reserved_ips/203.0.113.10"),
            Some("203.0.113.10")
        );
        assert_eq!(
            ip_read("get", "/v2/floating_ips/203.0.113.10/"),
            Some("203.0.113.10")
        );
        assert_eq!(ip_read("POST", "/v2/reserved_ips/203.0.113.10"), None);
        assert_eq!(ip_read("GET", "/v2/reserved_ips"), None);
        assert_eq!(
            ip_read("GET", "/v2/reserved_ips/203.0.113.10/actions"),
            None
        );
        assert_eq!(ip_read("GET", "/v2/actions/7"), None);
        let mut f = Faults::new();
        f.add(Fault::other_ip().times(1));
        for (l, m, p) in [
            (Listener::Api, "GET", "/v2/reserved_ips"),
            (
                Listener::Api,
                "POST",
                "/v2/reserved_ips/203.0.113.10/actions",
            ),
            (
                Listener::Metadata(1),
                "GET",
                "/v2/reserved_ips/203.0.113.10",
            ),
        ] {
            assert!(f.on_request(&l, m, p).answer.is_none(), "{m} {p}");
        }
        assert_eq!(f.len(), 1, "not consumed by other requests");
        assert_eq!(
            f.on_request(&Listener::Api, "GET", "/v2/floating_ips/203.0.113.10")
                .answer,
            Some(FaultKind::OtherIp)
        );
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn an_outage_is_seen_at_connect_and_not_by_on_request() {
        let mut f = Faults::new();
        f.add(Fault::outage(Scope::Api).times(1));
        assert!(f
            .on_request(&Listener::Api, "GET", "/v2/x")
            .answer
            .is_none());
        assert!(!f.on_connect(&Listener::Metadata(1)));
        assert!(f.on_connect(&Listener::Api));
        assert!(!f.on_connect(&Listener::Api));
    }
}
