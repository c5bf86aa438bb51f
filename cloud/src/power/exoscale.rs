//! Exoscale instances' power (shared/docs/fencing.md §6, "Exoscale v2"): `GET /v2/instance[/{id}]`
//! (`state` running / stopped / starting / stopping / ...), `PUT /v2/instance/{id}:stop` or
//! `:start`, each answered with an operation polled at `GET /v2/operation/{id}`. Never `:reset`
//! (it re-installs the instance). Requests are signed with the API key and its secret, through
//! the floating-IP provider's client (its zone rules included). Whether `:stop` is a hard
//! power-off is UNCONFIRMED: the agent waits until the API says `stopped` either way.

use super::{Power, PowerState, Server, Switch};
use crate::provider::exoscale::{fault, operation, read_fault, Exoscale};
use crate::provider::{is_uuid, ActionId, ActionState, Endpoints, Fault, Provider, ServerId};
use cloudha_common::{Deadline, Secret};
use serde_json::Value;

pub struct ExoscalePower {
    provider: Exoscale,
}

impl ExoscalePower {
    pub fn new(endpoints: &Endpoints, secret: Secret) -> Result<ExoscalePower, String> {
        if endpoints.api_key.is_none() {
            return Err("no API key for Exoscale (api_key)".into());
        }
        Ok(ExoscalePower {
            provider: Exoscale::new(endpoints, Some(secret)),
        })
    }

    fn get(&self, path: &str, deadline: &Deadline) -> Result<Value, Fault> {
        let answer = self.provider.api(deadline)?.get(path, deadline)?;
        match answer.status {
            200 => Ok(answer.body),
            404 if crate::provider::exoscale::error_words(&answer.body).is_some()
                && path.starts_with("/v2/instance/") =>
            {
                Err(Fault::Refused(format!(
                    "GET {path}: no such instance in this zone (HTTP 404)"
                )))
            }
            _ => Err(read_fault(&answer, &format!("GET {path}"))),
        }
    }
}

/// `{"id": "<UUID>", "name": "lb1", "state": "running"}` as a server; None when garbled.
fn server(v: &Value) -> Option<Server> {
    let id = v.get("id")?.as_str().filter(|s| is_uuid(s))?;
    let name = v.get("name")?.as_str()?.to_string();
    let state = match v.get("state")?.as_str()? {
        "running" => PowerState::On,
        "stopped" => PowerState::Off,
        other => PowerState::Other(other.to_string()),
    };
    Some(Server {
        id: ServerId(id.to_string()),
        name,
        state,
    })
}

impl Power for ExoscalePower {
    fn server_word(&self) -> &'static str {
        "instance"
    }

    fn own_id(&self, deadline: &Deadline) -> Result<ServerId, Fault> {
        self.provider.server_id(deadline)
    }

    fn find(&self, plug: &str, deadline: &Deadline) -> Result<Server, Fault> {
        let plug = plug.trim();
        if is_uuid(plug) {
            match self.server(&ServerId(plug.to_ascii_lowercase()), deadline) {
                Err(Fault::Refused(_)) => {} // no instance with that id: maybe a name
                other => return other,
            }
        }
        // No name filter is documented: the zone's listing, matched here.
        let words = ("instance", "named", "with the id", "zone");
        super::the_one_named(self.list(deadline)?, plug, words)
    }

    fn server(&self, id: &ServerId, deadline: &Deadline) -> Result<Server, Fault> {
        if !is_uuid(&id.0) {
            return Err(Fault::Refused(format!("'{id}' is not an instance id")));
        }
        let path = format!("/v2/instance/{id}");
        let body = self.get(&path, deadline)?;
        server(&body)
            .filter(|s| s.id == *id)
            .ok_or_else(|| Fault::Transient(format!("GET {path}: garbled answer")))
    }

    /// One `GET /v2/instance`: the zone's instances (the API pages nothing here).
    fn list(&self, deadline: &Deadline) -> Result<Vec<Server>, Fault> {
        let path = "/v2/instance";
        let body = self.get(path, deadline)?;
        let garbled = || Fault::Transient(format!("GET {path}: garbled answer (no instances)"));
        body.get("instances")
            .and_then(Value::as_array)
            .ok_or_else(garbled)?
            .iter()
            .map(server)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(garbled)
    }

    fn switch(
        &self,
        id: &ServerId,
        to: Switch,
        deadline: &Deadline,
    ) -> Result<(ActionId, ActionState), Fault> {
        if !is_uuid(&id.0) {
            return Err(Fault::Refused(format!("'{id}' is not an instance id")));
        }
        let command = match to {
            Switch::Off => "stop",
            Switch::On => "start",
        };
        let what = format!("{command} instance {id}");
        // `:start` takes an optional body (a rescue profile); `:stop` none: an empty object.
        let answer = self.provider.api(deadline)?.put(
            &format!("/v2/instance/{id}:{command}"),
            &serde_json::json!({}),
            deadline,
        )?;
        match answer.status {
            200 | 202 => operation(&answer.body, &what),
            404 if crate::provider::exoscale::error_words(&answer.body).is_some() => Err(
                Fault::Refused(format!("{what}: no such instance in this zone (HTTP 404)")),
            ),
            _ => Err(fault(&answer, &what)),
        }
    }

    fn action_state(&self, action: &ActionId, deadline: &Deadline) -> Result<ActionState, Fault> {
        let path = format!("/v2/operation/{action}");
        let body = self.get(&path, deadline)?;
        let (id, state) = operation(&body, &format!("GET {path}"))?;
        if id != *action {
            return Err(Fault::Transient(format!(
                "GET {path}: the answer is about operation {id}"
            )));
        }
        Ok(state)
    }

    /// Exoscale lists no operations of an instance: the race check reads the instance's own
    /// `state` (stopping is not running), nothing more.
    fn going_down(&self, _: &ServerId, _: &Deadline) -> Result<Option<String>, Fault> {
        Ok(None)
    }

    fn check_token(&self, deadline: &Deadline) -> Result<(), Fault> {
        self.get("/v2/instance", deadline).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn instances_parse_with_their_state() {
        let id = "1e57a4ce-0000-4000-8000-000000000001";
        let s = server(&json!({"id": id, "name": "lb1", "state": "running"})).unwrap();
        assert_eq!(s.state, PowerState::On);
        let s = server(&json!({"id": id, "name": "lb1", "state": "stopped"})).unwrap();
        assert_eq!(s.state, PowerState::Off);
        let s = server(&json!({"id": id, "name": "lb1", "state": "stopping"})).unwrap();
        assert_eq!(s.state, PowerState::Other("stopping".into()));
        assert!(server(&json!({"id": "42", "name": "lb1", "state": "running"})).is_none());
    }
}
