//! When a certificate runs out, as every output says it: whole days left (the one rule `inspect`,
//! `inspect --managed`, `status` and `doctor` share), whether that is within the
//! `--expiry-warning` threshold, and the threshold's kubectl-style value (`30d`, `720h`, `14`).

use time::{Duration, OffsetDateTime};

/// Whole days from `now` until `not_after`, rounded toward zero: 9 for 9 days and 23 hours,
/// negative once more than a day has passed (an expired certificate is judged by [`Expiry`],
/// not by this number: 0 can mean a few hours either side).
pub fn days_left(not_after: OffsetDateTime, now: OffsetDateTime) -> i64 {
    (not_after - now).whole_days()
}

/// `12`, `0`, or `EXPIRED 3 days ago`: the days-left cell of every table.
pub fn describe_days_left(not_after: OffsetDateTime, now: OffsetDateTime) -> String {
    let days = days_left(not_after, now);
    if not_after > now {
        days.to_string()
    } else {
        format!("EXPIRED {} days ago", -days)
    }
}

/// How close a certificate is to its end of validity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Valid for longer than the threshold.
    Valid,
    /// Still valid, but ends within the threshold.
    Soon,
    /// Past its `notAfter`: peers refuse it.
    Expired,
}

impl Expiry {
    /// Classifies `not_after` as of `now`, with the `--expiry-warning` threshold `warning`.
    pub fn of(not_after: OffsetDateTime, now: OffsetDateTime, warning: Duration) -> Self {
        if not_after <= now {
            Expiry::Expired
        } else if not_after - now <= warning {
            Expiry::Soon
        } else {
            Expiry::Valid
        }
    }
}

/// The default `--expiry-warning`: 30 days.
pub const DEFAULT_EXPIRY_WARNING: Duration = Duration::days(30);

/// Parses an `--expiry-warning` value: days as `30d` or a plain number (`30`), or Go duration
/// syntax as kubectl's `--request-timeout` takes it (`720h`, `36h30m`).
pub fn parse_expiry_warning(value: &str) -> Result<Duration, String> {
    let text = value.trim();
    let days = text.strip_suffix('d').unwrap_or(text);
    if !days.is_empty() && days.bytes().all(|b| b.is_ascii_digit()) {
        return days
            .parse::<i64>()
            .ok()
            .filter(|d| *d <= 36_500)
            .map(Duration::days)
            .ok_or_else(|| format!("--expiry-warning {value:?} is too long: at most 36500d"));
    }
    crate::cluster::parse_request_timeout(text)
        .ok()
        .filter(|_| !text.is_empty())
        .and_then(|d| Duration::try_from(d).ok())
        .ok_or_else(|| {
            format!("invalid duration {value:?}: use days (30d, or 30) or hours (720h), e.g. --expiry-warning 14d")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_left_and_expiry_agree_at_the_edges() {
        let now = OffsetDateTime::now_utc();
        let warn = DEFAULT_EXPIRY_WARNING;
        let at = |d: Duration| (days_left(now + d, now), Expiry::of(now + d, now, warn));
        assert_eq!(at(Duration::days(400)), (400, Expiry::Valid));
        assert_eq!(
            at(Duration::days(30) + Duration::hours(1)),
            (30, Expiry::Valid)
        );
        assert_eq!(at(Duration::days(30)), (30, Expiry::Soon));
        assert_eq!(at(Duration::days(10)), (10, Expiry::Soon));
        // Hours either side of notAfter both read 0 days; only the second is expired.
        assert_eq!(at(Duration::hours(5)), (0, Expiry::Soon));
        assert_eq!(at(-Duration::hours(5)), (0, Expiry::Expired));
        assert_eq!(at(-Duration::days(3)), (-3, Expiry::Expired));
        assert_eq!(describe_days_left(now + Duration::days(12), now), "12");
        assert_eq!(
            describe_days_left(now - Duration::days(3), now),
            "EXPIRED 3 days ago"
        );
        assert_eq!(
            describe_days_left(now - Duration::hours(5), now),
            "EXPIRED 0 days ago"
        );
    }

    #[test]
    fn expiry_warning_takes_days_or_go_durations() {
        assert_eq!(parse_expiry_warning("30d"), Ok(Duration::days(30)));
        assert_eq!(parse_expiry_warning("14"), Ok(Duration::days(14)));
        assert_eq!(parse_expiry_warning("0"), Ok(Duration::ZERO));
        assert_eq!(parse_expiry_warning("720h"), Ok(Duration::days(30)));
        assert_eq!(
            parse_expiry_warning("36h30m"),
            Ok(Duration::hours(36) + Duration::minutes(30))
        );
        for bad in ["", "d", "soon", "-3d", "3w", "99999999d"] {
            let err = parse_expiry_warning(bad).unwrap_err();
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.contains("--expiry-warning"), "{bad:?}: {err}");
        }
    }
}
