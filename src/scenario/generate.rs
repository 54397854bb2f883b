//! A [`Scenario`] → its requests in time order, written as a JSON-lines access log.
//!
//! Users start on the schedule's Poisson arrivals; each picks a session by its share and becomes
//! a cursor into that session's steps. A heap of the active users, keyed on each one's next
//! request time, merges their requests: a user whose start is due before the earliest pending
//! request is started first, so every line written is due no earlier than the one before it.
//! Memory holds the active users only (at most [`Limits::active_users`]), whatever the log's
//! length (at most [`Limits::requests`] lines).
//!
//! Each line is read back by sluice's `json` format: `time` (RFC 3339, nanoseconds), `remote_user`
//! (`u1`, `u2`, … in start order), `method`, `request_uri`, `protocol`, one `request_<Name>` key
//! per header, `request_body`, and `tsung_session` (the session's name, kept as a field). The
//! clock starts at 2000-01-01T00:00:00.000000001Z: one nanosecond into its second, so that the
//! very first time has a fraction and the replay's timeline takes every time as exact rather than
//! spreading whole seconds (see [`crate::plan::timeline`]).

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::ser::{Serialize, SerializeMap, Serializer};

use super::{Phase, Request, Scenario, Session, Step, Think};
use crate::pace::schedule::{Arrivals, RateCurve, Schedule, Shape, Stage, exponential, uniform};

/// Most lines one scenario may generate.
pub const MAX_REQUESTS: u64 = 10_000_000;
/// Most users active (started, not finished) at one time.
pub const MAX_ACTIVE_USERS: usize = 1_000_000;
/// Most users the phases may plan before `maxnumber` caps them: walking that many arrivals takes
/// a few seconds.
const MAX_PLANNED_USERS: f64 = 100_000_000.0;
/// Where the generated log's clock starts, in seconds and nanoseconds since the Unix epoch.
const CLOCK_START: (i64, u32) = (946_684_800, 1);
/// Salts that give each kind of draw its own stream from the one seed.
const SESSION_SALT: u64 = 0x5E55_1011_C401_CE00;
const THINK_SALT: u64 = 0x7411_4C71_3E00_0000;

/// Bounds on what one scenario may generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub requests: u64,
    pub active_users: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { requests: MAX_REQUESTS, active_users: MAX_ACTIVE_USERS }
    }
}

/// What was generated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Generated {
    pub users: u64,
    pub requests: u64,
    /// The last request's time from the first user's start.
    pub span: Duration,
    /// Users that played each session, in the scenario's order.
    pub users_by_session: Vec<u64>,
    /// The methods sent.
    pub methods: BTreeSet<String>,
    /// The most users active at once.
    pub peak_active_users: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(
        "the scenario would generate more than {limit} requests (the most one generated log may hold); \
         shorten its phases, lower their rates or cap them with maxnumber"
    )]
    TooManyRequests { limit: u64 },
    #[error(
        "more than {limit} users would be active at once (the most one generated log may track); \
         lower the arrival rates or shorten the think times"
    )]
    TooManyActiveUsers { limit: usize },
    #[error(
        "the phases plan {planned:.0} users, more than the {max} that can be walked; \
         shorten the phases or lower their rates"
    )]
    TooManyPlannedUsers { planned: f64, max: f64 },
    #[error("writing the generated log: {0}")]
    Write(#[from] std::io::Error),
}

