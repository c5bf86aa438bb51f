//! HAProxy's master CLI (the `-S` unix socket): one command per connection, the waits that
//! poll it, and parsers for the answers the agent reads (`show proc`, `show stat`). The client
//! shuts down its write side after the command, or the master waits for more and never answers.

use crate::record::Started;
use cloudha_common::{Attempt, Deadline, OcfError, OcfResult, Retry, RetryError};
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Asking again while the socket refuses (the master re-executes itself during a reload).
const ASK: Retry = Retry::backoff(Duration::from_millis(2), Duration::from_millis(20));
/// Looking again for a worker that answers (after a start or a reload).
const WORKER: Retry = Retry::backoff(Duration::from_millis(2), Duration::from_millis(20));
/// The longest one exchange with the master may take.
const PER_ASK: Duration = Duration::from_secs(5);
/// The most of an answer read (`show stat` of a large configuration included).
const MAX_ANSWER: u64 = 16 * 1024 * 1024;

/// Send `command` once; the whole answer, or the I/O error (refused while the master re-executes
/// itself during a reload, absent when it is not running).
pub fn ask_once(socket: &Path, command: &str, deadline: &Deadline) -> std::io::Result<String> {
    let timeout = deadline.cap(PER_ASK);
    if timeout.is_zero() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no time left",
        ));
    }
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(command.as_bytes())?;
    stream.write_all(b"\n")?;
    stream.shutdown(Shutdown::Write)?;
    let mut answer = String::new();
    stream.take(MAX_ANSWER).read_to_string(&mut answer)?;
    Ok(answer)
}

/// Send `command`, retrying while the socket refuses (a reload in progress) until `deadline`.
pub fn ask(socket: &Path, command: &str, deadline: &Deadline) -> Result<String, String> {
    deadline
        .retry(&ASK, |d| match ask_once(socket, command, d) {
            Ok(answer) => Attempt::Done(answer),
            Err(e) => Attempt::Again(e),
        })
        .map_err(|e| {
            format!(
                "master CLI {} did not answer '{command}': {}",
                socket.display(),
                e.into_inner()
            )
        })
}

/// `show proc`, parsed, checked to come from the master we started.
pub fn show_proc(started: &Started, master: u32, deadline: &Deadline) -> OcfResult<ProcList> {
    let socket = &started.identity.socket;
    let answer = ask(socket, "show proc", deadline).map_err(OcfError::generic)?;
    let list = ProcList::parse(&answer);
    match &list.master {
        Some(m) if m.pid == master => Ok(list),
        _ => Err(OcfError::generic(format!(
            "master CLI {} does not answer for master pid {master}: {}",
            socket.display(),
            answer.lines().next().unwrap_or("empty answer")
        ))),
    }
}

/// Wait until the master lists a current worker (none of `not`) that answers; its pid.
pub fn wait_worker(
    started: &Started,
    master: u32,
    deadline: &Deadline,
    not: &[u32],
) -> OcfResult<u32> {
    let socket = &started.identity.socket;
    let none_yet = || {
        OcfError::generic(format!(
            "no HAProxy worker answered through {} within the timeout",
            socket.display()
        ))
    };
    deadline
        .retry(&WORKER, |d| {
            let list = match show_proc(started, master, d) {
                Ok(list) => list,
                Err(e) => return Attempt::Fail(e),
            };
            let Some(w) = list.current_worker().filter(|w| !not.contains(&w.pid)) else {
                return Attempt::Again(none_yet());
            };
            let info = ask(socket, &format!("@!{} show info", w.pid), d);
            if info.is_ok_and(|i| i.contains(&format!("Pid: {}", w.pid))) {
                Attempt::Done(w.pid)
            } else {
                Attempt::Again(none_yet())
            }
        })
        .map_err(RetryError::into_inner)
}

/// One process line of `show proc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proc {
    pub pid: u32,
    /// How many reloads this process has lived through: 0 for the current worker.
    pub reloads: u32,
}

/// The answer to `show proc`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcList {
    pub master: Option<Proc>,
    /// Reloads that failed since the last one that worked (`[failed: N]`).
    pub failed: u32,
    pub workers: Vec<Proc>,
}

impl ProcList {
    /// Parse HAProxy 2.6's `show proc`:
    /// `1234  master  2 [failed: 0]  0d00h00m09s  2.6.12`, then `# workers`, then worker lines.
    pub fn parse(text: &str) -> ProcList {
        let mut list = ProcList::default();
        let mut section = "";
        for line in text.lines() {
            let line = line.trim();
            if let Some(s) = line.strip_prefix('#') {
                section = match s.trim() {
                    "workers" => "workers",
                    "<PID>" => "",
                    s if s.starts_with("<PID>") => "",
                    _ => "other",
                };
                continue;
            }
            let mut fields = line.split_whitespace();
            let (Some(pid), Some(kind), Some(reloads)) = (
                fields.next().and_then(|p| p.parse::<u32>().ok()),
                fields.next(),
                fields.next().and_then(|r| r.parse::<u32>().ok()),
            ) else {
                continue;
            };
            let proc = Proc { pid, reloads };
            match kind {
                "master" => {
                    if let Some(n) = line
                        .split("[failed:")
                        .nth(1)
                        .and_then(|r| r.split(']').next())
                        .and_then(|n| n.trim().parse().ok())
                    {
                        list.failed = n;
                    }
                    list.master = Some(proc);
                }
                "worker" if section == "workers" => list.workers.push(proc),
                _ => {}
            }
        }
        list
    }

