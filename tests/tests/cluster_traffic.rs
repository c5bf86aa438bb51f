//! What the clients see: the README's DigitalOcean configuration on the real two-node cluster,
//! with the fake cloud's network carrying the floating IP's packets to the droplet the fake API
//! says holds it (tests/src/traffic.rs), two app servers behind the balancers, and a client
//! sending a request every 50 ms on a new connection. For each event (a HAProxy reload under
//! load, HAProxy killed, standby, crash of the active node) it asserts where the answers come
//! from before and after, that the app servers saw the client through the right balancer, and
//! that a reload loses no request; it reports the client-visible outage, the failed requests and
//! the crash's breakdown (they are measurements, not assertions: BENCHMARKS.md has them, from
//! bench/traffic.sh). `CLOUDHA_TRAFFIC_REPORT=FILE` appends the report to FILE as well.

use cloudha_tests::cluster::{Cluster, CRM_CONFIGURE};
use cloudha_tests::fakecloud::{FakeCloud, Fault, Scope};
use cloudha_tests::traffic::{self, balancer_of, CloudNet, Delivery, Sample, CLIENT};
use cloudha_tests::{agent_bin, require_program, Installed};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const TOKEN: &str = "traffic-test-token";
const API_PORT: u16 = 8080;
const DROPLETS: [u64; 2] = [101, 102];
const ANCHORS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 17, 0, 5), Ipv4Addr::new(10, 17, 0, 6)];
/// Long enough for a 10 s monitor to notice a failure and Pacemaker to recover, on a busy CI.
const RECOVERY: Duration = Duration::from_secs(60);
const EVERY: Duration = Duration::from_millis(50);

struct Setup {
    net: CloudNet,
    cluster: Cluster,
    cloud: Arc<FakeCloud>,
    _installed: Installed,
    report: Vec<String>,
}

impl Setup {
    fn new() -> Setup {
        for a in ["anchorip", "floatip", "haproxy"] {
            agent_bin(a);
        }
        require_program("/usr/sbin/haproxy");
        let installed = Installed::new();
        let cluster = Cluster::new();
        cluster.stage_agents(&installed);
        let names: Vec<&str> = cluster
            .nodes()
            .iter()
            .map(|n| n.netns.name.as_str())
            .collect();
        let net = CloudNet::new(&names, IP, Delivery::ToAnchor(ANCHORS.to_vec()));

        let cloud = Arc::new(FakeCloud::start());
        cloud.add_token(TOKEN);
        cloud.add_ip(&IP.to_string(), None);
        for (i, node) in cluster.nodes().iter().enumerate() {
            let id = DROPLETS[i];
            cloud.register_droplet(id);
            cloud.set_anchor(id, &ANCHORS[i].to_string(), "255.255.0.0", "10.17.0.1");
            cloud.serve_metadata_in_netns(
                id,
                &node.netns.name,
                "169.254.169.254:80".parse().unwrap(),
            );
            cloud.serve_api_in_netns(
                &node.netns.name,
                format!("127.0.0.1:{API_PORT}").parse().unwrap(),
            );
            let cfg = CloudNet::haproxy_cfg(&ANCHORS[i].to_string());
            cluster.stage(i, "/etc/haproxy/haproxy.cfg", cfg.as_bytes(), 0o644);
            cluster.stage(
                i,
                "/etc/cloudha/do-token",
                format!("{TOKEN}\n").as_bytes(),
                0o600,
            );
        }
        cluster.boot();
        let real = "api_url=https://api.digitalocean.com";
        assert!(
            CRM_CONFIGURE.contains(real),
            "docs/crm-configure.txt no longer names {real}"
        );
        let mut block =
            CRM_CONFIGURE.replace(real, &format!("api_url=http://127.0.0.1:{API_PORT}"));
        if let Some(interval) = monitor_interval() {
            assert!(
                block.contains("interval=10s"),
                "the README block has no 10 s monitor"
            );
            block = block.replace("interval=10s", &format!("interval={interval}"));
        }
        cluster.configure(&block);

        let mut setup = Setup {
            net,
            cluster,
            cloud,
            _installed: installed,
            report: Vec::new(),
        };
        let cloud = setup.cloud.clone();
        setup.net.follow(move || {
            let holder = cloud.holder(&IP.to_string())?;
            DROPLETS.iter().position(|d| *d == holder)
        });
        setup
    }

