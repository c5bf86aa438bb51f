//! The fault matrix: every fault the fake cloud can inject × start, stop, monitor, probe and
//! validate-all (OCF_CHECK_LEVEL=10), with the exit code owed and a bound on the time taken:
//! each action must answer before Pacemaker's timeout (4 s here; the agent keeps a 400 ms
//! margin). Rows run in parallel, each against its own fake cloud; every row is checked through
//! `AgentRun::expect` (the code, and exactly one exit reason for a failure), and every kind of
//! fault the fake knows has at least one row.
#![allow(clippy::unwrap_used)] // a test's failure report is its panic

mod common;

use cloudha_tests::fakecloud::{Fault, FaultKind, Scope};
use common::{cloud, exoscale, hetzner, vultr, Cloud, A, B};
use std::collections::BTreeSet;
use std::time::Duration;

const TIMEOUT_MS: &str = "4000";
const TIMEOUT: Duration = Duration::from_millis(4000);
const ACTIONS: [&str; 5] = ["start", "stop", "monitor", "probe", "validate-all"];

/// A fault: how to inject it into a cloud whose node 0 may already have started, and the codes
/// each provider owes for ACTIONS (None: a fault of the other clouds' APIs only). A monitor with
/// a record reads DigitalOcean's metadata service, but Hetzner's and Exoscale's API (their
/// metadata cannot tell), so the same fault owes different codes. Exoscale's changes are PUTs
/// (attach, detach), and none of its paths reads one IP by address or number, so `other_ip`
/// never fires there. Vultr's detach and attach are POSTs answered 204 with nothing to poll: a
/// change the platform drops (`action_errored`) is seen as not done yet and made again.
struct Case {
    name: &'static str,
    /// Injected into the fake (after the fault-free start).
    faults: Vec<Fault>,
    /// Any other change to the cloud (after the fault-free start).
    setup: fn(&Cloud),
    /// Extra variables for the agent under test.
    vars: &'static [(&'static str, &'static str)],
    digitalocean: Option<[i32; 5]>,
    hetzner: Option<[i32; 5]>,
    vultr: Option<[i32; 5]>,
    exoscale: Option<[i32; 5]>,
}

