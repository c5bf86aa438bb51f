//! What the clients see: each cloud's README configuration on the real two-node cluster, with
//! the fake cloud's network carrying the floating IP's packets to the server the fake API says
//! holds it, as that cloud delivers them (tests/src/traffic.rs: DigitalOcean to the holder's
//! anchor address, the others to the IP itself on the holder's `lo`; Exoscale spreads them over
//! every holder), two app servers behind the balancers, and a client sending a request every
//! 50 ms on a new connection. For each event (a HAProxy reload under load, HAProxy killed,
//! standby, also with API faults and a lagging metadata service, crash of the active node) it
//! asserts where the answers come from before and after, that the app servers saw the client
//! through the right balancer, and that a reload loses no request; it reports the client-visible
//! outage, the failed requests and the crash's breakdown (they are measurements, not
//! assertions: BENCHMARKS.md has them, from bench/traffic.sh). `CLOUDHA_TRAFFIC_REPORT=FILE`
//! appends the report to FILE as well.

use cloudha_tests::clouds::Cloud;
use cloudha_tests::fakecloud::{Fault, Scope};
use cloudha_tests::traffic::{self, TrafficCluster, CLIENT, EVERY, RECOVERY};
use std::time::{Duration, Instant, SystemTime};

#[test]
fn digitalocean_what_the_clients_see_through_reload_kill_standby_and_crash() {
    what_the_clients_see(Cloud::DigitalOcean);
}

#[test]
fn hetzner_what_the_clients_see_through_reload_kill_standby_and_crash() {
    what_the_clients_see(Cloud::Hetzner);
}

#[test]
fn exoscale_what_the_clients_see_through_reload_kill_standby_and_crash() {
    what_the_clients_see(Cloud::Exoscale);
}

#[test]
fn vultr_what_the_clients_see_through_reload_kill_standby_and_crash() {
    what_the_clients_see(Cloud::Vultr);
}

fn what_the_clients_see(kind: Cloud) {
    let mut s = TrafficCluster::new(kind, |_| {});
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
    // On DigitalOcean the old node's HAProxy keeps accepting (stop_grace) until the new node's
    // assign has moved the IP: a standby loses nothing, even while the API fails or the
    // metadata service lags. Elsewhere measured only (Vultr detaches before it attaches: a
    // window with no holder).
    let lossless = kind == Cloud::DigitalOcean;
    let o = s.failover_by_standby(&client, "standby of the active node");
    assert!(!lossless || o.failed == 0, "a standby lost requests: {o:?}");

    // 4. The same while the API fails: the new node's start retries through 503s.
    s.cloud.inject(Fault::status(Scope::Api, 503).times(3));
    let o = s.failover_by_standby(&client, "standby while the API answers 503 three times");
    assert!(!lossless || o.failed == 0, "a standby lost requests: {o:?}");
    s.cloud.clear_faults();

    // 5. The same while the metadata service lags (every answer 1 s late).
    s.cloud.set_metadata_lag(Duration::from_secs(1));
    let o = s.failover_by_standby(&client, "standby while the metadata service lags 1 s");
    assert!(!lossless || o.failed == 0, "a standby lost requests: {o:?}");
    s.cloud.set_metadata_lag(Duration::ZERO);

    // 6. Crash of the active node (power loss: its processes killed, its link down), with the
    // breakdown from the fake's record and the router.
    let active = s.active(None, "before the crash");
    let other = 1 - active;
    // When the crashed node was the DC, the survivor first elects itself (part of scheduling).
    let was_dc = s.cluster.status().dc == Some(s.cluster.node(active).name.clone());
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
        .find(|r| {
            r.method == kind.write_method() && r.netns.as_deref() == Some(survivor_ns.as_str())
        })
        .expect("the survivor's first request that moves the IP");
    let since = |r: &cloudha_tests::fakecloud::RecordedRequest| {
        r.at.duration_since(wall).unwrap_or_default()
    };
    // The path reaches the survivor (on Exoscale, first shared with the dead node until its
    // detach: `reached`), then the survivor alone (`switched`).
    let switches = s.net.switches();
    let reached = switches
        .iter()
        .find(|w| w.at > at && w.to.contains(&other))
        .expect("the router switched to the survivor")
        .clone();
    let switched = switches
        .iter()
        .find(|w| w.at > at && w.to == [other])
        .expect("the router switched to the survivor alone")
        .clone();
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
    // Detection: the survivor's Pacemaker hears from corosync that the node is lost.
    let dead = s.cluster.node(active).name.clone();
    let lost = s
        .cluster
        .node(other)
        .logged_at(&format!("Node {dead} state is now lost"), wall)
        .and_then(|t| t.duration_since(wall).ok());
    let ms = |d: Option<Duration>| d.map_or_else(|| "?".into(), |d| d.as_millis().to_string());
    let line = format!(
        "| crash breakdown | detection (the survivor's Pacemaker hears {dead} is lost): {} ms; scheduling until the survivor's floatip asks the API: {} ms{}; floatip until its first {} that moves the IP: {} ms; API until the fake's holders changed: {} ms{}; the path switched in {} ms; first answer after that: {} ms (floatip's start took {} ms, Pacemaker says) | | | |",
        ms(lost),
        ms(lost.map(|l| since(first_call).saturating_sub(l))),
        if was_dc {
            format!(" ({dead} was the DC: the survivor elected itself first)")
        } else {
            String::new()
        },
        kind.write_method(),
        since(assign).saturating_sub(since(first_call)).as_millis(),
        reached.at.duration_since(at).saturating_sub(since(assign)).as_millis(),
        if reached.at == switched.at {
            String::new()
        } else {
            format!(
                " (shared with the dead node for {} ms more, until its detach)",
                switched.at.duration_since(reached.at).as_millis()
            )
        },
        reached.done.duration_since(reached.at).as_millis(),
        first_ok.saturating_duration_since(reached.done).as_millis(),
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
