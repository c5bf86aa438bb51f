//! Vultr reserved IPs: the v2 API's `reserved-ips` calls and the instance metadata service, as
//! shared/docs/clouds.md describes them. The API addresses a reserved IP by its UUID, found by
//! listing (cursor pages) and matching `subnet`; a start keeps it in its record, so that a
//! monitor reads the one IP by id. Moving the IP is two calls, detach from the holder, then
//! attach here, each answered 204 before the platform is done: nothing to poll but the IP
//! itself, re-read until its `instance_id` is this instance. An attach refused because the IP
//! is still attached (a detach in flight, or another start's attach) is a wait (`Fault::Busy`).
//! Whether the metadata service lists attached reserved IPs is unconfirmed: a monitor reads the
//! API.

use super::{ActionId, ActionState, Endpoints, Fault, IpHolding, IpId, Provider, ServerId};
use crate::api::{Answer, ApiClient};
use cloudha_common::http::MetadataService;
use cloudha_common::{Deadline, Secret};
use serde_json::Value;
use std::cell::RefCell;
use std::net::IpAddr;

/// The API (paths carry `/v2`).
pub const API_URL: &str = "https://api.vultr.com";
/// The instance metadata service (single values under it; `/v1.json` is the whole tree).
pub const METADATA_URL: &str = "http://169.254.169.254/v1";
/// The largest page the API gives.
const PER_PAGE: u32 = 500;
/// More pages than any account holds (500 × 100): a listing that never ends is garbled.
const MAX_PAGES: u32 = 100;

/// Vultr, as the agent and its meta-data know it.
pub const CLOUD: super::Cloud = super::Cloud {
    name: "vultr",
    aliases: &[],
    title: "Vultr",
    server_word: "instance",
    ip_word: "reserved IP",
    api_url: API_URL,
    metadata_url: METADATA_URL,
    api_key: None,
    zone: None,
    describes: "the reserved IP's id is found by listing (every page), then start detaches it from its holder and \
attaches it here. Both calls are answered before the platform is done: an attach refused while the IP is still attached \
(the detach in flight) is retried, and the agent re-reads the IP until it names this instance. The API key is the token \
(Bearer). Whether the metadata service lists reserved IPs is unconfirmed: a monitor with a record reads the one IP by \
the id the start recorded (one request, never a listing). validate-all at OCF_CHECK_LEVEL=10 lists the reserved IPs.",
    check_address,
    connect: |endpoints, token| Box::new(Vultr::new(endpoints, token)),
};

/// Reserved IPv4 addresses (a reserved IPv6 is a /64 subnet, which this agent does not float).
pub fn check_address(ip: IpAddr) -> Result<(), String> {
    super::public_ipv4(
        ip,
        "is not a public address: Vultr reserved IPs are public IPv4 addresses",
        "is an IPv6 address: Vultr reserved IPv6 are /64 subnets, which this agent does not float; use a reserved IPv4",
    )
}

// Vultr's ids (instances, reserved IPs) are UUIDs; anything else is garbled.
use super::is_uuid;

/// What an error says: `{"error": "...", "status": N}`, or a `message`. Vultr's error body
/// shape is unconfirmed (clouds.md): a body without either says nothing.
pub(crate) fn error_words(body: &Value) -> Option<&str> {
    body.get("error")
        .and_then(Value::as_str)
        .or_else(|| body.get("message").and_then(Value::as_str))
}

/// Whether a refusal says the IP is still attached, or a change to it is in progress: the
/// platform has not finished an earlier detach or attach (terraform-provider-vultr #77).
fn in_flight(answer: &Answer) -> bool {
    matches!(answer.status, 400 | 409 | 412 | 422)
        && error_words(&answer.body).is_some_and(|m| {
            let m = m.to_ascii_lowercase();
            m.contains("already attached") || m.contains("in progress")
        })
}

/// Whether a refused detach says there was nothing to detach (someone did it already).
fn not_attached(answer: &Answer) -> bool {
    matches!(answer.status, 400 | 409 | 412 | 422)
        && error_words(&answer.body)
            .is_some_and(|m| m.to_ascii_lowercase().contains("not attached"))
}

