//! A JSON-over-HTTPS client for cloud APIs with a bearer token or Exoscale's signed requests
//! (`EXO2-HMAC-SHA256`): one request per call, bounded by the action's deadline, TLS verified
//! with the system's roots. It never retries and never prints the token or the secret; providers turn its answers (and its `ApiError`s) into their `Fault`s. It
//! knows nothing of providers: the transport is not a provider's fault type.
use cloudha_common::{Deadline, HttpUrl, Secret};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest one request may take; the agent retries within the deadline after that.
const PER_TRY: Duration = Duration::from_secs(10);
/// No API answer this agent reads is larger.
const MAX_BODY: u64 = 1024 * 1024;

/// No answer at all (a connection error, a timeout, a body that could not be read, a 2xx that
/// is not JSON): always worth another try.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError(pub String);

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
    /// An answer with `status` and `body` and no rate-limit headers (the unit tests' answers).
    #[cfg(test)]
    pub fn of(status: u16, body: serde_json::Value) -> Answer {
        Answer {
            status,
            body,
            retry_after: None,
            until_reset: None,
            remaining: None,
        }
    }

    /// How long a rate-limited client should wait, from the headers.
    pub fn rate_limit_wait(&self) -> Option<Duration> {
        self.retry_after.or(match self.remaining {
            Some(0) => self.until_reset,
            _ => None,
        })
    }

    /// The error body's `message`: DigitalOcean's `{"id","message","request_id"}`, or Hetzner's
    /// `{"error":{"code","message"}}`, if any.
    pub fn message(&self) -> Option<&str> {
        self.body
            .get("message")
            .or_else(|| self.body.get("error").and_then(|e| e.get("message")))
            .and_then(|m| m.as_str())
    }
}

/// How a request proves who sends it.
enum Auth {
    /// `Authorization: Bearer <token>` (DigitalOcean, Hetzner).
    Bearer(Secret),
    /// Exoscale's `EXO2-HMAC-SHA256`: the key is named, the secret only signs.
    Exo2 { key: String, secret: Secret },
}

impl Auth {
    /// What an answer must never repeat.
    fn secret(&self) -> &Secret {
        match self {
            Auth::Bearer(token) => token,
            Auth::Exo2 { secret, .. } => secret,
        }
    }

    /// The `Authorization` header of one request (`path` with its query, if any).
    fn header(&self, method: &str, path: &str, body: &[u8]) -> String {
        match self {
            Auth::Bearer(token) => format!("Bearer {}", token.expose()),
            Auth::Exo2 { key, secret } => {
                exo2_authorization(key, secret.expose(), method, path, body, exo2_expiry())
            }
        }
    }
}

/// How long a signed request stays valid: the official client's 10 minutes.
const EXO2_VALIDITY: Duration = Duration::from_secs(600);

/// Now plus `EXO2_VALIDITY`, in UNIX seconds.
fn exo2_expiry() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .saturating_add(EXO2_VALIDITY.as_secs())
}

/// Exoscale's `Authorization` header (shared/docs/clouds.md, from egoscale's
/// `v2/api/security.go`): the signed message is five lines joined by `\n`: `"<METHOD> <path>"`,
/// the body, the values of the single-valued query parameters in the order of their names
/// (concatenated), an empty line (no signed headers), and the expiry. The signature is
/// base64 (standard, padded) of HMAC-SHA256 with the secret as its key. `path` holds the query,
/// if any; its parameters are taken as written (this agent sends none that need escaping).
pub fn exo2_authorization(
    key: &str,
    secret: &str,
    method: &str,
    path: &str,
    body: &[u8],
    expires: u64,
) -> String {
    use base64::Engine;
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    let mut single: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(name, _)| pairs.iter().filter(|(n, _)| n == name).count() == 1)
        .copied()
        .collect();
    single.sort_by(|a, b| a.0.cmp(b.0));
    let values: String = single.iter().map(|(_, v)| *v).collect();
    let mut message = Vec::with_capacity(path.len() + body.len() + values.len() + 32);
    message.extend_from_slice(format!("{method} {path}\n").as_bytes());
    message.extend_from_slice(body);
    message.extend_from_slice(format!("\n{values}\n\n{expires}").as_bytes());
    let mac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let signature =
        base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&mac, &message).as_ref());
    let signed_args = if single.is_empty() {
        String::new()
    } else {
        let names: Vec<&str> = single.iter().map(|(n, _)| *n).collect();
        format!(",signed-query-args={}", names.join(";"))
    };
    format!(
        "EXO2-HMAC-SHA256 credential={key}{signed_args},expires={expires},signature={signature}"
    )
}

