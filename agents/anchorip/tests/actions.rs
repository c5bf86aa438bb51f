//! anchorip's actions on real kernel interfaces, in network namespaces made by each test, run
//! the way Pacemaker runs the agent (argv `[path, action]`, parameters in the environment).
#![allow(clippy::unwrap_used)] // a test's failure report is its panic

mod support;

use cloudha_tests::{agent_bin, run_agent_args, Netns};
use support::{netns_with_eth0, Rsc};

/// The full life cycle of one address: probe, start, monitor, stop, and again.
fn life_cycle(ns: &Netns, nic: &str, params: &[(&str, &str)], shown: &str) {
    let rsc = Rsc::new(ns, "anchor", params);
    let before = ns.addresses(nic);
    assert!(
        !before.contains(&shown.to_string()),
        "{shown} already on {nic}"
    );

    rsc.probe().expect(7, "probe before start");
    rsc.monitor().expect(7, "monitor before start");
    let run = rsc.start();
    run.expect(0, "start");
    assert!(
        ns.addresses(nic).contains(&shown.to_string()),
        "{shown} not on {nic} after start: {:?}",
        ns.addresses(nic)
    );
    rsc.monitor().expect(0, "monitor after start");
    rsc.probe().expect(0, "probe after start");
    rsc.stop().expect(0, "stop");
    assert_eq!(ns.addresses(nic), before, "stop must restore {nic}");
    rsc.monitor().expect(7, "monitor after stop");
    rsc.probe().expect(7, "probe after stop");
    assert!(
        rsc.records().is_empty(),
        "records left: {:?}",
        rsc.records()
    );
}

#[test]
fn ipv4_on_lo_defaults_to_32() {
    let ns = Netns::new("a-v4lo");
    life_cycle(
        &ns,
        "lo",
        &[("ip", "10.17.1.18"), ("nic", "lo")],
        "10.17.1.18/32",
    );
}

#[test]
fn ipv6_on_lo_defaults_to_128() {
    let ns = Netns::new("a-v6lo");
    life_cycle(
        &ns,
        "lo",
        &[("ip", "2001:db8::7"), ("nic", "lo")],
        "2001:db8::7/128",
    );
}

#[test]
fn ipv4_on_veth_with_prefix_and_broadcast() {
    let ns = netns_with_eth0("a-v4eth");
    life_cycle(
        &ns,
        "eth0",
        &[
            ("ip", "10.17.0.5"),
            ("nic", "eth0"),
            ("cidr_netmask", "16"),
            ("arp_count", "0"),
        ],
        "10.17.0.5/16",
    );
    // The dotted spelling means the same, and the broadcast address is the one `brd +` sets.
    let rsc = Rsc::new(
        &ns,
        "dotted",
        &[
            ("ip", "10.17.0.6"),
            ("nic", "eth0"),
            ("cidr_netmask", "255.255.0.0"),
        ],
    );
    rsc.start().expect(0, "start with a dotted netmask");
    let shown = ns.ip(&["-o", "-4", "addr", "show", "dev", "eth0"]);
    assert!(
        shown.contains("inet 10.17.0.6/16 brd 10.17.255.255"),
        "{shown}"
    );
    rsc.stop().expect(0, "stop");
}

#[test]
fn ipv6_on_veth_is_usable_at_once() {
    let ns = netns_with_eth0("a-v6eth");
    let rsc = Rsc::new(
        &ns,
        "v6",
        &[
            ("ip", "2001:db8:1::5"),
            ("nic", "eth0"),
            ("cidr_netmask", "64"),
        ],
    );
    rsc.start().expect(0, "start");
    // Not tentative: duplicate address detection is skipped (NODAD), so a bind works now.
    let tentative = ns.ip(&["-o", "-6", "addr", "show", "dev", "eth0", "tentative"]);
    assert!(!tentative.contains("2001:db8:1::5"), "{tentative}");
    let all = ns.ip(&["-o", "-6", "addr", "show", "dev", "eth0"]);
    assert!(
        all.contains("inet6 2001:db8:1::5/64") && all.contains("nodad"),
        "{all}"
    );
    let bound = support::in_netns(&ns, || {
        std::net::TcpListener::bind("[2001:db8:1::5]:0").map(|_| ())
    });
    assert!(bound.is_ok(), "bind right after start failed: {bound:?}");
    rsc.monitor().expect(0, "monitor");
    rsc.stop().expect(0, "stop");
    assert!(!ns
        .addresses("eth0")
        .contains(&"2001:db8:1::5/64".to_string()));
}

