//! DigitalOcean reserved (formerly floating) IPv4 addresses: the v2 API's `reserved_ips` calls
//! and the droplet metadata service, as shared/docs/digitalocean.md describes them.

use super::{ActionId, ActionState, Endpoints, Fault, IpHolding, IpId, Provider, ServerId};
use crate::api::{Answer, ApiClient};
use cloudha_common::http::{MetadataService, DEFAULT_METADATA_URL};
use cloudha_common::{Deadline, Secret};
use serde_json::Value;
use std::net::IpAddr;

/// The v2 API.
pub const API_URL: &str = "https://api.digitalocean.com";
/// The droplet metadata service.
pub const METADATA_URL: &str = DEFAULT_METADATA_URL;

/// DigitalOcean, as the agent and its meta-data know it.
pub const CLOUD: super::Cloud = super::Cloud {
    name: "digitalocean",
    // Accepted since the first release, not advertised.
    aliases: &["do"],
    title: "DigitalOcean",
    server_word: "droplet",
    ip_word: "reserved IP",
    api_url: API_URL,
    metadata_url: METADATA_URL,
    api_key: None,
    zone: None,
    describes: "one assign action moves a reserved IP from any droplet (an action pending on it, HTTP 422, is waited out; \
retry-after and ratelimit-reset are honoured). The droplet metadata service says which reserved IP the droplet holds: \
a monitor asks it only, never the API (during the 60 s after a start, a \"not here\" is checked with one API read, which decides). \
validate-all at OCF_CHECK_LEVEL=10 reads the one IP.",
    check_address,
    connect: |endpoints, token| Box::new(DigitalOcean::new(endpoints, token)),
};

/// Reserved IPs are IPv4 here (the v2 `reserved_ips` calls).
pub fn check_address(ip: IpAddr) -> Result<(), String> {
    super::public_ipv4(
        ip,
        "is not a public address: DigitalOcean reserved IPs are public IPv4 addresses",
        "is an IPv6 address: DigitalOcean reserved IPs are IPv4 addresses",
    )
}

pub struct DigitalOcean {
    api: Option<ApiClient>,
    metadata: MetadataService,
}

impl DigitalOcean {
    pub fn new(endpoints: &Endpoints, token: Option<Secret>) -> DigitalOcean {
        DigitalOcean {
            api: endpoints.bearer_client(token),
            metadata: MetadataService::new(endpoints.metadata.as_str()),
        }
    }

    fn api(&self) -> Result<&ApiClient, Fault> {
        super::need_api(&self.api)
    }

    fn metadata(&self, path: &str, deadline: &Deadline) -> Result<Option<String>, Fault> {
        self.metadata
            .get(path, deadline)
            .map_err(|e| Fault::Transient(e.to_string()))
    }

    /// An answer other than 2xx, as a fault. `what` names the call for people. A 401 or a 404
    /// is the API's verdict on the token or the address (6) only with its own error body
    /// (`{"id": "unauthorized"}`, `{"id": "not_found"}`); from anything else in the way (a
    /// proxy's HTML page), it says nothing about them: transient, retried, then 1.
    fn fault(answer: &Answer, what: &str, ip: IpAddr) -> Fault {
        let said = answer
            .message()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        let status = answer.status;
        let api_says = |id: &str| answer.body.get("id").and_then(Value::as_str) == Some(id);
        match status {
            // Pacemaker keeps about 128 characters of an exit reason: what matters comes first,
            // the call that met it last.
            401 if api_says("unauthorized") => {
                Fault::TokenRejected(format!("(HTTP 401{said}; {what})"))
            }
            404 if api_says("not_found") => Fault::IpUnknown(format!(
                "{ip} is not a reserved IP of this account (HTTP 404{said}; {what})"
            )),
            401 | 404 => Fault::Transient(format!(
                "{what}: HTTP {status} without the API's error body (a proxy in the way?){said}"
            )),
            422 => Fault::Busy(format!(
                "{what}: an action is pending on {ip} (HTTP 422{said})"
            )),
            _ => super::http_fault(answer, what, &said),
        }
    }

    fn action_of(answer: &Answer, what: &str) -> Result<(ActionId, ActionState), Fault> {
        super::action_in(&answer.body, &STATES, what)
    }
}

/// DigitalOcean's words for an action's status.
const STATES: [(&str, ActionState); 3] = [
    ("in-progress", ActionState::InProgress),
    ("completed", ActionState::Completed),
    ("errored", ActionState::Errored),
];

