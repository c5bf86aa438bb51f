//! cloudha end to end: a real two-node Pacemaker cluster running the installed agents with the
//! README's `crm configure` block, against the fake cloud serving each node its own metadata
//! service at 169.254.169.254 and the API on the node's loopback. Each scenario is asserted from
//! `crm_mon --output-as=xml` and from the fake's record of who holds the IP.

use cloudha_tests::cluster::{Cluster, ClusterStatus, CRM_CONFIGURE, HAPROXY_CFG};
use cloudha_tests::fakecloud::{FakeCloud, Fault, Scope};
use cloudha_tests::{agent_bin, require_program, Installed};
use std::time::{Duration, Instant};

const IP: &str = "203.0.113.10";
const TOKEN: &str = "cluster-test-token";
const API_PORT: u16 = 8080;
/// Droplet ids of node1 and node2, and their anchor addresses.
const DROPLETS: [u64; 2] = [101, 102];
const ANCHORS: [&str; 2] = ["10.17.0.5", "10.17.0.6"];
/// Long enough for a 10 s monitor to notice a failure and Pacemaker to recover, on a busy CI.
const RECOVERY: Duration = Duration::from_secs(60);

/// The cluster and the fake cloud it talks to, set up as a user would (plus the fake).
struct Setup {
    cluster: Cluster,
    cloud: FakeCloud,
    _installed: Installed,
}

impl Setup {
    /// Two nodes with the installed agents, each with its own haproxy.cfg binding its anchor
    /// address and a root-only token file; the fake serves metadata and API in each node.
    fn new() -> Setup {
        for a in ["anchorip", "floatip", "haproxy"] {
            agent_bin(a);
        }
        require_program("/usr/sbin/haproxy");
        require_program("/usr/bin/curl");
        let installed = Installed::new();
        let cluster = Cluster::new();
        cluster.stage_agents(&installed);

        let cloud = FakeCloud::start();
        cloud.add_token(TOKEN);
        cloud.add_ip(IP, None);
        for (i, node) in cluster.nodes().iter().enumerate() {
            let id = DROPLETS[i];
            cloud.register_droplet(id);
            cloud.set_anchor(id, ANCHORS[i], "255.255.0.0", "10.17.0.1");
            cloud.serve_metadata_in_netns(
                id,
                &node.netns.name,
                "169.254.169.254:80".parse().unwrap(),
            );
            cloud.serve_api_in_netns(
                &node.netns.name,
                format!("127.0.0.1:{API_PORT}").parse().unwrap(),
            );
            let cfg = HAPROXY_CFG
                .replace("@ANCHOR@", ANCHORS[i])
                .replace("@NODE@", &node.name);
            cluster.stage(i, "/etc/haproxy/haproxy.cfg", cfg.as_bytes(), 0o644);
            cluster.stage(
                i,
                "/etc/cloudha/do-token",
                format!("{TOKEN}\n").as_bytes(),
                0o600,
            );
        }
        cluster.boot();
        Setup {
            cluster,
            cloud,
            _installed: installed,
        }
    }

    /// The README's block, with the API URL pointed at the fake (the only change).
    fn readme_block() -> String {
        let real = "api_url=https://api.digitalocean.com";
        assert!(
            CRM_CONFIGURE.contains(real),
            "docs/crm-configure.txt no longer names {real}"
        );
        CRM_CONFIGURE.replace(real, &format!("api_url=http://127.0.0.1:{API_PORT}"))
    }

    fn droplet_of(&self, node: &str) -> u64 {
        DROPLETS[self.cluster.index_of(node)]
    }

    fn node_of_droplet(&self, id: u64) -> String {
        let i = DROPLETS
            .iter()
            .position(|d| *d == id)
            .expect("a node's droplet");
        self.cluster.node(i).name.clone()
    }

