//! What the agent needs from a cloud, as one trait: who am I (metadata), where is the IP and who
//! holds it, make me the holder (however many calls that takes), is that done, and can the
//! metadata service answer a monitor. The agent's logic (retries, deadlines, records, exit
//! codes, races) lives in `actions`, the same for every cloud; a provider only talks.
//! A new cloud is one module here, which describes itself (`pub const CLOUD: Cloud`: its name,
//! words, default endpoints, the parameters it needs, its meta-data sentences, its constructor)
//! and is one line of [`PROVIDERS`]; the agent's parameter checks, records and meta-data derive
//! from that list. Then its fake under `tests/src/fakecloud/`, its column in the fault matrix
//! and its section in docs/floatip.md.

pub mod digitalocean;
pub mod exoscale;
pub mod hetzner;
pub mod vultr;

use crate::api::{Answer, ApiClient};
use cloudha_common::http::MetadataService;
use cloudha_common::values::choice;
use cloudha_common::{
    Deadline, HttpUrl, OcfError, OcfResult, Param, ParamKind, ParamValue, Params, Secret,
};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// A server's id in its cloud (a DigitalOcean droplet id), kept as text so every cloud fits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerId(pub String);

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The IP's id in its cloud: what the API addresses it by (DigitalOcean: the address itself;
/// Hetzner: a number found by listing). Kept in the start record, so that a monitor reads the
/// one IP by its id and never lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpId(pub String);

impl fmt::Display for IpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The API's view of a floating IP: where it is and who holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpHolding {
    /// Its id in the cloud.
    pub id: IpId,
    /// The server it points at, if any.
    pub holder: Option<ServerId>,
    /// Further holders (Exoscale: an elastic IP may be attached to several instances at once;
    /// empty at the other clouds).
    pub also: Vec<ServerId>,
    /// The IP object itself says an action is pending on it (DigitalOcean's `locked`): a new
    /// one would be refused. Clouds without such a flag say false and refuse with `Fault::Busy`.
    pub locked: bool,
}

/// A public IPv4 address, as every cloud here floats: `private` and `v6` complete the sentence
/// "parameter 'ip': '...' " when it is not one (each cloud says what it offers).
pub fn public_ipv4(ip: IpAddr, private: &str, v6: &str) -> Result<(), String> {
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
        IpAddr::V4(_) => Err(private.into()),
        IpAddr::V6(_) => Err(v6.into()),
    }
}

/// `{"action": {"id": N, "status": "..."}}`, the envelope both DigitalOcean and Hetzner answer
/// an action in; `states` names the cloud's words for running, done and failed.
pub fn action_in(
    body: &serde_json::Value,
    states: &[(&str, ActionState); 3],
    what: &str,
) -> Result<(ActionId, ActionState), Fault> {
    let action = body.get("action");
    let id = action
        .and_then(|a| a.get("id"))
        .and_then(serde_json::Value::as_u64);
    let state = action
        .and_then(|a| a.get("status"))
        .and_then(serde_json::Value::as_str)
        .and_then(|s| states.iter().find(|(w, _)| *w == s).map(|(_, st)| *st));
    match (id, state) {
        (Some(id), Some(state)) => Ok((ActionId(id.to_string()), state)),
        _ => Err(Fault::Transient(format!(
            "{what}: the answer carries no action id and status"
        ))),
    }
}

/// An action this program made, read back (`answer` to GET it): its state. A 200 must be about
/// that action; a 404 is the API catching up (the action exists: we made it), a wait; any other
/// status is `fault`'s verdict.
pub fn action_read(
    answer: &Answer,
    action: &ActionId,
    states: &[(&str, ActionState); 3],
    what: &str,
    fault: impl FnOnce() -> Fault,
) -> Result<ActionState, Fault> {
    match answer.status {
        200 => match action_in(&answer.body, states, what)? {
            (id, state) if id == *action => Ok(state),
            (id, _) => Err(Fault::Transient(format!(
                "{what}: garbled answer (about action {id})"
            ))),
        },
        404 => Err(Fault::Transient(format!("{what}: HTTP 404"))),
        _ => Err(fault()),
    }
}