#[test]
fn start_and_stop_are_idempotent() {
    let ns = Netns::new("a-idem");
    let rsc = Rsc::new(&ns, "idem", &[("ip", "10.17.1.18"), ("nic", "lo")]);
    rsc.stop().expect(0, "stop before any start");
    rsc.start().expect(0, "start");
    let run = rsc.start();
    run.expect(0, "second start");
    let on_lo: Vec<String> = ns
        .addresses("lo")
        .into_iter()
        .filter(|a| a.starts_with("10.17.1.18/"))
        .collect();
    assert_eq!(on_lo, vec!["10.17.1.18/32".to_string()]);
    rsc.monitor().expect(0, "monitor");
    // The second start must not have forgotten that the address is ours.
    rsc.stop().expect(0, "stop");
    assert!(!ns.addresses("lo").contains(&"10.17.1.18/32".to_string()));
    rsc.stop().expect(0, "second stop");
    rsc.monitor().expect(7, "monitor after stops");
}

#[test]
fn two_instances_side_by_side() {
    let ns = netns_with_eth0("a-two");
    let a = Rsc::new(&ns, "anchor-a", &[("ip", "10.17.1.18"), ("nic", "lo")]);
    let b = Rsc::new(
        &ns,
        "anchor-b",
        &[
            ("ip", "10.17.1.19"),
            ("nic", "eth0"),
            ("cidr_netmask", "32"),
            ("arp_count", "0"),
        ],
    );
    // Both share one state directory, as on a real node.
    let shared = a.state.path().display().to_string();
    let run = |r: &Rsc, action: &str, extra: &[(&str, &str)]| {
        let mut vars = vec![("HA_RSCTMP", shared.as_str())];
        vars.extend_from_slice(extra);
        r.run_with(action, &vars)
    };
    let recurring = [("OCF_RESKEY_CRM_meta_interval", "10000")];
    run(&a, "start", &[]).expect(0, "start a");
    run(&b, "start", &[]).expect(0, "start b");
    assert!(ns.addresses("lo").contains(&"10.17.1.18/32".to_string()));
    assert!(ns.addresses("eth0").contains(&"10.17.1.19/32".to_string()));
    run(&a, "monitor", &recurring).expect(0, "monitor a");
    run(&b, "monitor", &recurring).expect(0, "monitor b");
    run(&a, "stop", &[]).expect(0, "stop a");
    assert!(!ns.addresses("lo").contains(&"10.17.1.18/32".to_string()));
    assert!(ns.addresses("eth0").contains(&"10.17.1.19/32".to_string()));
    run(&a, "monitor", &recurring).expect(7, "monitor a after its stop");
    run(&b, "monitor", &recurring).expect(0, "b unaffected by a's stop");
    run(&b, "stop", &[]).expect(0, "stop b");
    assert!(!ns.addresses("eth0").contains(&"10.17.1.19/32".to_string()));
}

