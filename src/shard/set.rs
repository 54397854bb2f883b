//! Whether a set of shard manifests is one whole run: the same run, options, logs and sluice,
//! every shard `0..K-1` exactly once, each one complete. A mismatch is always refused; a set that
//! is only partial (shards missing or incomplete) may be used on request (`--allow-partial`).

use std::fmt::Write as _;

use serde_json::Value;

use super::manifest::{Incomplete, Manifest};

/// Shards listed one by one in a message; more are counted.
const LISTED: usize = 10;
/// Characters of an option's value shown in a mismatch.
const VALUE_CHARS: usize = 80;

/// A set that is one run, and which of its shards are there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetReport {
    pub run_id: String,
    /// K: the shards the run has.
    pub count: u32,
    /// Shards with a manifest, ascending.
    pub present: Vec<u32>,
    /// Shards without one, ascending.
    pub missing: Vec<u32>,
    /// Present shards whose run did not go to its end, ascending.
    pub incomplete: Vec<(u32, Option<Incomplete>)>,
}

impl SetReport {
    /// Every shard there and complete.
    pub fn is_whole(&self) -> bool {
        self.missing.is_empty() && self.incomplete.is_empty()
    }

    /// Present and complete.
    pub fn complete_shards(&self) -> usize {
        self.present.len() - self.incomplete.len()
    }

    /// `4 shards`, or `3 of 4 shards` when some are missing or incomplete.
    pub fn headline(&self) -> String {
        if self.is_whole() {
            format!("{} shard{}", self.count, if self.count == 1 { "" } else { "s" })
        } else {
            format!("{} of {} shards", self.complete_shards(), self.count)
        }
    }

    /// What is missing or incomplete: `shard 3 of 4 is missing; shard 2 of 4 is incomplete
    /// (interrupted)`; empty when the set is whole.
    pub fn gaps(&self) -> String {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            let (shards, verb) = shards_text(&self.missing);
            parts.push(format!(
                "{shards} of {} {verb} missing (no manifest: a shard killed before its end writes none)",
                self.count
            ));
        }
        if !self.incomplete.is_empty() {
            let reason = |r: &Option<Incomplete>| r.map_or_else(|| "no reason given".into(), |r| r.to_string());
            let text = match self.incomplete.as_slice() {
                [(index, r)] => format!("shard {index} of {} is incomplete ({})", self.count, reason(r)),
                list => {
                    let mut t = String::from("shards ");
                    for (i, (index, r)) in list.iter().take(LISTED).enumerate() {
                        let _ = write!(t, "{}{index} ({})", if i > 0 { ", " } else { "" }, reason(r));
                    }
                    if list.len() > LISTED {
                        let _ = write!(t, " and {} more", list.len() - LISTED);
                    }
                    format!("{t} of {} are incomplete", self.count)
                }
            };
            parts.push(text);
        }
        parts.join("; ")
    }
}

/// `shard 3` / `is`, or `shards 1, 3` / `are` (the first few, then how many more).
fn shards_text(indexes: &[u32]) -> (String, &'static str) {
    match indexes {
        [one] => (format!("shard {one}"), "is"),
        many => {
            let listed: Vec<String> = many.iter().take(LISTED).map(u32::to_string).collect();
            let more = if many.len() > LISTED { format!(" and {} more", many.len() - LISTED) } else { String::new() };
            (format!("shards {}{more}", listed.join(", ")), "are")
        }
    }
}