    /// Wait until `resource` runs on exactly one node and the fake says that node's droplet
    /// holds the IP; returns the node.
    fn wait_for_holder(&self, resource: &str, expected: Option<&str>, what: &str) -> String {
        let end = Instant::now() + RECOVERY;
        loop {
            let s = self.cluster.status();
            if let Some(node) = s.single_node_of(resource) {
                let holder = self.cloud.holder(IP);
                let right_node = expected.is_none_or(|e| e == node);
                if right_node && holder == Some(self.droplet_of(&node)) {
                    return node;
                }
            }
            if Instant::now() >= end {
                panic!(
                    "{what}: after {RECOVERY:?} {resource} runs on {:?}, the fake says {:?} holds {IP}\n{}\n{}",
                    s.running_on(resource),
                    self.cloud.holder(IP),
                    s.xml,
                    self.cluster.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Everything started: both clones on every online, non-standby node.
    fn wait_clones_everywhere(&self, what: &str) -> ClusterStatus {
        self.cluster.settle(RECOVERY);
        self.cluster.wait_until(what, RECOVERY, |s| {
            let eligible: Vec<String> = s
                .nodes
                .iter()
                .filter(|n| n.online && !n.standby)
                .map(|n| n.name.clone())
                .collect();
            s.running_on("anchor") == eligible && s.running_on("lb") == eligible
        })
    }

    /// HAProxy of `node` answers on its anchor address (from inside that node).
    fn assert_haproxy_answers(&self, node: &str) {
        let i = self.cluster.index_of(node);
        let out = self.cluster.node(i).run(
            "curl",
            &["-sS", "--max-time", "5", &format!("http://{}/", ANCHORS[i])],
        );
        let body = String::from_utf8_lossy(&out.stdout);
        if !(out.status.success() && body.trim() == node) {
            let n = self.cluster.node(i);
            let ss = n.run("ss", &["-ltnp"]);
            let addr = n.run("ip", &["-o", "addr"]);
            let ps = n.run("ps", &["-eo", "pid,ppid,pgid,stat,lstart,args"]);
            panic!(
                "HAProxy on {node} at {}: {body} {}\n{}\n{}\n{}\n{}",
                ANCHORS[i],
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&ss.stdout),
                String::from_utf8_lossy(&addr.stdout),
                String::from_utf8_lossy(&ps.stdout),
                self.cluster.status().xml
            );
        }
    }

    fn assert_nothing_banned(&self, s: &ClusterStatus) {
        for r in ["anchor", "lb", "fip"] {
            assert_eq!(s.max_fail_count(r), 0, "{r} has failures:\n{}", s.xml);
        }
        assert!(
            s.bans.is_empty(),
            "unexpected constraints against nodes: {:?}",
            s.bans
        );
    }
}

#[test]
fn readme_configuration_survives_failures_and_failovers() {
    let t0 = Instant::now();
    let setup = Setup::new();
    let (cluster, cloud) = (&setup.cluster, &setup.cloud);
    eprintln!("cluster up in {:?}", t0.elapsed());

    // 1. Everything starts; the IP is held by the node that runs floatip.
    cluster.configure(&Setup::readme_block());
    setup.wait_clones_everywhere("anchor and lb on both nodes");
    let active = setup.wait_for_holder("fip", None, "first start");
    for n in cluster.nodes() {
        let i = cluster.index_of(&n.name);
        let addrs = n.netns.addresses("eth0");
        assert!(
            addrs.contains(&format!("{}/16", ANCHORS[i])),
            "{}: anchor address missing from eth0: {addrs:?}",
            n.name
        );
        setup.assert_haproxy_answers(&n.name);
    }
    setup.assert_nothing_banned(&cluster.status());
    eprintln!("1. started, {IP} on {active} ({:?})", t0.elapsed());

    // ... and its recurring monitor reads the metadata service only: 0 API requests.
    cloud.clear_requests();
    let active_id = setup.droplet_of(&active);
    let end = Instant::now() + RECOVERY;
    let floatip_reads = || {
        cloud
            .requests()
            .iter()
            .filter(|r| {
                r.listener == cloudha_tests::fakecloud::Listener::Metadata(active_id)
                    && r.path.contains("_ip/ipv4/")
            })
            .count()
    };
    while floatip_reads() < 2 {
        assert!(
            Instant::now() < end,
            "no floatip monitor read the metadata service"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(
        cloud.api_request_count(),
        0,
        "monitors called the API: {:?}",
        cloud
            .requests()
            .iter()
            .filter(|r| r.is_api_call())
            .map(|r| &r.path)
            .collect::<Vec<_>>()
    );
    let s = cluster.status();
    let fip_monitor = s
        .operation(&active, "fip", "monitor", 10_000)
        .expect("fip's recurring monitor ran");
    assert_eq!(fip_monitor.rc, 0);
    eprintln!("1. monitors: 0 API requests ({:?})", t0.elapsed());

    // 2. HAProxy killed on the active node: restarted there; the IP does not move.
    let actions_before = cloud.actions().len();
    let a = cluster.index_of(&active);
    let haproxy_pids: Vec<i32> = cluster
        .node(a)
        .processes()
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "haproxy")
        })
        .collect();
    assert!(!haproxy_pids.is_empty(), "no HAProxy runs on {active}");
    for p in &haproxy_pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*p),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let s = cluster.wait_until("lb's failure noticed and lb restarted", RECOVERY, |s| {
        s.fail_counts
            .get(&(active.clone(), "lb".to_string()))
            .copied()
            .unwrap_or(0)
            >= 1
            && s.running_on("lb").len() == 2
    });
    assert_eq!(
        s.single_node_of("fip").as_deref(),
        Some(active.as_str()),
        "{}",
        s.xml
    );
    assert_eq!(cloud.holder(IP), Some(active_id));
    assert_eq!(
        cloud.actions().len(),
        actions_before,
        "the IP was moved: {:?}",
        cloud.actions()
    );
    setup.assert_haproxy_answers(&active);
    cluster.sh("crm_resource", &["--cleanup", "-r", "lb"]);
    cluster.wait_until("lb's failure cleaned up", RECOVERY, |s| {
        s.max_fail_count("lb") == 0 && s.running_on("lb").len() == 2
    });
    eprintln!(
        "2. HAProxy restarted on {active}, IP stayed ({:?})",
        t0.elapsed()
    );

    // 3. Standby moves the IP to the other node, and back when allowed.
    let other = cluster.node(1 - a).name.clone();
    cluster.standby(a, true);
    setup.wait_for_holder("fip", Some(&other), "standby of the active node");
    cluster.standby(a, false);
    setup.wait_clones_everywhere("the node back from standby runs the clones");
    setup.assert_haproxy_answers(&active);
    setup.assert_haproxy_answers(&other);
    cluster.standby(1 - a, true);
    setup.wait_for_holder("fip", Some(&active), "standby of the other node");
    cluster.standby(1 - a, false);
    let s = setup.wait_clones_everywhere("both nodes run the clones again");
    setup.assert_nothing_banned(&s);
    eprintln!(
        "3. standby moves: {active} -> {other} -> {active} ({:?})",
        t0.elapsed()
    );

    // 5. 429s and 5xx during a failover: the move completes, nothing is banned.
    cloud.clear_requests();
    cloud.inject(Fault::rate_limited(1).times(2));
    cloud.inject(Fault::status(Scope::Api, 503).times(2));
    cloud.inject(Fault::status(Scope::Api, 500).method("POST").times(1));
    cluster.standby(a, true);
    setup.wait_for_holder("fip", Some(&other), "failover through 429 and 5xx");
    let api_calls = cloud.requests().iter().filter(|r| r.is_api_call()).count();
    assert!(
        api_calls >= 6,
        "the faults were not all met: {api_calls} API calls"
    );
    cloud.clear_faults();
    let s = cluster.status();
    setup.assert_nothing_banned(&s);
    cluster.standby(a, false);
    setup.wait_clones_everywhere("both nodes run the clones after the faults");
    eprintln!(
        "5. failover through 2x429, 3x5xx: {api_calls} API calls ({:?})",
        t0.elapsed()
    );

    // 6. A wrong token: floatip fails with its reason in crm_mon; nothing else breaks.
    let holder_node = setup.node_of_droplet(cloud.holder(IP).expect("someone holds the IP"));
    let h = cluster.index_of(&holder_node);
    cloud.revoke_token(TOKEN);
    let survivor = cluster.node(1 - h).name.clone();
    cluster.standby(h, true);
    let s = cluster.wait_until(
        "floatip's start refused with a wrong token",
        RECOVERY,
        |s| {
            s.failures
                .iter()
                .any(|f| f.op_key.starts_with("fip_start") && f.exitcode == 6)
                && s.running_on("fip").is_empty()
                && s.running_on("anchor") == [survivor.clone()]
                && s.running_on("lb") == [survivor.clone()]
        },
    );
    let failure = s
        .failures
        .iter()
        .find(|f| f.op_key.starts_with("fip_start"))
        .expect("the failure");
    // What the operator must read survives Pacemaker's cut of long reasons (~128 characters).
    assert!(
        failure.exitreason.contains("the API rejected the token"),
        "the exit reason does not say the token was rejected: {failure:?}"
    );
    let text =
        String::from_utf8_lossy(&cluster.live_node().run("crm_mon", &["-1"]).stdout).into_owned();
    assert!(
        text.contains(&failure.exitreason),
        "crm_mon does not show {:?}:\n{text}",
        failure.exitreason
    );
    assert_eq!(s.running_on("anchor"), vec![survivor.clone()], "{}", s.xml);
    assert_eq!(s.running_on("lb"), vec![survivor.clone()], "{}", s.xml);
    setup.assert_haproxy_answers(&survivor);
    eprintln!(
        "6. wrong token: {:?} ({:?})",
        failure.exitreason,
        t0.elapsed()
    );
    cloud.add_token(TOKEN);
    cluster.standby(h, false);
    cluster.sh("crm_resource", &["--cleanup", "-r", "fip"]);
    setup.wait_clones_everywhere("clones back after the token fix");
    let active = setup.wait_for_holder("fip", None, "floatip back after the token fix");
    let s = cluster.wait_until("failures cleaned up", RECOVERY, |s| s.failures.is_empty());
    setup.assert_nothing_banned(&s);

    // 4. The active node crashes: the survivor holds the IP.
    let a = cluster.index_of(&active);
    let survivor = cluster.node(1 - a).name.clone();
    let crashed_at = cluster.crash(a);
    assert!(cluster.node(a).processes().is_empty());
    setup.wait_for_holder("fip", Some(&survivor), "crash of the active node");
    eprintln!(
        "4. crash of {active}: {IP} on {survivor} after {:?} ({:?})",
        crashed_at.elapsed(),
        t0.elapsed()
    );
    let s = cluster.status();
    assert_eq!(s.online_nodes(), vec![survivor.clone()]);
    assert_eq!(s.running_on("lb"), vec![survivor.clone()]);
    setup.assert_haproxy_answers(&survivor);
}

#[test]
fn tutorial_configuration_runs_unchanged() {
    let setup = Setup::new();
    let (cluster, cloud) = (&setup.cluster, &setup.cloud);
    // The tutorial's commands, with the API pointed at the fake (its only addition).
    cluster.sh("crm", &["configure", "property", "no-quorum-policy=ignore"]);
    cluster.configure(&format!(
        "primitive FloatIP ocf:digitalocean:floatip \\\n    params do_token={TOKEN} floating_ip={IP} api_url=http://127.0.0.1:{API_PORT}\n"
    ));
    let first = setup.wait_for_holder("FloatIP", None, "tutorial start");
    let s = cluster.status();
    assert!(
        s.resources
            .iter()
            .any(|r| r.id == "FloatIP" && r.agent == "ocf:digitalocean:floatip"),
        "{}",
        s.xml
    );
    let i = cluster.index_of(&first);
    let other = cluster.node(1 - i).name.clone();
    cluster.standby(i, true);
    setup.wait_for_holder("FloatIP", Some(&other), "tutorial failover");
    let s = cluster.status();
    assert_eq!(s.max_fail_count("FloatIP"), 0, "{}", s.xml);
    assert!(s.failures.is_empty(), "{:?}", s.failures);
    assert_eq!(cloud.holder(IP), Some(setup.droplet_of(&other)));
}
