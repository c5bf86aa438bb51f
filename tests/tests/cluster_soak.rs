//! A soak with faults: the README's DigitalOcean configuration on the real two-node cluster with
//! client traffic all along (tests/src/traffic.rs), random injected faults (API 5xx and 429
//! bursts, metadata lag and outages, HAProxy killed, reloads) and a crash of the active node every
//! few minutes (then its power back). At the end it reports, and asserts the targets of:
//! - failovers that no crash caused (0),
//! - bans: -INFINITY constraints, or a fail count at the migration threshold (0),
//! - failed requests outside the windows a crash or a killed active HAProxy opens (0),
//! - a reload losing a request (0),
//!
//! and it reports the API requests per hour against DigitalOcean's budget and the agents' peak
//! RSS (each agent runs under GNU time on the nodes). A plain `cargo test` (CI) runs it for 2
//! minutes; `bench/soak.sh --minutes N` for longer (`CLOUDHA_SOAK_MINUTES`, `CLOUDHA_SOAK_SEED`,
//! `CLOUDHA_SOAK_REPORT=FILE`).

use cloudha_tests::clouds::{Cloud, SERVERS};
use cloudha_tests::fakecloud::{Fault, Scope};
use cloudha_tests::traffic::{self, Sample, TrafficCluster, EVERY, RECOVERY};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

const AGENTS: [&str; 3] = ["anchorip", "floatip", "haproxy"];
/// Where the agents' wrappers append `AGENT ACTION PEAK_KIB` on a node (its /var survives reboots).
const RSS_LOG: &str = "/var/log/cloudha-rss.log";
/// DigitalOcean's budget: requests per hour per token (docs/floatip.md).
const DO_BUDGET_PER_HOUR: f64 = 5000.0;

/// xorshift64*: random enough for choosing faults, and repeatable from its seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}

/// An event the client may see: its time, what it was, and whether it may cost requests.
struct Event {
    at: Instant,
    what: String,
    /// A crash or a killed active HAProxy: requests fail until the cluster recovers.
    outage_expected: bool,
    /// A crash: the IP is expected to move.
    moves_ip: bool,
}

