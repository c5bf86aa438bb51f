//! The record a successful start leaves under HA_RSCTMP and stop removes: which address (and
//! its id in the cloud, so that a monitor reads it by id and never lists), for which server,
//! since when, through which provider. A record of the first form (no `provider=` or `id=`, written by DigitalOcean-only versions)
//! still reads: DigitalOcean addresses an IP by the address itself. Monitor believes the metadata service only while this record
//! exists (stop does not unassign), and the record is void after a reboot (boot id, in common).

use crate::provider::{IpId, ProviderKind, ServerId};
use cloudha_common::ParamValue;
use cloudha_common::Record;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Started {
    /// The cloud that `id` and `server` belong to; DigitalOcean in a record of the first form.
    pub provider: ProviderKind,
    pub ip: IpAddr,
    pub server: ServerId,
    /// The IP's id in the cloud, as start found it; None in a record of the first form.
    pub id: Option<IpId>,
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
    pub fn now(provider: ProviderKind, ip: IpAddr, server: ServerId, id: IpId) -> Started {
        Started {
            provider,
            ip,
            server,
            id: Some(id),
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
        let id = match &self.id {
            Some(id) => format!("id={id}\n"),
            None => String::new(),
        };
        format!(
            "provider={}\nip={}\n{id}server={}\nsince={}\n",
            self.provider.name(),
            self.ip,
            self.server,
            self.since
        )
    }

    /// None for anything that is not a whole record.
    fn parse(text: &str) -> Option<Started> {
        let (mut ip, mut server, mut since, mut id) = (None, None, None, None);
        // The default provider (DigitalOcean), which wrote the first form.
        let mut provider = Some(ProviderKind::default());
        // An id is one word of text: a control character is damage (or tampering).
        let word = |v: &str| !v.is_empty() && !v.contains(char::is_control);
        for line in text.lines() {
            match line.split_once('=') {
                Some(("ip", v)) => ip = v.parse().ok(),
                Some(("server", v)) if word(v) => server = Some(ServerId(v.to_string())),
                // A damaged id is no record at all, not a record of the first form.
                Some(("id", v)) => id = Some(word(v).then(|| IpId(v.to_string()))),
                Some(("since", v)) => since = v.parse().ok(),
                Some(("provider", v)) => provider = ProviderKind::parse(v).ok(),
                _ => {}
            }
        }
        Some(Started {
            provider: provider?,
            ip: ip?,
            server: server?,
            id: match id {
                None => None,
                Some(id) => Some(id?),
            },
            since: since?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hetzner() -> ProviderKind {
        ProviderKind::parse("hetzner").unwrap()
    }

    #[test]
    fn round_trip() {
        let s = Started::now(
            hetzner(),
            "203.0.113.7".parse().unwrap(),
            ServerId("42".into()),
            IpId("4711".into()),
        );
        assert_eq!(Started::parse(&s.to_text()), Some(s.clone()));
        assert!(s.to_text().contains("\nid=4711\n"), "{}", s.to_text());
        assert!(
            s.to_text().starts_with("provider=hetzner\n"),
            "{}",
            s.to_text()
        );
        let unknown = s.to_text().replace("provider=hetzner", "provider=aws");
        assert_eq!(Started::parse(&unknown), None);
        assert!(s.age() < Duration::from_secs(5));
        assert_eq!(Started::parse("ip=203.0.113.7\nserver=42\n"), None);
        assert_eq!(Started::parse("garbage"), None);
        // Found by `properties::any_text`: a lone CR ended the last line and the id.
        assert_eq!(Started::parse("ip=203.0.113.0\nsince=0\nserver=\r"), None);
        assert_eq!(
            Started::parse("ip=203.0.113.0\nsince=0\nserver=4\u{1b}"),
            None
        );
        assert_eq!(
            Started::parse("ip=203.0.113.0\nsince=0\nserver=4\nid=\u{7}"),
            None
        );
    }

    #[test]
    fn a_record_of_the_first_form_still_reads() {
        // As DigitalOcean-only versions wrote it: no id (the address is DigitalOcean's id).
        let old = Started::parse("ip=203.0.113.7\nserver=42\nsince=1700000000\n").unwrap();
        assert_eq!(old.id, None);
        assert_eq!(old.provider.name(), "digitalocean");
        assert_eq!(old.server, ServerId("42".into()));
        assert_eq!(Started::parse(&old.to_text()), Some(old));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn line() -> impl Strategy<Value = String> {
            prop_oneof![
                "(ip|server|since|id|provider)=.{0,20}",
                "provider=(digitalocean|hetzner|exoscale|vultr)",
                "id=[0-9]{1,8}",
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
            fn records_round_trip(a in any::<[u8; 4]>(), server in "[0-9]{1,12}", since in any::<u64>(), id in proptest::option::of("[0-9a-f.:-]{1,36}"), which in 0..crate::provider::PROVIDERS.len()) {
                let provider = ProviderKind::parse(crate::provider::PROVIDERS[which].name).unwrap();
                let r = Started { provider, ip: IpAddr::from(a), server: ServerId(server), id: id.map(IpId), since };
                prop_assert_eq!(Started::parse(&r.to_text()), Some(r));
            }
        }
    }
}
