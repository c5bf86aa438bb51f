//! Hetzner Cloud servers' power (shared/docs/fencing.md §6): `GET /v1/servers[/{id}]`,
//! `POST /v1/servers/{id}/actions/poweroff` (hard: "equivalent to pulling the power cord") or
//! `poweron`, `GET /v1/actions/{id}`, and the server's running actions for the race check.

use super::{Power, PowerState, Server, Switch};
use crate::api::{Answer, ApiClient};
use crate::provider::hetzner::Hetzner;
use crate::provider::{
    action_in, action_read, http_fault, ActionId, ActionState, Endpoints, Fault, Provider, ServerId,
};
use cloudha_common::{Deadline, Secret};
use serde_json::Value;

/// The most servers a page holds (the API's maximum).
const PER_PAGE: u32 = 50;
/// A listing stops there: 5,000 servers.
const MAX_PAGES: u32 = 100;

/// Hetzner's words for an action's status.
const STATES: [(&str, ActionState); 3] = [
    ("running", ActionState::InProgress),
    ("success", ActionState::Completed),
    ("error", ActionState::Errored),
];

/// Commands that take a server down.
const DOWN: [&str; 4] = ["poweroff", "reset", "shutdown", "reboot"];

pub struct HetznerPower {
    api: ApiClient,
    /// The floating-IP provider, for its metadata service (this server's id).
    metadata: Hetzner,
}

impl HetznerPower {
    pub fn new(endpoints: &Endpoints, token: Secret) -> Result<HetznerPower, String> {
        let api = endpoints
            .bearer_client(Some(token))
            .ok_or("no API URL for Hetzner")?;
        Ok(HetznerPower {
            api,
            metadata: Hetzner::new(endpoints, None),
        })
    }

    /// An answer other than 2xx: 401 and 404 are verdicts only with Hetzner's own error body
    /// (`{"error": {"code": ...}}`); 423 `locked` and 409 `conflict`: an action runs.
    fn fault(answer: &Answer, what: &str) -> Fault {
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
            404 if api_says("not_found") => {
                Fault::Refused(format!("{what}: no such server (HTTP 404{said})"))
            }
            401 | 404 => Fault::Transient(format!(
                "{what}: HTTP {status} without the API's error body (a proxy in the way?){said}"
            )),
            409 | 423 => Fault::Busy(format!("{what}: an action runs (HTTP {status}{said})")),
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

    /// One page of `/v1/servers` (`query` without paging) and whether another follows.
    fn page(&self, query: &str, n: u32, deadline: &Deadline) -> Result<(Vec<Server>, bool), Fault> {
        let path = format!("/v1/servers?{query}per_page={PER_PAGE}&page={n}");
        let body = self.get(&path, deadline)?;
        let garbled = || Fault::Transient(format!("GET {path}: garbled answer (no servers)"));
        let servers = body
            .get("servers")
            .and_then(Value::as_array)
            .ok_or_else(garbled)?
            .iter()
            .map(server)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(garbled)?;
        let next = body
            .get("meta")
            .and_then(|m| m.get("pagination"))
            .and_then(|p| p.get("next_page"))
            .is_some_and(Value::is_u64);
        Ok((servers, next))
    }
}

/// `{"id": 42, "name": "lb1", "status": "running"}` as a server; None when garbled.
fn server(v: &Value) -> Option<Server> {
    let id = v.get("id")?.as_u64()?;
    let name = v.get("name")?.as_str()?.to_string();
    let state = match v.get("status")?.as_str()? {
        "running" => PowerState::On,
        "off" => PowerState::Off,
        other => PowerState::Other(other.to_string()),
    };
    Some(Server {
        id: ServerId(id.to_string()),
        name,
        state,
    })
}

/// A server name as a query value: Hetzner's names are `[a-zA-Z0-9.-]`; anything else is
/// percent-encoded.
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

impl Power for HetznerPower {
    fn server_word(&self) -> &'static str {
        "server"
    }

    fn own_id(&self, deadline: &Deadline) -> Result<ServerId, Fault> {
        self.metadata.server_id(deadline)
    }

