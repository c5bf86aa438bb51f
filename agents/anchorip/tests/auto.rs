//! `ip=auto` against the fake DigitalOcean metadata service, served inside the test's namespace
//! on 169.254.169.254:80 (put on that namespace's `lo`), so the agent runs with its defaults.

mod support;

use cloudha_tests::fakecloud::{FakeCloud, Fault, Scope};
use cloudha_tests::Netns;
use std::time::{Duration, Instant};
use support::{expect, netns_with_eth0, Rsc};

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
    expect(&rsc.validate("10"), 0, "validate-all level 10");
    expect(&rsc.probe(), 7, "probe");
    expect(&rsc.start(), 0, "start");
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
    expect(&rsc.monitor(), 0, "monitor");
    expect(&rsc.probe(), 0, "probe");
    expect(&rsc.stop(), 0, "stop with the metadata service down");
    assert_eq!(cloud.metadata_request_count(DROPLET), reads);
    assert!(!ns.addresses("eth0").contains(&"10.17.0.5/16".to_string()));
    expect(&rsc.monitor(), 7, "monitor after stop");
}

#[test]
fn auto_leaves_the_address_cloud_init_configured() {
    let (ns, _cloud) = droplet("u-cinit");
    ns.ip(&["addr", "add", "10.17.0.5/16", "dev", "eth0"]);
    let rsc = Rsc::new(&ns, "anchor", &[("ip", "auto"), ("arp_count", "0")]);
    expect(
        &rsc.probe(),
        7,
        "probe: configured by the system, not started",
    );
    let run = rsc.start();
    expect(&run, 0, "start");
    expect(&rsc.monitor(), 0, "monitor");
    expect(&rsc.stop(), 0, "stop");
    assert!(ns.addresses("eth0").contains(&"10.17.0.5/16".to_string()));
    expect(&rsc.monitor(), 7, "monitor after stop");
}

#[test]
fn an_explicit_prefix_and_interface_win_over_the_metadata() {
    let (ns, cloud) = droplet("u-over");
    let rsc = Rsc::new(
        &ns,
        "anchor",
        &[("ip", "auto"), ("cidr_netmask", "32"), ("nic", "lo")],
    );
    expect(&rsc.start(), 0, "start");
    assert!(ns.addresses("lo").contains(&"10.17.0.5/32".to_string()));
    assert!(
        !cloud
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/anchor_ipv4/netmask")),
        "read the netmask although cidr_netmask was given"
    );
    expect(&rsc.stop(), 0, "stop");
    assert!(!ns.addresses("lo").contains(&"10.17.0.5/32".to_string()));
}

#[test]
fn transient_metadata_faults_are_retried() {
    let (ns, cloud) = droplet("u-retry");
    cloud.inject(Fault::status(Scope::Metadata, 503).times(2));
    cloud.inject(Fault::reset(Scope::Metadata).times(1));
    let rsc = Rsc::new(&ns, "anchor", &[("ip", "auto"), ("arp_count", "0")]);
    expect(&rsc.start(), 0, "start through 503s and a reset");
    assert!(ns.addresses("eth0").contains(&"10.17.0.5/16".to_string()));
    assert!(cloud.metadata_request_count(DROPLET) >= 5);
    expect(&rsc.stop(), 0, "stop");
}

#[test]
fn a_metadata_service_that_keeps_failing_is_1_never_6() {
    let (ns, cloud) = droplet("u-down");
    cloud.inject(Fault::status(Scope::Metadata, 500));
    let rsc = Rsc::new(&ns, "anchor", &[("ip", "auto")]);
    let t = Instant::now();
    let run = rsc.run_with("start", &[("OCF_RESKEY_CRM_meta_timeout", "4000")]);
    let took = t.elapsed();
    expect(&run, 1, "start with the metadata service failing");
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
    expect(&run, 1, "start with the metadata service hanging");
    assert!(t.elapsed() < Duration::from_secs(4), "outlived the timeout");
}

#[test]
fn a_droplet_without_an_anchor_ip_is_5() {
    let (ns, cloud) = droplet("u-none");
    cloud.clear_anchor(DROPLET);
    let rsc = Rsc::new(&ns, "anchor", &[("ip", "auto")]);
    let run = rsc.start();
    expect(&run, 5, "start on a droplet without an anchor IP");
    let reason = run.exit_reason().unwrap_or_default();
    assert!(
        reason.starts_with("parameter 'ip' is 'auto', but this droplet has no anchor IP"),
        "{reason}"
    );
    assert!(rsc.records().is_empty());
    expect(&rsc.probe(), 7, "probe");
    expect(&rsc.stop(), 0, "stop");
}
