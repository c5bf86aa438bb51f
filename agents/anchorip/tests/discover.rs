//! Where an address goes when `nic` or `cidr_netmask` is not given: IPaddr2's rules
//! (docs/anchorip.md), on real interfaces in a namespace made by each test.
#![allow(clippy::unwrap_used)] // a test's failure report is its panic

mod support;

use cloudha_tests::Netns;
use support::Rsc;

/// lo (127.0.0.1/8), eth0 with 192.0.2.1/24 (brd 192.0.2.255) and 2001:db8:1::1/64, eth1 with
/// 198.51.100.1/24 (no broadcast address).
fn two_subnets(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.add_veth("eth0", "peer0");
    ns.add_veth("eth1", "peer1");
    ns.ip(&["addr", "add", "192.0.2.1/24", "brd", "+", "dev", "eth0"]);
    ns.ip(&["addr", "add", "2001:db8:1::1/64", "dev", "eth0", "nodad"]);
    ns.ip(&["addr", "add", "198.51.100.1/24", "dev", "eth1"]);
    ns
}

/// The `ip -o addr show dev <dev>` line of `addr` (as `addr/prefix`), or "".
fn line_of(ns: &Netns, dev: &str, addr: &str) -> String {
    ns.ip(&["-o", "addr", "show", "dev", dev])
        .lines()
        .find(|l| l.split_whitespace().any(|w| w == addr))
        .unwrap_or_default()
        .to_string()
}

/// Start `params`, see `shown` on `dev` (with `brd`, if given, or without any broadcast
/// address), monitor, stop, and see it gone with the rest of `dev` as it was.
fn placed(ns: &Netns, params: &[(&str, &str)], dev: &str, shown: &str, brd: Option<&str>) {
    let rsc = Rsc::new(ns, "found", params);
    let before = ns.addresses(dev);
    rsc.start().expect(0, &format!("start {params:?}"));
    let line = line_of(ns, dev, shown);
    assert!(
        !line.is_empty(),
        "{params:?}: {shown} is not on {dev}: {:?}",
        ns.addresses(dev)
    );
    match brd {
        Some(b) => assert!(line.contains(&format!(" brd {b} ")), "{params:?}: {line}"),
        None => assert!(!line.contains(" brd "), "{params:?}: {line}"),
    }
    rsc.monitor().expect(0, &format!("monitor {params:?}"));
    rsc.stop().expect(0, &format!("stop {params:?}"));
    assert_eq!(
        ns.addresses(dev),
        before,
        "{params:?}: stop must restore {dev}"
    );
}

#[test]
fn the_interface_whose_subnet_holds_it_takes_it_with_its_prefix() {
    let ns = two_subnets("d-found");
    // The broadcast address is the one the subnet's own address has (none on eth1), as IPaddr2.
    placed(
        &ns,
        &[("ip", "198.51.100.7")],
        "eth1",
        "198.51.100.7/24",
        None,
    );
    placed(
        &ns,
        &[("ip", "192.0.2.7")],
        "eth0",
        "192.0.2.7/24",
        Some("192.0.2.255"),
    );
    placed(
        &ns,
        &[("ip", "2001:db8:1::7")],
        "eth0",
        "2001:db8:1::7/64",
        None,
    );
    // With nic: that interface's subnet gives the prefix.
    placed(
        &ns,
        &[("ip", "192.0.2.8"), ("nic", "eth0")],
        "eth0",
        "192.0.2.8/24",
        Some("192.0.2.255"),
    );
    // validate-all at level 10 says where it would go, and why (a debug line).
    let rsc = Rsc::new(&ns, "v", &[("ip", "198.51.100.7")]);
    let run = rsc.run_with(
        "validate-all",
        &[("OCF_CHECK_LEVEL", "10"), ("HA_debug", "1")],
    );
    run.expect(0, "validate-all level 10");
    assert!(
        run.stderr
            .contains("198.51.100.7/24 goes on eth1 (198.51.100.0/24 on eth1 holds it)"),
        "{run:?}"
    );
}

#[test]
fn cidr_netmask_must_fit_the_subnet_unless_nic_is_given() {
    let ns = two_subnets("d-cidr");
    // A smaller network inside the subnet: fine, and the subnet's broadcast stays (IPaddr2).
    placed(
        &ns,
        &[("ip", "192.0.2.7"), ("cidr_netmask", "28")],
        "eth0",
        "192.0.2.7/28",
        Some("192.0.2.255"),
    );
    let rsc = Rsc::new(&ns, "wide", &[("ip", "192.0.2.7"), ("cidr_netmask", "16")]);
    let run = rsc.start();
    run.expect(1, "a /16 that the /24 subnet does not hold");
    assert_eq!(
        run.exit_reason(),
        Some(
            "parameter 'cidr_netmask': 192.0.2.0/24 on eth0 holds 192.0.2.7, but not all of \
             192.0.0.0/16 (set 'nic' to add it as /16 anyway)"
        )
    );
    // IPv6 without nic: the subnet's own prefix only.
    for p in ["80", "48"] {
        let rsc = Rsc::new(&ns, "v6", &[("ip", "2001:db8:1::7"), ("cidr_netmask", p)]);
        let run = rsc.start();
        run.expect(1, &format!("IPv6 /{p} without nic"));
        let reason = run.exit_reason().unwrap_or_default();
        assert!(
            reason.contains(&format!(
                "2001:db8:1::/64 on eth0 holds 2001:db8:1::7, but not as /{p}"
            )),
            "{reason}"
        );
    }
    assert!(!ns
        .addresses("eth0")
        .iter()
        .any(|a| a.starts_with("192.0.2.7/") || a.starts_with("2001:db8:1::7/")));
    // nic and cidr_netmask together force it, whatever the subnets; the broadcast is `brd +`.
    placed(
        &ns,
        &[("ip", "192.0.2.7"), ("nic", "eth1"), ("cidr_netmask", "16")],
        "eth1",
        "192.0.2.7/16",
        Some("192.0.255.255"),
    );
    placed(
        &ns,
        &[
            ("ip", "2001:db8:1::7"),
            ("nic", "eth1"),
            ("cidr_netmask", "48"),
        ],
        "eth1",
        "2001:db8:1::7/48",
        None,
    );
}

