//! Programs an agent runs (a configuration check, a daemon's launcher), bounded by the action's
//! deadline. Each runs in a process group of its own, and the whole group is killed at the
//! deadline: a wrapper that forks cannot leave a grandchild running past the timeout.

use crate::deadline::{Attempt, Deadline, Retry};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How often a running child is looked at: quickly at first (checks take milliseconds).
const WAIT: Retry = Retry::backoff(Duration::from_millis(1), Duration::from_millis(20));
/// The most output kept from a child (its first lines say what went wrong).
const MAX_OUTPUT: u64 = 256 * 1024;

/// Kill `child`'s whole process group (it leads one: see `run` and `spawn_detached`), then reap it.
pub fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Wait for `child` (the leader of its own process group) until `deadline`; at the deadline
/// its whole group is killed.
pub fn wait(child: &mut Child, deadline: &Deadline) -> Result<ExitStatus, String> {
    let r = deadline.retry(&WAIT, |_| match child.try_wait() {
        Ok(Some(status)) => Attempt::Done(status),
        Ok(None) => Attempt::Again(None),
        Err(e) => Attempt::Fail(Some(e)),
    });
    match r {
        Ok(status) => Ok(status),
        Err(e) => {
            kill_group(child);
            match e.into_inner() {
                Some(e) => Err(format!("cannot wait: {e}")),
                None => Err("did not finish within the action's timeout".into()),
            }
        }
    }
}

/// Run `cmd` to completion within `deadline` in a process group of its own, collecting stdout
/// and stderr (bounded). Killed, with everything it started, at the deadline; and so is anything
/// it left behind holding its output open.
pub fn run(cmd: &mut Command, deadline: &Deadline) -> Result<(ExitStatus, String), String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run: {e}"))?;
    let (tx, rx) = mpsc::channel();
    let mut readers = 0;
    let streams: [Option<Box<dyn Read + Send>>; 2] = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ];
    for (i, stream) in streams.into_iter().enumerate() {
        let Some(stream) = stream else { continue };
        let tx = tx.clone();
        readers += 1;
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stream.take(MAX_OUTPUT).read_to_end(&mut bytes);
            let _ = tx.send((i, String::from_utf8_lossy(&bytes).into_owned()));
        });
    }
    drop(tx);
    // The output ends when the child exits (unless it left something holding it): waiting for
    // it first costs no polling, and the exit status is then there at once.
    let mut parts = vec![String::new(); 2];
    for _ in 0..readers {
        match rx.recv_timeout(deadline.remaining().max(Duration::from_millis(1))) {
            Ok((i, text)) => parts[i] = text,
            Err(_) => {
                let exited = matches!(child.try_wait(), Ok(Some(_)));
                kill_group(&mut child);
                return Err(if exited {
                    // Something the child started still holds its output: it is part of the group.
                    "left a process holding its output past the action's timeout".into()
                } else {
                    "did not finish within the action's timeout".into()
                });
            }
        }
    }
    let status = wait(&mut child, deadline)?;
    Ok((status, parts.concat()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn output_and_status() {
        let d = Deadline::after(Duration::from_secs(5));
        let (status, out) = run(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            &d,
        )
        .unwrap();
        assert_eq!(status.code(), Some(3));
        assert_eq!(out, "out\nerr\n");
    }

    #[test]
    fn a_forking_wrapper_is_killed_with_its_grandchild() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild.pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let d = Deadline::after(Duration::from_millis(500));
        let t = Instant::now();
        let e = run(Command::new("sh").args(["-c", &script]), &d).unwrap_err();
        assert!(e.contains("timeout"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Reaped by init shortly after the kill; it must not be running `sleep` any more.
        let gone = Deadline::after(Duration::from_secs(2)).retry(
            &Retry::every(Duration::from_millis(20)),
            |_| match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => Attempt::Done(()),
                Ok(s) if s.contains(") Z ") => Attempt::Done(()),
                Ok(_) => Attempt::Again(()),
            },
        );
        assert!(gone.is_ok(), "grandchild {pid} survived the deadline");
    }

    #[test]
    fn a_child_that_exits_but_leaves_its_output_open_is_bounded() {
        let d = Deadline::after(Duration::from_millis(500));
        let t = Instant::now();
        let r = run(Command::new("sh").args(["-c", "sleep 30 & exit 0"]), &d);
        assert!(
            r.as_ref().is_err_and(|e| e.contains("holding its output")),
            "{r:?}"
        );
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
