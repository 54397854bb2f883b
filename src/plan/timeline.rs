//! The log's own clock, for `--speed`: each request's logged time as a precise, non-decreasing
//! offset from the first request of its pass ([`ReplayRequest::log_offset`]).
//!
//! Two rules make logged times usable as a plan:
//! - **Whole seconds are spread.** Combined and common logs stamp whole seconds, so fifty requests
//!   logged in one second would otherwise all be due at its start. While every time read so far
//!   has no fraction, the requests of one second are held until the next second shows up and then
//!   spread evenly across their second: the k-th of n at `second + k/n`. As soon as one time has a
//!   fraction (`$msec`, `%{ms}T`, JSON timestamps), the log is taken as precise and times are used
//!   exactly. At most [`GROUP_REQUESTS`] requests or [`GROUP_BYTES`] bytes are held: a larger
//!   second is spread in parts, each over what remains of its second.
//! - **Time never runs backwards.** Several workers writing one log, or merged files, put a line
//!   logged a little earlier after a later one. Such a line is due with the line before it (its
//!   offset is the latest offset so far): nothing is reordered, nothing waits for a window, and
//!   the error is bounded by how far out of order the log was.
//!
//! A request without a logged time is due with the one before it.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::ReplayRequest;
use super::read_ahead::footprint;

/// Most requests of one logged second held back to spread them.
pub const GROUP_REQUESTS: usize = 4096;
/// Most bytes of requests held back to spread them.
pub const GROUP_BYTES: u64 = 4 * 1024 * 1024;

/// Gives each request its place on the log's clock; see the module doc.
#[derive(Debug, Default)]
pub struct Timeline {
    pass: u64,
    /// The logged time of the pass's first request.
    origin: Option<DateTime<Utc>>,
    /// The latest offset handed out or held so far in this pass.
    latest: Duration,
    /// Set once a logged time with a fraction of a second has been seen.
    precise: bool,
    /// Requests of one whole second, waiting to be spread.
    group: Vec<ReplayRequest>,
    group_bytes: u64,
    /// The second the group belongs to (an offset in whole seconds), and where in it the group
    /// starts (later than the second's start when part of it went out already).
    group_second: Duration,
    group_from: Duration,
}

impl Timeline {
    pub fn new() -> Timeline {
        Timeline::default()
    }

    /// Takes the next request in log order; requests whose offset is settled are appended to
    /// `ready`, in order.
    pub fn push(&mut self, mut req: ReplayRequest, ready: &mut Vec<ReplayRequest>) {
        if req.position.passes != self.pass {
            self.flush(ready);
            *self = Timeline { pass: req.position.passes, precise: self.precise, ..Timeline::default() };
        }
        let raw = match (req.log_time, self.origin) {
            (Some(time), Some(origin)) => (time - origin).to_std().unwrap_or_default(),
            (Some(time), None) => {
                self.origin = Some(time);
                Duration::ZERO
            }
            (None, _) => self.latest,
        };
        let offset = raw.max(self.latest);
        if req.log_time.is_some_and(|t| t.timestamp_subsec_nanos() != 0) && !self.precise {
            self.precise = true;
            self.flush(ready);
        }
        if self.precise {
            self.latest = offset;
            req.log_offset = Some(offset);
            ready.push(req);
            return;
        }
        let second = Duration::from_secs(offset.as_secs());
        if !self.group.is_empty() && second != self.group_second {
            self.flush(ready);
        }
        if self.group.is_empty() {
            self.group_second = second;
            self.group_from = self.group_from.max(second);
        }
        self.latest = offset;
        self.group_bytes += footprint(&req);
        self.group.push(req);
        if self.group.len() >= GROUP_REQUESTS || self.group_bytes >= GROUP_BYTES {
            self.flush(ready);
        }
    }

    /// Spreads the held group over what remains of its second and appends it to `ready`. Called
    /// at the end of each pass too.
    pub fn flush(&mut self, ready: &mut Vec<ReplayRequest>) {
        if self.group.is_empty() {
            return;
        }
        let end = self.group_second + Duration::from_secs(1);
        let step = (end - self.group_from) / self.group.len() as u32;
        let mut at = self.group_from;
        for (k, mut req) in self.group.drain(..).enumerate() {
            at = self.group_from + step * k as u32;
            req.log_offset = Some(at);
            ready.push(req);
        }
        // More of this second, if it comes, is spread over what is left after the last one out.
        self.group_from = at;
        self.group_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::LogPosition;
    use chrono::TimeZone;

    fn request(pass: u64, time: Option<DateTime<Utc>>) -> ReplayRequest {
        let mut req = ReplayRequest::for_test("/");
        req.log_time = time;
        req.position = LogPosition { passes: pass, ..LogPosition::default() };
        req
    }

    fn at(secs: i64, millis: u32) -> Option<DateTime<Utc>> {
        Some(Utc.timestamp_opt(1_700_000_000 + secs, millis * 1_000_000).unwrap())
    }

    fn offsets(times: &[Option<DateTime<Utc>>]) -> Vec<Duration> {
        let mut timeline = Timeline::new();
        let mut ready = Vec::new();
        for t in times {
            timeline.push(request(1, *t), &mut ready);
        }
        timeline.flush(&mut ready);
        ready.iter().map(|r| r.log_offset.unwrap()).collect()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn whole_seconds_are_spread_evenly_across_their_second() {
        let got = offsets(&[at(0, 0), at(0, 0), at(0, 0), at(0, 0), at(1, 0), at(3, 0), at(3, 0)]);
        assert_eq!(got, vec![ms(0), ms(250), ms(500), ms(750), ms(1000), ms(3000), ms(3500)]);
    }

    #[test]
    fn fractional_times_are_used_exactly() {
        let got = offsets(&[at(0, 0), at(0, 120), at(0, 120), at(2, 5)]);
        assert_eq!(got, vec![ms(0), ms(120), ms(120), ms(2005)]);
    }

    #[test]
    fn a_line_logged_earlier_is_due_with_the_one_before_it() {
        let got = offsets(&[at(0, 100), at(1, 0), at(0, 500), at(2, 0), None]);
        assert_eq!(got, vec![ms(0), ms(900), ms(900), ms(1900), ms(1900)]);
    }

    #[test]
    fn a_crowded_second_is_spread_in_parts_without_going_backwards() {
        let times = vec![at(0, 0); GROUP_REQUESTS + 100];
        let got = offsets(&times);
        assert_eq!(got.len(), GROUP_REQUESTS + 100);
        assert!(got.windows(2).all(|w| w[0] <= w[1]));
        assert!(got.iter().all(|d| *d < Duration::from_secs(1)));
    }

    #[test]
    fn each_pass_starts_its_own_clock() {
        let mut timeline = Timeline::new();
        let mut ready = Vec::new();
        for (pass, t) in [(1, at(0, 10)), (1, at(5, 10)), (2, at(0, 10)), (2, at(1, 10))] {
            timeline.push(request(pass, t), &mut ready);
        }
        timeline.flush(&mut ready);
        let got: Vec<_> = ready.iter().map(|r| r.log_offset.unwrap()).collect();
        assert_eq!(got, vec![ms(0), ms(5000), ms(0), ms(1000)]);
    }
}
