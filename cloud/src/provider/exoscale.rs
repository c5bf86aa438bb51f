//! Exoscale elastic IPs: the v2 API's `elastic-ip`, `instance` and `operation` calls and the
//! instance metadata service, as shared/docs/clouds.md describes them. Requests are signed
//! (`EXO2-HMAC-SHA256`, in `api`) with the API key and its secret. The API is per zone: the
//! zone is the `zone` parameter, else the metadata service's `availability-zone`.
//!
//! An elastic IP may be attached to several instances at once, and an attach does not detach
//! the others: `assign` attaches here, and the agent then `release`s (detaches) every other
//! holder. Who holds it is known from the instances (`GET /v2/instance`, each with its
//! `elastic-ips`); a monitor reads the one instance it started on (`GET /v2/instance/{id}`).

use super::{ActionId, ActionState, Endpoints, Fault, IpHolding, IpId, Provider, ServerId};
use crate::api::{Answer, ApiClient};
use cloudha_common::http::MetadataService;
use cloudha_common::{Deadline, HttpUrl, Secret};
use serde_json::Value;
use std::cell::OnceCell;
use std::net::IpAddr;
use std::time::Duration;

/// The metadata service (`instance-id`, `availability-zone`).
pub const METADATA_URL: &str = "http://169.254.169.254/latest/meta-data";

/// Exoscale, as the agent and its meta-data know it.
pub const CLOUD: super::Cloud = super::Cloud {
    name: "exoscale",
    aliases: &[],
    title: "Exoscale",
    server_word: "instance",
    ip_word: "elastic IP",
    api_url: "https://api-<zone>.exoscale.com",
    metadata_url: METADATA_URL,
    api_key: Some(
        "Exoscale's API key (EXO...), whose secret is api_token or api_token_file: requests are signed with it \
(EXO2-HMAC-SHA256), and the secret never crosses the network",
    ),
    zone: Some(super::Zone {
        api_url,
        describes: "the Exoscale zone of the elastic IP and the instances, e.g. ch-gva-2; the API is \
https://api-<zone>.exoscale.com. Not set: the metadata service's availability-zone",
    }),
    describes: "an elastic IP may be attached to several instances at once and an attach does not detach the others: \
start attaches it here, then detaches every other holder (each operation polled), and confirms that this instance alone holds it. \
When a detach fails for good or the time runs out, start detaches this instance again, so that two holders are never left \
by it, and fails with 1. Requests are signed with api_key and its secret. The metadata service does not list elastic IPs: \
a monitor with a record reads the one instance the start ran on, with its elastic IPs (one request, never a listing). \
validate-all at OCF_CHECK_LEVEL=10 lists the elastic IPs and the instances.",
    check_address,
    connect: |endpoints, secret| Box::new(Exoscale::new(endpoints, secret)),
};

/// The API of one zone (paths carry `/v2`): the API is per zone, and the elastic IP lives in
/// the instance's own zone. Err when `zone` is not a zone's name (lower-case letters, digits
/// and single hyphens, like `ch-gva-2`): it goes into a host name.
pub fn api_url(zone: &str) -> Result<String, String> {
    let ok = !zone.is_empty()
        && zone.len() <= 32
        && zone
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !zone.starts_with('-')
        && !zone.ends_with('-')
        && !zone.contains("--");
    if ok {
        Ok(format!("https://api-{zone}.exoscale.com"))
    } else {
        // The caller names the value ("parameter 'zone': '<value>' ..." completes it).
        Err("is not an Exoscale zone's name (like ch-gva-2)".to_string())
    }
}

/// Public IPv4 elastic IPs (configured as a /32 on `lo` of every node: anchorip).
pub fn check_address(ip: IpAddr) -> Result<(), String> {
    super::public_ipv4(
        ip,
        "is not a public address: Exoscale elastic IPs are public addresses",
        "is an IPv6 address: this agent floats IPv4 elastic IPs",
    )
}

/// What an error body says: JSON with one of `message`, `error`, `title`, `detail`, or
/// `errors` (a list; its first entry, a text or an object with `message`).
pub fn error_words(body: &Value) -> Option<String> {
    for key in ["message", "error", "title", "detail"] {
        if let Some(s) = body.get(key).and_then(Value::as_str) {
            return Some(s.to_string());
        }
    }
    let first = body.get("errors")?.as_array()?.first()?;
    first
        .as_str()
        .or_else(|| first.get("message").and_then(Value::as_str))
        .map(str::to_string)
}

/// Whether a body is in one of Exoscale's error shapes (and so from the API itself, not from a
/// proxy in the way).
fn is_api_error(body: &Value) -> bool {
    body.is_object() && error_words(body).is_some()
}

