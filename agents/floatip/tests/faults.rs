//! The fault matrix: every fault the fake cloud can inject × start, stop, monitor, probe and
//! validate-all (OCF_CHECK_LEVEL=10), with the exit code owed and a bound on the time taken:
//! each action must answer before Pacemaker's timeout (4 s here; the agent keeps a 400 ms
//! margin). Rows run in parallel, each against its own fake cloud; every row is checked through
//! `AgentRun::expect` (the code, and exactly one exit reason for a failure), and every kind of
//! fault the fake knows has at least one row.
#![allow(clippy::unwrap_used)] // a test's failure report is its panic

mod common;

use cloudha_tests::fakecloud::{Fault, FaultKind, Scope};
use common::{cloud, hetzner, Cloud, A, B};
use std::collections::BTreeSet;
use std::time::Duration;

const TIMEOUT_MS: &str = "4000";
const TIMEOUT: Duration = Duration::from_millis(4000);
const ACTIONS: [&str; 5] = ["start", "stop", "monitor", "probe", "validate-all"];

/// A fault: how to inject it into a cloud whose node 0 may already have started.
struct Case {
    name: &'static str,
    /// Injected into the fake (after the fault-free start).
    faults: Vec<Fault>,
    /// Any other change to the cloud (after the fault-free start).
    setup: fn(&Cloud),
    /// Extra variables for the agent under test.
    vars: &'static [(&'static str, &'static str)],
    /// Expected codes for ACTIONS, in order.
    expect: [i32; 5],
}

fn case(name: &'static str, faults: Vec<Fault>, expect: [i32; 5]) -> Case {
    Case {
        name,
        faults,
        setup: |_| {},
        vars: &[],
        expect,
    }
}

/// Every kind of fault the fake injects, by name. The match stops compiling when the fake learns
/// a new kind: name it here and in `KINDS`, and give it rows.
fn kind(k: &FaultKind) -> &'static str {
    match k {
        FaultKind::Delay(_) => "delay",
        FaultKind::Status(_) => "status",
        FaultKind::Reset => "reset",
        FaultKind::Hang => "hang",
        FaultKind::Outage => "outage",
        FaultKind::RateLimited { .. } => "rate_limited",
        FaultKind::Garbled => "garbled",
        FaultKind::Truncated => "truncated",
        FaultKind::ActionErrored => "action_errored",
        FaultKind::ProxyStatus(_) => "proxy_status",
        FaultKind::OtherIp => "other_ip",
    }
}
const KINDS: [&str; 11] = [
    "delay",
    "status",
    "reset",
    "hang",
    "outage",
    "rate_limited",
    "garbled",
    "truncated",
    "action_errored",
    "proxy_status",
    "other_ip",
];

