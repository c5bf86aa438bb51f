//! The one time budget of an action, made from `OCF_RESKEY_CRM_meta_timeout`, and the one loop
//! that waits, polls or retries within it (`Deadline::retry`). Pacemaker SIGKILLs us at the timeout.

use crate::log::Logger;
use std::fmt::Display;
use std::time::{Duration, Instant};

/// ocf-tester's timeout, used when Pacemaker gave none (a person at a terminal).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    start: Instant,
    end: Instant,
    timeout: Duration,
}

impl Deadline {
    /// A deadline for an action that Pacemaker kills after `timeout`, keeping a margin so that the
    /// agent can still report (and clean up) before the kill: a tenth of the timeout, at least
    /// 200 ms and at most 5 s, and never more than half of it.
    pub fn for_timeout(timeout: Option<Duration>) -> Deadline {
        Self::for_timeout_from(Instant::now(), timeout)
    }

    pub fn for_timeout_from(start: Instant, timeout: Option<Duration>) -> Deadline {
        let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
        let end = start + Self::budget(timeout);
        Deadline {
            start,
            end,
            timeout,
        }
    }

    /// The part of `timeout` the agent may use.
    pub fn budget(timeout: Duration) -> Duration {
        let margin = (timeout / 10)
            .clamp(Duration::from_millis(200), Duration::from_secs(5))
            .min(timeout / 2);
        timeout - margin
    }

    /// A deadline that ends `after` from now: for tests and for sub-steps with their own bound.
    pub fn after(after: Duration) -> Deadline {
        let start = Instant::now();
        Deadline {
            start,
            end: start + after,
            timeout: after,
        }
    }

    /// The earlier of this deadline and one `d` from now, for a step that must not use it all.
    pub fn sooner(&self, d: Duration) -> Deadline {
        let end = self.end.min(Instant::now() + d);
        Deadline { end, ..*self }
    }

    /// The timeout Pacemaker gave (or the default).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
    pub fn remaining(&self) -> Duration {
        self.end.saturating_duration_since(Instant::now())
    }
    pub fn expired(&self) -> bool {
        self.remaining().is_zero()
    }
    /// `d`, cut to what is left: the timeout to give one request.
    pub fn cap(&self, d: Duration) -> Duration {
        d.min(self.remaining())
    }
}

/// Delays for polling: quick at first, then backing off to a ceiling.
#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { next: first, max }
    }
    /// The delay to wait now; each call doubles the next one up to the ceiling.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
}

/// How a loop retries: the backoff between tries and, optionally, at most so many tries.
/// Declare them as constants beside the code that uses them: `const API: Retry = Retry::backoff(…)`.
#[derive(Clone, Debug)]
pub struct Retry {
    backoff: Backoff,
    attempts: Option<u32>,
}

impl Retry {
    /// Waits from `first`, doubling up to `max`.
    pub const fn backoff(first: Duration, max: Duration) -> Retry {
        Retry {
            backoff: Backoff::new(first, max),
            attempts: None,
        }
    }
    /// The same wait every time.
    pub const fn every(wait: Duration) -> Retry {
        Self::backoff(wait, wait)
    }
    /// At most `n` tries in all (the deadline still bounds them).
    pub const fn attempts(mut self, n: u32) -> Retry {
        self.attempts = Some(n);
        self
    }
}

/// What one try of a retried operation says.
#[derive(Debug)]
pub enum Attempt<T, E> {
    /// The answer: the loop ends.
    Done(T),
    /// A failure that another try cannot mend: the loop ends.
    Fail(E),
    /// Not yet (a transient failure, or a condition polled for): try again after the backoff.
    Again(E),
    /// As `Again`, but wait at least this long (a rate limit's `retry-after`).
    AgainAfter(E, Duration),
}

/// Why a retried operation ended without an answer.
#[derive(Debug, PartialEq, Eq)]
pub enum RetryError<E> {
    /// A try failed for good.
    Failed(E),
    /// Tries ran out, or the next wait would end past the deadline: the last failure.
    GaveUp { last: E, tries: u32 },
}

impl<E> RetryError<E> {
    /// The failure, whichever way the loop ended.
    pub fn into_inner(self) -> E {
        match self {
            RetryError::Failed(e) | RetryError::GaveUp { last: e, .. } => e,
        }
    }
}

impl Deadline {
    /// Run `op` until it answers or fails for good, waiting between tries as `policy` says (or
    /// longer, as a try asks). Gives up at once when the time left is shorter than the wait:
    /// no sleep ends past the deadline, and no try starts without time to answer.
    pub fn retry<T, E>(
        &self,
        policy: &Retry,
        op: impl FnMut(&Deadline) -> Attempt<T, E>,
    ) -> Result<T, RetryError<E>> {
        self.retry_with(policy, op, |_, _, _| {})
    }

