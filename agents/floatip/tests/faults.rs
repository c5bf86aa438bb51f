//! The fault matrix: every fault the fake cloud can inject × start, stop, monitor, probe and
//! validate-all (OCF_CHECK_LEVEL=10), with the exit code owed and a bound on the time taken:
//! each action must answer before Pacemaker's timeout (4 s here; the agent keeps a 400 ms
//! margin). Rows run in parallel, each against its own fake cloud.

mod common;

use cloudha_tests::fakecloud::{Fault, Scope};
use common::{cloud, Cloud, A, B};
use std::time::Duration;

const TIMEOUT_MS: &str = "4000";
const TIMEOUT: Duration = Duration::from_millis(4000);
const ACTIONS: [&str; 5] = ["start", "stop", "monitor", "probe", "validate-all"];

/// A fault: how to inject it into a cloud whose node 0 may already have started.
struct Case {
    name: &'static str,
    inject: fn(&Cloud),
    /// Extra variables for the agent under test (after the fault-free start).
    vars: &'static [(&'static str, &'static str)],
    /// Expected codes for ACTIONS, in order.
    expect: [i32; 5],
}

fn api(f: Fault) -> impl Fn(&Cloud) {
    move |c: &Cloud| c.fake.inject(f.clone())
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "no fault",
            inject: |_| {},
            vars: &[],
            expect: [0, 0, 0, 0, 0],
        },
        Case {
            name: "API 503 always",
            inject: |c| api(Fault::status(Scope::Api, 503))(c),
            vars: &[],
            expect: [1, 0, 0, 0, 1],
        },
        Case {
            name: "API 500 twice",
            inject: |c| api(Fault::status(Scope::Api, 500).times(2))(c),
            vars: &[],
            expect: [0, 0, 0, 0, 0],
        },
        Case {
            name: "API resets connections",
            inject: |c| api(Fault::reset(Scope::Api))(c),
            vars: &[],
            expect: [1, 0, 0, 0, 1],
        },
        Case {
            name: "API resets twice",
            inject: |c| api(Fault::reset(Scope::Api).times(2))(c),
            vars: &[],
            expect: [0, 0, 0, 0, 0],
        },
        Case {
            name: "API hangs",
            inject: |c| api(Fault::hang(Scope::Api))(c),
            vars: &[],
            expect: [1, 0, 0, 0, 1],
        },
        Case {
            name: "API down",
            inject: |c| api(Fault::outage(Scope::Api))(c),
            vars: &[],
            expect: [1, 0, 0, 0, 1],
        },
        Case {
            name: "API slow (150 ms a request)",
            inject: |c| api(Fault::delay(Scope::Api, Duration::from_millis(150)))(c),
            vars: &[],
            expect: [0, 0, 0, 0, 0],
        },
        Case {
            name: "429 once, retry-after 1",
            inject: |c| api(Fault::rate_limited(1).times(1))(c),
            vars: &[],
            expect: [0, 0, 0, 0, 0],
        },
        Case {
            name: "429 always, retry-after 60",
            inject: |c| api(Fault::rate_limited(60))(c),
            vars: &[],
            expect: [1, 0, 0, 0, 1],
        },
        Case {
            name: "422 pending twice on assign",
            inject: |c| api(Fault::status(Scope::Api, 422).times(2).method("POST"))(c),
            vars: &[],
            expect: [0, 0, 0, 0, 0],
        },
        Case {
            name: "token revoked (401)",
            inject: |c| c.fake.revoke_token(common::TOKEN),
            vars: &[],
            expect: [6, 0, 0, 0, 6],
        },
        Case {
            name: "IP not in the account (404)",
            inject: |_| {},
            vars: &[("OCF_RESKEY_ip", "203.0.113.77")],
            // The record is for another address: monitor and probe say "not here".
            expect: [6, 0, 7, 7, 6],
        },
        Case {
            name: "assign action errors",
            inject: |c| c.fake.inject(Fault::action_errored().times(1)),
            vars: &[],
            expect: [1, 0, 0, 0, 0],
        },
        Case {
            name: "assign action outlasts the timeout",
            inject: |c| c.fake.set_action_time(Duration::from_secs(10)),
            vars: &[],
            expect: [1, 0, 0, 0, 0],
        },
        Case {
            name: "metadata down",
            inject: |c| c.fake.inject(Fault::outage(Scope::Metadata)),
            vars: &[],
            expect: [1, 0, 1, 1, 0],
        },
        Case {
            name: "metadata 500 twice",
            inject: |c| c.fake.inject(Fault::status(Scope::Metadata, 500).times(2)),
            vars: &[],
            expect: [0, 0, 0, 0, 0],
        },
        Case {
            name: "metadata hangs",
            inject: |c| c.fake.inject(Fault::hang(Scope::Metadata)),
            vars: &[],
            expect: [1, 0, 1, 1, 0],
        },
        Case {
            name: "metadata lags 30 s",
            inject: |c| c.fake.set_metadata_lag(Duration::from_secs(30)),
            vars: &[],
            expect: [0, 0, 0, 0, 0],
        },
        Case {
            name: "everything down",
            inject: |c| c.fake.inject(Fault::outage(Scope::All)),
            vars: &[],
            expect: [1, 0, 1, 1, 1],
        },
    ]
}

