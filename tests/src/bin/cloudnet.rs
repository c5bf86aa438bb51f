//! `cloudnet`: the fake cloud's network for the demo (tests/src/traffic.rs): it routes the
//! floating IP to the droplet the fake program says holds it, runs the two app servers and a
//! client that asks the floating IP every 50 ms, and prints the answers as they come, one line
//! per run of answers through the same balancer. Commands on stdin, one per line:
//!   mark NAME     an event happens now (printed)
//!   report        the client-visible outage since the last mark
//!   power-loss N  node N (1 or 2) loses power, as the network sees it
//!   power-on N    node N has power again
//! End of input: stop and remove everything.

use anyhow::{anyhow, bail, Context, Result};
use cloudha_tests::traffic::{self, balancer_of, CloudNet, Delivery, Sample};
use std::io::{BufRead, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

const USAGE: &str = "usage: cloudnet --node NETNS=DROPLET --node NETNS=DROPLET --ip IP --admin URL
                [--anchor ADDR --anchor ADDR]
  --node NETNS=DROPLET  a node's network namespace and its droplet id (twice, node1 first)
  --ip IP               the floating IP
  --admin URL           the fake program's admin URL (http://127.0.0.1:PORT): who holds the IP
  --anchor ADDR         each node's anchor address (DigitalOcean: the IP's packets go there);
                        without it the IP itself is routed to its holder";

struct Options {
    nodes: Vec<(String, u64)>,
    ip: Ipv4Addr,
    admin: String,
    anchors: Vec<Ipv4Addr>,
}

fn options() -> Result<Options> {
    let mut args = std::env::args().skip(1);
    let (mut nodes, mut ip, mut admin, mut anchors) = (Vec::new(), None, None, Vec::new());
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| anyhow!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--node" => {
                let v = value()?;
                let (ns, id) = v
                    .split_once('=')
                    .ok_or_else(|| anyhow!("--node {v}: NETNS=DROPLET"))?;
                nodes.push((
                    ns.to_string(),
                    id.parse().with_context(|| format!("--node {v}"))?,
                ));
            }
            "--ip" => ip = Some(value()?.parse().context("--ip")?),
            "--admin" => admin = Some(value()?.trim_end_matches('/').to_string()),
            "--anchor" => anchors.push(value()?.parse().context("--anchor")?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown option {other}\n{USAGE}"),
        }
    }
    if nodes.len() != 2 || !(anchors.is_empty() || anchors.len() == 2) {
        bail!("two --node options (and none or two --anchor)\n{USAGE}");
    }
    Ok(Options {
        nodes,
        ip: ip.ok_or_else(|| anyhow!("--ip is required\n{USAGE}"))?,
        admin: admin.ok_or_else(|| anyhow!("--admin is required\n{USAGE}"))?,
        anchors,
    })
}

/// Who holds `ip`, from the fake's `/_fake/state` (`{"ips":[{"ip":..,"holder":..}]}`).
fn holder(admin: &str, ip: Ipv4Addr) -> Option<u64> {
    let hostport = admin.strip_prefix("http://")?;
    let mut c = TcpStream::connect(hostport).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    write!(c, "GET /_fake/state HTTP/1.0\r\nHost: {hostport}\r\n\r\n").ok()?;
    let mut text = String::new();
    c.read_to_string(&mut text).ok()?;
    let body = text.split_once("\r\n\r\n")?.1;
    let state: serde_json::Value = serde_json::from_str(body).ok()?;
    state
        .get("ips")?
        .as_array()?
        .iter()
        .find(|e| e.get("ip").and_then(|v| v.as_str()) == Some(&ip.to_string()))?
        .get("holder")?
        .as_u64()
}

fn clock() -> String {
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let s = t.as_secs() % 86400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        t.subsec_millis()
    )
}

/// What a sample says, for a line: the balancer's node, or the failure.
fn kind(s: &Sample) -> String {
    match &s.result {
        Ok(body) => match balancer_of(body) {
            Some(i) => format!("answered through node{}", i + 1),
            None => format!("answered: {body}"),
        },
        Err(e) => format!("FAILED: {}", e.split(" (os error").next().unwrap_or(e)),
    }
}

