//! floatip with provider=vultr against the fake's Vultr dialect: start finds the reserved IP's
//! UUID by listing (more than one page), detaches it from its holder and attaches it here, both
//! answered 204 before the platform is done: an attach refused while the detach is in flight
//! is retried, and the IP is re-read until it names this instance; a recurring monitor is one
//! `GET /v2/reserved-ips/{id}` (the id from the record), never a listing; a failed read is 1,
//! never 7; stop needs no request; two starts racing end with one holder; the words are
//! Vultr's (instance, not droplet).
#![allow(clippy::unwrap_used)] // a test's failure report is its panic

mod common;

use cloudha_tests::fakecloud::{vultr as fake_vultr, Fault, Scope};
use common::{vultr, A, B, IP};
use predicates::prelude::*;
use std::time::Duration;

/// The API requests (method and target) since the last `clear_requests`.
fn api_calls(c: &common::Cloud) -> Vec<String> {
    c.api_calls()
}

fn ip_path(c: &common::Cloud) -> String {
    format!(
        "/v2/reserved-ips/{}",
        fake_vultr::ip_uuid(c.fake.ip_id(IP).unwrap())
    )
}

#[test]
fn start_detaches_then_attaches_monitor_reads_one_ip_stop_asks_nothing() {
    let c = vultr(Some(B), &[A, B]);
    c.run(0, "monitor", &[]).expect(7, "probe before start");
    assert!(
        api_calls(&c).is_empty(),
        "a probe with no record asks nothing"
    );

    // The detach is still in flight when the attach comes: it is refused, and retried.
    c.fake.set_action_time(Duration::from_millis(400));
    let t = c.run(0, "start", &[]);
    t.expect(0, "start").reason(predicate::str::is_empty());
    assert_eq!(c.fake.holder(IP), Some(A));
    let calls = api_calls(&c);
    println!(
        "a start with the detach in flight: {} API requests",
        calls.len()
    );
    let path = ip_path(&c);
    // Both pages of 500 were read, in order, before any change.
    assert_eq!(calls[0], "GET /v2/reserved-ips?per_page=500", "{calls:#?}");
    assert!(
        calls[1].starts_with("GET /v2/reserved-ips?per_page=500&cursor="),
        "{calls:#?}"
    );
    let posts: Vec<&String> = calls.iter().filter(|c| c.starts_with("POST")).collect();
    assert_eq!(
        posts.first().map(|s| s.as_str()),
        Some(format!("POST {path}/detach").as_str()),
        "{calls:#?}"
    );
    assert_eq!(
        posts.last().map(|s| s.as_str()),
        Some(format!("POST {path}/attach").as_str()),
        "{calls:#?}"
    );
    assert!(
        posts.iter().filter(|p| p.ends_with("/attach")).count() >= 2,
        "the first attach met the detach in flight and was retried: {calls:#?}"
    );
    assert!(
        t.stderr.contains("still attached or changing"),
        "the refused attach was a wait: {}",
        t.stderr
    );
    let attach = c
        .fake
        .api_requests()
        .into_iter()
        .rfind(|r| r.target.ends_with("/attach"))
        .unwrap();
    assert_eq!(
        attach.body,
        format!(r#"{{"instance_id":"{}"}}"#, fake_vultr::instance_uuid(A))
    );
    assert_eq!(
        calls.last().unwrap(),
        &format!("GET {path}"),
        "confirmed by id"
    );
    let record = std::fs::read_to_string(c.record(0)).unwrap();
    assert!(record.contains("\nprovider=vultr\n"), "{record}");
    assert!(
        record.contains(&format!(
            "\nid={}\n",
            fake_vultr::ip_uuid(c.fake.ip_id(IP).unwrap())
        )),
        "{record}"
    );
    assert!(
        record.contains(&format!("server={}", fake_vultr::instance_uuid(A))),
        "{record}"
    );

    c.monitors_read_once_and_stop_asks_nothing(&path);
}

#[test]
fn an_unattached_ip_is_attached_in_one_call_and_a_held_one_is_left_alone() {
    let c = vultr(None, &[A]);
    c.fake.set_action_time(Duration::from_millis(200));
    c.run(0, "start", &[]).expect(0, "start");
    let calls = api_calls(&c);
    println!("a start of an unattached IP: {} API requests", calls.len());
    let posts: Vec<&String> = calls.iter().filter(|c| c.starts_with("POST")).collect();
    assert_eq!(
        posts,
        vec![&format!("POST {}/attach", ip_path(&c))],
        "{calls:#?}"
    );
    // The IP was re-read until it named this instance (the attach in flight shows "").
    let read = format!("GET {}", ip_path(&c));
    assert!(
        calls.iter().filter(|c| **c == read).count() >= 2,
        "{calls:#?}"
    );
    c.fake.clear_requests();
    c.run(0, "start", &[]).expect(0, "start again");
    assert!(
        api_calls(&c).iter().all(|c| c.starts_with("GET")),
        "already here: no change"
    );
}

#[test]
fn a_moved_ip_is_7_and_a_failed_read_is_1_never_7() {
    let c = vultr(None, &[A, B]);
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

    // Detached behind the agent's back (the console): attached nowhere is not here.
    c.fake.set_holder(IP, None);
    c.run(0, "monitor", &recurring)
        .expect(7, "monitor after a detach");
    c.fake.set_holder(IP, Some(B));
    c.run(0, "monitor", &recurring)
        .expect(7, "monitor after the IP moved");
    c.run(0, "monitor", &timeout)
        .expect(7, "probe after the IP moved");
}

#[test]
fn validate_all_finds_the_ip_and_words_are_vultrs() {
    let c = vultr(Some(B), &[A]);
    c.run(0, "validate-all", &[("OCF_CHECK_LEVEL", "10")])
        .expect(0, "validate-all 10");
    c.run(
        0,
        "validate-all",
        &[("OCF_CHECK_LEVEL", "10"), ("OCF_RESKEY_ip", "203.0.113.99")],
    )
    .expect(6, "an IP on no page")
    .reason(predicate::str::contains(
        "not a reserved IP of this account",
    ));
    c.run(0, "validate-all", &[("OCF_RESKEY_ip", "2001:db8::7")])
        .expect(6, "a reserved IPv6 is a subnet")
        .reason(predicate::str::contains("/64 subnets"));
    let t = c.run(0, "start", &[]);
    t.expect(0, "start");
    assert!(
        t.stderr.contains(&format!(
            "points at instance {}; assigning it to this instance ({})",
            fake_vultr::instance_uuid(B),
            fake_vultr::instance_uuid(A)
        )),
        "{}",
        t.stderr
    );
    assert!(!t.stderr.contains("droplet"), "Vultr's words: {}", t.stderr);
    c.monitor(0).expect(0, "monitor");
}

#[test]
fn two_starts_racing_leave_one_holder_and_agree() {
    // From an old holder (a detach, then the attaches race) and from none (the attaches race):
    // the second attach is refused while the first is in flight; then the IP names the
    // winner, and the loser does not take it back.
    for (holder, action_time) in [
        (Some(3_160_009), Duration::from_millis(600)),
        (None, Duration::from_millis(600)),
        (None, Duration::from_millis(300)),
    ] {
        let c = vultr(None, &[A, B]);
        if let Some(h) = holder {
            c.fake.register_droplet(h);
            c.fake.set_holder(IP, Some(h));
        }
        c.fake.set_action_time(action_time);
        let (ra, rb) = std::thread::scope(|s| {
            let a = s.spawn(|| c.run(0, "start", &[]));
            let b = s.spawn(|| c.run(1, "start", &[]));
            (a.join().unwrap(), b.join().unwrap())
        });
        let ctx = format!("holder {holder:?}, action time {action_time:?}");
        let winner = c
            .fake
            .holder(IP)
            .unwrap_or_else(|| panic!("{ctx}: no holder"));
        let (w, l, wi, li) = if winner == A {
            (&ra, &rb, 0, 1)
        } else {
            assert_eq!(winner, B, "{ctx}");
            (&rb, &ra, 1, 0)
        };
        w.expect(0, &format!("{ctx}: the winner"));
        l.expect(1, &format!("{ctx}: the loser"));
        println!("{ctx}: the loser says {}", l.exit_reason().unwrap_or(""));
        c.monitor(wi).expect(0, "winner's monitor");
        c.monitor(li).expect(7, "loser's monitor");
    }
}