#[test]
fn a_pre_existing_address_is_never_removed() {
    let ns = netns_with_eth0("a-pre");
    // As cloud-init configures the anchor IP.
    ns.ip(&["addr", "add", "10.17.0.5/16", "dev", "eth0"]);
    let rsc = Rsc::new(
        &ns,
        "pre",
        &[
            ("ip", "10.17.0.5"),
            ("nic", "eth0"),
            ("cidr_netmask", "16"),
            ("arp_count", "0"),
        ],
    );
    rsc.probe()
        .expect(7, "probe: configured by the system, not started");
    let run = rsc.start();
    run.expect(0, "start");
    rsc.monitor().expect(0, "monitor");
    rsc.start().expect(0, "second start");
    rsc.stop().expect(0, "stop");
    assert!(
        ns.addresses("eth0").contains(&"10.17.0.5/16".to_string()),
        "stop removed an address it did not add"
    );
    rsc.monitor().expect(7, "monitor after stop");
    rsc.probe().expect(7, "probe after stop");
    rsc.stop().expect(0, "second stop");
    assert!(ns.addresses("eth0").contains(&"10.17.0.5/16".to_string()));

    // Present with another prefix counts as present, and stays.
    let other = Rsc::new(
        &ns,
        "pre32",
        &[("ip", "10.17.0.5"), ("nic", "eth0"), ("cidr_netmask", "32")],
    );
    other.start().expect(0, "start with another prefix");
    let v4: Vec<String> = ns
        .addresses("eth0")
        .into_iter()
        .filter(|a| a.starts_with("10.17.0.5/"))
        .collect();
    assert_eq!(v4, vec!["10.17.0.5/16".to_string()]);
    other.stop().expect(0, "stop");
    assert!(ns.addresses("eth0").contains(&"10.17.0.5/16".to_string()));
}

#[test]
fn an_address_removed_behind_the_agents_back() {
    let ns = Netns::new("a-gone");
    let rsc = Rsc::new(&ns, "gone", &[("ip", "10.17.1.18"), ("nic", "lo")]);
    rsc.start().expect(0, "start");
    ns.ip(&["addr", "del", "10.17.1.18/32", "dev", "lo"]);
    let run = rsc.monitor();
    run.expect(1, "recurring monitor of a vanished address");
    let reason = run.exit_reason().unwrap_or_default();
    assert!(
        reason.contains("10.17.1.18/32") && reason.contains("lo"),
        "{reason}"
    );
    rsc.probe().expect(7, "probe of a vanished address");
    // Pacemaker's recovery: stop, then start again.
    rsc.stop().expect(0, "stop of a vanished address");
    rsc.start().expect(0, "start again");
    assert!(ns.addresses("lo").contains(&"10.17.1.18/32".to_string()));
    rsc.monitor().expect(0, "monitor after recovery");
    rsc.stop().expect(0, "stop");
}

#[test]
fn a_record_from_before_a_reboot_is_not_believed() {
    let ns = Netns::new("a-boot");
    let rsc = Rsc::new(&ns, "boot", &[("ip", "10.17.1.18"), ("nic", "lo")]);
    rsc.start().expect(0, "start");
    // Pretend the record was written in another boot (HA_RSCTMP survived the reboot).
    let record = rsc.state.path().join("cloudha/anchorip-boot.started");
    let text = std::fs::read_to_string(&record).expect("start record");
    let (_, rest) = text.split_once('\n').expect("boot id line");
    std::fs::write(
        &record,
        format!("boot_id=00000000-0000-0000-0000-000000000000\n{rest}"),
    )
    .expect("rewrite record");
    rsc.probe()
        .expect(7, "probe with a record from another boot");
    rsc.start().expect(0, "start after the 'reboot'");
    rsc.monitor().expect(0, "monitor");
    rsc.stop().expect(0, "stop");
}

