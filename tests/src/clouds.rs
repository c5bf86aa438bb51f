//! The clouds a real two-node cluster runs on, as the README configures each: its `crm
//! configure` block, its credentials file, its address resource, and the fake of it with the
//! account the block expects, serving each node its own metadata service and the API. The
//! cluster tests (tests/tests/cluster.rs) and the traffic tests (tests/src/traffic.rs) share it.

use crate::cluster::{
    Cluster, CRM_CONFIGURE, CRM_CONFIGURE_EXOSCALE, CRM_CONFIGURE_HETZNER, CRM_CONFIGURE_VULTR,
};
use crate::fakecloud::{exoscale, hetzner, vultr, FakeCloud, Fault, Scope};

/// The floating IP every cloud's cluster moves.
pub const IP: &str = "203.0.113.10";
/// The token (Exoscale: the API secret) in each node's root-only credentials file.
pub const TOKEN: &str = "cluster-test-token";
/// Exoscale: the API key the README's block names (its secret is `TOKEN`, in the secret file).
pub const EXO_KEY: &str = "EXO0123456789abcdef01234567";
/// The fake API listens on each node's loopback, at this port.
pub const API_PORT: u16 = 8080;
/// Server (droplet, instance) ids of node1 and node2.
pub const SERVERS: [u64; 2] = [101, 102];
/// DigitalOcean's anchor addresses of node1 and node2 (on eth0, /16, gateway 10.17.0.1).
pub const ANCHORS: [&str; 2] = ["10.17.0.5", "10.17.0.6"];

/// The cloud a cluster runs on: what differs between the README blocks and the fakes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cloud {
    /// The IP moves in one action; the metadata service tells the holder (monitor: no API).
    DigitalOcean,
    /// "Moves in one call" (assign), found by listing; monitor: one API read by id.
    Hetzner,
    /// "Attach + detach others" (an elastic IP may have several holders); signed requests.
    Exoscale,
    /// "Detach, then attach", both answered before the platform is done; found by listing.
    Vultr,
}

impl Cloud {
    /// Every cloud, in the README's order.
    pub const ALL: [Cloud; 4] = [
        Cloud::DigitalOcean,
        Cloud::Hetzner,
        Cloud::Exoscale,
        Cloud::Vultr,
    ];

