//! What the clients see: a fake cloud network that carries the floating IP's packets to the node
//! the fake API says holds it, two app servers behind the balancers, and a client that sends a
//! request to the floating IP every 50 ms (a new connection each time) and records each result.
//!
//! Namespaces (all made here, deleted on drop), addresses from documentation ranges:
//!
//! ```text
//!   client 192.0.2.2/28 ── wan (192.0.2.1, the cloud's router) ── app-1 192.0.2.18/28
//!                           │  │                               └─ app-2 192.0.2.34/28
//!        198.51.100.2/30 ───┘  └─── 198.51.100.6/30
//!   node1 wan0 198.51.100.1/30     node2 wan0 198.51.100.5/30
//! ```
//!
//! The router follows the fake: a thread reads who holds the IP every [`FOLLOW`] and, when the
//! holder changes, switches the path in the `wan` namespace, as the platform does when its assign
//! action completes, never when an agent says so. [`Delivery::ToAnchor`] is DigitalOcean's way
//! (the reserved IP's packets arrive for the holder's anchor address: a stateless rewrite in
//! `wan`, both ways); [`Delivery::ToHost`] is the others' (the packets arrive for the IP itself,
//! which the holder must carry on a local interface: a route in `wan`). With no holder, the
//! IP's packets go nowhere (a blackhole route), as on the real platforms; with several
//! (Exoscale, from an attach until the detach of the old holder) the connections spread over
//! them (a multipath route hashing on ports).
//!
//! The app servers answer `app-N via BALANCER` (BALANCER: the address the request came from, the
//! balancer's `wan0`) and log each request with the client's address from HAProxy's
//! `X-Forwarded-For`.

use crate::{require_program, sh, Netns};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const NETNS_TAG: &str = "traffic";
/// How often the router reads the fake's holder.
pub const FOLLOW: Duration = Duration::from_millis(5);
/// The client's address, and the app servers' (port [`APP_PORT`]).
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
pub const APPS: [Ipv4Addr; 2] = [Ipv4Addr::new(192, 0, 2, 18), Ipv4Addr::new(192, 0, 2, 34)];
pub const APP_PORT: u16 = 8080;
/// A balancer's haproxy.cfg with the app servers behind it, `@BIND@` to fill.
pub const HAPROXY_APPS_CFG: &str = include_str!("../cluster/haproxy-apps.cfg.in");

/// How the cloud delivers the floating IP's packets to its holder.
#[derive(Clone, Debug)]
pub enum Delivery {
    /// DigitalOcean: to the holder's anchor address (index: node), rewritten by the platform.
    ToAnchor(Vec<Ipv4Addr>),
    /// Hetzner, Vultr, Exoscale, BGP: to the IP itself; the holder carries it.
    ToHost,
}

/// The address of node `i`'s `wan0` (the balancer's address as the app servers see it).
pub fn node_wan(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, (4 * i + 1) as u8)
}

/// The router's side of node `i`'s link.
fn router_side(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, (4 * i + 2) as u8)
}

/// When the router switched the IP's path, and to which nodes (none: nowhere; several: the
/// connections spread over them, as Exoscale does for an elastic IP with several holders).
#[derive(Clone, Debug)]
pub struct Switch {
    /// When the router saw the fake's new holder (within [`FOLLOW`] of the change).
    pub at: Instant,
    /// When the new path was in place (`ip route` or `nft` returned).
    pub done: Instant,
    pub to: Vec<usize>,
}

impl Switch {
    /// The nodes it switched to, for a report: `node1`, `node1+node2`, or `nowhere`.
    pub fn describe(&self) -> String {
        if self.to.is_empty() {
            return "nowhere".into();
        }
        self.to
            .iter()
            .map(|i| format!("node{}", i + 1))
            .collect::<Vec<_>>()
            .join("+")
    }
}

/// One request an app server answered.
#[derive(Clone, Debug)]
pub struct AppHit {
    pub at: Instant,
    pub app: usize,
    /// Where the request came from: a balancer's `wan0`.
    pub balancer: Ipv4Addr,
    /// HAProxy's `X-Forwarded-For`: the client.
    pub forwarded_for: Option<String>,
}