fn cases() -> Vec<Case> {
    let api = Scope::Api;
    let md = Scope::Metadata;
    vec![
        case("no fault", vec![], [0, 0, 0, 0, 0]),
        case(
            "API 503 always",
            vec![Fault::status(api.clone(), 503)],
            [1, 0, 0, 0, 1],
        ),
        case(
            "API 500 twice",
            vec![Fault::status(api.clone(), 500).times(2)],
            [0, 0, 0, 0, 0],
        ),
        case(
            "API resets connections",
            vec![Fault::reset(api.clone())],
            [1, 0, 0, 0, 1],
        ),
        case(
            "API resets twice",
            vec![Fault::reset(api.clone()).times(2)],
            [0, 0, 0, 0, 0],
        ),
        case("API hangs", vec![Fault::hang(api.clone())], [1, 0, 0, 0, 1]),
        case(
            "API down",
            vec![Fault::outage(api.clone())],
            [1, 0, 0, 0, 1],
        ),
        case(
            "API slow (150 ms a request)",
            vec![Fault::delay(api.clone(), Duration::from_millis(150))],
            [0, 0, 0, 0, 0],
        ),
        case(
            "API garbled (HTML 200)",
            vec![Fault::garbled(api.clone())],
            [1, 0, 0, 0, 1],
        ),
        case(
            "API garbled twice",
            vec![Fault::garbled(api.clone()).times(2)],
            [0, 0, 0, 0, 0],
        ),
        case(
            "API truncated",
            vec![Fault::truncated(api.clone())],
            [1, 0, 0, 0, 1],
        ),
        case(
            "API truncated twice",
            vec![Fault::truncated(api.clone()).times(2)],
            [0, 0, 0, 0, 0],
        ),
        // A proxy in front of the API answers 401/404 with its own HTML page: not the cloud's
        // word on the token or the address, so never 6 (a ban everywhere).
        case(
            "proxy's HTML 401 always",
            vec![Fault::proxy_status(api.clone(), 401)],
            [1, 0, 0, 0, 1],
        ),
        case(
            "proxy's HTML 401 twice",
            vec![Fault::proxy_status(api.clone(), 401).times(2)],
            [0, 0, 0, 0, 0],
        ),
        case(
            "proxy's HTML 404 always",
            vec![Fault::proxy_status(api.clone(), 404)],
            [1, 0, 0, 0, 1],
        ),
        case(
            "proxy's HTML 404 twice",
            vec![Fault::proxy_status(api.clone(), 404).times(2)],
            [0, 0, 0, 0, 0],
        ),
        case(
            "proxy's HTML 404 on the metadata service",
            vec![Fault::proxy_status(md.clone(), 404)],
            [1, 0, 1, 1, 0],
        ),
        // A well-formed answer about another address is garbled, never "it points here".
        case(
            "API answers for another address",
            vec![Fault::other_ip()],
            [1, 0, 0, 0, 1],
        ),
        case(
            "API answers for another address twice",
            vec![Fault::other_ip().times(2)],
            [0, 0, 0, 0, 0],
        ),
        case(
            "429 once, retry-after 1",
            vec![Fault::rate_limited(1).times(1)],
            [0, 0, 0, 0, 0],
        ),
        case(
            "429 always, retry-after 60",
            vec![Fault::rate_limited(60)],
            [1, 0, 0, 0, 1],
        ),
        case(
            "422 pending twice on assign",
            vec![Fault::status(api.clone(), 422).times(2).method("POST")],
            [0, 0, 0, 0, 0],
        ),
        Case {
            setup: |c| c.fake.revoke_token(common::TOKEN),
            ..case("token revoked (401)", vec![], [6, 0, 0, 0, 6])
        },
        Case {
            vars: &[("OCF_RESKEY_ip", "203.0.113.77")],
            // The record is for another address: monitor and probe say "not here".
            ..case("IP not in the account (404)", vec![], [6, 0, 7, 7, 6])
        },
        case(
            "assign action errors",
            vec![Fault::action_errored().times(1)],
            [1, 0, 0, 0, 0],
        ),
        Case {
            setup: |c| c.fake.set_action_time(Duration::from_secs(10)),
            ..case(
                "assign action outlasts the timeout",
                vec![],
                [1, 0, 0, 0, 0],
            )
        },
        case(
            "metadata down",
            vec![Fault::outage(md.clone())],
            [1, 0, 1, 1, 0],
        ),
        case(
            "metadata 500 twice",
            vec![Fault::status(md.clone(), 500).times(2)],
            [0, 0, 0, 0, 0],
        ),
        case(
            "metadata hangs",
            vec![Fault::hang(md.clone())],
            [1, 0, 1, 1, 0],
        ),
        case(
            "metadata garbled (HTML 200)",
            vec![Fault::garbled(md.clone())],
            [1, 0, 1, 1, 0],
        ),
        case(
            "metadata garbled twice",
            vec![Fault::garbled(md.clone()).times(2)],
            [0, 0, 0, 0, 0],
        ),
        case(
            "metadata truncated",
            vec![Fault::truncated(md.clone())],
            [1, 0, 1, 1, 0],
        ),
        Case {
            setup: |c| c.fake.set_metadata_lag(Duration::from_secs(30)),
            ..case("metadata lags 30 s", vec![], [0, 0, 0, 0, 0])
        },
        case(
            "everything down",
            vec![Fault::outage(Scope::All)],
            [1, 0, 1, 1, 1],
        ),
    ]
}