/// Writes `scenario`'s requests to `out` in time order; `seed` decides every random draw.
pub fn write_log(scenario: &Scenario, seed: u64, limits: Limits, out: impl Write) -> Result<Generated, GenerateError> {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
    let mut starts = Starts::new(&scenario.phases, seed, scenario.cutoff)?;
    let picker = SessionPicker::new(&scenario.sessions, seed);
    let clock_start = DateTime::<Utc>::from_timestamp(CLOCK_START.0, CLOCK_START.1).expect("a valid instant");
    let mut generated = Generated { users_by_session: vec![0; scenario.sessions.len()], ..Generated::default() };
    let mut active: BinaryHeap<Reverse<Pending>> = BinaryHeap::new();
    let mut next_start = starts.next();
    let mut line = Vec::with_capacity(512);
    loop {
        let earliest = active.peek().map(|Reverse(p)| p.due);
        let start_first = match (next_start, earliest) {
            (None, None) => break,
            (Some(start), Some(due)) => start <= due,
            (Some(_), None) => true,
            (None, Some(_)) => false,
        };
        if start_first {
            let start = next_start.expect("checked above");
            next_start = starts.next();
            let user = generated.users;
            generated.users += 1;
            let session = picker.pick(user);
            generated.users_by_session[session] += 1;
            let mut cursor = Cursor { due: start, user, session, step: 0 };
            if cursor.advance(&scenario.sessions[session], seed, scenario.cutoff) {
                active.push(Reverse(cursor.into()));
                if active.len() > limits.active_users {
                    return Err(GenerateError::TooManyActiveUsers { limit: limits.active_users });
                }
                generated.peak_active_users = generated.peak_active_users.max(active.len());
            }
            continue;
        }
        let Reverse(pending) = active.pop().expect("checked above");
        generated.requests += 1;
        if generated.requests > limits.requests {
            return Err(GenerateError::TooManyRequests { limit: limits.requests });
        }
        let session = &scenario.sessions[pending.session];
        let Step::Request(request) = &session.steps[pending.step] else { unreachable!("a cursor rests on a request") };
        generated.span = pending.due;
        generated.methods.insert(request.method.clone());
        let time = clock_start + chrono::Duration::from_std(pending.due).unwrap_or(chrono::Duration::MAX);
        line.clear();
        let entry = LogLine { time, user: pending.user, session: &session.name, request };
        serde_json::to_writer(&mut line, &entry).map_err(std::io::Error::from)?;
        line.push(b'\n');
        out.write_all(&line)?;
        let mut cursor =
            Cursor { due: pending.due, user: pending.user, session: pending.session, step: pending.step + 1 };
        if cursor.advance(session, seed, scenario.cutoff) {
            active.push(Reverse(cursor.into()));
        }
    }
    out.flush()?;
    Ok(generated)
}

/// A user's next request: ordered by due time, then by user (so equal times keep start order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    due: Duration,
    user: u64,
    session: usize,
    /// The index of the request step in the session.
    step: usize,
}

/// Where a user is in its session: `step` is the next step to play, `due` when it is reached.
struct Cursor {
    due: Duration,
    user: u64,
    session: usize,
    step: usize,
}

impl From<Cursor> for Pending {
    fn from(c: Cursor) -> Pending {
        Pending { due: c.due, user: c.user, session: c.session, step: c.step }
    }
}

impl Cursor {
    /// Plays think times up to the next request; false when the session (or the load) is over.
    fn advance(&mut self, session: &Session, seed: u64, cutoff: Option<Duration>) -> bool {
        while let Some(step) = session.steps.get(self.step) {
            match step {
                Step::Request(_) => return cutoff.is_none_or(|c| self.due < c),
                Step::Think(think) => self.due += think_time(*think, seed, self.user, self.step),
            }
            self.step += 1;
        }
        false
    }
}

/// One draw of a think time, a pure function of (seed, user, step).
fn think_time(think: Think, seed: u64, user: u64, step: usize) -> Duration {
    let stream = seed ^ THINK_SALT ^ user.wrapping_mul(0xD6E8_FEB8_6659_FD93).rotate_left(29);
    match think {
        Think::Fixed(d) => d,
        Think::Exponential { mean } => mean.mul_f64(exponential(stream, step as u64)),
        Think::Uniform { min, max } => min + (max - min).mul_f64(1.0 - uniform(stream, step as u64)),
    }
}

