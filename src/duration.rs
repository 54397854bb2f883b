//! The duration grammar of sluice's options (`90s`, `10m`, `1h30m`, `250ms`, `1.5s`, `2d`; a
//! bare number is seconds), as every flag and config key that takes a duration reads it, and
//! `--abort-on … for D`. The grammar itself is [`sluice_parsers::duration`], which the mock
//! server's latencies and `--assert`'s time units share; here a duration must also be positive.

use std::time::Duration;

use sluice_parsers::duration::DurationError;

/// Reads `90s`, `10m`, `1h30m`, `250ms`, `1.5s`; a bare number is seconds. Zero is refused.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let allowed = "expected a duration like 90s, 10m, 1h30m or 250ms";
    match sluice_parsers::duration::parse_duration(text) {
        Ok(d) if !d.is_zero() && d < MAX => Ok(d),
        Ok(_) | Err(DurationError::TooLong) => Err(format!("'{text}' is out of range; {allowed}")),
        Err(DurationError::Empty) => Err(format!("empty; {allowed}")),
        Err(DurationError::UnknownUnit(unit)) => Err(format!("'{text}' has unknown unit '{unit}'; {allowed}")),
        Err(_) => Err(format!("'{text}' is not a duration; {allowed}")),
    }
}

/// Longer than any run, and a bound every `Instant` arithmetic survives.
const MAX: Duration = Duration::from_secs(1_000_000_000);
