//! cloudha's agents under real keepalived, as docs/keepalived.md tells keepalived users to run
//! them: the haproxy agent's monitor as `vrrp_script`, floatip's start as `notify_master`, two
//! balancers in network namespaces (cloudha_tests::keepalived), the fake cloud as DigitalOcean.
//! The keepalived.conf files and commands are the page's own, with only the paths of this test
//! and the fake's API put in.

use cloudha_tests::cluster::HAPROXY_CFG;
use cloudha_tests::fakecloud::FakeCloud;
use cloudha_tests::keepalived::{Node, Pair, API_URL};
use cloudha_tests::Installed;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const DOC: &str = include_str!("../../docs/keepalived.md");
const PRIMARY_CONF: &str = "# /etc/keepalived/keepalived.conf on the primary (lb1, 10.132.0.11)";
const SECONDARY_CONF: &str =
    "# /etc/keepalived/keepalived.conf on the secondary (lb2, 10.132.0.12)";

const TOKEN: &str = "dop_v1_keepalivedtest_0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const WRONG_TOKEN: &str = "dop_v1_revokedlongago_00112233445566778899aabbccddeeff";
const IP: &str = "203.0.113.10";
const DROPLETS: [u64; 2] = [3_170_011, 3_170_012];
/// A bound for every wait (never a performance claim): VRRP's detection takes a few seconds.
const WAIT: Duration = Duration::from_secs(30);
const ACTION_TIME: Duration = Duration::from_secs(1);

/// The fenced block of docs/keepalived.md whose first line is `first`.
fn doc_block(first: &str) -> String {
    let start = DOC
        .find(&format!("```\n{first}\n"))
        .unwrap_or_else(|| panic!("docs/keepalived.md has no block starting with {first:?}"))
        + 4;
    let len = DOC[start..].find("\n```").expect("the block ends");
    format!("{}\n", &DOC[start..start + len])
}

/// One node's files and the documented commands with this test's paths.
struct Lb<'a> {
    node: &'a Node,
    haproxy: PathBuf,
    config: PathBuf,
    token_file: PathBuf,
    keepalived_conf: PathBuf,
}

