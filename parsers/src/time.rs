//! Timestamps. The common layouts are parsed by hand straight into chrono values, because
//! `DateTime::parse_from_str` costs ~0.3 µs a line (see the perf study); Apache's
//! `%{strftime}t`, which is rare, goes through chrono's parser.
//!
//! Every parser here has nom's shape (`input -> IResult<rest, value>`) so the template engine can
//! treat it like any other field parser and point at the failing byte.

use std::cell::Cell;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone};
use nom::IResult;
use nom::error::{Error, ErrorKind};

fn fail<T>(at: &[u8]) -> IResult<&[u8], T> {
    Err(nom::Err::Error(Error::new(at, ErrorKind::Verify)))
}

#[inline]
fn digits<const N: usize>(i: &[u8]) -> Option<u32> {
    let d = i.get(..N)?;
    d.iter().try_fold(0u32, |acc, &b| b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0')))
}

#[inline]
fn month(name: &[u8]) -> Option<u32> {
    Some(match name.get(..3)? {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    })
}

/// `[+-]hhmm` or `[+-]hh:mm` → offset. Returns the offset and bytes used.
#[inline]
pub(crate) fn zone(i: &[u8]) -> Option<(FixedOffset, usize)> {
    let sign = match i.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let hours = digits::<2>(&i[1..])?;
    let (minutes, used) = if i.get(3) == Some(&b':') { (digits::<2>(&i[4..])?, 6) } else { (digits::<2>(&i[3..])?, 5) };
    if hours > 23 || minutes > 59 {
        return None;
    }
    let secs = sign * (hours * 3600 + minutes * 60) as i32;
    Some((FixedOffset::east_opt(secs)?, used))
}

#[inline]
fn local(date: (i32, u32, u32), time: (u32, u32, u32), nanos: u32) -> Option<NaiveDateTime> {
    NaiveDate::from_ymd_opt(date.0, date.1, date.2)?.and_hms_nano_opt(time.0, time.1, time.2, nanos)
}

#[inline]
fn with_offset(naive: NaiveDateTime, offset: FixedOffset) -> Option<DateTime<FixedOffset>> {
    offset.from_local_datetime(&naive).single()
}

/// nginx `$time_local` / Apache `%t` without the brackets: `10/Oct/2000:13:55:36 -0700`.
#[inline]
pub(crate) fn clf_time(i: &[u8]) -> IResult<&[u8], DateTime<FixedOffset>> {
    let Some(text) = i.get(..26) else { return fail(i) };
    // Busy logs write the same second on many lines in a row: remember the last one, per thread
    // (a format is shared between threads).
    let key: [u8; 26] = text.try_into().unwrap_or([0; 26]);
    if let Some((last, t)) = LAST_CLF.get()
        && last == key
    {
        return Ok((&i[26..], t));
    }
    match clf_fields(text) {
        Some(t) => {
            LAST_CLF.set(Some((key, t)));
            Ok((&i[26..], t))
        }
        None => fail(i),
    }
}

thread_local! {
    static LAST_CLF: Cell<Option<([u8; 26], DateTime<FixedOffset>)>> = const { Cell::new(None) };
}

#[inline]
fn clf_fields(i: &[u8]) -> Option<DateTime<FixedOffset>> {
    if i[2] != b'/' || i[6] != b'/' || i[11] != b':' || i[14] != b':' || i[17] != b':' {
        return None;
    }
    if i[20] != b' ' {
        return None;
    }
    let day = digits::<2>(i)?;
    let month = month(&i[3..])?;
    let year = digits::<4>(&i[7..])? as i32;
    let hour = digits::<2>(&i[12..])?;
    let minute = digits::<2>(&i[15..])?;
    let second = digits::<2>(&i[18..])?;
    let (offset, used) = zone(&i[21..])?;
    if used != 5 {
        return None;
    }
    with_offset(local((year, month, day), (hour, minute, second), 0)?, offset)
}

/// nginx `$time_iso8601`: `2017-01-03T15:56:36+01:00`; also accepts fractional seconds, `Z`, a
/// space for `T` and a zone without colon, as log shippers write them. Without any zone the time
/// is taken as UTC.
pub(crate) fn iso8601_time(i: &[u8]) -> IResult<&[u8], DateTime<FixedOffset>> {
    match iso_fields(i) {
        Some((t, used)) => Ok((&i[used..], t)),
        None => fail(i),
    }
}

fn iso_fields(i: &[u8]) -> Option<(DateTime<FixedOffset>, usize)> {
    let head = i.get(..19)?;
    if head[4] != b'-' || head[7] != b'-' || !matches!(head[10], b'T' | b' ') {
        return None;
    }
    if head[13] != b':' || head[16] != b':' {
        return None;
    }
    let year = digits::<4>(head)? as i32;
    let month = digits::<2>(&head[5..])?;
    let day = digits::<2>(&head[8..])?;
    let hour = digits::<2>(&head[11..])?;
    let minute = digits::<2>(&head[14..])?;
    let second = digits::<2>(&head[17..])?;
    let mut used = 19;
    let mut nanos = 0u32;
    if i.get(used) == Some(&b'.') {
        let frac = &i[used + 1..];
        let n = frac.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        // Keep nanosecond precision; ignore digits beyond it.
        for k in 0..9 {
            nanos = nanos * 10 + frac.get(k).filter(|_| k < n).map_or(0, |d| u32::from(d - b'0'));
        }
        used += 1 + n;
    }
    let offset = match i.get(used) {
        Some(b'Z') => {
            used += 1;
            FixedOffset::east_opt(0)?
        }
        Some(b'+' | b'-') => {
            let (offset, n) = zone(&i[used..])?;
            used += n;
            offset
        }
        _ => FixedOffset::east_opt(0)?,
    };
    let t = with_offset(local((year, month, day), (hour, minute, second), nanos)?, offset)?;
    Some((t, used))
}

/// nginx `$msec` (`1483455396.639`), Caddy's `ts` and Apache's `%{sec}t`: seconds since the epoch
/// with an optional fraction → UTC.
pub(crate) fn epoch_seconds(i: &[u8]) -> IResult<&[u8], DateTime<FixedOffset>> {
    let int_len = i.iter().take_while(|b| b.is_ascii_digit()).count();
    if int_len == 0 || int_len > 12 {
        return fail(i);
    }
    let secs: i64 = i[..int_len].iter().fold(0, |acc, &d| acc * 10 + i64::from(d - b'0'));
    let mut used = int_len;
    let mut nanos = 0u32;
    if i.get(used) == Some(&b'.') {
        let frac = &i[used + 1..];
        let n = frac.iter().take_while(|b| b.is_ascii_digit()).count();
        for k in 0..9 {
            nanos = nanos * 10 + frac.get(k).filter(|_| k < n).map_or(0, |d| u32::from(d - b'0'));
        }
        used += 1 + n;
    }
    match DateTime::from_timestamp(secs, nanos) {
        Some(t) => Ok((&i[used..], t.fixed_offset())),
        None => fail(i),
    }
}

/// Apache `%{msec}t` / `%{usec}t`: an integer count of `per_second` units since the epoch.
pub(crate) fn epoch_units(i: &[u8], per_second: i64) -> IResult<&[u8], DateTime<FixedOffset>> {
    let len = i.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 || len > 18 {
        return fail(i);
    }
    let n: i64 = i[..len].iter().fold(0, |acc, &d| acc * 10 + i64::from(d - b'0'));
    let nanos = (n % per_second) * (1_000_000_000 / per_second);
    match DateTime::from_timestamp(n / per_second, nanos as u32) {
        Some(t) => Ok((&i[len..], t.fixed_offset())),
        None => fail(i),
    }
}

/// An Apache `%{format}t` strftime format that names a full date and time.
#[derive(Debug, Clone)]
pub(crate) struct Strftime {
    format: Box<str>,
    has_zone: bool,
}

/// What an Apache `%{format}t` strftime format logs.
pub(crate) enum StrftimeKind {
    /// A whole point in time (date and time of day).
    Full(Strftime),
    /// Only the offset, `%z` or `%:z`, for a time logged without one.
    Zone,
    /// Part of a time (a date, a time of day, a weekday …): not a time by itself.
    Partial,
}

impl Strftime {
    /// Classifies a strftime format; `Err` names a conversion sluice cannot read.
    pub(crate) fn classify(format: &str) -> Result<StrftimeKind, String> {
        use chrono::format::{Item, StrftimeItems};
        if StrftimeItems::new(format).any(|item| matches!(item, Item::Error)) {
            return Err(format!(
                "`{format}` holds a strftime conversion sluice cannot read (it reads those of \
                 chrono's strftime: %Y %m %d %b %H %M %S %T %z …)"
            ));
        }
        if format.contains("%Z") {
            return Err(format!(
                "`{format}`: %Z writes a zone name (CET, EST …), which does not say the offset; log %z instead"
            ));
        }
        if matches!(format.trim(), "%z" | "%:z") {
            return Ok(StrftimeKind::Zone);
        }
        let has = |specs: &[&str]| specs.iter().any(|s| format.contains(s));
        let date = has(&["%F", "%D", "%x", "%c", "%s"])
            || (has(&["%Y", "%y"]) && has(&["%m", "%b", "%B", "%h"]) && has(&["%d", "%e"]));
        let time = has(&["%T", "%R", "%X", "%c", "%s"]) || has(&["%H", "%I"]);
        Ok(if date && time {
            StrftimeKind::Full(Strftime { format: format.into(), has_zone: has(&["%z", "%:z", "%s"]) })
        } else {
            StrftimeKind::Partial
        })
    }

    /// Whether the format logs the offset (or epoch seconds); without it the time is local to
    /// the server, taken as UTC unless a `%{%z}t` gives the offset.
    pub(crate) fn has_zone(&self) -> bool {
        self.has_zone
    }

    /// Parses the longest UTF-8 prefix of `i`; a time without zone is taken as UTC.
    pub(crate) fn parse<'i>(&self, i: &'i [u8]) -> IResult<&'i [u8], DateTime<FixedOffset>> {
        let text = match std::str::from_utf8(i) {
            Ok(s) => s,
            Err(e) => std::str::from_utf8(&i[..e.valid_up_to()]).unwrap_or_default(),
        };
        let parsed = if self.has_zone {
            DateTime::parse_and_remainder(text, &self.format).ok()
        } else {
            NaiveDateTime::parse_and_remainder(text, &self.format)
                .ok()
                .map(|(t, rest)| (t.and_utc().fixed_offset(), rest))
        };
        match parsed {
            Some((t, rest)) => Ok((&i[text.len() - rest.len()..], t)),
            None => fail(i),
        }
    }
}