/// This server's id: the metadata service's `leaf` (trimmed), which `valid` must accept. `noun`
/// names it in the faults ("droplet id"), `form` says what a valid one is ("a number").
pub fn metadata_server_id(
    metadata: &MetadataService,
    leaf: &str,
    (noun, form, valid): (&str, &str, fn(&str) -> bool),
    deadline: &Deadline,
) -> Result<ServerId, Fault> {
    let url = || metadata.url(leaf);
    match metadata
        .get(leaf, deadline)
        .map_err(|e| Fault::Transient(e.to_string()))?
    {
        Some(id) if valid(id.trim()) => Ok(ServerId(id.trim().to_string())),
        Some(_) => Err(Fault::Transient(format!(
            "metadata service {}: the {noun} is not {form}",
            url()
        ))),
        None => Err(Fault::Transient(format!(
            "metadata service {}: no {noun} (HTTP 404)",
            url()
        ))),
    }
}

/// DigitalOcean's and Hetzner's ids: decimal numbers.
pub fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Exoscale's and Vultr's ids: UUIDs (8-4-4-4-12 hexadecimal digits). Ids go into paths:
/// anything else is garbled.
pub fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The work a cloud runs to make a server the holder (an assign action), as the provider
/// follows it: opaque to the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionId(pub String);

impl IpHolding {
    /// Every holder, `holder` first.
    pub fn holders(&self) -> Vec<ServerId> {
        self.holder
            .iter()
            .chain(self.also.iter())
            .cloned()
            .collect()
    }

    /// Whether `server` is one of its holders.
    pub fn held_by(&self, server: &ServerId) -> bool {
        self.holder.as_ref() == Some(server) || self.also.contains(server)
    }
}

impl fmt::Display for ActionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActionState {
    InProgress,
    Completed,
    Errored,
}

/// Why a call gave no answer. Only `TokenRejected` and `IpUnknown` are wrong on every node;
/// everything transient is retried within the deadline and then reported as 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Timeouts, resets, 5xx, garbled answers, an unreachable metadata service.
    Transient(String),
    /// Too many requests: wait at least this long (retry-after / ratelimit-reset) when known.
    RateLimited {
        wait: Option<Duration>,
        detail: String,
    },
    /// An action is pending on the address (DigitalOcean's 422, Hetzner's 423 `locked` and 409
    /// `conflict`): wait for it, then look again.
    Busy(String),
    /// The API refused the token (401 with the cloud's own error body).
    TokenRejected(String),
    /// The address is not one of this account's (404 with the cloud's own error body, or a
    /// complete listing without it).
    IpUnknown(String),
    /// Any other refusal the agent cannot fix by waiting (403, other 4xx, a redirect).
    Refused(String),
}

impl Fault {
    /// Worth another try after a pause.
    pub fn is_transient(&self) -> bool {
        matches!(self, Fault::Transient(_) | Fault::RateLimited { .. })
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Transient(d)
            | Fault::Busy(d)
            | Fault::TokenRejected(d)
            | Fault::IpUnknown(d)
            | Fault::Refused(d) => f.write_str(d),
            Fault::RateLimited { detail, .. } => f.write_str(detail),
        }
    }
}

/// Where a provider finds its API and metadata service, and what else names the account.
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// None only where the provider builds it (Exoscale: from the zone in the metadata).
    pub api: Option<HttpUrl>,
    pub metadata: HttpUrl,
    /// Exoscale: the API key (`EXO...`), which the secret signs for.
    pub api_key: Option<String>,
}

/// The parameters an agent declares that place a provider's API and metadata service, and the
/// key Exoscale signs for: floatip and fence_cloudha read them alike.
pub struct PlaceParams<'a> {
    pub api_key: &'a Param<String>,
    pub zone: &'a Param<String>,
    pub api_url: &'a Param<HttpUrl>,
    pub metadata_url: &'a Param<HttpUrl>,
}

