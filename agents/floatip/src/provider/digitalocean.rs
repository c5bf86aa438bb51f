//! DigitalOcean reserved (formerly floating) IPv4 addresses: the v2 API's `reserved_ips` calls
//! and the droplet metadata service, as shared/docs/digitalocean.md describes them.

use super::{ActionId, ActionState, Endpoints, Fault, IpHolding, Provider, ServerId};
use crate::api::{Answer, ApiClient};
use cloudha_common::http::MetadataService;
use cloudha_common::{Deadline, Secret};
use serde_json::Value;
use std::net::IpAddr;

/// Reserved IPs are IPv4 here (the v2 `reserved_ips` calls).
pub fn check_address(ip: IpAddr) -> Result<(), String> {
    match ip {
        IpAddr::V4(v4)
            if !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()) =>
        {
            Ok(())
        }
        IpAddr::V4(_) => Err(
            "is not a public address: DigitalOcean reserved IPs are public IPv4 addresses".into(),
        ),
        IpAddr::V6(_) => {
            Err("is an IPv6 address: DigitalOcean reserved IPs are IPv4 addresses".into())
        }
    }
}

pub struct DigitalOcean {
    api: Option<ApiClient>,
    metadata: MetadataService,
}

impl DigitalOcean {
    pub fn new(endpoints: &Endpoints, token: Option<Secret>) -> DigitalOcean {
        DigitalOcean {
            api: token.map(|t| ApiClient::new(&endpoints.api, t, endpoints.api_is_loopback())),
            metadata: MetadataService::new(endpoints.metadata.as_str()),
        }
    }

    fn api(&self) -> Result<&ApiClient, Fault> {
        self.api
            .as_ref()
            .ok_or_else(|| Fault::Refused("no API token available for this call".into()))
    }

    fn metadata(&self, path: &str, deadline: &Deadline) -> Result<Option<String>, Fault> {
        self.metadata
            .get(path, deadline)
            .map_err(|e| Fault::Transient(e.to_string()))
    }

    /// An answer other than 2xx, as a fault. `what` names the call for people.
    fn fault(answer: &Answer, what: &str, ip: IpAddr) -> Fault {
        let said = answer
            .message()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        let status = answer.status;
        match status {
            // Pacemaker keeps about 128 characters of an exit reason: what matters comes first,
            // the call that met it last.
            401 => Fault::TokenRejected(format!("(HTTP 401{said}; {what})")),
            404 => Fault::IpUnknown(format!(
                "{ip} is not a reserved IP of this account (HTTP 404{said}; {what})"
            )),
            422 => Fault::Busy(format!(
                "{what}: an action is pending on {ip} (HTTP 422{said})"
            )),
            429 => Fault::RateLimited {
                wait: answer.rate_limit_wait(),
                detail: format!("{what}: rate limited (HTTP 429{said})"),
            },
            500..=599 => Fault::Transient(format!("{what}: HTTP {status}{said}")),
            _ => Fault::Refused(format!("{what}: HTTP {status}{said}")),
        }
    }

    fn action_of(answer: &Answer, what: &str) -> Result<(ActionId, ActionState), Fault> {
        let action = answer.body.get("action");
        let id = action.and_then(|a| a.get("id")).and_then(Value::as_u64);
        let state = action
            .and_then(|a| a.get("status"))
            .and_then(Value::as_str)
            .and_then(parse_state);
        match (id, state) {
            (Some(id), Some(state)) => Ok((ActionId(id.to_string()), state)),
            _ => Err(Fault::Transient(format!(
                "{what}: the answer carries no action id and status"
            ))),
        }
    }
}

fn parse_state(s: &str) -> Option<ActionState> {
    match s {
        "in-progress" => Some(ActionState::InProgress),
        "completed" => Some(ActionState::Completed),
        "errored" => Some(ActionState::Errored),
        _ => None,
    }
}

/// The holder and lock of `{"reserved_ip": {...}}` (or the older `floating_ip`).
fn parse_holding(body: &Value) -> Option<IpHolding> {
    let ip = body
        .get("reserved_ip")
        .or_else(|| body.get("floating_ip"))?;
    let holder = match ip.get("droplet")? {
        Value::Null => None,
        d => Some(ServerId(d.get("id")?.as_u64()?.to_string())),
    };
    let locked = ip.get("locked").and_then(Value::as_bool).unwrap_or(false);
    Some(IpHolding { holder, locked })
}

impl Provider for DigitalOcean {
    fn server_id(&self, deadline: &Deadline) -> Result<ServerId, Fault> {
        match self.metadata("id", deadline)? {
            Some(id) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(ServerId(id))
            }
            Some(_) => Err(Fault::Transient(format!(
                "metadata service {}: the droplet id is not a number",
                self.metadata.url("id")
            ))),
            None => Err(Fault::Transient(format!(
                "metadata service {}: no droplet id (HTTP 404)",
                self.metadata.url("id")
            ))),
        }
    }

    /// One request when this droplet holds a reserved IP; two when it holds none (the address
    /// path is absent then, and `active` must say `false` for "none" to be believed).
    fn holds_locally(&self, ip: IpAddr, deadline: &Deadline) -> Result<bool, Fault> {
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

    fn holding(&self, ip: IpAddr, deadline: &Deadline) -> Result<IpHolding, Fault> {
        let what = format!("GET /v2/reserved_ips/{ip}");
        let answer = self
            .api()?
            .get(&format!("/v2/reserved_ips/{ip}"), deadline)?;
        if answer.status != 200 {
            return Err(Self::fault(&answer, &what, ip));
        }
        parse_holding(&answer.body)
            .ok_or_else(|| Fault::Transient(format!("{what}: garbled answer (no reserved_ip)")))
    }

    fn assign(
        &self,
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
        match answer.status {
            200 => Self::action_of(&answer, &what).map(|(_, s)| s),
            // The action exists (we made it): a 404 here is the API catching up, not our IP.
            404 => Err(Fault::Transient(format!("{what}: HTTP 404"))),
            _ => Err(Self::fault(&answer, &what, ip)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
    fn holding_from_both_names() {
        let h = parse_holding(&json!({"reserved_ip": {"ip": "203.0.113.7",
            "droplet": {"id": 42, "name": "lb1"}, "locked": true}}))
        .unwrap();
        assert_eq!(h.holder, Some(ServerId("42".into())));
        assert!(h.locked);
        let h = parse_holding(&json!({"floating_ip": {"droplet": null, "locked": false}})).unwrap();
        assert_eq!(
            h,
            IpHolding {
                holder: None,
                locked: false
            }
        );
        assert!(parse_holding(&json!({"reserved_ip": {"ip": "x"}})).is_none());
        assert!(parse_holding(&json!({"droplet": null})).is_none());
    }

    fn answer(status: u16, body: Value) -> Answer {
        Answer {
            status,
            body,
            retry_after: None,
            until_reset: None,
            remaining: None,
        }
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
            DigitalOcean::fault(&answer(404, Value::Null), "x", ip),
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
        let bad = answer(201, json!({"action": {"id": 7, "status": "weird"}}));
        assert!(DigitalOcean::action_of(&bad, "x")
            .unwrap_err()
            .is_transient());
    }
}
