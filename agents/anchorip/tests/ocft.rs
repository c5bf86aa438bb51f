//! resource-agents' own IPaddr2 test suites, IPaddr2v4 and IPaddr2v6, run by their own tool
//! (`ocft`) against the installed anchorip, as a new user would try it: the configurations in
//! tests/ocft/ differ from /usr/share/resource-agents/ocft/configs/IPaddr2v{4,6} only in `Agent`
//! and `AgentRoot`. Each runs inside a network namespace with two veth interfaces, eth0 and eth1.
//!
//! ocft compiles a configuration into case scripts under /var/lib/resource-agents/ocft/cases (a
//! fixed, global directory), then runs them there: `global_lock("ocft")` is held throughout. The
//! agent's state and ocft's run log go to a private HA_RSCTMP.
#![allow(clippy::unwrap_used)] // a test's failure report is its panic

mod support;

use cloudha_tests::{global_lock, output, require_program, workspace_root, Installed, Netns};
use std::path::Path;
use std::process::Command;
use support::StateDir;

/// Where ocft compiles its cases and keeps its logs (fixed in /usr/sbin/ocft).
const CASES: &str = "/var/lib/resource-agents/ocft/cases";

/// What happened to one case, from ocft's output.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Every expected return value matched and every check passed.
    Ok,
    /// The agent returned another code than the case expects (`FAILED. ...`).
    Failed(String),
    /// A check of the system, or an action run without an expected code, failed (`ERROR: ...`).
    CheckFailed(String),
}

#[derive(Debug)]
struct Case {
    title: String,
    outcome: Outcome,
}

/// The cases of one `ocft test <suite>` run, in order, parsed from its output.
#[derive(Debug)]
struct Run {
    suite: String,
    cases: Vec<Case>,
    setups_done: usize,
}

impl Run {
    fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.cases.iter().filter(|c| f(&c.outcome)).count()
    }
    fn ok(&self) -> usize {
        self.count(|o| *o == Outcome::Ok)
    }
    fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed(_)))
    }
    fn checks_failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::CheckFailed(_)))
    }
    /// The summary line this test prints and asserts on.
    fn summary(&self) -> String {
        format!(
            "ocft {}: {} cases, {} OK, {} FAILED, {} failed checks",
            self.suite,
            self.cases.len(),
            self.ok(),
            self.failed(),
            self.checks_failed()
        )
    }
}

/// Remove the terminal colours ocft prints (`ESC [ 3 2 m` …).
fn strip_colours(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parse ocft's non-verbose output. Each case starts a line `<suite>: <title> - ` followed by
/// `OK.` for its first expected code, or `FAILED. Agent returns unexpected value: …`, or
/// `ERROR: '<command>' failed, the return code is N.`; later checks of the same case add lines
/// of their own (`OK.`, `FAILED. …`, `ERROR: …`) until the next case or the cleanup.
fn parse(suite: &str, text: &str) -> Run {
    let text = strip_colours(text);
    let prefix = format!("{suite}: ");
    let mut cases: Vec<(String, Vec<String>)> = Vec::new();
    let mut setups_done = 0;
    let mut in_cases = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(&prefix) {
            let (title, first) = rest.split_once(" - ").unwrap_or((rest, ""));
            cases.push((title.to_string(), vec![first.to_string()]));
            in_cases = true;
        } else if line.starts_with("Cleaning '") || line.starts_with("Initializing '") {
            in_cases = false;
        } else if line == "Done." {
            setups_done += 1;
        } else if in_cases {
            if let Some((_, lines)) = cases.last_mut() {
                lines.push(line.to_string());
            }
        }
    }
    let cases = cases
        .into_iter()
        .map(|(title, lines)| {
            let failed = lines.iter().find(|l| l.starts_with("FAILED."));
            let error = lines.iter().find(|l| l.contains("ERROR:"));
            let oks = lines.iter().filter(|l| l.as_str() == "OK.").count();
            let outcome = match (failed, error) {
                (Some(f), _) => Outcome::Failed(f.clone()),
                (None, Some(e)) => Outcome::CheckFailed(e.clone()),
                (None, None) if oks > 0 || lines.iter().all(|l| l.is_empty()) => Outcome::Ok,
                (None, None) => Outcome::CheckFailed(format!("unrecognised: {lines:?}")),
            };
            Case { title, outcome }
        })
        .collect();
    Run {
        suite: suite.to_string(),
        cases,
        setups_done,
    }
}

/// The number of `CASE "…"` statements in a configuration: what a complete run reports.
fn cases_in(config: &str) -> usize {
    config.lines().filter(|l| l.starts_with("CASE \"")).count()
}

