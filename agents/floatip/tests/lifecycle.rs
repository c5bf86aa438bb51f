//! floatip against the fake cloud: start/monitor/stop as Pacemaker runs them, failover between
//! two droplets, two starts racing, and the monitor's API budget (zero).
#![allow(clippy::unwrap_used)] // a test's failure report is its panic

mod common;

use common::{cloud, A, B, IP};
use std::time::Duration;

#[test]
fn start_monitor_stop_and_monitor_spends_no_api_request() {
    let c = cloud(None, &[A]);
    c.run(0, "monitor", &[]).expect(7, "probe before start");
    assert_eq!(
        c.fake.api_request_count(),
        0,
        "a probe of an absent IP asks nothing"
    );

    c.run(0, "start", &[]).expect(0, "start");
    assert_eq!(c.fake.holder(IP), Some(A));
    let actions = c.fake.actions();
    assert_eq!(actions.len(), 1, "{actions:?}");

    let before = c.fake.api_request_count();
    let md_before = c.fake.metadata_request_count(A);
    for _ in 0..5 {
        c.monitor(0).expect(0, "recurring monitor");
    }
    c.run(0, "monitor", &[]).expect(0, "probe after start");
    assert_eq!(
        c.fake.api_request_count(),
        before,
        "monitor must read the metadata service only"
    );
    assert!(c.fake.metadata_request_count(A) >= md_before + 6);

    c.run(0, "start", &[]).expect(0, "start again");
    assert_eq!(c.fake.actions().len(), 1, "a second start needs no action");

    c.run(0, "stop", &[]).expect(0, "stop");
    // stop does not unassign (the next start elsewhere moves the address in one action)…
    assert_eq!(c.fake.holder(IP), Some(A));
    // …and yet monitor and probe answer "stopped" here.
    c.monitor(0).expect(7, "monitor after stop");
    c.run(0, "monitor", &[]).expect(7, "probe after stop");
    c.run(0, "stop", &[]).expect(0, "stop again");
    assert!(!c.record(0).exists());
}

#[test]
fn failover_is_one_action_and_the_old_node_reads_stopped() {
    let c = cloud(None, &[A, B]);
    c.run(0, "start", &[]).expect(0, "start on A");
    // A dies without a stop; B takes over.
    c.run(1, "start", &[]).expect(0, "start on B");
    assert_eq!(c.fake.holder(IP), Some(B));
    assert_eq!(c.fake.actions().len(), 2, "one assign per start");
    c.monitor(1).expect(0, "B holds it");
    c.monitor(0).expect(7, "A's monitor after the failover");
    c.run(0, "monitor", &[])
        .expect(7, "A's probe after the failover");
    c.run(0, "stop", &[]).expect(0, "stop on A");
}

#[test]
fn already_held_start_spends_one_read_and_no_action() {
    let c = cloud(Some(A), &[A]);
    c.run(0, "start", &[]).expect(0, "start");
    assert!(c.fake.actions().is_empty());
    assert_eq!(c.fake.api_request_count(), 1);
    c.monitor(0).expect(0, "monitor");
}

#[test]
fn monitor_checks_the_exact_address() {
    // This droplet holds another reserved IP: "any floating IP" is not ours.
    let c = cloud(None, &[A]);
    c.fake.add_ip("203.0.113.99", None);
    c.run(0, "start", &[]).expect(0, "start");
    c.fake.set_holder(IP, None);
    c.fake.set_holder("203.0.113.99", Some(A));
    c.monitor(0).expect(7, "another IP held");
}

#[test]
fn monitor_after_the_lag_window_reads_metadata_only() {
    let c = cloud(None, &[A]);
    c.run(0, "start", &[]).expect(0, "start");
    // Make the record older than the lag window: metadata alone decides, no API request.
    let text = std::fs::read_to_string(c.record(0)).unwrap();
    let old: String = text
        .lines()
        .map(|l| {
            if l.starts_with("since=") {
                "since=1000000000".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(c.record(0), old + "\n").unwrap();
    c.fake.set_holder(IP, Some(B));
    let before = c.fake.api_request_count();
    c.monitor(0).expect(7, "moved away");
    assert_eq!(c.fake.api_request_count(), before);
}

#[test]
fn metadata_lag_right_after_start_is_settled_by_the_api() {
    let c = cloud(None, &[A]);
    c.fake.set_metadata_lag(Duration::from_secs(30));
    c.run(0, "start", &[])
        .expect(0, "start despite the lagging metadata");
    let before = c.fake.api_request_count();
    c.monitor(0).expect(0, "monitor right after start");
    assert_eq!(
        c.fake.api_request_count(),
        before + 1,
        "one API read decides"
    );
    c.run(0, "monitor", &[])
        .expect(0, "probe right after start");
}

#[test]
fn two_starts_racing_leave_one_holder_and_agree() {
    // Actions that take time, as DigitalOcean's do: the second assign meets the first one's
    // lock (422). With instant actions no agent could tell a race from a failover.
    for action_time in [Duration::from_millis(800), Duration::from_millis(300)] {
        let c = cloud(None, &[A, B]);
        c.fake.set_action_time(action_time);
        let (ra, rb) = std::thread::scope(|s| {
            let a = s.spawn(|| c.run(0, "start", &[]));
            let b = s.spawn(|| c.run(1, "start", &[]));
            (a.join().unwrap(), b.join().unwrap())
        });
        let holder = c.fake.holder(IP).expect("someone holds it");
        let (winner, loser, wi, li) = if holder == A {
            (&ra, &rb, 0, 1)
        } else {
            (&rb, &ra, 1, 0)
        };
        let ctx = format!("action time {action_time:?}");
        winner.expect(0, &format!("{ctx}: the winner"));
        // The loser fails (1), and a race is never a configuration error (6).
        loser.expect(1, &format!("{ctx}: the loser"));
        c.monitor(wi).expect(0, "winner's monitor");
        c.monitor(li).expect(7, "loser's monitor");
    }
}

#[test]
fn a_record_of_the_first_form_still_monitors() {
    // Written by the DigitalOcean-only versions: no `provider=` or `id=` line (the address is
    // the id there).
    let c = cloud(None, &[A]);
    c.run(0, "start", &[]).expect(0, "start");
    let text = std::fs::read_to_string(c.record(0)).unwrap();
    assert!(text.contains(&format!("\nid={IP}\n")), "{text}");
    let old: String = text
        .lines()
        .filter(|l| !l.starts_with("id=") && !l.starts_with("provider="))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(c.record(0), old).unwrap();
    let before = c.fake.api_request_count();
    c.monitor(0).expect(0, "monitor with an old record");
    assert_eq!(c.fake.api_request_count(), before, "still no API request");
    c.run(0, "stop", &[]).expect(0, "stop with an old record");
    assert!(!c.record(0).exists());
}