/// An answer other than 2xx, as a fault. Only an answer with an error body in Exoscale's
/// shapes is the API's word: a 4xx without one (a proxy's page) is transient. 401 and 403 are
/// the API refusing the key or its signature (6). 409 and 423 on a change are waits (`Busy`);
/// 429 waits the body's `retry_after` when given.
pub fn fault(answer: &Answer, what: &str) -> Fault {
    let said = error_words(&answer.body)
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    let status = answer.status;
    match status {
        401 | 403 if is_api_error(&answer.body) => Fault::TokenRejected(format!(
            "(HTTP {status}{said}; {what}): check api_key and the secret (api_token)"
        )),
        400..=499 if status != 429 && !is_api_error(&answer.body) => Fault::Transient(format!(
            "{what}: HTTP {status} without the API's error body (a proxy in the way?){said}"
        )),
        409 | 423 => Fault::Busy(format!("{what}: HTTP {status}{said}")),
        429 => Fault::RateLimited {
            wait: answer.rate_limit_wait().or_else(|| {
                answer
                    .body
                    .get("retry_after")
                    .and_then(Value::as_u64)
                    .map(Duration::from_secs)
            }),
            detail: format!("{what}: rate limited (HTTP 429{said})"),
        },
        _ => super::http_fault(answer, what, &said),
    }
}

/// On a read, a 409 or 423 is the same read again (transient), not a wait for an operation.
pub fn read_fault(answer: &Answer, what: &str) -> Fault {
    match fault(answer, what) {
        Fault::Busy(d) => Fault::Transient(d),
        f => f,
    }
}

/// An operation (`{"id","state",...}`): its id and state. `pending` is the only state that is
/// not final; `failure` and `timeout` are errors.
pub fn operation(body: &Value, what: &str) -> Result<(ActionId, ActionState), Fault> {
    let id = body
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| is_uuid(s));
    let state = match body.get("state").and_then(Value::as_str) {
        Some("pending") => Some(ActionState::InProgress),
        Some("success") => Some(ActionState::Completed),
        Some("failure" | "timeout") => Some(ActionState::Errored),
        _ => None,
    };
    match (id, state) {
        (Some(id), Some(state)) => Ok((ActionId(id.to_string()), state)),
        _ => Err(Fault::Transient(format!(
            "{what}: the answer carries no operation id and state"
        ))),
    }
}

/// The elastic IP `ip` in a `GET /v2/elastic-ip` answer: Ok(Some(id)), Ok(None) when the
/// complete listing does not hold it, Err when the answer is garbled.
pub fn find_ip(listing: &Value, ip: IpAddr, what: &str) -> Result<Option<IpId>, Fault> {
    let garbled = |why: &str| Fault::Transient(format!("{what}: garbled answer ({why})"));
    let list = listing
        .get("elastic-ips")
        .and_then(Value::as_array)
        .ok_or_else(|| garbled("no elastic-ips list"))?;
    for e in list {
        let about = e
            .get("ip")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<IpAddr>().ok());
        if about == Some(ip) {
            return match e.get("id").and_then(Value::as_str).filter(|s| is_uuid(s)) {
                Some(id) => Ok(Some(IpId(id.to_string()))),
                None => Err(garbled("the elastic IP has no id")),
            };
        }
    }
    Ok(None)
}

/// Whether an instance object (`GET /v2/instance/{id}`, or one of `GET /v2/instance`'s) lists
/// the elastic IP `id` in its `elastic-ips`. None when garbled (no id, no list).
pub fn instance_holds(instance: &Value, id: &IpId) -> Option<(ServerId, bool)> {
    let me = instance
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| is_uuid(s))?;
    let holds = match instance.get("elastic-ips") {
        // An instance without elastic IPs may leave the list out.
        None | Some(Value::Null) => false,
        Some(Value::Array(list)) => list
            .iter()
            .any(|e| e.get("id").and_then(Value::as_str) == Some(id.0.as_str())),
        Some(_) => return None,
    };
    Some((ServerId(me.to_string()), holds))
}

/// Every holder of the elastic IP `id` in a `GET /v2/instance` answer.
pub fn holders(listing: &Value, id: &IpId, what: &str) -> Result<Vec<ServerId>, Fault> {
    let garbled = |why: &str| Fault::Transient(format!("{what}: garbled answer ({why})"));
    let list = listing
        .get("instances")
        .and_then(Value::as_array)
        .ok_or_else(|| garbled("no instances list"))?;
    let mut found = Vec::new();
    for i in list {
        match instance_holds(i, id) {
            Some((who, true)) => found.push(who),
            Some((_, false)) => {}
            None => {
                return Err(garbled(
                    "an instance without id or with garbled elastic-ips",
                ))
            }
        }
    }
    Ok(found)
}