#[test]
fn gratuitous_arp_reaches_the_neighbour() {
    // The neighbour lives in its own namespace: a kernel ignores announcements of its own
    // addresses. arp_accept=1 makes it create a neighbour entry from an unsolicited announcement.
    let ns = Netns::new("a-arp");
    let peer = Netns::new("a-arppeer");
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "peer0",
    ]);
    ns.ip(&["link", "set", "peer0", "netns", &peer.name]);
    ns.ip(&["link", "set", "eth0", "up"]);
    peer.ip(&["link", "set", "peer0", "up"]);
    // eth0's subnet: the addresses below go there as /16, found without nic or cidr_netmask.
    ns.ip(&["addr", "add", "10.17.0.1/16", "dev", "eth0"]);
    cloudha_tests::sh(
        peer.command("sysctl")
            .args(["-qw", "net.ipv4.conf.peer0.arp_accept=1"]),
    );
    let link = ns.ip(&["-o", "link", "show", "eth0"]);
    let mac = link
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .expect("eth0's MAC")
        .to_string();

    let silent = Rsc::new(&ns, "silent", &[("ip", "10.17.0.9"), ("arp_count", "0")]);
    silent.start().expect(0, "start with arp_count=0");
    let loud = Rsc::new(&ns, "loud", &[("ip", "10.17.0.5"), ("arp_count", "2")]);
    loud.start().expect(0, "start with arp_count=2");
    assert!(ns.addresses("eth0").contains(&"10.17.0.5/16".to_string()));

    let neigh = peer.ip(&["neigh", "show", "dev", "peer0"]);
    assert!(
        neigh
            .lines()
            .any(|l| l.starts_with("10.17.0.5 ") && l.contains(&mac)),
        "no neighbour entry for 10.17.0.5 at {mac}: {neigh}"
    );
    assert!(
        !neigh.lines().any(|l| l.starts_with("10.17.0.9 ")),
        "arp_count=0 announced anyway: {neigh}"
    );
    loud.stop().expect(0, "stop");
    silent.stop().expect(0, "stop");
}

#[test]
fn flags_work_like_the_environment() {
    // `anchorip --ip 10.17.1.18 --nic eth0 start`, as a person types it.
    let ns = netns_with_eth0("a-flags");
    let state = support::StateDir::new();
    let rsctmp = state.path().display().to_string();
    let run = |args: &[&str]| {
        run_agent_args(
            &agent_bin("anchorip"),
            args,
            &[("HA_RSCTMP", rsctmp.as_str())],
            Some(&ns),
        )
    };
    let base = [
        "--ip",
        "10.17.1.18",
        "--nic",
        "eth0",
        "--cidr-netmask",
        "32",
        "--arp-count",
        "0",
    ];
    let with = |action: &str| {
        let mut v = base.to_vec();
        v.push(action);
        run(&v)
    };
    with("monitor").expect(7, "monitor by flags before start");
    with("start").expect(0, "start by flags");
    assert!(ns.addresses("eth0").contains(&"10.17.1.18/32".to_string()));
    with("monitor").expect(0, "monitor by flags");
    with("stop").expect(0, "stop by flags");
    assert!(!ns.addresses("eth0").contains(&"10.17.1.18/32".to_string()));
    run(&["--ip", "10.17.1.18", "--nic", "eth0", "dance"]).expect(3, "an unknown action");
}

#[test]
fn an_address_replaced_with_another_prefix_is_not_removed() {
    let ns = Netns::new("a-repl");
    let rsc = Rsc::new(&ns, "repl", &[("ip", "10.17.1.18"), ("nic", "lo")]);
    rsc.start().expect(0, "start");
    // Someone else's now: same address, another prefix.
    ns.ip(&["addr", "del", "10.17.1.18/32", "dev", "lo"]);
    ns.ip(&["addr", "add", "10.17.1.18/24", "dev", "lo"]);
    rsc.stop().expect(0, "stop");
    assert!(ns.addresses("lo").contains(&"10.17.1.18/24".to_string()));
    rsc.monitor().expect(7, "monitor after stop");
    assert!(rsc.records().is_empty());
}

#[test]
fn concurrent_starts_of_one_instance_agree_on_who_added_it() {
    // A person and Pacemaker starting the same instance at once: the instance lock serialises
    // them, so the second sees the first's record and the stop still removes the address.
    let ns = Netns::new("a-race");
    let rsc = Rsc::new(&ns, "race", &[("ip", "10.17.1.18"), ("nic", "lo")]);
    for round in 0..8 {
        let runs: Vec<_> = std::thread::scope(|s| {
            let a = s.spawn(|| rsc.start());
            let b = s.spawn(|| rsc.start());
            vec![a.join().expect("start a"), b.join().expect("start b")]
        });
        for run in &runs {
            run.expect(0, &format!("concurrent start, round {round}"));
        }
        rsc.stop().expect(0, "stop");
        assert!(
            !ns.addresses("lo").contains(&"10.17.1.18/32".to_string()),
            "round {round}: the stop left the address: a start recorded it as not ours"
        );
    }
}

