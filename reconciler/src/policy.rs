//! The error policy of the run loop (kube-rs's `error_policy`, kept apart from the
//! reconcile): from the attempts at a revision, whether to apply it now, wait (a transient
//! failure, capped exponential backoff), or hold it (a permanent failure or a conflict:
//! it waits for a new revision or `paver retry <sha>`). Pure: tested without a store.

use crate::error::ErrorKind;
use crate::store::{RevisionRecord, RevisionStatus};

/// The first wait after a transient failure; it doubles with every failure in a row.
pub const FIRST_BACKOFF_MS: u64 = 5_000;
/// The longest wait.
pub const MAX_BACKOFF_MS: u64 = 300_000;

/// What the loop does with a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Apply it (or reconcile it again: it is the active one, or it was never tried).
    Go,
    /// A transient failure: try again at `at_ms` (unix ms), the `attempt`-th time.
    Wait { at_ms: u64, attempt: usize },
    /// A failure that trying again cannot mend: wait for a new revision or a retry.
    Hold { kind: ErrorKind, error: String },
}

/// The backoff after `failures` transient failures in a row.
pub fn backoff_ms(failures: usize) -> u64 {
    let doublings = failures.saturating_sub(1).min(16) as u32;
    FIRST_BACKOFF_MS
        .saturating_mul(2u64.saturating_pow(doublings))
        .min(MAX_BACKOFF_MS)
}

/// Decide from the attempts at one revision, oldest first.
pub fn decide(attempts: &[RevisionRecord], now_ms: u64) -> Decision {
    let failures: Vec<&RevisionRecord> = attempts
        .iter()
        .rev()
        .take_while(|a| a.status == RevisionStatus::RolledBack)
        .collect();
    let Some(last) = failures.first() else {
        return Decision::Go;
    };
    let kind = last.error_kind.unwrap_or(ErrorKind::Transient);
    if !kind.retryable() {
        return Decision::Hold {
            kind,
            error: last.error.clone().unwrap_or_default(),
        };
    }
    let finished = last.finished_at.as_deref().and_then(unix_ms).unwrap_or(0);
    let at_ms = finished + backoff_ms(failures.len());
    if now_ms >= at_ms {
        Decision::Go
    } else {
        Decision::Wait {
            at_ms,
            attempt: failures.len() + 1,
        }
    }
}

/// Now, in unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `2026-12-01T21:49:22.123Z` (the store's timestamps, UTC) in unix milliseconds.
pub fn unix_ms(text: &str) -> Option<u64> {
    let (date, time) = text.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (hh, mm) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let secs: f64 = t.next()?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let ms = ((days * 86_400 + hh * 3_600 + mm * 60) as f64 + secs) * 1000.0;
    (ms >= 0.0).then_some(ms.round() as u64)
}

/// Unix milliseconds as the store writes times.
pub fn format_ms(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(status: RevisionStatus, kind: Option<ErrorKind>, finished: &str) -> RevisionRecord {
        RevisionRecord {
            id: 1,
            sha: "s".into(),
            status,
            error: kind.map(|_| "boom".to_string()),
            error_kind: kind,
            steps: 1,
            started_at: finished.into(),
            finished_at: Some(finished.into()),
            plan: None,
        }
    }

    #[test]
    fn times_read_back_as_written() {
        for ms in [0, 1_764_625_762_123, 951_782_400_000, 4_102_444_799_999] {
            assert_eq!(unix_ms(&format_ms(ms)), Some(ms), "{}", format_ms(ms));
        }
        assert_eq!(unix_ms("2026-12-01T21:49:22.123Z"), Some(1_796_161_762_123));
        assert_eq!(unix_ms("yesterday"), None);
    }

    #[test]
    fn a_transient_failure_waits_longer_each_time_up_to_a_cap() {
        assert_eq!(backoff_ms(1), 5_000);
        assert_eq!(backoff_ms(2), 10_000);
        assert_eq!(backoff_ms(3), 20_000);
        assert_eq!(backoff_ms(40), MAX_BACKOFF_MS);
        let t = "2026-12-01T10:00:00.000Z";
        let at = unix_ms(t).unwrap();
        let failed = |n: usize| -> Vec<RevisionRecord> {
            (0..n)
                .map(|_| attempt(RevisionStatus::RolledBack, Some(ErrorKind::Transient), t))
                .collect()
        };
        assert_eq!(
            decide(&failed(1), at + 1_000),
            Decision::Wait {
                at_ms: at + 5_000,
                attempt: 2
            }
        );
        assert_eq!(decide(&failed(1), at + 5_000), Decision::Go);
        assert_eq!(
            decide(&failed(3), at + 5_000),
            Decision::Wait {
                at_ms: at + 20_000,
                attempt: 4
            }
        );
    }

    #[test]
    fn a_permanent_failure_or_a_conflict_is_held_and_a_success_resets() {
        let t = "2026-12-01T10:00:00.000Z";
        let far = unix_ms(t).unwrap() + 86_400_000;
        for kind in [ErrorKind::Permanent, ErrorKind::Conflict] {
            let held = decide(&[attempt(RevisionStatus::RolledBack, Some(kind), t)], far);
            assert!(
                matches!(held, Decision::Hold { kind: k, .. } if k == kind),
                "{held:?}"
            );
        }
        let recovered = [
            attempt(RevisionStatus::RolledBack, Some(ErrorKind::Permanent), t),
            attempt(RevisionStatus::Applied, None, t),
        ];
        assert_eq!(decide(&recovered, far), Decision::Go);
        assert_eq!(decide(&[], 0), Decision::Go);
    }
}