    /// The node whose droplet the fake says holds the IP, once fip runs there alone (and it is
    /// `expected`, if given).
    fn active(&self, expected: Option<usize>, what: &str) -> usize {
        let end = Instant::now() + RECOVERY;
        loop {
            let s = self.cluster.status();
            if let Some(node) = s.single_node_of("fip") {
                let i = self.cluster.index_of(&node);
                if self.cloud.holder(&IP.to_string()) == Some(DROPLETS[i])
                    && expected.is_none_or(|e| e == i)
                {
                    return i;
                }
            }
            assert!(
                Instant::now() < end,
                "{what}: fip on {:?}, the fake says {:?}\n{}\n{}",
                s.running_on("fip"),
                self.cloud.holder(&IP.to_string()),
                s.xml,
                self.cluster.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Wait until `n` answers in a row came through balancer `node` after `since`.
    fn wait_answers_via(
        &self,
        client: &traffic::Client,
        node: usize,
        since: Instant,
        n: usize,
        what: &str,
    ) {
        let end = Instant::now() + RECOVERY;
        loop {
            let samples = client.samples();
            let after: Vec<&Sample> = samples.iter().filter(|s| s.start >= since).collect();
            let run = after
                .iter()
                .rev()
                .take_while(|s| s.result.as_deref().ok().and_then(balancer_of) == Some(node))
                .count();
            if run >= n {
                return;
            }
            if Instant::now() >= end {
                let tail: Vec<_> = after.iter().rev().take(10).map(|s| &s.result).collect();
                panic!(
                    "{what}: no {n} answers in a row through node{} within {RECOVERY:?}; last: {tail:?}\n{}\n{}\n{}",
                    node + 1,
                    self.net.describe(),
                    self.cluster.status().xml,
                    self.cluster.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Put the active node in standby, check the IP and the answers move to the other node,
    /// report the outage under `event`, then bring the node back (the IP stays: stickiness).
    fn failover_by_standby(&mut self, client: &traffic::Client, event: &str) {
        let active = self.active(None, &format!("before: {event}"));
        let other = 1 - active;
        let at = Instant::now();
        self.cluster.standby(active, true);
        self.active(Some(other), event);
        self.wait_answers_via(client, other, at, 20, event);
        self.measure(client, event, at);
        self.cluster.standby(active, false);
        self.cluster.settle(RECOVERY);
        self.active(Some(other), &format!("after: {event}"));
    }

    /// The outage the client saw around `at`, reported under `event`.
    fn measure(&mut self, client: &traffic::Client, event: &str, at: Instant) -> traffic::Outage {
        let o = traffic::outage(&client.samples(), at);
        let via = |x: &Option<(Instant, String)>| {
            x.as_ref()
                .and_then(|(_, b)| balancer_of(b))
                .map(|i| format!("node{}", i + 1))
                .unwrap_or_else(|| "-".into())
        };
        let line = format!(
            "| {event} | {} | {} | {} → {} | {} |",
            o.millis()
                .map(|m| m.to_string())
                .unwrap_or_else(|| "?".into()),
            o.failed,
            via(&o.last_before),
            via(&o.first_after),
            if o.errors.is_empty() {
                "-".to_string()
            } else {
                o.errors
                    .iter()
                    .map(|(e, n)| format!("{n}× {e}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        eprintln!("{line}");
        self.report.push(line);
        o
    }
}

/// The monitor interval to run with instead of the README's 10 s (`CLOUDHA_MONITOR_INTERVAL`,
/// e.g. `5s`: benchmarks compare).
fn monitor_interval() -> Option<String> {
    std::env::var("CLOUDHA_MONITOR_INTERVAL")
        .ok()
        .filter(|v| !v.is_empty())
}

impl Drop for Setup {
    fn drop(&mut self) {
        let mut text = format!(
            "corosync token {} ms, monitor interval {}\n\n",
            cloudha_tests::cluster::corosync_token_ms(),
            monitor_interval().unwrap_or_else(|| "10s".into())
        );
        text.push_str(
            "| event | client-visible outage (ms) | failed requests | balancer before → after | failures seen |\n| --- | --- | --- | --- | --- |\n",
        );
        for l in &self.report {
            text.push_str(l);
            text.push('\n');
        }
        eprintln!("{text}");
        if let Some(path) = std::env::var_os("CLOUDHA_TRAFFIC_REPORT") {
            let _ = std::fs::write(path, text);
        }
    }
}

#[test]
fn what_the_clients_see_through_reload_kill_standby_and_crash() {
    let mut s = Setup::new();
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
