//! The installed agent run by Pacemaker's own tools: `crm_resource --force-start/--force-check/
//! --force-stop` against a CIB file (Pacemaker's environment, no daemons) and `--validate`.
//! Pacemaker finds agents only under its compiled-in /usr/lib/ocf: the test puts the agent
//! there under a global lock and restores what was there.

mod common;

use cloudha_tests::{crm_validate, output, require_program, sh, Installed};
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// `CIB_file=<cib> crm_resource <args>`: (exit code, output).
fn crm_resource(cib: &Path, args: &[&str]) -> (i32, String) {
    output(Command::new("crm_resource").env("CIB_file", cib).args(args))
}

#[test]
fn crm_resource_starts_checks_and_stops_it_with_the_legacy_parameter_name() {
    require_program("/usr/sbin/crm_resource");
    require_program("/usr/sbin/cibadmin");
    let b = Backend::start();
    let fe = free_port();
    let lb = Lb::new("crm", &config(fe, &[b.port]));
    let installed = Installed::new();
    let _real = installed.to_system("haproxy");

    let cib = lb.dir.path().join("cib.xml");
    let empty = sh(Command::new("cibadmin").arg("--empty"));
    std::fs::write(&cib, empty).expect("cib");
    let id = format!("hap-crm-{}", std::process::id());
    // As an old configuration has it: `conffile`, the shell agent's name.
    let primitive = format!(
        r#"<primitive id="{id}" class="ocf" provider="cloudha" type="haproxy"><instance_attributes id="{id}-ia"><nvpair id="{id}-cf" name="conffile" value="{}"/><nvpair id="{id}-dt" name="drain_time" value="2"/></instance_attributes></primitive>"#,
        lb.config_path().display()
    );
    sh(Command::new("cibadmin").env("CIB_file", &cib).args([
        "-C",
        "-o",
        "resources",
        "-X",
        &primitive,
    ]));

    let (code, out) = crm_resource(&cib, &["--force-check", "-r", &id]);
    assert_eq!(code, 7, "force-check before start: {out}");
    let (code, out) = crm_resource(&cib, &["--force-start", "-r", &id]);
    assert_eq!(code, 0, "force-start: {out}");
    // HAProxy outlived the agent that crm_resource ran, and serves.
    assert!(get(fe, "/", Duration::from_secs(5)).is_ok());
    let instance = format!("/run/resource-agents/cloudha/haproxy-{id}.sock");
    assert!(
        !processes_with(&instance).is_empty(),
        "no HAProxy with {instance}"
    );
    let (code, out) = crm_resource(&cib, &["--force-check", "-r", &id]);
    assert_eq!(code, 0, "force-check while running: {out}");
    let (code, out) = crm_resource(&cib, &["--force-stop", "-r", &id]);
    assert_eq!(code, 0, "force-stop: {out}");
    assert!(
        processes_with(&instance).is_empty(),
        "HAProxy left after force-stop"
    );
    assert!(!Path::new(&instance).exists(), "socket left");
    let (code, out) = crm_resource(&cib, &["--force-check", "-r", &id]);
    assert_eq!(code, 7, "force-check after stop: {out}");
}

#[test]
fn crm_resource_validate_returns_the_agents_code() {
    require_program("/usr/sbin/crm_resource");
    let fe = free_port();
    let lb = Lb::new("crmval", &config(fe, &[free_port()]));
    let installed = Installed::new();
    let _real = installed.to_system("haproxy");
    let validate = |options: &[String]| crm_validate("haproxy", options);
    let config = format!("config={}", lb.config_path().display());
    let (code, out) = validate(std::slice::from_ref(&config));
    assert_eq!(code, 0, "{out}");
    let (code, out) = validate(&["config=relative.cfg".to_string()]);
    assert_eq!(code, 6, "{out}");
    assert!(out.contains("relative.cfg"), "{out}");
    let (code, out) = validate(&[config, "extra_args=-L 'x".to_string()]);
    assert_eq!(code, 6, "{out}");
}
