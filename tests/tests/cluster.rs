//! cloudha end to end: a real two-node Pacemaker cluster running the installed agents with the
//! README's `crm configure` block of each cloud (tests/src/clouds.rs: DigitalOcean, Hetzner,
//! Exoscale, Vultr), read from the file the README includes, against the fake cloud serving each
//! node its own metadata service at 169.254.169.254 and the API on the node's loopback. One
//! scenario list runs per cloud; each step is asserted from `crm_mon --output-as=xml` and from
//! the fake's record of who holds the IP (exactly one holder at every step).

use cloudha_tests::clouds::{Cloud, ANCHORS, API_PORT, IP, SERVERS, TOKEN};
use cloudha_tests::cluster::{Cluster, ClusterStatus, HAPROXY_CFG};
use cloudha_tests::fakecloud::{FakeCloud, Listener};
use cloudha_tests::{agent_bin, require_program, Installed};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Long enough for a 10 s monitor to notice a failure and Pacemaker to recover, on a busy CI.
const RECOVERY: Duration = Duration::from_secs(60);
/// The recurring monitor's interval in every README block (ms, as crm_mon reports it).
const MONITOR_MS: u64 = 10_000;

/// Watches the fake's holders of the IP every 20 ms for the whole scenario list, between the
/// steps too: every time the IP had several holders at once (Exoscale's attach-then-detach
/// makes one such window per move, for as long as the detach takes).
struct HolderWatch {
    stop: Arc<AtomicBool>,
    windows: Arc<Mutex<Vec<Duration>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HolderWatch {
    fn start(cloud: &FakeCloud) -> HolderWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let windows: Arc<Mutex<Vec<Duration>>> = Arc::default();
        let (c, s, w) = (cloud.clone(), Arc::clone(&stop), Arc::clone(&windows));
        let thread = std::thread::spawn(move || {
            let mut since: Option<Instant> = None;
            let close = |since: &mut Option<Instant>| {
                if let Some(t) = since.take() {
                    w.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(t.elapsed());
                }
            };
            while !s.load(Ordering::SeqCst) {
                if c.holders(IP).len() > 1 {
                    since.get_or_insert_with(Instant::now);
                } else {
                    close(&mut since);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            close(&mut since);
        });
        HolderWatch {
            stop,
            windows,
            thread: Some(thread),
        }
    }

    /// Stop watching; every window with several holders, in order.
    fn finish(mut self) -> Vec<Duration> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.windows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for HolderWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The cluster and the fake cloud it talks to, set up as a user would (plus the fake).
struct Setup {
    cloud_kind: Cloud,
    cluster: Cluster,
    cloud: FakeCloud,
    _installed: Installed,
}

impl Setup {
    /// Two nodes with the installed agents, each with its own haproxy.cfg and a root-only token
    /// file; the fake of `kind` serves metadata and API in each node.
    fn new(kind: Cloud) -> Setup {
        for a in ["anchorip", "floatip", "haproxy"] {
            agent_bin(a);
        }
        require_program("/usr/sbin/haproxy");
        require_program("/usr/bin/curl");
        let installed = Installed::new();
        let cluster = Cluster::new();
        cluster.stage_agents(&installed);

        let cloud = kind.serve(&cluster);
        for (i, node) in cluster.nodes().iter().enumerate() {
            let cfg = HAPROXY_CFG
                .replace("@ANCHOR@", kind.bind(i))
                .replace("@NODE@", &node.name);
            cluster.stage(i, "/etc/haproxy/haproxy.cfg", cfg.as_bytes(), 0o644);
        }
        cluster.boot();
        Setup {
            cloud_kind: kind,
            cluster,
            cloud,
            _installed: installed,
        }
    }

    fn server_of(&self, node: &str) -> u64 {
        SERVERS[self.cluster.index_of(node)]
    }

    fn node_of_server(&self, id: u64) -> String {
        let i = SERVERS
            .iter()
            .position(|d| *d == id)
            .expect("a node's server");
        self.cluster.node(i).name.clone()
    }

    /// The one holder of the IP in the fake; panics when there are several.
    fn sole_holder(&self) -> Option<u64> {
        let holders = self.cloud.holders(IP);
        assert!(
            holders.len() <= 1,
            "{IP} has several holders: {holders:?}\n{}",
            self.cluster.status().xml
        );
        holders.first().copied()
    }

    /// Wait until `resource` runs on exactly one node and the fake says that node's server is
    /// the one and only holder of the IP; returns the node.
    fn wait_for_holder(&self, resource: &str, expected: Option<&str>, what: &str) -> String {
        let end = Instant::now() + RECOVERY;
        loop {
            let s = self.cluster.status();
            if let Some(node) = s.single_node_of(resource) {
                let holders = self.cloud.holders(IP);
                let right_node = expected.is_none_or(|e| e == node);
                if right_node && holders == [self.server_of(&node)] {
                    return node;
                }
            }
            if Instant::now() >= end {
                panic!(
                    "{what}: after {RECOVERY:?} {resource} runs on {:?}, the fake says {:?} hold {IP}\n{}\n{}",
                    s.running_on(resource),
                    self.cloud.holders(IP),
                    s.xml,
                    self.cluster.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Everything started: both clones on every online, non-standby node.
    fn wait_clones_everywhere(&self, what: &str) -> ClusterStatus {
        let anchor = self.cloud_kind.anchor();
        self.cluster.settle(RECOVERY);
        self.cluster.wait_until(what, RECOVERY, |s| {
            let eligible: Vec<String> = s
                .nodes
                .iter()
                .filter(|n| n.online && !n.standby)
                .map(|n| n.name.clone())
                .collect();
            s.running_on(anchor) == eligible && s.running_on("lb") == eligible
        })
    }

    /// HAProxy of `node` answers on the address it binds (from inside that node).
    fn assert_haproxy_answers(&self, node: &str) {
        let i = self.cluster.index_of(node);
        let at = self.cloud_kind.bind(i);
        let out = self.cluster.node(i).run(
            "curl",
            &["-sS", "--max-time", "5", &format!("http://{at}/")],
        );
        let body = String::from_utf8_lossy(&out.stdout);
        if !(out.status.success() && body.trim() == node) {
            let n = self.cluster.node(i);
            let ss = n.run("ss", &["-ltnp"]);
            let addr = n.run("ip", &["-o", "addr"]);
            let ps = n.run("ps", &["-eo", "pid,ppid,pgid,stat,lstart,args"]);
            panic!(
                "HAProxy on {node} at {at}: {body} {}\n{}\n{}\n{}\n{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&ss.stdout),
                String::from_utf8_lossy(&addr.stdout),
                String::from_utf8_lossy(&ps.stdout),
                self.cluster.status().xml
            );
        }
    }

    fn assert_nothing_banned(&self, s: &ClusterStatus) {
        for r in [self.cloud_kind.anchor(), "lb", "fip"] {
            assert_eq!(s.max_fail_count(r), 0, "{r} has failures:\n{}", s.xml);
        }
        assert!(
            s.bans.is_empty(),
            "unexpected constraints against nodes: {:?}",
            s.bans
        );
    }

    /// The address resource put its address where the block says, on every node.
    fn assert_addresses(&self) {
        for (i, n) in self.cluster.nodes().iter().enumerate() {
            let (nic, want) = match self.cloud_kind {
                Cloud::DigitalOcean => ("eth0", format!("{}/16", ANCHORS[i])),
                Cloud::Hetzner | Cloud::Exoscale | Cloud::Vultr => ("lo", format!("{IP}/32")),
            };
            let addrs = n.netns.addresses(nic);
            assert!(
                addrs.contains(&want),
                "{}: {want} missing from {nic}: {addrs:?}",
                n.name
            );
        }
    }

    /// Recurring monitors of the active node: DigitalOcean's read the metadata service only (0
    /// API requests); elsewhere each makes exactly one API read, of the one IP or instance by
    /// the id its start recorded (never a listing), from the active node only.
    fn assert_monitor_requests(&self, active: &str) {
        let (cluster, cloud) = (&self.cluster, &self.cloud);
        let active_id = self.server_of(active);
        let netns = cluster.node(cluster.index_of(active)).netns.name.clone();
        cloud.clear_requests();
        let end = Instant::now() + RECOVERY;
        let api_calls = || -> Vec<_> {
            cloud
                .requests()
                .into_iter()
                .filter(|r| r.is_api_call())
                .collect()
        };
        match self.cloud_kind.monitor_read(cloud, active_id) {
            None => {
                let floatip_reads = || {
                    cloud
                        .requests()
                        .iter()
                        .filter(|r| {
                            r.listener == Listener::Metadata(active_id)
                                && r.path.contains("_ip/ipv4/")
                        })
                        .count()
                };
                while floatip_reads() < 2 {
                    assert!(
                        Instant::now() < end,
                        "no floatip monitor read the metadata service"
                    );
                    std::thread::sleep(Duration::from_millis(250));
                }
                let calls = api_calls();
                assert!(
                    calls.is_empty(),
                    "monitors called the API: {:?}",
                    calls.iter().map(|r| &r.path).collect::<Vec<_>>()
                );
            }
            Some(path) => {
                while api_calls().len() < 2 {
                    assert!(Instant::now() < end, "no floatip monitor read the API");
                    std::thread::sleep(Duration::from_millis(250));
                }
                let calls = api_calls();
                for r in &calls {
                    assert!(
                        r.method == "GET" && r.path == path && r.netns.as_deref() == Some(&netns),
                        "a monitor's request is not the one GET {path} from {active}: {} {} from {:?}",
                        r.method,
                        r.target,
                        r.netns
                    );
                }
                // One read per monitor: consecutive reads are a monitor interval apart (a
                // retry would come within a second).
                for w in calls.windows(2) {
                    let gap = w[1].since_start.saturating_sub(w[0].since_start);
                    assert!(
                        gap >= Duration::from_millis(MONITOR_MS / 2),
                        "two API reads {gap:?} apart: more than one per monitor"
                    );
                }
            }
        }
        let s = cluster.status();
        let fip_monitor = s
            .operation(active, "fip", "monitor", MONITOR_MS)
            .expect("fip's recurring monitor ran");
        assert_eq!(fip_monitor.rc, 0);
        assert_eq!(self.sole_holder(), Some(active_id));
    }
}

/// The scenario list, the same on every cloud: start, HAProxy killed, standby both ways, API
/// faults during a failover, wrong credentials, crash. Exactly one holder after every step.
fn readme_configuration_survives_failures_and_failovers(kind: Cloud) {
    let t0 = Instant::now();
    let setup = Setup::new(kind);
    let (cluster, cloud) = (&setup.cluster, &setup.cloud);
    let anchor = kind.anchor();
    eprintln!("{kind:?}: cluster up in {:?}", t0.elapsed());

    // 1. Everything starts; the IP is held by the node that runs floatip, and by it alone.
    let watch = HolderWatch::start(cloud);
    cluster.configure(&setup.cloud_kind.readme_block());
    setup.wait_clones_everywhere("the address and lb on both nodes");
    let active = setup.wait_for_holder("fip", None, "first start");
    setup.assert_addresses();
    for n in cluster.nodes() {
        setup.assert_haproxy_answers(&n.name);
    }
    setup.assert_nothing_banned(&cluster.status());
    eprintln!("1. started, {IP} on {active} ({:?})", t0.elapsed());

    // ... and its recurring monitors cost what the docs say.
    setup.assert_monitor_requests(&active);
    eprintln!("1. monitors checked ({:?})", t0.elapsed());

    // 2. HAProxy killed on the active node: restarted there; the IP does not move.
    let active_id = setup.server_of(&active);
    let actions_before = cloud.actions().len();
    let a = cluster.index_of(&active);
    let haproxy_pids: Vec<i32> = cluster
        .node(a)
        .processes()
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "haproxy")
        })
        .collect();
    assert!(!haproxy_pids.is_empty(), "no HAProxy runs on {active}");
    for p in &haproxy_pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*p),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let s = cluster.wait_until("lb's failure noticed and lb restarted", RECOVERY, |s| {
        s.fail_counts
            .get(&(active.clone(), "lb".to_string()))
            .copied()
            .unwrap_or(0)
            >= 1
            && s.running_on("lb").len() == 2
    });
    assert_eq!(
        s.single_node_of("fip").as_deref(),
        Some(active.as_str()),
        "{}",
        s.xml
    );
    assert_eq!(setup.sole_holder(), Some(active_id));
    assert_eq!(
        cloud.actions().len(),
        actions_before,
        "the IP was moved: {:?}",
        cloud.actions()
    );
    setup.assert_haproxy_answers(&active);
    cluster.sh("crm_resource", &["--cleanup", "-r", "lb"]);
    cluster.wait_until("lb's failure cleaned up", RECOVERY, |s| {
        s.max_fail_count("lb") == 0 && s.running_on("lb").len() == 2
    });
    assert_eq!(setup.sole_holder(), Some(active_id));
    eprintln!(
        "2. HAProxy restarted on {active}, IP stayed ({:?})",
        t0.elapsed()
    );

    // 3. Standby moves the IP to the other node, and back when allowed.
    let other = cluster.node(1 - a).name.clone();
    cluster.standby(a, true);
    setup.wait_for_holder("fip", Some(&other), "standby of the active node");
    cluster.standby(a, false);
    setup.wait_clones_everywhere("the node back from standby runs the clones");
    assert_eq!(setup.sole_holder(), Some(setup.server_of(&other)));
    setup.assert_haproxy_answers(&active);
    setup.assert_haproxy_answers(&other);
    cluster.standby(1 - a, true);
    setup.wait_for_holder("fip", Some(&active), "standby of the other node");
    cluster.standby(1 - a, false);
    let s = setup.wait_clones_everywhere("both nodes run the clones again");
    setup.assert_nothing_banned(&s);
    assert_eq!(setup.sole_holder(), Some(active_id));
    eprintln!(
        "3. standby moves: {active} -> {other} -> {active} ({:?})",
        t0.elapsed()
    );

    // 5. Rate limits and 5xx (and the cloud's own waits) during a failover: the move
    // completes, nothing is banned.
    cloud.clear_requests();
    let (faults, answered) = kind.failover_faults();
    for f in faults {
        cloud.inject(f);
    }
    cluster.standby(a, true);
    setup.wait_for_holder("fip", Some(&other), "failover through API faults");
    let api_calls = cloud.api_request_count();
    assert!(
        api_calls > answered,
        "the faults were not all met: {api_calls} API calls for {answered} faulted answers"
    );
    let left = cloud.state_json()["faults"].as_u64();
    assert_eq!(left, Some(0), "faults left unmet");
    cloud.clear_faults();
    let s = cluster.status();
    setup.assert_nothing_banned(&s);
    cluster.standby(a, false);
    setup.wait_clones_everywhere("both nodes run the clones after the faults");
    assert_eq!(setup.sole_holder(), Some(setup.server_of(&other)));
    eprintln!(
        "5. failover through {answered} faulted answers: {api_calls} API calls ({:?})",
        t0.elapsed()
    );

    // 6. Wrong credentials: floatip fails with its reason in crm_mon; nothing else breaks,
    // and the IP stays with the one node it was on.
    let before = setup.sole_holder().expect("someone holds the IP");
    let holder_node = setup.node_of_server(before);
    let h = cluster.index_of(&holder_node);
    kind.credentials(cloud, false);
    let survivor = cluster.node(1 - h).name.clone();
    cluster.standby(h, true);
    let s = cluster.wait_until(
        "floatip's start refused with wrong credentials",
        RECOVERY,
        |s| {
            s.failures
                .iter()
                .any(|f| f.op_key.starts_with("fip_start") && f.exitcode == 6)
                && s.running_on("fip").is_empty()
                && s.running_on(anchor) == [survivor.clone()]
                && s.running_on("lb") == [survivor.clone()]
        },
    );
    let failure = s
        .failures
        .iter()
        .find(|f| f.op_key.starts_with("fip_start"))
        .expect("the failure");
    // What the operator must read survives Pacemaker's cut of long reasons (~128 characters).
    assert!(
        failure.exitreason.contains("the API rejected the token"),
        "the exit reason does not say the credentials were rejected: {failure:?}"
    );
    let text =
        String::from_utf8_lossy(&cluster.live_node().run("crm_mon", &["-1"]).stdout).into_owned();
    assert!(
        text.contains(&failure.exitreason),
        "crm_mon does not show {:?}:\n{text}",
        failure.exitreason
    );
    assert_eq!(s.running_on(anchor), vec![survivor.clone()], "{}", s.xml);
    assert_eq!(s.running_on("lb"), vec![survivor.clone()], "{}", s.xml);
    assert_eq!(setup.sole_holder(), Some(before));
    setup.assert_haproxy_answers(&survivor);
    eprintln!(
        "6. wrong credentials: {:?} ({:?})",
        failure.exitreason,
        t0.elapsed()
    );
    kind.credentials(cloud, true);
    cluster.standby(h, false);
    cluster.sh("crm_resource", &["--cleanup", "-r", "fip"]);
    setup.wait_clones_everywhere("clones back after the credentials fix");
    let active = setup.wait_for_holder("fip", None, "floatip back after the credentials fix");
    let s = cluster.wait_until("failures cleaned up", RECOVERY, |s| s.failures.is_empty());
    setup.assert_nothing_banned(&s);

    // 4. The active node crashes: the survivor holds the IP, alone.
    let a = cluster.index_of(&active);
    let survivor = cluster.node(1 - a).name.clone();
    let crashed_at = cluster.crash(a);
    assert!(cluster.node(a).processes().is_empty());
    setup.wait_for_holder("fip", Some(&survivor), "crash of the active node");
    eprintln!(
        "4. crash of {active}: {IP} on {survivor} after {:?} ({:?})",
        crashed_at.elapsed(),
        t0.elapsed()
    );
    let s = cluster.status();
    assert_eq!(s.online_nodes(), vec![survivor.clone()]);
    assert_eq!(s.running_on("lb"), vec![survivor.clone()]);
    setup.assert_haproxy_answers(&survivor);

    // Between the steps too: several holders only while a start moves the IP (Exoscale's
    // attach, then detach), never left so: no window outlasts fip's start timeout (60 s).
    let windows = watch.finish();
    let longest = windows.iter().max().copied().unwrap_or_default();
    eprintln!(
        "{kind:?}: {} windows with several holders, the longest {longest:?}",
        windows.len()
    );
    if kind == Cloud::Exoscale {
        assert!(
            longest < Duration::from_secs(60),
            "{IP} had several holders for {longest:?}"
        );
    } else {
        assert!(
            windows.is_empty(),
            "{IP} had several holders on {kind:?}: {windows:?}"
        );
    }
    eprintln!("{kind:?}: every scenario passed in {:?}", t0.elapsed());
}

#[test]
fn digitalocean_readme_configuration_survives_failures_and_failovers() {
    readme_configuration_survives_failures_and_failovers(Cloud::DigitalOcean);
}

#[test]
fn hetzner_readme_configuration_survives_failures_and_failovers() {
    readme_configuration_survives_failures_and_failovers(Cloud::Hetzner);
}

#[test]
fn exoscale_readme_configuration_survives_failures_and_failovers() {
    readme_configuration_survives_failures_and_failovers(Cloud::Exoscale);
}

#[test]
fn vultr_readme_configuration_survives_failures_and_failovers() {
    readme_configuration_survives_failures_and_failovers(Cloud::Vultr);
}

#[test]
fn tutorial_configuration_runs_unchanged() {
    let setup = Setup::new(Cloud::DigitalOcean);
    let (cluster, cloud) = (&setup.cluster, &setup.cloud);
    // The tutorial's commands, with the API pointed at the fake (its only addition).
    cluster.sh("crm", &["configure", "property", "no-quorum-policy=ignore"]);
    cluster.configure(&format!(
        "primitive FloatIP ocf:digitalocean:floatip \\\n    params do_token={TOKEN} floating_ip={IP} api_url=http://127.0.0.1:{API_PORT}\n"
    ));
    let first = setup.wait_for_holder("FloatIP", None, "tutorial start");
    let s = cluster.status();
    assert!(
        s.resources
            .iter()
            .any(|r| r.id == "FloatIP" && r.agent == "ocf:digitalocean:floatip"),
        "{}",
        s.xml
    );
    let i = cluster.index_of(&first);
    let other = cluster.node(1 - i).name.clone();
    cluster.standby(i, true);
    setup.wait_for_holder("FloatIP", Some(&other), "tutorial failover");
    let s = cluster.status();
    assert_eq!(s.max_fail_count("FloatIP"), 0, "{}", s.xml);
    assert!(s.failures.is_empty(), "{:?}", s.failures);
    assert_eq!(cloud.holders(IP), [setup.server_of(&other)]);
}
