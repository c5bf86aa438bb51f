//! What the clients see: the README's DigitalOcean configuration on the real two-node cluster,
//! with the fake cloud's network carrying the floating IP's packets to the droplet the fake API
//! says holds it (tests/src/traffic.rs), two app servers behind the balancers, and a client
//! sending a request every 50 ms on a new connection. For each event (a HAProxy reload under
//! load, HAProxy killed, standby, crash of the active node) it asserts where the answers come
//! from before and after, that the app servers saw the client through the right balancer, and
//! that a reload loses no request; it reports the client-visible outage, the failed requests and
//! the crash's breakdown (they are measurements, not assertions: BENCHMARKS.md has them, from
//! bench/traffic.sh). `CLOUDHA_TRAFFIC_REPORT=FILE` appends the report to FILE as well.

use cloudha_tests::fakecloud::{Fault, Scope};
use cloudha_tests::traffic::{self, TrafficCluster, CLIENT, EVERY, RECOVERY};
use std::time::{Duration, Instant, SystemTime};

#[test]
fn what_the_clients_see_through_reload_kill_standby_and_crash() {
    let mut s = TrafficCluster::new(|_| {});
    let first = s.active(None, "start");
    s.cluster.settle(RECOVERY);
    let client = s.net.client(EVERY, Duration::from_secs(600));
    s.wait_answers_via(&client, first, Instant::now(), 20, "start");

    // The app servers saw the client through the active balancer, both of them in turn.
    let hits = s.net.hits();
    let via_first: Vec<_> = hits
        .iter()
        .filter(|h| h.balancer == traffic::node_wan(first))
        .collect();
    assert!(
        via_first.len() >= 20,
        "the app servers saw {} requests: {hits:?}",
        hits.len()
    );
    assert!(
        via_first
            .iter()
            .all(|h| h.forwarded_for.as_deref() == Some(&CLIENT.to_string())),
        "X-Forwarded-For is not the client's address: {via_first:?}"
    );
    for app in [1, 2] {
        assert!(
            via_first.iter().any(|h| h.app == app),
            "app-{app} never answered: {hits:?}"
        );
    }

    // 1. A reload of the active HAProxy under load loses nothing.
    let at = Instant::now();
    let node = s.cluster.node(first);
    let out = node.run(
        "/usr/lib/ocf/resource.d/cloudha/haproxy",
        &[
            "--instance",
            "lb",
            "--config",
            "/etc/haproxy/haproxy.cfg",
            "reload",
        ],
    );
    assert!(
        out.status.success(),
        "reload on node{}: {}{}",
        first + 1,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let done = Instant::now();
    s.wait_answers_via(&client, first, done, 20, "after the reload");
    let o = s.measure(&client, "HAProxy reload on the active node", at);
    assert_eq!(o.failed, 0, "a reload lost requests: {o:?}");

    // 2. HAProxy killed on the active node: Pacemaker's monitor notices, and recovers it.
    let active = s.active(None, "before the kill");
    let at = Instant::now();
    let out = s
        .cluster
        .node(active)
        .run("pkill", &["-KILL", "-x", "haproxy"]);
    assert!(
        out.status.success(),
        "no haproxy to kill on node{}",
        active + 1
    );
    let recovered = s.active(None, "after HAProxy was killed");
    s.wait_answers_via(&client, recovered, at, 20, "after HAProxy was killed");
    s.measure(&client, "HAProxy killed on the active node (SIGKILL)", at);
    s.cluster
        .sh("crm_resource", &["--cleanup", "--resource", "lb"]);
    s.cluster.settle(RECOVERY);

    // 3. Standby of the active node: the IP moves to the other balancer.
    s.failover_by_standby(&client, "standby of the active node");

    // 4. The same while the API fails: the new node's start retries through 503s.
    s.cloud.inject(Fault::status(Scope::Api, 503).times(3));
    s.failover_by_standby(&client, "standby while the API answers 503 three times");
    s.cloud.clear_faults();

    // 5. The same while the metadata service lags (every answer 1 s late).
    s.cloud.set_metadata_lag(Duration::from_secs(1));
    s.failover_by_standby(&client, "standby while the metadata service lags 1 s");
    s.cloud.set_metadata_lag(Duration::ZERO);

    // 6. Crash of the active node (power loss: its processes killed, its link down), with the
    // breakdown from the fake's record and the router.
    let active = s.active(None, "before the crash");
    let other = 1 - active;
    s.cloud.clear_requests();
    let wall = SystemTime::now();
    s.net.power_loss(active);
    let at = s.cluster.crash(active);
    s.active(Some(other), "the IP moving to the survivor of the crash");
    s.wait_answers_via(&client, other, at, 20, "after the crash");
    let o = s.measure(&client, "crash of the active node (power loss)", at);
    let survivor_ns = s.cluster.node(other).netns.name.clone();
    let api = s.cloud.api_requests();
    let first_call = api
        .iter()
        .find(|r| r.netns.as_deref() == Some(survivor_ns.as_str()))
        .expect("the survivor's first API request");
    let assign = api
        .iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/actions"))
        .expect("the survivor's assign request");
    let since = |r: &cloudha_tests::fakecloud::RecordedRequest| {
        r.at.duration_since(wall).unwrap_or_default()
    };
    let switched = s
        .net
        .switches()
        .into_iter()
        .find(|w| w.at > at && w.to == Some(other))
        .expect("the router switched to the survivor");
    let first_ok = o.first_after.as_ref().expect("an answer after the crash").0;
    let exec = s
        .cluster
        .status()
        .history
        .iter()
        .find(|op| {
            op.resource == "fip" && op.task == "start" && op.node == s.cluster.node(other).name
        })
        .map(|op| op.exec_ms);
    let line = format!(
        "| crash breakdown | detection + scheduling, until the survivor's floatip asks the API: {} ms; floatip until its assign request: {} ms; API action until the fake's holder changed: {} ms; the path switched in {} ms; first answer after that: {} ms (floatip's start took {} ms, Pacemaker says) | | | |",
        since(first_call).as_millis(),
        since(assign).saturating_sub(since(first_call)).as_millis(),
        switched.at.duration_since(at).saturating_sub(since(assign)).as_millis(),
        switched.done.duration_since(switched.at).as_millis(),
        first_ok.saturating_duration_since(switched.done).as_millis(),
        exec.map(|e| e.to_string()).unwrap_or_else(|| "?".into()),
    );
    eprintln!("{line}");
    s.report.push(line);

    // After the crash, the app servers see the client through the survivor only.
    let late: Vec<_> = s
        .net
        .hits()
        .into_iter()
        .filter(|h| h.at > switched.at + Duration::from_millis(500))
        .collect();
    assert!(
        !late.is_empty(),
        "the app servers saw nothing after the failover"
    );
    assert!(
        late.iter().all(|h| h.balancer == traffic::node_wan(other)),
        "after the crash, requests came through a dead balancer: {late:?}"
    );
    let samples = client.finish();
    assert!(
        samples.len() > 100,
        "the client sent only {} requests",
        samples.len()
    );
}
