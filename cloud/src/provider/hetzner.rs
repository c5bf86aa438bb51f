//! Hetzner Cloud floating IPs: the v1 API's `floating_ips` and `actions` calls and the server
//! metadata service, as shared/docs/clouds.md describes them. The API addresses a floating IP
//! by a numeric id, found by listing every page and matching `ip`; a start keeps that id in its
//! record, so that a monitor reads the one IP by id. The metadata service does not list
//! floating IPs: a monitor must read the API.

use super::{ActionId, ActionState, Endpoints, Fault, IpHolding, IpId, Provider, ServerId};
use crate::api::{Answer, ApiClient};
use cloudha_common::http::MetadataService;
use cloudha_common::{Deadline, Secret};
use serde_json::Value;
use std::net::IpAddr;

/// The v1 API (paths carry `/v1`).
pub const API_URL: &str = "https://api.hetzner.cloud";
/// The server metadata service.
pub const METADATA_URL: &str = "http://169.254.169.254/hetzner/v1/metadata";
/// The largest page the API gives.
const PER_PAGE: u32 = 50;
/// More pages than any project holds (50 × 200 = 10,000 floating IPs): a listing that never
/// ends is garbled.
const MAX_PAGES: u32 = 200;

/// Hetzner Cloud, as the agent and its meta-data know it.
pub const CLOUD: super::Cloud = super::Cloud {
    name: "hetzner",
    aliases: &[],
    title: "Hetzner Cloud",
    server_word: "server",
    ip_word: "floating IP",
    api_url: API_URL,
    metadata_url: METADATA_URL,
    api_key: None,
    zone: None,
    describes: "the floating IP's id is found by listing every page, then one assign action moves it from any server \
(HTTP 423 locked and 409 conflict are waited out; the RateLimit headers are honoured). The metadata service does not list \
floating IPs: a monitor with a record reads the one IP by the id the start recorded (one request, never a listing). \
validate-all at OCF_CHECK_LEVEL=10 lists the floating IPs.",
    check_address,
    connect: |endpoints, token| Box::new(Hetzner::new(endpoints, token)),
};

/// Floating IPv4 addresses (an IPv6 floating IP is a /64 network, which this agent does not
/// float).
pub fn check_address(ip: IpAddr) -> Result<(), String> {
    super::public_ipv4(
        ip,
        "is not a public address: Hetzner floating IPs are public IPv4 addresses",
        "is an IPv6 address: Hetzner floating IPv6 are /64 networks, which this agent does not float; use an IPv4 floating IP",
    )
}

pub struct Hetzner {
    api: Option<ApiClient>,
    metadata: MetadataService,
}

impl Hetzner {
    pub fn new(endpoints: &Endpoints, token: Option<Secret>) -> Hetzner {
        Hetzner {
            api: endpoints.bearer_client(token),
            metadata: MetadataService::new(endpoints.metadata.as_str()),
        }
    }

    fn api(&self) -> Result<&ApiClient, Fault> {
        super::need_api(&self.api)
    }

    /// An answer other than 2xx, as a fault. A 401 or a 404 is the API's verdict on the token
    /// or the IP (6) only with Hetzner's own error body (`{"error":{"code":"unauthorized"}}`,
    /// `{"error":{"code":"not_found"}}`); from anything else in the way, transient. 423
    /// (`locked`: another action runs on the IP) and 409 (`conflict`) are waits.
    fn fault(answer: &Answer, what: &str, ip: IpAddr) -> Fault {
        let said = answer
            .message()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        let status = answer.status;
        let api_says = |code: &str| {
            answer
                .body
                .get("error")
                .and_then(|e| e.get("code"))
                .and_then(Value::as_str)
                == Some(code)
        };
        match status {
            401 if api_says("unauthorized") => {
                Fault::TokenRejected(format!("(HTTP 401{said}; {what})"))
            }
            404 if api_says("not_found") => Fault::IpUnknown(format!(
                "{ip} is not a floating IP of this project (HTTP 404{said}; {what})"
            )),
            401 | 404 => Fault::Transient(format!(
                "{what}: HTTP {status} without the API's error body (a proxy in the way?){said}"
            )),
            409 | 423 => Fault::Busy(format!(
                "{what}: another action runs on {ip} (HTTP {status}{said})"
            )),
            _ => super::http_fault(answer, what, &said),
        }
    }

