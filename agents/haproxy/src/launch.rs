//! Starting the daemon: `haproxy -W -D -S <socket>,mode,600 -p <pidfile> -f <config>` outside
//! the agent's process group (Pacemaker SIGKILLs that group when an action times out; HAProxy's
//! master then leaves for a session of its own), holding none of the agent's descriptors. Then
//! the waits until its master is named in the pid file and a worker answers.

use crate::check::first_alert;
use crate::record::Started;
use crate::settings::Settings;
use crate::{holder, master, BINARY};
use cloudha_common::{
    child, Attempt, Context, InstanceState, OcfCode, OcfError, OcfResult, Retry, RetryError,
};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How often the pid file is read until it names our master: HAProxy writes it at once.
const MASTER_PID: Retry = Retry::backoff(Duration::from_millis(1), Duration::from_millis(20));
/// The most of HAProxy's start output kept for the reason.
const MAX_LOG: u64 = 64 * 1024;

/// Launch the master (detached) and wait for a worker that answers; the master's pid.
pub fn launch(
    ctx: &Context,
    s: &Settings,
    state: &InstanceState,
    started: &Started,
) -> OcfResult<u32> {
    for f in [&s.pidfile, &s.socket] {
        let _ = std::fs::remove_file(f);
    }
    // HAProxy's output, for the reason when it fails: a new file, whatever had its name.
    let (mut log, _) = state.create_file("start.log")?;
    let stderr = log
        .try_clone()
        .map_err(|e| OcfError::generic(format!("cannot share the start log: {e}")))?;
    close_inherited_on_exec();
    let mut cmd = Command::new(&s.binary);
    cmd.arg("-W")
        .arg("-D")
        .arg("-S")
        .arg(format!("{},mode,600", s.socket.display()))
        .arg("-p")
        .arg(&s.pidfile)
        .arg("-f")
        .arg(&s.config)
        .args(&s.extra_args)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        // Out of the agent's process group, into one of its own (killed whole at the deadline).
        .process_group(0);
    let mut launcher = cmd.spawn().map_err(|e| {
        ctx.params.fault(
            OcfCode::ErrInstalled,
            &BINARY,
            format!("cannot run {}: {e}", s.binary.display()),
        )
    })?;
    let status = child::wait(&mut launcher, &ctx.deadline)
        .map_err(|e| OcfError::generic(format!("haproxy {e}")));
    let mut output = String::new();
    let _ = log
        .seek(SeekFrom::Start(0))
        .and_then(|_| (&mut log).take(MAX_LOG).read_to_string(&mut output));
    drop(log);
    let _ = state.remove_file("start.log");
    let status = status?;
    if !status.success() {
        let alert = first_alert(&output);
        return Err(OcfError::generic(format!(
            "HAProxy did not start ({status}): {alert}{}",
            holder::describe(&alert)
        )));
    }
    let master = ctx
        .deadline
        .retry(&MASTER_PID, |_| match started.master() {
            Some(pid) => Attempt::Done(pid),
            None => Attempt::Again(()),
        })
        .map_err(|_: RetryError<()>| {
            OcfError::generic(format!(
                "HAProxy started but no master of this instance is named in {}",
                s.pidfile.display()
            ))
        })?;
    master::wait_worker(started, master, &ctx.deadline, &[])?;
    Ok(master)
}

/// Descriptors the agent inherited (Pacemaker's, a caller's pipes) must not live on in the
/// daemon, or whoever waits for their end waits forever: mark every one above stderr
/// close-on-exec before the launch (std's own are already).
fn close_inherited_on_exec() {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // The directory's own descriptor is closed by now: EBADF, which is fine.
        let _ = fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
    }
}
