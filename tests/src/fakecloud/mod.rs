//! A fake of the DigitalOcean API and of each droplet's metadata service, faithful to
//! shared/docs/digitalocean.md, with fault injection and a record of every request.
//!
//! One [`FakeCloud`] holds one account (tokens, reserved IPs, droplets, actions) and serves it on
//! any number of listeners: API listeners (the first on 127.0.0.1, more inside network
//! namespaces) and one or more metadata listeners per droplet. Every listener sees the same state.
//! Only the cloud is fake: the HTTP on the wire is real, so faults (resets, hangs) are real too.
//! docs/fakecloud.md describes the behaviour, the admin interface and the `fakecloud` program.

mod admin;
mod api;
mod clock;
pub mod exoscale;
mod faults;
pub mod hetzner;
mod http;
mod metadata;
mod state;
pub mod vultr;

pub use faults::{Fault, FaultKind, Scope, Trigger, OTHER_IP, OTHER_IP_ALT};
pub use state::{ActionKind, ActionStatus, ActionView, Anchor, RateLimit, DEFAULT_REGION};

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// Which cloud the fake speaks as: the same account, faults and record, another wire format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// shared/docs/digitalocean.md (`/v2/reserved_ips`, `/metadata/v1`).
    DigitalOcean,
    /// shared/docs/clouds.md's Hetzner section (`/v1/floating_ips`, `/hetzner/v1/metadata`).
    Hetzner,
    /// shared/docs/clouds.md's Exoscale section (`/v2/elastic-ip`, `/latest/meta-data`).
    Exoscale,
    /// shared/docs/clouds.md's Vultr section (`/v2/reserved-ips`, `/v1`).
    Vultr,
}

/// Which service a listener serves.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Listener {
    Api,
    /// The metadata service of this droplet.
    Metadata(u64),
}

/// One request as the fake received it (admin `/_fake/` requests are not recorded).
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub listener: Listener,
    /// The address of the listener that received it.
    pub local_addr: SocketAddr,
    pub peer_addr: SocketAddr,
    /// The network namespace of that listener (None: the fake's own).
    pub netns: Option<String>,
    pub method: String,
    /// Without the query string.
    pub path: String,
    /// As sent, with the query string.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub at: SystemTime,
    /// Since the fake started.
    pub since_start: Duration,
}

impl RecordedRequest {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// A request to the API (`/v2/...`, or Hetzner's `/v1/...`, on an API listener), the kind
    /// that spends a token's budget.
    pub fn is_api_call(&self) -> bool {
        self.listener == Listener::Api
            && (self.path.starts_with("/v2/") || self.path.starts_with("/v1/"))
    }
}

/// Everything the listeners share.
pub(crate) struct Shared {
    state: Mutex<state::State>,
    faults: Mutex<faults::Faults>,
    requests: Mutex<Vec<RecordedRequest>>,
    stopping: AtomicBool,
    stop_lock: Mutex<bool>,
    stop_cv: Condvar,
    listeners: Mutex<Vec<(TcpListener, Option<JoinHandle<()>>)>>,
    conns: Mutex<HashMap<u64, TcpStream>>,
    next_id: AtomicU64,
    started: Instant,
    api_url: Mutex<String>,
    pub(crate) dialect: Dialect,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test thread that panicked while holding a lock must not take the fake down with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(crate) fn lock_state(&self) -> MutexGuard<'_, state::State> {
        lock(&self.state)
    }
    pub(crate) fn lock_faults(&self) -> MutexGuard<'_, faults::Faults> {
        lock(&self.faults)
    }
    pub(crate) fn api_url(&self) -> String {
        lock(&self.api_url).clone()
    }
    fn record(&self, r: RecordedRequest) {
        lock(&self.requests).push(r);
    }
    /// A request id like DigitalOcean's (a UUID-shaped string).
    pub(crate) fn request_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::SeqCst);
        let x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (self.started.elapsed().as_nanos() as u64);
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (x >> 32) as u32,
            (x >> 16) as u16,
            (x & 0xfff) as u16,
            (n & 0xfff) as u16,
            n & 0xffff_ffff_ffff
        )
    }
    fn register_conn(&self, s: &TcpStream) -> Option<u64> {
        let c = s.try_clone().ok()?;
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let mut conns = lock(&self.conns);
        if self.stopping.load(Ordering::SeqCst) {
            return None;
        }
        conns.insert(id, c);
        Some(id)
    }
    fn unregister_conn(&self, id: u64) {
        lock(&self.conns).remove(&id);
    }
    /// Sleep `d` unless the fake stops first; false when it stopped.
    fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        let mut stopped = lock(&self.stop_lock);
        while !*stopped {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            stopped = self
                .stop_cv
                .wait_timeout(stopped, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        false
    }
    fn shutdown(&self) {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        *lock(&self.stop_lock) = true;
        self.stop_cv.notify_all();
        let listeners: Vec<_> = std::mem::take(&mut *lock(&self.listeners));
        for (l, _) in &listeners {
            http::shutdown_fd(l.as_raw_fd());
        }
        for (_, h) in listeners {
            if let Some(h) = h {
                let _ = h.join();
            }
        }
        for (_, c) in lock(&self.conns).drain() {
            http::shutdown_fd(c.as_raw_fd());
        }
    }
}

