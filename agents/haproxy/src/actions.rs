//! The rules: what each action does with the record, the processes and the master CLI.

use crate::master::{self, ProcList};
use crate::process::{self, Identity};
use crate::record::Started;
use crate::settings::{default_drain, default_grace, instance_state, Settings};
use crate::{check, grace, launch, SPEC};
use cloudha_common::{
    http, Agent, AgentSpec, Attempt, Context, Deadline, InstanceState, Logger, OcfError, OcfResult,
    Retry, RetryError, Status,
};
use nix::sys::signal::Signal;
use std::time::Duration;

/// Looking again whether the master has reloaded.
const RELOADED: Retry = Retry::backoff(Duration::from_millis(2), Duration::from_millis(20));
/// The longest a failed start spends taking down what it started (within the margin the
/// deadline keeps before Pacemaker's timeout).
const CLEANUP: Duration = Duration::from_secs(2);

pub struct Haproxy;

/// Depth 0: the record says started, and the pid file names a live master that is ours.
fn status(state: &InstanceState, log: &Logger) -> OcfResult<Option<(Started, u32)>> {
    let Some(started) = state.load::<Started>(log)? else {
        return Ok(None);
    };
    match started.master() {
        Some(pid) => Ok(Some((started, pid))),
        None => Err(OcfError::generic(format!(
            "HAProxy failed: its master ({}) is gone",
            match process::read_pidfile(&started.pidfile) {
                Some(pid) => format!("pid {pid} from {}", started.pidfile.display()),
                None => format!("no pid in {}", started.pidfile.display()),
            }
        ))),
    }
}

impl Agent for Haproxy {
    fn spec(&self) -> &'static AgentSpec {
        &SPEC
    }

    fn validate(&self, ctx: &Context) -> OcfResult<Status> {
        let s = Settings::from(ctx)?;
        if ctx.check_level() >= 10 {
            check::installed(&s, &ctx.params)?;
            check::config(&s, &ctx.params, &ctx.deadline)?;
            return Ok(Status::ok(format!(
                "parameters valid; {} passes the check",
                s.config.display()
            )));
        }
        Ok(Status::ok("parameters valid"))
    }

    fn start(&self, ctx: &Context) -> OcfResult<Status> {
        let s = Settings::from(ctx)?;
        check::installed(&s, &ctx.params)?;
        let state = instance_state(ctx);
        let lock = state.lock(&ctx.deadline)?;
        let identity = s.identity();
        if let Some(old) = state.load::<Started>(&ctx.log)? {
            if let Some(pid) = old.master() {
                if old.identity.config == identity.config && old.identity.socket == identity.socket
                {
                    return Ok(Status::ok(format!("already running (master pid {pid})")));
                }
            }
            // A failed instance (or one started with other settings): clear it away first.
            ctx.log
                .warn("clearing what a failed HAProxy instance left behind");
            if !process::terminate(&old.identity, &ctx.deadline) {
                return Err(OcfError::generic(format!(
                    "processes of the failed instance {:?} survive SIGKILL",
                    old.identity.all()
                )));
            }
            old.remove_files()?;
            state.clear::<Started>(&lock)?;
        }
        check::config(&s, &ctx.params, &ctx.deadline)?;
        let started = Started {
            identity: identity.clone(),
            pidfile: s.pidfile.clone(),
        };
        // Written before the launch, so that a stop after a start killed midway finds the processes.
        state.save(&lock, &started)?;
        match launch::launch(ctx, &s, &state, &started) {
            // The runner logs the answer at info: no second line here.
            Ok(master) => Ok(Status::ok(format!("started (master pid {master})"))),
            Err(e) => {
                // Nothing left half-done: take down whatever did start.
                let margin = ctx
                    .deadline
                    .timeout()
                    .saturating_sub(Deadline::budget(ctx.deadline.timeout()));
                process::terminate(&identity, &Deadline::after(margin.min(CLEANUP)));
                let _ = started.remove_files();
                let _ = state.clear::<Started>(&lock);
                Err(e)
            }
        }
    }

    fn stop(&self, ctx: &Context) -> OcfResult<Status> {
        let state = instance_state(ctx);
        // Stop works with whatever parameters arrive; a bad drain_time drains for the default,
        // a bad stop_grace keeps accepting for the default.
        let settings = Settings::from(ctx);
        let drain = settings
            .as_ref()
            .map_or_else(|_| default_drain(), |s| s.drain);
        if let Some((lock, started)) = state.hold::<Started>(&ctx.deadline, &ctx.log)? {
            let master = started.master();
            let grace = settings
                .as_ref()
                .map_or_else(|_| default_grace(), |s| s.grace);
            grace::keep_accepting(
                &started.identity.socket,
                master,
                grace,
                &ctx.deadline,
                &ctx.log,
            );
            process::drain_and_terminate(
                &started.identity,
                master,
                drain,
                &ctx.deadline,
                &ctx.log,
            )?;
            started.remove_files()?;
            state.clear::<Started>(&lock)?;
            return Ok(Status::ok("stopped"));
        }
        // Nothing recorded. Processes carrying this instance's socket and configuration can only
        // be ours (a start killed before it could record): stop them too.
        let Ok(s) = settings else {
            return Ok(Status::ok("not running"));
        };
        let identity = s.identity();
        if identity.all().is_empty() {
            // Not even the lock: a node without a usable HA_RSCTMP still stops cleanly.
            return Ok(Status::ok("not running"));
        }
        let _lock = state.lock(&ctx.deadline)?;
        process::drain_and_terminate(&identity, None, drain, &ctx.deadline, &ctx.log)?;
        // Best effort, as nothing recorded them: what matters is that no process is left.
        let _ = Started {
            identity,
            pidfile: s.pidfile,
        }
        .remove_files();
        Ok(Status::ok("not running"))
    }

    fn monitor(&self, ctx: &Context) -> OcfResult<Status> {
        let state = instance_state(ctx);
        let Some((started, master)) = status(&state, &ctx.log)? else {
            return Ok(Status::not_running("not running"));
        };
        let level = ctx.check_level();
        if level < 10 {
            return Ok(Status::ok(format!("master pid {master} runs")));
        }
        let list = master::show_proc(&started, master, &ctx.deadline)?;
        let Some(worker) = list.current_worker() else {
            return Err(OcfError::generic(format!(
                "master pid {master} runs no current worker"
            )));
        };
        let worker = worker.pid;
        let mut degraded = Vec::new();
        if list.failed > 0 {
            degraded.push(format!(
                "the last reload failed ({} in a row); the worker of the previous configuration keeps serving",
                list.failed
            ));
        }
        if level >= 20 {
            degraded.extend(depth_20(ctx, &started, worker)?);
        }
        if degraded.is_empty() {
            Ok(Status::ok(format!(
                "master pid {master}, worker pid {worker}"
            )))
        } else {
            Ok(Status::degraded(degraded.join("; ")))
        }
    }

    fn reload(&self, ctx: &Context) -> OcfResult<Status> {
        let s = Settings::from(ctx)?;
        let state = instance_state(ctx);
        let _lock = state.lock(&ctx.deadline)?;
        let Some((started, master)) = status(&state, &ctx.log)? else {
            return Ok(Status::not_running(
                "HAProxy is not running: nothing to reload",
            ));
        };
        check::config(&s, &ctx.params, &ctx.deadline)?;
        let before = master::show_proc(&started, master, &ctx.deadline)?;
        let reloads = before.master.as_ref().map_or(0, |m| m.reloads);
        let old: Vec<u32> = before.workers.iter().map(|w| w.pid).collect();
        // The master re-executes itself; the answer (none, in 2.6) and a reset connection are fine.
        let _ = master::ask_once(&started.identity.socket, "reload", &ctx.deadline);
        let after = reloaded(&started, master, reloads, &ctx.deadline)?;
        if after.failed > 0 {
            // HAProxy 2.6 paused the old worker's listeners for the new process and does not
            // resume them when that process fails (connections are refused): resume them.
            let serving = serving_workers(&after, &started.identity);
            process::signal_all(&serving, Signal::SIGTTIN);
            return Err(OcfError::generic(format!(
                "the master reports the reload of {} failed; the previous worker {serving:?} keeps serving",
                s.config.display()
            )));
        }
        let worker = master::wait_worker(&started, master, &ctx.deadline, &old)?;
        Ok(Status::ok(format!(
            "reloaded: new worker pid {worker} serves"
        )))
    }
}

