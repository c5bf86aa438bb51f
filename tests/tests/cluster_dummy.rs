//! The cluster harness itself, proven with Pacemaker's own `ocf:heartbeat:Dummy`: two nodes
//! come up, a resource moves on standby and after a crash, and nothing is left behind.

use cloudha_tests::cluster::Cluster;
use std::time::Duration;

#[test]
fn dummy_resources_move_on_standby_and_crash() {
    let cluster = Cluster::new();
    let names: Vec<String> = cluster
        .nodes()
        .iter()
        .map(|n| n.netns.name.clone())
        .collect();
    cluster.boot();
    cluster.configure(
        "primitive base ocf:heartbeat:Dummy op monitor interval=5s\n\
         clone base-clone base\n\
         primitive single ocf:heartbeat:Dummy op monitor interval=5s\n\
         colocation single-with-base inf: single base-clone\n",
    );
    let s = cluster.wait_until(
        "base on both nodes, single on one",
        Duration::from_secs(30),
        |s| s.running_on("base").len() == 2 && s.single_node_of("single").is_some(),
    );
    let first = s.single_node_of("single").expect("single runs");
    let i = cluster.index_of(&first);
    let other = cluster.node(1 - i).name.clone();

    cluster.standby(i, true);
    cluster.wait_until(
        "single moved off the standby node",
        Duration::from_secs(30),
        |s| {
            s.single_node_of("single").as_deref() == Some(other.as_str())
                && s.running_on("base") == vec![other.clone()]
        },
    );
    cluster.standby(i, false);
    cluster.wait_until("base back on both nodes", Duration::from_secs(30), |s| {
        s.running_on("base").len() == 2
    });

    // A ban (a -INFINITY location constraint) is seen as one, and moves the resource.
    let s = cluster.status();
    assert!(s.bans.is_empty(), "{:?}", s.bans);
    let holder = s.single_node_of("single").expect("single runs");
    cluster.sh("crm_resource", &["--ban", "-r", "single", "-N", &holder]);
    let s = cluster.wait_until(
        "single banned from its node",
        Duration::from_secs(30),
        |s| s.single_node_of("single").is_some_and(|n| n != holder),
    );
    assert!(
        s.bans
            .iter()
            .any(|b| b.resource == "single" && b.node == holder && b.weight <= -1_000_000),
        "{:?}\n{}",
        s.bans,
        s.xml
    );
    cluster.sh("crm_resource", &["--clear", "-r", "single"]);
    cluster.wait_until("the ban cleared", Duration::from_secs(30), |s| {
        s.bans.is_empty()
    });

    // Crash the node that runs `single` now.
    let s = cluster.status();
    let holder = s.single_node_of("single").expect("single runs");
    let h = cluster.index_of(&holder);
    let survivor = cluster.node(1 - h).name.clone();
    cluster.crash(h);
    assert!(
        cluster.node(h).processes().is_empty(),
        "the crashed node left processes"
    );
    let s = cluster.wait_until("single on the survivor", Duration::from_secs(30), |s| {
        s.single_node_of("single").as_deref() == Some(survivor.as_str())
    });
    assert_eq!(s.online_nodes(), vec![survivor.clone()]);
    assert_eq!(s.max_fail_count("single"), 0, "{}", s.xml);

    let dir = cluster.dir().to_path_buf();
    let left: Vec<i32> = cluster.nodes().iter().flat_map(|n| n.processes()).collect();
    assert!(!left.is_empty(), "the surviving node runs nothing?");
    drop(cluster);
    for pid in left {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(stat.is_empty(), "process left behind: {stat}");
    }
    for n in &names {
        assert!(
            !std::path::Path::new("/run/netns").join(n).exists(),
            "{n} left behind"
        );
    }
    assert!(!dir.exists(), "{} left behind", dir.display());
}