    fn find(&self, plug: &str, deadline: &Deadline) -> Result<Server, Fault> {
        let plug = plug.trim();
        if crate::provider::is_number(plug) {
            match self.server(&ServerId(plug.to_string()), deadline) {
                Err(Fault::Refused(_)) => {} // no server with that id: maybe a name
                other => return other,
            }
        }
        let (found, _) = self.page(&format!("name={}&", query_value(plug)), 1, deadline)?;
        let words = ("server", "named", "numbered", "project");
        super::the_one_named(found, plug, words)
    }

    fn server(&self, id: &ServerId, deadline: &Deadline) -> Result<Server, Fault> {
        let path = format!("/v1/servers/{id}");
        let body = self.get(&path, deadline)?;
        body.get("server")
            .and_then(server)
            .filter(|s| s.id == *id)
            .ok_or_else(|| Fault::Transient(format!("GET {path}: garbled answer")))
    }

    fn list(&self, deadline: &Deadline) -> Result<Vec<Server>, Fault> {
        let mut all = Vec::new();
        for n in 1..=MAX_PAGES {
            let (servers, next) = self.page("", n, deadline)?;
            all.extend(servers);
            if !next {
                return Ok(all);
            }
        }
        Err(Fault::Refused(format!(
            "more than {} servers: listing stopped",
            PER_PAGE * MAX_PAGES
        )))
    }

    fn switch(
        &self,
        id: &ServerId,
        to: Switch,
        deadline: &Deadline,
    ) -> Result<(ActionId, ActionState), Fault> {
        let command = match to {
            Switch::Off => "poweroff",
            Switch::On => "poweron",
        };
        let path = format!("/v1/servers/{id}/actions/{command}");
        let what = format!("{command} server {id}");
        // No parameters: an empty object (hcloud-go sends none; the API reads JSON bodies).
        let answer = self.api.post(&path, &serde_json::json!({}), deadline)?;
        match answer.status {
            200 | 201 => action_in(&answer.body, &STATES, &what),
            _ => Err(Self::fault(&answer, &what)),
        }
    }

    fn action_state(&self, action: &ActionId, deadline: &Deadline) -> Result<ActionState, Fault> {
        let path = format!("/v1/actions/{action}");
        let what = format!("GET {path}");
        let answer = self.api.get(&path, deadline)?;
        action_read(&answer, action, &STATES, &what, || {
            Self::fault(&answer, &what)
        })
    }

    fn going_down(&self, id: &ServerId, deadline: &Deadline) -> Result<Option<String>, Fault> {
        let path = format!("/v1/servers/{id}/actions?status=running");
        let body = self.get(&path, deadline)?;
        let actions = body
            .get("actions")
            .and_then(Value::as_array)
            .ok_or_else(|| Fault::Transient(format!("GET {path}: garbled answer")))?;
        Ok(actions.iter().find_map(|a| {
            let command = a.get("command")?.as_str()?;
            let running = a.get("status")?.as_str()? == "running";
            (running && DOWN.contains(&command)).then(|| command.to_string())
        }))
    }

    fn check_token(&self, deadline: &Deadline) -> Result<(), Fault> {
        self.get("/v1/servers?per_page=1", deadline).map(|_| ())
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
    fn servers_parse_with_their_power() {
        let s = server(&json!({"id": 42, "name": "lb1", "status": "running"})).unwrap();
        assert_eq!(s.state, PowerState::On);
        let s = server(&json!({"id": 42, "name": "lb1", "status": "off"})).unwrap();
        assert_eq!(s.state, PowerState::Off);
        let s = server(&json!({"id": 42, "name": "lb1", "status": "stopping"})).unwrap();
        assert_eq!(s.state, PowerState::Other("stopping".into()));
        assert!(server(&json!({"id": "42", "name": "lb1", "status": "off"})).is_none());
    }

    #[test]
    fn verdicts_only_on_hetzners_own_bodies() {
        let unauthorized =
            json!({"error": {"code": "unauthorized", "message": "unable to authenticate"}});
        assert!(matches!(
            HetznerPower::fault(&answer(401, unauthorized), "x"),
            Fault::TokenRejected(_)
        ));
        let locked = json!({"error": {"code": "locked", "message": "server is locked"}});
        assert!(matches!(
            HetznerPower::fault(&answer(423, locked), "x"),
            Fault::Busy(_)
        ));
        assert!(HetznerPower::fault(&answer(401, Value::Null), "x").is_transient());
        assert!(HetznerPower::fault(&answer(502, Value::Null), "x").is_transient());
    }
}