/// The holder and lock of `{"reserved_ip": {...}}` (or the older `floating_ip`) for the address
/// `asked`: an answer about another address (a cache or a proxy mixing answers up) is none.
fn parse_holding(body: &Value, asked: IpAddr) -> Option<IpHolding> {
    let ip = body
        .get("reserved_ip")
        .or_else(|| body.get("floating_ip"))?;
    let about: IpAddr = ip.get("ip")?.as_str()?.parse().ok()?;
    if about != asked {
        return None;
    }
    let holder = match ip.get("droplet")? {
        Value::Null => None,
        d => Some(ServerId(d.get("id")?.as_u64()?.to_string())),
    };
    let locked = ip.get("locked").and_then(Value::as_bool).unwrap_or(false);
    Some(IpHolding {
        id: IpId(asked.to_string()),
        holder,
        locked,
        also: Vec::new(),
    })
}

impl Provider for DigitalOcean {
    fn server_word(&self) -> &'static str {
        CLOUD.server_word
    }

    fn server_id(&self, deadline: &Deadline) -> Result<ServerId, Fault> {
        let id = (
            "droplet id",
            "a number",
            super::is_number as fn(&str) -> bool,
        );
        super::metadata_server_id(&self.metadata, "id", id, deadline)
    }

    fn holds_locally(&self, ip: IpAddr, deadline: &Deadline) -> Result<Option<bool>, Fault> {
        self.holds(ip, deadline).map(Some)
    }

    /// The address is the id: `id` is not needed.
    fn holding(
        &self,
        ip: IpAddr,
        _id: Option<&IpId>,
        deadline: &Deadline,
    ) -> Result<IpHolding, Fault> {
        let what = format!("GET /v2/reserved_ips/{ip}");
        let answer = self
            .api()?
            .get(&format!("/v2/reserved_ips/{ip}"), deadline)?;
        if answer.status != 200 {
            return Err(Self::fault(&answer, &what, ip));
        }
        parse_holding(&answer.body, ip).ok_or_else(|| {
            Fault::Transient(format!("{what}: garbled answer (not the reserved IP {ip})"))
        })
    }

    fn assign(
        &self,
        _: &IpHolding,
        ip: IpAddr,
        server: &ServerId,
        deadline: &Deadline,
    ) -> Result<(ActionId, ActionState), Fault> {
        let what = format!("assign {ip} to droplet {server}");
        let droplet: u64 = server
            .0
            .parse()
            .map_err(|_| Fault::Refused(format!("{what}: droplet id is not a number")))?;
        let body = serde_json::json!({"type": "assign", "droplet_id": droplet});
        let answer =
            self.api()?
                .post(&format!("/v2/reserved_ips/{ip}/actions"), &body, deadline)?;
        match answer.status {
            200 | 201 => Self::action_of(&answer, &what),
            _ => Err(Self::fault(&answer, &what, ip)),
        }
    }

    fn action_state(
        &self,
        ip: IpAddr,
        action: &ActionId,
        deadline: &Deadline,
    ) -> Result<ActionState, Fault> {
        let what = format!("GET action {action} of {ip}");
        let answer = self
            .api()?
            .get(&format!("/v2/reserved_ips/{ip}/actions/{action}"), deadline)?;
        super::action_read(&answer, action, &STATES, &what, || {
            Self::fault(&answer, &what, ip)
        })
    }
}

