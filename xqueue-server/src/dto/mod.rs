//! Wire types: the JSON the API reads and writes, with the Go version's field names.
//!
//! Kept apart from the core types so the wire format can stay stable while the core evolves.
//! Timestamps are RFC 3339 strings in UTC (`2025-01-31T12:00:00.123Z`), as Go's `time.Time`
//! wrote them; durations are milliseconds, except `uptime` (nanoseconds, as in Go).

mod monitor;
mod task;

pub use monitor::*;
pub use task::*;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use xqueue_core::UnixMillis;

use crate::error::AppError;

/// `ms` since the Unix epoch as an RFC 3339 UTC timestamp.
pub fn rfc3339(ms: UnixMillis) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Parses an RFC 3339 timestamp (any offset) into milliseconds since the Unix epoch.
pub fn parse_rfc3339(field: &'static str, s: &str) -> Result<UnixMillis, AppError> {
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|e| {
        AppError::invalid(
            field,
            format!("invalid {field}: {s:?} is not an RFC 3339 timestamp like 2025-01-31T12:00:00Z ({e})"),
        )
    })?;
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    u64::try_from(ms)
        .map_err(|_| AppError::invalid(field, format!("invalid {field}: {s:?} is before 1970")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(
            parse_rfc3339("run_at", "2023-11-14T22:13:20.123Z").unwrap(),
            1_700_000_000_123
        );
        assert_eq!(
            parse_rfc3339("run_at", "2023-11-15T00:13:20.123+02:00").unwrap(),
            1_700_000_000_123
        );
        assert!(parse_rfc3339("run_at", "tomorrow").is_err());
        assert!(parse_rfc3339("run_at", "1960-01-01T00:00:00Z").is_err());
    }
}