/// The cloud's network, its app servers and its router (see the module comment).
pub struct CloudNet {
    wan: Netns,
    client: Netns,
    _apps: Vec<Netns>,
    nodes: Vec<String>,
    ip: Ipv4Addr,
    delivery: Delivery,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    switches: Arc<Mutex<Vec<Switch>>>,
    hits: Arc<Mutex<Vec<AppHit>>>,
}

impl CloudNet {
    /// The network for the nodes whose network namespaces are `nodes` (names under /run/netns),
    /// carrying `ip`. Each node gets a `wan0` and a route to 192.0.2.0/24 (client and apps)
    /// through the cloud's router. Nothing is delivered until [`CloudNet::follow`].
    pub fn new(nodes: &[&str], ip: Ipv4Addr, delivery: Delivery) -> CloudNet {
        require_program("/usr/sbin/nft");
        crate::remove_stale_namespaces(NETNS_TAG);
        let wan = Netns::new(NETNS_TAG);
        sh(wan
            .command("sysctl")
            .args(["-q", "-w", "net.ipv4.ip_forward=1"]));
        // An IP with several holders (Exoscale) spreads connections over them: hash on ports too.
        sh(wan
            .command("sysctl")
            .args(["-q", "-w", "net.ipv4.fib_multipath_hash_policy=1"]));
        let client = Netns::new(NETNS_TAG);
        link(&wan, "client", "192.0.2.1/28", &client.name, "eth0");
        client.ip(&["addr", "add", &format!("{CLIENT}/28"), "dev", "eth0"]);
        client.ip(&["route", "add", "default", "via", "192.0.2.1"]);

        let mut apps = Vec::new();
        for (j, app) in APPS.iter().enumerate() {
            let ns = Netns::new(NETNS_TAG);
            let gw = Ipv4Addr::from(u32::from(*app) - 1);
            link(
                &wan,
                &format!("app{}", j + 1),
                &format!("{gw}/28"),
                &ns.name,
                "eth0",
            );
            ns.ip(&["addr", "add", &format!("{app}/28"), "dev", "eth0"]);
            ns.ip(&["route", "add", "default", "via", &gw.to_string()]);
            apps.push(ns);
        }
        for (i, node) in nodes.iter().enumerate() {
            let name = format!("node{}", i + 1);
            link(&wan, &name, &format!("{}/30", router_side(i)), node, "wan0");
            sh(Command::new("ip").args([
                "-n",
                node,
                "addr",
                "add",
                &format!("{}/30", node_wan(i)),
                "dev",
                "wan0",
            ]));
            sh(Command::new("ip").args([
                "-n",
                node,
                "route",
                "add",
                "192.0.2.0/24",
                "via",
                &router_side(i).to_string(),
            ]));
            if let Delivery::ToAnchor(anchors) = &delivery {
                wan.ip(&[
                    "route",
                    "add",
                    &format!("{}/32", anchors[i]),
                    "via",
                    &node_wan(i).to_string(),
                ]);
            }
        }
        wan.ip(&["route", "add", "blackhole", &format!("{ip}/32")]);

        let stop = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for (j, app) in APPS.iter().enumerate() {
            let listener = crate::fakecloud::bind_in_netns(
                &apps[j].name,
                SocketAddr::V4(SocketAddrV4::new(*app, APP_PORT)),
            )
            .unwrap_or_else(|e| panic!("app-{} server: {e}", j + 1));
            listener.set_nonblocking(true).expect("nonblocking");
            let (stop, hits) = (stop.clone(), hits.clone());
            threads.push(std::thread::spawn(move || {
                serve_app(j, listener, &stop, &hits)
            }));
        }
        CloudNet {
            wan,
            client,
            _apps: apps,
            nodes: nodes.iter().map(|s| s.to_string()).collect(),
            ip,
            delivery,
            stop,
            threads,
            switches: Arc::new(Mutex::new(Vec::new())),
            hits,
        }
    }

    /// The haproxy.cfg a balancer runs here (tests/cluster/haproxy-apps.cfg.in): binds `bind`
    /// (the anchor address, or the floating IP itself), balances over both app servers, tells
    /// them the client's address in `X-Forwarded-For`.
    pub fn haproxy_cfg(bind: &str) -> String {
        HAPROXY_APPS_CFG.replace("@BIND@", bind)
    }

