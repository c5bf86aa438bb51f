//! Vultr instances' power (shared/docs/fencing.md §6): `GET /v2/instances[/{id}]`
//! (`power_status` running / stopped), `POST /v2/instances/{id}/halt` or `/start` (no body
//! needed, answered without one). There is no action object: the "action" this module hands
//! the agent names the call and the instance, and its state is the instance's `power_status`
//! (done once it reached the asked state). A `start` of a running instance restarts it
//! (govultr), so `switch` reads `power_status` first and never starts a running instance.
//! Whether an instance's `halt` is a hard power-off is UNCONFIRMED: the agent waits until the
//! API says `stopped` either way.

use super::{Power, PowerState, Server, Switch};
use crate::api::Answer;
use crate::provider::vultr::{error_words, query_value, Vultr};
use crate::provider::{
    http_fault, is_uuid, ActionId, ActionState, Endpoints, Fault, Provider, ServerId,
};
use cloudha_common::{Deadline, Secret};
use serde_json::Value;
use std::cell::Cell;
use std::time::{Duration, Instant};

/// The largest page the API gives.
const PER_PAGE: u32 = 500;
/// A listing stops there: 50,000 instances.
const MAX_PAGES: u32 = 100;
/// A halt with no effect after this long counts as dropped, and is asked again: with no action
/// object, nothing else would tell. A halt is safe to repeat (a start is not: never repeated).
const HALT_AGAIN_AFTER: Duration = Duration::from_secs(5);

pub struct VultrPower {
    api: crate::api::ApiClient,
    /// The floating-IP provider: its metadata service (this instance's id) and its check that
    /// an error never quotes the token.
    provider: Vultr,
    /// When the last halt was answered.
    halted: Cell<Option<Instant>>,
}

/// An answer other than 2xx. 401 and 403 with Vultr's error body are the API refusing the
/// key (403: "Unauthorized IP address", the key's access list); 404 with it: no such instance.
/// Without the body (a proxy in the way) they are transient.
fn power_fault(answer: &Answer, what: &str) -> Fault {
    let said = error_words(&answer.body)
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    let api_says = error_words(&answer.body).is_some();
    let status = answer.status;
    match status {
        401 | 403 if api_says => Fault::TokenRejected(format!("(HTTP {status}{said}; {what})")),
        404 if api_says => Fault::Refused(format!("{what}: no such instance (HTTP 404{said})")),
        401 | 403 | 404 => Fault::Transient(format!(
            "{what}: HTTP {status} without the API's error body (a proxy in the way?){said}"
        )),
        _ => http_fault(answer, what, &said),
    }
}

