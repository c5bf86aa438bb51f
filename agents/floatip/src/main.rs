//! `floatip`: the OCF resource agent that points a cloud's floating (reserved) IP at this
//! server. The declaration is here; the parameters are checked in `settings`, the rules are in
//! `actions`, the clouds behind `provider`.

mod actions;
mod describe;
mod record;
mod settings;

use actions::{Cloud, Floatip};
use cloudha_cloud::provider;
use cloudha_cloud::token::{self, TokenParams};
use cloudha_common::{ActionSpec, AgentSpec, HttpUrl, Param, Secret};
use describe::text;
use provider::{ProviderKind, PROVIDERS};
use std::net::IpAddr;

// Every text that names a cloud is built from `provider::PROVIDERS` (`describe`).

pub static IP: Param<IpAddr> = Param::new("ip")
    .required()
    .unique()
    .aliases(&["floating_ip"])
    .short("The floating/reserved IPv4 address")
    .long(text!(ip_long));

pub static API_TOKEN: Param<Secret> = Param::new("api_token")
    .aliases(&["do_token"])
    .short("API token (secret)")
    .long(text!(api_token_long));

pub static API_TOKEN_FILE: Param<String> = Param::new("api_token_file")
    .short("File holding the API token")
    .long(text!(api_token_file_long));

/// The token's two parameters, as `cloudha_cloud::token` reads them.
pub static TOKEN: TokenParams = TokenParams {
    token: &API_TOKEN,
    file: &API_TOKEN_FILE,
};

pub static API_KEY: Param<String> = Param::new("api_key")
    .short(text!(api_key_short))
    .long(text!(api_key_long));

pub static ZONE: Param<String> = Param::new("zone")
    .short(text!(zone_short))
    .long(text!(zone_long));

pub static API_URL: Param<HttpUrl> = Param::new("api_url")
    .short("API base URL (default: the provider's)")
    .long(text!(api_url_long));

pub static METADATA_URL: Param<HttpUrl> = Param::new("metadata_url")
    .short("Metadata service base URL (default: the provider's)")
    .long(text!(metadata_url_long));

pub static PROVIDER: Param<ProviderKind> = Param::new("provider")
    .default(PROVIDERS[0].name)
    .short("Cloud provider")
    .long(text!(provider_long));

pub static SPEC: AgentSpec = AgentSpec {
    name: "floatip",
    version: env!("CARGO_PKG_VERSION"),
    shortdesc: "Points a cloud floating/reserved IP at this node",
    longdesc: text!(longdesc),
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