/// A refused detach: None when there was nothing to detach (someone did it already: attach
/// next), else the fault. A detach made `again` (this action made one of the IP from the same
/// holder, and the holder still shows) is refused because the first is in flight, whatever the
/// words of a refusal (4xx but 401, 403, 404, 429): a wait. The first one refused in words
/// this agent does not know is the API's verdict.
fn detach_refused(answer: &Answer, what: &str, ip: IpAddr, again: bool) -> Option<Fault> {
    if not_attached(answer) {
        return None;
    }
    let status = answer.status;
    let said = error_words(&answer.body)
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    Some(match fault(answer, what, ip, false) {
        Fault::Refused(_)
            if again && (400..500).contains(&status) && ![401, 403, 404, 429].contains(&status) =>
        {
            Fault::Busy(format!(
                "{what}: the detach made before is still in flight (HTTP {status}{said})"
            ))
        }
        f => f,
    })
}

/// An answer other than 2xx, as a fault. A 401, or a 404 of the IP itself (`ip_read`), is the
/// API's verdict (6) only with its error body; from anything else in the way, transient. A
/// refusal because the IP is still attached or changing is a wait. 429 (over 30 requests a
/// second) carries no documented header: the agent's own backoff waits.
fn fault(answer: &Answer, what: &str, ip: IpAddr, ip_read: bool) -> Fault {
    let said = error_words(&answer.body)
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    let api_says = error_words(&answer.body).is_some();
    let status = answer.status;
    match status {
        401 if api_says => Fault::TokenRejected(format!("(HTTP 401{said}; {what})")),
        404 if api_says && ip_read => Fault::IpUnknown(format!(
            "{ip} is not a reserved IP of this account (HTTP 404{said}; {what})"
        )),
        401 | 404 if !api_says => Fault::Transient(format!(
            "{what}: HTTP {status} without the API's error body (a proxy in the way?){said}"
        )),
        _ if in_flight(answer) => Fault::Busy(format!(
            "{what}: {ip} is still attached or changing (HTTP {status}{said})"
        )),
        _ => super::http_fault(answer, what, &said),
    }
}

/// A reserved IP object: None when it is about another address; Some(None) when it is about
/// `asked` but garbled (no UUID, an `instance_id` that is neither empty nor a UUID).
fn parse_ip(r: &Value, asked: IpAddr) -> Option<Option<IpHolding>> {
    let about: IpAddr = r.get("subnet")?.as_str()?.parse().ok()?;
    if about != asked {
        return None;
    }
    let id = r.get("id").and_then(Value::as_str).filter(|s| is_uuid(s));
    let holder = match r.get("instance_id").and_then(Value::as_str) {
        Some("") => Some(None),
        Some(s) if is_uuid(s) => Some(Some(ServerId(s.to_string()))),
        _ => None,
    };
    Some(match (id, holder) {
        (Some(id), Some(holder)) => Some(IpHolding {
            id: IpId(id.to_string()),
            holder,
            also: Vec::new(),
            locked: false,
        }),
        _ => None,
    })
}

/// A cursor as a query value: every byte but the unreserved ones percent-encoded (cursors are
/// opaque, base64 with `=` and `+` among them).
pub(crate) fn query_value(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An attach this provider made, as the agent follows it: which IP should show which
/// instance, and the holder it was detached from (a read lagging the platform may still show
/// that one). The agent holds its `ActionId`, `attach to instance <UUID>`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Attach {
    ip: IpId,
    server: ServerId,
    former: Option<ServerId>,
}

impl Attach {
    fn action(&self) -> ActionId {
        ActionId(format!("attach to instance {}", self.server))
    }
}

pub struct Vultr {
    api: Option<ApiClient>,
    /// What an error must never repeat: Vultr's error is a plain `error` text, which the
    /// transport's own check (of `message`) does not look at.
    token: Option<Secret>,
    metadata: MetadataService,
    /// The last attach made (one action's provider makes one at a time).
    attached: RefCell<Option<Attach>>,
    /// The last detach made: the IP and the instance it was detached from.
    detached: RefCell<Option<(IpId, ServerId)>>,
}

