//! HTTP for agents: ureq agents whose resolver answers IP literals without a lookup, and a client
//! for a cloud's metadata service (plain HTTP, link-local, no auth): single reads, and reads
//! retried within the action's deadline. A service that cannot be read never reads as "yes".

use crate::deadline::{Attempt, Deadline, Retry};
use crate::values::HttpUrl;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

/// IP literals as they are; names through ureq's resolver (bounded by the request's timeout).
/// ureq's own resolver spawns a thread per lookup when a timeout is set, even for a literal; a
/// monitor is one request in a short process, and that thread was a third of its time.
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
    let default_port = if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    Some(SocketAddr::new(
        ip,
        authority.port_u16().unwrap_or(default_port),
    ))
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

/// A ureq agent with `config` and the literal-first resolver.
pub fn agent(config: Config) -> ureq::Agent {
    ureq::Agent::with_parts(config, DefaultConnector::new(), LiteralFirst::default())
}

/// The DigitalOcean metadata service, as seen from a droplet.
pub const DEFAULT_METADATA_URL: &str = "http://169.254.169.254/metadata/v1";

/// The longest one request may take; a retry follows if the deadline allows.
const PER_TRY: Duration = Duration::from_secs(2);
const MAX_BODY: u64 = 64 * 1024;
/// Retries of a metadata read: the service is local and free, so quickly.
pub const METADATA_RETRY: Retry =
    Retry::backoff(Duration::from_millis(50), Duration::from_millis(500));

/// Why the service could not be read: never an answer, always a reason to retry or fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchError {
    pub url: String,
    pub detail: String,
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "metadata service {}: {}", self.url, self.detail)
    }
}

#[derive(Clone, Debug)]
pub struct MetadataService {
    base: String,
    agent: ureq::Agent,
}

impl MetadataService {
    /// `base` like `http://169.254.169.254/metadata/v1` (a trailing slash is fine).
    pub fn new(base: &str) -> MetadataService {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // Link-local: a proxy from the environment could only get this wrong.
            .proxy(None)
            .max_redirects(0)
            .user_agent(concat!("cloudha/", env!("CARGO_PKG_VERSION")))
            .build();
        MetadataService {
            base: base.trim_end_matches('/').to_string(),
            agent: agent(config),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// One read. `Ok(None)` is the service's own 404 (the path does not exist for this droplet).
    pub fn get(&self, path: &str, deadline: &Deadline) -> Result<Option<String>, FetchError> {
        let url = self.url(path);
        let fail = |detail: String| FetchError {
            url: url.clone(),
            detail,
        };
        let budget = deadline.cap(PER_TRY);
        if budget.is_zero() {
            return Err(fail("no time left before the action's timeout".into()));
        }
        let mut resp = self
            .agent
            .get(&url)
            .config()
            .timeout_global(Some(budget))
            .build()
            .call()
            .map_err(|e| fail(e.to_string()))?;
        match resp.status().as_u16() {
            200 => resp
                .body_mut()
                .with_config()
                .limit(MAX_BODY)
                .read_to_string()
                .map(|s| Some(s.trim().to_string()))
                .map_err(|e| fail(format!("reading the answer: {e}"))),
            404 => Ok(None),
            code => Err(fail(format!("answered HTTP {code}"))),
        }
    }

    /// Read, retrying failures (never a 404) with a short backoff until `deadline`.
    pub fn get_retrying(
        &self,
        path: &str,
        deadline: &Deadline,
    ) -> Result<Option<String>, FetchError> {
        deadline
            .retry(&METADATA_RETRY, |d| match self.get(path, d) {
                Ok(v) => Attempt::Done(v),
                Err(e) => Attempt::Again(e),
            })
            .map_err(|e| e.into_inner())
    }
}

/// One `GET url` within `deadline` (name lookup included), no redirects followed, no proxy:
/// the status code, or why there is none. For health checks of a local service.
pub fn get_status(url: &HttpUrl, deadline: &Deadline) -> Result<u16, String> {
    let budget = deadline.cap(Duration::from_secs(10));
    if budget.is_zero() {
        return Err("no time left before the action's timeout".into());
    }
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .max_redirects(0)
        .timeout_global(Some(budget))
        .user_agent(concat!("cloudha-monitor/", env!("CARGO_PKG_VERSION")))
        .build();
    let resp = agent(config)
        .get(url.as_str())
        .call()
        .map_err(|e| e.to_string())?;
    Ok(resp.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// Answer `n` requests with the given status and body, then stop.
    fn serve(answers: Vec<(u16, &'static str)>) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for (status, body) in answers {
                let (mut s, _) = l.accept().unwrap();
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf);
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        format!("http://{addr}/metadata/v1/")
    }

    #[test]
    fn literals_need_no_lookup() {
        let uri: Uri = "http://169.254.169.254/metadata/v1/id".parse().unwrap();
        assert_eq!(literal(&uri), Some("169.254.169.254:80".parse().unwrap()));
        let uri: Uri = "https://[::1]:8443/v2".parse().unwrap();
        assert_eq!(literal(&uri), Some("[::1]:8443".parse().unwrap()));
        let uri: Uri = "https://api.digitalocean.com/v2".parse().unwrap();
        assert_eq!(literal(&uri), None);
    }

    #[test]
    fn reads_trimmed_text_and_404_as_absent() {
        let base = serve(vec![(200, "10.17.0.5\n"), (404, "not found")]);
        let m = MetadataService::new(&base);
        let d = Deadline::after(Duration::from_secs(5));
        assert_eq!(
            m.get("interfaces/public/0/anchor_ipv4/address", &d)
                .unwrap(),
            Some("10.17.0.5".to_string())
        );
        assert_eq!(m.get("/nothing", &d).unwrap(), None);
    }

    #[test]
    fn retries_a_5xx_within_the_deadline() {
        let base = serve(vec![(500, "oops"), (503, "busy"), (200, "1234")]);
        let m = MetadataService::new(&base);
        let d = Deadline::after(Duration::from_secs(5));
        assert_eq!(m.get_retrying("id", &d).unwrap(), Some("1234".into()));
    }

    #[test]
    fn status_of_a_health_check() {
        let base = serve(vec![(204, ""), (503, "down")]);
        let url = HttpUrl::parse(&base).unwrap();
        let d = Deadline::after(Duration::from_secs(5));
        assert_eq!(get_status(&url, &d), Ok(204));
        assert_eq!(get_status(&url, &d), Ok(503));
    }

    #[test]
    fn unreachable_is_an_error_when_the_deadline_ends() {
        // A port nobody listens on: bind, learn the port, close.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let m = MetadataService::new(&format!("http://127.0.0.1:{port}"));
        let d = Deadline::after(Duration::from_millis(300));
        let t = std::time::Instant::now();
        let e = m.get_retrying("id", &d).unwrap_err();
        // Retried, and given up before the deadline rather than after it.
        assert!(t.elapsed() >= Duration::from_millis(50));
        assert!(t.elapsed() < Duration::from_millis(400));
        assert!(e
            .to_string()
            .starts_with(&format!("metadata service http://127.0.0.1:{port}/id: ")));
    }
}
