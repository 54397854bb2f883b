//! The journey view of `sluice report`, for results of a `--sessions` run: sessions by length,
//! and the slowest sessions (first planned send to last answer) with their routes in order.
//!
//! A session's rows come in the order its requests ended, which within a session is its logged
//! order (one request at a time), interleaved with other sessions'. Open sessions are followed
//! until their file ends; memory stays flat: at most [`SESSIONS_FOLLOWED`] at once, the least
//! recently seen closed first (a row of a closed session is counted as `split`, never merged
//! wrongly), and at most [`ROUTES_KEPT`] routes kept per session.

use std::collections::{BTreeMap, HashMap};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::results::{Answer, Row};
use crate::stats::{Percentiles, histogram, record};

/// Sessions followed at once, like the replay's own bound.
pub const SESSIONS_FOLLOWED: usize = 100_000;
/// Routes kept per session, first ones in logged order.
pub const ROUTES_KEPT: usize = 12;
/// Slowest sessions listed.
pub const SLOWEST: usize = 10;
/// Session lengths grouped: 1, 2, 3, 4, 5–9, 10–19, 20–49, 50–99, 100 and more.
const LENGTH_FLOORS: [u64; 9] = [1, 2, 3, 4, 5, 10, 20, 50, 100];

/// The fold's state: open sessions, and what closed ones added up to.
#[derive(Debug, Clone, Default)]
pub struct Journeys {
    open: HashMap<u64, Open>,
    /// Last seen (a row counter) → session id: the first entry is the least recent.
    recency: BTreeMap<u64, u64>,
    clock: u64,
    /// One histogram of session time (µs) per length group.
    by_length: Vec<(u64, Histogram<u64>)>,
    slowest: Vec<Journey>,
    sessions: u64,
    split: u64,
    /// The file being read (its index among the report's files).
    file: usize,
    /// A session of this file was closed to make room: a later row of it starts it again.
    closed_early: bool,
}

#[derive(Debug, Clone)]
struct Open {
    requests: u64,
    failed: u64,
    first_scheduled_ms: i64,
    last_end_ms: i64,
    routes: Vec<(u64, String)>,
    last_seen: u64,
}

/// One of the slowest sessions.
#[derive(Debug, Clone, Serialize)]
pub struct Journey {
    /// As in the CSV's `session` column (`s17`); ids are per file.
    pub session: String,
    pub file: usize,
    pub requests: u64,
    /// Sent and got no answer, or a 5xx.
    pub failed: u64,
    /// From the first request's planned send to the end of the last answer.
    pub total_ms: f64,
    /// Routes in logged order (the first [`ROUTES_KEPT`]).
    pub routes: Vec<String>,
}

/// What the report shows.
#[derive(Debug, Clone, Serialize)]
pub struct JourneyView {
    pub sessions: u64,
    /// Rows of a session already closed to make room (its time is then counted in two parts).
    pub split_rows: u64,
    pub by_length: Vec<LengthLine>,
    pub slowest: Vec<Journey>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LengthLine {
    /// `1`, `5-9`, `100+`.
    pub length: String,
    pub sessions: u64,
    pub total_ms: Percentiles,
}

impl Journeys {
    /// A row, with its route (as the route table names it). Rows outside any session are not
    /// part of a journey.
    pub fn record(&mut self, row: &Row<'_>, route: &str) {
        let Some(tag) = row.session else { return };
        self.clock += 1;
        let end_ms = if row.was_sent() { row.sent_ms + (row.latency_us / 1000) as i64 } else { row.scheduled_ms };
        // As everywhere: no answer or a 5xx, of requests that left.
        let failed = match row.answer {
            Answer::Status(s) => s >= 500,
            Answer::Error(_) => row.was_sent(),
        };
        let open = match self.open.get_mut(&tag.id) {
            Some(open) => {
                self.recency.remove(&open.last_seen);
                open
            }
            None => {
                if tag.seq > 0 && self.closed_early {
                    // Its first rows may have been in a session closed to make room.
                    self.split += 1;
                }
                if self.open.len() >= SESSIONS_FOLLOWED
                    && let Some((_, oldest)) = self.recency.pop_first()
                {
                    self.close(oldest);
                    self.closed_early = true;
                }
                self.open.entry(tag.id).or_insert(Open {
                    requests: 0,
                    failed: 0,
                    first_scheduled_ms: row.scheduled_ms,
                    last_end_ms: end_ms,
                    routes: Vec::new(),
                    last_seen: 0,
                })
            }
        };
        open.requests += 1;
        open.failed += u64::from(failed);
        open.first_scheduled_ms = open.first_scheduled_ms.min(row.scheduled_ms);
        open.last_end_ms = open.last_end_ms.max(end_ms);
        if open.routes.len() < ROUTES_KEPT || open.routes.last().is_some_and(|(seq, _)| tag.seq < *seq) {
            open.routes.push((tag.seq, route.to_string()));
            open.routes.sort_unstable_by_key(|(seq, _)| *seq);
            open.routes.truncate(ROUTES_KEPT);
        }
        open.last_seen = self.clock;
        self.recency.insert(self.clock, tag.id);
    }

    /// The end of a file: its sessions end with it (ids are per file).
    pub fn end_file(&mut self) {
        let ids: Vec<u64> = self.open.keys().copied().collect();
        for id in ids {
            self.close(id);
        }
        self.recency.clear();
        self.file += 1;
        self.closed_early = false;
    }

