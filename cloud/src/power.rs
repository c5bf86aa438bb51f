//! Servers' power through a cloud's API, for fencing (`fence_cloudha`): find a server by its name
//! or id, tell whether it is on, power it off hard (or on), follow the action the API started,
//! and tell whether a power action is already under way on a server (the race check). One module
//! per cloud under `power/`, on the same transport and faults as `provider`.

pub mod digitalocean;
pub mod exoscale;
pub mod hetzner;
pub mod vultr;

use crate::provider::{ActionId, ActionState, Endpoints, Fault, ProviderKind, ServerId};
use cloudha_common::{Deadline, Secret};
use std::fmt;

/// A server's power as the API reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PowerState {
    On,
    Off,
    /// Anything else (being created, archived, between states): neither on nor off yet.
    Other(String),
}

impl fmt::Display for PowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PowerState::On => f.write_str("on"),
            PowerState::Off => f.write_str("off"),
            PowerState::Other(s) => write!(f, "'{s}'"),
        }
    }
}

/// One server: its id, its name and its power.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    pub id: ServerId,
    pub name: String,
    pub state: PowerState,
}

/// The one server of `found` whose name is `plug` (any case). The words of the faults are the
/// cloud's: `noun` ("droplet"), `named` ("named", Vultr's "labelled"), `or_id` ("numbered",
/// "with the id") and `place` ("account", "project", "zone").
pub fn the_one_named(
    found: Vec<Server>,
    plug: &str,
    (noun, named, or_id, place): (&str, &str, &str, &str),
) -> Result<Server, Fault> {
    let mut matching: Vec<Server> = found
        .into_iter()
        .filter(|s| s.name.eq_ignore_ascii_case(plug))
        .collect();
    match matching.len() {
        1 => Ok(matching.remove(0)),
        0 => Err(Fault::Refused(format!(
            "no {noun} {named} or {or_id} '{plug}' in this {place}"
        ))),
        n => Err(Fault::Refused(format!(
            "{n} {noun}s are {named} '{plug}': give the {noun} id instead (pcmk_host_map)"
        ))),
    }
}

/// Which way to switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switch {
    /// A hard power-off (the cord pulled), never a graceful shutdown.
    Off,
    On,
}

impl Switch {
    pub fn word(self) -> &'static str {
        match self {
            Switch::Off => "off",
            Switch::On => "on",
        }
    }
    /// The power state this switch leads to.
    pub fn target(self) -> PowerState {
        match self {
            Switch::Off => PowerState::Off,
            Switch::On => PowerState::On,
        }
    }
}

/// What a fence agent asks of a cloud. Each call makes one request (or the pages of one
/// listing) and never retries: the agent waits and retries, the same way for every cloud.
pub trait Power {
    /// What the cloud calls a server, for messages.
    fn server_word(&self) -> &'static str;
    /// This server's own id, from the metadata service.
    fn own_id(&self, deadline: &Deadline) -> Result<ServerId, Fault>;
    /// The server a plug names: its id (all digits) or its exact name. `Fault::Refused` when
    /// there is none, or when several share the name.
    fn find(&self, plug: &str, deadline: &Deadline) -> Result<Server, Fault>;
    /// One server by id.
    fn server(&self, id: &ServerId, deadline: &Deadline) -> Result<Server, Fault>;
    /// Every server the token can see.
    fn list(&self, deadline: &Deadline) -> Result<Vec<Server>, Fault>;
    /// Start powering `id` off (hard) or on: the action and its state as the answer gave it.
    /// `Fault::Busy` when the API refuses because an action is pending or the server is
    /// already there: read its state again.
    fn switch(
        &self,
        id: &ServerId,
        to: Switch,
        deadline: &Deadline,
    ) -> Result<(ActionId, ActionState), Fault>;
    /// The state of an action `switch` started.
    fn action_state(&self, action: &ActionId, deadline: &Deadline) -> Result<ActionState, Fault>;
    /// A power action that takes `id` down (off, cycle, shutdown, reboot) and is still under
    /// way, by its type, if any: the race check's question about this node's own server.
    fn going_down(&self, id: &ServerId, deadline: &Deadline) -> Result<Option<String>, Fault>;
    /// One cheap read that proves the token works.
    fn check_token(&self, deadline: &Deadline) -> Result<(), Fault>;
    /// Whether the agent may poll every 50 ms at first (up to 20 requests a second). False
    /// where the API's limit per second is close to that (Vultr: 30 a second per source
    /// address, shared with floatip on the same node).
    fn fast_polling(&self) -> bool {
        true
    }
}

/// The power side of `kind`, or why it has none yet.
pub fn connect(
    kind: ProviderKind,
    endpoints: &Endpoints,
    token: Secret,
) -> Result<Box<dyn Power>, String> {
    match kind.name() {
        "digitalocean" => Ok(Box::new(digitalocean::DigitalOceanPower::new(
            endpoints, token,
        )?)),
        "hetzner" => Ok(Box::new(hetzner::HetznerPower::new(endpoints, token)?)),
        "vultr" => Ok(Box::new(vultr::VultrPower::new(endpoints, token)?)),
        // The token is the secret of the API key (`endpoints.api_key`) that signs requests.
        "exoscale" => Ok(Box::new(exoscale::ExoscalePower::new(endpoints, token)?)),
        other => Err(format!(
            "fencing through the {other} API is not supported yet (supported: digitalocean, hetzner, vultr, exoscale)"
        )),
    }
}