impl Lb<'_> {
    /// `/usr/lib/ocf/resource.d/cloudha/haproxy --config /etc/haproxy/haproxy.cfg ACTION`.
    fn haproxy(&self, action: &str) -> (i32, String) {
        let config = self.config.display().to_string();
        self.node.run(&self.haproxy, &["--config", &config, action])
    }

    fn haproxy_ok(&self, action: &str, pair: &Pair) {
        let (code, out) = self.haproxy(action);
        assert_eq!(
            code,
            0,
            "{}: haproxy {action}: {out}\n{}",
            self.node.name,
            pair.diagnostics()
        );
    }
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn wait_holder(cloud: &FakeCloud, want: u64, what: &str, pair: &Pair) -> Duration {
    let t = Instant::now();
    while cloud.holder(IP) != Some(want) {
        assert!(
            t.elapsed() < WAIT,
            "{what}: waited {WAIT:?} for {IP} to point at droplet {want}; it points at {:?}\n{}",
            cloud.holder(IP),
            pair.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    t.elapsed()
}

/// Wait for a line holding every needle in `node`'s syslog from line `from` on.
fn expect_line(node: &Node, from: usize, needles: &[&str], what: &str, pair: &Pair) -> String {
    node.syslog
        .wait_for(from, needles, WAIT)
        .unwrap_or_else(|| {
            panic!(
                "{what}: no line with {needles:?} in {}'s log\n{}",
                node.name,
                pair.diagnostics()
            )
        })
}

fn lines_since(node: &Node, from: usize) -> Vec<String> {
    node.syslog.lines().into_iter().skip(from).collect()
}

#[test]
fn keepalived_elects_and_the_agents_move_the_ip() {
    let began = Instant::now();
    let installed = Installed::new();
    let cloud = FakeCloud::start();
    cloud.add_token(TOKEN);
    cloud.add_ip(IP, None);
    // An assign completes after a second, as DigitalOcean's take a few: the notify waits for it.
    cloud.set_action_time(ACTION_TIME);
    let pair = Pair::new(&cloud, DROPLETS);
    let agents = installed.root().join("usr/lib/ocf/resource.d");

    // Each node's files: HAProxy binding its private address, its token file (plain on lb1, the
    // article's YAML on lb2), and the page's keepalived.conf with this test's paths.
    let lbs: Vec<Lb> = pair
        .nodes()
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let config = node.dir.join("haproxy.cfg");
            write(
                &config,
                &HAPROXY_CFG
                    .replace("@ANCHOR@", &node.private_ip)
                    .replace("@NODE@", &node.name),
                0o644,
            );
            let token_file = if i == 0 {
                let f = node.dir.join("do-token");
                write(&f, &format!("{TOKEN}\n"), 0o600);
                f
            } else {
                let f = node.dir.join("digitalocean.yaml");
                write(
                    &f,
                    &format!("# DigitalOcean\nregion: nyc3\napiToken: \"{TOKEN}\"\n"),
                    0o600,
                );
                f
            };
            let doc = doc_block(if i == 0 { PRIMARY_CONF } else { SECONDARY_CONF });
            assert!(doc.contains(&format!("unicast_src_ip {}", node.private_ip)));
            let conf = doc
                .replace(
                    "/usr/lib/ocf/resource.d/",
                    &format!("{}/", agents.display()),
                )
                .replace("/etc/haproxy/haproxy.cfg", &config.display().to_string())
                .replace("/etc/cloudha/do-token", &token_file.display().to_string())
                .replace(" start\"", &format!(" --api-url {API_URL} start\""));
            assert!(conf.contains("--api-url"), "{conf}");
            let keepalived_conf = node.dir.join("keepalived.conf");
            write(&keepalived_conf, &conf, 0o644);
            Lb {
                node,
                haproxy: agents.join("cloudha/haproxy"),
                config,
                token_file,
                keepalived_conf,
            }
        })
        .collect();
    let (lb1, lb2) = (&lbs[0], &lbs[1]);

    // 1. A HAProxy that the agent did not start (as the distribution's service starts it):
    // `pidof haproxy` is happy, the agent's monitor is not, so it must start HAProxy itself.
    let config1 = lb1.config.display().to_string();
    let (code, out) = lb1.node.run(
        "haproxy",
        &["-D", "-f", &config1, "-p", "/run/haproxy-distro.pid"],
    );
    assert_eq!(code, 0, "haproxy -D: {out}");
    assert_eq!(lb1.node.run("pidof", &["haproxy"]).0, 0);
    let (code, out) = lb1.haproxy("monitor");
    assert_eq!(
        code, 7,
        "the monitor of a HAProxy the agent did not start: {out}"
    );
    lb1.node
        .run("sh", &["-c", "kill $(cat /run/haproxy-distro.pid)"]);
    let t = Instant::now();
    while !lb1.node.pids_of("haproxy").is_empty() {
        assert!(t.elapsed() < WAIT, "the distribution-style HAProxy stays");
        std::thread::sleep(Duration::from_millis(20));
    }

    // HAProxy by the agent on both; the documented check passes; one run's time, measured
    // inside the node (process start included).
    for lb in &lbs {
        lb.haproxy_ok("start", &pair);
        lb.haproxy_ok("monitor", &pair);
    }
    let runs = 20;
    let (code, out) = lb2.node.run(
        "bash",
        &[
            "-c",
            &format!(
                "s=$(date +%s%N); for i in $(seq {runs}); do {} --config {} monitor || exit 1; done; echo $(( ($(date +%s%N) - s) / {runs} / 1000 ))",
                lb2.haproxy.display(),
                lb2.config.display()
            ),
        ],
    );
    assert_eq!(code, 0, "monitor loop: {out}");
    eprintln!(
        "one haproxy monitor run (depth 0, as vrrp_script): {} µs on average over {runs} runs",
        out.trim()
    );

    // 2. keepalived on both: lb1 (priority 200) is the one master and the address points at
    // its droplet after one assign; lb2 stays backup and never runs its notify.
    for lb in &lbs {
        lb.node.start_keepalived(&lb.keepalived_conf);
    }
    let took = wait_holder(&cloud, DROPLETS[0], "start", &pair);
    eprintln!("start: address on lb1 {took:?} after keepalived started");
    expect_line(
        lb1.node,
        0,
        &["(VI_1) Entering MASTER STATE"],
        "start",
        &pair,
    );
    expect_line(
        lb1.node,
        0,
        &[
            "floatip[",
            "INFO: start: 0 ok",
            &format!("{IP} now points at this droplet ({})", DROPLETS[0]),
        ],
        "start",
        &pair,
    );
    expect_line(
        lb1.node,
        0,
        &["floatip[", "INFO: action", "completed after"],
        "start",
        &pair,
    );
    expect_line(
        lb2.node,
        0,
        &["(VI_1) Entering BACKUP STATE"],
        "start",
        &pair,
    );
    assert_eq!(lb2.node.syslog.count("Entering MASTER STATE"), 0);
    assert_eq!(lb2.node.syslog.count("floatip["), 0);
    assert_eq!(cloud.actions().len(), 1, "{:?}", cloud.actions());
    // Outside Pacemaker nobody made /run/resource-agents: the agents did.
    let (code, out) = lb1.node.run("ls", &["/run/resource-agents/cloudha"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("floatip-ip-{IP}.started")), "{out}");

    // 3. HAProxy stopped on the master: its check fails, lb2 takes over, the address follows
    // (lb2 reads the token from the article's YAML file).
    let marks = [lb1.node.syslog.len(), lb2.node.syslog.len()];
    lb1.haproxy_ok("stop", &pair);
    let took = wait_holder(&cloud, DROPLETS[1], "HAProxy stopped on lb1", &pair);
    eprintln!("HAProxy stopped on lb1: address on lb2 after {took:?}");
    expect_line(
        lb1.node,
        marks[0],
        &["VRRP_Script(chk_haproxy) failed (exited with status 7)"],
        "HAProxy stopped",
        &pair,
    );
    expect_line(
        lb1.node,
        marks[0],
        &["Entering FAULT STATE"],
        "HAProxy stopped",
        &pair,
    );
    expect_line(
        lb2.node,
        marks[1],
        &["Entering MASTER STATE"],
        "HAProxy stopped",
        &pair,
    );
    expect_line(
        lb2.node,
        marks[1],
        &[
            "INFO: start: 0 ok",
            &format!("now points at this droplet ({})", DROPLETS[1]),
        ],
        "HAProxy stopped (YAML token file)",
        &pair,
    );

    // 4. HAProxy back on lb1: with the article's priorities it preempts and takes the address.
    let marks = [lb1.node.syslog.len(), lb2.node.syslog.len()];
    lb1.haproxy_ok("start", &pair);
    let took = wait_holder(&cloud, DROPLETS[0], "HAProxy back on lb1", &pair);
    eprintln!("HAProxy back on lb1: address on lb1 after {took:?}");
    expect_line(
        lb1.node,
        marks[0],
        &["Entering MASTER STATE"],
        "preempt",
        &pair,
    );
    expect_line(
        lb1.node,
        marks[0],
        &[
            "INFO: start: 0 ok",
            &format!("now points at this droplet ({})", DROPLETS[0]),
        ],
        "preempt",
        &pair,
    );
    expect_line(
        lb2.node,
        marks[1],
        &["Entering BACKUP STATE"],
        "preempt",
        &pair,
    );

    // 5. The master's keepalived dies without a word: lb2 notices the silence and takes over.
    let marks = [lb1.node.syslog.len(), lb2.node.syslog.len()];
    lb1.node.crash_keepalived();
    let took = wait_holder(&cloud, DROPLETS[1], "keepalived killed on lb1", &pair);
    eprintln!("keepalived killed on lb1: address on lb2 after {took:?}");
    expect_line(
        lb2.node,
        marks[1],
        &["Entering MASTER STATE"],
        "crash",
        &pair,
    );
    expect_line(
        lb2.node,
        marks[1],
        &[&format!("now points at this droplet ({})", DROPLETS[1])],
        "crash",
        &pair,
    );
    assert!(
        !lines_since(lb2.node, marks[1])
            .iter()
            .any(|l| l.contains("priority 0")),
        "lb1 said goodbye: it was not a crash\n{}",
        pair.diagnostics()
    );

    // 6. A wrong token on lb1: keepalived starts there again and lb1 becomes master, but its
    // notify cannot move the address. It says so in one line, at once, and leaves nothing behind.
    write(&lb1.token_file, &format!("{WRONG_TOKEN}\n"), 0o600);
    let actions = cloud.actions().len();
    let marks = [lb1.node.syslog.len(), lb2.node.syslog.len()];
    lb1.node.start_keepalived(&lb1.keepalived_conf);
    expect_line(
        lb1.node,
        marks[0],
        &["Entering MASTER STATE"],
        "wrong token",
        &pair,
    );
    let line = expect_line(
        lb1.node,
        marks[0],
        &["floatip[", "ERROR: start: 6"],
        "wrong token",
        &pair,
    );
    eprintln!("wrong token, lb1's log: {line}");
    assert!(
        line.contains("parameter 'api_token_file': the API rejected the token (HTTP 401"),
        "{line}"
    );
    let t = Instant::now();
    while !lb1.node.pids_of("floatip").is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "a floatip process hangs on lb1\n{}",
            pair.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!lb1.node.pids_of("keepalived").is_empty());
    assert_eq!(cloud.holder(IP), Some(DROPLETS[1]));
    assert_eq!(cloud.actions().len(), actions, "{:?}", cloud.actions());
    expect_line(
        lb2.node,
        marks[1],
        &["Entering BACKUP STATE"],
        "wrong token",
        &pair,
    );

    // 7. No token in any log line.
    for lb in &lbs {
        for l in lb.node.syslog.lines() {
            assert!(
                !l.contains(TOKEN) && !l.contains(WRONG_TOKEN),
                "a token in {}'s log: {l}",
                lb.node.name
            );
        }
    }
    eprintln!("keepalived test: {:?} in all", began.elapsed());
}

/// The README's keepalived lines are the page's (and so the ones the test above runs).
#[test]
fn readme_shows_the_documented_keepalived_lines() {
    let readme = std::fs::read_to_string(cloudha_tests::workspace_root().join("README.md"))
        .expect("README.md");
    let conf = doc_block(PRIMARY_CONF);
    for key in ["script \"", "notify_master \""] {
        let line = conf
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} line in the documented keepalived.conf"));
        assert!(
            readme.lines().any(|l| l.trim() == line),
            "README.md must show the documented line {line:?}"
        );
    }
}
