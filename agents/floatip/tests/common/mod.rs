//! The floatip tests' shared setup: a fake cloud on loopback, one droplet per node, each node
//! with its own HA_RSCTMP, and the agent run as Pacemaker runs it.
#![allow(dead_code)]

use cloudha_tests::fakecloud::FakeCloud;
use cloudha_tests::{agent_bin, run_agent, AgentRun};
use std::path::PathBuf;

pub const TOKEN: &str = "dop_v1_cloudhatest_5f1e2d3c4b5a69788796a5b4c3d2e1f0";
/// The Exoscale API key whose secret is `TOKEN`.
pub const EXO_KEY: &str = "EXO0cloudhatest0123456789abc";
pub const IP: &str = "203.0.113.10";
/// Droplet ids of the nodes.
pub const A: u64 = 3_160_001;
pub const B: u64 = 3_160_002;

/// One node: a droplet with its metadata service and its own state directory.
pub struct Node {
    pub droplet: u64,
    pub metadata_url: String,
    pub rsctmp: tempfile::TempDir,
}

pub struct Cloud {
    pub fake: FakeCloud,
    pub nodes: Vec<Node>,
    /// The `provider` parameter the nodes' agents are given (None: not set, DigitalOcean).
    pub provider: Option<&'static str>,
}

/// A fake account with the token, `IP` held by `holder`, and droplets `ids` as nodes.
pub fn cloud(holder: Option<u64>, ids: &[u64]) -> Cloud {
    nodes_of(FakeCloud::start(), None, holder, ids)
}

/// A fake Hetzner project (more than one page of floating IPs) with the token, `IP` held by
/// `holder`, and servers `ids` as nodes, whose agents say `provider=hetzner`.
pub fn hetzner(holder: Option<u64>, ids: &[u64]) -> Cloud {
    nodes_of(FakeCloud::start_hetzner(), Some("hetzner"), holder, ids)
}

/// A fake Exoscale account (zone ch-gva-2) with the key and its secret (`TOKEN`), `IP` held by
/// `holder`, and instances `ids` as nodes, whose agents say `provider=exoscale`.
pub fn exoscale(holder: Option<u64>, ids: &[u64]) -> Cloud {
    let fake = FakeCloud::start_exoscale();
    fake.add_api_key(EXO_KEY, TOKEN);
    let c = nodes_of(fake, Some("exoscale"), None, ids);
    // `add_ip` put it in DigitalOcean's region: Exoscale's lives in the zone.
    c.fake
        .add_ip_in(IP, cloudha_tests::fakecloud::exoscale::ZONE, holder);
    c
}

/// A fake Vultr account (more than one page of reserved IPs) with the API key (`TOKEN`), `IP`
/// held by `holder`, and instances `ids` as nodes, whose agents say `provider=vultr`.
pub fn vultr(holder: Option<u64>, ids: &[u64]) -> Cloud {
    let c = nodes_of(FakeCloud::start_vultr(), Some("vultr"), None, ids);
    // `add_ip` put it in DigitalOcean's region: Vultr's lives in its own (and on the second
    // page of 500, after the fake's filler subnets).
    c.fake
        .add_ip_in(IP, cloudha_tests::fakecloud::vultr::REGION, holder);
    c
}

/// The UUID of instance `n` (Exoscale).
pub fn uuid(n: u64) -> String {
    cloudha_tests::fakecloud::exoscale::instance_uuid(n)
}

fn nodes_of(
    fake: FakeCloud,
    provider: Option<&'static str>,
    holder: Option<u64>,
    ids: &[u64],
) -> Cloud {
    fake.add_token(TOKEN);
    fake.add_ip(IP, holder);
    let nodes = ids
        .iter()
        .map(|&id| Node {
            droplet: id,
            metadata_url: fake.add_droplet(id),
            rsctmp: tempfile::tempdir().expect("tempdir"),
        })
        .collect();
    Cloud {
        fake,
        nodes,
        provider,
    }
}

