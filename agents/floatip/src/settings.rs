//! The instance parameters, checked and typed (OCF_CHECK_LEVEL 0): the address, the endpoints
//! and the provider. Anything wrong here is wrong on every node: 6, naming the parameter.
//! The token is read apart (`token`): a stop and most monitors never need it.

use crate::provider::{Endpoints, PlaceParams, ProviderKind};
use crate::{API_KEY, API_URL, IP, METADATA_URL, PROVIDER, ZONE};
use cloudha_common::{Context, OcfResult};
use std::net::IpAddr;

#[derive(Clone, Debug)]
pub struct Settings {
    pub ip: IpAddr,
    pub provider: ProviderKind,
    pub endpoints: Endpoints,
}

impl Settings {
    /// Every parameter but the token, checked.
    pub fn from(ctx: &Context) -> OcfResult<Settings> {
        let p = &ctx.params;
        let provider = p.need(&PROVIDER)?;
        let ip = p.need(&IP)?;
        provider
            .check_address(ip)
            .map_err(|why| p.invalid(&IP, why))?;
        let names = PlaceParams {
            api_key: &API_KEY,
            zone: &ZONE,
            api_url: &API_URL,
            metadata_url: &METADATA_URL,
        };
        let endpoints = Endpoints::from_params(p, provider, &names)?;
        Ok(Settings {
            ip,
            provider,
            endpoints,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SPEC;
    use cloudha_common::{Action, Logger, OcfCode, OcfEnv};

    fn settings(vars: &[(&str, &str)]) -> OcfResult<Settings> {
        let env = OcfEnv::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Settings::from(&Context::new(
            &SPEC,
            Action::ValidateAll,
            env,
            Logger::stderr("t"),
        ))
    }

    #[test]
    fn every_default_parses() {
        assert_eq!(SPEC.check_defaults(), Ok(()));
    }

    #[test]
    fn defaults_and_legacy_name() {
        let c = settings(&[("OCF_RESKEY_floating_ip", "203.0.113.7")]).unwrap();
        assert_eq!(c.ip.to_string(), "203.0.113.7");
        assert_eq!(c.provider.name(), "digitalocean");
        assert_eq!(
            c.endpoints.api.as_ref().unwrap().as_str(),
            "https://api.digitalocean.com"
        );
        assert!(!c.endpoints.api_is_loopback());
        assert_eq!(
            c.endpoints.metadata.as_str(),
            "http://169.254.169.254/metadata/v1"
        );
    }

    #[test]
    fn errors_name_the_parameter() {
        let reason = |vars: &[(&str, &str)]| {
            let e = settings(vars).unwrap_err();
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
            format!(
                "parameter 'provider': 'aws' is not supported (supported: {})",
                crate::provider::PROVIDERS
                    .iter()
                    .map(|c| c.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        );
        assert!(reason(&[
            ("OCF_RESKEY_ip", "203.0.113.7"),
            ("OCF_RESKEY_provider", "aws")
        ])
        .contains("digitalocean, hetzner"));
        assert!(reason(&[
            ("OCF_RESKEY_ip", "2001:db8::5"),
            ("OCF_RESKEY_provider", "hetzner")
        ])
        .contains("/64"));
    }

    #[test]
    fn each_provider_has_its_own_endpoints() {
        let c = settings(&[
            ("OCF_RESKEY_ip", "203.0.113.7"),
            ("OCF_RESKEY_provider", "hetzner"),
        ])
        .unwrap();
        assert_eq!(c.provider.name(), "hetzner");
        assert_eq!(
            c.endpoints.api.as_ref().unwrap().as_str(),
            "https://api.hetzner.cloud"
        );
        assert_eq!(
            c.endpoints.metadata.as_str(),
            "http://169.254.169.254/hetzner/v1/metadata"
        );
        let c = settings(&[
            ("OCF_RESKEY_ip", "203.0.113.7"),
            ("OCF_RESKEY_provider", "hetzner"),
            ("OCF_RESKEY_api_url", "http://127.0.0.1:8080"),
        ])
        .unwrap();
        assert_eq!(
            c.endpoints.api.as_ref().unwrap().as_str(),
            "http://127.0.0.1:8080"
        );
    }

    #[test]
    fn exoscale_needs_a_key_and_builds_its_api_from_the_zone() {
        let ip = ("OCF_RESKEY_ip", "203.0.113.7");
        let exo = ("OCF_RESKEY_provider", "exoscale");
        let e = settings(&[ip, exo]).unwrap_err();
        assert_eq!(e.code, OcfCode::ErrConfigured);
        assert_eq!(e.reason, "parameter 'api_key' is required but not set");
        let key = ("OCF_RESKEY_api_key", "EXO0123456789abcdef");
        let c = settings(&[ip, exo, key]).unwrap();
        assert_eq!(c.provider.name(), "exoscale");
        assert!(
            c.endpoints.api.is_none(),
            "the zone comes from the metadata"
        );
        assert_eq!(c.endpoints.api_key.as_deref(), Some("EXO0123456789abcdef"));
        assert_eq!(
            c.endpoints.metadata.as_str(),
            "http://169.254.169.254/latest/meta-data"
        );
        let c = settings(&[ip, exo, key, ("OCF_RESKEY_zone", "de-fra-1")]).unwrap();
        assert_eq!(
            c.endpoints.api.as_ref().unwrap().as_str(),
            "https://api-de-fra-1.exoscale.com"
        );
        let e = settings(&[ip, exo, key, ("OCF_RESKEY_zone", "evil.example/x")]).unwrap_err();
        assert!(e.reason.starts_with("parameter 'zone': "), "{}", e.reason);
        // Not used by the other providers.
        let c = settings(&[ip, key]).unwrap();
        assert!(c.endpoints.api_key.is_none());
    }

    #[test]
    fn loopback_http_is_a_test_api() {
        let c = settings(&[
            ("OCF_RESKEY_ip", "203.0.113.7"),
            ("OCF_RESKEY_api_url", "http://127.0.0.1:8080"),
        ])
        .unwrap();
        assert!(c.endpoints.api_is_loopback());
    }
}
