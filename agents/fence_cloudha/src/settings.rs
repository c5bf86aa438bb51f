//! The parameters, checked once: the provider and its endpoints (the same rules as floatip's:
//! the provider's own URLs by default, plain http only on loopback), the timeout and the race
//! check. The token is read apart (`token`), the plug by the actions that need it.

use crate::{API_URL, METADATA_URL, POWER_TIMEOUT, PROVIDER, SKIP_RACE_CHECK};
use cloudha_cloud::provider::{Endpoints, ProviderKind};
use cloudha_common::{Context, HttpUrl, OcfError, OcfResult};
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
        let (default_api, default_metadata) = provider.default_endpoints();
        let own = |url: &str| {
            HttpUrl::parse(url).map_err(|why| {
                OcfError::generic(format!("the {provider:?} default URL {url} {why}"))
            })
        };
        let api = match (p.read(&API_URL)?, default_api) {
            (Some(url), _) => url,
            (None, Some(url)) => own(url)?,
            (None, None) => {
                return Err(p.invalid(&PROVIDER, "needs api_url for fencing (no default API)"))
            }
        };
        if !api.is_https() && !api.is_loopback() {
            return Err(p.invalid(
                &API_URL,
                "is plain http: the token would cross the network in clear; use https:// (http:// is accepted for loopback test APIs only)",
            ));
        }
        let metadata = match p.read(&METADATA_URL)? {
            Some(url) => url,
            None => own(default_metadata)?,
        };
        let power_timeout = p.need(&POWER_TIMEOUT)?.0;
        if power_timeout.is_zero() {
            return Err(p.invalid(&POWER_TIMEOUT, "is 0: off could never be confirmed"));
        }
        Ok(Settings {
            provider,
            endpoints: Endpoints {
                api: Some(api),
                metadata,
                api_key: None,
            },
            power_timeout,
            race_check: !p.need(&SKIP_RACE_CHECK)?,
        })
    }
}
