//! The parameters, checked once: the provider and its endpoints (the same rules as floatip's:
//! the provider's own URLs by default, plain http only on loopback), the timeout and the race
//! check. The token is read apart (`token`), the plug by the actions that need it.

use crate::{API_KEY, API_URL, METADATA_URL, POWER_TIMEOUT, PROVIDER, SKIP_RACE_CHECK, ZONE};
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
        // Where the cloud signs (Exoscale): the key the secret signs for (as floatip).
        let api_key = match provider.api_key {
            Some(_) => {
                let key = p.need(&API_KEY)?;
                if key.trim().is_empty() || key.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(p.invalid(&API_KEY, "is not an API key"));
                }
                Some(key)
            }
            None => None,
        };
        // Where the API is per zone (Exoscale): the zone's API, when the zone is set.
        let zone = match (&provider.zone, p.read(&ZONE)?) {
            (Some(zoned), Some(z)) => {
                Some((zoned.api_url)(&z).map_err(|why| p.invalid(&ZONE, why))?)
            }
            _ => None,
        };
        let api = match (p.read(&API_URL)?, zone, default_api) {
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
                api,
                metadata,
                api_key,
            },
            power_timeout,
            race_check: !p.need(&SKIP_RACE_CHECK)?,
        })
    }
}