pub struct Exoscale {
    /// The API (built on first use when it depends on the zone in the metadata).
    api: OnceCell<ApiClient>,
    /// The configured API (`api_url`, or the `zone` parameter's), if any.
    base: Option<HttpUrl>,
    key: Option<String>,
    secret: Option<Secret>,
    metadata: MetadataService,
}

impl Exoscale {
    pub fn new(endpoints: &Endpoints, secret: Option<Secret>) -> Exoscale {
        Exoscale {
            api: OnceCell::new(),
            base: endpoints.api.clone(),
            key: endpoints.api_key.clone(),
            secret,
            metadata: MetadataService::new(endpoints.metadata.as_str()),
        }
    }

    /// The signed API client: of the configured URL, else of this instance's zone (one
    /// metadata read, once).
    pub(crate) fn api(&self, deadline: &Deadline) -> Result<&ApiClient, Fault> {
        if let Some(api) = self.api.get() {
            return Ok(api);
        }
        let (Some(key), Some(secret)) = (&self.key, &self.secret) else {
            return Err(Fault::Refused(
                "no API key and secret available for this call".into(),
            ));
        };
        let base = match &self.base {
            Some(base) => base.clone(),
            None => {
                let zone = self.metadata_leaf("availability-zone", deadline)?;
                let url = api_url(&zone).map_err(|why| {
                    Fault::Transient(format!(
                        "metadata service {}: '{zone}' {why}",
                        self.metadata.url("availability-zone")
                    ))
                })?;
                HttpUrl::parse(&url).map_err(|why| Fault::Refused(format!("{url} {why}")))?
            }
        };
        let loopback = !base.is_https();
        let client = ApiClient::signed(&base, key.clone(), secret.clone(), loopback);
        Ok(self.api.get_or_init(|| client))
    }

    fn metadata_leaf(&self, leaf: &str, deadline: &Deadline) -> Result<String, Fault> {
        let url = || self.metadata.url(leaf);
        match self
            .metadata
            .get(leaf, deadline)
            .map_err(|e| Fault::Transient(e.to_string()))?
        {
            Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            Some(_) => Err(Fault::Transient(format!(
                "metadata service {}: empty answer",
                url()
            ))),
            None => Err(Fault::Transient(format!(
                "metadata service {}: not found (HTTP 404)",
                url()
            ))),
        }
    }

    /// A read: 200's body, or the fault.
    fn get(&self, path: &str, what: &str, deadline: &Deadline) -> Result<Value, Fault> {
        let answer = self.api(deadline)?.get(path, deadline)?;
        match answer.status {
            200 => Ok(answer.body),
            _ => Err(read_fault(&answer, what)),
        }
    }

    /// Every holder of the elastic IP `id`: one `GET /v2/instance`.
    fn holders_of(&self, id: &IpId, d: &Deadline) -> Result<IpHolding, Fault> {
        let what = "GET /v2/instance";
        let body = self.get("/v2/instance", what, d)?;
        let mut all = holders(&body, id, what)?.into_iter();
        Ok(IpHolding {
            id: id.clone(),
            holder: all.next(),
            also: all.collect(),
            locked: false,
        })
    }

    /// `PUT /v2/elastic-ip/{id}:<command>` for `server`: the operation started.
    fn change(
        &self,
        found: &IpHolding,
        ip: IpAddr,
        command: &str,
        server: &ServerId,
        deadline: &Deadline,
    ) -> Result<(ActionId, ActionState), Fault> {
        let what = format!(
            "{command} {ip} (elastic IP {}) to instance {server}",
            found.id
        );
        if !is_uuid(&found.id.0) || !is_uuid(&server.0) {
            return Err(Fault::Refused(format!("{what}: an id is not a UUID")));
        }
        let body = serde_json::json!({"instance": {"id": server.0}});
        let answer = self.api(deadline)?.put(
            &format!("/v2/elastic-ip/{}:{command}", found.id),
            &body,
            deadline,
        )?;
        match answer.status {
            200 | 202 => operation(&answer.body, &what),
            _ => Err(fault(&answer, &what)),
        }
    }
}

