//! Fencing on the real two-node cluster: the README's DigitalOcean block plus its Fencing block
//! (docs/crm-configure-fencing.txt), with `fence_cloudha` installed in each node's /usr/sbin and
//! the fake cloud powering droplets off and on. "Powered off" kills that node's namespaces
//! exactly as a crash does (`Cluster::power_off`), "on" boots it fresh (`Cluster::power_on`), so
//! the fencing here is real. Each scenario is asserted from crm_mon, `stonith_admin --history`
//! and the fake's record (its power actions and the requests that moved the IP).

use cloudha_tests::cluster::{Cluster, ClusterStatus, CRM_CONFIGURE, HAPROXY_CFG};
use cloudha_tests::fakecloud::{FakeCloud, PowerAction, RecordedRequest};
use cloudha_tests::{agent_bin, require_program, Installed};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

const IP: &str = "203.0.113.10";
const TOKEN: &str = "cluster-fence-token";
const API_PORT: u16 = 8080;
const DROPLETS: [u64; 2] = [101, 102];
const ANCHORS: [&str; 2] = ["10.17.0.5", "10.17.0.6"];
/// The README's fencing block.
const CRM_FENCING: &str = include_str!("../../docs/crm-configure-fencing.txt");
/// Detection, the fencing delays (priority-fencing-delay 5 s, pcmk_delay_max 2 s), the power
/// actions and floatip's start, on a busy CI machine.
const RECOVERY: Duration = Duration::from_secs(90);
/// How long each power action stays in progress at the fake.
const POWER_TIME: Duration = Duration::from_secs(1);

struct Setup {
    cluster: Arc<Cluster>,
    cloud: FakeCloud,
    _installed: Installed,
}

impl Setup {
    fn new() -> Setup {
        for a in ["anchorip", "floatip", "haproxy", "fence_cloudha"] {
            agent_bin(a);
        }
        require_program("/usr/sbin/haproxy");
        require_program("/usr/sbin/stonith_admin");
        let installed = Installed::new();
        let cluster = Arc::new(Cluster::new());
        cluster.stage_agents(&installed);
        cluster.stage_fence_agent(&installed);

        let cloud = FakeCloud::start();
        cloud.add_token(TOKEN);
        cloud.add_ip(IP, None);
        cloud.set_power_time(POWER_TIME);
        for (i, node) in cluster.nodes().iter().enumerate() {
            let id = DROPLETS[i];
            cloud.register_droplet(id);
            // Droplets named as the nodes: the fencer finds them by `list`, no host map.
            cloud.name_droplet(id, &node.name);
            cloud.set_anchor(id, ANCHORS[i], "255.255.0.0", "10.17.0.1");
            cloud.serve_metadata_in_netns(
                id,
                &node.netns.name,
                "169.254.169.254:80".parse().unwrap(),
            );
            cloud.serve_api_in_netns(
                &node.netns.name,
                format!("127.0.0.1:{API_PORT}").parse().unwrap(),
            );
            let cfg = HAPROXY_CFG
                .replace("@ANCHOR@", ANCHORS[i])
                .replace("@NODE@", &node.name);
            cluster.stage(i, "/etc/haproxy/haproxy.cfg", cfg.as_bytes(), 0o644);
            cluster.stage(
                i,
                "/etc/cloudha/do-token",
                format!("{TOKEN}\n").as_bytes(),
                0o600,
            );
        }
        // The cloud's power is the nodes' power.
        let weak: Weak<Cluster> = Arc::downgrade(&cluster);
        cloud.set_power_hook(Some(Arc::new(move |droplet, on| {
            let Some(c) = weak.upgrade() else { return };
            let Some(i) = DROPLETS.iter().position(|d| *d == droplet) else {
                return;
            };
            eprintln!(
                "fake: droplet {droplet} powered {}",
                if on { "on" } else { "off" }
            );
            if on {
                c.power_on(i);
            } else {
                c.power_off(i);
            }
        })));
        cluster.boot();
        Setup {
            cluster,
            cloud,
            _installed: installed,
        }
    }

    /// The README's blocks, with the API URL pointed at the fake (the only change).
    fn readme_blocks() -> String {
        let real = "api_url=https://api.digitalocean.com";
        assert!(CRM_CONFIGURE.contains(real) && CRM_FENCING.contains(real));
        let fake = format!("api_url=http://127.0.0.1:{API_PORT}");
        format!(
            "{}{}",
            CRM_CONFIGURE.replace(real, &fake),
            CRM_FENCING.replace(real, &fake)
        )
    }