/// Hetzner's rows: the same faults, where a monitor with a record reads the API (one read of
/// the IP by id), never the metadata service (which cannot tell), and an action pending on the
/// IP answers 423 or 409. An API that fails a monitor's read is 1, never 7.
fn hetzner_cases() -> Vec<Case> {
    let api = Scope::Api;
    let md = Scope::Metadata;
    vec![
        case("no fault", vec![], [0, 0, 0, 0, 0]),
        case(
            "API 503 always",
            vec![Fault::status(api.clone(), 503)],
            [1, 0, 1, 1, 1],
        ),
        case(
            "API 500 twice",
            vec![Fault::status(api.clone(), 500).times(2)],
            [0, 0, 0, 0, 0],
        ),
        case(
            "API resets connections",
            vec![Fault::reset(api.clone())],
            [1, 0, 1, 1, 1],
        ),
        case(
            "API resets twice",
            vec![Fault::reset(api.clone()).times(2)],
            [0, 0, 0, 0, 0],
        ),
        case("API hangs", vec![Fault::hang(api.clone())], [1, 0, 1, 1, 1]),
        case(
            "API down",
            vec![Fault::outage(api.clone())],
            [1, 0, 1, 1, 1],
        ),
        case(
            "API slow (150 ms a request)",
            vec![Fault::delay(api.clone(), Duration::from_millis(150))],
            [0, 0, 0, 0, 0],
        ),
        case(
            "API garbled (HTML 200)",
            vec![Fault::garbled(api.clone())],
            [1, 0, 1, 1, 1],
        ),
        case(
            "API garbled twice",
            vec![Fault::garbled(api.clone()).times(2)],
            [0, 0, 0, 0, 0],
        ),
        case(
            "API truncated",
            vec![Fault::truncated(api.clone())],
            [1, 0, 1, 1, 1],
        ),
        case(
            "API truncated twice",
            vec![Fault::truncated(api.clone()).times(2)],
            [0, 0, 0, 0, 0],
        ),
        case(
            "proxy's HTML 401 always",
            vec![Fault::proxy_status(api.clone(), 401)],
            [1, 0, 1, 1, 1],
        ),
        case(
            "proxy's HTML 401 twice",
            vec![Fault::proxy_status(api.clone(), 401).times(2)],
            [0, 0, 0, 0, 0],
        ),
        case(
            "proxy's HTML 404 always",
            vec![Fault::proxy_status(api.clone(), 404)],
            [1, 0, 1, 1, 1],
        ),
        case(
            "proxy's HTML 404 twice",
            vec![Fault::proxy_status(api.clone(), 404).times(2)],
            [0, 0, 0, 0, 0],
        ),
        // Only start reads the metadata service (this server's id).
        case(
            "proxy's HTML 404 on the metadata service",
            vec![Fault::proxy_status(md.clone(), 404)],
            [1, 0, 0, 0, 0],
        ),
        // Reads by id answer about another address; the listing (validate-all) is not touched.
        case(
            "API answers for another address",
            vec![Fault::other_ip()],
            [1, 0, 1, 1, 0],
        ),
        case(
            "API answers for another address twice",
            vec![Fault::other_ip().times(2)],
            [0, 0, 0, 0, 0],
        ),
        case(
            "429 once, reset in 1 s",
            vec![Fault::rate_limited(1).times(1)],
            [0, 0, 0, 0, 0],
        ),
        case(
            "429 always, reset in 60 s",
            vec![Fault::rate_limited(60)],
            [1, 0, 1, 1, 1],
        ),
        case(
            "423 locked twice on assign",
            vec![Fault::status(api.clone(), 423).times(2).method("POST")],
            [0, 0, 0, 0, 0],
        ),
        case(
            "409 conflict twice on assign",
            vec![Fault::status(api.clone(), 409).times(2).method("POST")],
            [0, 0, 0, 0, 0],
        ),
        case(
            "409 conflict twice on reads",
            vec![Fault::status(api.clone(), 409).times(2).method("GET")],
            [0, 0, 0, 0, 0],
        ),
        case(
            "423 locked always on assign",
            vec![Fault::status(api.clone(), 423).method("POST")],
            [1, 0, 0, 0, 0],
        ),
        Case {
            setup: |c| c.fake.revoke_token(common::TOKEN),
            ..case("token revoked (401)", vec![], [6, 0, 6, 6, 6])
        },
        Case {
            vars: &[("OCF_RESKEY_ip", "203.0.113.77")],
            // Not on any page: 6. The record is for another address: "not here".
            ..case("IP not in the account (listed)", vec![], [6, 0, 7, 7, 6])
        },
        case(
            "assign action errors",
            vec![Fault::action_errored().times(1)],
            [1, 0, 0, 0, 0],
        ),
        Case {
            setup: |c| c.fake.set_action_time(Duration::from_secs(10)),
            ..case(
                "assign action outlasts the timeout",
                vec![],
                [1, 0, 0, 0, 0],
            )
        },
        case(
            "metadata down",
            vec![Fault::outage(md.clone())],
            [1, 0, 0, 0, 0],
        ),
        case(
            "metadata 500 twice",
            vec![Fault::status(md.clone(), 500).times(2)],
            [0, 0, 0, 0, 0],
        ),
        case(
            "metadata hangs",
            vec![Fault::hang(md.clone())],
            [1, 0, 0, 0, 0],
        ),
        case(
            "metadata garbled (HTML 200)",
            vec![Fault::garbled(md.clone())],
            [1, 0, 0, 0, 0],
        ),
        case(
            "metadata garbled twice",
            vec![Fault::garbled(md.clone()).times(2)],
            [0, 0, 0, 0, 0],
        ),
        case(
            "metadata truncated",
            vec![Fault::truncated(md.clone())],
            [1, 0, 0, 0, 0],
        ),
        case(
            "everything down",
            vec![Fault::outage(Scope::All)],
            [1, 0, 1, 1, 1],
        ),
    ]
}