impl Provider for Exoscale {
    fn server_word(&self) -> &'static str {
        CLOUD.server_word
    }

    fn server_id(&self, deadline: &Deadline) -> Result<ServerId, Fault> {
        let id = ("instance id", "a UUID", is_uuid as fn(&str) -> bool);
        super::metadata_server_id(&self.metadata, "instance-id", id, deadline)
    }

    /// Exoscale's metadata service does not list elastic IPs: it cannot tell.
    fn holds_locally(&self, _: IpAddr, _: &Deadline) -> Result<Option<bool>, Fault> {
        Ok(None)
    }

    /// Without the id: `GET /v2/elastic-ip` (matching `ip`), then the holders. With it: the
    /// holders only (one `GET /v2/instance`).
    fn holding(
        &self,
        ip: IpAddr,
        id: Option<&IpId>,
        deadline: &Deadline,
    ) -> Result<IpHolding, Fault> {
        let id = match id {
            Some(id) => id.clone(),
            None => {
                let what = "GET /v2/elastic-ip";
                let body = self.get("/v2/elastic-ip", what, deadline)?;
                find_ip(&body, ip, what)?.ok_or_else(|| {
                    Fault::IpUnknown(format!(
                        "{ip} is not an elastic IP of this account in this zone (GET /v2/elastic-ip)"
                    ))
                })?
            }
        };
        self.holders_of(&id, deadline)
    }

    fn assign(
        &self,
        found: &IpHolding,
        ip: IpAddr,
        server: &ServerId,
        deadline: &Deadline,
    ) -> Result<(ActionId, ActionState), Fault> {
        self.change(found, ip, "attach", server, deadline)
    }

    fn action_state(
        &self,
        ip: IpAddr,
        action: &ActionId,
        deadline: &Deadline,
    ) -> Result<ActionState, Fault> {
        let what = format!("GET /v2/operation/{action} ({ip})");
        if !is_uuid(&action.0) {
            return Err(Fault::Refused(format!("{what}: not a UUID")));
        }
        let answer = self
            .api(deadline)?
            .get(&format!("/v2/operation/{action}"), deadline)?;
        match answer.status {
            200 => match operation(&answer.body, &what)? {
                (id, state) if id == *action => Ok(state),
                (id, _) => Err(Fault::Transient(format!(
                    "{what}: garbled answer (about operation {id})"
                ))),
            },
            // The operation exists (we started it): a 404 here is the API catching up.
            404 => Err(Fault::Transient(format!("{what}: HTTP 404"))),
            _ => Err(read_fault(&answer, &what)),
        }
    }

    fn assign_keeps_others(&self) -> bool {
        true
    }

    fn release(
        &self,
        found: &IpHolding,
        ip: IpAddr,
        server: &ServerId,
        deadline: &Deadline,
    ) -> Result<(ActionId, ActionState), Fault> {
        self.change(found, ip, "detach", server, deadline)
    }

    /// One `GET /v2/instance/{server}`: whether its `elastic-ips` hold the IP's id.
    fn holds(
        &self,
        ip: IpAddr,
        id: Option<&IpId>,
        server: &ServerId,
        deadline: &Deadline,
    ) -> Result<IpHolding, Fault> {
        let Some(id) = id else {
            return self.holding(ip, None, deadline);
        };
        let what = format!("GET /v2/instance/{server}");
        if !is_uuid(&server.0) {
            return Err(Fault::Refused(format!("{what}: not a UUID")));
        }
        let body = self.get(&format!("/v2/instance/{server}"), &what, deadline)?;
        match instance_holds(&body, id) {
            Some((who, held)) if who == *server => Ok(IpHolding {
                id: id.clone(),
                holder: held.then(|| server.clone()),
                also: Vec::new(),
                locked: false,
            }),
            _ => Err(Fault::Transient(format!(
                "{what}: garbled answer (not that instance)"
            ))),
        }
    }
}

