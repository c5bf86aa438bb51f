//! `ip=auto` against the fake DigitalOcean metadata service, served inside the test's namespace
//! on 169.254.169.254:80 (put on that namespace's `lo`), so the agent runs with its defaults.
#![allow(clippy::unwrap_used)] // a test's failure report is its panic

mod support;

use cloudha_tests::fakecloud::{FakeCloud, Fault, Scope};
use cloudha_tests::Netns;
use std::time::{Duration, Instant};
use support::{netns_with_eth0, Rsc};

const DROPLET: u64 = 3164494;

/// A namespace with eth0 and a droplet metadata service at the real address, the droplet's
/// anchor IP being 10.17.0.5/16.
fn droplet(tag: &str) -> (Netns, FakeCloud) {
    let ns = netns_with_eth0(tag);
    ns.ip(&["addr", "add", "169.254.169.254/32", "dev", "lo"]);
    let cloud = FakeCloud::start();
    cloud.set_anchor(DROPLET, "10.17.0.5", "255.255.0.0", "10.17.0.1");
    let url = cloud.serve_metadata_in_netns(
        DROPLET,
        &ns.name,
        "169.254.169.254:80".parse().expect("address"),
    );
    assert_eq!(url, "http://169.254.169.254:80/metadata/v1");
    (ns, cloud)
}

#[test]
fn auto_puts_the_anchor_ip_on_eth0() {
    let (ns, cloud) = droplet("u-auto");
    let rsc = Rsc::new(&ns, "anchor", &[("ip", "auto"), ("arp_count", "0")]);
    rsc.validate("10").expect(0, "validate-all level 10");
    rsc.probe().expect(7, "probe");
    rsc.start().expect(0, "start");
    assert!(
        ns.addresses("eth0").contains(&"10.17.0.5/16".to_string()),
        "{:?}",
        ns.addresses("eth0")
    );
    let paths: Vec<String> = cloud.requests().into_iter().map(|r| r.path).collect();
    assert!(paths.contains(&"/metadata/v1/interfaces/public/0/anchor_ipv4/address".to_string()));
    assert!(paths.contains(&"/metadata/v1/interfaces/public/0/anchor_ipv4/netmask".to_string()));

    // Monitors and the stop work from the start record: no metadata reads, and no dependence
    // on the service being up.
    let reads = cloud.metadata_request_count(DROPLET);
    cloud.inject(Fault::outage(Scope::Metadata));
    rsc.monitor().expect(0, "monitor");
    rsc.probe().expect(0, "probe");
    rsc.stop().expect(0, "stop with the metadata service down");
    assert_eq!(cloud.metadata_request_count(DROPLET), reads);
    assert!(!ns.addresses("eth0").contains(&"10.17.0.5/16".to_string()));
    rsc.monitor().expect(7, "monitor after stop");
}

#[test]
fn auto_leaves_the_address_cloud_init_configured() {
    let (ns, _cloud) = droplet("u-cinit");
    ns.ip(&["addr", "add", "10.17.0.5/16", "dev", "eth0"]);
    let rsc = Rsc::new(&ns, "anchor", &[("ip", "auto"), ("arp_count", "0")]);
    rsc.probe()
        .expect(7, "probe: configured by the system, not started");
    let run = rsc.start();
    run.expect(0, "start");
    rsc.monitor().expect(0, "monitor");
    rsc.stop().expect(0, "stop");
    assert!(ns.addresses("eth0").contains(&"10.17.0.5/16".to_string()));
    rsc.monitor().expect(7, "monitor after stop");
}

#[test]
fn an_explicit_prefix_and_interface_win_over_the_metadata() {
    let (ns, cloud) = droplet("u-over");
    let rsc = Rsc::new(
        &ns,
        "anchor",
        &[("ip", "auto"), ("cidr_netmask", "32"), ("nic", "lo")],
    );
    rsc.start().expect(0, "start");
    assert!(ns.addresses("lo").contains(&"10.17.0.5/32".to_string()));
    assert!(
        !cloud
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/anchor_ipv4/netmask")),
        "read the netmask although cidr_netmask was given"
    );
    rsc.stop().expect(0, "stop");
    assert!(!ns.addresses("lo").contains(&"10.17.0.5/32".to_string()));
}

#[test]
fn transient_metadata_faults_are_retried() {
    let (ns, cloud) = droplet("u-retry");
    cloud.inject(Fault::status(Scope::Metadata, 503).times(2));
    cloud.inject(Fault::reset(Scope::Metadata).times(1));
    let rsc = Rsc::new(&ns, "anchor", &[("ip", "auto"), ("arp_count", "0")]);
    rsc.start().expect(0, "start through 503s and a reset");
    assert!(ns.addresses("eth0").contains(&"10.17.0.5/16".to_string()));
    assert!(cloud.metadata_request_count(DROPLET) >= 5);
    rsc.stop().expect(0, "stop");
}

