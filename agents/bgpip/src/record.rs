//! The record a start leaves under HA_RSCTMP (`bgpip-<instance>.started`): which prefix it
//! announced under which `router bgp`, so that stop withdraws exactly that and a probe knows
//! whether anything was started here in this boot.

use crate::settings::Prefix;
use cloudha_common::Record;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Started {
    pub prefix: Prefix,
    pub asn: u32,
}

impl Record for Started {
    const SUFFIX: &'static str = "started";
    fn to_text(&self) -> String {
        format!("prefix={}\nasn={}\n", self.prefix, self.asn)
    }
    fn parse(text: &str) -> Option<Started> {
        let mut prefix = None;
        let mut asn = None;
        for line in text.lines() {
            match line.split_once('=') {
                Some(("prefix", v)) => prefix = Some(v.parse().ok()?),
                Some(("asn", v)) => asn = Some(v.parse().ok()?),
                _ => {}
            }
        }
        Some(Started {
            prefix: prefix?,
            asn: asn?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let r = Started {
            prefix: "2001:db8:1::/56".parse().unwrap(),
            asn: 65001,
        };
        assert_eq!(Started::parse(&r.to_text()), Some(r));
        assert_eq!(Started::parse("prefix=203.0.113.7/32\n"), None);
        assert_eq!(Started::parse("prefix=203.0.113.7/40\nasn=1\n"), None);
        assert_eq!(Started::parse("prefix=x\nasn=1\n"), None);
    }
}