impl Endpoints {
    /// `provider`'s endpoints from the parameters in `p`: `api_url` if set, else the zone's API
    /// (Exoscale, when `zone` is set), else the provider's default (none for Exoscale without a
    /// zone: it reads the zone from the metadata service); `metadata_url` or the default; the
    /// API key where the provider signs. Plain http only to loopback (the token would cross the
    /// network in clear). Each bad value is 6 naming its parameter.
    pub fn from_params(
        p: &Params,
        provider: ProviderKind,
        names: &PlaceParams,
    ) -> OcfResult<Endpoints> {
        let (default_api, default_metadata) = provider.default_endpoints();
        let own = |url: &str| {
            HttpUrl::parse(url).map_err(|why| {
                OcfError::generic(format!("the {provider:?} default URL {url} {why}"))
            })
        };
        // Where the cloud signs (Exoscale): the key the secret signs for.
        let api_key = match provider.api_key {
            Some(_) => {
                let key = p.need(names.api_key)?;
                if key.trim().is_empty() || key.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(p.invalid(names.api_key, "is not an API key"));
                }
                Some(key)
            }
            None => None,
        };
        // Where the API is per zone (Exoscale): the zone's API, when the zone is set.
        let zone = match (&provider.zone, p.read(names.zone)?) {
            (Some(zoned), Some(z)) => {
                Some((zoned.api_url)(&z).map_err(|why| p.invalid(names.zone, why))?)
            }
            _ => None,
        };
        let api = match (p.read(names.api_url)?, zone, default_api) {
            (Some(url), _, _) => Some(url),
            (None, Some(zone_api), _) => Some(own(&zone_api)?),
            (None, None, Some(url)) => Some(own(url)?),
            // Exoscale without a zone: the provider reads it from the metadata service.
            (None, None, None) => None,
        };
        if api
            .as_ref()
            .is_some_and(|api| !api.is_https() && !api.is_loopback())
        {
            return Err(p.invalid(
                names.api_url,
                "is plain http: the token would cross the network in clear; use https:// (http:// is accepted for loopback test APIs only)",
            ));
        }
        let metadata = match p.read(names.metadata_url)? {
            Some(url) => url,
            None => own(default_metadata)?,
        };
        Ok(Endpoints {
            api,
            metadata,
            api_key,
        })
    }
}

impl Endpoints {
    /// A plain-HTTP API, which settings accept only on loopback (tests): no proxy, no TLS.
    pub fn api_is_loopback(&self) -> bool {
        self.api.as_ref().is_some_and(|a| !a.is_https())
    }

    /// A client of the API with a Bearer token, when there are both a token and an API URL.
    pub fn bearer_client(&self, token: Option<Secret>) -> Option<ApiClient> {
        let api = self.api.as_ref()?;
        token.map(|t| ApiClient::new(api, t, self.api_is_loopback()))
    }
}

/// The API client, or the fault of a call made without a token (a monitor's provider has none).
pub fn need_api(api: &Option<ApiClient>) -> Result<&ApiClient, Fault> {
    api.as_ref()
        .ok_or_else(|| Fault::Refused("no API token available for this call".into()))
}

/// What an answer other than 2xx means once a cloud's own verdicts (credentials, the IP, a busy
/// IP) are ruled out: 429 a rate limit (waiting what its headers say), 5xx transient, anything
/// else refused. `said` is the API's own words, `": ..."` or empty.
pub fn http_fault(answer: &Answer, what: &str, said: &str) -> Fault {
    let status = answer.status;
    match status {
        429 => Fault::RateLimited {
            wait: answer.rate_limit_wait(),
            detail: format!("{what}: rate limited (HTTP 429{said})"),
        },
        500..=599 => Fault::Transient(format!("{what}: HTTP {status}{said}")),
        _ => Fault::Refused(format!("{what}: HTTP {status}{said}")),
    }
}

/// One cloud: what the agent asks of it. Each call makes one request, or a fixed few
/// documented per call (a listing of every page), and never retries: the agent decides about
/// waiting, with the same rules for every cloud. Every call honours `deadline`.
pub trait Provider {
    /// What the cloud calls a server, for messages: "droplet", "server", "instance".
    fn server_word(&self) -> &'static str;
    /// This server's id, from the metadata service.
    fn server_id(&self, deadline: &Deadline) -> Result<ServerId, Fault>;
    /// Whether the metadata service says this server holds exactly `ip` now (no API request),
    /// or None when this cloud's metadata service cannot tell (no request at all): a monitor
    /// then reads the API.
    fn holds_locally(&self, ip: IpAddr, deadline: &Deadline) -> Result<Option<bool>, Fault>;
    /// Where `ip` is and who holds it, from the API (the token is needed). With its `id` (from
    /// the start record, or an earlier answer): one request. Without: whatever finding it takes
    /// (Hetzner lists every page).
    fn holding(
        &self,
        ip: IpAddr,
        id: Option<&IpId>,
        deadline: &Deadline,
    ) -> Result<IpHolding, Fault>;
    /// Make `server` the holder of `ip` (moving it from any other), `ip` as `holding` found
    /// it. Returns the work started and its state as the answer gave it.
    fn assign(
        &self,
        ip: &IpHolding,
        addr: IpAddr,
        server: &ServerId,
        deadline: &Deadline,
    ) -> Result<(ActionId, ActionState), Fault>;
    /// Whether the work started by `assign` (or `release`) is done.
    fn action_state(
        &self,
        addr: IpAddr,
        action: &ActionId,
        deadline: &Deadline,
    ) -> Result<ActionState, Fault>;