    /// The README's block for this cloud, as the README includes it.
    pub fn block(self) -> &'static str {
        match self {
            Cloud::DigitalOcean => CRM_CONFIGURE,
            Cloud::Hetzner => CRM_CONFIGURE_HETZNER,
            Cloud::Exoscale => CRM_CONFIGURE_EXOSCALE,
            Cloud::Vultr => CRM_CONFIGURE_VULTR,
        }
    }

    /// The `api_url` the block names (the one thing the tests change: to the fake).
    pub fn real_api_url(self) -> &'static str {
        match self {
            Cloud::DigitalOcean => "api_url=https://api.digitalocean.com",
            Cloud::Hetzner => "api_url=https://api.hetzner.cloud",
            Cloud::Exoscale => "api_url=https://api-ch-gva-2.exoscale.com",
            Cloud::Vultr => "api_url=https://api.vultr.com",
        }
    }

    /// The README's block with `api_url` pointed at the fake on each node's loopback: the only
    /// change (each node's metadata service is the fake at the real address).
    pub fn readme_block(self) -> String {
        let real = self.real_api_url();
        let block = self.block();
        assert_eq!(
            block.matches(real).count(),
            1,
            "the README's block for {self:?} no longer names {real} once"
        );
        block.replace(real, &format!("api_url=http://127.0.0.1:{API_PORT}"))
    }

    /// The root-only file with the token (Exoscale: the API secret), as the block names it.
    pub fn token_file(self) -> &'static str {
        match self {
            Cloud::DigitalOcean => "/etc/cloudha/do-token",
            Cloud::Hetzner => "/etc/cloudha/hcloud-token",
            Cloud::Exoscale => "/etc/cloudha/exoscale-secret",
            Cloud::Vultr => "/etc/cloudha/vultr-token",
        }
    }

    /// The block's address resource (cloned on every node).
    pub fn anchor(self) -> &'static str {
        match self {
            Cloud::DigitalOcean => "anchor",
            Cloud::Hetzner | Cloud::Exoscale | Cloud::Vultr => "vip-lo",
        }
    }

    /// The address node `i`'s HAProxy binds: DigitalOcean's anchor address on eth0, elsewhere
    /// the floating IP itself, on `lo`.
    pub fn bind(self, i: usize) -> &'static str {
        match self {
            Cloud::DigitalOcean => ANCHORS[i],
            Cloud::Hetzner | Cloud::Exoscale | Cloud::Vultr => IP,
        }
    }

    /// The fake of this cloud with the account the block expects: its credentials and the IP,
    /// held by no one.
    pub fn fake(self) -> FakeCloud {
        match self {
            Cloud::DigitalOcean => {
                let c = FakeCloud::start();
                c.add_token(TOKEN);
                c.add_ip(IP, None);
                c
            }
            Cloud::Hetzner => {
                let c = FakeCloud::start_hetzner();
                c.add_token(TOKEN);
                c.add_ip_in(IP, hetzner::LOCATION, None);
                c
            }
            Cloud::Exoscale => {
                let c = FakeCloud::start_exoscale();
                c.add_api_key(EXO_KEY, TOKEN);
                c.add_ip_in(IP, exoscale::ZONE, None);
                c
            }
            Cloud::Vultr => {
                let c = FakeCloud::start_vultr();
                c.add_token(TOKEN);
                c.add_ip_in(IP, vultr::REGION, None);
                c
            }
        }
    }

    /// The fake of this cloud (see [`Cloud::fake`]) behind `cluster`'s nodes, before they boot:
    /// node `i` is server `SERVERS[i]` (on DigitalOcean with its anchor address), sees its own
    /// metadata service at 169.254.169.254 and the API on its loopback, and has the credentials
    /// file the block names. The caller stages each node's haproxy.cfg.
    pub fn serve(self, cluster: &Cluster) -> FakeCloud {
        let cloud = self.fake();
        for (i, node) in cluster.nodes().iter().enumerate() {
            let id = SERVERS[i];
            cloud.register_droplet(id);
            if self == Cloud::DigitalOcean {
                cloud.set_anchor(id, ANCHORS[i], "255.255.0.0", "10.17.0.1");
            }
            cloud.serve_metadata_in_netns(
                id,
                &node.netns.name,
                "169.254.169.254:80".parse().unwrap(),
            );
            cloud.serve_api_in_netns(
                &node.netns.name,
                format!("127.0.0.1:{API_PORT}").parse().unwrap(),
            );
            cluster.stage(i, self.token_file(), format!("{TOKEN}\n").as_bytes(), 0o600);
        }
        cloud
    }

    /// Revoke (false) or restore (true) the credentials the block uses.
    pub fn credentials(self, cloud: &FakeCloud, valid: bool) {
        match (self, valid) {
            (Cloud::Exoscale, true) => cloud.add_api_key(EXO_KEY, TOKEN),
            (Cloud::Exoscale, false) => cloud.revoke_api_key(EXO_KEY),
            (_, true) => cloud.add_token(TOKEN),
            (_, false) => cloud.revoke_token(TOKEN),
        }
    }

    /// The one API request a recurring monitor on `server` may make (None: none at all, the
    /// metadata service decides).
    pub fn monitor_read(self, cloud: &FakeCloud, server: u64) -> Option<String> {
        match self {
            Cloud::DigitalOcean => None,
            Cloud::Hetzner => Some(format!(
                "/v1/floating_ips/{}",
                cloud.ip_id(IP).expect("the floating IP's id")
            )),
            Cloud::Exoscale => Some(format!("/v2/instance/{}", exoscale::instance_uuid(server))),
            Cloud::Vultr => Some(format!(
                "/v2/reserved-ips/{}",
                vultr::ip_uuid(cloud.ip_id(IP).expect("the reserved IP's id"))
            )),
        }
    }

    /// API faults in this cloud's dialect, met during a failover, all of which the agent must
    /// wait out or retry; with the number of requests they answer.
    pub fn failover_faults(self) -> (Vec<Fault>, usize) {
        let write = self.write_method();
        let mut faults = vec![
            Fault::rate_limited(1).times(2),
            Fault::status(Scope::Api, 503).times(2),
            Fault::status(Scope::Api, 500).method(write).times(1),
        ];
        match self {
            Cloud::DigitalOcean | Cloud::Vultr => {}
            // Hetzner's `locked`: another action runs on the IP; a wait.
            Cloud::Hetzner => faults.push(Fault::status(Scope::Api, 423).method(write).times(1)),
            // An attach or a detach refused once more: the detach of the old holder too.
            Cloud::Exoscale => faults.push(Fault::status(Scope::Api, 502).method(write).times(2)),
        }
        let n = match self {
            Cloud::DigitalOcean => 5,
            Cloud::Hetzner => 6,
            Cloud::Exoscale => 7,
            Cloud::Vultr => 5,
        };
        (faults, n)
    }

    /// The method of the requests that move the IP (Exoscale's attach and detach are PUTs).
    pub fn write_method(self) -> &'static str {
        if self == Cloud::Exoscale {
            "PUT"
        } else {
            "POST"
        }
    }
}
