//! The haproxy agent as a clone in a real two-node Pacemaker cluster (`cloudha_tests::cluster`):
//! started on both nodes by Pacemaker, a HAProxy killed with SIGKILL is noticed by the recurring
//! monitor and restarted there, and stopping the clone leaves no HAProxy on either node.

use cloudha_tests::cluster::Cluster;
use cloudha_tests::Installed;
use std::time::Duration;

/// Each node's HAProxy answers with the node's name on its own loopback.
const CFG: &str = "global\n    maxconn 64\n\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\n\
frontend www\n    bind 127.0.0.1:8080\n    http-request return status 200 content-type text/plain string \"@NODE@\"\n";

fn answer(c: &Cluster, i: usize) -> Option<String> {
    let out = c.node(i).run(
        "curl",
        &["-sf", "--max-time", "2", "http://127.0.0.1:8080/"],
    );
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Live HAProxy processes in node `i`'s namespace.
fn haproxies(c: &Cluster, i: usize) -> Vec<i32> {
    c.node(i)
        .processes()
        .into_iter()
        .filter(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
            comm.trim() == "haproxy" && !zombie
        })
        .collect()
}

/// The master pid in node `i`'s pid file (a pid of the node's own pid namespace).
fn master_of(c: &Cluster, i: usize) -> i32 {
    let out = c
        .node(i)
        .run("cat", &["/run/resource-agents/cloudha/haproxy-lb.pid"]);
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no pid file on node {i}: {out:?}"))
}

fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + limit;
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    f()
}

#[test]
fn a_clone_in_a_real_cluster_recovers_from_a_killed_haproxy() {
    let c = Cluster::new();
    let installed = Installed::new();
    c.stage_agents(&installed);
    let names: Vec<String> = c.nodes().iter().map(|n| n.name.clone()).collect();
    for (i, name) in names.iter().enumerate() {
        c.stage(
            i,
            "/etc/haproxy/lb.cfg",
            CFG.replace("@NODE@", name).as_bytes(),
            0o644,
        );
    }
    c.boot();
    c.configure(
        "primitive lb ocf:cloudha:haproxy \\\n\
         \x20   params config=/etc/haproxy/lb.cfg drain_time=2 \\\n\
         \x20   op start timeout=30s op stop timeout=30s \\\n\
         \x20   op monitor interval=2s timeout=20s \\\n\
         \x20   op monitor interval=3s timeout=20s OCF_CHECK_LEVEL=10\n\
         clone lb-clone lb meta interleave=true\n",
    );
    c.wait_until("lb started on both nodes", Duration::from_secs(60), |s| {
        s.running_on("lb").len() == 2
    });
    for (i, name) in names.iter().enumerate() {
        assert!(
            eventually(Duration::from_secs(5), || answer(&c, i).as_deref()
                == Some(name.as_str())),
            "{name} does not serve: {:?}",
            answer(&c, i)
        );
    }

    // kill -9 of node 0's master: the recurring monitor reports it, Pacemaker restarts it there.
    let master = master_of(&c, 0);
    let node1_master = |c: &Cluster| master_of(c, 1);
    let node1_before = node1_master(&c);
    // The pid is the node's own (each node has a pid namespace): kill it from inside.
    let out = c.node(0).run("kill", &["-9", &master.to_string()]);
    assert!(out.status.success(), "kill -9 {master} on node 0: {out:?}");
    let node0 = names[0].clone();
    let s = c.wait_until(
        "a failure of lb recorded on node 0 and lb running on both nodes again",
        Duration::from_secs(60),
        |s| {
            s.fail_counts
                .iter()
                .any(|((n, r), count)| *n == node0 && r.starts_with("lb") && *count >= 1)
                && s.running_on("lb").len() == 2
        },
    );
    assert!(
        s.failures
            .iter()
            .any(|f| f.node == node0 && f.exitreason.contains("master")),
        "the agent's reason is not in the CIB: {:?}",
        s.failures
    );
    assert!(
        eventually(Duration::from_secs(10), || answer(&c, 0).as_deref()
            == Some(node0.as_str())),
        "node 0 does not serve after the restart"
    );
    // Node 1's HAProxy (same argv, same paths, another mount namespace on this kernel) was
    // never touched: same master, no failure there.
    assert_eq!(answer(&c, 1).as_deref(), Some(names[1].as_str()));
    assert_eq!(
        node1_master(&c),
        node1_before,
        "node 1's HAProxy was restarted"
    );
    let s = c.status();
    assert!(
        !s.fail_counts
            .iter()
            .any(|((n, r), count)| *n == names[1] && r.starts_with("lb") && *count > 0),
        "a failure on node 1: {:?}",
        s.fail_counts
    );

    // Stopping the clone leaves no HAProxy anywhere.
    c.sh("crm", &["resource", "stop", "lb-clone"]);
    c.wait_until("lb stopped", Duration::from_secs(60), |s| {
        s.running_on("lb").is_empty()
    });
    for (i, name) in names.iter().enumerate() {
        assert!(
            eventually(Duration::from_secs(5), || haproxies(&c, i).is_empty()),
            "HAProxy left on {name}: {:?}",
            haproxies(&c, i)
        );
    }
}
