//! bgpip with real FRR, without Pacemaker: a route server (AS 65000) preferring the primary
//! community, two balancers (AS 65001) each running the agent as Pacemaker would, and a client
//! behind the route server whose HTTP requests land on whichever balancer is promoted. Also
//! ocf-tester in a balancer, and bad input against a real bgpd.

use cloudha_tests::bgp::{Lab, RsPath, PRIMARY, SECONDARY, SHARED_IP};
use cloudha_tests::{agent_bin, ocf_tester, run_agent, AgentRun};
use std::time::Duration;

const TAG: &str = "bgpip";
/// Sessions come up within a connect retry (5 s) or two; generous for a busy CI.
const SESSION: Duration = Duration::from_secs(30);

struct Balancer<'a> {
    lab: &'a Lab,
    i: usize,
    rsctmp: tempfile::TempDir,
}

impl Balancer<'_> {
    fn new(lab: &Lab, i: usize) -> Balancer<'_> {
        Balancer {
            lab,
            i,
            rsctmp: tempfile::tempdir().unwrap(),
        }
    }
    fn vars(&self) -> Vec<(String, String)> {
        let instance = self.lab.frr[self.i].instance.clone().unwrap();
        vec![
            ("OCF_RESKEY_ip".into(), SHARED_IP.into()),
            (
                "OCF_RESKEY_peers".into(),
                cloudha_tests::bgp::LINKS[self.i].0.into(),
            ),
            ("OCF_RESKEY_frr_instance".into(), instance),
            ("OCF_RESOURCE_INSTANCE".into(), "vip".into()),
            ("HA_RSCTMP".into(), self.rsctmp.path().display().to_string()),
            ("OCF_RESKEY_CRM_meta_timeout".into(), "30000".into()),
        ]
    }
    fn run_with(&self, action: &str, extra: &[(&str, &str)]) -> AgentRun {
        let vars = self.vars();
        let mut v: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        v.extend_from_slice(extra);
        run_agent(
            &agent_bin("bgpip"),
            action,
            &v,
            Some(&self.lab.balancers[self.i]),
        )
    }
    fn run(&self, action: &str) -> AgentRun {
        self.run_with(action, &[])
    }
    fn monitor(&self, depth: &str) -> AgentRun {
        self.run_with(
            "monitor",
            &[
                ("OCF_CHECK_LEVEL", depth),
                ("OCF_RESKEY_CRM_meta_interval", "10000"),
            ],
        )
    }
}

fn from(i: usize) -> String {
    cloudha_tests::bgp::LINKS[i].1.to_string()
}

fn best(p: &[RsPath]) -> Option<&RsPath> {
    p.iter().find(|p| p.best)
}

