//! DigitalOcean droplets' power (shared/docs/fencing.md §6): `GET /v2/droplets[/{id}]`,
//! `POST /v2/droplets/{id}/actions` with `power_off` (hard: "similar to cutting the power") or
//! `power_on`, `GET /v2/actions/{id}`, and the droplet's own actions for the race check.

use super::{Power, PowerState, Server, Switch};
use crate::api::{Answer, ApiClient};
use crate::provider::digitalocean::DigitalOcean;
use crate::provider::{
    action_in, action_read, http_fault, ActionId, ActionState, Endpoints, Fault, Provider, ServerId,
};
use cloudha_common::{Deadline, Secret};
use serde_json::Value;

/// The most droplets a page holds (the API's maximum).
const PER_PAGE: u32 = 200;
/// A listing stops there: 10,000 droplets.
const MAX_PAGES: u32 = 50;

/// DigitalOcean's words for an action's status.
const STATES: [(&str, ActionState); 3] = [
    ("in-progress", ActionState::InProgress),
    ("completed", ActionState::Completed),
    ("errored", ActionState::Errored),
];

/// Action types that take a droplet down.
const DOWN: [&str; 4] = ["power_off", "power_cycle", "shutdown", "reboot"];

pub struct DigitalOceanPower {
    api: ApiClient,
    /// The floating-IP provider, for its metadata service (this droplet's id).
    metadata: DigitalOcean,
}

impl DigitalOceanPower {
    pub fn new(endpoints: &Endpoints, token: Secret) -> Result<DigitalOceanPower, String> {
        let api = endpoints
            .bearer_client(Some(token))
            .ok_or("no API URL for DigitalOcean")?;
        Ok(DigitalOceanPower {
            api,
            metadata: DigitalOcean::new(endpoints, None),
        })
    }

    /// An answer other than 2xx. 401 and 404 are the API's verdicts only with its own error
    /// body; from anything else in the way (a proxy's page) they are transient.
    fn fault(answer: &Answer, what: &str) -> Fault {
        let said = answer
            .message()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        let status = answer.status;
        let api_says = |id: &str| answer.body.get("id").and_then(Value::as_str) == Some(id);
        match status {
            401 if api_says("unauthorized") => {
                Fault::TokenRejected(format!("(HTTP 401{said}; {what})"))
            }
            404 if api_says("not_found") => {
                Fault::Refused(format!("{what}: no such droplet (HTTP 404{said})"))
            }
            401 | 404 => Fault::Transient(format!(
                "{what}: HTTP {status} without the API's error body (a proxy in the way?){said}"
            )),
            422 => Fault::Busy(format!("{what}: refused (HTTP 422{said})")),
            _ => http_fault(answer, what, &said),
        }
    }

    fn get(&self, path: &str, deadline: &Deadline) -> Result<Value, Fault> {
        let answer = self.api.get(path, deadline)?;
        match answer.status {
            200 => Ok(answer.body),
            _ => Err(Self::fault(&answer, &format!("GET {path}"))),
        }
    }
}

/// `{"id": 101, "name": "lb1", "status": "active"}` as a server; None when garbled.
fn droplet(v: &Value) -> Option<Server> {
    let id = v.get("id")?.as_u64()?;
    let name = v.get("name")?.as_str()?.to_string();
    let state = match v.get("status")?.as_str()? {
        "active" => PowerState::On,
        "off" => PowerState::Off,
        other => PowerState::Other(other.to_string()),
    };
    Some(Server {
        id: ServerId(id.to_string()),
        name,
        state,
    })
}

