//! The instance parameters, checked and typed (OCF_CHECK_LEVEL 0): the address, the endpoints
//! and the provider. Anything wrong here is wrong on every node: 6, naming the parameter.

use crate::provider::{Endpoints, ProviderKind};
use cloudha_common::url::HttpUrl;
use cloudha_common::{Context, OcfError, OcfResult};
use std::net::IpAddr;

#[derive(Clone, Debug)]
pub struct Config {
    pub ip: IpAddr,
    pub provider: ProviderKind,
    pub endpoints: Endpoints,
}

/// The floating IP, checked for syntax and for what the provider can float.
pub fn address(ctx: &Context, provider: ProviderKind) -> OcfResult<IpAddr> {
    let raw = ctx.params.require("ip")?;
    let name = ctx.params.given_as("ip");
    let ip = raw.trim().parse::<IpAddr>().map_err(|_| {
        OcfError::configured(format!(
            "parameter '{name}': '{raw}' is not an IPv4 or IPv6 address"
        ))
    })?;
    provider
        .check_address(ip)
        .map_err(|why| OcfError::configured(format!("parameter '{name}': {why}")))?;
    Ok(ip)
}

pub fn provider(ctx: &Context) -> OcfResult<ProviderKind> {
    let name = ctx.params.get("provider").unwrap_or("digitalocean");
    ProviderKind::parse(name).ok_or_else(|| {
        OcfError::configured(format!(
            "parameter 'provider': '{name}' is not supported (supported: {})",
            ProviderKind::NAMES.join(", ")
        ))
    })
}

fn url(ctx: &Context, param: &str) -> OcfResult<(String, HttpUrl)> {
    let raw = ctx.params.require(param)?;
    let parsed = HttpUrl::parse(raw.trim())
        .map_err(|why| OcfError::configured(format!("parameter '{param}': '{raw}' {why}")))?;
    Ok((raw.trim().to_string(), parsed))
}

impl Config {
    /// Every parameter but the token, checked.
    pub fn from_params(ctx: &Context) -> OcfResult<Config> {
        let provider = provider(ctx)?;
        let ip = address(ctx, provider)?;
        let (api_url, api) = url(ctx, "api_url")?;
        if !api.https && !api.is_loopback() {
            return Err(OcfError::configured(format!(
                "parameter 'api_url': '{api_url}' is plain http: the token would cross the network in clear; use https:// (http:// is accepted for loopback test APIs only)"
            )));
        }
        let (metadata_url, _) = url(ctx, "metadata_url")?;
        Ok(Config {
            ip,
            provider,
            endpoints: Endpoints {
                api_url,
                api_is_loopback: !api.https,
                metadata_url,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SPEC;
    use cloudha_common::{Action, Logger, OcfCode, OcfEnv};

    fn config(vars: &[(&str, &str)]) -> OcfResult<Config> {
        let env = OcfEnv::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Config::from_params(&Context::new(
            &SPEC,
            Action::ValidateAll,
            env,
            Logger::stderr("t"),
        ))
    }

    #[test]
    fn defaults_and_legacy_name() {
        let c = config(&[("OCF_RESKEY_floating_ip", "203.0.113.7")]).unwrap();
        assert_eq!(c.ip.to_string(), "203.0.113.7");
        assert_eq!(c.provider, ProviderKind::DigitalOcean);
        assert_eq!(c.endpoints.api_url, "https://api.digitalocean.com");
        assert!(!c.endpoints.api_is_loopback);
        assert_eq!(
            c.endpoints.metadata_url,
            "http://169.254.169.254/metadata/v1"
        );
    }

    #[test]
    fn errors_name_the_parameter() {
        let reason = |vars: &[(&str, &str)]| {
            let e = config(vars).unwrap_err();
            assert_eq!(e.code, OcfCode::ErrConfigured, "{}", e.reason);
            e.reason
        };
        assert_eq!(
            reason(&[]),
            "parameter 'ip' or 'floating_ip' is required but not set"
        );
        assert_eq!(
            reason(&[("OCF_RESKEY_floating_ip", "10.1.2")]),
            "parameter 'floating_ip': '10.1.2' is not an IPv4 or IPv6 address"
        );
        assert!(reason(&[("OCF_RESKEY_ip", "2001:db8::5")]).contains("IPv6"));
        assert!(reason(&[
            ("OCF_RESKEY_ip", "203.0.113.7"),
            ("OCF_RESKEY_api_url", "http://api.example.com")
        ])
        .starts_with("parameter 'api_url': 'http://api.example.com' is plain http"));
        assert!(reason(&[
            ("OCF_RESKEY_ip", "203.0.113.7"),
            ("OCF_RESKEY_metadata_url", "169.254.169.254")
        ])
        .starts_with("parameter 'metadata_url': '169.254.169.254' must start with"));
        assert_eq!(
            reason(&[
                ("OCF_RESKEY_ip", "203.0.113.7"),
                ("OCF_RESKEY_provider", "aws")
            ]),
            "parameter 'provider': 'aws' is not supported (supported: digitalocean)"
        );
    }

    #[test]
    fn loopback_http_is_a_test_api() {
        let c = config(&[
            ("OCF_RESKEY_ip", "203.0.113.7"),
            ("OCF_RESKEY_api_url", "http://127.0.0.1:8080"),
        ])
        .unwrap();
        assert!(c.endpoints.api_is_loopback);
    }
}