    /// Start following the fake: `holders` says which nodes hold the IP now (none: nobody), as
    /// the fake API sees it. Call once.
    pub fn follow(&mut self, holders: impl Fn() -> Vec<usize> + Send + 'static) {
        let wan = self.wan.name.clone();
        let (ip, delivery, stop, switches) = (
            self.ip,
            self.delivery.clone(),
            self.stop.clone(),
            self.switches.clone(),
        );
        let nodes = self.nodes.len();
        self.threads.push(std::thread::spawn(move || {
            let mut current: Option<Vec<usize>> = None;
            while !stop.load(Ordering::Relaxed) {
                let mut now = holders();
                now.retain(|&i| i < nodes);
                if current.as_ref() != Some(&now) {
                    let at = Instant::now();
                    route(&wan, ip, &delivery, &now);
                    switches
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(Switch {
                            at,
                            done: Instant::now(),
                            to: now.clone(),
                        });
                    current = Some(now);
                }
                std::thread::sleep(FOLLOW);
            }
        }));
    }

    /// Every switch of the IP's path so far.
    pub fn switches(&self) -> Vec<Switch> {
        self.switches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every request the app servers answered so far.
    pub fn hits(&self) -> Vec<AppHit> {
        self.hits.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A client in the client namespace sending `GET /` to the floating IP every `every`, a new
    /// connection each time, until stopped or `limit` has passed.
    pub fn client(&self, every: Duration, limit: Duration) -> Client {
        Client::start(
            &self.client.name,
            SocketAddrV4::new(self.ip, 80),
            every,
            limit,
        )
    }

    /// Node `i` loses power, as the cloud's network sees it: its end of the link goes down, so
    /// packets for it vanish (a crashed server sends no reset, and the cloud no ICMP error).
    /// Pair with `Cluster::crash`.
    pub fn power_loss(&self, i: usize) {
        sh(Command::new("ip").args(["-n", &self.nodes[i], "link", "set", "wan0", "down"]));
    }

    /// Node `i` has power again: its link up, its route to the client and apps back.
    pub fn power_back(&self, i: usize) {
        let ns = &self.nodes[i];
        sh(Command::new("ip").args(["-n", ns, "link", "set", "wan0", "up"]));
        sh(Command::new("ip").args([
            "-n",
            ns,
            "route",
            "replace",
            "192.0.2.0/24",
            "via",
            &router_side(i).to_string(),
        ]));
    }

    /// The router's routes and NAT rules, for failure messages.
    pub fn describe(&self) -> String {
        let out = Command::new("ip")
            .args(["-n", &self.wan.name, "route"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let nft = self
            .wan
            .command("nft")
            .args(["list", "ruleset"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        format!("routes in the cloud's network:\n{out}\nnft:\n{nft}")
    }
}

impl Drop for CloudNet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A veth pair: `here` in `ns` with `addr`, up; `there` in namespace `other`, up.
fn link(ns: &Netns, here: &str, addr: &str, other: &str, there: &str) {
    ns.ip(&[
        "link", "add", here, "type", "veth", "peer", "name", there, "netns", other,
    ]);
    ns.ip(&["addr", "add", addr, "dev", here]);
    ns.ip(&["link", "set", here, "up"]);
    sh(Command::new("ip").args(["-n", other, "link", "set", there, "up"]));
}

/// Point the IP's packets at the nodes `to` (none: nowhere; several: spread over them).
fn route(wan: &str, ip: Ipv4Addr, delivery: &Delivery, to: &[usize]) {
    match delivery {
        Delivery::ToHost => {
            let mut args: Vec<String> = ["-n", wan, "route", "replace"].map(String::from).to_vec();
            let dest = format!("{ip}/32");
            match to {
                [] => args.extend(["blackhole".into(), dest]),
                [one] => args.extend([dest, "via".into(), node_wan(*one).to_string()]),
                several => {
                    args.push(dest);
                    for i in several {
                        args.extend(["nexthop".into(), "via".into(), node_wan(*i).to_string()]);
                    }
                }
            }
            match Command::new("ip").args(&args).status() {
                Ok(st) if st.success() => {}
                other => eprintln!("traffic: ip {args:?} failed: {other:?}"),
            }
        }
        Delivery::ToAnchor(anchors) => {
            // Stateless, per packet, as the platform's own rewriting: a stateful DNAT would keep
            // each connection tracking entry's old holder for minutes, and a client reusing the
            // port of a connection that never completed (one sent as the holder crashed) would
            // reach the old holder long after the switch. A reserved IP has one holder at most.
            let inbound = to
                .first()
                .map(|&i| format!("ip daddr {ip} notrack ip daddr set {}", anchors[i]))
                .unwrap_or_default();
            let sources = anchors
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let rules = format!(
                "table ip cloud {{}}\nflush table ip cloud\ntable ip cloud {{\n\
                 chain pre {{\ntype filter hook prerouting priority raw; policy accept;\n{inbound}\n\
                 ip saddr {{ {sources} }} tcp sport 80 notrack ip saddr set {ip}\n}}\n}}\n"
            );
            let child = Command::new("ip")
                .args(["netns", "exec", wan, "nft", "-f", "-"])
                .stdin(Stdio::piped())
                .spawn();
            if let Ok(mut child) = child {
                if let Some(mut stdin) = child.stdin.take() {
                    let _ = stdin.write_all(rules.as_bytes());
                }
                match child.wait() {
                    Ok(st) if st.success() => {}
                    other => eprintln!("traffic: nft in {wan} failed ({other:?}) on:\n{rules}"),
                }
            }
        }
    }
}

/// An app server: one request per connection, answered `app-N via BALANCER`.
fn serve_app(j: usize, listener: TcpListener, stop: &AtomicBool, hits: &Mutex<Vec<AppHit>>) {
    while !stop.load(Ordering::Relaxed) {
        let (mut conn, peer) = match listener.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            Err(_) => continue,
        };
        let _ = conn.set_nonblocking(false);
        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
        let head = read_head(&mut conn);
        let forwarded_for = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("x-forwarded-for")
                .then(|| v.trim().to_string())
        });
        let balancer = match peer.ip() {
            std::net::IpAddr::V4(a) => a,
            std::net::IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
        };
        let body = format!("app-{} via {balancer}\n", j + 1);
        let _ = write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = conn.shutdown(Shutdown::Write);
        hits.lock().unwrap_or_else(|e| e.into_inner()).push(AppHit {
            at: Instant::now(),
            app: j + 1,
            balancer,
            forwarded_for,
        });
    }
}

/// A request's head, up to the blank line (bounded).
fn read_head(conn: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while buf.len() < 16 * 1024 && !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// One request of the client.
#[derive(Clone, Debug)]
pub struct Sample {
    /// When the client meant to send it (every `every`).
    pub scheduled: Instant,
    /// When a worker sent it: later than `scheduled` only when every worker was busy.
    pub start: Instant,
    pub end: Instant,
    /// The answer's body (`app-N via BALANCER`), or what went wrong.
    pub result: Result<String, String>,
}

/// The client: a scheduler sends a request every `every` to a pool of workers that live in the
/// client namespace, so a request that hangs does not delay the next.
pub struct Client {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    samples: Arc<Mutex<Vec<Sample>>>,
}

/// How long a request may take before it counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// Enough for every request of a long outage to be in flight at once (1 s / 50 ms = 20).
const WORKERS: usize = 64;

impl Client {
    fn start(netns: &str, target: SocketAddrV4, every: Duration, limit: Duration) -> Client {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<Instant>();
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::new();
        let path = format!("/run/netns/{netns}");
        for _ in 0..WORKERS {
            let (rx, samples, path) = (rx.clone(), samples.clone(), path.clone());
            threads.push(std::thread::spawn(move || {
                let Ok(f) = std::fs::File::open(&path) else {
                    return;
                };
                if nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
                    return;
                }
                loop {
                    let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok(scheduled) = job else { return };
                    let start = Instant::now();
                    let result = request(target);
                    samples
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(Sample {
                            scheduled,
                            start,
                            end: Instant::now(),
                            result,
                        });
                }
            }));
        }
        let stop2 = stop.clone();
        threads.push(std::thread::spawn(move || {
            let begin = Instant::now();
            let mut next = begin;
            while !stop2.load(Ordering::Relaxed) && next.duration_since(begin) < limit {
                let now = Instant::now();
                if now < next {
                    std::thread::sleep(next - now);
                }
                if tx.send(Instant::now()).is_err() {
                    return;
                }
                next += every;
            }
        }));
        Client {
            stop,
            threads,
            samples,
        }
    }

    /// The samples so far, in order of start.
    pub fn samples(&self) -> Vec<Sample> {
        let mut s = self
            .samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        s.sort_by_key(|x| x.start);
        s
    }

    /// Stop sending, wait for the requests in flight, return every sample in order of start.
    pub fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        // The scheduler ends first (it owns the sender), then the workers drain and end.
        for t in self.threads.drain(..).rev() {
            let _ = t.join();
        }
        self.samples()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..).rev() {
            let _ = t.join();
        }
    }
}

/// One `GET /` on a new connection.
fn request(target: SocketAddrV4) -> Result<String, String> {
    let t0 = Instant::now();
    let mut c = TcpStream::connect_timeout(&SocketAddr::V4(target), REQUEST_TIMEOUT)
        .map_err(|e| format!("connect: {e}"))?;
    let left = REQUEST_TIMEOUT
        .saturating_sub(t0.elapsed())
        .max(Duration::from_millis(1));
    c.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
    c.set_write_timeout(Some(left)).map_err(|e| e.to_string())?;
    c.write_all(b"GET / HTTP/1.1\r\nHost: floating-ip\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = Vec::new();
    c.read_to_end(&mut buf).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| "an answer without a head".to_string())?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(head.lines().next().unwrap_or_default().to_string());
    }
    Ok(body.trim().to_string())
}

