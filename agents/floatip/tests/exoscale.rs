//! floatip with provider=exoscale against the fake's Exoscale dialect: every request signed;
//! start finds the elastic IP by listing, attaches it here and then detaches every other holder
//! (an attach does not detach), each operation polled, and confirms this instance alone holds
//! it; a recurring monitor is one `GET /v2/instance/{id}` (this instance, from the record),
//! never a listing; a failed read is 1, never 7; stop needs no request. Never two holders: a
//! detach that fails transiently is retried; one that fails for good detaches this instance
//! again and fails with 1, with no record; two starts racing end with one holder.
#![allow(clippy::unwrap_used)] // a test's failure report is its panic

mod common;

use cloudha_tests::fakecloud::{Fault, Scope};
use common::{exoscale, uuid, A, B, IP};
use predicates::prelude::*;
use std::time::Duration;

/// An old holder that is not a node of the cluster (its balancer died).
const OLD: u64 = 3_160_009;

/// The API requests (method and target) since the last `clear_requests`.
fn api_calls(c: &common::Cloud) -> Vec<String> {
    c.api_calls()
}

fn ip_path(c: &common::Cloud) -> String {
    let id = c.fake.ip_id(IP).unwrap();
    format!(
        "/v2/elastic-ip/{}",
        cloudha_tests::fakecloud::exoscale::ip_uuid(id)
    )
}

#[test]
fn start_attaches_here_then_detaches_the_old_holder_monitor_reads_one_instance() {
    let c = exoscale(Some(B), &[A, B]);
    c.run(0, "monitor", &[]).expect(7, "probe before start");
    assert!(
        api_calls(&c).is_empty(),
        "a probe with no record asks nothing"
    );

    c.fake.set_action_time(Duration::from_millis(300));
    c.run(0, "start", &[])
        .expect(0, "start")
        .reason(predicate::str::is_empty());
    assert_eq!(c.fake.holders(IP), [A], "exactly one holder: this one");
    let calls = api_calls(&c);
    let eip = ip_path(&c);
    let puts: Vec<&String> = calls.iter().filter(|c| c.starts_with("PUT")).collect();
    assert_eq!(
        puts,
        vec![&format!("PUT {eip}:attach"), &format!("PUT {eip}:detach")],
        "{calls:#?}"
    );
    assert_eq!(calls[0], "GET /v2/elastic-ip", "{calls:#?}");
    assert!(
        calls.iter().any(|c| c.starts_with("GET /v2/operation/")),
        "operations were polled: {calls:#?}"
    );
    assert_eq!(
        calls.last().unwrap(),
        "GET /v2/instance",
        "confirmed: {calls:#?}"
    );
    // The detach named the old holder; every request was signed.
    let reqs = c.fake.api_requests();
    let detach = reqs.iter().find(|r| r.target.ends_with(":detach")).unwrap();
    assert!(detach.body.contains(&uuid(B)), "{}", detach.body);
    for r in &reqs {
        let auth = r.header("authorization").unwrap();
        assert!(
            auth.starts_with("EXO2-HMAC-SHA256 credential=EXO0"),
            "{auth}"
        );
        assert!(!auth.contains(common::TOKEN), "the secret never crosses");
    }
    let record = std::fs::read_to_string(c.record(0)).unwrap();
    assert!(record.contains("\nprovider=exoscale\n"), "{record}");
    assert!(record.contains(&format!("server={}", uuid(A))), "{record}");

    c.monitors_read_once_and_stop_asks_nothing(&format!("/v2/instance/{}", uuid(A)));
}

#[test]
fn a_start_where_it_is_already_attached_only_detaches_the_others() {
    let c = exoscale(None, &[A, B]);
    c.fake.register_droplet(OLD);
    c.fake.set_holders(IP, &[OLD, A, B]);
    c.run(0, "start", &[]).expect(0, "start");
    assert_eq!(c.fake.holders(IP), [A]);
    let calls = api_calls(&c);
    let puts: Vec<&String> = calls.iter().filter(|c| c.starts_with("PUT")).collect();
    assert_eq!(puts.len(), 2, "two detaches, no attach: {calls:#?}");
    assert!(puts.iter().all(|p| p.ends_with(":detach")), "{calls:#?}");
    // Already alone: nothing to change.
    c.fake.clear_requests();
    c.run(0, "start", &[]).expect(0, "start again");
    assert!(api_calls(&c).iter().all(|c| c.starts_with("GET")));
}

#[test]
fn a_moved_ip_is_7_a_failed_read_is_1_never_7_rejected_credentials_6() {
    let c = exoscale(None, &[A, B]);
    c.run(0, "start", &[]).expect(0, "start");
    let recurring = [
        ("OCF_RESKEY_CRM_meta_timeout", "3000"),
        ("OCF_RESKEY_CRM_meta_interval", "10000"),
    ];
    for status in [500, 503, 409, 423, 429] {
        c.fake.clear_requests();
        c.fake.inject(Fault::status(Scope::Api, status));
        let t = c.run(0, "monitor", &recurring);
        t.expect(1, &format!("monitor with the API answering {status}"));
        assert!(t.took < Duration::from_secs(3), "{:?}", t.took);
        assert!(c.fake.api_request_count() > 1, "{status}: retried");
        c.fake.clear_faults();
    }
    c.fake.inject(Fault::status(Scope::Api, 503).times(2));
    c.run(0, "monitor", &recurring)
        .expect(0, "two failed reads, then the answer");
    // Another holder besides this one: still attached here (the monitor reads one instance).
    c.fake.set_holders(IP, &[B]);
    c.run(0, "monitor", &recurring)
        .expect(7, "monitor after the IP moved");
    c.fake.set_holders(IP, &[A]);
    c.fake.revoke_api_key(common::EXO_KEY);
    c.run(0, "monitor", &recurring)
        .expect(6, "rejected credentials")
        .reason(predicate::str::contains("api_token"));
}

