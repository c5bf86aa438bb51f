//! HTTP plumbing shared by the API client and the metadata reader: ureq agents whose resolver
//! answers IP literals (the metadata service's 169.254.169.254) without a lookup. ureq's own
//! resolver spawns a thread per lookup when a timeout is set, even for a literal; a monitor is
//! one request in a short process, and that thread was a third of its time.

use cloudha_common::Deadline;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

/// IP literals as they are; names through ureq's resolver (bounded by the request's timeout).
#[derive(Debug, Default)]
pub struct LiteralFirst {
    names: DefaultResolver,
}

/// The address of a URI whose host is an IP literal.
fn literal(uri: &Uri) -> Option<SocketAddr> {
    let authority = uri.authority()?;
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: IpAddr = host.parse().ok()?;
    let port = authority
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    Some(SocketAddr::new(ip, port))
}

impl Resolver for LiteralFirst {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        match literal(uri) {
            Some(addr) => {
                let mut v = self.empty();
                v.push(addr);
                Ok(v)
            }
            None => self.names.resolve(uri, config, timeout),
        }
    }
}

/// An agent with `config` and the literal-first resolver.
pub fn agent(config: Config) -> ureq::Agent {
    ureq::Agent::with_parts(config, DefaultConnector::new(), LiteralFirst::default())
}

/// The longest one metadata request may take; a retry follows if the deadline allows.
const METADATA_PER_TRY: Duration = Duration::from_secs(2);
const METADATA_MAX_BODY: u64 = 64 * 1024;

/// A cloud's metadata service (plain HTTP, link-local, no auth). Never retries: callers do.
pub struct Metadata {
    base: String,
    agent: ureq::Agent,
}

impl Metadata {
    pub fn new(base: &str) -> Metadata {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // Link-local: a proxy from the environment could only get this wrong.
            .proxy(None)
            .max_redirects(0)
            .user_agent(concat!("cloudha-floatip/", env!("CARGO_PKG_VERSION")))
            .build();
        Metadata {
            base: base.trim_end_matches('/').to_string(),
            agent: agent(config),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// One read: the trimmed text, `Ok(None)` for the service's own 404, or why it failed.
    pub fn get(&self, path: &str, deadline: &Deadline) -> Result<Option<String>, String> {
        let url = self.url(path);
        let budget = deadline.cap(METADATA_PER_TRY);
        if budget.is_zero() {
            return Err(format!(
                "metadata service {url}: no time left before the action's timeout"
            ));
        }
        let mut resp = self
            .agent
            .get(&url)
            .config()
            .timeout_global(Some(budget))
            .build()
            .call()
            .map_err(|e| format!("metadata service {url}: {e}"))?;
        match resp.status().as_u16() {
            200 => resp
                .body_mut()
                .with_config()
                .limit(METADATA_MAX_BODY)
                .read_to_string()
                .map(|s| Some(s.trim().to_string()))
                .map_err(|e| format!("metadata service {url}: reading the answer: {e}")),
            404 => Ok(None),
            code => Err(format!("metadata service {url}: answered HTTP {code}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_need_no_lookup() {
        let uri: Uri = "http://169.254.169.254/metadata/v1/id".parse().unwrap();
        assert_eq!(literal(&uri), Some("169.254.169.254:80".parse().unwrap()));
        let uri: Uri = "https://[::1]:8443/v2".parse().unwrap();
        assert_eq!(literal(&uri), Some("[::1]:8443".parse().unwrap()));
        let uri: Uri = "https://api.digitalocean.com/v2".parse().unwrap();
        assert_eq!(literal(&uri), None);
    }
}
