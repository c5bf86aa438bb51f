//! A stop's grace: before the soft stop closes the listeners, HAProxy keeps accepting while new
//! connections still arrive (a floating IP keeps pointing at this node until another node's
//! start has moved it). Arrivals are the current worker's `CumConns`, read through the master CLI.

use crate::master::{self, ProcList};
use crate::process;
use cloudha_common::{Attempt, Deadline, Logger, Retry, RetryError};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long no new connection must have arrived before the drain begins.
pub const QUIET: Duration = Duration::from_millis(300);
/// How often the worker's count of connections is read.
const POLL: Retry = Retry::every(Duration::from_millis(50));
/// The longest one question to the master CLI may take here: a master that does not answer
/// at once is broken, and the stop of a broken HAProxy must not get slower.
const PER_ASK: Duration = Duration::from_millis(500);

/// Connections counted by the worker, less the ones this grace made itself.
#[derive(Debug)]
struct Arrivals {
    /// The last `CumConns` read.
    last: u64,
    /// New connections seen since the grace began.
    accepted: u64,
    /// When the last new connection was seen (or the grace began).
    quiet_since: Instant,
}

impl Arrivals {
    fn new(first: u64, now: Instant) -> Arrivals {
        Arrivals {
            last: first,
            accepted: 0,
            quiet_since: now,
        }
    }

    /// A new reading of `CumConns`. Each reading is itself one connection to the worker (the
    /// master relays `@!<pid>` commands over a new one), counted before the answer.
    fn saw(&mut self, count: u64, now: Instant) {
        let new = count.saturating_sub(self.last).saturating_sub(1);
        self.last = count;
        if new > 0 {
            self.accepted += new;
            self.quiet_since = now;
        }
    }
}

/// The worker's `CumConns`, from its `show info` (which must name that worker).
fn parse_info(answer: &str, worker: u32) -> Result<u64, String> {
    let field = |name: &str| {
        answer
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    if field("Pid") != Some(worker.to_string().as_str()) {
        return Err(format!(
            "worker {worker} did not answer show info: {}",
            answer.lines().next().unwrap_or("empty answer")
        ));
    }
    field("CumConns")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("worker {worker}'s show info has no CumConns"))
}

/// Why the master CLI gave no answer, in words (a read that timed out says EAGAIN).
fn cli_error(socket: &Path, e: &std::io::Error) -> String {
    use std::io::ErrorKind::{TimedOut, WouldBlock};
    match e.kind() {
        WouldBlock | TimedOut => format!(
            "master CLI {} gave no answer within {} ms",
            socket.display(),
            PER_ASK.as_millis()
        ),
        _ => format!("master CLI {}: {e}", socket.display()),
    }
}

fn cum_conns(socket: &Path, worker: u32, deadline: &Deadline) -> Result<u64, String> {
    let answer = master::ask_once(
        socket,
        &format!("@!{worker} show info"),
        &deadline.sooner(PER_ASK),
    )
    .map_err(|e| cli_error(socket, &e))?;
    parse_info(&answer, worker)
}

/// The serving worker of `master`, and its `CumConns`: one try each, no retry.
fn first_reading(socket: &Path, master: u32, deadline: &Deadline) -> Result<(u32, u64), String> {
    let answer = master::ask_once(socket, "show proc", &deadline.sooner(PER_ASK))
        .map_err(|e| cli_error(socket, &e))?;
    let list = ProcList::parse(&answer);
    if list.master.as_ref().map(|m| m.pid) != Some(master) {
        return Err(format!(
            "master CLI {} does not answer for master pid {master}",
            socket.display()
        ));
    }
    let worker = list
        .current_worker()
        .ok_or_else(|| format!("master pid {master} runs no current worker"))?
        .pid;
    Ok((worker, cum_conns(socket, worker, deadline)?))
}

