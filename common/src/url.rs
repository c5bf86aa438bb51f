//! Just enough URL parsing to check `api_url`/`metadata_url` parameters and to tell whether a
//! plain-HTTP URL stays on this machine (allowed only for loopback: tests and fakes).

use std::net::IpAddr;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    pub https: bool,
    /// Host as written (brackets stripped from IPv6 literals).
    pub host: String,
    pub port: u16,
    /// Path without a trailing slash ("" for the root).
    pub path: String,
}

impl HttpUrl {
    /// Parse `http://host[:port][/path]` or `https://…`. Errors say what is wrong, not where.
    pub fn parse(s: &str) -> Result<HttpUrl, String> {
        let (https, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else {
            return Err("must start with http:// or https://".into());
        };
        if rest.contains(['?', '#', ' ', '@']) {
            return Err("must not carry a query, fragment, credentials or spaces".into());
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = if let Some(r) = authority.strip_prefix('[') {
            let end = r.find(']').ok_or("has an unclosed '[' in its host")?;
            let host = &r[..end];
            host.parse::<std::net::Ipv6Addr>()
                .map_err(|_| "has an invalid IPv6 host")?;
            let after = &r[end + 1..];
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err("has garbage after its IPv6 host".into()),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err("has no host".into());
        }
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'))
        {
            return Err("has an invalid host".into());
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or("has an invalid port")?,
            None if https => 443,
            None => 80,
        };
        Ok(HttpUrl {
            https,
            host: host.to_string(),
            port,
            path: path.trim_end_matches('/').to_string(),
        })
    }

    /// The host is this machine: `localhost`, 127.0.0.0/8 or ::1.
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        let u = HttpUrl::parse("http://169.254.169.254/metadata/v1/").unwrap();
        assert_eq!(
            u,
            HttpUrl {
                https: false,
                host: "169.254.169.254".into(),
                port: 80,
                path: "/metadata/v1".into()
            }
        );
        let u = HttpUrl::parse("https://api.digitalocean.com").unwrap();
        assert_eq!((u.https, u.port, u.path.as_str()), (true, 443, ""));
        let u = HttpUrl::parse("http://[::1]:8080/x").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 8080));
        assert!(u.is_loopback());
        assert!(HttpUrl::parse("http://127.0.0.1:9").unwrap().is_loopback());
        assert!(HttpUrl::parse("http://localhost/").unwrap().is_loopback());
        assert!(!HttpUrl::parse("http://169.254.169.254")
            .unwrap()
            .is_loopback());
    }

    #[test]
    fn rejects_malformed() {
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
            "http://h h/",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
