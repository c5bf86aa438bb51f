//! A JSON-over-HTTPS client for cloud APIs with a bearer token: one request per call, bounded by
//! the action's deadline, TLS verified with the system's roots. It never retries and never
//! prints the token; providers turn its answers into `Fault`s.

use crate::provider::Fault;
use cloudha_common::{Deadline, HttpUrl, Secret};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest one request may take; the agent retries within the deadline after that.
const PER_TRY: Duration = Duration::from_secs(10);
/// No API answer this agent reads is larger.
const MAX_BODY: u64 = 1024 * 1024;

/// One HTTP answer, already read.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// JSON body (Null when empty or not JSON).
    pub body: serde_json::Value,
    /// `retry-after` in seconds, when given.
    pub retry_after: Option<Duration>,
    /// How long until `ratelimit-reset` (a Unix time), when given.
    pub until_reset: Option<Duration>,
    pub remaining: Option<u64>,
}

impl Answer {
    /// How long a rate-limited client should wait, from the headers.
    pub fn rate_limit_wait(&self) -> Option<Duration> {
        self.retry_after.or(match self.remaining {
            Some(0) => self.until_reset,
            _ => None,
        })
    }

    /// The error body's `message` (DigitalOcean's `{"id","message","request_id"}`), if any.
    pub fn message(&self) -> Option<&str> {
        self.body.get("message").and_then(|m| m.as_str())
    }
}

pub struct ApiClient {
    base: String,
    token: Secret,
    agent: ureq::Agent,
}

fn header_secs(resp: &ureq::http::Response<ureq::Body>, name: &str) -> Option<u64> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

impl ApiClient {
    /// `base` like `https://api.digitalocean.com`. `loopback`: a plain-HTTP test API on this
    /// machine (no proxy from the environment may get in between).
    pub fn new(base: &HttpUrl, token: Secret, loopback: bool) -> ApiClient {
        use ureq::tls::{RootCerts, TlsConfig, TlsProvider};
        // TLS is set up lazily by ureq on the first https connection: building this costs nothing.
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .root_certs(RootCerts::PlatformVerifier)
            .build();
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // A redirect could carry the request elsewhere: answers are taken as they come.
            .max_redirects(0)
            .https_only(!loopback)
            .tls_config(tls)
            .user_agent(concat!("cloudha-floatip/", env!("CARGO_PKG_VERSION")));
        if loopback {
            config = config.proxy(None);
        }
        ApiClient {
            base: base.base().to_string(),
            token,
            agent: cloudha_common::http::agent(config.build()),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn budget(&self, deadline: &Deadline) -> Result<Duration, Fault> {
        let b = deadline.cap(PER_TRY);
        if b.is_zero() {
            Err(Fault::Transient(
                "no time left before the action's timeout".into(),
            ))
        } else {
            Ok(b)
        }
    }

    pub fn get(&self, path: &str, deadline: &Deadline) -> Result<Answer, Fault> {
        let budget = self.budget(deadline)?;
        let url = self.url(path);
        let resp = self
            .agent
            .get(&url)
            .config()
            .timeout_global(Some(budget))
            .build()
            .header("Authorization", format!("Bearer {}", self.token.expose()))
            .header("Accept", "application/json")
            .call();
        Self::read(&url, resp)
    }

    pub fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
        deadline: &Deadline,
    ) -> Result<Answer, Fault> {
        let budget = self.budget(deadline)?;
        let url = self.url(path);
        let resp = self
            .agent
            .post(&url)
            .config()
            .timeout_global(Some(budget))
            .build()
            .header("Authorization", format!("Bearer {}", self.token.expose()))
            .header("Accept", "application/json")
            .header("Content-Type", "application/json")
            .send(body.to_string());
        Self::read(&url, resp)
    }

    fn read(
        url: &str,
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Answer, Fault> {
        // ureq's error texts name the URL and the failure, never request headers.
        let mut resp = resp.map_err(|e| Fault::Transient(format!("{url}: {e}")))?;
        let status = resp.status().as_u16();
        let retry_after = header_secs(&resp, "retry-after").map(Duration::from_secs);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let until_reset = header_secs(&resp, "ratelimit-reset")
            .map(|t| Duration::from_secs(t.saturating_sub(now)));
        let remaining = header_secs(&resp, "ratelimit-remaining");
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .map_err(|e| Fault::Transient(format!("{url}: reading the answer: {e}")))?;
        let body = if text.trim().is_empty() {
            serde_json::Value::Null
        } else {
            match serde_json::from_str(&text) {
                Ok(v) => v,
                // A 2xx that is not JSON is garbled; an error page may be HTML: keep the status.
                Err(_) if (200..300).contains(&status) => {
                    return Err(Fault::Transient(format!(
                        "{url}: answered HTTP {status} with a body that is not JSON"
                    )))
                }
                Err(_) => serde_json::Value::Null,
            }
        };
        Ok(Answer {
            status,
            body,
            retry_after,
            until_reset,
            remaining,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(retry_after: Option<u64>, remaining: Option<u64>, reset: Option<u64>) -> Answer {
        Answer {
            status: 429,
            body: serde_json::json!({"id": "too_many_requests", "message": "slow down"}),
            retry_after: retry_after.map(Duration::from_secs),
            until_reset: reset.map(Duration::from_secs),
            remaining,
        }
    }

    #[test]
    fn retry_after_wins_then_reset_when_exhausted() {
        assert_eq!(
            answer(Some(3), Some(0), Some(40)).rate_limit_wait(),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            answer(None, Some(0), Some(40)).rate_limit_wait(),
            Some(Duration::from_secs(40))
        );
        assert_eq!(answer(None, Some(10), Some(40)).rate_limit_wait(), None);
        assert_eq!(answer(None, None, None).message(), Some("slow down"));
    }
}
