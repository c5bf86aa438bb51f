//! HAProxy's master CLI (the `-S` unix socket): one command per connection, and parsers for the
//! answers the agent reads (`show proc`, `show stat`). The client shuts down its write side after
//! the command, or the master waits for more and never answers.

use cloudha_common::Deadline;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Send `command` once; the whole answer, or the I/O error (refused while the master re-executes
/// itself during a reload, absent when it is not running).
pub fn ask_once(socket: &Path, command: &str, deadline: &Deadline) -> std::io::Result<String> {
    let timeout = deadline.cap(Duration::from_secs(5));
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
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

/// Send `command`, retrying while the socket refuses (a reload in progress) until `deadline`.
pub fn ask(socket: &Path, command: &str, deadline: &Deadline) -> Result<String, String> {
    let mut delay =
        cloudha_common::Backoff::new(Duration::from_millis(2), Duration::from_millis(20));
    loop {
        match ask_once(socket, command, deadline) {
            Ok(a) => return Ok(a),
            Err(e) => {
                if !deadline.sleep(delay.next_delay()) {
                    return Err(format!(
                        "master CLI {} did not answer '{command}': {e}",
                        socket.display()
                    ));
                }
            }
        }
    }
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
}
