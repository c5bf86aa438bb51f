//! `fence_cloudha`: a fence agent for pacemaker-fenced that powers a cloud server off (hard) or
//! on through the cloud's API, with the same credentials and provider code as `floatip`.
//! The declaration is here; `input` reads the fencer's stdin or a person's options, `metadata`
//! renders fence-agents' XML, `settings` checks the parameters, `actions` does the work.

mod actions;
mod input;
mod metadata;
mod settings;

use cloudha_cloud::provider::ProviderKind;
use cloudha_cloud::token::{self, TokenParams};
use cloudha_common::{AgentSpec, HttpUrl, Param, Seconds, Secret};

pub static ACTION: Param<String> = Param::new("action")
    .required()
    .default("reboot")
    .short("Fencing action")
    .long("off, on, reboot, status, list, list-status, monitor, metadata or validate-all.");

pub static PLUG: Param<String> = Param::new("plug")
    .required()
    .aliases(&["port"])
    .short("The server to fence: its name or id")
    .long("The cloud server's name (exact, case-insensitive; a Vultr instance's label) or id (a number; a UUID on Vultr and Exoscale). Pacemaker sends the node name, or its alias from pcmk_host_map.");

pub static PROVIDER: Param<ProviderKind> = Param::new("provider")
    .default("digitalocean")
    .short("Cloud provider")
    .long("The cloud whose API powers the servers. Supported: digitalocean, hetzner, vultr, exoscale (exoscale needs api_key, and zone or api_url unless the metadata service tells the zone).");

pub static API_TOKEN: Param<Secret> = Param::new("api_token")
    .aliases(&["do_token"])
    .short("API token (secret)")
    .long("The cloud API token, with write access to the servers. Prefer api_token_file: a value here is kept in the CIB. Never logged, never accepted as a command-line option.");

pub static API_TOKEN_FILE: Param<String> = Param::new("api_token_file")
    .short("File holding the API token")
    .long("A file that holds the API token on its first non-empty line (or as apiToken: in YAML), owned by root and writable by no one else. Must exist on every node.");

/// The token's two parameters, as `cloudha_cloud::token` reads them.
pub static TOKEN: TokenParams = TokenParams {
    token: &API_TOKEN,
    file: &API_TOKEN_FILE,
};

pub static API_KEY: Param<String> = Param::new("api_key")
    .short("Exoscale: the API key (EXO...)")
    .long("provider=exoscale only (required there): the API key whose secret is api_token or api_token_file. Requests are signed with it (EXO2-HMAC-SHA256): the secret never crosses the network.");

pub static ZONE: Param<String> = Param::new("zone")
    .short("Exoscale: the zone (e.g. ch-gva-2)")
    .long("provider=exoscale only: the zone of the instances; the API is then https://api-<zone>.exoscale.com. Not set, and no api_url: the metadata service's availability-zone.");

pub static API_URL: Param<HttpUrl> = Param::new("api_url")
    .short("API base URL (default: the provider's)")
    .long("The cloud API's base URL; the provider's own when unset (https://api.digitalocean.com, https://api.hetzner.cloud). Plain http:// is accepted for loopback hosts only (test APIs).");

pub static METADATA_URL: Param<HttpUrl> = Param::new("metadata_url")
    .short("Metadata service base URL (default: the provider's)")
    .long("This node's metadata service, which names this node's own server for the race check; the provider's own when unset (http://169.254.169.254/metadata/v1, http://169.254.169.254/hetzner/v1/metadata).");

pub static POWER_TIMEOUT: Param<Seconds> = Param::new("power_timeout")
    .default("60")
    .short("Seconds to wait for the server to be off (or on)")
    .long("How long off (and on) waits for the API to report the server off (on), requests and retries included; running out is a failure. Keep stonith-timeout (or pcmk_off_timeout/pcmk_reboot_timeout) above it: twice it for reboot.");

pub static SKIP_RACE_CHECK: Param<bool> = Param::new("skip_race_check")
    .default("false")
    .short("Fence even when this node's own server is going down")
    .long("By default off and reboot first read this node's own server (its id from the metadata service): when it is not on, or a power-off, power cycle, shutdown or reboot is under way on it, this node is the one being fenced and it does not fence its peer (as fence_aws does). Set true to skip the check.");

pub static SPEC: AgentSpec = AgentSpec {
    name: "fence_cloudha",
    version: env!("CARGO_PKG_VERSION"),
    shortdesc: "Fence agent for cloud servers through the cloud's API (DigitalOcean, Hetzner Cloud, Vultr, Exoscale)",
    longdesc: "fence_cloudha powers a cloud server off (a hard power-off, the cord pulled) or on through the cloud's API. \
off returns success only once the API reports the server off; a server already off is success; running out of power_timeout is a failure. \
reboot is off then on; once off succeeded, a failure to power on is only logged. \
status answers 0 (on), 2 (off) or 1 (cannot tell); list prints id,name of every server the token sees. \
monitor proves the token works with one API read. \
Race safety: off and reboot first check that this node's own server is on and not being powered off; otherwise this node does not fence its peer. \
API faults (5xx, connection errors, 429 with its retry hint, a pending action) are retried within power_timeout. \
Vultr (halt) and Exoscale (:stop): whether the API's power-off is hard or a graceful shutdown is not documented (UNCONFIRMED); \
the agent still waits until the API says stopped, and fails when power_timeout runs out.",
    params: &[
        &ACTION.spec,
        &PLUG.spec,
        &PROVIDER.spec,
        &API_TOKEN.spec,
        &API_TOKEN_FILE.spec,
        &API_URL.spec,
        &METADATA_URL.spec,
        &API_KEY.spec,
        &ZONE.spec,
        &POWER_TIMEOUT.spec,
        &SKIP_RACE_CHECK.spec,
    ],
    actions: &[],
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(actions::main(&args, std::io::stdin().lock()));
}