/// Keep HAProxy accepting while new connections arrive: return once none arrived for `QUIET`,
/// or after `grace`, never using more than half of what `deadline` leaves after the reserve to
/// terminate (the drain keeps the rest). Returns at once when `grace` is zero, the master is not
/// running (`None`) or its CLI does not answer. Logs one line saying what happened.
pub fn keep_accepting(
    socket: &Path,
    master: Option<u32>,
    grace: Duration,
    deadline: &Deadline,
    log: &Logger,
) {
    if grace.is_zero() {
        return;
    }
    let Some(master) = master else {
        log.info("no grace before the soft stop: the master is not running");
        return;
    };
    let remaining = deadline.remaining();
    let bound = grace.min(remaining.saturating_sub(process::terminate_reserve(remaining)) / 2);
    let window = deadline.sooner(bound);
    let began = Instant::now();
    let (worker, first) = match first_reading(socket, master, &window) {
        Ok(reading) => reading,
        Err(e) => {
            log.info(format_args!(
                "no grace before the soft stop: {e}; stopping at once"
            ));
            return;
        }
    };
    let mut arrivals = Arrivals::new(first, Instant::now());
    let ended = window.retry(&POLL, |d| match cum_conns(socket, worker, d) {
        Err(e) => Attempt::Fail(e),
        Ok(count) => {
            let now = Instant::now();
            arrivals.saw(count, now);
            if now.duration_since(arrivals.quiet_since) >= QUIET {
                Attempt::Done(())
            } else {
                // Not an error: connections still arrive.
                Attempt::Again(String::new())
            }
        }
    });
    let took = began.elapsed().as_millis();
    let quiet = arrivals.quiet_since.elapsed().as_millis();
    let accepted = arrivals.accepted;
    match ended {
        Ok(()) if accepted == 0 => log.info(format_args!(
            "no new connections in {} ms: stopping at once",
            QUIET.as_millis()
        )),
        Ok(()) => log.info(format_args!(
            "accepted {accepted} new connection(s) during the grace of {took} ms, quiet since {quiet} ms"
        )),
        Err(RetryError::GaveUp { .. }) if accepted == 0 => log.info(format_args!(
            "no new connections during the grace of {took} ms (bound {} ms): stopping listening now",
            bound.as_millis()
        )),
        Err(RetryError::GaveUp { .. }) => log.info(format_args!(
            "accepted {accepted} new connection(s) during the grace of {took} ms (bound {} ms), the last {quiet} ms ago: stopping listening now",
            bound.as_millis()
        )),
        Err(RetryError::Failed(e)) => log.warn(format_args!(
            "the grace ended after {took} ms and {accepted} new connection(s): {e}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `@!<worker> show info` of HAProxy 2.6.12-1+deb12u4, cut to the lines around those read.
    const INFO: &str = "Name: HAProxy\nVersion: 2.6.12-1+deb12u4\nRelease_date: 2023/03/10\n\
Nbthread: 2\nNbproc: 1\nProcess_num: 1\nPid: 1764\nUptime: 0d 0h00m01s\nUptime_sec: 1\n\
Memmax_MB: 0\nCurrConns: 1\nCumConns: 3\nCumReq: 3\nMaxSslConns: 0\n\n";

    #[test]
    fn reads_cum_conns_of_that_worker_only() {
        assert_eq!(parse_info(INFO, 1764), Ok(3));
        assert!(parse_info(INFO, 1765).unwrap_err().contains("1765"));
        assert!(parse_info("Unknown command.\n", 1764).is_err());
        let no_count = INFO.replace("CumConns: 3\n", "");
        assert!(parse_info(&no_count, 1764)
            .unwrap_err()
            .contains("CumConns"));
    }

    #[test]
    fn a_readings_own_connection_is_not_an_arrival() {
        let t0 = Instant::now();
        let mut a = Arrivals::new(10, t0);
        // Only the reading itself: quiet.
        a.saw(11, t0 + Duration::from_millis(50));
        a.saw(12, t0 + Duration::from_millis(100));
        assert_eq!(a.accepted, 0);
        assert_eq!(a.quiet_since, t0);
        // Three clients and the reading.
        let t = t0 + Duration::from_millis(150);
        a.saw(16, t);
        assert_eq!(a.accepted, 3);
        assert_eq!(a.quiet_since, t);
        // A count that went back (never expected) is no arrival.
        a.saw(5, t + Duration::from_millis(50));
        assert_eq!(a.accepted, 3);
        assert_eq!(a.quiet_since, t);
    }

    #[test]
    fn no_grace_without_a_master_or_with_zero() {
        let log = Logger::stderr("t");
        let d = Deadline::after(Duration::from_secs(10));
        let t = Instant::now();
        keep_accepting(
            Path::new("/nonexistent/sock"),
            Some(1),
            Duration::from_secs(5),
            &d,
            &log,
        );
        keep_accepting(
            Path::new("/nonexistent/sock"),
            None,
            Duration::from_secs(5),
            &d,
            &log,
        );
        keep_accepting(
            Path::new("/nonexistent/sock"),
            Some(1),
            Duration::ZERO,
            &d,
            &log,
        );
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    }
}
