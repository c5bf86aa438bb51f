//! A client for a cloud's metadata service (plain HTTP, link-local, no auth): single reads, and
//! reads retried within the action's deadline. A service that cannot be read never reads as "yes".

use crate::deadline::{Backoff, Deadline};
use std::fmt;
use std::time::Duration;

/// The DigitalOcean metadata service, as seen from a droplet.
pub const DEFAULT_METADATA_URL: &str = "http://169.254.169.254/metadata/v1";

/// The longest one request may take; a retry follows if the deadline allows.
const PER_TRY: Duration = Duration::from_secs(2);
const MAX_BODY: u64 = 64 * 1024;

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
            agent: ureq::Agent::new_with_config(config),
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
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(500));
        loop {
            match self.get(path, deadline) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    if !deadline.sleep(backoff.next_delay()) {
                        return Err(e);
                    }
                }
            }
        }
    }
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
    fn unreachable_is_an_error_when_the_deadline_ends() {
        // A port nobody listens on: bind, learn the port, close.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let m = MetadataService::new(&format!("http://127.0.0.1:{port}"));
        let d = Deadline::after(Duration::from_millis(300));
        let e = m.get_retrying("id", &d).unwrap_err();
        assert!(d.expired());
        assert!(e
            .to_string()
            .starts_with(&format!("metadata service http://127.0.0.1:{port}/id: ")));
    }
}
