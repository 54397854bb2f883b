//! Which logged requests are replayed: path include/exclude, logged status, time window, user
//! agent, and a deterministic sample. Every line a filter drops is counted by rule.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use regex::bytes::Regex;
use sluice_parsers::Entry;

use crate::plan::Skip;
use crate::plan::draw::chosen;

/// A set of statuses from `2xx,304,500-504`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusSet(Vec<(u16, u16)>);

impl StatusSet {
    pub fn parse(text: &str) -> Result<StatusSet, String> {
        let allowed = "expected codes and classes like 2xx,304 or a range like 500-504";
        let mut ranges = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let lower = part.to_ascii_lowercase();
            let range = if let Some(class) = lower.strip_suffix("xx") {
                match class.parse::<u16>() {
                    Ok(c @ 1..=5) => (c * 100, c * 100 + 99),
                    _ => return Err(format!("'{part}' is not a status class; {allowed}")),
                }
            } else if let Some((lo, hi)) = lower.split_once('-') {
                match (lo.parse::<u16>(), hi.parse::<u16>()) {
                    (Ok(lo), Ok(hi)) if (100..=599).contains(&lo) && (lo..=599).contains(&hi) => (lo, hi),
                    _ => return Err(format!("'{part}' is not a status range; {allowed}")),
                }
            } else {
                match lower.parse::<u16>() {
                    Ok(code @ 100..=599) => (code, code),
                    _ => return Err(format!("'{part}' is not a status code; {allowed}")),
                }
            };
            ranges.push(range);
        }
        if ranges.is_empty() {
            return Err(format!("no status given; {allowed}"));
        }
        Ok(StatusSet(ranges))
    }

    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|(lo, hi)| (*lo..=*hi).contains(&status))
    }
}

/// Reads `--from` / `--until`: RFC 3339, or a date and time (or just a date) taken as UTC.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    let t = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.with_timezone(&Utc));
    }
    for layout in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(t, layout) {
            return Ok(naive.and_utc());
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(date.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    Err(format!(
        "'{text}' is not a time; expected RFC 3339 (2026-11-21T14:00:00+01:00) or 'YYYY-MM-DD HH:MM[:SS]' in UTC"
    ))
}

/// Keeps a fixed share of lines, chosen by a hash of (seed, file, line): the same lines every run
/// with the same seed, independent of rate, concurrency or looping.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Kept share in [0, 1].
    pub share: f64,
    pub seed: u64,
}

impl Sample {
    pub fn parse(text: &str, seed: u64) -> Result<Sample, String> {
        let t = text.trim();
        let number = t.strip_suffix('%').unwrap_or(t).trim();
        match number.parse::<f64>() {
            Ok(p) if (0.0..=100.0).contains(&p) && p.is_finite() => Ok(Sample { share: p / 100.0, seed }),
            _ => Err(format!("'{text}' must be a percentage from 0% to 100%, e.g. 10%")),
        }
    }

    pub fn keeps(&self, input: usize, line: u64) -> bool {
        chosen(self.seed, input, line, self.share)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub include: Vec<Regex>,
    pub exclude: Vec<Regex>,
    pub orig_status: Option<StatusSet>,
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub exclude_user_agent: Vec<Regex>,
    pub sample: Option<Sample>,
}

impl Filters {
    pub fn is_empty(&self) -> bool {
        self.include.is_empty()
            && self.exclude.is_empty()
            && self.orig_status.is_none()
            && self.from.is_none()
            && self.until.is_none()
            && self.exclude_user_agent.is_empty()
            && self.sample.is_none()
    }

    /// Whether the entry is replayed; the first rule that drops it says why.
    pub fn check(&self, entry: &Entry<'_>, input: usize, line: u64) -> Result<(), Skip> {
        if let Some(sample) = &self.sample
            && !sample.keeps(input, line)
        {
            return Err(Skip::Sample);
        }
        let target = entry.target.as_ref();
        if !self.include.is_empty() && !self.include.iter().any(|r| r.is_match(target)) {
            return Err(Skip::NotIncluded);
        }
        if let Some(r) = self.exclude.iter().find(|r| r.is_match(target)) {
            return Err(Skip::Excluded(r.as_str().to_string()));
        }
        if let Some(set) = &self.orig_status
            && !entry.status.is_some_and(|s| set.contains(s))
        {
            return Err(Skip::OrigStatus);
        }
        if self.from.is_some() || self.until.is_some() {
            let Some(t) = entry.time.map(|t| t.with_timezone(&Utc)) else { return Err(Skip::OutsideWindow) };
            if self.from.is_some_and(|from| t < from) || self.until.is_some_and(|until| t >= until) {
                return Err(Skip::OutsideWindow);
            }
        }
        if let Some(ua) = &entry.user_agent
            && self.exclude_user_agent.iter().any(|r| r.is_match(ua))
        {
            return Err(Skip::UserAgent);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_sets() {
        let s = StatusSet::parse("2xx, 304,500-504").unwrap();
        assert!(s.contains(200) && s.contains(299) && s.contains(304) && s.contains(502));
        assert!(!s.contains(301) && !s.contains(404) && !s.contains(505));
        for bad in ["", "6xx", "abc", "99", "504-500", "2x"] {
            assert!(StatusSet::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("2026-11-21T14:00:00+01:00").unwrap().to_rfc3339(), "2026-11-21T13:00:00+00:00");
        assert_eq!(parse_time("2026-11-21 14:00").unwrap().to_rfc3339(), "2026-11-21T14:00:00+00:00");
        assert_eq!(parse_time("2026-11-21").unwrap().to_rfc3339(), "2026-11-21T00:00:00+00:00");
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn sampling_is_deterministic_seedable_and_close_to_the_share() {
        let s = Sample::parse("10%", 0).unwrap();
        let kept: Vec<u64> = (1..=100_000).filter(|l| s.keeps(0, *l)).collect();
        assert!((9_500..=10_500).contains(&kept.len()), "{}", kept.len());
        let again: Vec<u64> = (1..=100_000).filter(|l| s.keeps(0, *l)).collect();
        assert_eq!(kept, again);
        let other = Sample::parse("10", 1).unwrap();
        assert_ne!(kept, (1..=100_000).filter(|l| other.keeps(0, *l)).collect::<Vec<_>>());
        assert!((1..1000).all(|l| Sample::parse("100%", 3).unwrap().keeps(0, l)));
        assert!((1..1000).all(|l| !Sample::parse("0%", 3).unwrap().keeps(0, l)));
        for bad in ["-1%", "101%", "x", "nan%"] {
            assert!(Sample::parse(bad, 0).is_err(), "{bad}");
        }
    }
}