/// Stops everything when the last handle goes.
struct Guard {
    shared: Arc<Shared>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.shutdown();
    }
}

/// A handle on one fake cloud. Clones share it; the last one dropped stops every listener.
#[derive(Clone)]
pub struct FakeCloud {
    guard: Arc<Guard>,
}

/// The gateway DigitalOcean gives an anchor network: its first address.
pub(crate) fn default_gateway(address: &str, netmask: &str) -> String {
    match (address.parse::<Ipv4Addr>(), netmask.parse::<Ipv4Addr>()) {
        (Ok(a), Ok(m)) => Ipv4Addr::from((u32::from(a) & u32::from(m)) + 1).to_string(),
        _ => String::new(),
    }
}

/// Open `/run/netns/<name>`, or `name` itself when it is a path (e.g. `/proc/<pid>/ns/net`).
fn netns_path(name: &str) -> String {
    if name.contains('/') {
        name.to_string()
    } else {
        format!("/run/netns/{name}")
    }
}

/// Bind `addr` inside network namespace `netns` from a dedicated thread (setns changes only the
/// calling thread; the socket keeps its namespace), then serve it on that thread.
pub(crate) fn bind_in_netns(netns: &str, addr: SocketAddr) -> io::Result<TcpListener> {
    let path = netns_path(netns);
    std::thread::scope(|s| {
        s.spawn(|| -> io::Result<TcpListener> {
            let f = std::fs::File::open(&path)
                .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| io::Error::other(format!("setns {path}: {e}")))?;
            TcpListener::bind(addr)
                .map_err(|e| io::Error::new(e.kind(), format!("bind {addr} in {netns}: {e}")))
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the setns thread panicked")))
    })
}

impl FakeCloud {
    /// A fake with its API on 127.0.0.1:<ephemeral>. Panics if it cannot listen.
    pub fn start() -> FakeCloud {
        FakeCloud::start_at(SocketAddr::from(([127, 0, 0, 1], 0)))
            .unwrap_or_else(|e| panic!("fake cloud: {e}"))
    }

    /// A fake Hetzner Cloud project on 127.0.0.1:<ephemeral>, holding
    /// [`hetzner::FILLER_IPS`] unheld floating IPs already (more than one page), with Hetzner's
    /// rate budget (3600 per hour). Servers are added with `add_droplet` (a server's metadata
    /// service: `http://127.0.0.1:PORT/hetzner/v1/metadata`). Panics if it cannot listen.
    pub fn start_hetzner() -> FakeCloud {
        let cloud = FakeCloud::start_as(SocketAddr::from(([127, 0, 0, 1], 0)), Dialect::Hetzner)
            .unwrap_or_else(|e| panic!("fake cloud: {e}"));
        {
            let mut st = cloud.shared().lock_state();
            st.rate = hetzner::RATE;
            for n in 0..hetzner::FILLER_IPS {
                st.add_ip(&format!("192.0.2.{}", 101 + n), hetzner::LOCATION, None);
            }
        }
        cloud
    }

    /// A fake Exoscale account on 127.0.0.1:<ephemeral>, its API serving zone
    /// [`exoscale::ZONE`]. Instances are added with `add_droplet` (an instance's metadata
    /// service: `http://127.0.0.1:PORT/latest/meta-data`; its UUID: [`exoscale::instance_uuid`]),
    /// keys with `add_api_key`, elastic IPs with `add_ip_in(ip, exoscale::ZONE, holder)`.
    pub fn start_exoscale() -> FakeCloud {
        FakeCloud::start_as(SocketAddr::from(([127, 0, 0, 1], 0)), Dialect::Exoscale)
            .unwrap_or_else(|e| panic!("fake cloud: {e}"))
    }

    /// A fake Vultr account on 127.0.0.1:<ephemeral>, holding [`vultr::FILLER_IPS`] reserved
    /// IPv6 subnets already (more than one page of 500), none attached. Instances are added with
    /// `add_droplet` (an instance's metadata service: `http://127.0.0.1:PORT/v1`; its UUID:
    /// [`vultr::instance_uuid`]), reserved IPs with `add_ip_in(ip, vultr::REGION, holder)`.
    /// Panics if it cannot listen.
    pub fn start_vultr() -> FakeCloud {
        let cloud = FakeCloud::start_as(SocketAddr::from(([127, 0, 0, 1], 0)), Dialect::Vultr)
            .unwrap_or_else(|e| panic!("fake cloud: {e}"));
        {
            let mut st = cloud.shared().lock_state();
            for n in 0..vultr::FILLER_IPS {
                st.add_ip(&vultr::filler(n), vultr::REGION, None);
            }
        }
        cloud
    }

    /// Accept requests signed with this Exoscale API key and secret.
    pub fn add_api_key(&self, key: &str, secret: &str) {
        self.shared()
            .lock_state()
            .api_keys
            .insert(key.to_string(), secret.to_string());
    }

    /// Stop accepting an Exoscale API key.
    pub fn revoke_api_key(&self, key: &str) {
        self.shared().lock_state().api_keys.remove(key);
    }

    /// Every holder of `ip` now (Exoscale: possibly several), operations due completed first.
    pub fn holders(&self, ip: &str) -> Vec<u64> {
        let mut st = self.shared().lock_state();
        st.settle(Instant::now());
        st.holders(ip)
    }

    /// Make `holders` the holders of `ip` now, without an operation (Exoscale).
    pub fn set_holders(&self, ip: &str, holders: &[u64]) {
        let mut st = self.shared().lock_state();
        let now = Instant::now();
        st.settle(now);
        assert!(st.set_holders(ip, holders, now), "set_holders: no IP {ip}");
    }

    /// The floating IP's id (Hetzner's dialect addresses IPs by id).
    pub fn ip_id(&self, ip: &str) -> Option<u64> {
        self.shared().lock_state().id_of_ip(ip)
    }

    /// A fake with its API on `addr` (port 0: ephemeral).
    pub fn start_at(addr: SocketAddr) -> io::Result<FakeCloud> {
        FakeCloud::start_as(addr, Dialect::DigitalOcean)
    }

    /// A fake speaking `dialect` with its API on `addr` (port 0: ephemeral).
    pub fn start_as(addr: SocketAddr, dialect: Dialect) -> io::Result<FakeCloud> {
        let shared = Arc::new(Shared {
            state: Mutex::new(state::State::new()),
            faults: Mutex::new(faults::Faults::new()),
            requests: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            stop_lock: Mutex::new(false),
            stop_cv: Condvar::new(),
            listeners: Mutex::new(Vec::new()),
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            started: Instant::now(),
            api_url: Mutex::new(String::new()),
            dialect,
        });
        let cloud = FakeCloud {
            guard: Arc::new(Guard { shared }),
        };
        let l = TcpListener::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("bind {addr}: {e}")))?;
        let url = cloud.serve(l, Listener::Api, None)?;
        *lock(&cloud.shared().api_url) = url;
        Ok(cloud)
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.guard.shared
    }

    /// Serve `l` on its own thread; returns `http://<addr>`.
    fn serve(&self, l: TcpListener, kind: Listener, netns: Option<String>) -> io::Result<String> {
        let addr = l.local_addr()?;
        let keep = l.try_clone()?;
        let shared = self.shared().clone();
        let h = std::thread::Builder::new()
            .name(format!("fakecloud-{kind:?}"))
            .spawn(move || http::accept_loop(shared, l, kind, netns))?;
        let mut ls = lock(&self.shared().listeners);
        if self.shared().stopping.load(Ordering::SeqCst) {
            http::shutdown_fd(keep.as_raw_fd());
        }
        ls.push((keep, Some(h)));
        Ok(format!("http://{addr}"))
    }

    /// The first API listener: `http://127.0.0.1:PORT`.
    pub fn api_url(&self) -> String {
        self.shared().api_url()
    }

    /// Accept `Authorization: Bearer <token>`.
    pub fn add_token(&self, token: &str) {
        self.shared().lock_state().tokens.insert(token.to_string());
    }

    /// Stop accepting a token (a revoked token answers 401 from now on).
    pub fn revoke_token(&self, token: &str) {
        self.shared().lock_state().tokens.remove(token);
    }

    /// A reserved IP in the account, in region nyc3, held by `holder` (a droplet id) or by none.
    pub fn add_ip(&self, ip: &str, holder: Option<u64>) {
        self.add_ip_in(ip, DEFAULT_REGION, holder)
    }

    pub fn add_ip_in(&self, ip: &str, region: &str, holder: Option<u64>) {
        assert!(
            ip.parse::<std::net::IpAddr>().is_ok(),
            "add_ip: {ip:?} is not an IP address"
        );
        self.shared().lock_state().add_ip(ip, region, holder);
    }

    /// Make droplet `id` known to the API (assign to an unknown droplet answers 422) without a
    /// metadata listener.
    pub fn register_droplet(&self, id: u64) {
        self.shared().lock_state().droplets.entry(id).or_default();
    }

    /// Droplet `id` with a metadata listener on 127.0.0.1:<ephemeral>; returns its base URL
    /// `http://127.0.0.1:PORT/metadata/v1`.
    pub fn add_droplet(&self, id: u64) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("fake metadata: {e}"));
        self.metadata_on(id, l, None)
            .unwrap_or_else(|e| panic!("fake metadata: {e}"))
    }

    /// Droplet `id`'s metadata service on `addr` in the fake's own namespace.
    pub fn serve_metadata_at(&self, id: u64, addr: SocketAddr) -> io::Result<String> {
        let l = TcpListener::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("bind {addr}: {e}")))?;
        self.metadata_on(id, l, None)
    }

    fn metadata_on(&self, id: u64, l: TcpListener, netns: Option<String>) -> io::Result<String> {
        self.register_droplet(id);
        let base = match self.shared().dialect {
            Dialect::DigitalOcean => "metadata/v1",
            Dialect::Hetzner => "hetzner/v1/metadata",
            Dialect::Exoscale => "latest/meta-data",
            Dialect::Vultr => "v1",
        };
        let url = format!("{}/{base}", self.serve(l, Listener::Metadata(id), netns)?);
        self.shared()
            .lock_state()
            .droplets
            .entry(id)
            .or_default()
            .metadata_urls
            .push(url.clone());
        Ok(url)
    }

    /// Give droplet `id` an anchor IP (`interfaces/public/0/anchor_ipv4/*`).
    pub fn set_anchor(&self, id: u64, address: &str, netmask: &str, gateway: &str) {
        self.shared()
            .lock_state()
            .droplets
            .entry(id)
            .or_default()
            .anchor = Some(Anchor {
            address: address.to_string(),
            netmask: netmask.to_string(),
            gateway: gateway.to_string(),
        });
    }

    /// Remove droplet `id`'s anchor IP (as on droplets made before Oct 2015 or custom images).
    pub fn clear_anchor(&self, id: u64) {
        if let Some(d) = self.shared().lock_state().droplets.get_mut(&id) {
            d.anchor = None;
        }
    }

    /// Droplet `id`'s metadata service inside network namespace `netns` (a name under
    /// /run/netns, or a path such as /proc/PID/ns/net), on `addr`, which must exist there.
    /// Returns `http://ADDR/metadata/v1`. Panics if it cannot listen.
    pub fn serve_metadata_in_netns(&self, id: u64, netns: &str, addr: SocketAddr) -> String {
        self.try_serve_metadata_in_netns(id, netns, addr)
            .unwrap_or_else(|e| panic!("fake metadata in {netns}: {e}"))
    }

    pub fn try_serve_metadata_in_netns(
        &self,
        id: u64,
        netns: &str,
        addr: SocketAddr,
    ) -> io::Result<String> {
        let l = bind_in_netns(netns, addr)?;
        self.metadata_on(id, l, Some(netns.to_string()))
    }

    /// Another API listener, inside `netns`, on `addr`; returns `http://ADDR`. Panics if it
    /// cannot listen.
    pub fn serve_api_in_netns(&self, netns: &str, addr: SocketAddr) -> String {
        self.try_serve_api_in_netns(netns, addr)
            .unwrap_or_else(|e| panic!("fake API in {netns}: {e}"))
    }

    pub fn try_serve_api_in_netns(&self, netns: &str, addr: SocketAddr) -> io::Result<String> {
        let l = bind_in_netns(netns, addr)?;
        self.serve(l, Listener::Api, Some(netns.to_string()))
    }

    /// Another API listener in the fake's own namespace.
    pub fn serve_api_at(&self, addr: SocketAddr) -> io::Result<String> {
        let l = TcpListener::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("bind {addr}: {e}")))?;
        self.serve(l, Listener::Api, None)
    }

    /// Who holds `ip` now (actions whose time has come are completed first).
    pub fn holder(&self, ip: &str) -> Option<u64> {
        let mut st = self.shared().lock_state();
        st.settle(Instant::now());
        st.holder(ip)
    }

    /// Is an action pending on `ip`?
    pub fn locked(&self, ip: &str) -> bool {
        let mut st = self.shared().lock_state();
        st.settle(Instant::now());
        st.locked(ip)
    }

    /// Move `ip` now, without an action (as the console or another client would).
    pub fn set_holder(&self, ip: &str, holder: Option<u64>) {
        let mut st = self.shared().lock_state();
        let now = Instant::now();
        st.settle(now);
        assert!(st.set_holder(ip, holder, now), "set_holder: no IP {ip}");
    }

    /// How long new actions stay `in-progress` (default 0: completed at the next read).
    pub fn set_action_time(&self, d: Duration) {
        self.shared().lock_state().action_time = d;
    }

    /// How late metadata services see assignment changes (default 0).
    pub fn set_metadata_lag(&self, d: Duration) {
        self.shared().lock_state().metadata_lag = d;
    }

    /// Per-token budgets (default 250 a minute, 5,000 an hour).
    pub fn set_rate_limit(&self, per_minute: u32, per_hour: u32) {
        self.shared().lock_state().rate = RateLimit {
            per_minute,
            per_hour,
        };
    }

    /// Every action so far, oldest first.
    pub fn actions(&self) -> Vec<ActionView> {
        let mut st = self.shared().lock_state();
        st.settle(Instant::now());
        st.action_ids()
            .into_iter()
            .filter_map(|id| st.action_view(id))
            .collect()
    }

    /// Every recorded request, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared().requests).clone()
    }

    /// The recorded requests to the API (`/v2/...` on API listeners), oldest first.
    pub fn api_requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared().requests)
            .iter()
            .filter(|r| r.is_api_call())
            .cloned()
            .collect()
    }

    /// Requests to the API (`/v2/...` on API listeners).
    pub fn api_request_count(&self) -> usize {
        lock(&self.shared().requests)
            .iter()
            .filter(|r| r.is_api_call())
            .count()
    }

    /// Requests to droplet `id`'s metadata listeners.
    pub fn metadata_request_count(&self, id: u64) -> usize {
        lock(&self.shared().requests)
            .iter()
            .filter(|r| r.listener == Listener::Metadata(id))
            .count()
    }

    pub fn clear_requests(&self) {
        lock(&self.shared().requests).clear();
    }

    pub fn inject(&self, fault: Fault) {
        self.shared().lock_faults().add(fault);
    }

    pub fn clear_faults(&self) {
        self.shared().lock_faults().clear();
    }

    /// Seed the generator behind `Trigger::Fraction` (runs with one seed repeat exactly).
    pub fn seed_faults(&self, seed: u64) {
        self.shared().lock_faults().seed(seed);
    }

    /// The admin interface's `/_fake/state` document.
    pub fn state_json(&self) -> serde_json::Value {
        admin::state_json(self.shared())
    }

    /// Stop every listener and close every connection now (also done when the last handle
    /// drops). Afterwards connections are refused.
    pub fn shutdown(&self) {
        self.shared().shutdown();
    }
}
