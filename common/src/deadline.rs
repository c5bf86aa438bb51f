//! The one time budget of an action, made from `OCF_RESKEY_CRM_meta_timeout`.
//! Everything that waits, retries or sleeps asks it how long it may; Pacemaker SIGKILLs us at the timeout.

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
    /// Sleep for `d` or until the deadline, whichever is first. False when the deadline cut it
    /// short (or had passed): the caller should stop retrying.
    pub fn sleep(&self, d: Duration) -> bool {
        let left = self.remaining();
        if d >= left {
            std::thread::sleep(left);
            false
        } else {
            std::thread::sleep(d);
            true
        }
    }
}

/// Delays for polling: quick at first, then backing off to a ceiling.
#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { next: first, max }
    }
    /// The delay to wait now; each call doubles the next one up to the ceiling.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
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
    fn sleep_stops_at_the_deadline() {
        let d = Deadline::after(Duration::from_millis(30));
        assert!(d.sleep(Duration::from_millis(1)));
        assert!(!d.sleep(Duration::from_secs(10)));
        assert!(d.expired());
        assert!(!d.sleep(Duration::from_millis(1)));
        assert_eq!(d.cap(Duration::from_secs(1)), Duration::ZERO);
    }

    #[test]
    fn sooner_never_extends() {
        let d = Deadline::after(Duration::from_millis(50));
        assert!(d.sooner(Duration::from_secs(60)).remaining() <= Duration::from_millis(50));
        assert!(d.sooner(Duration::from_millis(5)).remaining() <= Duration::from_millis(5));
    }

    #[test]
    fn backoff_doubles_to_its_ceiling() {
        let mut b = Backoff::new(Duration::from_millis(50), Duration::from_millis(300));
        let got: Vec<u128> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, vec![50, 100, 200, 300, 300]);
    }
}