/// `s` with every byte outside RFC 3986's unreserved set percent-encoded (a query value).
fn query_value(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The droplets of one listing page, and whether another follows.
fn page(body: &Value, what: &str) -> Result<(Vec<Server>, bool), Fault> {
    let garbled = || Fault::Transient(format!("{what}: garbled answer (no droplets)"));
    let list = body
        .get("droplets")
        .and_then(Value::as_array)
        .ok_or_else(garbled)?;
    let servers = list
        .iter()
        .map(droplet)
        .collect::<Option<Vec<_>>>()
        .ok_or_else(garbled)?;
    let next = body
        .get("links")
        .and_then(|l| l.get("pages"))
        .and_then(|p| p.get("next"))
        .is_some_and(|n| n.is_string());
    Ok((servers, next))
}

impl Power for DigitalOceanPower {
    fn server_word(&self) -> &'static str {
        "droplet"
    }

    fn own_id(&self, deadline: &Deadline) -> Result<ServerId, Fault> {
        self.metadata.server_id(deadline)
    }

    fn find(&self, plug: &str, deadline: &Deadline) -> Result<Server, Fault> {
        let plug = plug.trim();
        if crate::provider::is_number(plug) {
            match self.server(&ServerId(plug.to_string()), deadline) {
                Err(Fault::Refused(_)) => {} // no droplet with that id: maybe a name
                other => return other,
            }
        }
        // `name` is an exact, case-insensitive match at DigitalOcean.
        let path = format!(
            "/v2/droplets?name={}&per_page={PER_PAGE}",
            query_value(plug)
        );
        let what = format!("GET {path}");
        let (found, _) = page(&self.get(&path, deadline)?, &what)?;
        let words = ("droplet", "named", "numbered", "account");
        super::the_one_named(found, plug, words)
    }

    fn server(&self, id: &ServerId, deadline: &Deadline) -> Result<Server, Fault> {
        let path = format!("/v2/droplets/{id}");
        let body = self.get(&path, deadline)?;
        body.get("droplet")
            .and_then(droplet)
            .filter(|s| s.id == *id)
            .ok_or_else(|| Fault::Transient(format!("GET {path}: garbled answer")))
    }

    fn list(&self, deadline: &Deadline) -> Result<Vec<Server>, Fault> {
        let mut all = Vec::new();
        for n in 1..=MAX_PAGES {
            let path = format!("/v2/droplets?per_page={PER_PAGE}&page={n}");
            let (servers, next) = page(&self.get(&path, deadline)?, &format!("GET {path}"))?;
            all.extend(servers);
            if !next {
                return Ok(all);
            }
        }
        Err(Fault::Refused(format!(
            "more than {} droplets: listing stopped",
            PER_PAGE * MAX_PAGES
        )))
    }

    fn switch(
        &self,
        id: &ServerId,
        to: Switch,
        deadline: &Deadline,
    ) -> Result<(ActionId, ActionState), Fault> {
        let kind = match to {
            Switch::Off => "power_off",
            Switch::On => "power_on",
        };
        let path = format!("/v2/droplets/{id}/actions");
        let what = format!("{kind} droplet {id}");
        let answer = self
            .api
            .post(&path, &serde_json::json!({"type": kind}), deadline)?;
        match answer.status {
            200 | 201 => action_in(&answer.body, &STATES, &what),
            _ => Err(Self::fault(&answer, &what)),
        }
    }

    fn action_state(&self, action: &ActionId, deadline: &Deadline) -> Result<ActionState, Fault> {
        let path = format!("/v2/actions/{action}");
        let what = format!("GET {path}");
        let answer = self.api.get(&path, deadline)?;
        action_read(&answer, action, &STATES, &what, || {
            Self::fault(&answer, &what)
        })
    }

    fn going_down(&self, id: &ServerId, deadline: &Deadline) -> Result<Option<String>, Fault> {
        // The newest actions come first; a pending one is among the newest.
        let path = format!("/v2/droplets/{id}/actions?per_page=20");
        let body = self.get(&path, deadline)?;
        let actions = body
            .get("actions")
            .and_then(Value::as_array)
            .ok_or_else(|| Fault::Transient(format!("GET {path}: garbled answer")))?;
        Ok(actions.iter().find_map(|a| {
            let kind = a.get("type")?.as_str()?;
            let pending = a.get("status")?.as_str()? == "in-progress";
            (pending && DOWN.contains(&kind)).then(|| kind.to_string())
        }))
    }

    fn check_token(&self, deadline: &Deadline) -> Result<(), Fault> {
        self.get("/v2/droplets?per_page=1", deadline).map(|_| ())
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
    fn droplets_parse_with_their_power() {
        let s = droplet(&json!({"id": 101, "name": "lb1", "status": "active"})).unwrap();
        assert_eq!(
            (s.id.0.as_str(), s.name.as_str(), s.state),
            ("101", "lb1", PowerState::On)
        );
        let s = droplet(&json!({"id": 7, "name": "x", "status": "off"})).unwrap();
        assert_eq!(s.state, PowerState::Off);
        let s = droplet(&json!({"id": 7, "name": "x", "status": "new"})).unwrap();
        assert_eq!(s.state, PowerState::Other("new".into()));
        assert!(droplet(&json!({"id": "7", "name": "x", "status": "off"})).is_none());
        assert!(droplet(&json!({"id": 7, "status": "off"})).is_none());
    }

    #[test]
    fn pages_and_garbage() {
        let body = json!({"droplets": [{"id": 1, "name": "a", "status": "off"}],
            "links": {"pages": {"next": "https://api.digitalocean.com/v2/droplets?page=2"}}});
        let (s, next) = page(&body, "x").unwrap();
        assert_eq!(s.len(), 1);
        assert!(next);
        let (_, next) = page(&json!({"droplets": [], "links": {}}), "x").unwrap();
        assert!(!next);
        assert!(page(&json!({"droplets": [{"id": 1}]}), "x")
            .unwrap_err()
            .is_transient());
        assert!(page(&json!({}), "x").unwrap_err().is_transient());
    }

    #[test]
    fn verdicts_only_on_the_apis_own_bodies() {
        let f = DigitalOceanPower::fault(&answer(401, json!({"id": "unauthorized"})), "x");
        assert!(matches!(f, Fault::TokenRejected(_)));
        let f = DigitalOceanPower::fault(&answer(404, json!({"id": "not_found"})), "x");
        assert!(matches!(f, Fault::Refused(_)));
        assert!(DigitalOceanPower::fault(&answer(401, Value::Null), "x").is_transient());
        assert!(DigitalOceanPower::fault(&answer(503, Value::Null), "x").is_transient());
        assert!(matches!(
            DigitalOceanPower::fault(&answer(422, json!({"id": "unprocessable_entity"})), "x"),
            Fault::Busy(_)
        ));
    }

    #[test]
    fn names_are_escaped_in_queries() {
        assert_eq!(query_value("lb-1.example"), "lb-1.example");
        assert_eq!(query_value("a b&c=d"), "a%20b%26c%3Dd");
    }
}
