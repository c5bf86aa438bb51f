//! `floatip`: the OCF resource agent that points a cloud's floating (reserved) IP at this
//! server. The declaration is here; the parameters are checked in `settings`, the rules are in
//! `actions`, the clouds behind `provider`.

mod actions;
mod record;
mod settings;
mod token;

use actions::{Cloud, Floatip};
use cloudha_cloud::provider;
use cloudha_common::{ActionSpec, AgentSpec, HttpUrl, Param, Secret};
use provider::ProviderKind;
use std::net::IpAddr;

pub static IP: Param<IpAddr> = Param::new("ip")
    .required()
    .unique()
    .aliases(&["floating_ip"])
    .short("The floating/reserved IPv4 address")
    .long("The floating (reserved) IPv4 address to point at this node, e.g. 203.0.113.7. It must belong to the account of the API token.");

pub static API_TOKEN: Param<Secret> = Param::new("api_token")
    .aliases(&["do_token"])
    .short("API token (secret)")
    .long("The cloud API token, with write access to floating (reserved) IPs; with provider=exoscale, the API key's secret. Prefer api_token_file, or store it with cibsecret so that it is not kept in the CIB. Never logged. One of api_token and api_token_file is required; api_token wins when both are set.");

pub static API_TOKEN_FILE: Param<String> = Param::new("api_token_file")
    .short("File holding the API token")
    .long("A file that holds the API token (with provider=exoscale: the API secret) on its first non-empty line, owned by root and writable by no one else (it is refused otherwise; a warning is logged when others can read it). Must exist on every node.");

pub static API_KEY: Param<String> = Param::new("api_key")
    .short("API key (provider=exoscale)")
    .long("Exoscale's API key (EXO...), whose secret is api_token or api_token_file: requests are signed with it (EXO2-HMAC-SHA256), and the secret never crosses the network. Required with provider=exoscale; not used by the other providers.");

pub static ZONE: Param<String> = Param::new("zone")
    .short("Zone (provider=exoscale; default: this instance's)")
    .long("The Exoscale zone of the elastic IP and the instances, e.g. ch-gva-2; the API is https://api-<zone>.exoscale.com. Not set: the metadata service's availability-zone. Not used by the other providers.");

pub static API_URL: Param<HttpUrl> = Param::new("api_url")
    .short("API base URL (default: the provider's)")
    .long("The cloud API's base URL. Not set: the provider's own, https://api.digitalocean.com (digitalocean), https://api.hetzner.cloud (hetzner) or https://api-<zone>.exoscale.com (exoscale). TLS is verified with the system's root certificates. Plain http:// is accepted only for loopback hosts (test APIs).");

pub static METADATA_URL: Param<HttpUrl> = Param::new("metadata_url")
    .short("Metadata service base URL (default: the provider's)")
    .long("The server's metadata service (its id; at DigitalOcean also the reserved IP it holds, which is all a monitor reads there). Not set: the provider's own, http://169.254.169.254/metadata/v1 (digitalocean), http://169.254.169.254/hetzner/v1/metadata (hetzner) or http://169.254.169.254/latest/meta-data (exoscale).");

pub static PROVIDER: Param<ProviderKind> = Param::new("provider")
    .default("digitalocean")
    .short("Cloud provider")
    .long("The cloud whose API and metadata service to use. Supported: digitalocean, hetzner, exoscale.");

pub static SPEC: AgentSpec = AgentSpec {
    name: "floatip",
    version: env!("CARGO_PKG_VERSION"),
    shortdesc: "Points a cloud floating/reserved IP at this node",
    longdesc: "Makes this node's server the holder of a floating (reserved) IP through the cloud's API (provider: DigitalOcean, Hetzner, Exoscale), \
and answers where the address points from the server's metadata service where it can tell (DigitalOcean), else from one API read. \
start: when this server already holds the address, nothing is done; otherwise one assign action moves it here, \
the agent waits until the API reports the action completed (watching the metadata service often and polling the API \
quickly at first, then backing off), confirms the holder with the API and records that it started. \
An action pending (DigitalOcean's 422, Hetzner's 423 and 409), 429 (rate limit; retry-after and ratelimit-reset are honoured), \
5xx and connection errors are retried within the action's timeout; an errored action or the timeout gives 1; a token \
rejected or an address unknown in the cloud's own error body gives 6. \
At Exoscale an elastic IP may be attached to several instances at once and an attach does not detach the others: \
start attaches it here, then detaches every other holder (each operation polled), and confirms that this instance alone holds it. \
When a detach fails for good or the time runs out, start detaches this instance again, so that two holders are never left \
by it, and fails with 1. \
stop does not unassign: it removes the record, so that the next start elsewhere moves the address in one action; \
it needs neither the API nor the token. \
monitor (probes included) answers 7 when this node holds no record from this boot (stopped here, never started, or \
rebooted since). With a record, where the metadata service can tell (DigitalOcean), it asks that service only, never the API: 0 when this server holds exactly \
the configured address, 7 when it does not. The metadata service may lag an assignment: during the 60 s after a start, \
a \"not here\" is checked with one API read, which decides. A metadata service that cannot be read or answers \
garbage is retried until the timeout, then 1; it never reads as running. \
Where the metadata service cannot tell (Hetzner, Exoscale), a monitor with a record makes one API request, never a listing: \
the one IP by the id the start recorded (Hetzner), or the one instance the start ran on, with its elastic IPs (Exoscale); a failed read is retried until the timeout, then 1 (never 7). \
validate-all checks the parameters; with OCF_CHECK_LEVEL=10 it also finds the address through the API (one read; a listing at Hetzner; the elastic IPs and the instances at Exoscale), \
which proves the token works and the address is in the account. \
The tutorial agent's parameter names do_token and floating_ip work unchanged; this agent is installed as \
ocf:digitalocean:floatip too.",
    params: &[
        &IP.spec,
        &API_TOKEN.spec,
        &API_TOKEN_FILE.spec,
        &API_KEY.spec,
        &ZONE.spec,
        &API_URL.spec,
        &METADATA_URL.spec,
        &PROVIDER.spec,
    ],
    actions: &[
        ActionSpec::new("start", 60),
        ActionSpec::new("stop", 20),
        ActionSpec::new("monitor", 20).interval(10).depth(0),
        ActionSpec::new("notify", 5),
        ActionSpec::new("validate-all", 30),
        ActionSpec::new("meta-data", 5),
    ],
};

fn main() {
    cloudha_common::runner::main(&Floatip { connect: Cloud })
}
