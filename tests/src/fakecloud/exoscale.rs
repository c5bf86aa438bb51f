//! The Exoscale dialect of the fake, as shared/docs/clouds.md says. So far only its first part:
//! the check of a request's `EXO2-HMAC-SHA256` signature, exactly as the API makes it (the
//! routes, elastic IPs with several holders, operations and metadata are not written yet, and
//! no `Dialect` serves Exoscale). Written apart from the agent's signing code, from the same
//! page, so that one cannot hide the other's mistake.
//!
//! The signed message: `"<METHOD> <path>"`, the body, the values of the query parameters named
//! in `signed-query-args` in that order (concatenated), an empty line, the expiry; joined by
//! `\n`. The signature: standard base64 (padded) of HMAC-SHA256 keyed with the secret.
//! Which status a bad signature gets is unconfirmed (401 or 403): the fake answers 401 for a
//! missing, malformed or expired authorization and 403 for an unknown key or a wrong signature,
//! each with Exoscale's `{"message": ...}` *(fake's choice within what clouds.md allows)*.

use base64::Engine;
use serde_json::json;

/// Why a request's authorization is refused: the status and the message of the answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

impl Refusal {
    fn new(status: u16, message: &str) -> Refusal {
        Refusal {
            status,
            message: message.to_string(),
        }
    }

    /// The answer's body, in Exoscale's shape.
    pub fn body(&self) -> serde_json::Value {
        json!({"message": self.message})
    }
}

/// The parts of an `Authorization: EXO2-HMAC-SHA256 ...` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    pub credential: String,
    pub signed_query_args: Vec<String>,
    pub expires: u64,
    pub signature: String,
}

/// Reads the header; None when it is not a well-formed EXO2 authorization.
pub fn parse_authorization(header: &str) -> Option<Authorization> {
    let rest = header.strip_prefix("EXO2-HMAC-SHA256 ")?;
    let (mut credential, mut args, mut expires, mut signature) = (None, None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.split_once('=')?;
        let slot = match k {
            "credential" => &mut credential,
            "signed-query-args" => &mut args,
            "expires" => &mut expires,
            "signature" => &mut signature,
            _ => return None,
        };
        if slot.replace(v.to_string()).is_some() {
            return None;
        }
    }
    Some(Authorization {
        credential: credential.filter(|c| !c.is_empty())?,
        signed_query_args: args
            .map(|a| a.split(';').map(str::to_string).collect())
            .unwrap_or_default(),
        expires: expires?.parse().ok()?,
        signature: signature.filter(|s| !s.is_empty())?,
    })
}

/// The signature of one request, as the API computes it: `target` is the path with its query
/// string, the query's parameters taken as written.
pub fn signature(
    secret: &str,
    method: &str,
    target: &str,
    body: &[u8],
    signed_query_args: &[String],
    expires: u64,
) -> Option<String> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let params: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    let mut values = String::new();
    for name in signed_query_args {
        let mut named = params.iter().filter(|(n, _)| n == name);
        let (_, v) = named.next()?;
        if named.next().is_some() {
            return None;
        }
        values.push_str(v);
    }
    let mut message = format!("{method} {path}\n").into_bytes();
    message.extend_from_slice(body);
    message.extend_from_slice(format!("\n{values}\n\n{expires}").as_bytes());
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    Some(base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, &message)))
}

/// The API's check of one request: the key must be known (`secret_of` gives its secret), the
/// expiry not past (`now`, UNIX seconds), the signature exact. Ok: the key it was signed with.
pub fn verify(
    authorization: Option<&str>,
    method: &str,
    target: &str,
    body: &[u8],
    now: u64,
    secret_of: impl Fn(&str) -> Option<String>,
) -> Result<String, Refusal> {
    let Some(header) = authorization else {
        return Err(Refusal::new(401, "missing authorization"));
    };
    let Some(auth) = parse_authorization(header) else {
        return Err(Refusal::new(401, "malformed authorization"));
    };
    if auth.expires < now {
        return Err(Refusal::new(401, "request expired"));
    }
    let Some(secret) = secret_of(&auth.credential) else {
        return Err(Refusal::new(403, "invalid API key"));
    };
    let want = signature(
        &secret,
        method,
        target,
        body,
        &auth.signed_query_args,
        auth.expires,
    );
    if want.as_deref() == Some(auth.signature.as_str()) {
        Ok(auth.credential)
    } else {
        Err(Refusal::new(403, "invalid request signature"))
    }
}
