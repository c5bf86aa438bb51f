//! `fakecloud`: the fake cloud API and metadata services (DigitalOcean, Hetzner or Exoscale) as
//! a standalone program, for the demo, the benchmarks and scripts. It prints one JSON line with its URLs when ready, then
//! serves until killed. docs/fakecloud.md has the options and the `/_fake/` admin interface.

use anyhow::{anyhow, bail, Context, Result};
use cloudha_tests::fakecloud::{exoscale, hetzner, vultr, Dialect, FakeCloud};
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

const USAGE: &str = "usage: fakecloud [options]
  --cloud NAME               the cloud it speaks: digitalocean (default), hetzner, exoscale,
                             vultr
  --listen ADDR[@NETNS]      an API listener (repeatable; default 127.0.0.1:0). The first one
                             without @NETNS is the main one; NETNS is a name under /run/netns or
                             a path like /proc/PID/ns/net
  --token TOKEN              an accepted Bearer token (repeatable)
  --token-file PATH          read one accepted token per line from PATH (keeps it out of argv)
  --api-key-file PATH        Exoscale: one accepted `KEY SECRET` pair per line of PATH
  --ip IP[=DROPLET]          a reserved IP, held by DROPLET or by none (repeatable)
  --region SLUG              region of the --ip options that follow (default: the cloud's:
                             nyc3, fsn1, ch-gva-2, ewr)
  --droplet ID[@ADDR[@NETNS]]  a droplet and a metadata listener on ADDR (default 127.0.0.1:0),
                             optionally inside NETNS (repeatable, also for one droplet);
                             --server and --instance are the same option
  --anchor ID=ADDR/NETMASK[/GATEWAY]  the droplet's anchor IP (gateway default: first address)
  --action-time DURATION     how long actions stay in-progress (e.g. 2s, 500ms; default 0)
  --metadata-lag DURATION    how late metadata sees assignment changes (default 0)
  --rate-limit MIN/HOUR      requests per token per minute and per hour (default 250/5000)
  --seed N                   seed for faults that fire for a fraction of requests
  --ready-file PATH          also write the ready line to PATH
  --name ID=NAME             the droplet's name (what fence_cloudha finds it by; default droplet-ID)
  --power-time DURATION      how long power actions stay in-progress (default 500ms)
  --power-hook PROGRAM       run `PROGRAM ID off|on` as a droplet goes off or on through a power
                             action, before any answer says so (the demo kills or boots the node)
