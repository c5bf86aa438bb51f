//! The types parameters parse to, each parsed once here with the words an error needs:
//! text, numbers, booleans, addresses, absolute paths, seconds, http(s) URLs and secrets.
//! An agent's own types (an enum of providers, `ip=auto`) implement `ParamValue` beside them.

use crate::params::{parse_bool, ParamValue};
use crate::secret::Secret;
use crate::spec::ParamKind;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use ureq::http::Uri;

impl ParamValue for String {
    const KIND: ParamKind = ParamKind::String;
    fn parse(text: &str) -> Result<Self, String> {
        Ok(text.to_string())
    }
}

impl ParamValue for Secret {
    const KIND: ParamKind = ParamKind::String;
    const SECRET: bool = true;
    fn parse(text: &str) -> Result<Self, String> {
        Ok(Secret::new(text))
    }
}

impl ParamValue for bool {
    const KIND: ParamKind = ParamKind::Boolean;
    fn parse(text: &str) -> Result<Self, String> {
        parse_bool(text).ok_or_else(|| "is not a boolean (true/false, yes/no, 1/0)".into())
    }
}

macro_rules! whole_number {
    ($($t:ty),*) => {$(
        impl ParamValue for $t {
            const KIND: ParamKind = ParamKind::Integer;
            fn parse(text: &str) -> Result<Self, String> {
                let t = text.trim();
                match (t.parse::<$t>(), t.parse::<i128>()) {
                    (Ok(n), _) => Ok(n),
                    (Err(_), Ok(n)) if n < 0 && <$t>::MIN == 0 => Err("is negative".into()),
                    (Err(_), Ok(_)) => {
                        Err(format!("is out of range ({}-{})", <$t>::MIN, <$t>::MAX))
                    }
                    (Err(_), Err(_)) => Err("is not a whole number".into()),
                }
            }
        }
    )*};
}
whole_number!(u8, u32, u64, i64);

impl ParamValue for IpAddr {
    const KIND: ParamKind = ParamKind::String;
    fn parse(text: &str) -> Result<Self, String> {
        text.trim()
            .parse()
            .map_err(|_| "is not an IPv4 or IPv6 address".into())
    }
}

impl ParamValue for Ipv4Addr {
    const KIND: ParamKind = ParamKind::String;
    fn parse(text: &str) -> Result<Self, String> {
        text.trim()
            .parse()
            .map_err(|_| "is not an IPv4 address".into())
    }
}

/// An absolute path (what a daemon started from `/` needs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AbsPath(pub PathBuf);

impl AbsPath {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl ParamValue for AbsPath {
    const KIND: ParamKind = ParamKind::String;
    fn parse(text: &str) -> Result<Self, String> {
        let p = PathBuf::from(text);
        if p.is_absolute() {
            Ok(AbsPath(p))
        } else {
            Err("is not an absolute path".into())
        }
    }
}

/// A whole number of seconds, 0 or more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seconds(pub Duration);

impl ParamValue for Seconds {
    const KIND: ParamKind = ParamKind::Integer;
    fn parse(text: &str) -> Result<Self, String> {
        text.trim()
            .parse::<u64>()
            .map(|s| Seconds(Duration::from_secs(s)))
            .map_err(|_| "is not a number of seconds (a whole number, 0 or more)".into())
    }
}

/// An `http://` or `https://` URL with a host, parsed by the HTTP client's own parser (the one
/// that will send the request). Credentials, queries and fragments are refused: a base URL
/// carries none, and credentials in a parameter would be shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    text: String,
    uri: Uri,
}

