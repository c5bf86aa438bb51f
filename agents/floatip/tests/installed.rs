//! floatip as installed: its meta-data (checked in, valid for ocf-tester and Pacemaker),
//! ocf-tester against the fake cloud, and the tutorial's `ocf:digitalocean:floatip` with its
//! parameter names `do_token` and `floating_ip`.
#![allow(clippy::unwrap_used)] // a test's failure report is its panic

mod common;

use cloudha_tests::{
    agent_bin, check_metadata, ocf_tester, output, require_program, require_root, workspace_root,
    Installed,
};
use common::{cloud, exoscale, hetzner, run_with, vultr, A, B, EXO_KEY, IP, TOKEN};
use std::os::unix::fs::PermissionsExt;

#[test]
fn metadata_is_checked_in_and_valid() {
    check_metadata("floatip");
}

/// floatip(7) as the Debian package makes it (tools/man/ra2man.sh from the meta-data), read
/// with `man -l`: every provider is there, with its name, its title, its default API and
/// metadata URLs, and the parameters it needs; groff has nothing to say.
#[test]
fn the_man_page_describes_every_provider() {
    require_program("/usr/bin/xsltproc");
    require_program("/usr/bin/man");
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = output(
        std::process::Command::new("sh")
            .arg(workspace_root().join("tools/man/ra2man.sh"))
            .arg(dir.path())
            .args(["cloudha", "cloudha-agents test"])
            .arg(agent_bin("floatip")),
    );
    assert_eq!(code, 0, "{out}");
    let page = dir.path().join("ocf_cloudha_floatip.7");
    let man = std::process::Command::new("man")
        .args(["--warnings", "-l"])
        .arg(&page)
        .env("MANWIDTH", "80")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&man.stdout).into_owned();
    let said = String::from_utf8_lossy(&man.stderr);
    assert!(man.status.success(), "{said}");
    assert!(said.trim().is_empty(), "groff says: {said}");
    // The page's words, whatever the line breaks.
    let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let has = |what: &str| words.contains(what);
    for c in cloudha_cloud::provider::PROVIDERS {
        for what in [
            format!("{} ({})", c.name, c.title),
            format!("{} ({})", c.api_url, c.name),
            format!("{} ({})", c.metadata_url, c.name),
            format!("{} (provider={}): ", c.title, c.name),
        ] {
            assert!(has(&what), "floatip(7) lacks {what:?}:\n{text}");
        }
        if c.api_key.is_some() {
            assert!(has(&format!("Required with provider={}", c.name)), "{text}");
        }
        if c.zone.is_some() {
            assert!(has(&format!("Zone (provider={})", c.name)), "{text}");
        }
    }
    assert!(
        has(r#"(optional, string, default "digitalocean")"#),
        "{text}"
    );
}

/// ocf-tester's instance state went to the default HA_RSCTMP: after its final stop only the
/// lock is left (a start record would be a failed stop). Tidy it.
fn tidy(name: &str) {
    let base = format!("/run/resource-agents/cloudha/floatip-{name}");
    let _ = std::fs::remove_file(format!("{base}.lock"));
    assert!(
        !std::path::Path::new(&format!("{base}.started")).exists(),
        "ocf-tester's final stop left a start record"
    );
}