    /// The worker started by the last successful (re)load: the one that has lived through the
    /// fewest reloads (0 after a good reload; more after failed ones, which keep it serving).
    pub fn current_worker(&self) -> Option<&Proc> {
        self.workers.iter().min_by_key(|w| w.reloads)
    }
}

/// One proxy's line of `show stat` that the monitor cares about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyStatus {
    pub proxy: String,
    /// `FRONTEND`, `BACKEND` or a server name.
    pub name: String,
    /// `OPEN`, `UP`, `DOWN`, `STOP`, `FULL`, `MAINT`, `no check`…
    pub status: String,
}

/// Parse `show stat` CSV (`# pxname,svname,…,status,…`).
pub fn parse_stat(text: &str) -> Result<Vec<ProxyStatus>, String> {
    let mut lines = text.lines();
    let header = lines
        .find(|l| l.starts_with("# "))
        .ok_or("show stat gave no header")?;
    let columns: Vec<&str> = header[2..].split(',').collect();
    let col = |name: &str| {
        columns
            .iter()
            .position(|c| *c == name)
            .ok_or(format!("show stat has no '{name}' column"))
    };
    let (px, sv, st) = (col("pxname")?, col("svname")?, col("status")?);
    let mut rows = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
        let f: Vec<&str> = line.split(',').collect();
        if let (Some(p), Some(s), Some(status)) = (f.get(px), f.get(sv), f.get(st)) {
            rows.push(ProxyStatus {
                proxy: p.to_string(),
                name: s.to_string(),
                status: status.to_string(),
            });
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Captured from HAProxy 2.6.12-1+deb12u4 (Debian 12): one worker after a start.
    const REAL_SHOW_PROC: &str = include_str!("../testdata/show-proc.txt");
    /// After a reload the master rejected: the serving worker has lived through one reload.
    const REAL_FAILED_RELOAD: &str = include_str!("../testdata/show-proc-failed-reload.txt");
    /// After a good reload while a connection kept the previous worker: `# old workers`.
    const REAL_OLD_WORKER: &str = include_str!("../testdata/show-proc-old-worker.txt");
    /// `@!<worker> show stat` of a frontend, a backend with two servers down, an empty backend.
    const REAL_SHOW_STAT: &str = include_str!("../testdata/show-stat.txt");

    const SHOW_PROC: &str =
        "#<PID>          <type>          <reloads>       <uptime>        <version>      \n\
13646           master          3 [failed: 1]   0d00h00m09s     2.6.12-1+deb12u4\n\
# workers\n\
13738           worker          0               0d00h00m00s     2.6.12-1+deb12u4\n\
13670           worker          1               0d00h00m08s     2.6.12-1+deb12u4\n\
# programs\n\n";

    #[test]
    fn show_proc() {
        let l = ProcList::parse(SHOW_PROC);
        assert_eq!(
            l.master,
            Some(Proc {
                pid: 13646,
                reloads: 3
            })
        );
        assert_eq!(l.failed, 1);
        assert_eq!(l.workers.len(), 2);
        assert_eq!(l.current_worker().map(|w| w.pid), Some(13738));
        assert_eq!(ProcList::parse(""), ProcList::default());
        // After a failed reload the serving worker has lived through it.
        let failed = SHOW_PROC.replace(
            "13738           worker          0",
            "13738           worker          2",
        );
        assert_eq!(
            ProcList::parse(&failed).current_worker().map(|w| w.pid),
            Some(13670)
        );
    }

    #[test]
    fn show_proc_as_haproxy_2_6_writes_it() {
        let proc = |pid, reloads| Proc { pid, reloads };
        assert_eq!(
            ProcList::parse(REAL_SHOW_PROC),
            ProcList {
                master: Some(proc(27357, 0)),
                failed: 0,
                workers: vec![proc(27358, 0)],
            }
        );
        assert_eq!(
            ProcList::parse(REAL_FAILED_RELOAD),
            ProcList {
                master: Some(proc(27357, 3)),
                failed: 1,
                workers: vec![proc(31202, 1)],
            }
        );
        // A worker of an earlier configuration, still finishing a connection, is not current.
        let l = ProcList::parse(REAL_OLD_WORKER);
        assert_eq!(l.master, Some(proc(27357, 4)));
        assert_eq!(l.workers, vec![proc(1751, 0)]);
        assert_eq!(l.current_worker(), Some(&proc(1751, 0)));
    }

    #[test]
    fn show_stat() {
        let text = "# pxname,svname,qcur,status,weight\n\
fe,FRONTEND,,OPEN,\n\
be,s1,0,DOWN,1\n\
be,BACKEND,0,DOWN,0\n\n";
        let rows = parse_stat(text).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].name, "FRONTEND");
        assert_eq!(rows[0].status, "OPEN");
        assert_eq!(rows[2].proxy, "be");
        assert_eq!(rows[2].status, "DOWN");
        assert!(parse_stat("Unknown command\n").is_err());
    }

    #[test]
    fn show_stat_as_haproxy_2_6_writes_it() {
        let rows = parse_stat(REAL_SHOW_STAT).unwrap();
        let got: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|r| (r.proxy.as_str(), r.name.as_str(), r.status.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("fe", "FRONTEND", "OPEN"),
                ("be", "s0", "DOWN"),
                ("be", "s1", "DOWN"),
                ("be", "BACKEND", "DOWN"),
                ("empty", "BACKEND", "UP"),
            ]
        );
    }

    /// The columns of HAProxy 2.6's `show stat` header.
    fn real_columns() -> Vec<&'static str> {
        REAL_SHOW_STAT
            .lines()
            .next()
            .and_then(|h| h.strip_prefix("# "))
            .unwrap()
            .split(',')
            .collect()
    }

    /// `list` as HAProxy 2.6 prints it (column widths as in the captured answers).
    fn render_proc(list: &ProcList, old: &[Proc]) -> String {
        let mut out =
            "#<PID>          <type>          <reloads>       <uptime>        <version>      \n"
                .to_string();
        if let Some(m) = &list.master {
            let reloads = format!("{} [failed: {}]", m.reloads, list.failed);
            out.push_str(&format!(
                "{:<16}master          {reloads:<16}0d00h00m09s     2.6.12-1+deb12u4\n",
                m.pid
            ));
        }
        out.push_str("# workers\n");
        for w in &list.workers {
            out.push_str(&format!(
                "{:<16}worker          {:<16}0d00h00m01s     2.6.12-1+deb12u4\n",
                w.pid, w.reloads
            ));
        }
        if !old.is_empty() {
            out.push_str("# old workers\n");
            for w in old {
                out.push_str(&format!(
                    "{:<16}worker          {:<16}0d00h01m01s     2.6.12-1+deb12u4\n",
                    w.pid, w.reloads
                ));
            }
        }
        out.push_str("# programs\n\n");
        out
    }

    fn procs() -> impl Strategy<Value = Vec<Proc>> {
        prop::collection::vec(
            (1u32..=4_194_304, 0u32..1000).prop_map(|(pid, reloads)| Proc { pid, reloads }),
            0..5,
        )
    }

    fn names() -> impl Strategy<Value = String> {
        // What HAProxy accepts in a proxy or server name.
        "[A-Za-z0-9_.:-]{1,24}"
    }

    fn statuses() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("OPEN".to_string()),
            Just("UP".to_string()),
            Just("DOWN".to_string()),
            Just("no check".to_string()),
            Just("UP 1/3".to_string()),
            Just("DOWN 1/2".to_string()),
            Just("MAINT".to_string()),
            Just("MAINT (via be/s0)".to_string()),
            Just("DRAIN".to_string()),
            Just("STOP".to_string()),
            Just("FULL".to_string()),
        ]
    }

    proptest! {
        #[test]
        fn show_proc_never_panics(text in "(?s).{0,400}") {
            let _ = ProcList::parse(&text).current_worker();
        }

        #[test]
        fn show_proc_reads_what_the_master_wrote(
            master in (1u32..=4_194_304, 0u32..1000),
            failed in 0u32..100,
            workers in procs(),
            old in procs(),
        ) {
            let list = ProcList {
                master: Some(Proc { pid: master.0, reloads: master.1 }),
                failed,
                workers,
            };
            prop_assert_eq!(ProcList::parse(&render_proc(&list, &old)), list);
        }

        #[test]
        fn show_stat_never_panics(text in "(?s)(# )?.{0,400}") {
            let _ = parse_stat(&text);
        }

        #[test]
        fn show_stat_reads_every_row_as_written(
            rows in prop::collection::vec((names(), names(), statuses()), 0..8)
        ) {
            let columns = real_columns();
            let mut text = format!("# {}\n", columns.join(","));
            for (proxy, name, status) in &rows {
                let line: Vec<&str> = columns
                    .iter()
                    .map(|c| match *c {
                        "pxname" => proxy.as_str(),
                        "svname" => name.as_str(),
                        "status" => status.as_str(),
                        _ => "0",
                    })
                    .collect();
                text.push_str(&line.join(","));
                text.push_str(",\n");
            }
            text.push('\n');
            let got = parse_stat(&text).map_err(TestCaseError::fail)?;
            let want: Vec<ProxyStatus> = rows
                .into_iter()
                .map(|(proxy, name, status)| ProxyStatus { proxy, name, status })
                .collect();
            prop_assert_eq!(got, want);
        }
    }
}