pub struct ApiClient {
    base: String,
    auth: Auth,
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
        Self::with_auth(base, Auth::Bearer(token), loopback)
    }

    /// A client whose every request is signed with Exoscale's `EXO2-HMAC-SHA256`.
    pub fn signed(base: &HttpUrl, key: String, secret: Secret, loopback: bool) -> ApiClient {
        Self::with_auth(base, Auth::Exo2 { key, secret }, loopback)
    }

    fn with_auth(base: &HttpUrl, auth: Auth, loopback: bool) -> ApiClient {
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
            .user_agent(concat!("cloudha/", env!("CARGO_PKG_VERSION")));
        if loopback {
            config = config.proxy(None);
        }
        ApiClient {
            base: base.base().to_string(),
            auth,
            agent: cloudha_common::http::agent(config.build()),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn budget(&self, deadline: &Deadline) -> Result<Duration, ApiError> {
        let b = deadline.cap(PER_TRY);
        if b.is_zero() {
            Err(ApiError("no time left before the action's timeout".into()))
        } else {
            Ok(b)
        }
    }

    pub fn get(&self, path: &str, deadline: &Deadline) -> Result<Answer, ApiError> {
        let budget = self.budget(deadline)?;
        let url = self.url(path);
        let resp = self
            .agent
            .get(&url)
            .config()
            .timeout_global(Some(budget))
            .build()
            .header("Authorization", self.auth.header("GET", path, b""))
            .header("Accept", "application/json")
            .call();
        self.read(&url, resp)
    }

    pub fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
        deadline: &Deadline,
    ) -> Result<Answer, ApiError> {
        self.send("POST", path, body, deadline)
    }

    pub fn put(
        &self,
        path: &str,
        body: &serde_json::Value,
        deadline: &Deadline,
    ) -> Result<Answer, ApiError> {
        self.send("PUT", path, body, deadline)
    }

    /// A request with a JSON body, signed or not as the API wants.
    fn send(
        &self,
        method: &str,
        path: &str,
        body: &serde_json::Value,
        deadline: &Deadline,
    ) -> Result<Answer, ApiError> {
        let budget = self.budget(deadline)?;
        let url = self.url(path);
        let body = body.to_string();
        let request = match method {
            "PUT" => self.agent.put(&url),
            _ => self.agent.post(&url),
        };
        let resp = request
            .config()
            .timeout_global(Some(budget))
            .build()
            .header(
                "Authorization",
                self.auth.header(method, path, body.as_bytes()),
            )
            .header("Accept", "application/json")
            .header("Content-Type", "application/json")
            .send(body);
        self.read(&url, resp)
    }

    fn read(
        &self,
        url: &str,
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Answer, ApiError> {
        // ureq's error texts name the URL and the failure, never request headers.
        let mut resp = resp.map_err(|e| ApiError(format!("{url}: {e}")))?;
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
            .map_err(|e| ApiError(format!("{url}: reading the answer: {e}")))?;
        let body = self.unquoted(parse_body(url, status, &text)?);
        Ok(Answer {
            status,
            body,
            retry_after,
            until_reset,
            remaining,
        })
    }

    /// `body`, its `message` replaced when it quotes the token (some gateways echo the
    /// Authorization header): messages reach exit reasons and logs, and the logger's masking
    /// leaves out tokens shorter than 4 characters.
    fn unquoted(&self, mut body: serde_json::Value) -> serde_json::Value {
        let token = self.auth.secret().expose();
        let quotes = |m: &serde_json::Value| {
            !token.is_empty() && m.as_str().is_some_and(|m| m.contains(token))
        };
        if let Some(m) = body.get_mut("message").filter(|m| quotes(m)) {
            *m = serde_json::Value::from(QUOTED);
        }
        if let Some(m) = body
            .get_mut("error")
            .and_then(|e| e.get_mut("message"))
            .filter(|m| quotes(m))
        {
            *m = serde_json::Value::from(QUOTED);
        }
        body
    }
}

/// What an answer's `message` becomes when it quotes the token.
const QUOTED: &str = "the answer's message quotes the token: not shown";

/// An answer's body: its JSON, or Null when it is empty. A 2xx that is not JSON is garbled (a
/// transient fault); an error page that is not JSON (a proxy's HTML) is Null: its status speaks.
fn parse_body(url: &str, status: u16, text: &str) -> Result<serde_json::Value, ApiError> {
    if text.trim().is_empty() {
        return Ok(serde_json::Value::Null);
    }
    match serde_json::from_str(text) {
        Ok(v) => Ok(v),
        Err(_) if (200..300).contains(&status) => Err(ApiError(format!(
            "{url}: answered HTTP {status} with a body that is not JSON"
        ))),
        Err(_) => Ok(serde_json::Value::Null),
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

    fn read(token: &str, status: u16, body: &str) -> Answer {
        let url = HttpUrl::parse("http://127.0.0.1:9").unwrap();
        let client = ApiClient::new(&url, Secret::new(token), true);
        let resp = ureq::http::Response::builder()
            .status(status)
            .body(ureq::Body::builder().data(body.to_string()))
            .unwrap();
        client.read("http://127.0.0.1:9/v2/x", Ok(resp)).unwrap()
    }

    #[test]
    fn an_answer_that_quotes_the_token_is_not_repeated() {
        // Some gateways echo the Authorization header in their error message. The logger masks
        // a token of 4 characters or more, never a shorter one: the message goes here.
        for token in ["q^Z", "dop_v1_0123456789abcdef"] {
            let a = read(
                token,
                401,
                &format!(
                    r#"{{"id": "unauthorized", "message": "Invalid key=value pair in Authorization header: 'Bearer {token}'"}}"#
                ),
            );
            let said = a.message().unwrap();
            assert!(!said.contains(token), "{said}");
            assert_eq!(said, "the answer's message quotes the token: not shown");
            assert_eq!(a.body["id"], "unauthorized");
        }
        let a = read(
            "q^Z",
            401,
            r#"{"id": "unauthorized", "message": "Unable to authenticate you."}"#,
        );
        assert_eq!(a.message(), Some("Unable to authenticate you."));
    }

    #[test]
    fn hetzners_error_body_is_read_and_never_repeats_the_token() {
        let a = read(
            "hc_0123456789",
            401,
            r#"{"error": {"code": "unauthorized", "message": "unable to authenticate", "details": {}}}"#,
        );
        assert_eq!(a.message(), Some("unable to authenticate"));
        let a = read(
            "q^Z",
            401,
            r#"{"error": {"code": "unauthorized", "message": "bad header 'Bearer q^Z'"}}"#,
        );
        assert_eq!(a.message(), Some(QUOTED));
        assert_eq!(a.body["error"]["code"], "unauthorized");
    }

    /// The two test vectors of shared/docs/clouds.md (from egoscale's own test).
    #[test]
    fn exoscale_signatures_match_the_test_vectors() {
        let key = "EXOxxxxxxxxxxxxxxxxxxxxxxxx";
        let secret = "X".repeat(43);
        assert_eq!(
            exo2_authorization(key, &secret, "GET", "/v2/zone", b"", 3376684800),
            "EXO2-HMAC-SHA256 credential=EXOxxxxxxxxxxxxxxxxxxxxxxxx,expires=3376684800,\
             signature=Ntbq/p0HVmA3Zg1HHY+Lq1vjFGi7HeMrrgXDS5jRNlY="
        );
        assert_eq!(
            exo2_authorization(key, &secret, "GET", "/v2/zone?k1=v1&k2=v2", b"", 3376684800),
            "EXO2-HMAC-SHA256 credential=EXOxxxxxxxxxxxxxxxxxxxxxxxx,signed-query-args=k1;k2,\
             expires=3376684800,signature=iqOBz13+44L5j0uJclE8hmUhQQcvtCSoPEOXYK6liqY="
        );
        // The order of the parameters as written does not matter; the body is signed.
        assert_eq!(
            exo2_authorization(key, &secret, "GET", "/v2/zone?k2=v2&k1=v1", b"", 3376684800),
            exo2_authorization(key, &secret, "GET", "/v2/zone?k1=v1&k2=v2", b"", 3376684800),
        );
        assert_ne!(
            exo2_authorization(key, &secret, "PUT", "/v2/x", b"{}", 3376684800),
            exo2_authorization(key, &secret, "PUT", "/v2/x", b"", 3376684800),
        );
    }

    #[test]
    fn a_signed_client_never_repeats_the_secret() {
        let url = HttpUrl::parse("http://127.0.0.1:9").unwrap();
        let secret = "X".repeat(43);
        let client = ApiClient::signed(&url, "EXOkey".into(), Secret::new(&secret), true);
        let header = client.auth.header("GET", "/v2/instance", b"");
        assert!(header.starts_with("EXO2-HMAC-SHA256 credential=EXOkey,expires="));
        assert!(!header.contains(&secret));
        let body = serde_json::json!({"message": format!("bad secret {secret}")});
        assert_eq!(client.unquoted(body)["message"], QUOTED);
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

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any bytes as a body: JSON, Null, or (for a 2xx) garbled; never a panic.
            #[test]
            fn any_body(bytes in proptest::collection::vec(any::<u8>(), 0..512), status in 100u16..600) {
                let text = String::from_utf8_lossy(&bytes);
                match parse_body("u", status, &text) {
                    Ok(v) if text.trim().is_empty() => prop_assert!(v.is_null()),
                    Ok(_) => {}
                    Err(_) => prop_assert!((200..300).contains(&status)),
                }
            }

            /// Whatever an error's message says, the token is never repeated from it.
            #[test]
            fn a_message_never_repeats_the_token(
                token in "[!-~]{1,12}",
                before in ".{0,20}",
                after in ".{0,20}",
                quote in any::<bool>(),
            ) {
                let said = if quote { format!("{before}{token}{after}") } else { before };
                let body = serde_json::json!({"id": "unauthorized", "message": said});
                let a = read(&token, 401, &body.to_string());
                let shown = a.message().unwrap();
                // The words as they came when they do not hold the token, else none of them.
                if said.contains(token.as_str()) {
                    prop_assert_eq!(shown, QUOTED);
                } else {
                    prop_assert_eq!(shown, said.as_str());
                }
            }
        }
    }
}
