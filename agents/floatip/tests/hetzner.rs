//! floatip with provider=hetzner against the fake's Hetzner dialect: start finds the IP's id by
//! listing (more than one page) and moves it in one assign; a recurring monitor is one
//! `GET /v1/floating_ips/{id}` (the id from the record), never a listing; a failed read is 1,
//! never 7; stop needs no request; two starts racing end with one holder; the words are
//! Hetzner's (server, not droplet).
#![allow(clippy::unwrap_used)] // a test's failure report is its panic

mod common;

use cloudha_tests::fakecloud::{Fault, Scope};
use common::{hetzner, A, B, IP};
use predicates::prelude::*;
use std::time::Duration;

/// The API requests (method and target) since the last `clear_requests`.
fn api_calls(c: &common::Cloud) -> Vec<String> {
    c.api_calls()
}

#[test]
fn start_lists_then_assigns_once_monitor_reads_one_ip_stop_asks_nothing() {
    let c = hetzner(Some(B), &[A, B]);
    let id = c.fake.ip_id(IP).unwrap();
    c.run(0, "monitor", &[]).expect(7, "probe before start");
    assert_eq!(
        api_calls(&c),
        Vec::<String>::new(),
        "a probe with no record asks nothing"
    );

    c.fake.set_action_time(Duration::from_millis(400));
    c.run(0, "start", &[])
        .expect(0, "start")
        .reason(predicate::str::is_empty());
    assert_eq!(c.fake.holder(IP), Some(A));
    let calls = api_calls(&c);
    let assigns: Vec<&String> = calls.iter().filter(|c| c.starts_with("POST")).collect();
    assert_eq!(
        assigns,
        vec![&format!("POST /v1/floating_ips/{id}/actions/assign")],
        "{calls:#?}"
    );
    // The IP sits on the second page of 50: both were read, in order, before the assign.
    assert_eq!(
        calls[0], "GET /v1/floating_ips?page=1&per_page=50",
        "{calls:#?}"
    );
    assert_eq!(
        calls[1], "GET /v1/floating_ips?page=2&per_page=50",
        "{calls:#?}"
    );
    assert!(
        calls.iter().any(|c| c.starts_with("GET /v1/actions/")),
        "the action was polled: {calls:#?}"
    );
    assert_eq!(
        calls.last().unwrap(),
        &format!("GET /v1/floating_ips/{id}"),
        "the holder confirmed by id"
    );
    let record = std::fs::read_to_string(c.record(0)).unwrap();
    assert!(record.contains(&format!("\nid={id}\n")), "{record}");

    c.monitors_read_once_and_stop_asks_nothing(&format!("/v1/floating_ips/{id}"));
}

#[test]
fn a_moved_ip_is_7_and_a_failed_read_is_1_never_7() {
    let c = hetzner(None, &[A, B]);
    c.run(0, "start", &[]).expect(0, "start");
    let timeout = [("OCF_RESKEY_CRM_meta_timeout", "3000")];
    let recurring = [
        ("OCF_RESKEY_CRM_meta_timeout", "3000"),
        ("OCF_RESKEY_CRM_meta_interval", "10000"),
    ];
    c.fake.inject(Fault::status(Scope::Api, 503));
    let t = c.run(0, "monitor", &recurring);
    t.expect(1, "monitor with the API failing")
        .reason(predicate::str::contains("503"));
    assert!(t.took < Duration::from_secs(3), "{:?}", t.took);
    assert!(
        c.fake.api_request_count() > 2,
        "a failed read is retried within the timeout"
    );
    c.fake.clear_faults();
    c.fake.inject(Fault::status(Scope::Api, 500).times(2));
    c.run(0, "monitor", &recurring)
        .expect(0, "two failed reads, then the answer");

    // Moved behind the agent's back (the console, another cluster): not here any more.
    c.fake.set_holder(IP, Some(B));
    c.run(0, "monitor", &recurring)
        .expect(7, "monitor after the IP moved");
    c.run(0, "monitor", &timeout)
        .expect(7, "probe after the IP moved");
}

#[test]
fn validate_all_finds_the_ip_and_words_are_hetzners() {
    let c = hetzner(Some(B), &[A]);
    c.run(0, "validate-all", &[("OCF_CHECK_LEVEL", "10")])
        .expect(0, "validate-all 10");
    c.run(
        0,
        "validate-all",
        &[("OCF_CHECK_LEVEL", "10"), ("OCF_RESKEY_ip", "203.0.113.99")],
    )
    .expect(6, "an IP on no page")
    .reason(predicate::str::contains(
        "not a floating IP of this project",
    ));
    let t = c.run(0, "start", &[]);
    t.expect(0, "start");
    assert!(
        t.stderr.contains(&format!(
            "points at server {B}; assigning it to this server ({A})"
        )),
        "{}",
        t.stderr
    );
    assert!(
        !t.stderr.contains("droplet"),
        "Hetzner's words: {}",
        t.stderr
    );
    c.monitor(0).expect(0, "monitor");
}

#[test]
fn two_starts_racing_leave_one_holder_and_agree() {
    // The second assign meets the first one's running action: 423 locked, a wait; then the IP
    // points at the winner, and the loser does not take it back.
    for action_time in [Duration::from_millis(800), Duration::from_millis(300)] {
        let c = hetzner(None, &[A, B]);
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
        loser.expect(1, &format!("{ctx}: the loser"));
        c.monitor(wi).expect(0, "winner's monitor");
        c.monitor(li).expect(7, "loser's monitor");
    }
}

#[test]
fn a_record_of_another_provider_is_not_this_resource() {
    // Started through DigitalOcean, now configured for Hetzner: the record's ids mean nothing
    // here. Not running, with no request.
    let c = hetzner(None, &[A]);
    c.run(0, "start", &[]).expect(0, "start");
    let text = std::fs::read_to_string(c.record(0)).unwrap();
    assert!(text.contains("\nprovider=hetzner\n"), "{text}");
    std::fs::write(
        c.record(0),
        text.replace("provider=hetzner", "provider=digitalocean"),
    )
    .unwrap();
    c.fake.clear_requests();
    c.monitor(0).expect(7, "monitor with a DigitalOcean record");
    assert!(c.fake.requests().is_empty());
}
