//! The one duration grammar of the workspace: sluice's options (`--duration 1h30m`, `--timeout
//! 250ms`, `--abort-on '… for 10s'`), the mock server's latencies (`5ms`, `lognormal:5ms,80ms`)
//! and, through [`unit_nanos`], the time units of `--assert` thresholds.
//!
//! ```text
//! duration := NUMBER              a bare number is seconds: 90, 1.5, 0
//!           | (NUMBER UNIT)+      summed: 1h30m, 1m30s, 250ms
//! NUMBER   := DIGITS [ "." DIGITS ]   at most 9 decimals, read exactly (0.1s is 100 ms)
//! UNIT     := ns | us | µs | ms | s | sec | m | min | h | d
//! ```
//!
//! Zero is a duration here; what reads one says whether zero makes sense for it (a latency may be
//! `0`, a timeout may not). Where a bare number could mean something else (a status code in the
//! mock's rules, `/x=503`), [`parse_duration_with_unit`] asks for a unit.

use std::time::Duration;

/// Why a text is not a duration. The messages are fragments: callers quote the input around them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty")]
    Empty,
    #[error("not a number")]
    NotANumber,
    #[error("not a number (at most 9 decimals)")]
    TooManyDecimals,
    /// A number without a unit after one with a unit (`1h30`).
    #[error("missing unit")]
    MissingUnit,
    #[error("unknown unit '{0}'")]
    UnknownUnit(String),
    /// Longer than `u64::MAX` nanoseconds (about 584 years).
    #[error("too long")]
    TooLong,
}

/// Nanoseconds in one `unit`, for every unit of the grammar.
pub fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" | "sec" => 1_000_000_000,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        _ => return None,
    })
}

/// Reads `90s`, `10m`, `1h30m`, `250ms`, `250us`, `1.5s`, `0`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text.trim().is_empty() {
        return Err(DurationError::Empty);
    }
    parse(text, BareNumber::Seconds)
}

/// [`parse_duration`] without bare numbers, but for `0`: `5` is [`DurationError::MissingUnit`].
pub fn parse_duration_with_unit(text: &str) -> Result<Duration, DurationError> {
    parse(text, BareNumber::OnlyZero)
}

#[derive(Clone, Copy, PartialEq)]
enum BareNumber {
    Seconds,
    OnlyZero,
}

fn parse(text: &str, bare: BareNumber) -> Result<Duration, DurationError> {
    let whole = text.trim();
    if whole == "0" {
        return Ok(Duration::ZERO);
    }
    if whole.is_empty() {
        return Err(DurationError::MissingUnit);
    }
    let mut nanos: u128 = 0;
    let mut rest = whole;
    while !rest.is_empty() {
        let (number, after) = rest.split_at(rest.find(|c: char| !is_number_char(c)).unwrap_or(rest.len()));
        let (unit, next) = after.split_at(after.find(is_number_char).unwrap_or(after.len()));
        let scale = match unit {
            "" if rest.len() == whole.len() && bare == BareNumber::Seconds => unit_nanos("s"),
            "" => return Err(DurationError::MissingUnit),
            _ => unit_nanos(unit),
        };
        let part = number_nanos(number)?;
        let scale = scale.ok_or_else(|| DurationError::UnknownUnit(unit.to_string()))?;
        nanos = part
            .checked_mul(u128::from(scale))
            .map(|n| n / NANOS_PER_UNIT)
            .and_then(|n| n.checked_add(nanos))
            .ok_or(DurationError::TooLong)?;
        rest = next;
    }
    u64::try_from(nanos).map(Duration::from_nanos).map_err(|_| DurationError::TooLong)
}

/// [`number_nanos`] counts billionths of a unit, so nine decimals stay whole numbers.
const NANOS_PER_UNIT: u128 = 1_000_000_000;

fn is_number_char(c: char) -> bool {
    c.is_ascii_digit() || c == '.'
}

/// `1.5` → 1_500_000_000: the number in billionths, exactly.
fn number_nanos(number: &str) -> Result<u128, DurationError> {
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || number.ends_with('.') {
        return Err(DurationError::NotANumber);
    }
    if frac.len() > 9 {
        return Err(DurationError::TooManyDecimals);
    }
    let int: u128 = int.parse().map_err(|_| DurationError::TooLong)?;
    let frac_billionths = format!("{frac:0<9}").parse::<u128>().map_err(|_| DurationError::NotANumber)?;
    int.checked_mul(NANOS_PER_UNIT).and_then(|n| n.checked_add(frac_billionths)).ok_or(DurationError::TooLong)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_may_be_required_but_for_zero() {
        assert_eq!(parse_duration_with_unit("5ms"), Ok(Duration::from_millis(5)));
        assert_eq!(parse_duration_with_unit(" 0 "), Ok(Duration::ZERO));
        for text in ["5", "0.5", "", "1m30"] {
            assert_eq!(parse_duration_with_unit(text), Err(DurationError::MissingUnit), "{text:?}");
        }
    }

    #[test]
    fn every_form_of_the_grammar() {
        let d = |s: &str| parse_duration(s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
        for (text, want) in [
            ("90s", Duration::from_secs(90)),
            ("10m", Duration::from_secs(600)),
            ("1h30m", Duration::from_secs(5400)),
            ("2d", Duration::from_secs(172_800)),
            ("5min", Duration::from_secs(300)),
            ("3sec", Duration::from_secs(3)),
            ("250ms", Duration::from_millis(250)),
            ("250us", Duration::from_micros(250)),
            ("3µs", Duration::from_micros(3)),
            ("20ns", Duration::from_nanos(20)),
            ("1.5s", Duration::from_millis(1500)),
            ("0.1s", Duration::from_millis(100)),
            ("1.5h", Duration::from_secs(5400)),
            ("0.000000001d", Duration::from_nanos(86_400)),
            ("2", Duration::from_secs(2)),
            ("0.25", Duration::from_millis(250)),
            (" 7ms ", Duration::from_millis(7)),
            ("0", Duration::ZERO),
            ("1m30s500ms", Duration::from_millis(90_500)),
        ] {
            assert_eq!(d(text), want, "{text:?}");
        }
        for (text, want) in [
            ("", DurationError::Empty),
            ("  ", DurationError::Empty),
            ("s", DurationError::NotANumber),
            ("-5s", DurationError::NotANumber),
            (".5s", DurationError::NotANumber),
            ("5.s", DurationError::NotANumber),
            ("1.2.3s", DurationError::NotANumber),
            ("1e3", DurationError::UnknownUnit("e".into())),
            ("1h30", DurationError::MissingUnit),
            ("10x", DurationError::UnknownUnit("x".into())),
            ("5 ms", DurationError::UnknownUnit(" ms".into())),
            ("1.0000000001s", DurationError::TooManyDecimals),
            ("18446744073709551615s", DurationError::TooLong),
            ("99999999999999999999999999999999999999999d", DurationError::TooLong),
        ] {
            assert_eq!(parse_duration(text), Err(want), "{text:?}");
        }
    }
}
