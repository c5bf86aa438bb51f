//! FRR's answers, read: `show bgp <afi> unicast <prefix> json` (this node's own path for the
//! prefix, its community, whom it was advertised to), `show bgp peer-group NAME json` (the
//! sessions), and the lines of `show running-config` that the agent owns. Tested against output
//! captured from FRR 8.4 (tests/data).

use serde_json::Value;
use std::collections::BTreeMap;

/// This node's own announcement of a prefix (the path a `network` line makes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalPath {
    /// Usable: the prefix is in the routing table (FRR's import check), so it is announced.
    pub valid: bool,
    /// The communities it carries, as FRR writes them ("65000:1").
    pub communities: Vec<String>,
    /// The peers it has been advertised to.
    pub advertised_to: Vec<String>,
}

fn not_an_object(what: &str) -> String {
    format!("FRR's answer to {what} is not a JSON object")
}

/// The local path in `show bgp ... <prefix> json`; None when bgpd has no path of its own for it
/// (`{}` when the prefix is unknown, or only paths learnt from peers).
pub fn local_path(doc: &Value) -> Result<Option<LocalPath>, String> {
    let obj = doc
        .as_object()
        .ok_or_else(|| not_an_object("show bgp <prefix>"))?;
    let Some(paths) = obj.get("paths") else {
        return Ok(None);
    };
    let paths = paths
        .as_array()
        .ok_or_else(|| "FRR's 'paths' is not a list".to_string())?;
    let own = paths.iter().find(|p| {
        p.get("sourced").and_then(Value::as_bool) == Some(true)
            || p.get("local").and_then(Value::as_bool) == Some(true)
    });
    let Some(own) = own else {
        return Ok(None);
    };
    let communities = own
        .get("community")
        .and_then(|c| c.get("list"))
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let advertised_to = obj
        .get("advertisedTo")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    Ok(Some(LocalPath {
        valid: own.get("valid").and_then(Value::as_bool) == Some(true),
        communities,
        advertised_to,
    }))
}

/// The members of a peer group and their session states ("Established", "Active", "Idle"…);
/// None when the group does not exist (`{}`).
pub fn peer_group(doc: &Value, name: &str) -> Result<Option<BTreeMap<String, String>>, String> {
    let obj = doc
        .as_object()
        .ok_or_else(|| not_an_object("show bgp peer-group"))?;
    let Some(group) = obj.get(name) else {
        return Ok(None);
    };
    let members = group
        .get("members")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(peer, v)| {
                    let status = v.get("status").and_then(Value::as_str).unwrap_or("unknown");
                    (peer.clone(), status.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(members))
}

/// Several JSON documents written one after the other (vtysh with several `-c` commands).
pub fn documents(text: &str) -> Result<Vec<Value>, String> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("FRR's answer is not JSON ({e})"))
}

/// What of the agent's own statements the running configuration holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owned {
    /// `network <prefix> route-map <one of ours>` lines: the prefixes.
    pub networks: Vec<String>,
    /// Route-maps named with our prefix.
    pub route_maps: Vec<String>,
    /// Whether our peer group is declared.
    pub peer_group: bool,
    /// The AS of `router bgp`, if any (the default instance).
    pub router_asn: Option<u32>,
}

/// Read the agent's statements out of `show running-config` text.
pub fn owned(config: &str, map_prefix: &str, group: &str) -> Owned {
    let mut o = Owned::default();
    let group_line = format!("neighbor {group} peer-group");
    for line in config.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["router", "bgp", asn] => o.router_asn = asn.parse().ok(),
            ["network", prefix, "route-map", map] if map.starts_with(map_prefix) => {
                o.networks.push(prefix.to_string())
            }
            ["route-map", map, ..]
                if map.starts_with(map_prefix) && !o.route_maps.iter().any(|m| m == map) =>
            {
                o.route_maps.push(map.to_string())
            }
            _ if line.trim() == group_line => o.peer_group = true,
            _ => {}
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(name: &str) -> String {
        let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }
    fn json(name: &str) -> Value {
        serde_json::from_str(&data(name)).unwrap()
    }

    #[test]
    fn primary_path_advertised_to_the_route_server() {
        let p = local_path(&json("node-prefix-primary-advertised.json"))
            .unwrap()
            .unwrap();
        assert!(p.valid);
        assert_eq!(p.communities, ["65000:1"]);
        assert_eq!(p.advertised_to, ["2001:db8:34::1"]);
    }

    #[test]
    fn secondary_path() {
        let p = local_path(&json("node-prefix-secondary.json"))
            .unwrap()
            .unwrap();
        assert_eq!(p.communities, ["65000:2"]);
        assert!(p.valid);
    }

    #[test]
    fn a_prefix_missing_from_the_routing_table_is_not_valid() {
        let p = local_path(&json("node-prefix-not-in-rib.json"))
            .unwrap()
            .unwrap();
        assert!(!p.valid);
        assert_eq!(p.communities, ["65000:1"]);
        assert!(p.advertised_to.is_empty());
    }

    #[test]
    fn an_unknown_prefix_has_no_local_path() {
        assert_eq!(local_path(&json("node-prefix-absent.json")).unwrap(), None);
        // The route server's paths are all learnt from peers: none is its own.
        assert_eq!(local_path(&json("rs-prefix-two-paths.json")).unwrap(), None);
        assert!(local_path(&Value::Null).is_err());
        assert!(local_path(&serde_json::json!({"paths": 3})).is_err());
    }

    #[test]
    fn peer_group_members() {
        let m = peer_group(&json("node-peer-group-connecting.json"), "CLOUDHA")
            .unwrap()
            .unwrap();
        assert_eq!(m.get("2001:db8:35::1").map(String::as_str), Some("Idle"));
        assert_eq!(
            peer_group(&json("node-peer-group-absent.json"), "CLOUDHA").unwrap(),
            None
        );
    }

    #[test]
    fn two_answers_in_one_output() {
        let docs = documents(&data("node-depth10-primary.txt")).unwrap();
        assert_eq!(docs.len(), 2);
        let p = local_path(&docs[0]).unwrap().unwrap();
        assert_eq!(p.communities, ["65000:1"]);
        let m = peer_group(&docs[1], "CLOUDHA").unwrap().unwrap();
        assert_eq!(
            m.get("2001:db8:34::1").map(String::as_str),
            Some("Established")
        );
        assert!(documents("{} {").is_err());
        assert_eq!(documents("").unwrap().len(), 0);
    }

    #[test]
    fn owned_statements_in_the_running_config() {
        let o = owned(
            &data("node-running-config.txt"),
            "cloudha-bgpip-",
            "CLOUDHA",
        );
        assert_eq!(o.networks, ["203.0.113.77/32"]);
        assert_eq!(
            o.route_maps,
            [
                "cloudha-bgpip-65000-1",
                "cloudha-bgpip-in",
                "cloudha-bgpip-out",
                "cloudha-bgpip-65000-2"
            ]
        );
        assert!(o.peer_group);
        assert_eq!(o.router_asn, Some(65001));
        let none = owned(
            "router bgp 65001\n network 192.0.2.0/24\n",
            "cloudha-bgpip-",
            "CLOUDHA",
        );
        assert!(none.networks.is_empty() && !none.peer_group);
    }
}