#[test]
fn soak_with_faults_loses_nothing_outside_failovers() {
    let minutes: f64 = std::env::var("CLOUDHA_SOAK_MINUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2.0);
    let seed: u64 = std::env::var("CLOUDHA_SOAK_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos() as u64
                | 1
        });
    eprintln!("soak: {minutes} min, seed {seed} (CLOUDHA_SOAK_SEED={seed} repeats the choices)");
    let mut rng = Rng(seed);
    let length = Duration::from_secs_f64(minutes * 60.0);
    // A crash every 3 minutes; the 2-minute run has one, in its middle.
    let crash_every = if minutes <= 3.0 {
        length / 2
    } else {
        Duration::from_secs(180)
    };

    let s = TrafficCluster::new(Cloud::DigitalOcean, |cluster| {
        for i in 0..cluster.nodes().len() {
            // Written by every action, also those Pacemaker runs as hacluster (meta-data):
            // GNU time fails the action (125) when it cannot append.
            cluster.stage(i, RSS_LOG, b"", 0o666);
            for a in AGENTS {
                let real = std::fs::read(cloudha_tests::agent_bin(a)).expect("agent binary");
                cluster.stage(
                    i,
                    &format!("/usr/lib/ocf/lib/cloudha-real/{a}"),
                    &real,
                    0o755,
                );
                let wrapper = format!(
                    "#!/bin/sh\n# The soak measures each action's peak RSS (GNU time's %M, KiB).\n\
                     exec /usr/bin/time -a -o {RSS_LOG} -f \"{a} ${{1:-none}} %M\" \
                     /usr/lib/ocf/lib/cloudha-real/{a} \"$@\"\n"
                );
                cluster.stage(
                    i,
                    &format!("/usr/lib/ocf/resource.d/cloudha/{a}"),
                    wrapper.as_bytes(),
                    0o755,
                );
            }
        }
    });
    let first = s.active(None, "start");
    s.cluster.settle(RECOVERY);
    let client = s.net.client(EVERY, length + Duration::from_secs(600));
    s.wait_answers_via(&client, first, Instant::now(), 20, "start");
    s.cloud.clear_requests();
    let begin = Instant::now();
    let end = begin + length;
    let mut next_crash = begin + crash_every;
    let mut events: Vec<Event> = Vec::new();
    let mut reload_losses = Vec::new();
    let mut lag_until: Option<Instant> = None;
    // A burst of API faults lasts this long: what the agents have not met by then is cleared
    // (DigitalOcean's monitors never call the API, so unmet faults would pile up for the next
    // failover to meet all at once).
    let burst = Duration::from_secs(15);
    let mut faults_until: Option<Instant> = None;

    while Instant::now() < end {
        let pause = Duration::from_secs(rng.between(4, 12));
        std::thread::sleep(pause.min(end.saturating_duration_since(Instant::now())));
        if lag_until.is_some_and(|t| Instant::now() >= t) {
            s.cloud.set_metadata_lag(Duration::ZERO);
            lag_until = None;
        }
        if faults_until.is_some_and(|t| Instant::now() >= t) {
            s.cloud.clear_faults();
            faults_until = None;
        }
        if Instant::now() >= end {
            break;
        }
        let active = s.active(None, "between events");
        if Instant::now() >= next_crash {
            // Every other crash, on average, meets a burst of API faults in the failover.
            let trouble = match rng.below(4) {
                0 => {
                    let n = rng.between(1, 3) as u32;
                    s.cloud.inject(Fault::status(Scope::Api, 503).times(n));
                    format!(", the API answering 503 {n} times")
                }
                1 => {
                    let n = rng.between(1, 2) as u32;
                    s.cloud.inject(Fault::rate_limited(1).times(n));
                    format!(", the API answering 429 (retry-after 1) {n} times")
                }
                _ => String::new(),
            };
            faults_until = Some(Instant::now() + burst);
            let at = Instant::now();
            s.net.power_loss(active);
            s.cluster.crash(active);
            events.push(Event {
                at,
                what: format!("crash of node{}{trouble}", active + 1),
                outage_expected: true,
                moves_ip: true,
            });
            eprintln!(
                "soak: +{:>4}s crash of node{}{trouble}",
                at.duration_since(begin).as_secs(),
                active + 1
            );
            s.active(Some(1 - active), "failover after the crash");
            s.wait_answers_via(&client, 1 - active, at, 10, "after the crash");
            let t = begin.elapsed().as_millis();
            s.net.power_back(active);
            eprintln!(
                "soak: +{t:>5}ms node{} has power again (link up at +{} ms)",
                active + 1,
                begin.elapsed().as_millis()
            );
            s.cluster.power_on(active);
            eprintln!(
                "soak: +{:>5}ms node{} booting",
                begin.elapsed().as_millis(),
                active + 1
            );
            events.push(Event {
                at: Instant::now(),
                what: format!("node{} has power again, booting", active + 1),
                outage_expected: false,
                moves_ip: false,
            });
            s.cluster
                .wait_until("the crashed node back", RECOVERY, |st| {
                    st.online_nodes().len() == 2
                        && st.running_on("lb").len() == 2
                        && st.running_on("anchor").len() == 2
                });
            next_crash = Instant::now() + crash_every;
            continue;
        }
        let node = rng.below(2) as usize;
        let at = Instant::now();
        let (what, outage_expected) = match rng.below(6) {
            0 => {
                let n = rng.between(1, 4) as u32;
                let code = [500, 502, 503][rng.below(3) as usize];
                s.cloud.inject(Fault::status(Scope::Api, code).times(n));
                faults_until = Some(at + burst);
                (format!("API answers {code} {n} times (for 15 s)"), false)
            }
            1 => {
                let n = rng.between(1, 3) as u32;
                s.cloud.inject(Fault::rate_limited(1).times(n));
                faults_until = Some(at + burst);
                (
                    format!("API answers 429 (retry-after 1) {n} times (for 15 s)"),
                    false,
                )
            }
            2 => {
                let lag = Duration::from_millis(rng.between(500, 2000));
                s.cloud.set_metadata_lag(lag);
                lag_until = Some(at + Duration::from_secs(15));
                (format!("metadata lags {lag:?} for 15 s"), false)
            }
            3 => {
                let n = rng.between(1, 4) as u32;
                let id = SERVERS[node];
                s.cloud
                    .inject(Fault::outage(Scope::MetadataOf(id)).times(n));
                faults_until = Some(at + burst);
                (
                    format!("node{}'s metadata service cuts {n} connections", node + 1),
                    false,
                )
            }
            4 => {
                let out = s
                    .cluster
                    .node(node)
                    .run("pkill", &["-KILL", "-x", "haproxy"]);
                // pkill: 0 killed some, 1 found none (killed before and not restarted yet:
                // Pacemaker notices at its next monitor); anything else is the test's fault.
                let code = out.status.code();
                assert!(
                    matches!(code, Some(0) | Some(1)),
                    "pkill on node{}: {code:?} {}",
                    node + 1,
                    String::from_utf8_lossy(&out.stderr)
                );
                if code == Some(1) {
                    eprintln!(
                        "soak: +{:>4}s no HAProxy to kill on node{} (not restarted yet)",
                        at.duration_since(begin).as_secs(),
                        node + 1
                    );
                    continue;
                }
                (
                    format!("HAProxy killed on node{}", node + 1),
                    node == active,
                )
            }
            _ => {
                let out = s.cluster.node(node).run(
                    "/usr/lib/ocf/resource.d/cloudha/haproxy",
                    &[
                        "--instance",
                        "lb",
                        "--config",
                        "/etc/haproxy/haproxy.cfg",
                        "reload",
                    ],
                );
                // A reload after a kill, before Pacemaker has recovered HAProxy, finds it failed
                // (1, as the monitor says: the recorded master is gone) or, once Pacemaker's stop
                // has run, not running (7): no loss either way.
                let code = out.status.code().unwrap_or(-1);
                let said = String::from_utf8_lossy(&out.stderr).into_owned();
                let killed_before = code == 1 && said.contains("HAProxy failed: its master");
                assert!(
                    code == 0 || code == 7 || killed_before,
                    "reload on node{}: {code} {said}",
                    node + 1
                );
                if code == 0 && node == active {
                    reload_losses.push((at, Instant::now()));
                }
                (
                    format!("HAProxy reloaded on node{} (exit {code})", node + 1),
                    false,
                )
            }
        };
        eprintln!("soak: +{:>4}s {what}", at.duration_since(begin).as_secs());
        events.push(Event {
            at,
            what,
            outage_expected,
            moves_ip: false,
        });
    }
    s.cloud.set_metadata_lag(Duration::ZERO);
    s.cloud.clear_faults();
    std::thread::sleep(Duration::from_secs(3));
    let elapsed = begin.elapsed();
    let api_requests = s.cloud.api_request_count();
    let samples = client.finish();

    // Windows where failures are expected: from the event to the first answer after the
    // failures that follow it (bounded by RECOVERY).
    let windows: Vec<(Instant, Instant, &str)> = events
        .iter()
        .filter(|e| e.outage_expected)
        .map(|e| (e.at, window_end(&samples, e.at), e.what.as_str()))
        .collect();
    let outside: Vec<&Sample> = samples
        .iter()
        .filter(|x| x.start >= begin && x.result.is_err())
        .filter(|x| {
            !windows
                .iter()
                .any(|(a, b, _)| x.start >= *a && x.start <= *b)
        })
        .collect();
    let lost_in_reloads: usize = reload_losses
        .iter()
        .map(|(a, b)| {
            samples
                .iter()
                .filter(|x| {
                    x.start >= *a && x.start <= *b + Duration::from_secs(1) && x.result.is_err()
                })
                .count()
        })
        .sum();

    // Failovers: every switch of the IP's path after the start; planned when a crash's window
    // holds it.
    let crashes: Vec<Instant> = events.iter().filter(|e| e.moves_ip).map(|e| e.at).collect();
    let switches: Vec<traffic::Switch> = s
        .net
        .switches()
        .into_iter()
        .filter(|w| w.at >= begin)
        .collect();
    let unplanned: Vec<&traffic::Switch> = switches
        .iter()
        .filter(|w| !crashes.iter().any(|c| w.at >= *c && w.at <= *c + RECOVERY))
        .collect();

    let status = s.cluster.status();
    let at_threshold: Vec<String> = status
        .fail_counts
        .iter()
        .filter(|(_, n)| **n >= 1_000_000)
        .map(|((node, r), n)| format!("{r} on {node}: {n}"))
        .collect();

    // Peak RSS per agent and action, from both nodes' logs.
    let mut rss: BTreeMap<String, u64> = BTreeMap::new();
    for n in s.cluster.nodes() {
        let log = n
            .dir
            .join("overlay/var/upper")
            .join(RSS_LOG.trim_start_matches("/var/"));
        for line in std::fs::read_to_string(&log).unwrap_or_default().lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            if let [agent, action, kib] = w[..] {
                if let Ok(kib) = kib.parse::<u64>() {
                    let e = rss.entry(format!("{agent} {action}")).or_default();
                    *e = (*e).max(kib);
                }
            }
        }
    }

    let per_hour = api_requests as f64 * 3600.0 / elapsed.as_secs_f64();
    let failed = samples.iter().filter(|x| x.result.is_err()).count();
    let mut report = format!(
        "Soak of {:.1} min (seed {seed}): {} events ({} crashes), {} client requests, {} failed.\n\n\
         | measure | seen | target |\n| --- | --- | --- |\n\
         | failovers no crash caused | {} | 0 |\n\
         | bans (-INFINITY constraints, fail counts at the threshold) | {} | 0 |\n\
         | failed requests outside the crash / killed-active-HAProxy windows | {} | 0 |\n\
         | requests lost in reloads of the active HAProxy ({} reloads) | {} | 0 |\n\
         | API requests per hour (the cluster, one token) | {:.0} | ≤ {DO_BUDGET_PER_HOUR:.0} (DigitalOcean) |\n",
        elapsed.as_secs_f64() / 60.0,
        events.len(),
        crashes.len(),
        samples.len(),
        failed,
        unplanned.len(),
        status.bans.len() + at_threshold.len(),
        outside.len(),
        reload_losses.len(),
        lost_in_reloads,
        per_hour,
    );
    for (a, b, what) in &windows {
        let lost = samples
            .iter()
            .filter(|x| x.start >= *a && x.start <= *b && x.result.is_err())
            .count();
        report.push_str(&format!(
            "| window: {what} | {} ms, {lost} failed | |\n",
            b.saturating_duration_since(*a).as_millis()
        ));
    }
    if !outside.is_empty() {
        report.push_str(
            "\nFailed requests outside the windows (the first 20), with the event before each:\n\n",
        );
        for x in outside.iter().take(20) {
            let before = events
                .iter()
                .rev()
                .find(|e| e.at <= x.start)
                .map(|e| {
                    format!(
                        "{} ms after '{}'",
                        x.start.duration_since(e.at).as_millis(),
                        e.what
                    )
                })
                .unwrap_or_else(|| "before any event".into());
            report.push_str(&format!(
                "- +{} ms ({before}): {:?}\n",
                x.start.duration_since(begin).as_millis(),
                x.result
            ));
        }
    }
    report.push_str("\nPeak RSS of each agent's actions (GNU time, KiB):\n\n| agent action | peak RSS (KiB) |\n| --- | --- |\n");
    for (k, v) in &rss {
        report.push_str(&format!("| {k} | {v} |\n"));
    }
    report.push_str("\nThe IP's path (the router following the fake):\n\n");
    for w in &switches {
        report.push_str(&format!(
            "- +{} ms: to {}\n",
            w.at.duration_since(begin).as_millis(),
            w.describe()
        ));
    }
    report.push_str("\nEvents:\n\n");
    for e in &events {
        report.push_str(&format!(
            "- +{} s: {}\n",
            e.at.duration_since(begin).as_secs(),
            e.what
        ));
    }
    eprintln!("{report}");
    if let Some(path) = std::env::var_os("CLOUDHA_SOAK_REPORT") {
        std::fs::write(path, &report).expect("write the soak report");
    }

    assert!(
        !events.is_empty() && !crashes.is_empty(),
        "the soak injected nothing:\n{report}"
    );
    assert!(!rss.is_empty(), "no agent action was measured:\n{report}");
    assert!(
        unplanned.is_empty(),
        "failovers no crash caused: {unplanned:?}\n{report}"
    );
    assert!(
        status.bans.is_empty() && at_threshold.is_empty(),
        "bans: {:?} {at_threshold:?}\n{report}",
        status.bans
    );
    let shown: Vec<_> = outside
        .iter()
        .take(10)
        .map(|x| (x.start.duration_since(begin), &x.result))
        .collect();
    let around: Vec<String> = outside
        .first()
        .map(|f| {
            samples
                .iter()
                .filter(|x| {
                    x.start + Duration::from_secs(2) >= f.start
                        && x.start <= f.start + Duration::from_secs(2)
                })
                .map(|x| {
                    format!(
                        "{}..{} {:?}",
                        x.start.duration_since(begin).as_millis(),
                        x.end.duration_since(begin).as_millis(),
                        x.result
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert!(
        outside.is_empty(),
        "requests failed outside the expected windows: {shown:?}\naround the first:\n{}\n{report}",
        around.join("\n")
    );
    assert_eq!(lost_in_reloads, 0, "reloads lost requests\n{report}");
}

/// The end of the outage an event at `at` opened: the first answer after the first failure that
/// starts within 2 s of `at`, from which on every request sent for 1 s is answered (a request
/// sent during the outage may be answered late by a lucky SYN retransmission, with failures
/// after it); `at` itself when nothing fails then; bounded by RECOVERY.
fn window_end(samples: &[Sample], at: Instant) -> Instant {
    let Some(first_failure) = samples
        .iter()
        .find(|x| x.start >= at && x.start <= at + Duration::from_secs(2) && x.result.is_err())
    else {
        return at;
    };
    let stable = |x: &Sample| {
        samples
            .iter()
            .filter(|y| y.start >= x.start && y.start <= x.start + Duration::from_secs(1))
            .all(|y| y.result.is_ok())
    };
    samples
        .iter()
        .find(|x| x.start > first_failure.start && x.result.is_ok() && stable(x))
        .map(|x| x.start.min(at + RECOVERY))
        .unwrap_or(at + RECOVERY)
}