/// What the client saw of an event that happened at `at`, judged once the service is back
/// (`samples` taken then).
#[derive(Clone, Debug)]
pub struct Outage {
    /// The last answered request before the event's first failure (or before `at`, if nothing
    /// failed), and its answer.
    pub last_before: Option<(Instant, String)>,
    /// The first answered request after the event's last failure (or the last one seen, if
    /// nothing failed), and its answer.
    pub first_after: Option<(Instant, String)>,
    /// Requests that started after `at` and failed.
    pub failed: usize,
    /// Every distinct failure, with how often it happened.
    pub errors: Vec<(String, usize)>,
}

impl Outage {
    /// The client-visible outage: from the end of the last success before the first failure to
    /// the end of the first success after the last one (zero when no request failed; None when
    /// a side has no success).
    pub fn millis(&self) -> Option<u128> {
        if self.failed == 0 {
            return Some(0);
        }
        let (before, after) = (self.last_before.as_ref()?, self.first_after.as_ref()?);
        Some(after.0.saturating_duration_since(before.0).as_millis())
    }
}

/// The outage caused by an event at `at` (see [`Outage`]): every request that started after
/// `at` and failed counts, and the window runs from the success before the first of them to the
/// success after the last.
pub fn outage(samples: &[Sample], at: Instant) -> Outage {
    let ok = |s: &Sample| s.result.as_ref().ok().map(|b| (s.end, b.clone()));
    let failures: Vec<usize> = (0..samples.len())
        .filter(|&i| samples[i].start >= at && samples[i].result.is_err())
        .collect();
    let mut errors: Vec<(String, usize)> = Vec::new();
    for &i in &failures {
        let e = samples[i]
            .result
            .as_ref()
            .err()
            .cloned()
            .unwrap_or_default();
        let kind = e.split(" (os error").next().unwrap_or(&e).to_string();
        match errors.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => errors.push((kind, 1)),
        }
    }
    let (before, after) = match (failures.first(), failures.last()) {
        (Some(&first), Some(&last)) => (
            samples[..first].iter().rev().find_map(ok),
            samples[last + 1..].iter().find_map(ok),
        ),
        _ => (
            samples.iter().rev().filter(|s| s.start < at).find_map(ok),
            samples.iter().rev().filter(|s| s.start >= at).find_map(ok),
        ),
    };
    Outage {
        last_before: before,
        first_after: after,
        failed: failures.len(),
        errors,
    }
}