#[test]
fn two_resources_starting_one_address_at_once_never_both_claim_it() {
    // Two different resources for one address (a mistake, or two configurations in transition),
    // started at the same moment: both may find the address absent, both ask the kernel to add
    // it, one gets EEXIST. Only the one whose add succeeded may record it as its own, or the
    // other's stop removes the address from under the first.
    let ns = Netns::new("a-claim");
    let params = [("ip", "10.17.1.18"), ("nic", "lo")];
    for round in 0..40 {
        let a = Rsc::new(&ns, "claim-a", &params);
        let b = Rsc::new(&ns, "claim-b", &params);
        let (ra, rb) = std::thread::scope(|s| {
            let ta = s.spawn(|| a.start());
            let tb = s.spawn(|| b.start());
            (ta.join().expect("start a"), tb.join().expect("start b"))
        });
        ra.expect(0, &format!("start a, round {round}"));
        rb.expect(0, &format!("start b, round {round}"));
        let claims = [a.claims(), b.claims()];
        assert_eq!(
            claims.iter().filter(|c| **c).count(),
            1,
            "round {round}: exactly one of the two added the address, but the records say \
             a={} b={}\na: {:?}\nb: {:?}",
            claims[0],
            claims[1],
            a.record(),
            b.record()
        );
        // The resource that did not add it leaves it on stop; the other one removes it.
        let (owner, other) = if claims[0] { (&a, &b) } else { (&b, &a) };
        other
            .stop()
            .expect(0, "stop of the resource that did not add it");
        assert!(
            ns.addresses("lo").contains(&"10.17.1.18/32".to_string()),
            "round {round}: the stop of a resource that did not add the address removed it"
        );
        owner.stop().expect(0, "stop of the resource that added it");
        assert!(!ns.addresses("lo").contains(&"10.17.1.18/32".to_string()));
    }
}

#[test]
fn a_stale_claim_does_not_remove_another_resources_address() {
    // Resource A added the address; it was removed behind the cluster's back; resource B (another
    // resource for the same address) added it again. A's record still says "added": its stop must
    // not take B's address away, because the address now there is not the one A added.
    let ns = Netns::new("a-stale");
    for (ip, shown) in [
        ("10.17.1.18", "10.17.1.18/32"),
        ("2001:db8::18", "2001:db8::18/128"),
    ] {
        let params = [("ip", ip), ("nic", "lo")];
        let a = Rsc::new(&ns, "stale-a", &params);
        let b = Rsc::new(&ns, "stale-b", &params);
        a.start().expect(0, "start a");
        assert!(a.claims());
        ns.ip(&["addr", "del", shown, "dev", "lo"]);
        // The kernel stamps an address's creation in hundredths of a second: let the clock move.
        std::thread::sleep(std::time::Duration::from_millis(30));
        b.start().expect(0, "start b");
        assert!(b.claims(), "b added {shown}: {:?}", b.record());
        a.stop().expect(0, "stop a");
        assert!(
            ns.addresses("lo").contains(&shown.to_string()),
            "a's stop removed the {shown} that b added"
        );
        // A start of A now finds B's address: not A's to claim.
        a.start().expect(0, "start a again");
        assert!(!a.claims(), "a claims b's {shown}: {:?}", a.record());
        a.stop().expect(0, "stop a again");
        assert!(ns.addresses("lo").contains(&shown.to_string()));
        b.monitor().expect(0, "b still running");
        b.stop().expect(0, "stop b");
        assert!(!ns.addresses("lo").contains(&shown.to_string()));
    }
}