#[test]
fn promotion_moves_the_route_servers_best_path_and_the_client_follows() {
    let lab = Lab::new(TAG);
    let b = [Balancer::new(&lab, 0), Balancer::new(&lab, 1)];
    for n in &b {
        n.monitor("0").expect(7, "monitor before start");
        n.run("start").expect(0, "start");
        n.monitor("0").expect(0, "monitor after start: unpromoted");
    }
    // Both announce with the secondary community: the route server has two paths.
    lab.wait_paths("two secondary paths", SESSION, |p| {
        p.len() == 2 && p.iter().all(|x| x.communities == [SECONDARY])
    });
    b[0].run("promote").expect(0, "promote b1");
    b[0].monitor("0").expect(8, "b1 promoted, depth 0");
    b[0].monitor("10").expect(8, "b1 promoted, depth 10");
    b[1].monitor("10").expect(0, "b2 unpromoted, depth 10");
    let paths = lab.rs_paths();
    let top = best(&paths).expect("a best path");
    assert_eq!(top.peer, from(0));
    assert_eq!(top.communities, [PRIMARY]);
    assert_eq!(top.local_pref, Some(200));
    lab.wait_client("b1", Duration::from_secs(10));

    // Promotion moves: demote b1, promote b2.
    b[0].run("demote").expect(0, "demote b1");
    b[0].run("demote").expect(0, "demote b1 again");
    b[0].monitor("0").expect(0, "b1 demoted");
    b[1].run("promote").expect(0, "promote b2");
    b[1].run("promote").expect(0, "promote b2 again");
    lab.wait_paths("b2's primary path best", Duration::from_secs(10), |p| {
        best(p).is_some_and(|x| x.peer == from(1) && x.communities == [PRIMARY])
    });
    lab.wait_client("b2", Duration::from_secs(10));

    // bgpd killed on the promoted node: its monitor fails, and the route server falls back to
    // b1's secondary announcement at once (the session closed).
    lab.frr[1].signal("bgpd", "KILL");
    b[1].monitor("0")
        .expect(1, "monitor with bgpd killed")
        .reason(predicates::str::contains("bgpd is not running"));
    lab.wait_paths("b1's path alone", Duration::from_secs(15), |p| {
        p.len() == 1 && p[0].peer == from(0)
    });
    lab.wait_client("b1", Duration::from_secs(10));
    // Pacemaker's recovery: demote and stop succeed with no bgpd; start fails there.
    b[1].run("demote").expect(0, "demote with bgpd killed");
    b[1].run("stop").expect(0, "stop with bgpd killed");
    b[1].monitor("0").expect(7, "monitor after stop");
    b[1].run("start")
        .expect(1, "start with bgpd killed")
        .reason(predicates::str::contains("bgpd is not running"));
    b[1].monitor("0")
        .expect(7, "a failed start leaves nothing started");

    // Stop withdraws and removes only the agent's statements.
    b[0].run("promote").expect(0, "promote b1");
    b[0].monitor("10").expect(8, "b1 promoted");
    b[0].run("stop").expect(0, "stop b1");
    b[0].run("stop").expect(0, "stop b1 again");
    b[0].monitor("0").expect(7, "b1 stopped");
    lab.wait_paths("no path left", Duration::from_secs(10), |p| p.is_empty());
    let config = lab.frr[0].config();
    assert!(
        !config.contains("cloudha-bgpip") && !config.contains("CLOUDHA"),
        "{config}"
    );
    assert!(
        config.contains("route-map operator-own permit 10"),
        "{config}"
    );
    assert!(config.contains("bgp router-id 192.0.2.11"), "{config}");
    assert!(lab.wait_client_none());
}