/// The balancer an answer came through (`app-N via 198.51.100.1` → node index 0).
pub fn balancer_of(body: &str) -> Option<usize> {
    let addr: Ipv4Addr = body.rsplit(' ').next()?.parse().ok()?;
    (0..8).find(|&i| node_wan(i) == addr)
}

// ---- The cluster with traffic: what tests/tests/cluster_traffic.rs and cluster_soak.rs run.

use crate::clouds::{Cloud, ANCHORS, IP, SERVERS};
use crate::cluster::Cluster;
use crate::fakecloud::FakeCloud;
use crate::{agent_bin, Installed};

/// The floating IP of the traffic cluster (tests/src/clouds.rs).
pub const FLOATING_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// Long enough for a 10 s monitor to notice a failure and Pacemaker to recover, on a busy CI.
pub const RECOVERY: Duration = Duration::from_secs(60);
pub const EVERY: Duration = Duration::from_millis(50);

/// A cloud's README configuration on the real two-node cluster, with the cloud's network, app
/// servers and a client (see the module comment); reports what the client saw of each event
/// when dropped (and appends it to `CLOUDHA_TRAFFIC_REPORT`, if set).
pub struct TrafficCluster {
    pub kind: Cloud,
    pub net: CloudNet,
    pub cluster: Cluster,
    pub cloud: Arc<FakeCloud>,
    _installed: Installed,
    /// The report's lines, one per event.
    pub report: Vec<String>,
}