/// A root-only token file.
fn token_file(dir: &std::path::Path) -> String {
    let p = dir.join("do-token");
    std::fs::write(&p, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p.display().to_string()
}

/// ocf-tester on the installed floatip against the fake `c` (B holds the IP, A is this node),
/// with `provider`'s parameters, the IP, the token in a file (it stays out of ocf-tester's argv,
/// as the docs recommend; Exoscale's secret too) and the fake's URLs. Afterwards A alone holds
/// the IP.
fn ocf_tester_passes(c: &common::Cloud, label: &str, provider: &[(&str, &str)]) {
    require_root();
    let installed = Installed::new();
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let api = c.fake.api_url();
    let name = format!("floatip-ocft-{label}-{}", std::process::id());
    let mut params = provider.to_vec();
    params.extend([
        ("ip", IP),
        ("api_token_file", token.as_str()),
        ("api_url", api.as_str()),
        ("metadata_url", c.nodes[0].metadata_url.as_str()),
    ]);
    let (ok, out) = ocf_tester(&installed.agent("cloudha", "floatip"), &name, &params, None);
    tidy(&name);
    assert!(ok, "ocf-tester ({label}) failed:\n{out}");
    assert_eq!(c.fake.holders(IP), [A], "this node's server alone");
}

#[test]
fn ocf_tester_passes_against_the_fake() {
    ocf_tester_passes(&cloud(Some(B), &[A]), "digitalocean", &[]);
}

#[test]
fn ocf_tester_passes_against_the_hetzner_fake() {
    ocf_tester_passes(
        &hetzner(Some(B), &[A]),
        "hetzner",
        &[("provider", "hetzner")],
    );
}

#[test]
fn ocf_tester_passes_against_the_vultr_fake() {
    ocf_tester_passes(&vultr(Some(B), &[A]), "vultr", &[("provider", "vultr")]);
}

#[test]
fn ocf_tester_passes_against_the_exoscale_fake() {
    ocf_tester_passes(
        &exoscale(Some(B), &[A]),
        "exoscale",
        &[("provider", "exoscale"), ("api_key", EXO_KEY)],
    );
}

#[test]
fn the_tutorial_agent_path_and_names_work_unchanged() {
    require_root();
    let installed = Installed::new();
    let legacy = installed.agent("digitalocean", "floatip");
    assert!(
        std::fs::symlink_metadata(&legacy).is_ok(),
        "{} is not installed",
        legacy.display()
    );
    let c = cloud(Some(B), &[A]);
    let env: Vec<(String, String)> = vec![
        ("OCF_RESKEY_do_token".into(), TOKEN.into()),
        ("OCF_RESKEY_floating_ip".into(), IP.into()),
        ("OCF_RESKEY_api_url".into(), c.fake.api_url()),
        (
            "OCF_RESKEY_metadata_url".into(),
            c.nodes[0].metadata_url.clone(),
        ),
        ("OCF_RESOURCE_INSTANCE".into(), "FloatIP".into()),
        ("OCF_RESOURCE_TYPE".into(), "floatip".into()),
        ("OCF_RESOURCE_PROVIDER".into(), "digitalocean".into()),
        (
            "HA_RSCTMP".into(),
            c.nodes[0].rsctmp.path().display().to_string(),
        ),
    ];
    let run = |action: &str, extra: &[(&str, &str)]| run_with(&legacy, env.clone(), action, extra);
    run("validate-all", &[]).expect(0, "validate-all");
    run("validate-all", &[("OCF_CHECK_LEVEL", "10")]).expect(0, "validate-all level 10");
    run("monitor", &[]).expect(7, "probe");
    run("start", &[]).expect(0, "start");
    assert_eq!(c.fake.holder(IP), Some(A));
    run("monitor", &[("OCF_RESKEY_CRM_meta_interval", "10000")]).expect(0, "monitor");
    run("stop", &[]).expect(0, "stop");
    run("monitor", &[]).expect(7, "probe after stop");
    let meta = run("meta-data", &[]);
    meta.expect(0, "meta-data");
    assert!(meta.stdout.contains("<parameter name=\"do_token\""));
    assert!(meta.stdout.contains("<parameter name=\"floating_ip\""));

    // ocf-tester with the tutorial's parameters, as its users configured them.
    let name = format!("floatip-legacy-{}", std::process::id());
    let api = c.fake.api_url();
    let (ok, out) = ocf_tester(
        &legacy,
        &name,
        &[
            ("do_token", TOKEN),
            ("floating_ip", IP),
            ("api_url", &api),
            ("metadata_url", &c.nodes[0].metadata_url),
        ],
        None,
    );
    tidy(&name);
    assert!(ok, "ocf-tester (legacy names) failed:\n{out}");
}