impl DigitalOcean {
    /// One request when this droplet holds a reserved IP; two when it holds none (the address
    /// path is absent then, and `active` must say `false` for "none" to be believed).
    fn holds(&self, ip: IpAddr, deadline: &Deadline) -> Result<bool, Fault> {
        match self.metadata("reserved_ip/ipv4/ip_address", deadline)? {
            Some(text) => match text.parse::<IpAddr>() {
                Ok(held) => Ok(held == ip),
                Err(_) => Err(Fault::Transient(format!(
                    "metadata service {}: garbled answer (not an address)",
                    self.metadata.url("reserved_ip/ipv4/ip_address")
                ))),
            },
            None => match self
                .metadata("reserved_ip/ipv4/active", deadline)?
                .as_deref()
            {
                Some("false") => Ok(false),
                other => Err(Fault::Transient(format!(
                    "metadata service {}: no address, yet active is {}",
                    self.metadata.url("reserved_ip/ipv4"),
                    match other {
                        Some(v) => format!("'{v}'"),
                        None => "missing".into(),
                    }
                ))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The state of `action` in a GET answer about it (provider::action_read, as action_state
    /// reads it).
    fn state_of(answer: &Answer, action: &ActionId) -> Result<ActionState, Fault> {
        super::super::action_read(answer, action, &STATES, "x", || {
            Fault::Transient("not a 200".into())
        })
    }

    #[test]
    fn only_public_ipv4() {
        assert!(check_address("203.0.113.7".parse().unwrap()).is_ok());
        assert!(check_address("10.0.0.1".parse().unwrap())
            .unwrap_err()
            .contains("not a public address"));
        assert!(check_address("2001:db8::1".parse().unwrap())
            .unwrap_err()
            .contains("IPv6"));
    }

    #[test]
    fn an_answer_for_another_address_is_not_believed() {
        let asked: IpAddr = "203.0.113.12".parse().unwrap();
        let other = json!({"reserved_ip": {"ip": "198.51.100.1",
            "droplet": {"id": 101}, "locked": false}});
        assert_eq!(parse_holding(&other, asked), None);
        let nameless = json!({"reserved_ip": {"droplet": {"id": 101}, "locked": false}});
        assert_eq!(parse_holding(&nameless, asked), None);
        let garbled = json!({"reserved_ip": {"ip": 3405803788u32, "droplet": null}});
        assert_eq!(parse_holding(&garbled, asked), None);
        let ours = json!({"reserved_ip": {"ip": "203.0.113.12", "droplet": {"id": 101}}});
        assert_eq!(
            parse_holding(&ours, asked).map(|h| h.holder),
            Some(Some(ServerId("101".into())))
        );
    }

    #[test]
    fn only_the_clouds_own_bodies_are_6() {
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let page = Value::Null; // an HTML page (a proxy's) reads as no JSON at all
        let do_401 = json!({"id": "unauthorized", "message": "Unable to authenticate you."});
        let do_404 = json!({"id": "not_found", "message": "The resource you were accessing could not be found."});
        assert!(matches!(
            DigitalOcean::fault(&answer(401, do_401), "x", ip),
            Fault::TokenRejected(_)
        ));
        assert!(matches!(
            DigitalOcean::fault(&answer(404, do_404), "x", ip),
            Fault::IpUnknown(_)
        ));
        for (status, body) in [
            (401, page.clone()),
            (404, page),
            (401, json!({"message": "Unauthorized"})),
            (404, json!({"id": "unauthorized"})),
            (401, json!({"id": ["unauthorized"]})),
            (404, json!(["not_found"])),
        ] {
            let f = DigitalOcean::fault(&answer(status, body.clone()), "GET x", ip);
            assert!(f.is_transient(), "{status} {body}: {f:?}");
            assert!(f.to_string().contains(&format!("HTTP {status}")), "{f}");
        }
    }

    #[test]
    fn holding_from_both_names() {
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let h = parse_holding(
            &json!({"reserved_ip": {"ip": "203.0.113.7",
            "droplet": {"id": 42, "name": "lb1"}, "locked": true}}),
            ip,
        )
        .unwrap();
        assert_eq!(h.holder, Some(ServerId("42".into())));
        assert!(h.locked);
        let h = parse_holding(
            &json!({"floating_ip": {"ip": "203.0.113.7", "droplet": null, "locked": false}}),
            ip,
        )
        .unwrap();
        assert_eq!(
            h,
            IpHolding {
                id: IpId("203.0.113.7".into()),
                holder: None,
                locked: false,
                also: Vec::new()
            }
        );
        assert!(parse_holding(&json!({"reserved_ip": {"ip": "x"}}), ip).is_none());
        assert!(parse_holding(&json!({"droplet": null}), ip).is_none());
    }

    fn answer(status: u16, body: Value) -> Answer {
        Answer::of(status, body)
    }

    #[test]
    fn statuses_become_faults() {
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let unauthorized = json!({"id": "unauthorized", "message": "Unable to authenticate you."});
        assert!(matches!(
            DigitalOcean::fault(&answer(401, unauthorized), "x", ip),
            Fault::TokenRejected(m) if m.contains("Unable to authenticate you.")
        ));
        assert!(matches!(
            DigitalOcean::fault(&answer(404, json!({"id": "not_found"})), "x", ip),
            Fault::IpUnknown(_)
        ));
        assert!(matches!(
            DigitalOcean::fault(&answer(422, Value::Null), "x", ip),
            Fault::Busy(_)
        ));
        assert!(DigitalOcean::fault(&answer(429, Value::Null), "x", ip).is_transient());
        assert!(DigitalOcean::fault(&answer(503, Value::Null), "x", ip).is_transient());
        assert!(matches!(
            DigitalOcean::fault(&answer(403, Value::Null), "x", ip),
            Fault::Refused(_)
        ));
    }

    #[test]
    fn actions_parse() {
        let a = answer(
            201,
            json!({"action": {"id": 7, "status": "in-progress", "type": "assign_ip"}}),
        );
        assert_eq!(
            DigitalOcean::action_of(&a, "x").unwrap(),
            (ActionId("7".into()), ActionState::InProgress)
        );
        let done = answer(200, json!({"action": {"id": 7, "status": "completed"}}));
        let seven = ActionId("7".into());
        assert_eq!(state_of(&done, &seven), Ok(ActionState::Completed));
        let other = state_of(&done, &ActionId("8".into())).unwrap_err();
        assert!(
            other.is_transient() && other.to_string().contains("garbled"),
            "{other}"
        );
        let bad = answer(201, json!({"action": {"id": 7, "status": "weird"}}));
        assert!(DigitalOcean::action_of(&bad, "x")
            .unwrap_err()
            .is_transient());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        const ASKED: &str = "203.0.113.12";

        fn key() -> impl Strategy<Value = String> {
            prop_oneof![
                prop::sample::select(vec![
                    "reserved_ip",
                    "floating_ip",
                    "ip",
                    "droplet",
                    "id",
                    "locked",
                    "action",
                    "status",
                    "message",
                ])
                .prop_map(String::from),
                "[a-z_]{1,8}",
            ]
        }

        /// Any JSON, biased towards the names and values DigitalOcean's answers use.
        fn json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(Value::from),
                prop::sample::select(vec![
                    ASKED,
                    "198.51.100.1",
                    "2001:db8::1",
                    "in-progress",
                    "completed",
                    "errored",
                    "unauthorized",
                    "not_found",
                    "7",
                ])
                .prop_map(Value::from),
                any::<String>().prop_map(Value::from),
            ];
            leaf.prop_recursive(4, 48, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map(key(), inner, 0..6)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        /// Shaped like the answers: `{"reserved_ip": {...}}`, `{"action": {...}}`, errors.
        fn answer_body() -> impl Strategy<Value = Value> {
            prop_oneof![
                json(),
                (key(), prop::collection::btree_map(key(), json(), 0..6)).prop_map(|(k, m)| {
                    let mut o = serde_json::Map::new();
                    o.insert(k, Value::Object(m.into_iter().collect()));
                    Value::Object(o)
                }),
            ]
        }

        proptest! {
            /// A holding is believed only for the address asked about.
            #[test]
            fn a_holding_describes_the_asked_ip(body in answer_body()) {
                let asked: IpAddr = ASKED.parse().unwrap();
                if let Some(_h) = parse_holding(&body, asked) {
                    let ip = body.get("reserved_ip").or_else(|| body.get("floating_ip")).unwrap();
                    prop_assert_eq!(ip["ip"].as_str().and_then(|t| t.parse::<IpAddr>().ok()), Some(asked));
                }
            }

            /// Actions parse or are garbled; a state is only ever of the action asked about.
            #[test]
            fn actions_never_panic(body in answer_body(), status in 100u16..600) {
                let a = answer(status, body);
                if let Ok((id, _)) = DigitalOcean::action_of(&a, "x") {
                    prop_assert!(id.0.parse::<u64>().is_ok());
                }
                if state_of(&a, &ActionId("7".into())).is_ok() {
                    prop_assert_eq!(a.body["action"]["id"].as_u64(), Some(7));
                }
            }

            /// 6 only on the API's own word: a 401 or 404 with its error body's id.
            #[test]
            fn only_the_apis_own_errors_are_6(body in answer_body(), status in 100u16..600) {
                let ip: IpAddr = ASKED.parse().unwrap();
                let id = body.get("id").and_then(Value::as_str).map(str::to_string);
                match DigitalOcean::fault(&answer(status, body), "x", ip) {
                    Fault::TokenRejected(_) => {
                        prop_assert_eq!((status, id.as_deref()), (401, Some("unauthorized")))
                    }
                    Fault::IpUnknown(_) => {
                        prop_assert_eq!((status, id.as_deref()), (404, Some("not_found")))
                    }
                    _ => {}
                }
            }
        }
    }
}