#[test]
fn a_metadata_service_that_keeps_failing_is_1_never_6() {
    let (ns, cloud) = droplet("u-down");
    cloud.inject(Fault::status(Scope::Metadata, 500));
    let rsc = Rsc::new(&ns, "anchor", &[("ip", "auto")]);
    let t = Instant::now();
    let run = rsc.run_with("start", &[("OCF_RESKEY_CRM_meta_timeout", "4000")]);
    let took = t.elapsed();
    run.expect(1, "start with the metadata service failing");
    let reason = run.exit_reason().unwrap_or_default();
    assert!(reason.starts_with("parameter 'ip' is 'auto'"), "{reason}");
    assert!(reason.contains("HTTP 500"), "{reason}");
    assert!(
        took < Duration::from_secs(4),
        "outlived the timeout: {took:?}"
    );
    assert!(
        cloud.metadata_request_count(DROPLET) > 1,
        "gave up without retrying"
    );
    assert!(rsc.records().is_empty());
    assert!(!ns.addresses("eth0").iter().any(|a| a.starts_with("10.17.")));

    // A service that accepts and never answers: the same, within the timeout.
    cloud.clear_faults();
    cloud.inject(Fault::hang(Scope::Metadata));
    let t = Instant::now();
    let run = rsc.run_with("start", &[("OCF_RESKEY_CRM_meta_timeout", "4000")]);
    run.expect(1, "start with the metadata service hanging");
    assert!(t.elapsed() < Duration::from_secs(4), "outlived the timeout");
}

#[test]
fn a_droplet_without_an_anchor_ip_is_5() {
    let (ns, cloud) = droplet("u-none");
    cloud.clear_anchor(DROPLET);
    let rsc = Rsc::new(&ns, "anchor", &[("ip", "auto")]);
    let run = rsc.start();
    run.expect(5, "start on a droplet without an anchor IP");
    let reason = run.exit_reason().unwrap_or_default();
    assert!(
        reason.starts_with("parameter 'ip' is 'auto', but this droplet has no anchor IP"),
        "{reason}"
    );
    assert!(rsc.records().is_empty());
    rsc.probe().expect(7, "probe");
    rsc.stop().expect(0, "stop");
}

#[test]
fn an_unusable_anchor_from_the_metadata_service_is_refused_and_retried() {
    // The metadata service is node-local and transient: an answer that an interface cannot hold
    // is treated like garbage, retried until the deadline, then 1 (never 6, never added).
    for (bad, says) in [
        ("224.0.0.5", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("255.255.255.255", "broadcast"),
    ] {
        let (ns, cloud) = droplet("u-bad");
        cloud.set_anchor(DROPLET, bad, "255.255.0.0", "10.17.0.1");
        let rsc = Rsc::new(&ns, "anchor", &[("ip", "auto"), ("arp_count", "0")]);
        let t = Instant::now();
        let run = rsc.run_with("start", &[("OCF_RESKEY_CRM_meta_timeout", "3000")]);
        let took = t.elapsed();
        run.expect(1, &format!("start with the anchor IP {bad}"));
        let reason = run.exit_reason().unwrap_or_default();
        assert!(
            reason.starts_with("parameter 'ip' is 'auto', but the metadata service")
                && reason.contains(bad)
                && reason.contains(says),
            "{bad}: {reason}"
        );
        assert!(
            cloud.metadata_request_count(DROPLET) > 2,
            "{bad}: not retried"
        );
        assert!(
            took >= Duration::from_millis(1500) && took < Duration::from_secs(3),
            "{bad}: gave up after {took:?} (timeout 3 s)"
        );
        assert!(
            !ns.addresses("eth0").iter().any(|a| a.starts_with(bad)),
            "{bad} was put on eth0: {:?}",
            ns.addresses("eth0")
        );
        assert!(rsc.records().is_empty(), "{bad}: {:?}", rsc.records());
    }
}

#[test]
fn a_garbled_answer_is_retried_within_the_deadline() {
    // A proxy's HTML page instead of the address (200): retried like any transient fault.
    let (ns, cloud) = droplet("u-garble");
    cloud.inject(Fault::garbled(Scope::Metadata).times(2));
    let rsc = Rsc::new(&ns, "anchor", &[("ip", "auto"), ("arp_count", "0")]);
    rsc.start().expect(0, "start through two garbled answers");
    assert!(ns.addresses("eth0").contains(&"10.17.0.5/16".to_string()));
    rsc.stop().expect(0, "stop");

    // One that stays garbled: 1 at the deadline, saying what it got.
    cloud.inject(Fault::garbled(Scope::Metadata));
    let run = rsc.run_with("start", &[("OCF_RESKEY_CRM_meta_timeout", "3000")]);
    run.expect(1, "start with the answers garbled until the timeout");
    let reason = run.exit_reason().unwrap_or_default();
    assert!(
        reason.starts_with("parameter 'ip' is 'auto', but the metadata service")
            && reason.contains("not an IPv4 address"),
        "{reason}"
    );
    assert!(rsc.records().is_empty());
}

#[test]
fn an_anchor_that_becomes_usable_while_start_retries_is_taken() {
    let (ns, cloud) = droplet("u-later");
    cloud.set_anchor(DROPLET, "224.0.0.5", "255.255.0.0", "10.17.0.1");
    let rsc = Rsc::new(&ns, "anchor", &[("ip", "auto"), ("arp_count", "0")]);
    let run = std::thread::scope(|s| {
        let start = s.spawn(|| rsc.start());
        std::thread::sleep(Duration::from_millis(700));
        cloud.set_anchor(DROPLET, "10.17.0.5", "255.255.0.0", "10.17.0.1");
        start.join().expect("start")
    });
    run.expect(
        0,
        "start once the metadata service answers a usable address",
    );
    assert!(ns.addresses("eth0").contains(&"10.17.0.5/16".to_string()));
    assert!(!ns.addresses("eth0").iter().any(|a| a.starts_with("224.")));
    rsc.stop().expect(0, "stop");
}