    /// A read. A 409 or 423 on a read (the resource changed during the request) is worth
    /// another try of the same read: transient, not a wait for an action.
    fn get(&self, path: &str, what: &str, ip: IpAddr, d: &Deadline) -> Result<Value, Fault> {
        let answer = self.api()?.get(path, d)?;
        match answer.status {
            200 => Ok(answer.body),
            _ => Err(Self::read_fault(&answer, what, ip)),
        }
    }

    fn read_fault(answer: &Answer, what: &str, ip: IpAddr) -> Fault {
        match Self::fault(answer, what, ip) {
            Fault::Busy(d) => Fault::Transient(d),
            f => f,
        }
    }

    /// Every page of `GET /v1/floating_ips`, until the one that holds `ip`.
    fn find(&self, ip: IpAddr, deadline: &Deadline) -> Result<IpHolding, Fault> {
        let mut page = 1;
        loop {
            let what = format!("GET /v1/floating_ips page {page}");
            let body = self.get(
                &format!("/v1/floating_ips?page={page}&per_page={PER_PAGE}"),
                &what,
                ip,
                deadline,
            )?;
            let Some(list) = body.get("floating_ips").and_then(Value::as_array) else {
                return Err(Fault::Transient(format!(
                    "{what}: garbled answer (no floating_ips list)"
                )));
            };
            if let Some(found) = list.iter().find_map(|f| parse_ip(f, ip)) {
                return found
                    .ok_or_else(|| Fault::Transient(format!("{what}: garbled floating IP {ip}")));
            }
            let next = body
                .get("meta")
                .and_then(|m| m.get("pagination"))
                .and_then(|p| p.get("next_page"));
            match next {
                Some(Value::Null) => {
                    return Err(Fault::IpUnknown(format!(
                        "{ip} is not a floating IP of this project ({page} pages listed)"
                    )))
                }
                Some(n) if n.as_u64() == Some(u64::from(page) + 1) && page < MAX_PAGES => page += 1,
                _ => {
                    return Err(Fault::Transient(format!(
                        "{what}: garbled answer (no usable meta.pagination.next_page)"
                    )))
                }
            }
        }
    }

    fn action_of(answer: &Value, what: &str) -> Result<(ActionId, ActionState), Fault> {
        super::action_in(answer, &STATES, what)
    }
}

/// Hetzner's words for an action's status.
const STATES: [(&str, ActionState); 3] = [
    ("running", ActionState::InProgress),
    ("success", ActionState::Completed),
    ("error", ActionState::Errored),
];

/// A floating IP object: None when it is about another address; Some(None) when it is about
/// `asked` but garbled (no id, a holder that is not a number).
fn parse_ip(f: &Value, asked: IpAddr) -> Option<Option<IpHolding>> {
    let about: IpAddr = f.get("ip")?.as_str()?.parse().ok()?;
    if about != asked {
        return None;
    }
    let id = f.get("id").and_then(Value::as_u64);
    let holder = match f.get("server") {
        Some(Value::Null) => Some(None),
        Some(s) => s.as_u64().map(|s| Some(ServerId(s.to_string()))),
        None => None,
    };
    Some(match (id, holder) {
        (Some(id), Some(holder)) => Some(IpHolding {
            id: IpId(id.to_string()),
            holder,
            locked: false,
            also: Vec::new(),
        }),
        _ => None,
    })
}

