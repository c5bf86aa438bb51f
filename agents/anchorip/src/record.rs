//! The record a start leaves under HA_RSCTMP (`anchorip-<instance>.started`) for monitor and
//! stop: the address, where, and whether this agent added it (an address that was there before
//! is never removed), with the kernel's creation stamp of the address it added. Records of the
//! previous version (no stamp) still read; a record is void after a reboot (boot id, in common).

use crate::anchor::Anchor;
use crate::netlink::IfAddr;
use cloudha_common::Record;
use std::net::IpAddr;

/// What a start did, remembered until the stop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Started {
    pub anchor: Anchor,
    pub added: bool,
    /// The kernel's creation stamp of the address this agent added: an address there at stop
    /// with another stamp was added again by someone else, and is not removed.
    pub created: Option<u32>,
}

impl Record for Started {
    const SUFFIX: &'static str = "started";

    fn to_text(&self) -> String {
        let mut text = format!(
            "address={}\nnic={}\nadded={}\n",
            self.anchor,
            self.anchor.nic,
            if self.added { "yes" } else { "no" }
        );
        if let Some(c) = self.created {
            text += &format!("created={c}\n");
        }
        text
    }

    /// None for anything that is not a whole record: an address with a prefix its family can
    /// have, an interface, and whether it was added.
    fn parse(text: &str) -> Option<Started> {
        let mut address = None;
        let mut nic = None;
        let mut added = None;
        let mut created = None;
        for line in text.lines() {
            match line.split_once('=') {
                Some(("address", v)) => address = Some(v),
                Some(("nic", v)) => nic = Some(v),
                Some(("added", v)) => added = Some(v == "yes"),
                Some(("created", v)) => created = Some(v.parse().ok()?),
                _ => {}
            }
        }
        let (addr, prefix) = address?.split_once('/')?;
        let addr: IpAddr = addr.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        let max = if addr.is_ipv6() { 128 } else { 32 };
        // An interface name has no blank or control character (a CR would not survive a write
        // and a read: found by the long property-test run).
        let nic = nic
            .filter(|n| !n.is_empty() && !n.chars().any(|c| c.is_whitespace() || c.is_control()))?;
        if prefix > max {
            return None;
        }
        Some(Started {
            anchor: Anchor {
                addr: IfAddr { addr, prefix },
                nic: nic.to_string(),
            },
            added: added?,
            created,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(addr: IpAddr, prefix: u8, nic: &str, added: bool, created: Option<u32>) -> Started {
        Started {
            anchor: Anchor {
                addr: IfAddr { addr, prefix },
                nic: nic.into(),
            },
            added,
            created,
        }
    }

    #[test]
    fn round_trip() {
        let s = started("2001:db8::7".parse().unwrap(), 64, "eth0", true, Some(4711));
        assert_eq!(
            s.to_text(),
            "address=2001:db8::7/64\nnic=eth0\nadded=yes\ncreated=4711\n"
        );
        assert_eq!(Started::parse(&s.to_text()), Some(s.clone()));
        // A record of the previous version (no creation stamp) still reads.
        let old = Started::parse("address=2001:db8::7/64\nnic=eth0\nadded=yes\n").unwrap();
        assert_eq!(old.created, None);
        assert_eq!(Started::parse("garbage"), None);
        // Damage: a prefix no address of the family has, no interface.
        assert_eq!(
            Started::parse("address=10.0.0.1/33\nnic=eth0\nadded=yes\n"),
            None
        );
        assert_eq!(
            Started::parse("address=10.0.0.1/32\nnic=\nadded=yes\n"),
            None
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn line() -> impl Strategy<Value = String> {
            prop_oneof![
                "(address|nic|added|created)=.{0,24}",
                "address=(10\\.17\\.[0-9]{1,3}\\.[0-9]{1,3}|2001:db8::[0-9a-f]{1,4})/[0-9]{1,3}",
                "nic=[a-z0-9.:/ \t-]{0,17}",
                "added=(yes|no|YES|)",
                "created=[0-9]{1,11}",
                ".{0,30}",
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Any text: a record or none, never a panic; what parses writes back the same.
            #[test]
            fn any_text(lines in proptest::collection::vec(line(), 0..7), raw in "(?s).{0,200}") {
                for text in [lines.join("\n"), lines.join("\r\n"), raw] {
                    if let Some(r) = Started::parse(&text) {
                        prop_assert_eq!(Started::parse(&r.to_text()), Some(r));
                    }
                }
            }

            #[test]
            fn records_round_trip(
                addr in any::<IpAddr>(),
                prefix in 0u8..=128,
                nic in "[a-z][a-z0-9_.-]{0,14}",
                added in any::<bool>(),
                created in proptest::option::of(any::<u32>()),
            ) {
                let prefix = if addr.is_ipv4() { prefix % 33 } else { prefix };
                let r = started(addr, prefix, &nic, added, created);
                prop_assert_eq!(Started::parse(&r.to_text()), Some(r));
            }
        }
    }
}
