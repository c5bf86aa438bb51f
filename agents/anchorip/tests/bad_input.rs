//! Every kind of bad input gets the code ocf-contract.md prescribes and one exit reason that names
//! the parameter; nothing is left half-done; probes and stops stay truthful without parameters.
#![allow(clippy::unwrap_used)] // a test's failure report is its panic

mod support;

use cloudha_tests::Netns;
use std::time::{Duration, Instant};
use support::{netns_with_eth0, Rsc};

/// Start and validate-all with `params` both fail with `code`, the reason naming `param`; the
/// interfaces are untouched and no record is left.
fn rejected(ns: &Netns, params: &[(&str, &str)], code: i32, param: &str, says: &str) {
    let before_lo = ns.addresses("lo");
    let before_eth0 = ns.addresses("eth0");
    let rsc = Rsc::new(ns, "bad", params);
    for (action, run) in [("start", rsc.start()), ("validate-all", rsc.validate("10"))] {
        run.expect(code, &format!("{action} with {params:?}"));
        let reason = run.exit_reason().unwrap_or_default();
        assert!(
            reason.contains(&format!("'{param}'")),
            "{action} with {params:?}: reason does not name '{param}': {reason}"
        );
        assert!(
            reason.contains(says),
            "{action} with {params:?}: reason lacks '{says}': {reason}"
        );
    }
    assert_eq!(ns.addresses("lo"), before_lo, "lo changed by {params:?}");
    assert_eq!(
        ns.addresses("eth0"),
        before_eth0,
        "eth0 changed by {params:?}"
    );
    assert!(
        rsc.records().is_empty(),
        "records left: {:?}",
        rsc.records()
    );
    // A probe of the absent resource is 7 and a stop with nothing to stop is 0, bad parameters
    // or not: 6 from a probe would ban the resource from every node.
    rsc.probe().expect(7, &format!("probe with {params:?}"));
    rsc.stop().expect(0, &format!("stop with {params:?}"));
}

#[test]
fn parameters_wrong_everywhere_are_6() {
    let ns = netns_with_eth0("b-six");
    rejected(&ns, &[], 6, "ip", "required but not set");
    let run = Rsc::new(&ns, "bad", &[("ip", "10.1.2")]).start();
    assert_eq!(
        run.exit_reason(),
        Some("parameter 'ip': '10.1.2' is not an IPv4 or IPv6 address (nor 'auto')")
    );
    rejected(
        &ns,
        &[("ip", "10.1.2")],
        6,
        "ip",
        "is not an IPv4 or IPv6 address",
    );
    rejected(
        &ns,
        &[("ip", "2001:db8::zz")],
        6,
        "ip",
        "is not an IPv4 or IPv6",
    );
    rejected(&ns, &[("ip", "224.0.0.1")], 6, "ip", "multicast");
    rejected(&ns, &[("ip", "0.0.0.0")], 6, "ip", "unspecified");
    rejected(
        &ns,
        &[("ip", "10.17.1.18"), ("cidr_netmask", "33")],
        6,
        "cidr_netmask",
        "33 is out of range for an IPv4 address (1-32)",
    );
    rejected(
        &ns,
        &[("ip", "2001:db8::7"), ("cidr_netmask", "129")],
        6,
        "cidr_netmask",
        "out of range for an IPv6 address (1-128)",
    );
    rejected(
        &ns,
        &[("ip", "10.17.1.18"), ("cidr_netmask", "0")],
        6,
        "cidr_netmask",
        "out of range",
    );
    rejected(
        &ns,
        &[("ip", "10.17.1.18"), ("cidr_netmask", "wide")],
        6,
        "cidr_netmask",
        "is not a prefix length",
    );
    rejected(
        &ns,
        &[("ip", "10.17.1.18"), ("cidr_netmask", "255.0.255.0")],
        6,
        "cidr_netmask",
        "not contiguous",
    );
    rejected(
        &ns,
        &[("ip", "10.17.1.18"), ("nic", "eth0/x")],
        6,
        "nic",
        "is not a valid interface name",
    );
    rejected(
        &ns,
        &[("ip", "10.17.1.18"), ("arp_count", "-1")],
        6,
        "arp_count",
        "out of range",
    );
    rejected(
        &ns,
        &[("ip", "10.17.1.18"), ("arp_count", "many")],
        6,
        "arp_count",
        "is not a whole number",
    );
    rejected(
        &ns,
        &[("ip", "10.17.1.18"), ("broadcast", "10.17.1")],
        6,
        "broadcast",
        "is not an IPv4 address (nor '+' or '-')",
    );
    rejected(
        &ns,
        &[("ip", "2001:db8::7"), ("nic", "lo"), ("broadcast", "+")],
        6,
        "broadcast",
        "IPv6 has no broadcast",
    );
    rejected(
        &ns,
        &[("ip", "fe80::7")],
        6,
        "nic",
        "is required for the link-local address fe80::7",
    );
    rejected(
        &ns,
        &[("ip", "auto"), ("metadata_url", "ftp://169.254.169.254/")],
        6,
        "metadata_url",
        "must start with http://",
    );
}

