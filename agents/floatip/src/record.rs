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
                // An id is one word of text: a control character is damage (or tampering).
                Some(("server", v)) if !v.is_empty() && !v.contains(char::is_control) => {
                    server = Some(ServerId(v.to_string()))
                }
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
        // Found by `properties::any_text`: a lone CR ended the last line and the id.
        assert_eq!(Started::parse("ip=203.0.113.0\nsince=0\nserver=\r"), None);
        assert_eq!(
            Started::parse("ip=203.0.113.0\nsince=0\nserver=4\u{1b}"),
            None
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn line() -> impl Strategy<Value = String> {
            prop_oneof![
                "(ip|server|since)=.{0,20}",
                "ip=(203\\.0\\.113\\.[0-9]{1,3}|2001:db8::[0-9a-f]{1,4})",
                "server=[0-9]{1,12}",
                "since=[0-9]{1,20}",
                ".{0,30}",
            ]
        }

        proptest! {
            /// Any text: a record or none, never a panic; what parses, writes back the same.
            #[test]
            fn any_text(lines in proptest::collection::vec(line(), 0..6), raw in ".{0,200}") {
                for text in [lines.join("\n"), raw] {
                    if let Some(r) = Started::parse(&text) {
                        prop_assert_eq!(Started::parse(&r.to_text()), Some(r));
                    }
                }
            }

            #[test]
            fn records_round_trip(a in any::<[u8; 4]>(), server in "[0-9]{1,12}", since in any::<u64>()) {
                let r = Started { ip: IpAddr::from(a), server: ServerId(server), since };
                prop_assert_eq!(Started::parse(&r.to_text()), Some(r));
            }
        }
    }
}
