//! The example agent (common/examples/dummy.rs), the model a new agent is copied from, keeps the
//! contract: ocf-tester passes it, and the one test helper's checks hold for each of its answers.

use cloudha_tests::{bin_dir, require_program, run_agent, run_agent_args};
use std::path::PathBuf;
use std::process::Command;

fn dummy() -> PathBuf {
    let p = bin_dir().join("examples/dummy");
    assert!(
        p.is_file(),
        "{} is missing: `cargo build -p cloudha-common --example dummy` (cargo test builds it)",
        p.display()
    );
    p
}

#[test]
fn ocf_tester_passes_the_example() {
    require_program("/usr/sbin/ocf-tester");
    let state = tempfile::tempdir().unwrap();
    let out = Command::new("/usr/sbin/ocf-tester")
        .args(["-n", "example", "-o", "fake=word"])
        .arg(dummy())
        .env("HA_RSCTMP", state.path())
        .output()
        .expect("ocf-tester");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("passed all tests"),
        "{text}"
    );
}

#[test]
fn each_answer_keeps_the_contract() {
    let state = tempfile::tempdir().unwrap();
    let rsctmp = state.path().display().to_string();
    let vars = [
        ("HA_RSCTMP", rsctmp.as_str()),
        ("OCF_RESOURCE_INSTANCE", "example"),
    ];
    let run = |action: &str| run_agent(&dummy(), action, &vars, None);
    run("monitor").expect(7, "probe before start");
    run("stop").expect(0, "stop before start");
    run("start").expect(0, "start");
    run("monitor").expect(0, "monitor after start");
    run("notify").expect(0, "notify");
    run("stop").expect(0, "stop");
    run("monitor").expect(7, "monitor after stop");
    run("promote").expect(3, "an action it does not have");
    let blank = [("HA_RSCTMP", rsctmp.as_str()), ("OCF_RESKEY_fake", " ")];
    run_agent(&dummy(), "validate-all", &blank, None)
        .expect(6, "a blank word")
        .reason(predicates::str::starts_with("parameter 'fake'"));
    run_agent_args(&dummy(), &[], &vars, None)
        .expect(3, "no action")
        .reason(predicates::str::contains("no action given"));
    run_agent_args(&dummy(), &["start", "extra"], &vars, None).expect(2, "an extra argument");
    run_agent_args(&dummy(), &["--timeout", "-1", "start"], &vars, None)
        .expect(6, "a bad flag value");
}