/// Why a set of manifests is not one whole run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    #[error("no shard manifest found")]
    Empty,
    #[error("shard {index} belongs to run '{theirs}', shard {first} to run '{ours}': not one run")]
    RunId { index: u32, theirs: String, first: u32, ours: String },
    #[error("shard {index} says the run has {theirs} shards, shard {first} says {ours}")]
    Count { index: u32, theirs: u32, first: u32, ours: u32 },
    #[error(
        "shard {index} was run by sluice {theirs}, shard {first} by sluice {ours}: shards split a \
         log alike only when run by one version"
    )]
    Version { index: u32, theirs: String, first: u32, ours: String },
    /// `key` is the first option that differs (a dotted path into `options`), or `None` when the
    /// recorded options are equal and only their hash differs (a redacted secret differs).
    #[error("{}", options_text(*index, *first, key, theirs, ours))]
    Options { index: u32, first: u32, key: Option<String>, theirs: String, ours: String },
    #[error("shard {index} and shard {first} replayed different logs: {difference}")]
    Logs { index: u32, first: u32, difference: String },
    #[error("shard {index} and shard {first} recorded latency with different histogram settings")]
    Histogram { index: u32, first: u32 },
    #[error("shard {index} of {count} appears more than once")]
    Duplicate { index: u32, count: u32 },
    /// One run, but shards are missing or incomplete.
    #[error("{}", .0.gaps())]
    Partial(SetReport),
}

impl SetError {
    /// Missing or incomplete shards of one run, and nothing worse: what `--allow-partial` accepts.
    pub fn is_partial(&self) -> bool {
        matches!(self, SetError::Partial(_))
    }
}

fn options_text(index: u32, first: u32, key: &Option<String>, theirs: &str, ours: &str) -> String {
    match key {
        Some(key) => format!(
            "shard {index} ran with other options than shard {first}: `{key}` is {theirs} in shard {index}, \
             {ours} in shard {first}"
        ),
        None => format!(
            "shard {index} ran with other options than shard {first}: they differ in a redacted option \
             (a secret such as a header's value), so options_hash differs"
        ),
    }
}

/// Checks that `manifests` are every shard of one run, each complete.
pub fn check_set(manifests: &[Manifest]) -> Result<SetReport, SetError> {
    let report = check_partial_set(manifests)?;
    if report.is_whole() { Ok(report) } else { Err(SetError::Partial(report)) }
}

/// Checks that `manifests` are shards of one run (same run, options, logs, sluice; no shard
/// twice), and says which shards are missing or incomplete without refusing them.
pub fn check_partial_set(manifests: &[Manifest]) -> Result<SetReport, SetError> {
    let mut sorted: Vec<&Manifest> = manifests.iter().collect();
    sorted.sort_by_key(|m| m.shard.index);
    let Some(first) = sorted.first().copied() else { return Err(SetError::Empty) };
    for m in &sorted[1..] {
        same_run(first, m)?;
    }
    for pair in sorted.windows(2) {
        if pair[0].shard.index == pair[1].shard.index {
            return Err(SetError::Duplicate { index: pair[0].shard.index, count: first.shard.count });
        }
    }
    let present: Vec<u32> = sorted.iter().map(|m| m.shard.index).collect();
    Ok(SetReport {
        run_id: first.run_id.clone(),
        count: first.shard.count,
        missing: (0..first.shard.count).filter(|i| present.binary_search(i).is_err()).collect(),
        incomplete: sorted.iter().filter(|m| !m.complete).map(|m| (m.shard.index, m.incomplete_reason)).collect(),
        present,
    })
}

/// Whether `m` is a shard of the same run as `first`, or the first way it is not.
fn same_run(first: &Manifest, m: &Manifest) -> Result<(), SetError> {
    let (index, first_index) = (m.shard.index, first.shard.index);
    if m.run_id != first.run_id {
        return Err(SetError::RunId {
            index,
            theirs: m.run_id.clone(),
            first: first_index,
            ours: first.run_id.clone(),
        });
    }
    if m.shard.count != first.shard.count {
        return Err(SetError::Count { index, theirs: m.shard.count, first: first_index, ours: first.shard.count });
    }
    if m.sluice_version != first.sluice_version {
        return Err(SetError::Version {
            index,
            theirs: m.sluice_version.clone(),
            first: first_index,
            ours: first.sluice_version.clone(),
        });
    }
    if m.options_hash != first.options_hash || m.options != first.options {
        let difference = first_difference(&m.options, &first.options, String::new());
        let (key, theirs, ours) = match difference {
            Some((key, theirs, ours)) => (Some(key), value_text(theirs), value_text(ours)),
            None => (None, String::new(), String::new()),
        };
        return Err(SetError::Options { index, first: first_index, key, theirs, ours });
    }
    if let Some(difference) = logs_difference(m, first) {
        return Err(SetError::Logs { index, first: first_index, difference });
    }
    if m.histogram != first.histogram {
        return Err(SetError::Histogram { index, first: first_index });
    }
    Ok(())
}