/// Parses a whole timestamp as it appears in JSON logs or by itself: CLF, ISO 8601 or epoch
/// seconds. Exposed for callers that read times outside a log line (e.g. a `--from` option).
pub fn parse_timestamp(text: &[u8]) -> Option<DateTime<FixedOffset>> {
    let whole = |r: IResult<&[u8], DateTime<FixedOffset>>| match r {
        Ok(([], t)) => Some(t),
        _ => None,
    };
    let text = text.strip_prefix(b"[").unwrap_or(text);
    let text = text.strip_suffix(b"]").unwrap_or(text);
    whole(clf_time(text)).or_else(|| whole(iso8601_time(text))).or_else(|| whole(epoch_seconds(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clf(s: &str) -> Option<String> {
        clf_time(s.as_bytes()).ok().map(|(_, t)| t.to_rfc3339())
    }

    #[test]
    fn clf_times() {
        assert_eq!(clf("10/Oct/2000:13:55:36 -0700").as_deref(), Some("2000-10-10T13:55:36-07:00"));
        assert_eq!(clf("31/Jan/2019:09:15:02 +0330").as_deref(), Some("2019-01-31T09:15:02+03:30"));
        assert_eq!(clf("29/Feb/2016:03:14:15 -0500").as_deref(), Some("2016-02-29T03:14:15-05:00"));
        assert_eq!(clf("31/Dec/1969:19:00:00 -0030").as_deref(), Some("1969-12-31T19:00:00-00:30"));
    }

    #[test]
    fn clf_rejects_impossible_and_odd_times() {
        for bad in [
            "30/Feb/2016:03:14:15 -0500",
            "29/Feb/2015:03:14:15 -0500",
            "10/Foo/2000:13:55:36 -0700",
            "32/Oct/2000:13:55:36 -0700",
            "10/Oct/2000:24:55:36 -0700",
            "10/Oct/2000:13:60:36 -0700",
            "10/Oct/2000:13:55:36 -2400",
            "10/Oct/2000:13:55:36 +0060",
            "10/Oct/2000:13:55:36 -07:00",
            "10/Oct/2000:13:55:36",
            "10/Oct/2000 13:55:36 -0700",
            "13/03/2016:01:59:59 -0500",
            "1/Oct/2000:13:55:36 -0700",
            "",
        ] {
            assert_eq!(clf(bad), None, "{bad}");
        }
    }

    #[test]
    fn iso_times() {
        let iso = |s: &str| iso8601_time(s.as_bytes()).ok().map(|(r, t)| (t.to_rfc3339(), r.len()));
        assert_eq!(iso("2017-01-03T15:56:36+01:00"), Some(("2017-01-03T15:56:36+01:00".into(), 0)));
        assert_eq!(iso("2021-12-08T14:02:43.464763557Z x"), Some(("2021-12-08T14:02:43.464763557+00:00".into(), 2)));
        assert_eq!(iso("2017-01-03 15:56:36 +0100"), Some(("2017-01-03T15:56:36+00:00".into(), 6)));
        assert_eq!(iso("2017-02-30T15:56:36+01:00"), None);
    }

    #[test]
    fn epoch_times() {
        let (_, t) = epoch_seconds(b"1483455396.639").unwrap();
        assert_eq!(t.timestamp_millis(), 1483455396639);
        let (_, t) = epoch_seconds(b"1703373474.8155608").unwrap();
        assert_eq!(t.timestamp_micros(), 1703373474815560);
        let (_, t) = epoch_units(b"1483455396639123", 1_000_000).unwrap();
        assert_eq!(t.timestamp_micros(), 1483455396639123);
        assert!(epoch_seconds(b"-1").is_err());
    }

    fn strftime(format: &str) -> Strftime {
        match Strftime::classify(format) {
            Ok(StrftimeKind::Full(f)) => f,
            _ => panic!("{format} is not a full time"),
        }
    }

    #[test]
    fn strftime_kinds() {
        let kind = |f: &str| match Strftime::classify(f) {
            Ok(StrftimeKind::Full(_)) => "full",
            Ok(StrftimeKind::Zone) => "zone",
            Ok(StrftimeKind::Partial) => "partial",
            Err(_) => "error",
        };
        assert_eq!(kind("%d/%b/%Y %T"), "full");
        assert_eq!(kind("%z"), "zone");
        assert_eq!(kind("%:z"), "zone");
        assert_eq!(kind("%Y-%m-%d"), "partial");
        assert_eq!(kind("%H:%M"), "partial");
        assert_eq!(kind("%Y-%m-%d %Q"), "error");
        assert_eq!(kind("%d/%b/%Y %T %Z"), "error");
    }

    #[test]
    fn strftime_times() {
        let f = strftime("%Y-%m-%d %H:%M:%S %z");
        let (rest, t) = f.parse(b"2019-05-05 20:49:14 +0000 [690]").unwrap();
        assert_eq!(t.to_rfc3339(), "2019-05-05T20:49:14+00:00");
        assert_eq!(rest, b" [690]");
    }
}