#[test]
fn an_address_no_subnet_holds_is_1_naming_the_subnets() {
    let ns = two_subnets("d-none");
    let before: Vec<_> = ["lo", "eth0", "eth1"]
        .iter()
        .map(|d| ns.addresses(d))
        .collect();
    let rsc = Rsc::new(&ns, "none", &[("ip", "203.0.113.7")]);
    for (what, run) in [
        ("start", rsc.start()),
        ("validate-all 10", rsc.validate("10")),
    ] {
        // 1, not 6: the subnet may well exist on another node.
        run.expect(1, what);
        assert_eq!(
            run.exit_reason(),
            Some(
                "parameter 'ip': no interface here has an IPv4 subnet that holds 203.0.113.7 \
                 (looked at: 127.0.0.0/8 on lo, 192.0.2.0/24 on eth0, 198.51.100.0/24 on eth1): \
                 set 'nic' (and 'cidr_netmask'), e.g. nic=lo for a shared IP"
            ),
            "{what}"
        );
    }
    rsc.validate("0")
        .expect(0, "validate-all level 0: parameters only");
    rsc.probe().expect(7, "probe");
    rsc.stop().expect(0, "stop");
    assert!(rsc.records().is_empty());
    let after: Vec<_> = ["lo", "eth0", "eth1"]
        .iter()
        .map(|d| ns.addresses(d))
        .collect();
    assert_eq!(after, before);

    // With nic but not cidr_netmask, on an interface without a subnet for it.
    let rsc = Rsc::new(&ns, "nic", &[("ip", "192.0.2.7"), ("nic", "eth1")]);
    let run = rsc.start();
    run.expect(1, "nic without a subnet for the address");
    assert_eq!(
        run.exit_reason(),
        Some(
            "parameter 'nic': no IPv4 subnet on eth1 holds 192.0.2.7 (looked at: \
             198.51.100.0/24 on eth1): set 'cidr_netmask' to add it there anyway"
        )
    );
    // The shared IP of Exoscale and Linode: nic=lo, a single host.
    placed(
        &ns,
        &[("ip", "203.0.113.7"), ("nic", "lo")],
        "lo",
        "203.0.113.7/32",
        None,
    );
}

#[test]
fn an_ipv6_link_local_address_needs_nic() {
    let ns = two_subnets("d-ll");
    let rsc = Rsc::new(&ns, "ll", &[("ip", "fe80::7")]);
    for (what, run) in [
        ("start", rsc.start()),
        ("validate-all 0", rsc.validate("0")),
    ] {
        run.expect(6, what);
        let reason = run.exit_reason().unwrap_or_default();
        assert!(
            reason.starts_with("parameter 'nic' is required for the link-local address fe80::7"),
            "{what}: {reason}"
        );
    }
    rsc.probe().expect(7, "probe");
    // With nic: eth0's link-local subnet, fe80::/64.
    let rsc = Rsc::new(&ns, "ll", &[("ip", "fe80::7"), ("nic", "eth0")]);
    rsc.start().expect(0, "start with nic");
    assert!(!line_of(&ns, "eth0", "fe80::7/64").is_empty());
    rsc.stop().expect(0, "stop");
    assert!(line_of(&ns, "eth0", "fe80::7/64").is_empty());
}

#[test]
fn broadcast_as_ipaddr2_takes_it() {
    let ns = two_subnets("d-brd");
    for (brd, shown) in [
        ("192.0.2.127", "192.0.2.127"),
        ("+", "192.0.2.15"),
        ("-", "192.0.2.0"),
    ] {
        placed(
            &ns,
            &[
                ("ip", "192.0.2.7"),
                ("cidr_netmask", "28"),
                ("broadcast", brd),
            ],
            "eth0",
            "192.0.2.7/28",
            Some(shown),
        );
    }
}

#[test]
fn monitor_and_stop_work_from_the_start_record() {
    // Once started, the subnet that decided where the address went may go: monitor and stop
    // look only at the recorded address (no discovery, as fast as before).
    let ns = two_subnets("d-rec");
    let rsc = Rsc::new(
        &ns,
        "rec",
        &[("ip", "198.51.100.7"), ("cidr_netmask", "28")],
    );
    rsc.start().expect(0, "start");
    assert!(ns
        .addresses("eth1")
        .contains(&"198.51.100.7/28".to_string()));
    ns.ip(&["addr", "del", "198.51.100.1/24", "dev", "eth1"]);
    rsc.monitor().expect(0, "monitor without the subnet");
    rsc.probe().expect(0, "probe without the subnet");
    rsc.stop().expect(0, "stop without the subnet");
    assert!(
        ns.addresses("eth1").is_empty(),
        "{:?}",
        ns.addresses("eth1")
    );
    rsc.monitor().expect(7, "monitor after stop");
}
