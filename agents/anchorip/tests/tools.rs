//! anchorip as the cluster's own tools see it: the checked-in meta-data (both validators),
//! resource-agents' ocf-tester on the installed agent, and Pacemaker's `crm_resource --validate`.
#![allow(clippy::unwrap_used)] // a test's failure report is its panic

mod support;

use cloudha_tests::{
    check_metadata, crm_validate, ocf_tester, output, require_program, require_root, sh, Installed,
    Netns,
};
use std::path::Path;
use std::process::Command;

#[test]
fn metadata_matches_the_checked_in_file_and_validates() {
    check_metadata("anchorip");
}

/// ocf-tester's whole sequence on the installed agent, inside a namespace so that the address
/// stays there. Its instance name is unique: the state goes to the default HA_RSCTMP.
fn tester(ns: &Netns, name: &str, params: &[(&str, &str)]) {
    let installed = Installed::new();
    let agent = installed.agent("cloudha", "anchorip");
    let name = format!("{name}-{}", std::process::id());
    let (passed, output) = ocf_tester(&agent, &name, params, Some(ns));
    // The instance's lock file in the default HA_RSCTMP is all that is left: tidy it.
    let _ = std::fs::remove_file(format!("/run/resource-agents/cloudha/anchorip-{name}.lock"));
    assert!(passed, "ocf-tester failed:\n{output}");
    assert!(
        !Path::new(&format!(
            "/run/resource-agents/cloudha/anchorip-{name}.started"
        ))
        .exists(),
        "ocf-tester's final stop left a start record"
    );
}

#[test]
fn ocf_tester_passes_ipv4_on_lo() {
    let ns = Netns::new("t-lo");
    tester(&ns, "anchorip-lo", &[("ip", "10.17.1.18"), ("nic", "lo")]);
    assert!(!ns.addresses("lo").contains(&"10.17.1.18/32".to_string()));
}

#[test]
fn ocf_tester_passes_ipv6_on_veth() {
    let ns = support::netns_with_eth0("t-v6");
    tester(
        &ns,
        "anchorip-v6",
        &[
            ("ip", "2001:db8::7"),
            ("nic", "eth0"),
            ("cidr_netmask", "64"),
        ],
    );
    assert!(!ns.addresses("eth0").contains(&"2001:db8::7/64".to_string()));
}

#[test]
fn ocf_tester_passes_with_a_pre_existing_address() {
    // After its stop, ocf-tester demands monitor 7 although the system's address stays.
    let ns = support::netns_with_eth0("t-pre");
    ns.ip(&["addr", "add", "10.17.0.5/16", "dev", "eth0"]);
    tester(
        &ns,
        "anchorip-pre",
        &[("ip", "10.17.0.5"), ("nic", "eth0"), ("cidr_netmask", "16")],
    );
    assert!(ns.addresses("eth0").contains(&"10.17.0.5/16".to_string()));
}

#[test]
fn crm_resource_validate_returns_the_agents_code() {
    require_root();
    require_program("/usr/sbin/crm_resource");
    let installed = Installed::new();
    let _real = installed.to_system("anchorip");
    let validate = |options: &[&str]| crm_validate("anchorip", options);
    let (code, out) = validate(&["ip=10.17.1.18"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = validate(&["ip=10.1.2"]);
    assert_eq!(code, 6, "{out}");
    assert!(
        out.contains("parameter 'ip': '10.1.2' is not an IPv4 or IPv6 address"),
        "{out}"
    );
    let (code, out) = validate(&["ip=10.17.1.18", "cidr_netmask=40"]);
    assert_eq!(code, 6, "{out}");
    assert!(out.contains("parameter 'cidr_netmask'"), "{out}");
    let (code, out) = validate(&[]);
    assert_eq!(code, 6, "{out}");
    assert!(out.contains("parameter 'ip' is required"), "{out}");
}

#[test]
fn crm_resource_force_actions_run_the_agent_as_pacemaker_does() {
    // Pacemaker's own executor code, with a CIB file instead of a cluster: the environment
    // (OCF_RESKEY_*, CRM_meta_*, OCF_RESOURCE_INSTANCE…) is the one a cluster node would give.
    require_root();
    require_program("/usr/sbin/crm_resource");
    require_program("/usr/sbin/cibadmin");
    let installed = Installed::new();
    let _real = installed.to_system("anchorip");
    let ns = Netns::new("t-force");
    let dir = support::StateDir::new();
    let cib = dir.path().join("cib.xml");
    let empty = sh(Command::new("cibadmin").arg("--empty"));
    std::fs::write(&cib, empty).expect("write cib");
    let id = format!("anchorip-force-{}", std::process::id());
    sh(Command::new("cibadmin")
        .env("CIB_file", &cib)
        .args(["-C", "-o", "resources", "-X"])
        .arg(format!(
            r#"<primitive id="{id}" class="ocf" provider="cloudha" type="anchorip"><instance_attributes id="{id}-ia"><nvpair id="{id}-ip" name="ip" value="10.17.1.18"/><nvpair id="{id}-nic" name="nic" value="lo"/></instance_attributes></primitive>"#
        )));
    let force = |what: &str| {
        output(
            ns.command("crm_resource")
                .env("CIB_file", &cib)
                .args([what, "-r", &id]),
        )
    };
    let check = |expected: i32| {
        let (code, out) = force("--force-check");
        assert_eq!(code, expected, "{out}");
        assert!(out.contains(&format!("returned {expected}")), "{out}");
    };
    check(7);
    let (code, out) = force("--force-start");
    assert_eq!(code, 0, "{out}");
    assert!(ns.addresses("lo").contains(&"10.17.1.18/32".to_string()));
    check(0);
    let (code, out) = force("--force-stop");
    assert_eq!(code, 0, "{out}");
    assert!(!ns.addresses("lo").contains(&"10.17.1.18/32".to_string()));
    check(7);
    let _ = std::fs::remove_file(format!("/run/resource-agents/cloudha/anchorip-{id}.lock"));
}