Prints {\"cloud\":NAME,\"api\":[URL...],\"admin\":URL,\"metadata\":{\"ID\":[URL...]}} on one line when ready
(admin: the main API listener, in this namespace; /_fake/ is served on every API listener).";

fn parse_duration(s: &str) -> Result<Duration> {
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow!("{s:?} is not a duration (e.g. 2s, 500ms)"))?;
    let secs = match unit {
        "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        _ => bail!("{s:?}: unit must be ms, s or m"),
    };
    if !secs.is_finite() || secs < 0.0 {
        bail!("{s:?} is not a duration");
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_addr(s: &str) -> Result<SocketAddr> {
    s.parse()
        .map_err(|_| anyhow!("{s:?} is not an address like 127.0.0.1:8080"))
}

/// `ADDR[@NETNS]`.
fn split_at_netns(s: &str) -> Result<Place> {
    Ok(match s.split_once('@') {
        Some((a, ns)) if !ns.is_empty() => (parse_addr(a)?, Some(ns.to_string())),
        _ => (parse_addr(s)?, None),
    })
}

/// A listen address and the network namespace to open it in (None: ours).
type Place = (SocketAddr, Option<String>);

struct Options {
    dialect: Dialect,
    listens: Vec<Place>,
    tokens: Vec<String>,
    api_keys: Vec<(String, String)>,
    /// Address, region (None: the cloud's default), holder.
    ips: Vec<(String, Option<String>, Option<u64>)>,
    droplets: Vec<(u64, Option<Place>)>,
    anchors: Vec<(u64, String, String, Option<String>)>,
    action_time: Duration,
    metadata_lag: Duration,
    rate: Option<(u32, u32)>,
    seed: Option<u64>,
    ready_file: Option<String>,
    names: Vec<(u64, String)>,
    power_time: Option<Duration>,
    power_hook: Option<String>,
}

/// The options, or None for `--help` (printed).
fn parse_args() -> Result<Option<Options>> {
    let mut o = Options {
        dialect: Dialect::DigitalOcean,
        listens: Vec::new(),
        tokens: Vec::new(),
        api_keys: Vec::new(),
        ips: Vec::new(),
        droplets: Vec::new(),
        anchors: Vec::new(),
        action_time: Duration::ZERO,
        metadata_lag: Duration::ZERO,
        rate: None,
        seed: None,
        ready_file: None,
        names: Vec::new(),
        power_time: None,
        power_hook: None,
    };
    let mut region: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            return Ok(None);
        }
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (flag, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| anyhow!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--listen" => o
                .listens
                .push(split_at_netns(&value()?).context("--listen")?),
            "--token" => o.tokens.push(value()?),
            "--token-file" => {
                let p = value()?;
                let text =
                    std::fs::read_to_string(&p).with_context(|| format!("--token-file {p}"))?;
                o.tokens.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(String::from),
                );
            }
            "--region" => region = Some(value()?),
            "--cloud" => {
                let v = value()?;
                o.dialect = match v.as_str() {
                    "digitalocean" => Dialect::DigitalOcean,
                    "hetzner" => Dialect::Hetzner,
                    "exoscale" => Dialect::Exoscale,
                    "vultr" => Dialect::Vultr,
                    _ => bail!("--cloud {v}: expected digitalocean, hetzner, exoscale or vultr"),
                };
            }
            "--api-key-file" => {
                let p = value()?;
                let text =
                    std::fs::read_to_string(&p).with_context(|| format!("--api-key-file {p}"))?;
                for (n, line) in text.lines().enumerate() {
                    let line = line.trim();
                    if line.is_empty() {
                        continue;
                    }
                    // The line holds a secret: never repeat it in a message.
                    let (key, secret) = line
                        .split_once(char::is_whitespace)
                        .map(|(k, s)| (k, s.trim()))
                        .filter(|(_, s)| !s.is_empty())
                        .ok_or_else(|| {
                            anyhow!("--api-key-file {p}: line {} is not `KEY SECRET`", n + 1)
                        })?;
                    o.api_keys.push((key.to_string(), secret.to_string()));
                }
            }
            "--ip" => {
                let v = value()?;
                let (ip, holder) = match v.split_once('=') {
                    Some((ip, h)) => (
                        ip.to_string(),
                        Some(
                            h.parse()
                                .map_err(|_| anyhow!("--ip {v}: {h:?} is not a droplet id"))?,
                        ),
                    ),
                    None => (v.clone(), None),
                };
                if ip.parse::<std::net::IpAddr>().is_err() {
                    bail!("--ip {v}: {ip:?} is not an IP address");
                }
                o.ips.push((ip, region.clone(), holder));
            }
            "--droplet" | "--server" | "--instance" => {
                let v = value()?;
                let (id, rest) = match v.split_once('@') {
                    Some((id, rest)) => (
                        id,
                        Some(split_at_netns(rest).with_context(|| format!("--droplet {v}"))?),
                    ),
                    None => (v.as_str(), None),
                };
                let id = id
                    .parse()
                    .map_err(|_| anyhow!("--droplet {v}: {id:?} is not a droplet id"))?;
                o.droplets.push((id, rest));
            }
            "--anchor" => {
                let v = value()?;
                let parsed = v.split_once('=').and_then(|(id, rest)| {
                    let mut p = rest.split('/');
                    let id = id.parse().ok()?;
                    let addr = p.next()?.to_string();
                    let mask = p.next()?.to_string();
                    Some((id, addr, mask, p.next().map(String::from)))
                });
                o.anchors.push(
                    parsed.ok_or_else(|| {
                        anyhow!("--anchor {v}: expected ID=ADDR/NETMASK[/GATEWAY]")
                    })?,
                );
            }
            "--action-time" => {
                o.action_time = parse_duration(&value()?).context("--action-time")?
            }
            "--metadata-lag" => {
                o.metadata_lag = parse_duration(&value()?).context("--metadata-lag")?
            }
            "--rate-limit" => {
                let v = value()?;
                let r = v
                    .split_once('/')
                    .and_then(|(m, h)| Some((m.parse().ok()?, h.parse().ok()?)));
                o.rate = Some(r.ok_or_else(|| anyhow!("--rate-limit {v}: expected MIN/HOUR"))?);
            }
            "--seed" => {
                let v = value()?;
                o.seed = Some(v.parse().map_err(|_| anyhow!("--seed {v}: not a number"))?);
            }
            "--ready-file" => o.ready_file = Some(value()?),
            "--name" => {
                let v = value()?;
                let (id, name) = v
                    .split_once('=')
                    .ok_or_else(|| anyhow!("--name {v}: expected ID=NAME"))?;
                let id = id
                    .parse()
                    .map_err(|_| anyhow!("--name {v}: {id:?} is not a droplet id"))?;
                o.names.push((id, name.to_string()));
            }
            "--power-time" => {
                o.power_time = Some(parse_duration(&value()?).context("--power-time")?)
            }
            "--power-hook" => o.power_hook = Some(value()?),
            other => bail!("unknown option {other}\n{USAGE}"),
        }
    }
    Ok(Some(o))
}

fn main() {
    match run() {
        Ok(()) => {}
        Err(e) => {
            eprintln!("fakecloud: {e:#}");
            std::process::exit(2)
        }
    }
}