    fn droplet_of(&self, node: &str) -> u64 {
        DROPLETS[self.cluster.index_of(node)]
    }

    /// The cluster as node `node` sees it, None while its Pacemaker is not answering (a node
    /// just powered on). `Cluster::status` asks any running node, which may be that one.
    fn status_on(&self, node: &str) -> Option<ClusterStatus> {
        let n = self.cluster.node(self.cluster.index_of(node));
        if !n.is_running() {
            return None;
        }
        let out = n.run("crm_mon", &["-1", "--output-as=xml", "--include=all"]);
        ClusterStatus::parse(&String::from_utf8_lossy(&out.stdout)).ok()
    }

    /// Poll what `node` sees until `ok` holds; panics after RECOVERY with the last state.
    fn wait_on(
        &self,
        node: &str,
        what: &str,
        ok: impl Fn(&ClusterStatus) -> bool,
    ) -> ClusterStatus {
        let end = Instant::now() + RECOVERY;
        loop {
            let s = self.status_on(node);
            match s {
                Some(s) if ok(&s) => return s,
                _ if Instant::now() >= end => panic!(
                    "{what}: waited {RECOVERY:?}; {node} sees:\n{}\nthe fake says {:?} holds {IP}\n{}",
                    s.map(|s| s.xml).unwrap_or_default(),
                    self.cloud.holder(IP),
                    self.cluster.diagnostics()
                ),
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Wait until fip runs on exactly one node (`expected`, if given), as `observer` sees it,
    /// and the fake says that node's droplet holds the IP.
    fn wait_for_holder(&self, observer: &str, expected: Option<&str>, what: &str) -> String {
        let s = self.wait_on(observer, what, |s| {
            s.single_node_of("fip").is_some_and(|node| {
                expected.is_none_or(|e| e == node)
                    && self.cloud.holder(IP) == Some(self.droplet_of(&node))
            })
        });
        s.single_node_of("fip").expect("fip on one node")
    }

    /// Both nodes online with anchor and lb, the fence device started, as `observer` sees it.
    fn wait_all_running(&self, observer: &str, what: &str) -> ClusterStatus {
        self.wait_on(observer, what, |s| {
            let all = vec!["node1".to_string(), "node2".to_string()];
            s.online_nodes().len() == 2
                && s.running_on("anchor") == all
                && s.running_on("lb") == all
                && s.running_on("fence").len() == 1
        })
    }

    /// The POSTs that created assign actions for the IP, with the droplet each named.
    fn assigns(&self) -> Vec<(RecordedRequest, u64)> {
        self.cloud
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path == format!("/v2/reserved_ips/{IP}/actions"))
            .filter_map(|r| {
                let body: serde_json::Value = serde_json::from_str(&r.body).ok()?;
                let d = body.get("droplet_id")?.as_u64()?;
                Some((r, d))
            })
            .collect()
    }

    fn power_actions_on(&self, droplet: u64) -> Vec<PowerAction> {
        self.cloud
            .power_actions()
            .into_iter()
            .filter(|a| a.droplet == droplet)
            .collect()
    }

    /// `stonith_admin --history <node>`, run on `observer`, as (action, target, delegate (who fenced),
    /// status) per event.
    fn fence_history(&self, observer: &str, node: &str) -> Vec<(String, String, String, String)> {
        let n = self.cluster.node(self.cluster.index_of(observer));
        let out = n.run("stonith_admin", &["--history", node, "--output-as=xml"]);
        let out = String::from_utf8_lossy(&out.stdout).into_owned();
        let doc = roxmltree::Document::parse(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        doc.descendants()
            .filter(|n| n.has_tag_name("fence_event"))
            .map(|n| {
                let a = |k: &str| n.attribute(k).unwrap_or("").to_string();
                (a("action"), a("target"), a("delegate"), a("status"))
            })
            .collect()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        // No node boots while the cluster is taken down.
        self.cloud.set_power_hook(None);
    }
}

#[test]
fn a_crashed_active_node_is_fenced_before_the_ip_moves_and_rejoins_as_passive() {
    let t0 = Instant::now();
    let setup = Setup::new();
    let (cluster, cloud) = (&setup.cluster, &setup.cloud);
    cluster.configure(&Setup::readme_blocks());
    setup.wait_all_running("node1", "everything started with fencing on");
    let active = setup.wait_for_holder("node1", None, "first start");
    let passive = cluster
        .nodes()
        .iter()
        .map(|n| n.name.clone())
        .find(|n| *n != active)
        .unwrap();
    // The device's start is a monitor through the fake: the token works.
    let s = setup.status_on(&passive).expect("crm_mon");
    assert!(s.failures.is_empty(), "failures: {:?}", s.failures);
    let logs_from: Vec<usize> = cluster
        .nodes()
        .iter()
        .map(|n| std::fs::metadata(n.dir.join("pacemaker.log")).map_or(0, |m| m.len() as usize))
        .collect();
    assert!(cloud.power_actions().is_empty(), "nobody was fenced yet");
    eprintln!("started, {IP} on {active} ({:?})", t0.elapsed());

    // 1. The active node crashes: it is fenced through the fake, and only then does the IP move.
    let before = SystemTime::now();
    let crashed = cluster.crash(cluster.index_of(&active));
    let survivor = setup.wait_for_holder(&passive, Some(&passive), "failover after the crash");
    let failover = crashed.elapsed();
    let down = setup.power_actions_on(setup.droplet_of(&active));
    let kinds: Vec<(&str, &str)> = down.iter().map(|a| (a.kind.as_str(), a.status)).collect();
    assert_eq!(
        kinds,
        [("power_off", "completed"), ("power_on", "completed")],
        "{down:?}"
    );
    assert!(
        setup
            .power_actions_on(setup.droplet_of(&survivor))
            .is_empty(),
        "the survivor was not touched"
    );
    let off_at = down[0].settled_wall.expect("the power-off settled");
    let moved: Vec<_> = setup
        .assigns()
        .into_iter()
        .filter(|(r, _)| r.at >= before)
        .collect();
    assert_eq!(
        moved.len(),
        1,
        "the IP moved once: {:?}",
        moved.iter().map(|(r, d)| (r.at, *d)).collect::<Vec<_>>()
    );
    assert_eq!(moved[0].1, setup.droplet_of(&survivor));
    assert!(
        moved[0].0.at > off_at,
        "the IP moved ({:?}) before the crashed node's droplet was off ({off_at:?})",
        moved[0].0.at
    );
    let history = setup.fence_history(&survivor, &active);
    assert!(
        history.contains(&(
            "reboot".into(),
            active.clone(),
            survivor.clone(),
            "success".into()
        )),
        "stonith_admin --history {active}: {history:?}"
    );
    eprintln!(
        "1. {active} crashed, fenced by {survivor} (off {:?} after the crash), {IP} on {survivor} {failover:?} after the crash",
        off_at.duration_since(before).unwrap_or_default()
    );

    // 5. The fenced node was powered on again (the reboot's second half): it rejoins as the
    //    passive node and the IP stays put.
    let s = setup.wait_all_running(&survivor, "the fenced node back as passive");
    assert_eq!(s.single_node_of("fip").as_deref(), Some(survivor.as_str()));
    assert_eq!(cloud.holder(IP), Some(setup.droplet_of(&survivor)));
    cluster.settle(RECOVERY);
    std::thread::sleep(Duration::from_secs(3));
    let s = setup.status_on(&survivor).expect("crm_mon");
    assert_eq!(
        s.single_node_of("fip").as_deref(),
        Some(survivor.as_str()),
        "{}",
        s.xml
    );
    let moved: Vec<_> = setup
        .assigns()
        .into_iter()
        .filter(|(r, _)| r.at >= before)
        .collect();
    assert_eq!(
        moved.len(),
        1,
        "the IP did not move again when {active} rejoined"
    );
    assert_eq!(
        setup.fence_history(&survivor, &active).len(),
        1,
        "fenced once"
    );
    assert!(
        setup.fence_history(&survivor, &survivor).is_empty(),
        "{survivor} was never fenced"
    );
    assert_eq!(s.max_fail_count("fip"), 0, "{}", s.xml);
    // Pacemaker no longer runs without fencing ("Blind faith"), on either node, since the
    // fencing block was loaded (before it, the seed CIB has stonith-enabled=false).
    for (n, from) in cluster.nodes().iter().zip(&logs_from) {
        let log = std::fs::read(n.dir.join("pacemaker.log")).unwrap_or_default();
        let since = String::from_utf8_lossy(&log[(*from).min(log.len())..]).into_owned();
        assert!(
            !since.contains("Blind faith"),
            "{}: Pacemaker still runs without fencing",
            n.name
        );
    }
    eprintln!(
        "5. {active} rejoined as passive, {IP} stayed on {survivor} ({:?} in all)",
        t0.elapsed()
    );
}