/// Users' start times: the phases as steady stages with Poisson arrivals, each phase's count
/// capped by its `maxnumber`, nothing at or after the load's cutoff.
struct Starts<'a> {
    phases: &'a [Phase],
    schedule: Schedule,
    /// When each phase ends, from the start.
    ends: Vec<Duration>,
    started: Vec<u64>,
    cutoff: Option<Duration>,
}

impl<'a> Starts<'a> {
    fn new(phases: &'a [Phase], seed: u64, cutoff: Option<Duration>) -> Result<Starts<'a>, GenerateError> {
        let stages: Vec<Stage> = phases
            .iter()
            .map(|p| Stage { duration: p.duration, from: p.users_per_second, to: p.users_per_second })
            .collect();
        let curve = RateCurve::stages(stages);
        let planned = curve.count_until(curve.length().unwrap_or_default());
        if planned > MAX_PLANNED_USERS {
            return Err(GenerateError::TooManyPlannedUsers { planned, max: MAX_PLANNED_USERS });
        }
        let ends = phases
            .iter()
            .scan(Duration::ZERO, |end, p| {
                *end += p.duration;
                Some(*end)
            })
            .collect();
        let shape = Shape::Curve { curve, arrivals: Arrivals::Poisson { seed } };
        Ok(Starts { phases, schedule: Schedule::new(shape, 1, None), ends, started: vec![0; phases.len()], cutoff })
    }

    fn next(&mut self) -> Option<Duration> {
        // Bounded: the schedule ends after the phases' planned count (checked in `new`).
        loop {
            let due = self.schedule.due(None)?;
            if self.cutoff.is_some_and(|c| due >= c) {
                return None;
            }
            let phase = self.ends.partition_point(|end| *end <= due);
            let max = self.phases.get(phase)?.max_users;
            if max.is_some_and(|max| self.started[phase] >= max) {
                continue;
            }
            self.started[phase] += 1;
            return Some(due);
        }
    }
}

/// Picks a user's session by share, from (seed, user).
struct SessionPicker {
    /// Each session's cumulative share, in order.
    cumulative: Vec<f64>,
    seed: u64,
}

impl SessionPicker {
    fn new(sessions: &[Session], seed: u64) -> SessionPicker {
        let cumulative = sessions
            .iter()
            .scan(0.0, |sum, s| {
                *sum += s.share;
                Some(*sum)
            })
            .collect();
        SessionPicker { cumulative, seed: seed ^ SESSION_SALT }
    }

    fn pick(&self, user: u64) -> usize {
        let total = self.cumulative.last().copied().unwrap_or_default();
        // Uniform on (0, total]: a session of share 0 is never the first whose sum reaches it.
        let x = uniform(self.seed, user) * total;
        let last_shared = self.cumulative.iter().rposition(|c| *c > 0.0).unwrap_or_default();
        self.cumulative.iter().position(|c| x <= *c).unwrap_or(last_shared).min(last_shared)
    }
}

/// One log line, as sluice's `json` format reads it.
struct LogLine<'a> {
    time: DateTime<Utc>,
    user: u64,
    session: &'a str,
    request: &'a Request,
}

impl Serialize for LogLine<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.request;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("time", &self.time.to_rfc3339_opts(SecondsFormat::Nanos, true))?;
        map.serialize_entry("remote_user", &format!("u{}", self.user + 1))?;
        map.serialize_entry("method", &r.method)?;
        map.serialize_entry("request_uri", &r.target)?;
        map.serialize_entry("protocol", &r.protocol)?;
        for (name, value) in &r.headers {
            map.serialize_entry(&header_key(name), value)?;
        }
        if let Some(body) = &r.body {
            map.serialize_entry("request_body", body)?;
        }
        map.serialize_entry("tsung_session", self.session)?;
        map.end()
    }
}

