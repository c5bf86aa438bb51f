//! What the anchorip tests share: one resource instance run the way Pacemaker runs it (its own
//! state directory, instance name and parameters) inside a namespace the test made. The agent
//! runs only through `cloudha_tests::run_agent`, and answers are checked with `AgentRun::expect`.
#![allow(dead_code)]

use cloudha_tests::{agent_bin, run_agent, AgentRun, Netns};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A private HA_RSCTMP, removed on drop.
pub struct StateDir(PathBuf);

impl StateDir {
    pub fn new() -> StateDir {
        let p = std::env::temp_dir().join(format!(
            "cloudha-anchorip-test-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&p).expect("state dir");
        StateDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One anchorip resource instance.
pub struct Rsc<'a> {
    pub ns: &'a Netns,
    pub state: StateDir,
    pub instance: String,
    pub params: Vec<(String, String)>,
}

impl<'a> Rsc<'a> {
    pub fn new(ns: &'a Netns, instance: &str, params: &[(&str, &str)]) -> Rsc<'a> {
        Rsc {
            ns,
            state: StateDir::new(),
            instance: instance.to_string(),
            params: params
                .iter()
                .map(|(k, v)| (format!("OCF_RESKEY_{k}"), v.to_string()))
                .collect(),
        }
    }

    /// Run `action` with the instance's parameters and `extra` variables.
    pub fn run_with(&self, action: &str, extra: &[(&str, &str)]) -> AgentRun {
        let rsctmp = self.state.path().display().to_string();
        let mut vars: Vec<(&str, &str)> = vec![
            ("HA_RSCTMP", &rsctmp),
            ("OCF_RESOURCE_INSTANCE", &self.instance),
            ("OCF_RESOURCE_TYPE", "anchorip"),
            ("OCF_RESOURCE_PROVIDER", "cloudha"),
            ("OCF_RESKEY_CRM_meta_timeout", "20000"),
        ];
        vars.extend(self.params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        vars.extend_from_slice(extra);
        run_agent(&agent_bin("anchorip"), action, &vars, Some(self.ns))
    }

    pub fn start(&self) -> AgentRun {
        self.run_with("start", &[])
    }
    pub fn stop(&self) -> AgentRun {
        self.run_with("stop", &[])
    }
    /// A recurring monitor (interval 10 s), as Pacemaker runs it on a started resource.
    pub fn monitor(&self) -> AgentRun {
        self.run_with("monitor", &[("OCF_RESKEY_CRM_meta_interval", "10000")])
    }
    /// A probe: monitor with interval 0.
    pub fn probe(&self) -> AgentRun {
        self.run_with("monitor", &[("OCF_RESKEY_CRM_meta_interval", "0")])
    }
    pub fn validate(&self, level: &str) -> AgentRun {
        self.run_with("validate-all", &[("OCF_CHECK_LEVEL", level)])
    }

    /// This instance's start record as the agent wrote it (boot id line included), if any.
    pub fn record(&self) -> Option<String> {
        let path = self
            .state
            .path()
            .join(format!("cloudha/anchorip-{}.started", self.instance));
        std::fs::read_to_string(path).ok()
    }

    /// Whether this instance's start record says that it added the address (stop removes it).
    pub fn claims(&self) -> bool {
        self.record()
            .is_some_and(|r| r.lines().any(|l| l == "added=yes"))
    }

    /// The files this instance keeps in its state directory (the lock aside).
    pub fn records(&self) -> Vec<String> {
        let dir = self.state.path().join("cloudha");
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".lock"))
            .collect();
        names.sort();
        names
    }
}

/// A namespace with `lo` up and an ethernet-like `eth0` (veth, peer `peer0`), both up.
pub fn netns_with_eth0(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.add_veth("eth0", "peer0");
    ns
}

/// Run `f` on a thread that has entered `ns`'s network namespace (only that thread moves).
pub fn in_netns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{}", ns.name);
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // setns moves only the calling thread.
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
            .unwrap_or_else(|e| panic!("setns {path}: {e}"));
        f()
    })
    .join()
    .expect("netns thread")
}