/// Compile and run one suite of tests/ocft/ against an installed copy of this build.
fn run_suite(suite: &str) -> (Run, usize, i32, String) {
    require_program("/usr/sbin/ocft");
    let installed = Installed::new();
    let agent = installed.agent("cloudha", "anchorip");
    let agent_root = agent.parent().expect("agent directory");

    let original = std::fs::read_to_string(workspace_root().join("tests/ocft").join(suite))
        .unwrap_or_else(|e| panic!("tests/ocft/{suite}: {e}"));
    let root_line = "\tAgentRoot /usr/lib/ocf/resource.d/cloudha\n";
    assert!(original.contains(root_line), "{suite}: no '{root_line}'");
    let config = original.replace(
        root_line,
        &format!("\tAgentRoot {}\n", agent_root.display()),
    );
    let configs = StateDir::new();
    std::fs::write(configs.path().join(suite), &config).expect("write the configuration");
    let rsctmp = StateDir::new();

    let ns = Netns::new("ocft");
    ns.add_veth("eth0", "peer0");
    ns.add_veth("eth1", "peer1");

    let _lock = global_lock("ocft");
    let ocft = |args: &[&str], ns: Option<&Netns>| {
        let mut c = match ns {
            Some(ns) => ns.command("/usr/sbin/ocft"),
            None => Command::new("/usr/sbin/ocft"),
        };
        c.args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HA_RSCTMP", rsctmp.path());
        output(&mut c)
    };
    // Case scripts of an earlier run of this suite would be reused if newer than the config;
    // ocft appends to the suite's log: let it hold this run only.
    let (code, out) = ocft(&["clean", suite], None);
    assert_eq!(code, 0, "ocft clean {suite}: {out}");
    let _ = std::fs::remove_file(Path::new(CASES).join("logs").join(format!("{suite}.log")));
    let dir = configs.path().display().to_string();
    let (code, out) = ocft(&["make", "-d", &dir, suite], None);
    assert_eq!(code, 0, "ocft make {suite}: {out}");
    assert!(out.contains(&format!("Making '{suite}'")), "{out}");
    let (code, out) = ocft(&["test", suite], Some(&ns));
    // The case scripts go; logs/<suite>.log stays for a look after a failure.
    let _ = ocft(&["clean", suite], None);
    let run = parse(suite, &out);
    (run, cases_in(&config), code, out)
}

fn check_suite(suite: &str) {
    let (run, expected, code, out) = run_suite(suite);
    for case in &run.cases {
        println!("  {}: {} - {:?}", suite, case.title, case.outcome);
    }
    let summary = run.summary();
    println!("{summary} (ocft exit {code})");
    assert_eq!(
        run.cases.len(),
        expected,
        "{summary}: the configuration has {expected} cases\n{out}"
    );
    assert_eq!(run.failed(), 0, "{summary}\n{out}");
    assert_eq!(run.checks_failed(), 0, "{summary}\n{out}");
    assert_eq!(run.ok(), expected, "{summary}\n{out}");
    assert_eq!(
        run.setups_done, 2,
        "{summary}: setup and cleanup should each end with 'Done.'\n{out}"
    );
    assert_eq!(code, 0, "{summary}: ocft test exited {code}\n{out}");
}

#[test]
fn ipaddr2v4_suite_passes() {
    check_suite("anchorip-IPaddr2v4");
}

#[test]
fn ipaddr2v6_suite_passes() {
    check_suite("anchorip-IPaddr2v6");
}

#[test]
fn the_parser_sees_failures() {
    // Output of IPaddr2 4.12 itself under its v6 suite (abridged), colours included.
    let text = "Initializing 'IPaddr2' ...\nDone.\n\n\
        X: normal start - \u{1b}[32mOK\u{1b}[0m.\n\
        X: normal stop - \u{1b}[32mOK\u{1b}[0m.\n\u{1b}[32mOK\u{1b}[0m.\n\
        X: params with force cidr_netmask - \u{1b}[31mFAILED\u{1b}[0m. Agent returns unexpected value: 'OCF_SUCCESS'. See details below:\n\
        cat: /tmp/.ocft_runlog: No such file or directory\n\n\
        X: params with nic - \u{1b}[32mOK\u{1b}[0m.\n\
        ERROR: 'ip -6 -o addr show eth0 | grep -w fe80::2/64 >/dev/null # checking if the IPv6 address was assigned correctly' failed, the return code is 1.\n\
        X: wrong ip - ERROR: './anchorip start' failed, the return code is 1.\n\
        X: double stop - \u{1b}[32mOK\u{1b}[0m.\n\
        Cleaning 'IPaddr2' ...\nDone.\n";
    let run = parse("X", text);
    assert_eq!(run.cases.len(), 6, "{run:?}");
    assert_eq!(run.ok(), 3, "{run:?}");
    assert_eq!(run.failed(), 1, "{run:?}");
    assert_eq!(run.checks_failed(), 2, "{run:?}");
    assert_eq!(run.setups_done, 2);
    assert_eq!(run.cases[2].title, "params with force cidr_netmask");
    assert!(
        matches!(&run.cases[3].outcome, Outcome::CheckFailed(e) if e.contains("assigned correctly"))
    );
    assert_eq!(
        run.summary(),
        "ocft X: 6 cases, 3 OK, 1 FAILED, 2 failed checks"
    );
    assert_eq!(
        cases_in("CASE \"a\"\n\tInclude x\nCASE \"b\"\n# CASE \"c\"\n"),
        2
    );
}