/// Depth 20: every frontend open (1 otherwise), every backend with a server up (degraded
/// otherwise), and `check_url` answering 2xx or 3xx. What is degraded, in words.
fn depth_20(ctx: &Context, started: &Started, worker: u32) -> OcfResult<Vec<String>> {
    let answer = master::ask(
        &started.identity.socket,
        &format!("@!{worker} show stat"),
        &ctx.deadline,
    )
    .map_err(OcfError::generic)?;
    let rows = master::parse_stat(&answer)
        .map_err(|e| OcfError::generic(format!("worker {worker}: {e}")))?;
    let closed: Vec<String> = rows
        .iter()
        .filter(|r| r.name == "FRONTEND" && r.status != "OPEN")
        .map(|r| format!("{} ({})", r.proxy, r.status))
        .collect();
    if !closed.is_empty() {
        return Err(OcfError::generic(format!(
            "frontend(s) not open: {}",
            closed.join(", ")
        )));
    }
    let down: Vec<&str> = rows
        .iter()
        .filter(|r| r.name == "BACKEND" && r.status == "DOWN")
        .map(|r| r.proxy.as_str())
        .collect();
    let mut degraded = Vec::new();
    if !down.is_empty() {
        degraded.push(format!("backend(s) with no server up: {}", down.join(", ")));
    }
    if let Some(url) = Settings::from(ctx)?.check_url {
        match http::get_status(&url, &ctx.deadline) {
            Ok(code) if (200..400).contains(&code) => {}
            Ok(code) => {
                return Err(OcfError::generic(format!(
                    "check_url {url}: answered HTTP {code}"
                )))
            }
            Err(e) => return Err(OcfError::generic(format!("check_url {url}: {e}"))),
        }
    }
    Ok(degraded)
}

/// Wait until the master has lived through one more reload than `reloads`; its `show proc`.
fn reloaded(
    started: &Started,
    master: u32,
    reloads: u32,
    deadline: &Deadline,
) -> OcfResult<ProcList> {
    deadline
        .retry(&RELOADED, |d| match master::show_proc(started, master, d) {
            Err(e) => Attempt::Fail(e),
            Ok(list) if list.master.as_ref().is_some_and(|m| m.reloads > reloads) => {
                Attempt::Done(list)
            }
            Ok(_) => Attempt::Again(OcfError::generic(
                "the master did not reload within the timeout",
            )),
        })
        .map_err(RetryError::into_inner)
}

/// The workers the master lists that are ours (after a failed reload: the previous one).
fn serving_workers(list: &ProcList, identity: &Identity) -> Vec<u32> {
    list.workers
        .iter()
        .map(|w| w.pid)
        .filter(|pid| identity.matches(*pid))
        .collect()
}