/// `x-shop` → `request_X-shop`: the `json` format reads `request_` + a capitalised name as a
/// request header (names are case-insensitive; the parser checks they start with a letter).
fn header_key(name: &str) -> String {
    let mut key = String::with_capacity(8 + name.len());
    key.push_str("request_");
    let mut chars = name.chars();
    if let Some(first) = chars.next() {
        key.push(first.to_ascii_uppercase());
    }
    key.extend(chars);
    key
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    fn request(target: &str) -> Step {
        Step::Request(Request {
            method: "GET".into(),
            target: target.into(),
            protocol: "HTTP/1.1".into(),
            headers: Vec::new(),
            body: None,
            line: 1,
        })
    }

    fn scenario(phases: Vec<Phase>, sessions: Vec<Session>) -> Scenario {
        Scenario { phases, sessions, cutoff: None, notes: Vec::new() }
    }

    fn phase(seconds: f64, users_per_second: f64, max_users: Option<u64>) -> Phase {
        Phase { number: 1, duration: Duration::from_secs_f64(seconds), users_per_second, max_users }
    }

    /// The generated lines as JSON values.
    fn lines(s: &Scenario, seed: u64) -> (Generated, Vec<serde_json::Value>) {
        let mut out = Vec::new();
        let generated = write_log(s, seed, Limits::default(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        (generated, text.lines().map(|l| serde_json::from_str(l).unwrap()).collect())
    }

    #[test]
    fn every_line_reads_back_through_the_json_format() {
        let req = Request {
            method: "POST".into(),
            target: "/cart?x=1".into(),
            protocol: "HTTP/1.0".into(),
            headers: vec![("Content-Type".into(), "application/json".into()), ("x-shop".into(), "s\"1".into())],
            body: Some("{\"a\":1}".into()),
            line: 3,
        };
        let s = scenario(
            vec![phase(1.0, 3.0, None)],
            vec![Session { name: "buy".into(), share: 100.0, steps: vec![Step::Request(req.clone())], line: 2 }],
        );
        let mut out = Vec::new();
        let generated = write_log(&s, 1, Limits::default(), &mut out).unwrap();
        assert_eq!((generated.users, generated.requests), (3, 3));
        let first = out.split(|b| *b == b'\n').next().unwrap();
        let format = sluice_parsers::Format::from_spec("json").unwrap();
        let entry = format.parse_line(first).unwrap();
        assert_eq!(entry.method.as_ref(), b"POST");
        assert_eq!(entry.target.as_ref(), b"/cart?x=1");
        assert_eq!(entry.remote_user.as_deref(), Some(&b"u1"[..]));
        assert_eq!(entry.body.as_deref(), Some(&b"{\"a\":1}"[..]));
        let headers: Vec<(&str, &[u8])> = entry.headers.iter().map(|(n, v)| (n.as_ref(), v.as_ref())).collect();
        assert_eq!(headers, [("content-type", &b"application/json"[..]), ("x-shop", &b"s\"1"[..])]);
        let time = entry.time.unwrap();
        assert_eq!(time.timestamp(), CLOCK_START.0);
        assert_ne!(time.timestamp_subsec_nanos(), 0, "the first time has a fraction: the replay takes it as exact");
        assert_eq!(header_key("user-agent"), "request_User-agent");
    }

    #[test]
    fn max_users_caps_a_phase_and_the_cutoff_ends_the_load() {
        let session = Session { name: "s".into(), share: 1.0, steps: vec![request("/")], line: 1 };
        let s = scenario(vec![phase(10.0, 10.0, Some(7)), phase(1.0, 5.0, None)], vec![session.clone()]);
        let (generated, lines) = lines(&s, 3);
        // One request per user, at its start: 7 of the first phase's ~100, then the second's ~5.
        let times: Vec<_> = lines.iter().map(|l| l["time"].as_str().unwrap().to_string()).collect();
        let in_first = times.iter().filter(|t| t.as_str() < "2000-01-01T00:00:10").count();
        assert_eq!(in_first, 7, "{times:?}");
        assert!((8..=20).contains(&generated.users), "{generated:?}");
        let mut cut = scenario(vec![phase(10.0, 10.0, None)], vec![session]);
        cut.cutoff = Some(Duration::from_secs(2));
        let (generated, _) = lines_of(&cut);
        assert!(generated.users < 40 && generated.users > 5, "about 20 users before the cutoff: {generated:?}");
        assert!(generated.span < Duration::from_secs(2));
    }

    fn lines_of(s: &Scenario) -> (Generated, Vec<serde_json::Value>) {
        lines(s, 11)
    }

    #[test]
    fn sessions_are_picked_by_share_and_think_times_follow_their_distribution() {
        let think = |t| vec![request("/a"), Step::Think(t), request("/b")];
        let sessions = vec![
            Session { name: "fixed".into(), share: 70.0, steps: think(Think::Fixed(Duration::from_secs(2))), line: 1 },
            Session {
                name: "uniform".into(),
                share: 30.0,
                steps: think(Think::Uniform { min: Duration::from_secs(1), max: Duration::from_secs(3) }),
                line: 2,
            },
            Session { name: "never".into(), share: 0.0, steps: think(Think::Fixed(Duration::ZERO)), line: 3 },
        ];
        let s = scenario(vec![phase(100.0, 20.0, None)], sessions);
        let (generated, lines) = lines(&s, 5);
        assert_eq!(generated.users, 2000);
        let share = generated.users_by_session[0] as f64 / 2000.0;
        assert!((share - 0.7).abs() < 0.04, "{:?}", generated.users_by_session);
        assert_eq!(generated.users_by_session[2], 0);
        // Each user's gap between /a and /b is its think time.
        let mut first: HashMap<String, f64> = HashMap::new();
        let seconds = |l: &serde_json::Value| {
            let t = chrono::DateTime::parse_from_rfc3339(l["time"].as_str().unwrap()).unwrap();
            (t.timestamp() - CLOCK_START.0) as f64 + f64::from(t.timestamp_subsec_nanos()) * 1e-9
        };
        let mut uniform_gaps = Vec::new();
        for l in &lines {
            let user = l["remote_user"].as_str().unwrap().to_string();
            match l["request_uri"].as_str().unwrap() {
                "/a" => assert!(first.insert(user, seconds(l)).is_none()),
                _ => {
                    let gap = seconds(l) - first[&user];
                    if l["tsung_session"] == "fixed" {
                        assert!((gap - 2.0).abs() < 1e-6, "{gap}");
                    } else {
                        assert!((1.0..=3.0).contains(&gap), "{gap}");
                        uniform_gaps.push(gap);
                    }
                }
            }
        }
        let mean = uniform_gaps.iter().sum::<f64>() / uniform_gaps.len() as f64;
        assert!((mean - 2.0).abs() < 0.1, "uniform in [1, 3] has mean 2: {mean}");
        assert_eq!(lines_of_seed(&s, 5), lines, "the same seed, the same log");
        assert_ne!(lines_of_seed(&s, 6), lines);
    }

    fn lines_of_seed(s: &Scenario, seed: u64) -> Vec<serde_json::Value> {
        lines(s, seed).1
    }

    #[test]
    fn exponential_think_times_have_the_documented_mean() {
        let think = Think::Exponential { mean: Duration::from_secs(4) };
        let draws: Vec<f64> = (0..20_000).map(|user| think_time(think, 9, user, 1).as_secs_f64()).collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((mean - 4.0).abs() < 0.15, "{mean}");
        // An exponential's standard deviation equals its mean.
        let sd = (draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / draws.len() as f64).sqrt();
        assert!((sd - 4.0).abs() < 0.3, "{sd}");
    }

    #[test]
    fn the_limits_are_errors_that_name_them() {
        let session = Session { name: "s".into(), share: 1.0, steps: vec![request("/"), request("/")], line: 1 };
        let s = scenario(vec![phase(10.0, 10.0, None)], vec![session.clone()]);
        let e = write_log(&s, 1, Limits { requests: 150, active_users: 1000 }, std::io::sink()).unwrap_err();
        assert!(e.to_string().contains("more than 150 requests"), "{e}");
        let long = Session {
            steps: vec![request("/"), Step::Think(Think::Fixed(Duration::from_secs(3600))), request("/")],
            ..session
        };
        let s = scenario(vec![phase(10.0, 10.0, None)], vec![long]);
        let e = write_log(&s, 1, Limits { requests: 1000, active_users: 50 }, std::io::sink()).unwrap_err();
        assert!(e.to_string().contains("more than 50 users would be active"), "{e}");
        let huge = scenario(vec![phase(30.0 * 86_400.0, 1_000_000.0, Some(1))], s.sessions.clone());
        let e = write_log(&huge, 1, Limits::default(), std::io::sink()).unwrap_err();
        assert!(matches!(e, GenerateError::TooManyPlannedUsers { .. }), "{e}");
    }

    fn think_strategy() -> impl Strategy<Value = Think> {
        prop_oneof![
            (0u64..3000).prop_map(|ms| Think::Fixed(Duration::from_millis(ms))),
            (1u64..3000).prop_map(|ms| Think::Exponential { mean: Duration::from_millis(ms) }),
            (0u64..1000, 1u64..2000)
                .prop_map(|(a, b)| Think::Uniform { min: Duration::from_millis(a), max: Duration::from_millis(a + b) }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Times never decrease, and each user's requests come in its session's order.
        #[test]
        fn times_never_decrease_and_users_keep_session_order(
            phases in proptest::collection::vec((100u64..3000, 0.5f64..40.0, proptest::option::of(1u64..30)), 1..4),
            sessions in proptest::collection::vec(
                (0.0f64..10.0, proptest::collection::vec(proptest::option::of(think_strategy()), 1..6)),
                1..4,
            ),
            seed in any::<u64>(),
        ) {
            let phases = phases.into_iter().map(|(ms, rate, max)| phase(ms as f64 / 1000.0, rate, max)).collect();
            let mut sessions: Vec<Session> = sessions.into_iter().enumerate().map(|(i, (share, steps))| {
                // A step is a request (None) or a think time; the k-th request of session i is
                // `/s{i}/{k}`.
                let mut k = 0;
                let steps = steps.into_iter().map(|t| match t {
                    Some(t) => Step::Think(t),
                    None => { k += 1; request(&format!("/s{i}/{k}")) }
                }).chain(std::iter::once(request(&format!("/s{i}/end")))).collect();
                Session { name: format!("s{i}"), share, steps, line: 1 }
            }).collect();
            sessions[0].share += 1.0;
            let s = scenario(phases, sessions.clone());
            let (generated, lines) = lines(&s, seed);
            prop_assert_eq!(generated.requests as usize, lines.len());
            let mut last = String::new();
            // Per user: its session and how many of its requests were seen.
            let mut seen: HashMap<String, (usize, usize)> = HashMap::new();
            for l in &lines {
                let time = l["time"].as_str().unwrap().to_string();
                prop_assert!(time >= last, "{} after {}", time, last);
                last = time;
                let index = l["tsung_session"].as_str().unwrap()[1..].parse::<usize>().unwrap();
                let (session, n) = seen.entry(l["remote_user"].as_str().unwrap().to_string()).or_insert((index, 0));
                prop_assert_eq!(*session, index, "a user keeps its session");
                let expected: Vec<&str> = sessions[index].requests().map(|r| r.target.as_str()).collect();
                prop_assert_eq!(l["request_uri"].as_str().unwrap(), expected[*n]);
                *n += 1;
            }
            // Every user played its whole session (no cutoff here).
            for (user, (session, n)) in &seen {
                prop_assert_eq!(*n, sessions[*session].requests().count(), "{}", user);
            }
            prop_assert_eq!(seen.len() as u64, generated.users);
        }
    }
}
