//! bgpip end to end: a real two-node Pacemaker cluster running the README's Linode block
//! (docs/crm-configure-linode.txt), each node with its own FRR (bgpd AS 65001) peering with a
//! real FRR route server (AS 65000) that prefers the primary community; a client behind the
//! route server asks the shared IP which node answers. One cluster, the scenarios in sequence
//! (CI time): both start, HAProxy killed on the promoted node, bgpd killed on the promoted
//! node, standby, crash of the promoted node.

use cloudha_tests::bgp::{
    balancer_config, in_netns, in_node, link_balancer, link_client, route_server_config, rs_paths,
    who_answers, Frr, RsPath, LINKS, PRIMARY, RS_LOOPBACK, SECONDARY, SHARED_IP,
};
use cloudha_tests::cluster::{Cluster, ClusterStatus, HAPROXY_CFG};
use cloudha_tests::{agent_bin, require_program, Installed, Netns};
use std::time::{Duration, Instant};

const BLOCK: &str = include_str!("../../docs/crm-configure-linode.txt");
/// Long enough for a 10 s monitor to notice a failure and Pacemaker to recover, on a busy CI.
const RECOVERY: Duration = Duration::from_secs(90);

fn promoted_on(s: &ClusterStatus) -> Vec<String> {
    s.resources
        .iter()
        .filter(|r| {
            r.id == "vip"
                && r.active
                && !r.failed
                && matches!(r.role.as_str(), "Promoted" | "Master")
        })
        .flat_map(|r| r.nodes.clone())
        .collect()
}

fn unpromoted_on(s: &ClusterStatus) -> Vec<String> {
    s.resources
        .iter()
        .filter(|r| {
            r.id == "vip"
                && r.active
                && !r.failed
                && matches!(r.role.as_str(), "Unpromoted" | "Slave")
        })
        .flat_map(|r| r.nodes.clone())
        .collect()
}

struct Setup {
    // Dropped first: FRR inside the nodes, then the cluster, then the route server and client.
    node_frr: Vec<Frr>,
    rs_frr: Frr,
    cluster: Cluster,
    _rs: Netns,
    client: Netns,
    _installed: Installed,
}

impl Setup {
    fn new() -> Setup {
        for a in ["anchorip", "haproxy", "bgpip"] {
            agent_bin(a);
        }
        require_program("/usr/sbin/haproxy");
        require_program("/usr/bin/curl");
        let installed = Installed::new();
        let cluster = Cluster::new();
        cluster.stage_agents(&installed);
        let rs = Netns::new("bgpipc");
        let client = Netns::new("bgpipc");
        link_client(&rs.name, &client.name);
        for (i, node) in cluster.nodes().iter().enumerate() {
            link_balancer(&rs.name, &format!("b{}", i + 1), &node.netns.name, i);
            let cfg = HAPROXY_CFG
                .replace("@ANCHOR@", SHARED_IP)
                .replace("@NODE@", &node.name);
            cluster.stage(i, "/etc/haproxy/haproxy.cfg", cfg.as_bytes(), 0o644);
        }
        let rs_frr = Frr::start(
            in_netns(&rs.name),
            Some(&format!("{}-rs", rs.name)),
            &route_server_config(&[(LINKS[0].1, 65001), (LINKS[1].1, 65001)]),
            cluster.dir(),
        );
        cluster.boot();
        // Each node's own FRR, as its operator configured it (default paths, inside the node's
        // own /etc and /run).
        let node_frr = cluster
            .nodes()
            .iter()
            .enumerate()
            .map(|(i, n)| {
                Frr::start(
                    in_node(n),
                    None,
                    &balancer_config(&format!("192.0.2.{}", 11 + i)),
                    &n.dir,
                )
            })
            .collect();
        Setup {
            node_frr,
            rs_frr,
            cluster,
            _rs: rs,
            client,
            _installed: installed,
        }
    }