impl Provider for Hetzner {
    fn server_word(&self) -> &'static str {
        CLOUD.server_word
    }

    fn server_id(&self, deadline: &Deadline) -> Result<ServerId, Fault> {
        let id = (
            "server id",
            "a number",
            super::is_number as fn(&str) -> bool,
        );
        super::metadata_server_id(&self.metadata, "instance-id", id, deadline)
    }

    /// Hetzner's metadata service does not list floating IPs: it cannot tell.
    fn holds_locally(&self, _: IpAddr, _: &Deadline) -> Result<Option<bool>, Fault> {
        Ok(None)
    }

    /// With the id: one `GET /v1/floating_ips/{id}`. Without: the listing, page by page.
    fn holding(
        &self,
        ip: IpAddr,
        id: Option<&IpId>,
        deadline: &Deadline,
    ) -> Result<IpHolding, Fault> {
        let Some(id) = id else {
            return self.find(ip, deadline);
        };
        let what = format!("GET /v1/floating_ips/{id}");
        let body = self.get(&format!("/v1/floating_ips/{id}"), &what, ip, deadline)?;
        let garbled =
            || Fault::Transient(format!("{what}: garbled answer (not the floating IP {ip})"));
        match body.get("floating_ip").map(|f| parse_ip(f, ip)) {
            Some(Some(Some(h))) if h.id == *id => Ok(h),
            _ => Err(garbled()),
        }
    }

    fn assign(
        &self,
        found: &IpHolding,
        ip: IpAddr,
        server: &ServerId,
        deadline: &Deadline,
    ) -> Result<(ActionId, ActionState), Fault> {
        let what = format!("assign {ip} to server {server}");
        let number: u64 = server
            .0
            .parse()
            .map_err(|_| Fault::Refused(format!("{what}: server id is not a number")))?;
        let body = serde_json::json!({"server": number});
        let answer = self.api()?.post(
            &format!("/v1/floating_ips/{}/actions/assign", found.id),
            &body,
            deadline,
        )?;
        match answer.status {
            200 | 201 => Self::action_of(&answer.body, &what),
            _ => Err(Self::fault(&answer, &what, ip)),
        }
    }

    fn action_state(
        &self,
        ip: IpAddr,
        action: &ActionId,
        deadline: &Deadline,
    ) -> Result<ActionState, Fault> {
        let what = format!("GET /v1/actions/{action} (assign {ip})");
        let answer = self
            .api()?
            .get(&format!("/v1/actions/{action}"), deadline)?;
        super::action_read(&answer, action, &STATES, &what, || {
            Self::read_fault(&answer, &what, ip)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(status: u16, body: Value) -> Answer {
        Answer::of(status, body)
    }

    #[test]
    fn only_public_ipv4() {
        assert!(check_address("203.0.113.7".parse().unwrap()).is_ok());
        assert!(check_address("10.0.0.1".parse().unwrap()).is_err());
        assert!(check_address("2001:db8::1".parse().unwrap())
            .unwrap_err()
            .contains("/64"));
    }

    #[test]
    fn only_hetzners_own_bodies_are_6() {
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let err = |code: &str| json!({"error": {"code": code, "message": "m", "details": {}}});
        assert!(matches!(
            Hetzner::fault(&answer(401, err("unauthorized")), "x", ip),
            Fault::TokenRejected(_)
        ));
        assert!(matches!(
            Hetzner::fault(&answer(404, err("not_found")), "x", ip),
            Fault::IpUnknown(_)
        ));
        for (status, body) in [
            (401, Value::Null),
            (404, Value::Null),
            (401, json!({"id": "unauthorized"})),
            (404, err("unauthorized")),
            (401, json!({"error": "unauthorized"})),
        ] {
            let f = Hetzner::fault(&answer(status, body.clone()), "GET x", ip);
            assert!(f.is_transient(), "{status} {body}: {f:?}");
        }
        for status in [409, 423] {
            assert!(matches!(
                Hetzner::fault(&answer(status, err("locked")), "x", ip),
                Fault::Busy(_)
            ));
            // On a read, the same read again.
            assert!(Hetzner::read_fault(&answer(status, err("conflict")), "x", ip).is_transient());
        }
        assert!(Hetzner::fault(&answer(429, err("rate_limit_exceeded")), "x", ip).is_transient());
        assert!(Hetzner::fault(&answer(503, err("unavailable")), "x", ip).is_transient());
        assert!(matches!(
            Hetzner::fault(&answer(403, err("forbidden")), "x", ip),
            Fault::Refused(_)
        ));
    }

    #[test]
    fn floating_ips_parse() {
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let held = json!({"id": 4711, "ip": "203.0.113.7", "type": "ipv4", "server": 42});
        assert_eq!(
            parse_ip(&held, ip),
            Some(Some(IpHolding {
                id: IpId("4711".into()),
                holder: Some(ServerId("42".into())),
                locked: false,
                also: Vec::new()
            }))
        );
        let free = json!({"id": 4711, "ip": "203.0.113.7", "server": null});
        assert_eq!(parse_ip(&free, ip).unwrap().unwrap().holder, None);
        assert_eq!(parse_ip(&json!({"id": 1, "ip": "198.51.100.1"}), ip), None);
        assert_eq!(
            parse_ip(&json!({"id": "x", "ip": "203.0.113.7", "server": 1}), ip),
            Some(None)
        );
        assert_eq!(
            parse_ip(&json!({"id": 1, "ip": "203.0.113.7", "server": "1"}), ip),
            Some(None)
        );
    }

    #[test]
    fn actions_parse() {
        let a = json!({"action": {"id": 13, "command": "assign_floating_ip", "status": "running"}});
        assert_eq!(
            Hetzner::action_of(&a, "x").unwrap(),
            (ActionId("13".into()), ActionState::InProgress)
        );
        for (s, state) in [
            ("success", ActionState::Completed),
            ("error", ActionState::Errored),
        ] {
            let a = json!({"action": {"id": 13, "status": s}});
            assert_eq!(Hetzner::action_of(&a, "x").unwrap().1, state);
        }
        assert!(
            Hetzner::action_of(&json!({"action": {"id": 13, "status": "done"}}), "x")
                .unwrap_err()
                .is_transient()
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                prop::sample::select(vec![
                    "unauthorized",
                    "not_found",
                    "locked",
                    "conflict",
                    "203.0.113.7",
                    "running",
                    "success",
                ])
                .prop_map(Value::from),
                any::<String>().prop_map(Value::from),
            ];
            leaf.prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                    prop::collection::btree_map(
                        prop::sample::select(vec![
                            "error", "code", "message", "id", "ip", "server"
                        ])
                        .prop_map(String::from),
                        inner,
                        0..4
                    )
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            /// 6 only on Hetzner's own word: a 401 or 404 whose error body's code says so.
            #[test]
            fn only_the_apis_own_errors_are_6(body in json(), status in 100u16..600) {
                let ip: IpAddr = "203.0.113.7".parse().unwrap();
                let code = body.get("error").and_then(|e| e.get("code")).and_then(Value::as_str).map(str::to_string);
                match Hetzner::fault(&answer(status, body), "x", ip) {
                    Fault::TokenRejected(_) => prop_assert_eq!((status, code.as_deref()), (401, Some("unauthorized"))),
                    Fault::IpUnknown(_) => prop_assert_eq!((status, code.as_deref()), (404, Some("not_found"))),
                    _ => {}
                }
            }

            /// A floating IP object is believed only for the address asked about.
            #[test]
            fn an_ip_object_describes_the_asked_ip(body in json()) {
                let asked: IpAddr = "203.0.113.7".parse().unwrap();
                if let Some(Some(h)) = parse_ip(&body, asked) {
                    prop_assert_eq!(body["ip"].as_str(), Some("203.0.113.7"));
                    prop_assert!(h.id.0.parse::<u64>().is_ok());
                }
            }
        }
    }
}
