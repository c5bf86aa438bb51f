//! A plain HTTP client for the tests that talk to the fakes as any client would: no proxy, every
//! status an answer (never an error), 10 s at most per request, JSON bodies.

use serde_json::Value;
use std::time::Duration;

/// What came back: the status, the headers and the body as text.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; a panic naming the body when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// The client: no proxy, statuses as answers, 10 s at most per request.
pub fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(10)))
            .build(),
    )
}

/// `method url` with `headers`; `body` (JSON) for POST, PUT and PATCH.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> Answer {
    let a = agent();
    let result = match method {
        "GET" | "DELETE" => {
            let mut r = if method == "GET" {
                a.get(url)
            } else {
                a.delete(url)
            };
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            r.call()
        }
        "POST" | "PUT" | "PATCH" => {
            let mut r = match method {
                "POST" => a.post(url),
                "PUT" => a.put(url),
                _ => a.patch(url),
            };
            r = r.header("Content-Type", "application/json");
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            r.send(body.unwrap_or_default())
        }
        other => panic!("method {other}"),
    };
    let mut resp = result.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    Answer {
        status: resp.status().as_u16(),
        headers,
        body: resp
            .body_mut()
            .read_to_string()
            .unwrap_or_else(|e| panic!("{method} {url}: the body: {e}")),
    }
}

/// `method url` with `Authorization: Bearer token` when a token is given, and `body` as JSON.
pub fn bearer(method: &str, url: &str, token: Option<&str>, body: Option<&Value>) -> Answer {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| ("Authorization", a))
        .into_iter()
        .collect();
    request(method, url, &headers, body.map(Value::to_string).as_deref())
}