trait NoAnswer {
    fn wait_client_none(&self) -> bool;
}
impl NoAnswer for Lab {
    /// Nothing answers on the shared IP any more (bounded).
    fn wait_client_none(&self) -> bool {
        let end = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < end {
            if cloudha_tests::bgp::who_answers(&self.client.name).is_none() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

#[test]
fn monitor_depth_10_fails_a_promoted_node_that_reaches_no_route_server() {
    let lab = Lab::new(TAG);
    let b = Balancer::new(&lab, 0);
    b.run("start").expect(0, "start");
    b.run("promote").expect(0, "promote");
    // The route server's bgpd stops talking (frozen): the session drops after the hold time.
    lab.rs_frr.signal("bgpd", "STOP");
    let end = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = b.monitor("10");
        if r.code == 1 {
            r.expect(1, "depth 10 without a route server")
                .reason(predicates::str::contains("reaches no route server"));
            break;
        }
        r.expect(8, "depth 10 while the session lasts");
        assert!(std::time::Instant::now() < end, "the session never dropped");
        std::thread::sleep(Duration::from_millis(500));
    }
    b.monitor("0")
        .expect(8, "depth 0 still sees the announcement");
    b.run("demote").expect(0, "demote");
    b.monitor("10")
        .expect(190, "unpromoted without a route server: degraded");
    lab.rs_frr.signal("bgpd", "CONT");
    b.run("stop").expect(0, "stop");
}

#[test]
fn bad_input_against_a_real_bgpd() {
    let lab = Lab::new(TAG);
    let b = Balancer::new(&lab, 0);
    type Case<'a> = (&'a [(&'a str, &'a str)], i32, &'a str);
    let cases: [Case; 5] = [
        (
            &[("OCF_RESKEY_ip", "203.0.113.0/24")],
            6,
            "parameter 'ip': '203.0.113.0/24' is a /24",
        ),
        (
            &[("OCF_RESKEY_primary_community", "65000")],
            6,
            "parameter 'primary_community': '65000' is not a BGP community",
        ),
        (
            &[("OCF_RESKEY_vtysh", "/nonexistent/vtysh")],
            5,
            "vtysh '/nonexistent/vtysh' is not installed",
        ),
        (
            &[("OCF_RESKEY_asn", "65002")],
            2,
            "parameter 'asn' does not match",
        ),
        (
            &[("OCF_RESKEY_frr_instance", "cloudha-none")],
            1,
            "bgpd is not running",
        ),
    ];
    for (extra, code, says) in cases {
        b.run_with("start", extra)
            .expect(code, &format!("start with {extra:?}"))
            .reason(predicates::str::contains(says));
        b.monitor("0").expect(7, "nothing left started");
    }
    let config = lab.frr[0].config();
    assert!(
        !config.contains("cloudha-bgpip") && !config.contains("CLOUDHA"),
        "{config}"
    );
    // The address is not on lo: bgpd cannot announce it, start says so.
    lab.balancers[0].ip(&["addr", "del", &format!("{SHARED_IP}/32"), "dev", "lo"]);
    b.run("start")
        .expect(1, "start without the address on lo")
        .reason(predicates::str::contains("is the address on lo"));
    let config = lab.frr[0].config();
    assert!(!config.contains("cloudha-bgpip"), "{config}");
}

#[test]
fn ocf_tester_passes() {
    let lab = Lab::new(TAG);
    let instance = lab.frr[0].instance.clone().unwrap();
    let peer = cloudha_tests::bgp::LINKS[0].0;
    let (ok, out) = ocf_tester(
        &agent_bin("bgpip"),
        "bgpip-tester",
        &[
            ("ip", SHARED_IP),
            ("peers", peer),
            ("frr_instance", &instance),
        ],
        Some(&lab.balancers[0]),
    );
    assert!(ok, "{out}");
}

#[test]
fn meta_data_is_checked_in_and_valid() {
    cloudha_tests::check_metadata("bgpip");
}

#[test]
fn crm_resource_validate_returns_the_agents_code() {
    let installed = cloudha_tests::Installed::new();
    let _real = installed.to_system("bgpip");
    let validate = |options: &[&str]| cloudha_tests::crm_validate("bgpip", options);
    let (code, out) = validate(&["ip=203.0.113.77", "dcid=10"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = validate(&["ip=203.0.113.0/24", "dcid=10"]);
    assert_eq!(code, 6, "{out}");
    assert!(
        out.contains("parameter 'ip': '203.0.113.0/24' is a /24"),
        "{out}"
    );
    let (code, out) = validate(&["ip=203.0.113.77", "dcid=10", "secondary_community=x:2"]);
    assert_eq!(code, 6, "{out}");
    assert!(out.contains("'secondary_community'"), "{out}");
    let (code, out) = validate(&["ip=203.0.113.77"]);
    assert_eq!(code, 6, "{out}");
}

#[test]
fn an_ipv6_range_is_announced_under_ipv6() {
    let lab = Lab::new(TAG);
    let b = Balancer::new(&lab, 0);
    lab.balancers[0].ip(&["addr", "add", "2001:db8:77::1/64", "dev", "lo"]);
    let v6 = [
        ("OCF_RESKEY_ip", "2001:db8:77::1"),
        ("OCF_RESKEY_prefix", "64"),
    ];
    b.run_with("start", &v6).expect(0, "start");
    b.run_with("promote", &v6).expect(0, "promote");
    let mon = [
        v6[0],
        v6[1],
        ("OCF_CHECK_LEVEL", "10"),
        ("OCF_RESKEY_CRM_meta_interval", "10000"),
    ];
    b.run_with("monitor", &mon).expect(8, "promoted, depth 10");
    let end = std::time::Instant::now() + SESSION;
    loop {
        let doc = lab
            .rs_frr
            .json("show bgp ipv6 unicast 2001:db8:77::/64 json");
        let paths = cloudha_tests::bgp::rs_paths(&doc);
        if paths
            .iter()
            .any(|p| p.best && p.communities == [PRIMARY] && p.peer == from(0))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < end,
            "no primary IPv6 path: {paths:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    b.run_with("stop", &v6).expect(0, "stop");
    let config = lab.frr[0].config();
    assert!(
        !config.contains("2001:db8:77::/64") && !config.contains("CLOUDHA"),
        "{config}"
    );
}
