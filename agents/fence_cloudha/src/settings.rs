//! The parameters, checked once: the provider and its endpoints (the same rules as floatip's:
//! the provider's own URLs by default, plain http only on loopback), the timeout and the race
//! check. The token is read apart (`token`), the plug by the actions that need it.

use crate::{API_KEY, API_URL, METADATA_URL, POWER_TIMEOUT, PROVIDER, SKIP_RACE_CHECK, ZONE};
use cloudha_cloud::provider::{Endpoints, PlaceParams, ProviderKind};
use cloudha_common::{Context, OcfResult};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Settings {
    pub provider: ProviderKind,
    pub endpoints: Endpoints,
    pub power_timeout: Duration,
    pub race_check: bool,
}

impl Settings {
    pub fn from(ctx: &Context) -> OcfResult<Settings> {
        let p = &ctx.params;
        p.check_all()?;
        let provider = p.need(&PROVIDER)?;
        let names = PlaceParams {
            api_key: &API_KEY,
            zone: &ZONE,
            api_url: &API_URL,
            metadata_url: &METADATA_URL,
        };
        let endpoints = Endpoints::from_params(p, provider, &names)?;
        let power_timeout = p.need(&POWER_TIMEOUT)?.0;
        if power_timeout.is_zero() {
            return Err(p.invalid(&POWER_TIMEOUT, "is 0: off could never be confirmed"));
        }
        Ok(Settings {
            provider,
            endpoints,
            power_timeout,
            race_check: !p.need(&SKIP_RACE_CHECK)?,
        })
    }
}