impl HttpUrl {
    pub fn parse(text: &str) -> Result<HttpUrl, String> {
        let text = text.trim();
        let uri: Uri = text
            .parse()
            .map_err(|_| "is not a URL (http://host[:port][/path])".to_string())?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            _ => return Err("must start with http:// or https://".into()),
        }
        let Some(authority) = uri.authority() else {
            return Err("has no host".into());
        };
        if authority.as_str().contains('@') {
            return Err("must not carry credentials".into());
        }
        let host = authority.host();
        if host.is_empty() {
            return Err("has no host".into());
        }
        if let Some(literal) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            if literal.parse::<std::net::Ipv6Addr>().is_err() {
                return Err("has an invalid IPv6 host".into());
            }
        }
        // After the host (and an IPv6 literal's bracket), a ':' starts the port.
        let after_host = authority.as_str().rsplit(']').next().unwrap_or("");
        if let Some((_, port)) = after_host.rsplit_once(':') {
            if !port.parse::<u16>().is_ok_and(|p| p != 0) {
                return Err("has an invalid port".into());
            }
        }
        if uri.query().is_some() || text.contains('#') {
            return Err("must not carry a query or a fragment".into());
        }
        Ok(HttpUrl {
            text: text.to_string(),
            uri,
        })
    }
    pub fn is_https(&self) -> bool {
        self.uri.scheme_str() == Some("https")
    }
    /// The host as written, without the brackets of an IPv6 literal.
    pub fn host(&self) -> &str {
        let h = self.uri.host().unwrap_or("");
        h.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(h)
    }
    pub fn port(&self) -> u16 {
        self.uri
            .port_u16()
            .unwrap_or(if self.is_https() { 443 } else { 80 })
    }
    /// The path without a trailing slash ("" for the root).
    pub fn path(&self) -> &str {
        self.uri.path().trim_end_matches('/')
    }
    /// The URL as given (trimmed), for requests and messages.
    pub fn as_str(&self) -> &str {
        &self.text
    }
    /// The base for joining paths: the URL without a trailing slash.
    pub fn base(&self) -> &str {
        self.text.trim_end_matches('/')
    }
    /// The host is this machine: `localhost`, 127.0.0.0/8 or ::1.
    pub fn is_loopback(&self) -> bool {
        self.host().eq_ignore_ascii_case("localhost")
            || self
                .host()
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl ParamValue for HttpUrl {
    const KIND: ParamKind = ParamKind::String;
    fn parse(text: &str) -> Result<Self, String> {
        HttpUrl::parse(text)
    }
}

/// Parse one of a fixed set of names (case-insensitive), for agents' enum parameters.
pub fn choice<T: Copy>(text: &str, names: &[(&str, T)]) -> Result<T, String> {
    let t = text.trim();
    names
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(t))
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            format!(
                "is not supported (supported: {})",
                names.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(u32::parse(" 7 "), Ok(7));
        assert_eq!(u32::parse("x"), Err("is not a whole number".into()));
        assert_eq!(u32::parse("-1"), Err("is negative".into()));
        assert_eq!(
            u32::parse("4294967296"),
            Err("is out of range (0-4294967295)".into())
        );
        assert_eq!(i64::parse("-1"), Ok(-1));
        assert!(Seconds::parse("-1").is_err());
        assert_eq!(Seconds::parse("30"), Ok(Seconds(Duration::from_secs(30))));
    }

    #[test]
    fn paths_and_addresses() {
        assert!(AbsPath::parse("/etc/haproxy/haproxy.cfg").is_ok());
        assert_eq!(
            AbsPath::parse("haproxy.cfg"),
            Err("is not an absolute path".into())
        );
        assert!(IpAddr::parse("2001:db8::1").is_ok());
        assert!(Ipv4Addr::parse("2001:db8::1").is_err());
    }

    #[test]
    fn urls_through_the_clients_parser() {
        let u = HttpUrl::parse("http://169.254.169.254/metadata/v1/").unwrap();
        assert_eq!(
            (u.is_https(), u.host(), u.port(), u.path()),
            (false, "169.254.169.254", 80, "/metadata/v1")
        );
        assert_eq!(u.base(), "http://169.254.169.254/metadata/v1");
        let u = HttpUrl::parse("https://api.digitalocean.com").unwrap();
        assert_eq!((u.is_https(), u.port(), u.path()), (true, 443, ""));
        let u = HttpUrl::parse("http://[::1]:8080/x").unwrap();
        assert_eq!((u.host(), u.port()), ("::1", 8080));
        assert!(u.is_loopback());
        assert!(HttpUrl::parse("http://127.0.0.1:9").unwrap().is_loopback());
        assert!(HttpUrl::parse("http://localhost/").unwrap().is_loopback());
        assert!(!HttpUrl::parse("http://169.254.169.254")
            .unwrap()
            .is_loopback());
        for bad in [
            "ftp://x",
            "api.digitalocean.com",
            "http://",
            "http://:80",
            "http://h:0",
            "http://h:99999",
            "http://h:x",
            "http://[::1",
            "http://[zz]/",
            "http://user:pw@h/",
            "http://h/?q=1",
            "http://h/#f",
            "http://h h/",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            HttpUrl::parse("169.254.169.254").unwrap_err(),
            "must start with http:// or https://"
        );
    }

    #[test]
    fn choices() {
        let names = [("digitalocean", 1), ("hetzner", 2)];
        assert_eq!(choice("Hetzner", &names), Ok(2));
        assert_eq!(
            choice("aws", &names),
            Err("is not supported (supported: digitalocean, hetzner)".into())
        );
    }
}