struct Outcome {
    what: String,
    code: i32,
    expect: i32,
    took: Duration,
    reasons: usize,
    detail: String,
}

fn run_case(case: &Case, action: &str, expect: i32) -> Outcome {
    // Node 0 holds B's IP at first (a failover), so start must move it.
    let c = cloud(Some(B), &[A]);
    if action != "start" && action != "validate-all" {
        c.run(0, "start", &[])
            .expect(0, "the fault-free start before the fault");
    }
    (case.inject)(&c);
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
    let t = c.run(0, agent_action, &vars);
    if case.name == "429 once, retry-after 1" && action == "start" {
        assert!(
            t.took >= Duration::from_secs(1),
            "retry-after 1 was not honoured: {:?}",
            t.took
        );
    }
    Outcome {
        what: format!("{:<36} {:<13}", case.name, action),
        code: t.code(),
        expect,
        took: t.took,
        reasons: t.run.exit_reason_count(),
        detail: format!(
            "{}{}",
            t.run.exit_reason().unwrap_or(""),
            if t.code() == expect {
                String::new()
            } else {
                format!("\nstderr: {}", t.run.stderr)
            }
        ),
    }
}

#[test]
fn fault_matrix() {
    let cases = cases();
    let jobs: Vec<(&Case, &str, i32)> = cases
        .iter()
        .flat_map(|c| ACTIONS.iter().zip(c.expect).map(move |(a, e)| (c, *a, e)))
        .collect();
    let mut outcomes = Vec::new();
    // A few rows at a time: each has its own fake cloud and agent processes.
    for chunk in jobs.chunks(12) {
        let got: Vec<Outcome> = std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|(case, action, expect)| s.spawn(move || run_case(case, action, *expect)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        outcomes.extend(got);
    }
    let mut failures = Vec::new();
    for o in &outcomes {
        let mut bad = Vec::new();
        if o.code != o.expect {
            bad.push(format!("expected {}", o.expect));
        }
        if o.took >= TIMEOUT {
            bad.push(format!("took {:?}, past the {TIMEOUT:?} timeout", o.took));
        }
        let is_error = !matches!(o.code, 0 | 7);
        if is_error && o.reasons != 1 {
            bad.push(format!("{} ocf-exit-reason lines", o.reasons));
        }
        let line = format!(
            "{} -> {} in {:>5} ms  {}",
            o.what,
            o.code,
            o.took.as_millis(),
            o.detail
        );
        println!("{line}");
        if !bad.is_empty() {
            failures.push(format!("{line}\n    ^ {}", bad.join("; ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        outcomes.len(),
        failures.join("\n")
    );
    // Only the two configuration faults may ever answer 6.
    for o in &outcomes {
        if o.code == 6 {
            assert!(
                o.what.starts_with("token revoked") || o.what.starts_with("IP not in"),
                "{}",
                o.what
            );
        }
    }
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

/// A metadata service that answers every path with 200 and a page of HTML.
fn garbled_metadata() -> String {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/metadata/v1", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body = "<html><body>Service Temporarily Unavailable</body></html>";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn garbled_metadata_never_reads_as_running() {
    let c = cloud(None, &[A]);
    c.run(0, "start", &[]).expect(0, "start");
    let garbage = garbled_metadata();
    let vars = [
        ("OCF_RESKEY_metadata_url", garbage.as_str()),
        ("OCF_RESKEY_CRM_meta_timeout", TIMEOUT_MS),
    ];
    let mut recurring = vars.to_vec();
    recurring.push(("OCF_RESKEY_CRM_meta_interval", "10000"));
    for (what, vars) in [("monitor", &recurring[..]), ("probe", &vars[..])] {
        let t = c.run(0, "monitor", vars);
        t.expect(1, what);
        assert!(t.took < TIMEOUT, "{what} took {:?}", t.took);
        assert!(
            t.run.exit_reason().unwrap().contains("garbled"),
            "{}",
            t.run.stderr
        );
    }
    c.run(0, "start", &vars)
        .expect(1, "start with a garbled droplet id");
    c.run(0, "stop", &vars).expect(0, "stop");
}