impl Vultr {
    pub fn new(endpoints: &Endpoints, token: Option<Secret>) -> Vultr {
        Vultr {
            api: endpoints.bearer_client(token.clone()),
            token,
            metadata: MetadataService::new(endpoints.metadata.as_str()),
            attached: RefCell::new(None),
            detached: RefCell::new(None),
        }
    }

    fn api(&self) -> Result<&ApiClient, Fault> {
        super::need_api(&self.api)
    }

    /// `answer`, its `error` replaced when it quotes the token (some gateways echo the
    /// Authorization header): errors reach exit reasons and logs.
    pub(crate) fn unquoted(&self, mut answer: Answer) -> Answer {
        let token = self.token.as_ref().map_or("", |t| t.expose());
        if let Some(e) = answer
            .body
            .get_mut("error")
            .filter(|e| !token.is_empty() && e.as_str().is_some_and(|m| m.contains(token)))
        {
            *e = Value::from("the answer's error quotes the token: not shown");
        }
        answer
    }

    /// A read: 200's body, or the fault (a read met by "changing" is the same read again).
    fn get(&self, path: &str, what: &str, ip: IpAddr, d: &Deadline) -> Result<Value, Fault> {
        let answer = self.unquoted(self.api()?.get(path, d)?);
        match answer.status {
            200 => Ok(answer.body),
            _ => match fault(&answer, what, ip, path.starts_with("/v2/reserved-ips/")) {
                Fault::Busy(d) => Err(Fault::Transient(d)),
                f => Err(f),
            },
        }
    }

    /// Every page of `GET /v2/reserved-ips`, until the one that holds `ip`.
    fn find(&self, ip: IpAddr, deadline: &Deadline) -> Result<IpHolding, Fault> {
        let mut cursor = String::new();
        for page in 1..=MAX_PAGES {
            let what = format!("GET /v2/reserved-ips page {page}");
            let mut path = format!("/v2/reserved-ips?per_page={PER_PAGE}");
            if !cursor.is_empty() {
                path.push_str(&format!("&cursor={}", query_value(&cursor)));
            }
            let body = self.get(&path, &what, ip, deadline)?;
            let Some(list) = body.get("reserved_ips").and_then(Value::as_array) else {
                return Err(Fault::Transient(format!(
                    "{what}: garbled answer (no reserved_ips list)"
                )));
            };
            if let Some(found) = list.iter().find_map(|r| parse_ip(r, ip)) {
                return found
                    .ok_or_else(|| Fault::Transient(format!("{what}: garbled reserved IP {ip}")));
            }
            let next = body
                .get("meta")
                .and_then(|m| m.get("links"))
                .and_then(|l| l.get("next"));
            match next.and_then(Value::as_str) {
                Some("") => {
                    return Err(Fault::IpUnknown(format!(
                        "{ip} is not a reserved IP of this account ({page} pages listed)"
                    )))
                }
                Some(n) if n != cursor => cursor = n.to_string(),
                _ => {
                    return Err(Fault::Transient(format!(
                        "{what}: garbled answer (no usable meta.links.next)"
                    )))
                }
            }
        }
        Err(Fault::Transient(format!(
            "GET /v2/reserved-ips: more than {MAX_PAGES} pages: garbled"
        )))
    }

    /// `POST /v2/reserved-ips/{id}/<command>` with `body`: None on 204 (or another 2xx), else
    /// the refusal, for the caller to judge.
    fn change(
        &self,
        id: &IpId,
        command: &str,
        body: &Value,
        deadline: &Deadline,
    ) -> Result<Option<Answer>, Fault> {
        let answer = self.unquoted(self.api()?.post(
            &format!("/v2/reserved-ips/{id}/{command}"),
            body,
            deadline,
        )?);
        Ok((!(200..300).contains(&answer.status)).then_some(answer))
    }
}

