//! The record a successful start leaves under HA_RSCTMP and stop removes: which address, for
//! which server, since when. Monitor believes the metadata service only while this record
//! exists (stop does not unassign), and the record is void after a reboot (boot id, in common).

use crate::provider::ServerId;
use cloudha_common::Record;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Started {
    pub ip: IpAddr,
    pub server: ServerId,
    /// Unix seconds when start confirmed the assignment with the API.
    pub since: u64,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Started {
    pub fn now(ip: IpAddr, server: ServerId) -> Started {
        Started {
            ip,
            server,
            since: now_secs(),
        }
    }

    pub fn age(&self) -> Duration {
        Duration::from_secs(now_secs().saturating_sub(self.since))
    }
}

/// `<HA_RSCTMP>/cloudha/floatip-<instance>.started`.
impl Record for Started {
    const SUFFIX: &'static str = "started";

    fn to_text(&self) -> String {
        format!(
            "ip={}\nserver={}\nsince={}\n",
            self.ip, self.server, self.since
        )
    }

    /// None for anything that is not a whole record.
    fn parse(text: &str) -> Option<Started> {
        let (mut ip, mut server, mut since) = (None, None, None);
        for line in text.lines() {
            match line.split_once('=') {
                Some(("ip", v)) => ip = v.parse().ok(),
                Some(("server", v)) if !v.is_empty() => server = Some(ServerId(v.to_string())),
                Some(("since", v)) => since = v.parse().ok(),
                _ => {}
            }
        }
        Some(Started {
            ip: ip?,
            server: server?,
            since: since?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = Started::now("203.0.113.7".parse().unwrap(), ServerId("42".into()));
        assert_eq!(Started::parse(&s.to_text()), Some(s.clone()));
        assert!(s.age() < Duration::from_secs(5));
        assert_eq!(Started::parse("ip=203.0.113.7\nserver=42\n"), None);
        assert_eq!(Started::parse("garbage"), None);
    }
}