fn main() -> Result<()> {
    let o = options()?;
    let names: Vec<&str> = o.nodes.iter().map(|(n, _)| n.as_str()).collect();
    let delivery = if o.anchors.is_empty() {
        Delivery::ToHost
    } else {
        Delivery::ToAnchor(o.anchors.clone())
    };
    let mut net = CloudNet::new(&names, o.ip, delivery);
    let (admin, ip, ids) = (
        o.admin.clone(),
        o.ip,
        o.nodes.iter().map(|(_, id)| *id).collect::<Vec<_>>(),
    );
    net.follow(move || {
        holder(&admin, ip)
            .and_then(|h| ids.iter().position(|d| *d == h))
            .into_iter()
            .collect()
    });
    // The client starts once the router has set the IP's path (else its first requests would go
    // nowhere, a failure no cloud would show).
    let ready = Instant::now() + Duration::from_secs(5);
    while net.switches().is_empty() && Instant::now() < ready {
        std::thread::sleep(Duration::from_millis(10));
    }
    let client = Arc::new(net.client(Duration::from_millis(50), Duration::from_secs(3600)));

    // The printer: one line per run of answers of the same kind, with the apps that answered.
    let stop = Arc::new(AtomicBool::new(false));
    let printed = Arc::new(Mutex::new(0usize));
    let printer = {
        let (client, stop, printed) = (client.clone(), stop.clone(), printed.clone());
        std::thread::spawn(move || {
            let mut run: Option<(String, usize, Vec<String>)> = None;
            let flush = |run: &mut Option<(String, usize, Vec<String>)>| {
                if let Some((k, n, apps)) = run.take() {
                    let apps = if apps.is_empty() {
                        String::new()
                    } else {
                        format!(" by {}", apps.join(", "))
                    };
                    println!("{}  {n:>3} × {k}{apps}", clock());
                }
            };
            let mut last_flush = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                // In the order they were sent, once every request sent until then has ended
                // (answered or timed out): a clean sequence, shown about 1.5 s late.
                let cutoff = Instant::now()
                    .checked_sub(traffic::REQUEST_TIMEOUT + Duration::from_millis(500));
                let samples: Vec<Sample> = client
                    .samples()
                    .into_iter()
                    .filter(|x| cutoff.is_some_and(|c| x.start < c))
                    .collect();
                let mut seen = printed.lock().unwrap_or_else(|e| e.into_inner());
                for s in samples.iter().skip(*seen) {
                    let k = kind(s);
                    let app = s
                        .result
                        .as_ref()
                        .ok()
                        .and_then(|b| b.split(' ').next())
                        .map(str::to_string);
                    match &mut run {
                        Some((rk, n, apps)) if *rk == k => {
                            *n += 1;
                            if let Some(a) = app {
                                if !apps.contains(&a) {
                                    apps.push(a);
                                }
                            }
                        }
                        _ => {
                            flush(&mut run);
                            last_flush = Instant::now();
                            run = Some((k, 1, app.into_iter().collect()));
                        }
                    }
                }
                *seen = samples.len();
                drop(seen);
                if last_flush.elapsed() >= Duration::from_secs(1) {
                    flush(&mut run);
                    last_flush = Instant::now();
                }
                let _ = std::io::stdout().flush();
                std::thread::sleep(Duration::from_millis(50));
            }
            flush(&mut run);
        })
    };

    let mut mark = Instant::now();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let mut words = line.split_whitespace();
        match words.next() {
            Some("mark") => {
                mark = Instant::now();
                println!("{}  ---- {}", clock(), words.collect::<Vec<_>>().join(" "));
            }
            Some("report") => {
                let o = traffic::outage(&client.samples(), mark);
                let via = |x: &Option<(Instant, String)>| {
                    x.as_ref()
                        .and_then(|(_, b)| balancer_of(b))
                        .map(|i| format!("node{}", i + 1))
                        .unwrap_or_else(|| "nobody".into())
                };
                match o.millis() {
                    Some(ms) => println!(
                        "the client saw an outage of {ms} ms ({} requests failed): last answer through {}, then through {}",
                        o.failed,
                        via(&o.last_before),
                        via(&o.first_after)
                    ),
                    None => println!("the client has not been answered again yet ({} requests failed)", o.failed),
                }
            }
            Some(cmd @ ("power-loss" | "power-on")) => {
                let n: usize = words
                    .next()
                    .and_then(|w| w.parse().ok())
                    .filter(|n| (1..=2).contains(n))
                    .ok_or_else(|| anyhow!("{cmd} 1|2"))?;
                if cmd == "power-loss" {
                    net.power_loss(n - 1);
                } else {
                    net.power_back(n - 1);
                }
            }
            Some(other) => eprintln!("cloudnet: unknown command {other}"),
            None => {}
        }
        let _ = std::io::stdout().flush();
    }
    stop.store(true, Ordering::Relaxed);
    let _ = printer.join();
    Ok(())
}