impl TrafficCluster {
    /// The README's block of `kind` (tests/src/clouds.rs) on the cluster, its fake delivering
    /// the IP's packets as that cloud does: DigitalOcean to the holder's anchor address, the
    /// others to the IP itself, which each node's `vip-lo` clone carries on `lo`. `wrap`: a
    /// hook that may stage more files on the nodes before they boot.
    pub fn new(kind: Cloud, wrap: impl FnOnce(&Cluster)) -> TrafficCluster {
        assert_eq!(IP, FLOATING_IP.to_string());
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
        let delivery = match kind {
            Cloud::DigitalOcean => {
                Delivery::ToAnchor(ANCHORS.iter().map(|a| a.parse().unwrap()).collect())
            }
            Cloud::Hetzner | Cloud::Exoscale | Cloud::Vultr => Delivery::ToHost,
        };
        let net = CloudNet::new(&names, FLOATING_IP, delivery);

        let cloud = Arc::new(kind.serve(&cluster));
        for i in 0..cluster.nodes().len() {
            let cfg = CloudNet::haproxy_cfg(kind.bind(i));
            cluster.stage(i, "/etc/haproxy/haproxy.cfg", cfg.as_bytes(), 0o644);
        }
        wrap(&cluster);
        cluster.boot();
        let mut block = kind.readme_block();
        if let Some(interval) = monitor_interval() {
            assert!(
                block.contains("interval=10s"),
                "the README block has no 10 s monitor"
            );
            block = block.replace("interval=10s", &format!("interval={interval}"));
        }
        cluster.configure(&block);

        let mut setup = TrafficCluster {
            kind,
            net,
            cluster,
            cloud,
            _installed: installed,
            report: Vec::new(),
        };
        let cloud = setup.cloud.clone();
        setup.net.follow(move || {
            cloud
                .holders(IP)
                .iter()
                .filter_map(|h| SERVERS.iter().position(|d| d == h))
                .collect()
        });
        setup
    }