    /// `retry`, logging each failure that is retried as a warning: "`what`: `error`; retrying
    /// in N ms".
    pub fn retry_logged<T, E: Display>(
        &self,
        policy: &Retry,
        log: &Logger,
        what: &str,
        op: impl FnMut(&Deadline) -> Attempt<T, E>,
    ) -> Result<T, RetryError<E>> {
        self.retry_with(policy, op, |e, wait, _| {
            log.warn(format_args!(
                "{what}: {e}; retrying in {} ms",
                wait.as_millis()
            ))
        })
    }

    fn retry_with<T, E>(
        &self,
        policy: &Retry,
        mut op: impl FnMut(&Deadline) -> Attempt<T, E>,
        mut on_retry: impl FnMut(&E, Duration, u32),
    ) -> Result<T, RetryError<E>> {
        let mut backoff = policy.backoff.clone();
        let mut tries = 0u32;
        loop {
            tries += 1;
            let (last, hint) = match op(self) {
                Attempt::Done(v) => return Ok(v),
                Attempt::Fail(e) => return Err(RetryError::Failed(e)),
                Attempt::Again(e) => (e, Duration::ZERO),
                Attempt::AgainAfter(e, hint) => (e, hint),
            };
            let wait = backoff.next_delay().max(hint);
            if policy.attempts.is_some_and(|n| tries >= n) || wait >= self.remaining() {
                return Err(RetryError::GaveUp { last, tries });
            }
            on_retry(&last, wait, tries);
            std::thread::sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_keeps_a_margin() {
        assert_eq!(
            Deadline::budget(Duration::from_secs(20)),
            Duration::from_secs(18)
        );
        // 10% of 100 s is 10 s: capped at 5 s.
        assert_eq!(
            Deadline::budget(Duration::from_secs(100)),
            Duration::from_secs(95)
        );
        // 10% of 1 s is 100 ms: raised to 200 ms.
        assert_eq!(
            Deadline::budget(Duration::from_secs(1)),
            Duration::from_millis(800)
        );
        // Never more than half.
        assert_eq!(
            Deadline::budget(Duration::from_millis(300)),
            Duration::from_millis(150)
        );
        assert_eq!(Deadline::budget(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn default_is_ocf_testers_twenty_seconds() {
        let d = Deadline::for_timeout(None);
        assert_eq!(d.timeout(), Duration::from_secs(20));
        assert!(d.remaining() <= Duration::from_secs(18));
        assert!(d.remaining() > Duration::from_secs(17));
    }

    #[test]
    fn an_expired_deadline_leaves_nothing() {
        let d = Deadline::after(Duration::from_millis(5));
        assert!(d.cap(Duration::from_secs(1)) <= Duration::from_millis(5));
        std::thread::sleep(Duration::from_millis(10));
        assert!(d.expired());
        assert_eq!(d.cap(Duration::from_secs(1)), Duration::ZERO);
    }

    #[test]
    fn sooner_never_extends() {
        let d = Deadline::after(Duration::from_millis(50));
        assert!(d.sooner(Duration::from_secs(60)).remaining() <= Duration::from_millis(50));
        assert!(d.sooner(Duration::from_millis(5)).remaining() <= Duration::from_millis(5));
    }

    #[test]
    fn retry_answers_retries_and_fails_for_good() {
        let d = Deadline::after(Duration::from_secs(5));
        let quick = Retry::every(Duration::from_millis(1));
        let mut n = 0;
        let r: Result<u32, RetryError<&str>> = d.retry(&quick, |_| {
            n += 1;
            if n < 3 {
                Attempt::Again("not yet")
            } else {
                Attempt::Done(n)
            }
        });
        assert_eq!(r, Ok(3));
        let r: Result<(), _> = d.retry(&quick, |_| Attempt::Fail("no"));
        assert_eq!(r, Err(RetryError::Failed("no")));
        let r: Result<(), _> = d.retry(&quick.clone().attempts(4), |_| Attempt::Again("x"));
        assert_eq!(
            r,
            Err(RetryError::GaveUp {
                last: "x",
                tries: 4
            })
        );
    }

    #[test]
    fn retry_gives_up_when_the_wait_outlasts_the_deadline() {
        let d = Deadline::after(Duration::from_millis(200));
        let t = Instant::now();
        // A rate limit asks for 60 s: no sleep at all, the last failure at once.
        let r: Result<(), _> = d.retry(&Retry::every(Duration::from_millis(1)), |_| {
            Attempt::AgainAfter("429", Duration::from_secs(60))
        });
        assert_eq!(
            r,
            Err(RetryError::GaveUp {
                last: "429",
                tries: 1
            })
        );
        assert!(t.elapsed() < Duration::from_millis(100));
        // Polling ends before the deadline, never after it.
        let r: Result<(), _> = d.retry(&Retry::every(Duration::from_millis(20)), |_| {
            Attempt::Again(())
        });
        assert!(r.is_err());
        assert!(!d.expired() || t.elapsed() < Duration::from_millis(260));
    }

    #[test]
    fn backoff_doubles_to_its_ceiling() {
        let mut b = Backoff::new(Duration::from_millis(50), Duration::from_millis(300));
        let got: Vec<u128> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, vec![50, 100, 200, 300, 300]);
    }
}