    /// The README's block, with the route servers pointed at the test's (the only change).
    fn readme_block() -> String {
        let real = "dcid=10";
        assert!(
            BLOCK.contains(real),
            "docs/crm-configure-linode.txt no longer names {real}"
        );
        BLOCK.replace(real, &format!("peers={RS_LOOPBACK}"))
    }

    fn paths(&self) -> Vec<RsPath> {
        rs_paths(
            &self
                .rs_frr
                .json(&format!("show bgp ipv4 unicast {SHARED_IP}/32 json")),
        )
    }

    fn peer_of(&self, node: &str) -> &'static str {
        LINKS[self.cluster.index_of(node)].1
    }

    /// Wait until one node is promoted, the other (if `both`) unpromoted, the route server's
    /// best path is the promoted node's with the primary community, and the client's request
    /// lands there. Returns the promoted node.
    fn wait_promoted(&self, what: &str, both: bool, not_on: Option<&str>) -> String {
        let end = Instant::now() + RECOVERY;
        let mut last = String::new();
        while Instant::now() < end {
            let s = self.cluster.status();
            let p = promoted_on(&s);
            let u = unpromoted_on(&s);
            if p.len() == 1 && (!both || u.len() == 1) && not_on != Some(p[0].as_str()) {
                let node = p[0].clone();
                let paths = self.paths();
                let best = paths.iter().find(|x| x.best);
                let best_ok = best
                    .is_some_and(|b| b.peer == self.peer_of(&node) && b.communities == [PRIMARY]);
                let client = who_answers(&self.client.name);
                // Both running: the unpromoted node's secondary path is there too (its session
                // may take a connect retry to come up after a start).
                let second_ok = !both
                    || paths
                        .iter()
                        .any(|x| x.peer == self.peer_of(&u[0]) && x.communities == [SECONDARY]);
                if best_ok && second_ok && client.as_deref() == Some(node.as_str()) {
                    return node;
                }
                last =
                    format!("promoted {p:?}, unpromoted {u:?}, paths {paths:?}, client {client:?}");
            } else {
                last = format!("promoted {p:?}, unpromoted {u:?}");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!(
            "{what}: waited {RECOVERY:?}; last: {last}\n{}",
            self.cluster.diagnostics()
        );
    }
}

fn other(node: &str) -> String {
    if node == "node1" {
        "node2".into()
    } else {
        "node1".into()
    }
}

#[test]
fn linode_block_runs_and_fails_over_on_a_real_cluster() {
    let setup = Setup::new();
    let c = &setup.cluster;
    c.configure(&Setup::readme_block());

    // Both start: two paths at the route server, the primary from the promoted node, whom
    // the client reaches.
    let first = setup.wait_promoted("both start", true, None);
    // The promoted instance is monitored at depth 10 every 10 s, answering 8.
    let cib = c.sh("cibadmin", &["-Q", "-o", "resources"]);
    assert!(
        cib.contains(r#"name="OCF_CHECK_LEVEL" value="10""#),
        "the Promoted monitor lost its depth: {cib}"
    );
    let ran = |s: &ClusterStatus| {
        s.history.iter().any(|o| {
            o.node == first
                && (o.resource == "vip" || o.resource.starts_with("vip:"))
                && o.task == "monitor"
                && o.interval_ms == 10_000
                && o.rc == 8
        })
    };
    let s = c.wait_until("the promoted monitor ran, answering 8", RECOVERY, ran);
    assert!(ran(&s));

    // HAProxy killed on the promoted node: Pacemaker restarts it (the monitor notices), and the
    // promoted role stays with a running HAProxy, as the constraints say.
    let i = c.index_of(&first);
    let out = c.node(i).run("pkill", &["-KILL", "-x", "haproxy"]);
    assert!(out.status.success(), "no haproxy to kill on {first}");
    let end = Instant::now() + RECOVERY;
    while c.status().max_fail_count("lb") == 0 {
        assert!(
            Instant::now() < end,
            "HAProxy's death went unnoticed\n{}",
            c.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let after_haproxy = setup.wait_promoted("after HAProxy was killed", true, None);
    c.sh("crm_resource", &["--cleanup", "-r", "lb-clone"]);

    // bgpd killed on the promoted node: its monitor fails, the promotion moves.
    let i = c.index_of(&after_haproxy);
    setup.node_frr[i].signal("bgpd", "KILL");
    let moved = setup.wait_promoted("after bgpd was killed", false, Some(&after_haproxy));
    assert_eq!(moved, other(&after_haproxy));
    // bgpd back, the failure cleaned up: both run again.
    setup.node_frr[i].signal("zebra", "KILL");
    drop(setup_frr_restart(&setup, i));
    c.sh("crm_resource", &["--cleanup", "-r", "vip-clone"]);
    let promoted = setup.wait_promoted("after cleanup", true, None);

    // Standby of the promoted node: the other is promoted.
    let i = c.index_of(&promoted);
    c.standby(i, true);
    let moved = setup.wait_promoted("standby", false, Some(&promoted));
    assert_eq!(moved, other(&promoted));
    c.standby(i, false);
    let promoted = setup.wait_promoted("back from standby", true, None);

    // Power loss of the promoted node: every process of it frozen at once (SIGSTOP), so that
    // nothing closes its BGP session; the route server drops it after the hold time, the other
    // node is promoted, and the client lands there. Then the node is killed for good.
    let i = c.index_of(&promoted);
    let survivor = other(&promoted);
    let at = Instant::now();
    for pid in c.node(i).processes() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGSTOP,
        );
    }
    let end = at + RECOVERY;
    loop {
        if who_answers(&setup.client.name).as_deref() == Some(survivor.as_str()) {
            break;
        }
        assert!(
            Instant::now() < end,
            "the client never reached {survivor}\n{}",
            c.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "power loss of {promoted}: the client reached {survivor} after {:?} (hold time 9 s)",
        at.elapsed()
    );
    // Asked of the survivor: crm_mon on the frozen node would wait for it forever.
    let j = c.index_of(&survivor);
    loop {
        let out = c
            .node(j)
            .run("crm_mon", &["-1", "--output-as=xml", "--include=all"]);
        let s = ClusterStatus::parse(&String::from_utf8_lossy(&out.stdout));
        if s.is_ok_and(|s| promoted_on(&s) == std::slice::from_ref(&survivor)) {
            break;
        }
        assert!(Instant::now() < end, "{survivor} was never promoted");
        std::thread::sleep(Duration::from_millis(250));
    }
    // The frozen node's path goes when the route server's hold timer expires.
    loop {
        let paths = setup.paths();
        if paths.len() == 1
            && paths[0].peer == setup.peer_of(&survivor)
            && paths[0].communities == [PRIMARY]
        {
            break;
        }
        assert!(
            Instant::now() < end,
            "the frozen node's path never went: {paths:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "power loss of {promoted}: its path gone from the route server after {:?}",
        at.elapsed()
    );
    c.crash(i);
}

/// bgpd (and zebra) of node `i` started again, with the node's configuration.
fn setup_frr_restart(setup: &Setup, i: usize) -> Vec<String> {
    let n = setup.cluster.node(i);
    let mut out = Vec::new();
    for d in ["zebra", "bgpd"] {
        let o = n.run(
            &format!("/usr/lib/frr/{d}"),
            &["-d", "-A", "127.0.0.1", "-f", "/etc/frr/frr.conf"],
        );
        assert!(o.status.success(), "{d} on {}: {o:?}", n.name);
        out.push(String::from_utf8_lossy(&o.stdout).into_owned());
    }
    let end = Instant::now() + Duration::from_secs(15);
    while !setup.node_frr[i].vtysh(&["show bgp summary json"]).0 {
        assert!(Instant::now() < end, "bgpd on {} does not answer", n.name);
        std::thread::sleep(Duration::from_millis(100));
    }
    out
}