    /// Whether `assign` adds `server` to the holders and leaves the others (Exoscale's attach):
    /// the agent must then `release` every other holder. False: `assign` moves the IP.
    fn assign_keeps_others(&self) -> bool {
        false
    }

    /// Take `server` off the holders of `ip` (Exoscale's detach), `ip` as `holding` found it.
    /// Only called where `assign_keeps_others`.
    fn release(
        &self,
        _ip: &IpHolding,
        addr: IpAddr,
        _server: &ServerId,
        _deadline: &Deadline,
    ) -> Result<(ActionId, ActionState), Fault> {
        Err(Fault::Refused(format!(
            "{addr}: this cloud moves an IP in one action; there is nothing to release"
        )))
    }

    /// A monitor's one API read, telling whether `server` holds `ip` (`id` from the start
    /// record). Where `assign_keeps_others`, only whether `server` is one of the holders is
    /// known (`holder` is `server` or None). Default: `holding` with the id (one read of the IP).
    fn holds(
        &self,
        ip: IpAddr,
        id: Option<&IpId>,
        _server: &ServerId,
        deadline: &Deadline,
    ) -> Result<IpHolding, Fault> {
        self.holding(ip, id, deadline)
    }
}

/// What a cloud says of itself, in its own module (`pub const CLOUD: Cloud`): its name, its
/// words, its default endpoints, the parameters it needs, how the meta-data describes it, and
/// its constructor. The agent, its meta-data and its records derive everything cloud-specific
/// from these and from [`PROVIDERS`]; nothing else names a cloud.
pub struct Cloud {
    /// The `provider` parameter's value (and a start record's `provider=`).
    pub name: &'static str,
    /// Older names that mean the same, accepted and not advertised (DigitalOcean's `do`).
    pub aliases: &'static [&'static str],
    /// The cloud's name for people: "DigitalOcean".
    pub title: &'static str,
    /// What it calls a server, in messages: "droplet", "server", "instance".
    pub server_word: &'static str,
    /// What it calls the address: "reserved IP", "floating IP", "elastic IP".
    pub ip_word: &'static str,
    /// Its API's base URL when `api_url` is not set; with `<zone>` in it where the API is per
    /// zone (`zone` below builds it).
    pub api_url: &'static str,
    /// Its metadata service's base URL when `metadata_url` is not set.
    pub metadata_url: &'static str,
    /// Where requests are signed with an API key and the secret (the token): what that key is,
    /// for the meta-data ("Exoscale's API key (EXO...)"). The `api_key` parameter is then
    /// required. None: the token is a Bearer token, and `api_key` is not used.
    pub api_key: Option<&'static str>,
    /// Where the API is per zone: its URL for a zone (Err: not a zone's name), and what the
    /// meta-data says of the `zone` parameter. None: `zone` is not used.
    pub zone: Option<Zone>,
    /// The meta-data's sentences on this cloud: how start moves the IP and what a monitor reads.
    pub describes: &'static str,
    /// Whether this cloud can float `ip`: the words complete "parameter 'ip': '<value>' …".
    pub check_address: fn(IpAddr) -> Result<(), String>,
    /// The provider itself. `token` (with an API key: the secret) may be None for calls that
    /// need only the metadata service.
    pub connect: fn(&Endpoints, Option<Secret>) -> Box<dyn Provider>,
}

/// A cloud whose API is per zone.
pub struct Zone {
    /// The API's base URL for `zone`; Err (completing "parameter 'zone': '...' ") when `zone`
    /// is not a zone's name.
    pub api_url: fn(&str) -> Result<String, String>,
    /// What the meta-data says of the `zone` parameter for this cloud (its default included).
    pub describes: &'static str,
}

