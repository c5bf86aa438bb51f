//! `ocf:cloudha:haproxy`: runs one HAProxy in master-worker mode for Pacemaker. It starts it
//! detached, watches it at three depths, reloads it through the master CLI, and drains it on
//! stop. It never adopts or touches a HAProxy it did not start.
//!
//! The declaration is here; `settings` checks the parameters, `record` is what start leaves for
//! monitor and stop, `actions` the rules; `check`, `launch`, `master` and `process` talk to
//! HAProxy, `holder` and `words` read what people and HAProxy wrote.

mod actions;
mod check;
mod grace;
mod holder;
mod launch;
mod master;
mod process;
mod record;
mod settings;
mod words;

use cloudha_common::{AbsPath, ActionSpec, AgentSpec, HttpUrl, Param, Seconds};

static CONFIG: Param<AbsPath> = Param::new("config")
    .default("/etc/haproxy/haproxy.cfg")
    .aliases(&["conffile"])
    .short("configuration file")
    .long("Absolute path of the HAProxy configuration file. Checked with 'haproxy -c' before every start and reload.");

static BINARY: Param<AbsPath> = Param::new("binary")
    .default("/usr/sbin/haproxy")
    .aliases(&["binpath"])
    .short("HAProxy binary")
    .long("Absolute path of the haproxy executable.");

static EXTRA_ARGS: Param<String> = Param::new("extra_args")
    .aliases(&["extraconf"])
    .short("extra command-line arguments")
    .long("More haproxy arguments, split into words like a shell would (quotes and backslashes group) but never run through a shell: nothing is expanded. Used for the check and the start.");

static PIDFILE: Param<AbsPath> = Param::new("pidfile")
    .short("pid file of the master")
    .long("Where HAProxy writes its master's pid. Default: a file of this instance under HA_RSCTMP (/run/resource-agents/cloudha/haproxy-INSTANCE.pid).")
    .unique();

static MASTER_SOCKET: Param<AbsPath> = Param::new("master_socket")
    .short("master CLI socket")
    .long("The master CLI unix socket (mode 600) used for monitoring and reloads. Default: a socket of this instance under HA_RSCTMP (/run/resource-agents/cloudha/haproxy-INSTANCE.sock).")
    .unique();

static DRAIN_TIME: Param<Seconds> = Param::new("drain_time")
    .default("30")
    .short("seconds open connections may take to finish on stop")
    .long("On stop HAProxy stops listening and lets open connections finish for at most this many seconds, never beyond the stop timeout (a few seconds are kept to terminate what is left); then the remaining processes are terminated and killed.");

static STOP_GRACE: Param<Seconds> = Param::new("stop_grace")
    .default("5")
    .short("seconds a stop keeps accepting while new connections still arrive")
    .long("On stop, before it stops listening, HAProxy keeps accepting while new connections still arrive (the floating IP may still point at this node while it moves to another): the drain begins once none arrived for 300 ms, or after at most this many seconds, and never takes more than half of what the stop timeout leaves. 0: stop listening at once. Skipped when the master CLI does not answer.");

static CHECK_URL: Param<HttpUrl> = Param::new("check_url")
    .short("URL fetched by the depth-20 monitor")
    .long("An http:// URL served through this HAProxy (for example http://127.0.0.1/health). The depth-20 monitor fails unless it answers with a 2xx or 3xx status. Empty: no request is made.");

static SPEC: AgentSpec = AgentSpec {
    name: "haproxy",
    version: env!("CARGO_PKG_VERSION"),
    shortdesc: "HAProxy in master-worker mode",
    longdesc: "Starts one HAProxy in master-worker mode with a master CLI socket, detached from \
the agent, and watches it: depth 0 checks that this instance's master process is alive and is \
HAProxy running this configuration; depth 10 that the master CLI answers and a worker runs \
(degraded while the last reload has failed and the previous worker serves); depth 20 that every frontend is open, every backend has a server up \
(degraded otherwise) and check_url answers. reload checks the configuration and reloads through \
the master; stop keeps accepting while new connections still arrive (at most stop_grace), then \
drains connections (SIGUSR1) within drain_time and the stop timeout, then terminates. A \
HAProxy that this agent did not start is never touched. Parameters conffile, binpath and extraconf of the older shell agent are accepted as aliases.",
    params: &[
        &CONFIG.spec,
        &BINARY.spec,
        &EXTRA_ARGS.spec,
        &PIDFILE.spec,
        &MASTER_SOCKET.spec,
        &DRAIN_TIME.spec,
        &CHECK_URL.spec,
        &STOP_GRACE.spec,
    ],
    actions: &[
        ActionSpec::new("start", 60),
        ActionSpec::new("stop", 60),
        ActionSpec::new("monitor", 20).interval(10).depth(0),
        ActionSpec::new("monitor", 20).interval(30).depth(10),
        ActionSpec::new("monitor", 30).interval(60).depth(20),
        ActionSpec::new("reload", 60),
        ActionSpec::new("notify", 5),
        ActionSpec::new("validate-all", 30),
        ActionSpec::new("meta-data", 5),
    ],
};

fn main() {
    cloudha_common::runner::main(&actions::Haproxy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_parses() {
        assert_eq!(SPEC.check_defaults(), Ok(()));
    }
}