/// `{"id": "<UUID>", "label": "lb1", "power_status": "running"}` as a server; None when
/// garbled.
fn server(v: &Value) -> Option<Server> {
    let id = v.get("id")?.as_str().filter(|s| is_uuid(s))?;
    let name = v.get("label")?.as_str()?.to_string();
    let state = match v.get("power_status")?.as_str()? {
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

/// The action handed to the agent: `halt <UUID>` or `start <UUID>`.
fn action_of(command: &str, id: &ServerId) -> ActionId {
    ActionId(format!("{command} {id}"))
}

impl VultrPower {
    pub fn new(endpoints: &Endpoints, token: Secret) -> Result<VultrPower, String> {
        let api = endpoints
            .bearer_client(Some(token.clone()))
            .ok_or("no API URL for Vultr")?;
        Ok(VultrPower {
            api,
            provider: Vultr::new(endpoints, Some(token)),
            halted: Cell::new(None),
        })
    }

    fn get(&self, path: &str, deadline: &Deadline) -> Result<Value, Fault> {
        let answer = self.provider.unquoted(self.api.get(path, deadline)?);
        match answer.status {
            200 => Ok(answer.body),
            _ => Err(power_fault(&answer, &format!("GET {path}"))),
        }
    }

    /// One page of `/v2/instances` (`query` without paging) and the next page's cursor.
    fn page(
        &self,
        query: &str,
        cursor: &str,
        deadline: &Deadline,
    ) -> Result<(Vec<Server>, Option<String>), Fault> {
        let mut path = format!("/v2/instances?{query}per_page={PER_PAGE}");
        if !cursor.is_empty() {
            path.push_str(&format!("&cursor={}", query_value(cursor)));
        }
        let body = self.get(&path, deadline)?;
        let garbled = |why: &str| Fault::Transient(format!("GET {path}: garbled answer ({why})"));
        let servers = body
            .get("instances")
            .and_then(Value::as_array)
            .ok_or_else(|| garbled("no instances"))?
            .iter()
            .map(server)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| garbled("an instance without id, label or power_status"))?;
        let next = body
            .get("meta")
            .and_then(|m| m.get("links"))
            .and_then(|l| l.get("next"))
            .and_then(Value::as_str);
        match next {
            Some("") => Ok((servers, None)),
            Some(n) if n != cursor => Ok((servers, Some(n.to_string()))),
            _ => Err(garbled("no usable meta.links.next")),
        }
    }

    /// Every page of `/v2/instances` with `query`.
    fn all(&self, query: &str, deadline: &Deadline) -> Result<Vec<Server>, Fault> {
        let mut all = Vec::new();
        let mut cursor = String::new();
        for _ in 0..MAX_PAGES {
            let (servers, next) = self.page(query, &cursor, deadline)?;
            all.extend(servers);
            match next {
                Some(n) => cursor = n,
                None => return Ok(all),
            }
        }
        Err(Fault::Refused(format!(
            "more than {} instances: listing stopped",
            PER_PAGE * MAX_PAGES
        )))
    }
}

impl Power for VultrPower {
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
                Err(Fault::Refused(_)) => {} // no instance with that id: maybe a label
                other => return other,
            }
        }
        let query = format!("label={}&", query_value(plug));
        let words = ("instance", "labelled", "with the id", "account");
        super::the_one_named(self.all(&query, deadline)?, plug, words)
    }

    fn server(&self, id: &ServerId, deadline: &Deadline) -> Result<Server, Fault> {
        if !is_uuid(&id.0) {
            return Err(Fault::Refused(format!("'{id}' is not an instance id")));
        }
        let path = format!("/v2/instances/{id}");
        let body = self.get(&path, deadline)?;
        body.get("instance")
            .and_then(server)
            .filter(|s| s.id == *id)
            .ok_or_else(|| Fault::Transient(format!("GET {path}: garbled answer")))
    }

    fn list(&self, deadline: &Deadline) -> Result<Vec<Server>, Fault> {
        self.all("", deadline)
    }

    /// Halt, or start a stopped instance. A start is asked only after a read says the
    /// instance is `stopped`: a start of a running one would restart it. Answered with no
    /// action: the returned one is polled through the instance.
    fn switch(
        &self,
        id: &ServerId,
        to: Switch,
        deadline: &Deadline,
    ) -> Result<(ActionId, ActionState), Fault> {
        let command = match to {
            Switch::Off => "halt",
            Switch::On => "start",
        };
        let action = action_of(command, id);
        if to == Switch::On {
            match self.server(id, deadline)?.state {
                PowerState::On => return Ok((action, ActionState::Completed)),
                PowerState::Off => {}
                other => {
                    return Err(Fault::Busy(format!(
                        "instance {id} is {other}: not started until it is stopped"
                    )))
                }
            }
        }
        let what = format!("{command} instance {id}");
        let answer = self.provider.unquoted(self.api.post(
            &format!("/v2/instances/{id}/{command}"),
            &serde_json::json!({}),
            deadline,
        )?);
        match answer.status {
            200..=299 => {
                if to == Switch::Off {
                    self.halted.set(Some(Instant::now()));
                }
                Ok((action, ActionState::InProgress))
            }
            _ => Err(power_fault(&answer, &what)),
        }
    }

    /// Done once the instance's `power_status` is what the call asked for; in progress until
    /// then (the agent's deadline bounds it), except a halt still without effect after
    /// `HALT_AGAIN_AFTER`: errored, so that the agent asks again.
    fn action_state(&self, action: &ActionId, deadline: &Deadline) -> Result<ActionState, Fault> {
        let (command, id) = action
            .0
            .split_once(' ')
            .ok_or_else(|| Fault::Refused(format!("'{action}' is not a Vultr power call")))?;
        let want = match command {
            "halt" => PowerState::Off,
            "start" => PowerState::On,
            _ => {
                return Err(Fault::Refused(format!(
                    "'{action}' is not a Vultr power call"
                )))
            }
        };
        let s = self.server(&ServerId(id.to_string()), deadline)?;
        let dropped = want == PowerState::Off
            && self
                .halted
                .get()
                .is_some_and(|t| t.elapsed() >= HALT_AGAIN_AFTER);
        Ok(if s.state == want {
            ActionState::Completed
        } else if dropped && s.state == PowerState::On {
            ActionState::Errored
        } else {
            ActionState::InProgress
        })
    }

    /// Vultr has no action list: the race check reads the instance's own `power_status`.
    fn going_down(&self, _: &ServerId, _: &Deadline) -> Result<Option<String>, Fault> {
        Ok(None)
    }

    fn check_token(&self, deadline: &Deadline) -> Result<(), Fault> {
        self.get("/v2/instances?per_page=1", deadline).map(|_| ())
    }

    /// 30 requests a second per source address (fencing.md §6): no 50 ms polling.
    fn fast_polling(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn instances_parse_with_their_power_status() {
        let id = "5e7f0a11-0000-4000-8000-000000000001";
        let s = server(&json!({"id": id, "label": "lb1", "power_status": "running"})).unwrap();
        assert_eq!((s.name.as_str(), s.state), ("lb1", PowerState::On));
        let s = server(&json!({"id": id, "label": "lb1", "power_status": "stopped"})).unwrap();
        assert_eq!(s.state, PowerState::Off);
        assert!(server(&json!({"id": "1", "label": "x", "power_status": "stopped"})).is_none());
    }

    #[test]
    fn credentials_and_unknown_instances_only_on_vultrs_own_bodies() {
        let body = |m: &str| json!({"error": m, "status": 401});
        let f = power_fault(&Answer::of(401, body("Invalid API token.")), "x");
        assert!(matches!(f, Fault::TokenRejected(_)), "{f}");
        let f = power_fault(&Answer::of(403, body("Unauthorized IP address")), "x");
        assert!(matches!(f, Fault::TokenRejected(_)), "{f}");
        let f = power_fault(&Answer::of(404, body("Not found")), "x");
        assert!(matches!(f, Fault::Refused(_)), "{f}");
        assert!(power_fault(&Answer::of(401, Value::Null), "x").is_transient());
        assert!(power_fault(&Answer::of(503, Value::Null), "x").is_transient());
    }
}
