//! floatip run by Pacemaker's own tools (no cluster): `crm_resource --validate` and the
//! executor behind `crm_resource --force-start/--force-check/--force-stop` with a CIB file, so
//! the environment is the one a cluster node gives. The agent must sit where Pacemaker looks.
#![allow(clippy::unwrap_used)] // a test's failure report is its panic

mod common;

use cloudha_tests::{crm_validate, output, require_program, require_root, sh, Installed};
use common::{cloud, exoscale, hetzner, vultr, A, B, EXO_KEY, IP, TOKEN};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

#[test]
fn pacemaker_runs_it() {
    require_root();
    require_program("/usr/sbin/crm_resource");
    require_program("/usr/sbin/cibadmin");
    let installed = Installed::new();
    let _real = installed.to_system("floatip");
    let c = cloud(Some(B), &[A]);
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let token = token.display().to_string();
    let api = c.fake.api_url();
    let md = c.nodes[0].metadata_url.clone();

    // crm_resource --validate: the agent's own code comes back.
    let validate = |options: &[String]| crm_validate("floatip", options);
    let good = vec![
        format!("ip={IP}"),
        format!("api_token_file={token}"),
        format!("api_url={api}"),
        format!("metadata_url={md}"),
    ];
    let (code, out) = validate(&good);
    assert_eq!(code, 0, "{out}");
    let mut bad = good.clone();
    bad[0] = "ip=203.0.113".into();
    let (code, out) = validate(&bad);
    assert_eq!(code, 6, "{out}");
    assert!(
        out.contains("parameter 'ip': '203.0.113' is not an IPv4 or IPv6 address"),
        "{out}"
    );

    // provider=hetzner: its own fake, the same token file.
    let h = hetzner(Some(B), &[A]);
    let hetzner_options = vec![
        "provider=hetzner".to_string(),
        format!("ip={IP}"),
        format!("api_token_file={token}"),
        format!("api_url={}", h.fake.api_url()),
        format!("metadata_url={}", h.nodes[0].metadata_url),
    ];
    let (code, out) = validate(&hetzner_options);
    assert_eq!(code, 0, "{out}");
    let mut v6 = hetzner_options.clone();
    v6[1] = "ip=2001:db8::7".into();
    let (code, out) = validate(&v6);
    assert_eq!(code, 6, "{out}");
    assert!(out.contains("/64 networks"), "{out}");

    // provider=vultr: its own fake, the same token file (the API key).
    let v = vultr(Some(B), &[A]);
    let vultr_options = vec![
        "provider=vultr".to_string(),
        format!("ip={IP}"),
        format!("api_token_file={token}"),
        format!("api_url={}", v.fake.api_url()),
        format!("metadata_url={}", v.nodes[0].metadata_url),
    ];
    let (code, out) = validate(&vultr_options);
    assert_eq!(code, 0, "{out}");
    let mut v6 = vultr_options.clone();
    v6[1] = "ip=2001:db8::7".into();
    let (code, out) = validate(&v6);
    assert_eq!(code, 6, "{out}");
    assert!(out.contains("/64 subnets"), "{out}");

    // provider=exoscale: its own fake, the key, and the same file as its secret.
    let e = exoscale(Some(B), &[A]);
    let exoscale_options = vec![
        "provider=exoscale".to_string(),
        format!("ip={IP}"),
        format!("api_key={EXO_KEY}"),
        format!("api_token_file={token}"),
        format!("api_url={}", e.fake.api_url()),
        format!("metadata_url={}", e.nodes[0].metadata_url),
    ];
    let (code, out) = validate(&exoscale_options);
    assert_eq!(code, 0, "{out}");
    let no_key: Vec<String> = exoscale_options
        .iter()
        .filter(|o| !o.starts_with("api_key="))
        .cloned()
        .collect();
    let (code, out) = validate(&no_key);
    assert_eq!(code, 6, "{out}");
    assert!(
        out.contains("parameter 'api_key' is required but not set"),
        "{out}"
    );
    let mut bad_zone = exoscale_options.clone();
    bad_zone.push("zone=evil.example/x".into());
    let (code, out) = validate(&bad_zone);
    assert_eq!(code, 6, "{out}");
    assert!(out.contains("parameter 'zone': "), "{out}");

    // The executor, with a CIB file.
    let cib = dir.path().join("cib.xml");
    std::fs::write(&cib, sh(Command::new("cibadmin").arg("--empty"))).unwrap();
    let id = format!("floatip-force-{}", std::process::id());
    let nv = |n: &str, v: &str| format!(r#"<nvpair id="{id}-{n}" name="{n}" value="{v}"/>"#);
    sh(Command::new("cibadmin")
        .env("CIB_file", &cib)
        .args(["-C", "-o", "resources", "-X"])
        .arg(format!(
            r#"<primitive id="{id}" class="ocf" provider="cloudha" type="floatip"><instance_attributes id="{id}-ia">{}{}{}{}</instance_attributes></primitive>"#,
            nv("ip", IP),
            nv("api_token_file", &token),
            nv("api_url", &api),
            nv("metadata_url", &md),
        )));
    let force = |what: &str| {
        output(
            Command::new("crm_resource")
                .env("CIB_file", &cib)
                .args([what, "-r", &id]),
        )
    };
    let check = |expected: i32| {
        let (code, out) = force("--force-check");
        assert_eq!(code, expected, "{out}");
    };
    check(7);
    let (code, out) = force("--force-start");
    assert_eq!(code, 0, "{out}");
    assert_eq!(c.fake.holder(IP), Some(A));
    check(0);
    let (code, out) = force("--force-stop");
    assert_eq!(code, 0, "{out}");
    check(7);
    for suffix in ["lock", "started"] {
        let _ = std::fs::remove_file(format!(
            "/run/resource-agents/cloudha/floatip-{id}.{suffix}"
        ));
    }
    let (code, out) =
        output(Command::new("crm_resource").args(["--show-metadata", "ocf:cloudha:floatip"]));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("<resource-agent name=\"floatip\""), "{out}");
}