impl Provider for Vultr {
    fn server_word(&self) -> &'static str {
        CLOUD.server_word
    }

    /// `instance-v2-id`: the UUID the v2 API names the instance by.
    fn server_id(&self, deadline: &Deadline) -> Result<ServerId, Fault> {
        let id = ("instance id", "a UUID", is_uuid as fn(&str) -> bool);
        super::metadata_server_id(&self.metadata, "instance-v2-id", id, deadline)
    }

    /// Whether the metadata service lists attached reserved IPs is unconfirmed: it cannot tell.
    fn holds_locally(&self, _: IpAddr, _: &Deadline) -> Result<Option<bool>, Fault> {
        Ok(None)
    }

    /// With the id: one `GET /v2/reserved-ips/{id}`. Without: the listing, page by page.
    fn holding(
        &self,
        ip: IpAddr,
        id: Option<&IpId>,
        deadline: &Deadline,
    ) -> Result<IpHolding, Fault> {
        let Some(id) = id else {
            return self.find(ip, deadline);
        };
        let what = format!("GET /v2/reserved-ips/{id}");
        if !is_uuid(&id.0) {
            return Err(Fault::Refused(format!("{what}: the id is not a UUID")));
        }
        let body = self.get(&format!("/v2/reserved-ips/{id}"), &what, ip, deadline)?;
        match body.get("reserved_ip").map(|r| parse_ip(r, ip)) {
            Some(Some(Some(h))) if h.id == *id => Ok(h),
            _ => Err(Fault::Transient(format!(
                "{what}: garbled answer (not the reserved IP {ip})"
            ))),
        }
    }

    /// Detach from the holder `found` names (if another), then attach here: two requests, or
    /// one when no instance holds it. A detach or an attach refused because the IP is still
    /// attached or changing is `Busy`: the agent re-reads the IP and calls again.
    fn assign(
        &self,
        found: &IpHolding,
        ip: IpAddr,
        server: &ServerId,
        deadline: &Deadline,
    ) -> Result<(ActionId, ActionState), Fault> {
        if !is_uuid(&found.id.0) || !is_uuid(&server.0) {
            return Err(Fault::Refused(format!(
                "attach {ip} to instance {server}: an id is not a UUID"
            )));
        }
        if let Some(other) = found.holder.as_ref().filter(|h| *h != server) {
            let what = format!("detach {ip} from instance {other}");
            // No body is documented; an empty object says none.
            let detach = (found.id.clone(), other.clone());
            let again = self.detached.borrow().as_ref() == Some(&detach);
            match self.change(&found.id, "detach", &serde_json::json!({}), deadline)? {
                None => *self.detached.borrow_mut() = Some(detach),
                Some(a) => {
                    if let Some(f) = detach_refused(&a, &what, ip, again) {
                        return Err(f);
                    }
                }
            }
        }
        let what = format!("attach {ip} to instance {server}");
        let body = serde_json::json!({"instance_id": server.0});
        match self.change(&found.id, "attach", &body, deadline)? {
            None => {
                let made = Attach {
                    ip: found.id.clone(),
                    server: server.clone(),
                    former: found.holder.clone(),
                };
                let action = made.action();
                *self.attached.borrow_mut() = Some(made);
                Ok((action, ActionState::InProgress))
            }
            Some(a) => Err(fault(&a, &what, ip, false)),
        }
    }

    /// Nothing to poll but the IP: done when its `instance_id` is this instance; attached to
    /// another instance meanwhile, the start has lost it (another start at once).
    fn action_state(
        &self,
        ip: IpAddr,
        action: &ActionId,
        deadline: &Deadline,
    ) -> Result<ActionState, Fault> {
        let Some(made) = self
            .attached
            .borrow()
            .clone()
            .filter(|m| m.action() == *action)
        else {
            return Err(Fault::Refused(format!(
                "{action}: not an attach this agent made"
            )));
        };
        let h = self.holding(ip, Some(&made.ip), deadline)?;
        match &h.holder {
            Some(s) if *s == made.server => Ok(ActionState::Completed),
            // Not there yet: detached, or a read that lags the detach.
            None => Ok(ActionState::InProgress),
            Some(s) if Some(s) == made.former.as_ref() => Ok(ActionState::InProgress),
            Some(other) => Err(Fault::Refused(format!(
                "{ip} was attached to instance {other} after this attach (another start at once): not taking it back"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const IP: &str = "203.0.113.7";
    const U1: &str = "5e7f0a11-0000-4000-8000-000000000001";
    const R1: &str = "4e5e4e00-0000-4000-8000-000000000001";

    fn answer(status: u16, body: Value) -> Answer {
        Answer::of(status, body)
    }

    #[test]
    fn only_public_ipv4() {
        assert!(check_address(IP.parse().unwrap()).is_ok());
        assert!(check_address("10.0.0.1".parse().unwrap()).is_err());
        assert!(check_address("2001:db8::1".parse().unwrap())
            .unwrap_err()
            .contains("/64"));
    }

    #[test]
    fn only_vultrs_own_bodies_are_6_and_still_attached_is_a_wait() {
        let ip: IpAddr = IP.parse().unwrap();
        let err = |m: &str, s: u16| json!({"error": m, "status": s});
        assert!(matches!(
            fault(&answer(401, err("Invalid API token.", 401)), "x", ip, false),
            Fault::TokenRejected(_)
        ));
        assert!(matches!(
            fault(
                &answer(404, err("Reserved IP not found.", 404)),
                "x",
                ip,
                true
            ),
            Fault::IpUnknown(_)
        ));
        // A 404 of an attach may be the instance: not the IP's verdict.
        assert!(!matches!(
            fault(&answer(404, err("Not found.", 404)), "x", ip, false),
            Fault::IpUnknown(_)
        ));
        for (status, body) in [
            (401, Value::Null),
            (404, Value::Null),
            (401, json!({"x": 1})),
        ] {
            assert!(
                fault(&answer(status, body.clone()), "x", ip, true).is_transient(),
                "{status} {body}"
            );
        }
        assert!(matches!(
            fault(
                &answer(
                    400,
                    err("Reserved IP is already attached to another server", 400)
                ),
                "x",
                ip,
                false
            ),
            Fault::Busy(_)
        ));
        assert!(matches!(
            fault(
                &answer(400, err("Invalid instance_id.", 400)),
                "x",
                ip,
                false
            ),
            Fault::Refused(_)
        ));
        assert!(fault(&answer(429, Value::Null), "x", ip, false).is_transient());
        assert!(fault(&answer(503, Value::Null), "x", ip, false).is_transient());
        assert!(not_attached(&answer(
            400,
            err("Reserved IP is not attached", 400)
        )));
    }

    #[test]
    fn an_error_that_quotes_the_token_is_not_repeated() {
        let endpoints = Endpoints {
            api: Some(cloudha_common::HttpUrl::parse("http://127.0.0.1:9").unwrap()),
            metadata: cloudha_common::HttpUrl::parse("http://127.0.0.1:9").unwrap(),
            api_key: None,
        };
        for token in ["q^Z", "VULTRKEY0123456789"] {
            let v = Vultr::new(&endpoints, Some(Secret::new(token)));
            let a = v.unquoted(answer(
                401,
                json!({"error": format!("Invalid API token: Bearer {token}"), "status": 401}),
            ));
            let said = error_words(&a.body).unwrap();
            assert!(!said.contains(token), "{said}");
            assert!(matches!(
                fault(&a, "x", IP.parse().unwrap(), false),
                Fault::TokenRejected(_)
            ));
            let a = v.unquoted(answer(401, json!({"error": "Invalid API token."})));
            assert_eq!(error_words(&a.body), Some("Invalid API token."));
        }
    }

    #[test]
    fn a_detach_made_again_while_the_first_runs_is_a_wait() {
        let ip: IpAddr = IP.parse().unwrap();
        let err = |m: &str| answer(400, json!({"error": m, "status": 400}));
        assert_eq!(
            detach_refused(&err("Reserved IP is not attached"), "x", ip, false),
            None
        );
        assert!(matches!(
            detach_refused(
                &err("a change to this reserved IP is in progress"),
                "x",
                ip,
                false
            ),
            Some(Fault::Busy(_))
        ));
        // Words this agent does not know: the first time a refusal, again a wait.
        let unknown = err("Unable to detach reserved IP");
        assert!(matches!(
            detach_refused(&unknown, "x", ip, false),
            Some(Fault::Refused(_))
        ));
        assert!(matches!(
            detach_refused(&unknown, "x", ip, true),
            Some(Fault::Busy(_))
        ));
        // Never a credentials or rate verdict turned into a wait.
        let rejected = answer(401, json!({"error": "Invalid API token."}));
        assert!(matches!(
            detach_refused(&rejected, "x", ip, true),
            Some(Fault::TokenRejected(_))
        ));
        assert!(detach_refused(&answer(429, Value::Null), "x", ip, true)
            .unwrap()
            .is_transient());
        assert!(matches!(
            detach_refused(
                &answer(403, json!({"error": "Unauthorized IP address"})),
                "x",
                ip,
                true
            ),
            Some(Fault::Refused(_))
        ));
    }

    #[test]
    fn reserved_ips_parse() {
        let ip: IpAddr = IP.parse().unwrap();
        let held = json!({"id": R1, "region": "ewr", "ip_type": "v4", "subnet": IP, "subnet_size": 32, "label": "", "instance_id": U1});
        assert_eq!(
            parse_ip(&held, ip),
            Some(Some(IpHolding {
                id: IpId(R1.into()),
                holder: Some(ServerId(U1.into())),
                also: Vec::new(),
                locked: false,
            }))
        );
        let free = json!({"id": R1, "subnet": IP, "instance_id": ""});
        assert_eq!(parse_ip(&free, ip).unwrap().unwrap().holder, None);
        assert_eq!(
            parse_ip(&json!({"id": R1, "subnet": "198.51.100.1"}), ip),
            None
        );
        assert_eq!(
            parse_ip(&json!({"id": R1, "subnet": IP, "instance_id": null}), ip),
            Some(None)
        );
        assert_eq!(
            parse_ip(&json!({"id": 7, "subnet": IP, "instance_id": ""}), ip),
            Some(None)
        );
    }

    #[test]
    fn cursors_are_escaped_and_actions_name_ip_and_instance() {
        assert_eq!(query_value("bmV4dF9f+/=="), "bmV4dF9f%2B%2F%3D%3D");
        let a = Attach {
            ip: IpId(R1.into()),
            server: ServerId(U1.into()),
            former: None,
        };
        assert_eq!(a.action().0, format!("attach to instance {U1}"));
        assert!(is_uuid(U1) && !is_uuid("42") && !is_uuid(&U1.replace('-', "x")));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// 6 only on Vultr's own word, and a 404 only for a read of the IP.
            #[test]
            fn only_the_apis_own_errors_are_6(status in 100u16..600, error in proptest::option::of(".{0,40}"), read in any::<bool>()) {
                let ip: IpAddr = IP.parse().unwrap();
                let body = error.as_ref().map_or(Value::Null, |e| json!({"error": e}));
                match fault(&answer(status, body), "x", ip, read) {
                    Fault::TokenRejected(_) => prop_assert!(status == 401 && error.is_some()),
                    Fault::IpUnknown(_) => prop_assert!(status == 404 && error.is_some() && read),
                    _ => {}
                }
            }

            /// A reserved IP object is believed only for the address asked about.
            #[test]
            fn an_ip_object_describes_the_asked_ip(subnet in "(203\\.0\\.113\\.7|198\\.51\\.100\\.[0-9]|.{0,12})", inst in "(|5e7f0a11-0000-4000-8000-000000000001|.{0,8})") {
                let asked: IpAddr = IP.parse().unwrap();
                let body = json!({"id": R1, "subnet": subnet, "instance_id": inst});
                if let Some(Some(h)) = parse_ip(&body, asked) {
                    prop_assert_eq!(subnet.parse::<IpAddr>().ok(), Some(asked));
                    prop_assert!(h.holder.is_none_or(|s| is_uuid(&s.0)));
                }
            }
        }
    }
}