/// A UUID as Exoscale writes them (8-4-4-4-12 hexadecimal digits): ids go into paths.
pub use super::is_uuid;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const IP_ID: &str = "6c0ad3d7-0ba5-4c87-a6d4-1a1dd7b2a9a1";
    const ME: &str = "0b3f5e62-7b64-4c7c-9a38-2d0e4c1f7a10";
    const OTHER: &str = "9d6a1f0e-3c2b-4a5d-8e7f-6a5b4c3d2e1f";

    fn answer(status: u16, body: Value) -> Answer {
        Answer::of(status, body)
    }

    #[test]
    fn the_api_url_is_built_from_the_zone() {
        assert_eq!(
            api_url("ch-gva-2").unwrap(),
            "https://api-ch-gva-2.exoscale.com"
        );
        for bad in [
            "",
            "CH-GVA-2",
            "ch gva",
            "ch-gva-2.evil.example/",
            "-x",
            "a--b",
        ] {
            assert!(api_url(bad).is_err(), "{bad}");
        }
        cloudha_common::HttpUrl::parse(&api_url("de-fra-1").unwrap()).unwrap();
        cloudha_common::HttpUrl::parse(METADATA_URL).unwrap();
    }

    #[test]
    fn only_public_ipv4() {
        assert!(check_address("203.0.113.7".parse().unwrap()).is_ok());
        assert!(check_address("10.0.0.1".parse().unwrap()).is_err());
        assert!(check_address("2001:db8::1".parse().unwrap()).is_err());
    }

    #[test]
    fn every_error_shape_is_read() {
        for body in [
            json!({"message": "m"}),
            json!({"error": "m"}),
            json!({"title": "m"}),
            json!({"detail": "m"}),
            json!({"errors": ["m"]}),
            json!({"errors": [{"message": "m"}]}),
        ] {
            assert_eq!(error_words(&body).as_deref(), Some("m"), "{body}");
        }
        assert_eq!(error_words(&Value::Null), None);
        assert_eq!(error_words(&json!({"errors": []})), None);
    }

    #[test]
    fn rejected_credentials_are_6_only_from_the_api() {
        for status in [401, 403] {
            assert!(matches!(
                fault(
                    &answer(status, json!({"message": "invalid signature"})),
                    "x"
                ),
                Fault::TokenRejected(_)
            ));
            assert!(fault(&answer(status, Value::Null), "x").is_transient());
        }
        for status in [409, 423] {
            assert!(matches!(
                fault(&answer(status, json!({"message": "m"})), "x"),
                Fault::Busy(_)
            ));
            assert!(read_fault(&answer(status, json!({"message": "m"})), "x").is_transient());
        }
        match fault(&answer(429, json!({"message": "m", "retry_after": 7})), "x") {
            Fault::RateLimited { wait, .. } => assert_eq!(wait, Some(Duration::from_secs(7))),
            f => panic!("{f:?}"),
        }
        for status in [500, 502, 503, 504] {
            assert!(fault(&answer(status, Value::Null), "x").is_transient());
        }
        assert!(matches!(
            fault(&answer(400, json!({"message": "m"})), "x"),
            Fault::Refused(_)
        ));
        // A proxy's page is not the API's word.
        for status in [400, 404, 405] {
            assert!(fault(&answer(status, Value::Null), "x").is_transient());
        }
    }

    #[test]
    fn operations_parse() {
        let op = |state: &str| json!({"id": IP_ID, "state": state, "reference": {"id": ME}});
        for (state, want) in [
            ("pending", ActionState::InProgress),
            ("success", ActionState::Completed),
            ("failure", ActionState::Errored),
            ("timeout", ActionState::Errored),
        ] {
            assert_eq!(
                operation(&op(state), "x").unwrap(),
                (ActionId(IP_ID.into()), want)
            );
        }
        assert!(operation(&op("done"), "x").unwrap_err().is_transient());
        assert!(operation(&json!({"id": "1", "state": "pending"}), "x").is_err());
    }

    #[test]
    fn the_ip_and_its_holders_are_found() {
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let listing = json!({"elastic-ips": [
            {"id": OTHER, "ip": "198.51.100.1"},
            {"id": IP_ID, "ip": "203.0.113.7", "addressfamily": "inet4"},
        ]});
        let id = find_ip(&listing, ip, "x").unwrap().unwrap();
        assert_eq!(id, IpId(IP_ID.into()));
        assert_eq!(find_ip(&json!({"elastic-ips": []}), ip, "x").unwrap(), None);
        assert!(find_ip(&json!({}), ip, "x").is_err());
        let instances = json!({"instances": [
            {"id": ME, "elastic-ips": [{"id": IP_ID}]},
            {"id": OTHER, "elastic-ips": [{"id": IP_ID}, {"id": OTHER}]},
            {"id": "1c2d3e4f-0000-4000-8000-000000000000"},
        ]});
        assert_eq!(
            holders(&instances, &id, "x").unwrap(),
            vec![ServerId(ME.into()), ServerId(OTHER.into())]
        );
        assert!(holders(&json!({"instances": [{"elastic-ips": []}]}), &id, "x").is_err());
        assert_eq!(
            instance_holds(&json!({"id": ME, "elastic-ips": []}), &id),
            Some((ServerId(ME.into()), false))
        );
    }

    #[test]
    fn uuids() {
        assert!(is_uuid(IP_ID));
        assert!(!is_uuid("1"));
        assert!(!is_uuid("6c0ad3d7-0ba5-4c87-a6d4-1a1dd7b2a9a/"));
    }
}