/// Every cloud the agent speaks to, one line each: the first is the `provider` default. The
/// meta-data lists them in this order.
#[rustfmt::skip]
pub const PROVIDERS: &[&Cloud] = &[
    &digitalocean::CLOUD,
    &hetzner::CLOUD,
    &vultr::CLOUD,
    &exoscale::CLOUD,
];

/// The cloud a `provider` parameter (or a record) names: one of [`PROVIDERS`].
#[derive(Clone, Copy)]
pub struct ProviderKind(&'static Cloud);

impl PartialEq for ProviderKind {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}
impl Eq for ProviderKind {}

impl fmt::Debug for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name)
    }
}

impl std::ops::Deref for ProviderKind {
    type Target = Cloud;
    fn deref(&self) -> &Cloud {
        self.0
    }
}

impl ParamValue for ProviderKind {
    const KIND: ParamKind = ParamKind::String;
    fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if let Some(c) = PROVIDERS
            .iter()
            .find(|c| c.aliases.iter().any(|a| a.eq_ignore_ascii_case(t)))
        {
            return Ok(ProviderKind(c));
        }
        let names: Vec<(&str, ProviderKind)> = PROVIDERS
            .iter()
            .map(|c| (c.name, ProviderKind(c)))
            .collect();
        choice(text, &names)
    }
}

/// The `provider` parameter's default: the first of [`PROVIDERS`].
impl Default for ProviderKind {
    fn default() -> Self {
        ProviderKind(PROVIDERS[0])
    }
}

impl ProviderKind {
    /// The name the `provider` parameter gives it (and a record keeps).
    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// Whether this cloud can float `ip` (address family, ranges): the words complete
    /// "parameter 'ip': '<value>' …".
    pub fn check_address(self, ip: IpAddr) -> Result<(), String> {
        (self.0.check_address)(ip)
    }

    /// The cloud's own API and metadata service, used when `api_url` or `metadata_url` is not
    /// set (a unit test parses them). No API URL: it depends on the zone, which the provider
    /// builds (`zone`).
    pub fn default_endpoints(self) -> (Option<&'static str>, &'static str) {
        let api = self.0.zone.is_none().then_some(self.0.api_url);
        (api, self.0.metadata_url)
    }

    /// The provider itself. `token` (with an API key: the secret) may be None for calls that
    /// need only the metadata service.
    pub fn connect(self, endpoints: &Endpoints, token: Option<Secret>) -> Box<dyn Provider> {
        (self.0.connect)(endpoints, token)
    }
}

impl From<crate::api::ApiError> for Fault {
    fn from(e: crate::api::ApiError) -> Fault {
        Fault::Transient(e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_providers_defaults_parse() {
        for cloud in PROVIDERS {
            let kind = ProviderKind::parse(cloud.name).unwrap();
            assert_eq!(kind.name(), cloud.name);
            let (api, metadata) = kind.default_endpoints();
            let api = match (&cloud.zone, api) {
                (Some(zone), None) => {
                    let url = (zone.api_url)("ch-gva-2").unwrap();
                    // The URL the meta-data shows is the one built.
                    assert_eq!(url, cloud.api_url.replace("<zone>", "ch-gva-2"));
                    url
                }
                (None, Some(api)) => api.to_string(),
                _ => panic!("{}: an API URL and a zone", cloud.name),
            };
            assert!(HttpUrl::parse(&api).unwrap().is_https(), "{}", cloud.name);
            HttpUrl::parse(metadata).unwrap();
            assert!(!cloud.describes.is_empty() && !cloud.title.is_empty());
        }
    }

    #[test]
    fn names_and_aliases_are_unique_and_parse() {
        let mut seen = std::collections::BTreeSet::new();
        for cloud in PROVIDERS {
            for name in std::iter::once(&cloud.name).chain(cloud.aliases) {
                assert!(seen.insert(name.to_ascii_lowercase()), "{name} twice");
                assert_eq!(ProviderKind::parse(name).unwrap().name(), cloud.name);
            }
        }
        assert_eq!(ProviderKind::parse("DO").unwrap().name(), "digitalocean");
        let all: Vec<&str> = PROVIDERS.iter().map(|c| c.name).collect();
        assert_eq!(
            ProviderKind::parse("aws").unwrap_err(),
            format!("is not supported (supported: {})", all.join(", "))
        );
    }
}