    fn close(&mut self, id: u64) {
        let Some(open) = self.open.remove(&id) else { return };
        self.sessions += 1;
        let total_us = (open.last_end_ms - open.first_scheduled_ms).max(0) as u64 * 1000;
        let floor = LENGTH_FLOORS.iter().rev().find(|f| open.requests >= **f).copied().unwrap_or(1);
        match self.by_length.iter_mut().find(|(f, _)| *f == floor) {
            Some((_, h)) => record(h, total_us.max(1)),
            None => {
                let mut h = histogram(3);
                record(&mut h, total_us.max(1));
                self.by_length.push((floor, h));
            }
        }
        let journey = Journey {
            session: crate::results::SessionTag { id, seq: 0 }.cell(),
            file: self.file,
            requests: open.requests,
            failed: open.failed,
            total_ms: total_us as f64 / 1e3,
            routes: open.routes.into_iter().map(|(_, r)| r).collect(),
        };
        let at = self.slowest.partition_point(|j| j.total_ms >= journey.total_ms);
        if at < SLOWEST {
            self.slowest.insert(at, journey);
            self.slowest.truncate(SLOWEST);
        }
    }

    /// The view, or `None` when no row had a session (the report then looks as before).
    pub fn view(&self) -> Option<JourneyView> {
        if self.sessions == 0 {
            return None;
        }
        let mut by_length = self.by_length.clone();
        by_length.sort_unstable_by_key(|(floor, _)| *floor);
        Some(JourneyView {
            sessions: self.sessions,
            split_rows: self.split,
            by_length: by_length
                .iter()
                .map(|(floor, h)| LengthLine {
                    length: length_label(*floor),
                    sessions: h.len(),
                    total_ms: Percentiles::of(h),
                })
                .collect(),
            slowest: self.slowest.clone(),
        })
    }
}

impl Journey {
    /// How the report names it: `s17`, or `results-2.csv: s17` when the report reads several
    /// files (ids are per file).
    pub fn label(&self, files: &[String]) -> String {
        match files.get(self.file) {
            Some(file) if files.len() > 1 => format!("{file}: {}", self.session),
            _ => self.session.clone(),
        }
    }

    /// Its routes in logged order, `/login → /cart → /pay`, ending `→ …` when it had more
    /// requests than are kept.
    pub fn route_chain(&self) -> String {
        let more = if self.requests > self.routes.len() as u64 { " → …" } else { "" };
        format!("{}{more}", self.routes.join(" → "))
    }
}

impl JourneyView {
    /// ` (N rows of sessions closed early to bound memory, counted again)`, or nothing when no
    /// session was closed early.
    pub fn split_note(&self) -> String {
        match self.split_rows {
            0 => String::new(),
            n => format!(" ({n} rows of sessions closed early to bound memory, counted again)"),
        }
    }
}

fn length_label(floor: u64) -> String {
    let next = LENGTH_FLOORS.iter().find(|f| **f > floor);
    match next {
        None => format!("{floor}+"),
        Some(&next) if next == floor + 1 => floor.to_string(),
        Some(&next) => format!("{floor}-{}", next - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::SessionTag;

    fn row(session: Option<(u64, u64)>, scheduled_ms: i64, latency_ms: u64, status: u16) -> Row<'static> {
        Row {
            seq: 0,
            scheduled_ms,
            sent_ms: scheduled_ms,
            lag_us: 0,
            method: "GET",
            url: "http://t/x",
            orig_status: None,
            answer: Answer::Status(status),
            latency_us: latency_ms * 1000,
            bytes: 0,
            session: session.map(|(id, seq)| SessionTag { id, seq }),
            e2e: None,
        }
    }

    #[test]
    fn sessions_are_grouped_by_length_and_the_slowest_listed_with_routes_in_order() {
        let mut j = Journeys::default();
        // s1: three requests, 0 → 1500 ms, rows in the order they ended.
        j.record(&row(Some((1, 0)), 0, 100, 200), "/login");
        j.record(&row(None, 10, 5, 200), "/static");
        j.record(&row(Some((2, 0)), 20, 10, 200), "/home");
        j.record(&row(Some((1, 1)), 100, 400, 200), "/cart");
        j.record(&row(Some((1, 2)), 500, 1000, 502), "/pay");
        j.end_file();
        let view = j.view().unwrap();
        assert_eq!(view.sessions, 2);
        let lengths: Vec<(&str, u64)> = view.by_length.iter().map(|l| (l.length.as_str(), l.sessions)).collect();
        assert_eq!(lengths, [("1", 1), ("3", 1)]);
        let slowest = &view.slowest[0];
        assert_eq!((slowest.session.as_str(), slowest.requests, slowest.failed), ("s1", 3, 1));
        assert_eq!(slowest.total_ms, 1500.0);
        assert_eq!(slowest.routes, ["/login", "/cart", "/pay"]);
        assert_eq!(view.slowest[1].session, "s2");
        assert_eq!(length_label(5), "5-9");
        assert_eq!(length_label(100), "100+");
    }

    #[test]
    fn a_journey_is_named_by_file_only_among_several_and_its_chain_says_when_routes_were_left_out() {
        let journey = Journey {
            session: "s3".into(),
            file: 1,
            requests: 3,
            failed: 0,
            total_ms: 1.0,
            routes: vec!["/a".into(), "/b".into()],
        };
        assert_eq!(journey.label(&["one.csv".into(), "two.csv".into()]), "two.csv: s3");
        assert_eq!(journey.label(&["two.csv".into()]), "s3");
        assert_eq!(journey.route_chain(), "/a → /b → …");
        assert_eq!(Journey { requests: 2, ..journey }.route_chain(), "/a → /b");
    }

    #[test]
    fn rows_without_sessions_make_no_view() {
        let mut j = Journeys::default();
        j.record(&row(None, 0, 1, 200), "/");
        j.end_file();
        assert!(j.view().is_none());
    }
}