impl Cloud {
    /// The environment Pacemaker gives node `n`'s agent: parameters, instance, state directory.
    pub fn env(&self, n: usize) -> Vec<(String, String)> {
        let node = &self.nodes[n];
        let mut env: Vec<(String, String)> = vec![
            ("OCF_RESKEY_ip".into(), IP.into()),
            ("OCF_RESKEY_api_token".into(), TOKEN.into()),
            ("OCF_RESKEY_api_url".into(), self.fake.api_url()),
            ("OCF_RESKEY_metadata_url".into(), node.metadata_url.clone()),
            ("OCF_RESOURCE_INSTANCE".into(), "public-ip".into()),
            ("OCF_RESOURCE_TYPE".into(), "floatip".into()),
            ("OCF_RESOURCE_PROVIDER".into(), "cloudha".into()),
            ("HA_RSCTMP".into(), node.rsctmp.path().display().to_string()),
        ];
        if let Some(p) = self.provider {
            env.push(("OCF_RESKEY_provider".into(), p.into()));
        }
        if self.provider == Some("exoscale") {
            env.push(("OCF_RESKEY_api_key".into(), EXO_KEY.into()));
        }
        env
    }

    /// Run `action` on node `n`; `extra` adds or replaces variables (an empty value removes one).
    pub fn run(&self, n: usize, action: &str, extra: &[(&str, &str)]) -> AgentRun {
        run_with(&agent_bin("floatip"), self.env(n), action, extra)
    }

    /// A recurring monitor (interval 10 s) on node `n`.
    pub fn monitor(&self, n: usize) -> AgentRun {
        self.run(n, "monitor", &[("OCF_RESKEY_CRM_meta_interval", "10000")])
    }

    /// The API requests so far, as `METHOD target`.
    pub fn api_calls(&self) -> Vec<String> {
        self.fake
            .api_requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.target))
            .collect()
    }

    /// On a cloud whose metadata cannot show the holder, with node 0 started and holding the
    /// IP: three recurring monitors, each exactly one API request, `GET read`, and none to the
    /// metadata service; then a stop that asks nothing and leaves node 0 the only holder; then a
    /// monitor and a probe that say 7 without a request.
    pub fn monitors_read_once_and_stop_asks_nothing(&self, read: &str) {
        let a = self.nodes[0].droplet;
        for n in 0..3 {
            self.fake.clear_requests();
            self.monitor(0)
                .expect(0, "recurring monitor")
                .reason(predicates::str::is_empty());
            assert_eq!(
                self.api_calls(),
                vec![format!("GET {read}")],
                "monitor {n}: exactly one read, by id"
            );
            assert_eq!(
                self.fake.metadata_request_count(a),
                0,
                "the metadata cannot tell"
            );
        }
        self.fake.clear_requests();
        self.run(0, "stop", &[]).expect(0, "stop");
        assert!(self.fake.requests().is_empty(), "stop asks nothing");
        assert_eq!(self.fake.holders(IP), [a], "stop leaves the IP where it is");
        self.monitor(0).expect(7, "monitor after stop");
        self.run(0, "monitor", &[]).expect(7, "probe after stop");
        assert!(self.fake.requests().is_empty(), "no record, no request");
    }

    pub fn record(&self, n: usize) -> PathBuf {
        self.nodes[n]
            .rsctmp
            .path()
            .join("cloudha/floatip-public-ip.started")
    }
}

/// Run `bin action` with `env`, where `extra` adds or replaces variables (an empty value
/// removes one).
pub fn run_with(
    bin: &std::path::Path,
    mut env: Vec<(String, String)>,
    action: &str,
    extra: &[(&str, &str)],
) -> AgentRun {
    for (k, v) in extra {
        env.retain(|(ek, _)| ek != k);
        if !v.is_empty() {
            env.push((k.to_string(), v.to_string()));
        }
    }
    let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    run_agent(bin, action, &vars, None)
}
