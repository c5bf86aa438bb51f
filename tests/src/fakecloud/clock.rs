//! Wall-clock helpers for the fake: RFC 3339 timestamps as the API prints them, Unix seconds for
//! the rate-limit headers (the calendar arithmetic is common's, as the agents log with it).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 for a clock before 1970).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `2026-11-21T05:10:24Z`, the form DigitalOcean uses for `started_at`/`completed_at`.
pub fn rfc3339(t: SystemTime) -> String {
    cloudha_common::log::utc_string(unix_secs(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_237_824);
        assert_eq!(rfc3339(t), "2026-11-21T05:10:24Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }
}
