//! What the agent needs from a cloud, as one trait: who this server is, whether the metadata
//! service says it holds an address, and the API calls to read, assign and follow an address.
//! The agent's logic (retries, deadlines, exit codes) lives in `actions`; a provider only talks.

pub mod digitalocean;

use cloudha_common::values::choice;
use cloudha_common::{Deadline, HttpUrl, ParamKind, ParamValue, Secret};
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

/// The API's view of a floating IP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpHolding {
    /// The server it points at, if any.
    pub holder: Option<ServerId>,
    /// An action is pending on it: a new one would be refused.
    pub locked: bool,
}

/// An action the cloud runs for us (DigitalOcean's assign action).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionId(pub String);

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
    /// An action is pending on the address (DigitalOcean's 422): wait for it, then look again.
    Busy(String),
    /// The API refused the token (401).
    TokenRejected(String),
    /// The address is not one of this account's (404).
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

/// Where a provider finds its API and metadata service.
#[derive(Clone, Debug)]
pub struct Endpoints {
    pub api: HttpUrl,
    pub metadata: HttpUrl,
}

impl Endpoints {
    /// A plain-HTTP API, which settings accept only on loopback (tests): no proxy, no TLS.
    pub fn api_is_loopback(&self) -> bool {
        !self.api.is_https()
    }
}

/// One cloud. Each call makes at most one request (or a fixed few, documented per call) and
/// never retries: the agent decides about waiting. Every call honours `deadline`.
pub trait Provider {
    /// This server's id, from the metadata service.
    fn server_id(&self, deadline: &Deadline) -> Result<ServerId, Fault>;
    /// Whether the metadata service says this server holds exactly `ip` now. No API request.
    fn holds_locally(&self, ip: IpAddr, deadline: &Deadline) -> Result<bool, Fault>;
    /// The API's view of `ip`. Needs the token.
    fn holding(&self, ip: IpAddr, deadline: &Deadline) -> Result<IpHolding, Fault>;
    /// Ask the API to point `ip` at `server` (moving it from any other). Returns the action and
    /// its state as the answer gave it.
    fn assign(
        &self,
        ip: IpAddr,
        server: &ServerId,
        deadline: &Deadline,
    ) -> Result<(ActionId, ActionState), Fault>;
    /// The state of an action started by `assign`.
    fn action_state(
        &self,
        ip: IpAddr,
        action: &ActionId,
        deadline: &Deadline,
    ) -> Result<ActionState, Fault>;
}

/// The clouds this agent speaks to (the `provider` parameter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    DigitalOcean,
}

impl ParamValue for ProviderKind {
    const KIND: ParamKind = ParamKind::String;
    fn parse(text: &str) -> Result<Self, String> {
        // `do`: a shorthand accepted since the first release, not advertised.
        if text.trim().eq_ignore_ascii_case("do") {
            return Ok(ProviderKind::DigitalOcean);
        }
        choice(text, &[("digitalocean", ProviderKind::DigitalOcean)])
    }
}

impl ProviderKind {
    /// Whether this cloud can float `ip` (address family, ranges): the words complete
    /// "parameter 'ip': '<value>' …".
    pub fn check_address(self, ip: IpAddr) -> Result<(), String> {
        match self {
            ProviderKind::DigitalOcean => digitalocean::check_address(ip),
        }
    }

    /// The provider itself. `token` may be None for calls that need only the metadata service.
    pub fn connect(self, endpoints: &Endpoints, token: Option<Secret>) -> Box<dyn Provider> {
        match self {
            ProviderKind::DigitalOcean => {
                Box::new(digitalocean::DigitalOcean::new(endpoints, token))
            }
        }
    }
}