#[test]
fn a_detach_failing_transiently_is_retried() {
    let c = exoscale(Some(B), &[A, B]);
    let detach = format!("{}:detach", ip_path(&c));
    c.fake
        .inject(Fault::status(Scope::Api, 503).path(&detach).times(3));
    c.run(0, "start", &[]).expect(0, "start");
    assert_eq!(c.fake.holders(IP), [A], "exactly one holder");
}

#[test]
fn a_detach_failing_for_good_detaches_this_instance_again_and_fails() {
    let c = exoscale(Some(B), &[A, B]);
    // Long enough that the attach's operation is still pending when the watcher sees it
    // polled.
    c.fake.set_action_time(Duration::from_millis(1000));
    // Once the attach's operation exists (the agent polls it), the next operation created
    // (the detach of B) ends in `failure`; the undo (detaching A) does not.
    let fake = c.fake.clone();
    let watcher = std::thread::spawn(move || {
        for _ in 0..1000 {
            if fake
                .api_requests()
                .iter()
                .any(|r| r.target.starts_with("/v2/operation/"))
            {
                fake.inject(Fault::action_errored().times(1));
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        false
    });
    let t = c.run(0, "start", &[("OCF_RESKEY_CRM_meta_timeout", "8000")]);
    assert!(watcher.join().unwrap());
    t.expect(1, "the old holder could not be detached")
        .reason(predicate::str::contains("detached again"));
    assert_eq!(
        c.fake.holders(IP),
        [B],
        "never two holders: the old one alone, as before the start"
    );
    assert!(!c.record(0).exists(), "no record: not started here");
    c.monitor(0).expect(7, "a later monitor: not running here");
    c.run(0, "monitor", &[]).expect(7, "a later probe");
    // A later start, with the API working again, ends with this instance alone.
    c.fake.clear_faults();
    c.run(0, "start", &[]).expect(0, "a later start");
    assert_eq!(c.fake.holders(IP), [A]);
}

#[test]
fn a_detach_refused_until_the_timeout_leaves_the_holders_it_found() {
    // Every detach answers 503 until after the part of the time given to detaching the others
    // is up (about 70% of 9 s); then the undo, with the time kept for it, detaches A again.
    let c = exoscale(Some(B), &[A, B]);
    c.fake.set_action_time(Duration::from_millis(400));
    let fake = c.fake.clone();
    let watcher = std::thread::spawn(move || {
        for _ in 0..1000 {
            if fake
                .api_requests()
                .iter()
                .any(|r| r.target.starts_with("/v2/operation/"))
            {
                // B's detach fails; A's (the undo) has the same path: so fail only for a
                // while, past the work part of the timeout and short of its end.
                fake.inject(Fault::status(Scope::Api, 503).method("PUT"));
                std::thread::sleep(Duration::from_millis(6500));
                fake.clear_faults();
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        false
    });
    let t = c.run(0, "start", &[("OCF_RESKEY_CRM_meta_timeout", "10000")]);
    assert!(watcher.join().unwrap());
    t.expect(1, "the old holder could not be detached in time");
    assert_eq!(c.fake.holders(IP), [B], "{}", t.stderr);
    assert!(!c.record(0).exists());
}

#[test]
fn two_starts_racing_leave_one_holder() {
    for action_time in [Duration::from_millis(800), Duration::from_millis(300)] {
        let c = exoscale(None, &[A, B]);
        c.fake.register_droplet(OLD);
        c.fake.set_holders(IP, &[OLD]);
        c.fake.set_action_time(action_time);
        let (ra, rb) = std::thread::scope(|s| {
            let a = s.spawn(|| c.run(0, "start", &[]));
            let b = s.spawn(|| c.run(1, "start", &[]));
            (a.join().unwrap(), b.join().unwrap())
        });
        let holders = c.fake.holders(IP);
        let ctx = format!(
            "action time {action_time:?}: {holders:?}\n{}\n{}",
            ra.stderr, rb.stderr
        );
        assert_eq!(holders.len(), 1, "{ctx}");
        let (winner, loser, wi, li) = if holders[0] == A {
            (&ra, &rb, 0, 1)
        } else {
            (&rb, &ra, 1, 0)
        };
        winner.expect(0, &format!("{ctx}: the winner"));
        loser.expect(1, &format!("{ctx}: the loser"));
        c.monitor(wi).expect(0, "winner's monitor");
        c.monitor(li).expect(7, "loser's monitor");
    }
}

#[test]
fn an_address_of_another_zone_is_6_and_the_words_are_exoscales() {
    let c = exoscale(None, &[A]);
    let t = c.run(0, "start", &[("OCF_RESKEY_ip", "198.51.100.77")]);
    t.expect(6, "not an elastic IP of this zone")
        .reason(predicate::str::contains("ip"));
    let t = c.run(0, "start", &[]);
    t.expect(0, "start");
    assert!(
        t.stderr.contains("instance"),
        "Exoscale's words: {}",
        t.stderr
    );
    assert!(!t.stderr.contains("droplet"), "{}", t.stderr);
    c.run(0, "validate-all", &[("OCF_CHECK_LEVEL", "10")])
        .expect(0, "validate-all 10");
    c.run(0, "start", &[("OCF_RESKEY_api_key", "")])
        .expect(6, "no api_key")
        .reason(predicate::str::contains("api_key"));
}