/// The first option (in key order, depth first) whose value differs, as a dotted path, with both
/// values (`None`: absent).
fn first_difference<'a>(
    theirs: &'a Value,
    ours: &'a Value,
    path: String,
) -> Option<(String, Option<&'a Value>, Option<&'a Value>)> {
    let join = |key: &str| if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
    match (theirs, ours) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| match (a.get(k), b.get(k)) {
                (Some(x), Some(y)) => first_difference(x, y, join(k)),
                (x, y) => Some((join(k), x, y)),
            })
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            a.iter().zip(b).enumerate().find_map(|(i, (x, y))| first_difference(x, y, format!("{path}[{i}]")))
        }
        _ if theirs == ours => None,
        _ => Some((if path.is_empty() { "(options)".into() } else { path }, Some(theirs), Some(ours))),
    }
}

/// An option's value as JSON, shortened; `absent` when the key is not there.
fn value_text(value: Option<&Value>) -> String {
    let Some(value) = value else { return "absent".into() };
    let text = value.to_string();
    if text.chars().count() <= VALUE_CHARS { text } else { text.chars().take(VALUE_CHARS - 1).chain(['…']).collect() }
}

/// How the logs of `m` differ from those of `first`, naming the log and what differs.
fn logs_difference(m: &Manifest, first: &Manifest) -> Option<String> {
    let (index, first_index) = (m.shard.index, first.shard.index);
    // By content only: the same log may lie under another path on each machine.
    for (theirs, ours) in m.logs.iter().zip(&first.logs) {
        if theirs.bytes != ours.bytes {
            return Some(format!(
                "log {} has {} bytes in shard {index}, {} in shard {first_index}",
                theirs.name, theirs.bytes, ours.bytes
            ));
        }
        if theirs.sha256 != ours.sha256 {
            return Some(format!(
                "log {} has the same size but another SHA-256 in shard {index} than in shard {first_index}",
                theirs.name
            ));
        }
    }
    if m.logs.len() != first.logs.len() {
        return Some(format!(
            "shard {index} read {} log file(s), shard {first_index} {}",
            m.logs.len(),
            first.logs.len()
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::manifest::tests::sample;
    use super::*;

    fn set(count: u32) -> Vec<Manifest> {
        (0..count).map(|i| sample(i, count)).collect()
    }

    fn refused(manifests: &[Manifest]) -> String {
        check_set(manifests).unwrap_err().to_string()
    }

    #[test]
    fn a_whole_set_in_any_order_is_one_run() {
        let mut shards = set(4);
        shards.reverse();
        let report = check_set(&shards).unwrap();
        assert_eq!(report.present, [0, 1, 2, 3]);
        assert_eq!(report.headline(), "4 shards");
        assert_eq!(report.gaps(), "");
        assert_eq!(check_set(&set(1)).unwrap().headline(), "1 shard");
    }

    #[test]
    fn a_missing_shard_is_named() {
        let mut shards = set(4);
        shards.remove(2);
        let e = check_set(&shards).unwrap_err();
        assert!(e.is_partial());
        assert!(e.to_string().starts_with("shard 2 of 4 is missing"), "{e}");
        shards.remove(0);
        assert!(refused(&shards).starts_with("shards 0, 2 of 4 are missing"));
        let SetError::Partial(report) = check_set(&shards).unwrap_err() else { panic!() };
        assert_eq!(report.headline(), "2 of 4 shards");
    }

    #[test]
    fn an_incomplete_shard_is_named_with_its_reason() {
        let mut shards = set(4);
        shards[2].complete = false;
        shards[2].incomplete_reason = Some(Incomplete::Interrupted);
        let e = check_set(&shards).unwrap_err();
        assert!(e.is_partial());
        assert_eq!(e.to_string(), "shard 2 of 4 is incomplete (interrupted)");
        let partial = check_partial_set(&shards).unwrap();
        assert_eq!(partial.headline(), "3 of 4 shards");
        shards[3].complete = false;
        assert_eq!(refused(&shards), "shards 2 (interrupted), 3 (no reason given) of 4 are incomplete");
    }

    #[test]
    fn missing_and_incomplete_are_both_named() {
        let mut shards = set(4);
        shards.remove(3);
        shards[1].complete = false;
        shards[1].incomplete_reason = Some(Incomplete::LogCut);
        let e = refused(&shards);
        assert!(e.starts_with("shard 3 of 4 is missing"), "{e}");
        assert!(e.ends_with("; shard 1 of 4 is incomplete (its log was cut off)"), "{e}");
    }

    #[test]
    fn another_run_is_refused_even_as_a_partial_set() {
        let mut shards = set(3);
        shards[1].run_id = "nightly-43".into();
        let e = check_partial_set(&shards).unwrap_err();
        assert!(!e.is_partial());
        assert_eq!(e.to_string(), "shard 1 belongs to run 'nightly-43', shard 0 to run 'nightly-42': not one run");
    }

    #[test]
    fn another_shard_count_is_named() {
        let mut shards = set(3);
        shards[2].shard.count = 4;
        assert_eq!(refused(&shards), "shard 2 says the run has 4 shards, shard 0 says 3");
    }

    #[test]
    fn a_shard_given_twice_is_named() {
        let mut shards = set(3);
        shards.push(sample(1, 3));
        assert_eq!(refused(&shards), "shard 1 of 3 appears more than once");
    }

    #[test]
    fn another_version_is_named() {
        let mut shards = set(2);
        shards[1].sluice_version = "0.2.0".into();
        assert!(refused(&shards).starts_with("shard 1 was run by sluice 0.2.0, shard 0 by sluice 0.1.0"));
    }

    #[test]
    fn differing_options_name_the_first_differing_option() {
        let mut shards = set(2);
        shards[1].options_hash = "ef".repeat(32);
        shards[1].options["rate"] = 2000.into();
        assert_eq!(
            refused(&shards),
            "shard 1 ran with other options than shard 0: `rate` is 2000 in shard 1, 1000 in shard 0"
        );
        shards[1].options = shards[0].options.clone();
        shards[1].options["headers"]["x-b"] = "2".into();
        assert!(refused(&shards).contains("`headers.x-b` is \"2\" in shard 1, absent in shard 0"));
        // Only a secret differs: the options recorded are the same, their hash is not.
        shards[1].options = shards[0].options.clone();
        assert!(refused(&shards).contains("differ in a redacted option"));
    }

    #[test]
    fn differing_logs_name_the_log_and_what_differs() {
        let mut shards = set(2);
        shards[1].logs[0].bytes += 1;
        assert_eq!(
            refused(&shards),
            "shard 1 and shard 0 replayed different logs: log access.log has 1235 bytes in shard 1, 1234 in shard 0"
        );
        shards[1].logs[0].bytes -= 1;
        shards[1].logs[0].sha256 = "00".repeat(32);
        assert!(
            refused(&shards)
                .ends_with("log access.log has the same size but another SHA-256 in shard 1 than in shard 0")
        );
        shards[1].logs = shards[0].logs.clone();
        shards[1].logs[0].name = "/mnt/other/access.log".into();
        assert!(check_set(&shards).is_ok(), "the same log under another path on another machine");
        let again = shards[0].logs[0].clone();
        shards[1].logs.push(again);
        shards[1].logs[1].name = "more.log".into();
        assert!(refused(&shards).ends_with("shard 1 read 2 log file(s), shard 0 1"));
    }

    #[test]
    fn differing_histograms_are_refused() {
        let mut shards = set(2);
        shards[1].histogram.significant_figures = 2;
        assert!(refused(&shards).contains("histogram settings"));
    }

    #[test]
    fn nothing_is_not_a_set() {
        assert_eq!(check_set(&[]).unwrap_err(), SetError::Empty);
    }

    #[test]
    fn long_lists_are_cut() {
        let shards = vec![sample(0, 40)];
        let e = refused(&shards);
        assert!(e.starts_with("shards 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 29 more of 40 are missing"), "{e}");
    }
}