fn run() -> Result<()> {
    let Some(o) = parse_args()? else {
        return Ok(());
    };
    let main_at = o
        .listens
        .iter()
        .position(|(_, ns)| ns.is_none())
        .map(|i| o.listens[i].0);
    let main_at = match main_at {
        Some(a) => a,
        None => parse_addr("127.0.0.1:0")?,
    };
    let cloud =
        FakeCloud::start_as(main_at, o.dialect).with_context(|| format!("the API at {main_at}"))?;
    // (if, not match: another cloud's dialect keeps the DigitalOcean default until it says.)
    let default_region = if o.dialect == Dialect::Hetzner {
        // As FakeCloud::start_hetzner: Hetzner's budget, and more IPs than one page holds.
        cloud.set_rate_limit(hetzner::RATE.per_minute, hetzner::RATE.per_hour);
        for n in 0..hetzner::FILLER_IPS {
            cloud.add_ip_in(&format!("192.0.2.{}", 101 + n), hetzner::LOCATION, None);
        }
        hetzner::LOCATION
    } else if o.dialect == Dialect::Exoscale {
        exoscale::ZONE
    } else if o.dialect == Dialect::Vultr {
        // As FakeCloud::start_vultr: more reserved IPs than one page holds.
        for n in 0..vultr::FILLER_IPS {
            cloud.add_ip_in(&vultr::filler(n), vultr::REGION, None);
        }
        vultr::REGION
    } else {
        cloudha_tests::fakecloud::DEFAULT_REGION
    };
    let mut api = Vec::new();
    let has_main = o.listens.iter().any(|(_, ns)| ns.is_none());
    if has_main {
        api.push(cloud.api_url());
    }
    let mut first_main_skipped = false;
    for (addr, ns) in &o.listens {
        let url = match ns {
            None if !first_main_skipped => {
                first_main_skipped = true;
                continue;
            }
            None => cloud.serve_api_at(*addr),
            Some(ns) => cloud.try_serve_api_in_netns(ns, *addr),
        };
        api.push(url.with_context(|| format!("an API listener at {addr}"))?);
    }
    if api.is_empty() {
        api.push(cloud.api_url());
    }
    for t in &o.tokens {
        cloud.add_token(t);
    }
    for (key, secret) in &o.api_keys {
        cloud.add_api_key(key, secret);
    }
    for (ip, region, holder) in &o.ips {
        cloud.add_ip_in(ip, region.as_deref().unwrap_or(default_region), *holder);
    }
    let mut metadata: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (id, at) in &o.droplets {
        let url = match at {
            None => Ok(cloud.add_droplet(*id)),
            Some((addr, None)) => cloud.serve_metadata_at(*id, *addr),
            Some((addr, Some(ns))) => cloud.try_serve_metadata_in_netns(*id, ns, *addr),
        };
        metadata
            .entry(id.to_string())
            .or_default()
            .push(url.with_context(|| format!("droplet {id}'s metadata listener"))?);
    }
    for (id, addr, mask, gw) in &o.anchors {
        let gw = match gw {
            Some(g) => g.clone(),
            None => match (
                addr.parse::<std::net::Ipv4Addr>(),
                mask.parse::<std::net::Ipv4Addr>(),
            ) {
                (Ok(a), Ok(m)) => {
                    std::net::Ipv4Addr::from((u32::from(a) & u32::from(m)) + 1).to_string()
                }
                _ => bail!("--anchor {id}={addr}/{mask}: not an IPv4 address and netmask"),
            },
        };
        cloud.set_anchor(*id, addr, mask, &gw);
    }
    for (id, name) in &o.names {
        cloud.name_droplet(*id, name);
    }
    if let Some(t) = o.power_time {
        cloud.set_power_time(t);
    }
    if let Some(hook) = o.power_hook.clone() {
        cloud.set_power_hook(Some(std::sync::Arc::new(move |id: u64, on: bool| {
            let status = std::process::Command::new(&hook)
                .arg(id.to_string())
                .arg(if on { "on" } else { "off" })
                .stdin(std::process::Stdio::null())
                .status();
            if !status.as_ref().is_ok_and(|s| s.success()) {
                eprintln!("fakecloud: --power-hook {hook} {id}: {status:?}");
            }
        })));
    }
    cloud.set_action_time(o.action_time);
    cloud.set_metadata_lag(o.metadata_lag);
    if let Some((m, h)) = o.rate {
        cloud.set_rate_limit(m, h);
    }
    if let Some(s) = o.seed {
        cloud.seed_faults(s);
    }
    // "admin": the main API listener, in this namespace, where scripts reach /_fake/ from.
    let ready =
        serde_json::json!({"cloud": cloud.state_json()["dialect"], "api": api, "admin": cloud.api_url(), "metadata": metadata}).to_string();
    if let Some(p) = &o.ready_file {
        // Write then rename, so a script polling for the file never reads half of it.
        let tmp = format!("{p}.tmp");
        std::fs::write(&tmp, format!("{ready}\n"))
            .and_then(|()| std::fs::rename(&tmp, p))
            .with_context(|| format!("--ready-file {p}"))?;
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{ready}");
    let _ = out.flush();
    drop(out);
    // Serve until killed (SIGTERM/SIGINT end the process; the kernel closes the sockets).
    loop {
        std::thread::park();
    }
}