/// One row: a cloud of its own (`make`), the fault, the action, checked through `expect`.
fn run_case(make: fn(Option<u64>, &[u64]) -> Cloud, case: &Case, action: &str, expect: i32) {
    // Node 0 holds B's IP at first (a failover), so start must move it.
    let c = make(Some(B), &[A]);
    if action != "start" && action != "validate-all" {
        c.run(0, "start", &[])
            .expect(0, "the fault-free start before the fault");
    }
    for f in &case.faults {
        c.fake.inject(f.clone());
    }
    (case.setup)(&c);
    let mut vars: Vec<(&str, &str)> = case.vars.to_vec();
    vars.push(("OCF_RESKEY_CRM_meta_timeout", TIMEOUT_MS));
    let agent_action = match action {
        "probe" => "monitor",
        a => a,
    };
    match action {
        "monitor" => vars.push(("OCF_RESKEY_CRM_meta_interval", "10000")),
        "validate-all" => vars.push(("OCF_CHECK_LEVEL", "10")),
        _ => {}
    }
    let what = format!("{} / {action}", case.name);
    let t = c.run(0, agent_action, &vars);
    println!(
        "{what:<50} -> {} in {:>5} ms  {}",
        t.code,
        t.took.as_millis(),
        t.exit_reason().unwrap_or("")
    );
    t.expect(expect, &what);
    assert!(
        t.took < TIMEOUT,
        "{what}: took {:?}, past the {TIMEOUT:?} timeout",
        t.took
    );
    if case.name == "429 once, retry-after 1" && action == "start" {
        assert!(
            t.took >= Duration::from_secs(1),
            "retry-after 1 was not honoured: {:?}",
            t.took
        );
    }
}

#[test]
fn every_fault_kind_has_a_row() {
    for cases in [cases(), hetzner_cases()] {
        let covered: BTreeSet<&str> = cases
            .iter()
            .flat_map(|c| c.faults.iter().map(|f| kind(&f.kind)))
            .collect();
        let all: BTreeSet<&str> = KINDS.into_iter().collect();
        assert_eq!(
            covered, all,
            "the matrix misses a kind of fault of the fake"
        );
    }
}