fn row(
    name: &'static str,
    faults: Vec<Fault>,
    digitalocean: Option<[i32; 5]>,
    hetzner: Option<[i32; 5]>,
    vultr: Option<[i32; 5]>,
    exoscale: Option<[i32; 5]>,
) -> Case {
    Case {
        name,
        faults,
        setup: |_| {},
        vars: &[],
        digitalocean,
        hetzner,
        vultr,
        exoscale,
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
        row(
            "no fault",
            vec![],
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
        ),
        row(
            "API 503 always",
            vec![Fault::status(api.clone(), 503)],
            Some([1, 0, 0, 0, 1]),
            Some([1, 0, 1, 1, 1]),
            Some([1, 0, 1, 1, 1]),
            Some([1, 0, 1, 1, 1]),
        ),
        row(
            "API 500 twice",
            vec![Fault::status(api.clone(), 500).times(2)],
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
        ),
        row(
            "API resets connections",
            vec![Fault::reset(api.clone())],
            Some([1, 0, 0, 0, 1]),
            Some([1, 0, 1, 1, 1]),
            Some([1, 0, 1, 1, 1]),
            Some([1, 0, 1, 1, 1]),
        ),
        row(
            "API resets twice",
            vec![Fault::reset(api.clone()).times(2)],
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
        ),
        row(
            "API hangs",
            vec![Fault::hang(api.clone())],
            Some([1, 0, 0, 0, 1]),
            Some([1, 0, 1, 1, 1]),
            Some([1, 0, 1, 1, 1]),
            Some([1, 0, 1, 1, 1]),
        ),
        row(
            "API down",
            vec![Fault::outage(api.clone())],
            Some([1, 0, 0, 0, 1]),
            Some([1, 0, 1, 1, 1]),
            Some([1, 0, 1, 1, 1]),
            Some([1, 0, 1, 1, 1]),
        ),
        row(
            "API slow (150 ms a request)",
            vec![Fault::delay(api.clone(), Duration::from_millis(150))],
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
        ),
        row(
            "API garbled (HTML 200)",
            vec![Fault::garbled(api.clone())],
            Some([1, 0, 0, 0, 1]),
            Some([1, 0, 1, 1, 1]),
            Some([1, 0, 1, 1, 1]),
            Some([1, 0, 1, 1, 1]),
        ),
        row(
            "API garbled twice",
            vec![Fault::garbled(api.clone()).times(2)],
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
        ),
        row(
            "API truncated",
            vec![Fault::truncated(api.clone())],
            Some([1, 0, 0, 0, 1]),
            Some([1, 0, 1, 1, 1]),
            Some([1, 0, 1, 1, 1]),
            Some([1, 0, 1, 1, 1]),
        ),
        row(
            "API truncated twice",
            vec![Fault::truncated(api.clone()).times(2)],
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
        ),
        row(
            "proxy's HTML 401 always",
            vec![Fault::proxy_status(api.clone(), 401)],
            Some([1, 0, 0, 0, 1]),
            Some([1, 0, 1, 1, 1]),
            Some([1, 0, 1, 1, 1]),
            Some([1, 0, 1, 1, 1]),
        ),
        row(
            "proxy's HTML 401 twice",
            vec![Fault::proxy_status(api.clone(), 401).times(2)],
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
        ),
        row(
            "proxy's HTML 404 always",
            vec![Fault::proxy_status(api.clone(), 404)],
            Some([1, 0, 0, 0, 1]),
            Some([1, 0, 1, 1, 1]),
            Some([1, 0, 1, 1, 1]),
            Some([1, 0, 1, 1, 1]),
        ),
        row(
            "proxy's HTML 404 twice",
            vec![Fault::proxy_status(api.clone(), 404).times(2)],
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
        ),
        row(
            "proxy's HTML 404 on the metadata service",
            vec![Fault::proxy_status(md.clone(), 404)],
            Some([1, 0, 1, 1, 0]),
            Some([1, 0, 0, 0, 0]),
            Some([1, 0, 0, 0, 0]),
            Some([1, 0, 0, 0, 0]),
        ),
        row(
            "API answers for another address",
            vec![Fault::other_ip()],
            Some([1, 0, 0, 0, 1]),
            Some([1, 0, 1, 1, 0]),
            Some([1, 0, 1, 1, 0]),
            Some([0, 0, 0, 0, 0]),
        ),
        row(
            "API answers for another address twice",
            vec![Fault::other_ip().times(2)],
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
        ),
        row(
            "429 once, retry-after 1",
            vec![Fault::rate_limited(1).times(1)],
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
        ),
        row(
            "429 always, retry-after 60",
            vec![Fault::rate_limited(60)],
            Some([1, 0, 0, 0, 1]),
            Some([1, 0, 1, 1, 1]),
            Some([1, 0, 1, 1, 1]),
            Some([1, 0, 1, 1, 1]),
        ),
        row(
            "422 pending twice on assign",
            vec![Fault::status(api.clone(), 422).times(2).method("POST")],
            Some([0, 0, 0, 0, 0]),
            None,
            None,
            None,
        ),
        row(
            "423 locked twice on assign",
            vec![Fault::status(api.clone(), 423).times(2).method("POST")],
            None,
            Some([0, 0, 0, 0, 0]),
            None,
            None,
        ),
        row(
            "409 conflict twice on assign",
            vec![Fault::status(api.clone(), 409).times(2).method("POST")],
            None,
            Some([0, 0, 0, 0, 0]),
            None,
            None,
        ),
        row(
            "409 conflict twice on reads",
            vec![Fault::status(api.clone(), 409).times(2).method("GET")],
            None,
            Some([0, 0, 0, 0, 0]),
            None,
            Some([0, 0, 0, 0, 0]),
        ),
        row(
            "423 locked twice on attach or detach",
            vec![Fault::status(api.clone(), 423).times(2).method("PUT")],
            None,
            None,
            None,
            Some([0, 0, 0, 0, 0]),
        ),
        row(
            "409 conflict twice on attach or detach",
            vec![Fault::status(api.clone(), 409).times(2).method("PUT")],
            None,
            None,
            None,
            Some([0, 0, 0, 0, 0]),
        ),
        row(
            "503 always on attach and detach",
            vec![Fault::status(api.clone(), 503).method("PUT")],
            None,
            None,
            None,
            Some([1, 0, 0, 0, 0]),
        ),
        row(
            "423 locked always on assign",
            vec![Fault::status(api.clone(), 423).method("POST")],
            None,
            Some([1, 0, 0, 0, 0]),
            None,
            None,
        ),
        row(
            "503 always on detach and attach",
            vec![Fault::status(api.clone(), 503).method("POST")],
            None,
            None,
            Some([1, 0, 0, 0, 0]),
            None,
        ),
        Case {
            // Vultr: the attach meets the detach still in flight, is refused, and is retried.
            setup: |c| c.fake.set_action_time(Duration::from_millis(500)),
            ..row(
                "changes in flight for 0.5 s",
                vec![],
                None,
                None,
                Some([0, 0, 0, 0, 0]),
                None,
            )
        },
        Case {
            setup: |c| {
                c.fake.revoke_token(common::TOKEN);
                c.fake.revoke_api_key(common::EXO_KEY);
            },
            ..row(
                "token revoked (401)",
                vec![],
                Some([6, 0, 0, 0, 6]),
                Some([6, 0, 6, 6, 6]),
                Some([6, 0, 6, 6, 6]),
                Some([6, 0, 6, 6, 6]),
            )
        },
        Case {
            vars: &[("OCF_RESKEY_ip", "203.0.113.77")],
            ..row(
                "IP not in the account (404)",
                vec![],
                Some([6, 0, 7, 7, 6]),
                Some([6, 0, 7, 7, 6]),
                Some([6, 0, 7, 7, 6]),
                Some([6, 0, 7, 7, 6]),
            )
        },
        row(
            "assign action errors",
            vec![Fault::action_errored().times(1)],
            Some([1, 0, 0, 0, 0]),
            Some([1, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
            Some([1, 0, 0, 0, 0]),
        ),
        Case {
            setup: |c| c.fake.set_action_time(Duration::from_secs(10)),
            ..row(
                "assign action outlasts the timeout",
                vec![],
                Some([1, 0, 0, 0, 0]),
                Some([1, 0, 0, 0, 0]),
                Some([1, 0, 0, 0, 0]),
                Some([1, 0, 0, 0, 0]),
            )
        },
        row(
            "metadata down",
            vec![Fault::outage(md.clone())],
            Some([1, 0, 1, 1, 0]),
            Some([1, 0, 0, 0, 0]),
            Some([1, 0, 0, 0, 0]),
            Some([1, 0, 0, 0, 0]),
        ),
        row(
            "metadata 500 twice",
            vec![Fault::status(md.clone(), 500).times(2)],
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
        ),
        row(
            "metadata hangs",
            vec![Fault::hang(md.clone())],
            Some([1, 0, 1, 1, 0]),
            Some([1, 0, 0, 0, 0]),
            Some([1, 0, 0, 0, 0]),
            Some([1, 0, 0, 0, 0]),
        ),
        row(
            "metadata garbled (HTML 200)",
            vec![Fault::garbled(md.clone())],
            Some([1, 0, 1, 1, 0]),
            Some([1, 0, 0, 0, 0]),
            Some([1, 0, 0, 0, 0]),
            Some([1, 0, 0, 0, 0]),
        ),
        row(
            "metadata garbled twice",
            vec![Fault::garbled(md.clone()).times(2)],
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
            Some([0, 0, 0, 0, 0]),
        ),
        row(
            "metadata truncated",
            vec![Fault::truncated(md.clone())],
            Some([1, 0, 1, 1, 0]),
            Some([1, 0, 0, 0, 0]),
            Some([1, 0, 0, 0, 0]),
            Some([1, 0, 0, 0, 0]),
        ),
        Case {
            setup: |c| c.fake.set_metadata_lag(Duration::from_secs(30)),
            ..row(
                "metadata lags 30 s",
                vec![],
                Some([0, 0, 0, 0, 0]),
                None,
                None,
                None,
            )
        },
        row(
            "everything down",
            vec![Fault::outage(Scope::All)],
            Some([1, 0, 1, 1, 1]),
            Some([1, 0, 1, 1, 1]),
            Some([1, 0, 1, 1, 1]),
            Some([1, 0, 1, 1, 1]),
        ),
    ]
}

/// One row: a cloud of its own (`make`), the fault, the action, checked through `expect`.
/// `retry_after`: the start must wait out the fake's `retry-after` (DigitalOcean's header).
fn run_case(
    make: fn(Option<u64>, &[u64]) -> Cloud,
    retry_after: bool,
    case: &Case,
    action: &str,
    expect: i32,
) {
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
    if case.name == "429 once, retry-after 1" && action == "start" && retry_after {
        assert!(
            t.took >= Duration::from_secs(1),
            "retry-after 1 was not honoured: {:?}",
            t.took
        );
    }
}

#[test]
fn every_fault_kind_has_a_row() {
    for owed in [
        |c: &Case| c.digitalocean,
        |c: &Case| c.hetzner,
        |c: &Case| c.vultr,
        |c: &Case| c.exoscale,
    ] {
        let covered: BTreeSet<&str> = cases()
            .iter()
            .filter(|c| owed(c).is_some())
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
    run_matrix(cloud, true, |c| c.digitalocean);
}

#[test]
fn fault_matrix_hetzner() {
    run_matrix(hetzner, false, |c| c.hetzner);
}

#[test]
fn fault_matrix_vultr() {
    // Vultr documents no rate-limit header: its 429 is waited out by the agent's own backoff.
    run_matrix(vultr, false, |c| c.vultr);
}

#[test]
fn fault_matrix_exoscale() {
    // Exoscale's 429 carries `retry_after` in its body: honoured as DigitalOcean's header is.
    run_matrix(exoscale, true, |c| c.exoscale);
}

fn run_matrix(
    make: fn(Option<u64>, &[u64]) -> Cloud,
    retry_after: bool,
    owed: fn(&Case) -> Option<[i32; 5]>,
) {
    let cases = cases();
    // Only the two configuration faults may ever answer 6.
    for c in &cases {
        if owed(c).is_some_and(|e| e.contains(&6)) {
            assert!(
                c.name.starts_with("token revoked") || c.name.starts_with("IP not in"),
                "{}",
                c.name
            );
        }
    }
    let jobs: Vec<(&Case, &str, i32)> = cases
        .iter()
        .filter_map(|c| owed(c).map(|e| (c, e)))
        .flat_map(|(c, e)| ACTIONS.iter().zip(e).map(move |(a, e)| (c, *a, e)))
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
                    (
                        row,
                        s.spawn(move || run_case(make, retry_after, case, action, *expect)),
                    )
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