    /// The node whose server the fake says is the IP's one holder, once fip runs there alone
    /// (and it is `expected`, if given).
    pub fn active(&self, expected: Option<usize>, what: &str) -> usize {
        let end = Instant::now() + RECOVERY;
        loop {
            let s = self.cluster.status();
            if let Some(node) = s.single_node_of("fip") {
                let i = self.cluster.index_of(&node);
                if self.cloud.holders(IP) == [SERVERS[i]] && expected.is_none_or(|e| e == i) {
                    return i;
                }
            }
            assert!(
                Instant::now() < end,
                "{what}: fip on {:?}, the fake says {:?}\n{}\n{}",
                s.running_on("fip"),
                self.cloud.holders(IP),
                s.xml,
                self.cluster.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Wait until `n` answers in a row came through balancer `node` after `since`.
    pub fn wait_answers_via(
        &self,
        client: &Client,
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
    /// report the outage under `event` (and return it), then bring the node back (the IP stays:
    /// stickiness).
    pub fn failover_by_standby(&mut self, client: &Client, event: &str) -> Outage {
        let active = self.active(None, &format!("before: {event}"));
        let other = 1 - active;
        let at = Instant::now();
        self.cluster.standby(active, true);
        self.active(Some(other), event);
        self.wait_answers_via(client, other, at, 20, event);
        let o = self.measure(client, event, at);
        self.cluster.standby(active, false);
        self.cluster.settle(RECOVERY);
        self.active(Some(other), &format!("after: {event}"));
        o
    }

    /// The outage the client saw around `at`, reported under `event`.
    pub fn measure(&mut self, client: &Client, event: &str, at: Instant) -> Outage {
        let o = outage(&client.samples(), at);
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
pub fn monitor_interval() -> Option<String> {
    std::env::var("CLOUDHA_MONITOR_INTERVAL")
        .ok()
        .filter(|v| !v.is_empty())
}

impl Drop for TrafficCluster {
    fn drop(&mut self) {
        let mut text = format!(
            "{:?}, corosync token {} ms, monitor interval {}\n\n",
            self.kind,
            crate::cluster::corosync_token_ms(),
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
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path);
            if let Ok(mut f) = file {
                let _ = writeln!(f, "{text}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_balancers_configuration_names_the_app_servers_here() {
        let cfg = CloudNet::haproxy_cfg("10.17.0.5");
        assert!(cfg.contains("bind 10.17.0.5:80"), "{cfg}");
        for app in APPS {
            assert!(
                cfg.contains(&format!("{app}:{APP_PORT}")),
                "{app} missing: {cfg}"
            );
        }
    }

    fn sample(start: Instant, ms: u64, ok: Option<&str>) -> Sample {
        let s = start + Duration::from_millis(ms);
        Sample {
            scheduled: s,
            start: s,
            end: s + Duration::from_millis(1),
            result: ok
                .map(str::to_string)
                .ok_or_else(|| "connect: timed out".to_string()),
        }
    }

    #[test]
    fn the_outage_runs_from_the_last_success_before_to_the_first_after() {
        let t = Instant::now();
        let s = vec![
            sample(t, 0, Some("app-1 via 198.51.100.1")),
            sample(t, 50, Some("app-2 via 198.51.100.1")),
            sample(t, 100, None),
            sample(t, 150, None),
            sample(t, 200, Some("app-1 via 198.51.100.5")),
        ];
        let o = outage(&s, t + Duration::from_millis(60));
        assert_eq!(o.failed, 2);
        assert_eq!(o.millis(), Some(150));
        assert_eq!(balancer_of(&o.last_before.as_ref().unwrap().1), Some(0));
        assert_eq!(balancer_of(&o.first_after.as_ref().unwrap().1), Some(1));
        assert_eq!(o.errors, vec![("connect: timed out".to_string(), 2)]);
    }

    #[test]
    fn no_failure_is_no_outage_and_failures_before_the_event_do_not_count() {
        let t = Instant::now();
        let s = vec![
            sample(t, 0, None),
            sample(t, 50, Some("app-1 via 198.51.100.1")),
            sample(t, 100, Some("app-2 via 198.51.100.1")),
            sample(t, 150, Some("app-1 via 198.51.100.5")),
        ];
        let o = outage(&s, t + Duration::from_millis(75));
        assert_eq!(o.failed, 0);
        assert_eq!(o.millis(), Some(0));
        assert_eq!(balancer_of(&o.last_before.as_ref().unwrap().1), Some(0));
        assert_eq!(
            balancer_of(&o.first_after.as_ref().unwrap().1),
            Some(1),
            "the last answer seen"
        );
        let never = outage(&s[..1], t);
        assert_eq!(never.failed, 1);
        assert_eq!(never.millis(), None, "no success on either side: unknown");
    }

    #[test]
    fn failures_after_an_answer_that_follows_the_event_still_count() {
        let t = Instant::now();
        let s = vec![
            sample(t, 0, Some("app-1 via 198.51.100.1")),
            sample(t, 50, Some("app-2 via 198.51.100.1")),
            sample(t, 100, None),
            sample(t, 150, Some("app-1 via 198.51.100.1")),
            sample(t, 200, None),
            sample(t, 250, Some("app-2 via 198.51.100.5")),
        ];
        let o = outage(&s, t + Duration::from_millis(10));
        assert_eq!(o.failed, 2);
        assert_eq!(o.millis(), Some(200));
        assert_eq!(balancer_of(&o.first_after.as_ref().unwrap().1), Some(1));
    }
}