#[test]
fn fault_matrix() {
    run_matrix(cloud, cases());
}

#[test]
fn fault_matrix_hetzner() {
    run_matrix(hetzner, hetzner_cases());
}

fn run_matrix(make: fn(Option<u64>, &[u64]) -> Cloud, cases: Vec<Case>) {
    // Only the two configuration faults may ever answer 6.
    for c in &cases {
        if c.expect.contains(&6) {
            assert!(
                c.name.starts_with("token revoked") || c.name.starts_with("IP not in"),
                "{}",
                c.name
            );
        }
    }
    let jobs: Vec<(&Case, &str, i32)> = cases
        .iter()
        .flat_map(|c| ACTIONS.iter().zip(c.expect).map(move |(a, e)| (c, *a, e)))
        .collect();
    let mut failures = Vec::new();
    // A few rows at a time: each has its own fake cloud and agent processes. A row that fails
    // panics in its thread; all rows run, then every failure is reported.
    for chunk in jobs.chunks(12) {
        std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|(case, action, expect)| {
                    let row = format!("{} / {action}", case.name);
                    (row, s.spawn(move || run_case(make, case, action, *expect)))
                })
                .collect();
            for (row, h) in handles {
                if let Err(panic) = h.join() {
                    let why = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    failures.push(format!("{row}: {why}"));
                }
            }
        });
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        jobs.len(),
        failures.join("\n")
    );
}

#[test]
fn stop_and_probe_need_nothing_when_nothing_runs_here() {
    let c = cloud(Some(A), &[A]);
    c.fake.inject(Fault::outage(Scope::All));
    let none = [
        ("OCF_RESKEY_ip", ""),
        ("OCF_RESKEY_api_token", ""),
        ("OCF_RESKEY_api_url", ""),
        ("OCF_RESKEY_metadata_url", ""),
        ("OCF_RESOURCE_INSTANCE", ""),
    ];
    c.run(0, "stop", &none).expect(0, "stop without parameters");
    c.run(0, "monitor", &none)
        .expect(7, "probe without parameters");
    c.run(0, "stop", &[("OCF_RESKEY_api_token", "lrm://")])
        .expect(0, "stop with the cibsecret placeholder");
    c.run(0, "monitor", &[("OCF_RESKEY_api_token", "lrm://")])
        .expect(7, "probe with the cibsecret placeholder");
    // Even the IP pointing here does not make a never-started resource active.
    c.run(0, "monitor", &[])
        .expect(7, "probe with the IP pointing here");
}

#[test]
fn started_then_stopped_with_the_cloud_down() {
    let c = cloud(None, &[A]);
    c.run(0, "start", &[]).expect(0, "start");
    c.fake.inject(Fault::outage(Scope::All));
    c.run(0, "stop", &[("OCF_RESKEY_api_token", "lrm://")])
        .expect(0, "stop with the cloud down and the token a placeholder");
    c.run(0, "monitor", &[]).expect(7, "probe after that stop");
}

#[test]
fn garbled_metadata_never_reads_as_running() {
    let c = cloud(None, &[A]);
    c.run(0, "start", &[]).expect(0, "start");
    // A proxy's HTML page, with 200, on every metadata path.
    c.fake.inject(Fault::garbled(Scope::Metadata));
    let vars = [("OCF_RESKEY_CRM_meta_timeout", TIMEOUT_MS)];
    let mut recurring = vars.to_vec();
    recurring.push(("OCF_RESKEY_CRM_meta_interval", "10000"));
    for (what, vars) in [("monitor", &recurring[..]), ("probe", &vars[..])] {
        let t = c.run(0, "monitor", vars);
        t.expect(1, what)
            .reason(predicates::str::contains("garbled"));
        assert!(t.took < TIMEOUT, "{what} took {:?}", t.took);
    }
    c.run(0, "start", &vars)
        .expect(1, "start with a garbled droplet id");
    c.run(0, "stop", &vars).expect(0, "stop");
}