#[test]
fn a_missing_interface_is_5_on_this_node_only() {
    let ns = netns_with_eth0("b-five");
    let params = [("ip", "10.17.1.18"), ("nic", "eth9")];
    let rsc = Rsc::new(&ns, "nonic", &params);
    let run = rsc.start();
    run.expect(5, "start on a missing interface");
    assert_eq!(
        run.exit_reason(),
        Some("parameter 'nic': interface 'eth9' does not exist on this node")
    );
    assert!(rsc.records().is_empty());
    // Level 0 checks the parameters only; level 10 looks at this node.
    rsc.validate("0").expect(0, "validate-all level 0");
    let run = rsc.validate("10");
    run.expect(5, "validate-all level 10");
    assert!(run.exit_reason().unwrap_or_default().contains("'nic'"));
    rsc.probe().expect(7, "probe");
    rsc.stop().expect(0, "stop");
    // The same parameters with an interface that exists are fine at level 10.
    let ok = Rsc::new(
        &ns,
        "withnic",
        &[
            ("ip", "10.17.1.18"),
            ("nic", "eth0"),
            ("cidr_netmask", "32"),
        ],
    );
    ok.validate("10")
        .expect(0, "validate-all level 10, eth0 present");
}

#[test]
fn an_unreachable_metadata_service_is_1_within_the_timeout() {
    // Nothing listens on this port inside the namespace: every read is refused, and retried
    // until the action's deadline. A transient fault is never 6 (that bans the resource everywhere).
    let ns = netns_with_eth0("b-meta");
    let rsc = Rsc::new(
        &ns,
        "auto",
        &[
            ("ip", "auto"),
            ("metadata_url", "http://127.0.0.1:9/metadata/v1"),
        ],
    );
    let t = Instant::now();
    let run = rsc.run_with("start", &[("OCF_RESKEY_CRM_meta_timeout", "3000")]);
    let took = t.elapsed();
    run.expect(1, "start with the metadata service unreachable");
    let reason = run.exit_reason().unwrap_or_default();
    assert!(
        reason.starts_with("parameter 'ip' is 'auto', but the metadata service could not be read"),
        "{reason}"
    );
    assert!(
        reason.contains("http://127.0.0.1:9/metadata/v1/interfaces/public/0/anchor_ipv4/address")
    );
    // It retried (not a single refused connection) but stayed inside Pacemaker's timeout.
    assert!(
        took >= Duration::from_millis(1500),
        "gave up after {took:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "outlived the 3 s timeout: {took:?}"
    );
    assert!(rsc.records().is_empty());
    assert!(!ns.addresses("eth0").iter().any(|a| a.starts_with("10.")));
}

#[test]
fn unknown_actions_are_3() {
    let ns = Netns::new("b-three");
    let rsc = Rsc::new(&ns, "three", &[("ip", "10.17.1.18")]);
    for action in ["promote", "demote", "migrate_to", "reload", "dance"] {
        rsc.run_with(action, &[]).expect(3, action);
    }
    // notify is advertised, and owed a 0 by the contract.
    rsc.run_with("notify", &[]).expect(0, "notify");
}
