//! The plan: when request `n` is due, as an offset from T0.
//!
//! Every schedule is a pure, deterministic function of the request stream (after filters), its
//! parameters and a seed — never of what the target did. [`Schedule::due`] is a cursor: it is
//! fed every request in plan order and answers that request's due time; any process that feeds
//! it the same requests gets the same times (which is what lets a run be split across machines).
//!
//! The shapes:
//! - a **rate curve** ([`RateCurve`]): one steady rate (`--rate`) or piecewise-linear stages
//!   (`--stages 30s:0-200,10m:200`). Request `n` is due when the integral of the rate reaches
//!   `n`: exactly, from the closed form of each stage, never by re-pacing every tick;
//! - **arrivals** on that curve ([`Arrivals`]): evenly spaced, or Poisson — the curve's integral
//!   is walked in seeded exponential steps, normalised so that the run plans exactly as many
//!   requests as the even plan (the mean rate is exact over the run, not just on average);
//! - **logged timing** (`--speed`): request `n` is due at its logged offset ÷ speed, with any
//!   silence capped at `--max-gap`; a looping pass starts one average gap after the previous one.
//!
//! A batch (`--batch B`) leaves together, at the due time of its first request.

use std::time::Duration;

/// Most stages in one `--stages` list.
pub const MAX_STAGES: usize = 1000;
/// The highest rate a stage (or `--rate`) may ask for, in requests per second.
pub const MAX_RATE: f64 = 10_000_000.0;
/// Poisson gaps are normalised in blocks this long when the run's count is not known (see
/// `PoissonWalk`).
const POISSON_BLOCK: usize = 1024;

/// One stretch of a rate curve: `from` req/s at its start, `to` at its end, linear in between.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub from: f64,
    pub to: f64,
}

impl Stage {
    /// Requests planned in this stage: the area under its rate.
    fn count(&self) -> f64 {
        (self.from + self.to) / 2.0 * self.duration.as_secs_f64()
    }

    /// The time into this stage at which `count` requests of it have become due (the inverse of
    /// the stage's integral `from·t + (to−from)·t²/2D`), in seconds.
    fn time_of(&self, count: f64) -> f64 {
        let (a, d) = (self.from, self.duration.as_secs_f64());
        let slope = (self.to - self.from) / d;
        if slope == 0.0 {
            return count / a;
        }
        // 2s / (a + √(a² + 2·slope·s)): the root of the quadratic that is stable for a = 0 and for
        // falling ramps alike.
        let root = (a * a + 2.0 * slope * count).max(0.0).sqrt();
        2.0 * count / (a + root)
    }
}

/// Parses `--stages`: `DURATION:RATE` (steady) or `DURATION:FROM-TO` (a linear ramp), comma
/// separated, rates in requests per second.
pub fn parse_stages(text: &str) -> Result<Vec<Stage>, String> {
    let form = "expected DURATION:RATE or DURATION:FROM-TO, comma separated (e.g. 30s:0-200,10m:200)";
    let mut stages = Vec::new();
    for part in text.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(format!("an empty stage in '{}': {form}", text.trim()));
        }
        let Some((duration, rates)) = part.split_once(':') else {
            return Err(format!("'{part}' has no ':': {form}"));
        };
        let duration = crate::duration::parse_duration(duration).map_err(|m| format!("'{part}': {m}"))?;
        if duration.is_zero() {
            return Err(format!("'{part}': a stage lasts longer than zero"));
        }
        let rate = |text: &str| -> Result<f64, String> {
            match text.trim().parse::<f64>() {
                Ok(r) if r.is_finite() && (0.0..=MAX_RATE).contains(&r) => Ok(r),
                _ => Err(format!("'{part}': '{}' is not a rate between 0 and {MAX_RATE} req/s", text.trim())),
            }
        };
        let (from, to) = match rates.split_once('-') {
            Some((from, to)) => (rate(from)?, rate(to)?),
            None => (rate(rates)?, rate(rates)?),
        };
        stages.push(Stage { duration, from, to });
    }
    if stages.len() > MAX_STAGES {
        return Err(format!("{} stages; at most {MAX_STAGES}", stages.len()));
    }
    if stages.iter().all(|s| s.from == 0.0 && s.to == 0.0) {
        return Err("every stage has rate 0: nothing would be sent".into());
    }
    Ok(stages)
}

/// Requests per second over time: one steady rate, or stages one after the other.
#[derive(Debug, Clone, PartialEq)]
pub struct RateCurve {
    stages: Vec<Stage>,
    /// Requests due before each stage starts (the integral up to it); one more entry: the total.
    before: Vec<f64>,
    /// When each stage starts, in seconds from T0.
    starts: Vec<f64>,
    /// `Some` for one steady rate, which goes on for ever.
    steady: Option<f64>,
}

impl RateCurve {
    pub fn steady(rate: f64) -> RateCurve {
        RateCurve { stages: Vec::new(), before: vec![0.0], starts: vec![0.0], steady: Some(rate) }
    }

    pub fn stages(stages: Vec<Stage>) -> RateCurve {
        let (mut before, mut starts) = (vec![0.0], vec![0.0]);
        for s in &stages {
            before.push(before.last().copied().unwrap_or_default() + s.count());
            starts.push(starts.last().copied().unwrap_or_default() + s.duration.as_secs_f64());
        }
        RateCurve { stages, before, starts, steady: None }
    }

    /// The stages (empty for a steady rate).
    pub fn stage_list(&self) -> &[Stage] {
        &self.stages
    }

    /// The one rate, for a steady curve.
    pub fn steady_rate(&self) -> Option<f64> {
        self.steady
    }

    /// The highest rate anywhere on the curve.
    pub fn peak(&self) -> f64 {
        self.steady.unwrap_or_else(|| self.stages.iter().map(|s| s.from.max(s.to)).fold(0.0, f64::max))
    }

    /// How long the curve lasts: the stages' total; `None` for a steady rate.
    pub fn length(&self) -> Option<Duration> {
        self.steady.is_none().then(|| self.stages.iter().map(|s| s.duration).sum())
    }

    /// The planned rate `t` after T0 (0 once the stages are over).
    pub fn rate_at(&self, t: Duration) -> f64 {
        if let Some(rate) = self.steady {
            return rate;
        }
        let t = t.as_secs_f64();
        self.stages
            .iter()
            .enumerate()
            .find(|(i, s)| t < self.starts[i + 1] && t >= self.starts[*i] && s.duration > Duration::ZERO)
            .map_or(0.0, |(i, s)| s.from + (s.to - s.from) * (t - self.starts[i]) / s.duration.as_secs_f64())
    }

    /// Requests planned in the first `t` of the curve (its integral up to `t`).
    pub fn count_until(&self, t: Duration) -> f64 {
        let t = t.as_secs_f64();
        if let Some(rate) = self.steady {
            return rate * t;
        }
        let mut count = 0.0;
        for (i, s) in self.stages.iter().enumerate() {
            let into = (t - self.starts[i]).clamp(0.0, s.duration.as_secs_f64());
            let slope = (s.to - s.from) / s.duration.as_secs_f64();
            count += s.from * into + slope * into * into / 2.0;
        }
        count
    }

    /// When the integral of the rate reaches `count`, from T0; `None` if the curve ends first.
    /// `stage` is a hint, the stage the previous answer fell in: due times only grow, so the
    /// search walks forward from it.
    fn time_of(&self, count: f64, stage: &mut usize) -> Option<f64> {
        if !count.is_finite() {
            return None;
        }
        if let Some(rate) = self.steady {
            return Some(count / rate);
        }
        while *stage < self.stages.len() && count >= self.before[*stage + 1] {
            *stage += 1;
        }
        // Walking backwards is only needed when a caller asks out of order (tests, reports).
        while *stage > 0 && count < self.before[*stage] {
            *stage -= 1;
        }
        let s = self.stages.get(*stage)?;
        Some(self.starts[*stage] + s.time_of(count - self.before[*stage]))
    }
}

/// How arrivals are spread along the rate curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrivals {
    /// Evenly: request `n` when the integral reaches `n`.
    Uniform,
    /// A Poisson process: exponential gaps from `seed`.
    Poisson { seed: u64 },
}

/// What decides the due times: the schedule's parameters, as validated from the options.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// `--rate max`: no plan; each request leaves as soon as a sender is free.
    Unpaced,
    /// `--rate N` or `--stages`, with uniform or Poisson arrivals.
    Curve { curve: RateCurve, arrivals: Arrivals },
    /// `--speed X`: the log's own timing, sped up (or slowed down), silences capped.
    Logged { speed: f64, max_gap: Option<Duration> },
}

impl Shape {
    pub fn steady(rate: f64) -> Shape {
        Shape::Curve { curve: RateCurve::steady(rate), arrivals: Arrivals::Uniform }
    }

    /// The one planned rate, when there is one (a steady rate, uniform or Poisson).
    pub fn steady_rate(&self) -> Option<f64> {
        match self {
            Shape::Curve { curve, .. } => curve.steady_rate(),
            _ => None,
        }
    }

    /// The highest planned rate, when the shape knows it before the run (not for logged timing).
    pub fn peak_rate(&self) -> Option<f64> {
        match self {
            Shape::Curve { curve, .. } => Some(curve.peak()),
            _ => None,
        }
    }

    /// What the plan calls for `elapsed` after T0, in requests per second; 0 when it has no rate
    /// of its own (`--rate max`, `--speed`).
    pub fn rate_at(&self, elapsed: Duration) -> f64 {
        match self {
            Shape::Curve { curve, .. } => curve.rate_at(elapsed),
            _ => 0.0,
        }
    }

    pub fn seed(&self) -> Option<u64> {
        match self {
            Shape::Curve { arrivals: Arrivals::Poisson { seed }, .. } => Some(*seed),
            _ => None,
        }
    }

    pub fn is_paced(&self) -> bool {
        *self != Shape::Unpaced
    }

    /// One line for the run's banner and summary: `200/s`, `stages 30s:0-200,…`, `logged timing ×4`.
    pub fn describe(&self) -> String {
        match self {
            Shape::Unpaced => "max rate".into(),
            Shape::Curve { curve, arrivals } => {
                let curve_text = match curve.steady_rate() {
                    Some(rate) => format!("{rate}/s"),
                    None => format!("stages {}", describe_stages(curve.stage_list())),
                };
                match arrivals {
                    Arrivals::Uniform => curve_text,
                    Arrivals::Poisson { seed } => format!("{curve_text}, Poisson arrivals (seed {seed})"),
                }
            }
            Shape::Logged { speed, max_gap } => {
                let gap = max_gap.map(|g| format!(", gaps capped at {}", crate::display::human_duration(g)));
                format!("logged timing ×{speed}{}", gap.unwrap_or_default())
            }
        }
    }
}

/// Stages written back the way `--stages` takes them.
pub fn describe_stages(stages: &[Stage]) -> String {
    stages
        .iter()
        .map(|s| {
            let d = crate::display::compact_duration(s.duration);
            if s.from == s.to { format!("{d}:{}", s.from) } else { format!("{d}:{}-{}", s.from, s.to) }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Where a request sits in the log's own time, as the logged-timing shape needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogClock {
    /// The pass over the log (1-based; more than one when looping).
    pub pass: u64,
    /// Its logged time made precise and non-decreasing (`crate::plan::timeline`), from the first
    /// request of its pass.
    pub offset: Duration,
}

impl LogClock {
    /// Where `req` sits, if the reader gave it a place on the log's clock.
    pub fn of(req: &crate::plan::ReplayRequest) -> Option<LogClock> {
        req.log_offset.map(|offset| LogClock { pass: req.position.passes, offset })
    }
}

/// The cursor over a schedule: feed it every request in plan order, get each one's due time.
#[derive(Debug, Clone)]
pub struct Schedule {
    shape: Shape,
    batch: u64,
    /// The due time of the current batch, once its first request has been seen.
    batch_due: Option<Duration>,
    /// Requests seen so far (the `n` of the next one).
    seen: u64,
    stage_hint: usize,
    poisson: PoissonWalk,
    logged: LoggedWalk,
}

impl Schedule {
    /// `length`: how long the run lasts (`--duration`), if it is bounded; the stages bound it too.
    pub fn new(shape: Shape, batch: u32, length: Option<Duration>) -> Schedule {
        assert!(batch > 0, "validated by config");
        let seed = shape.seed().unwrap_or_default();
        let planned = match &shape {
            Shape::Curve { curve, .. } => curve.length().or(length).map(|l| curve.count_until(l)),
            _ => None,
        };
        Schedule {
            shape,
            batch: u64::from(batch),
            batch_due: None,
            seen: 0,
            stage_hint: 0,
            poisson: PoissonWalk::new(seed, planned),
            logged: LoggedWalk::default(),
        }
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    pub fn batch(&self) -> u32 {
        self.batch as u32
    }

    /// The due time of the next request, `n = ` the number seen so far; `clock` is its place in the
    /// log's time (needed by logged timing only). `None` when the plan has ended (the stages are
    /// over) or for an unpaced run.
    pub fn due(&mut self, clock: Option<LogClock>) -> Option<Duration> {
        let n = self.seen;
        self.seen += 1;
        // Logged timing accumulates every request's gap, batch members' too.
        let own = match &self.shape {
            Shape::Unpaced => return None,
            Shape::Logged { speed, max_gap } => {
                let (speed, max_gap) = (*speed, *max_gap);
                Some(self.logged.advance(clock.unwrap_or_default(), max_gap, speed))
            }
            Shape::Curve { .. } => None,
        };
        if !n.is_multiple_of(self.batch) {
            return self.batch_due;
        }
        let due = match own {
            Some(due) => Some(due),
            None => self.curve_due(n),
        };
        self.batch_due = due;
        due
    }

    /// Due time of request `n` on a rate curve (a pure function of `n`, cursor state aside).
    fn curve_due(&mut self, n: u64) -> Option<Duration> {
        let Shape::Curve { curve, arrivals } = &self.shape else { return None };
        let count = match arrivals {
            Arrivals::Uniform => n as f64,
            Arrivals::Poisson { .. } => self.poisson.position(n),
        };
        let seconds = curve.time_of(count, &mut self.stage_hint)?;
        Some(Duration::from_secs_f64(seconds.max(0.0)))
    }

    /// How much of the plan `released` requests covered: the due time of the first request not
    /// released (for logged timing: the last due time plus one average gap). Achieved rate is
    /// `released / span`.
    pub fn span_after(&self, released: u64) -> Option<Duration> {
        match &self.shape {
            Shape::Unpaced => None,
            Shape::Logged { speed, .. } => Some(self.logged.span().div_f64(*speed)),
            Shape::Curve { curve, arrivals } => {
                let first = released / self.batch * self.batch;
                let count = match arrivals {
                    Arrivals::Uniform => first as f64,
                    Arrivals::Poisson { .. } => self.poisson.clone().position(first),
                };
                let seconds = curve.time_of(count, &mut 0).or_else(|| curve.length().map(|l| l.as_secs_f64()))?;
                Some(Duration::from_secs_f64(seconds.max(0.0)))
            }
        }
    }
}

/// Positions of Poisson arrivals along the integral of the rate, from exponential steps of
/// mean one. Each step comes from a counter-based hash of (seed, index), so any process computes
/// the same positions.
///
/// When the run's planned count `N` is known (stages, or a rate with `--duration`) and at most
/// [`POISSON_EXACT`], the steps are scaled so the `N` arrivals fill the run exactly: they are then
/// distributed as a Poisson process's arrivals given that `N` of them fell in the run (uniform
/// order statistics), and the run plans exactly `N`. Otherwise the steps are scaled per block of
/// [`POISSON_BLOCK`], so every 1,024th arrival lands where the even plan puts it.
#[derive(Debug, Clone)]
struct PoissonWalk {
    seed: u64,
    /// `(N, scale)` when the whole run is one block.
    whole: Option<(u64, f64)>,
    /// The arrival the running sum is at, and that sum of steps (whole-run mode).
    next: u64,
    sum: f64,
    block: Option<u64>,
    /// Normalised positions within the current block, from 0 (block mode).
    within: Vec<f64>,
}

/// Largest planned count normalised over the whole run (summing its steps takes ~50 ms).
const POISSON_EXACT: u64 = 10_000_000;

impl PoissonWalk {
    /// `planned`: the run's planned count (the integral of the rate over the run), when finite.
    fn new(seed: u64, planned: Option<f64>) -> PoissonWalk {
        let whole = planned.map(|p| p.floor() as u64).filter(|n| (1..=POISSON_EXACT).contains(n)).map(|n| {
            let steps: f64 = (0..n).map(|i| exponential(seed, i)).sum();
            (n, n as f64 / steps)
        });
        PoissonWalk { seed, whole, next: 0, sum: 0.0, block: None, within: Vec::new() }
    }

    /// Where arrival `n` falls on the integral; beyond the run's planned count, past its end.
    /// Cheapest when asked in order.
    fn position(&mut self, n: u64) -> f64 {
        if let Some((planned, scale)) = self.whole {
            if n >= planned {
                return f64::INFINITY;
            }
            if n < self.next {
                (self.next, self.sum) = (0, 0.0);
            }
            while self.next < n {
                self.sum += exponential(self.seed, self.next);
                self.next += 1;
            }
            return self.sum * scale;
        }
        let k = POISSON_BLOCK as u64;
        let block = n / k;
        if self.block != Some(block) {
            self.fill(block);
        }
        (block * k) as f64 + self.within[(n % k) as usize]
    }

    fn fill(&mut self, block: u64) {
        self.block = Some(block);
        self.within.clear();
        let mut sum = 0.0;
        for i in 0..POISSON_BLOCK as u64 {
            self.within.push(sum);
            sum += exponential(self.seed, block * POISSON_BLOCK as u64 + i);
        }
        let scale = POISSON_BLOCK as f64 / sum;
        self.within.iter_mut().for_each(|p| *p *= scale);
    }
}

/// An exponential variate of mean 1 from (seed, index): inverse-transform sampling of
/// [`uniform`].
pub(crate) fn exponential(seed: u64, index: u64) -> f64 {
    -uniform(seed, index).ln()
}

/// A uniform variate on (0, 1] from (seed, index): splitmix64 as the counter-based generator.
/// Never 0, so its logarithm is finite.
pub(crate) fn uniform(seed: u64, index: u64) -> f64 {
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((z >> 11) + 1) as f64 / (1u64 << 53) as f64
}

/// Logged timing's running state: the capped offset so far, per pass.
#[derive(Debug, Clone, Default)]
struct LoggedWalk {
    pass: u64,
    /// Where the current pass starts, in capped log time.
    pass_start: Duration,
    /// The previous request's own log offset in this pass.
    last_offset: Duration,
    /// The capped time from the pass start to the previous request.
    into_pass: Duration,
    in_pass: u64,
}

impl LoggedWalk {
    /// The next request's due time: its capped log time ÷ speed.
    fn advance(&mut self, clock: LogClock, max_gap: Option<Duration>, speed: f64) -> Duration {
        if clock.pass != self.pass {
            if self.in_pass > 0 {
                // The next pass starts one average gap after the previous pass's last request.
                self.pass_start = self.span();
            }
            self.pass = clock.pass;
            self.last_offset = clock.offset;
            self.into_pass = Duration::ZERO;
            self.in_pass = 0;
        }
        // The timeline never goes backwards; `saturating_sub` keeps a stray value harmless.
        let gap = clock.offset.saturating_sub(self.last_offset);
        let gap = max_gap.map_or(gap, |cap| gap.min(cap));
        self.into_pass += gap;
        self.last_offset = clock.offset;
        self.in_pass += 1;
        (self.pass_start + self.into_pass).div_f64(speed)
    }

    /// The capped log time covered so far, plus one average gap: where a next request would fall.
    fn span(&self) -> Duration {
        let average = match self.in_pass {
            0 | 1 => Duration::ZERO,
            n => self.into_pass / (n - 1) as u32,
        };
        self.pass_start + self.into_pass + average
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn dues(shape: Shape, batch: u32, n: usize) -> Vec<Option<Duration>> {
        let mut schedule = Schedule::new(shape, batch, None);
        (0..n).map(|_| schedule.due(None)).collect()
    }

    #[test]
    fn a_steady_rate_is_the_fixed_plan_with_batches() {
        let d = dues(Shape::steady(200.0), 1, 601);
        assert_eq!(d[0], Some(Duration::ZERO));
        assert_eq!(d[1], Some(Duration::from_millis(5)));
        assert_eq!(d[600], Some(Duration::from_secs(3)));
        let b = dues(Shape::steady(100.0), 10, 26);
        assert_eq!((b[9], b[10], b[25]), (Some(Duration::ZERO), Some(secs(0.1)), Some(secs(0.2))));
        // Fractional intervals do not accumulate rounding error over a long run.
        let mut odd = Schedule::new(Shape::steady(3.0), 1, None);
        let last = (0..=3 * 3600 * 6).map(|_| odd.due(None)).last().flatten().unwrap();
        assert!(last.abs_diff(Duration::from_secs(6 * 3600)) < Duration::from_micros(1), "{last:?}");
    }

    #[test]
    fn stages_parse_and_refuse_what_they_should() {
        let s = parse_stages("30s:0-200, 10m:200,1m:200-800,30s:800-0").unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s[0], Stage { duration: Duration::from_secs(30), from: 0.0, to: 200.0 });
        assert_eq!(s[1], Stage { duration: Duration::from_secs(600), from: 200.0, to: 200.0 });
        assert_eq!(describe_stages(&s), "30s:0-200,10m:200,1m:200-800,30s:800-0");
        for bad in ["", "30s", "30s:", "x:10", "0s:10", "10s:-5", "10s:abc", "10s:1-2-3", "10s:0", "10s:1e99", "1s:5,,"]
        {
            assert!(parse_stages(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn a_ramp_from_zero_follows_the_integral() {
        // 0 → 100 req/s over 10 s: 500 requests; request n due at √(2n/10) s.
        let curve = RateCurve::stages(vec![Stage { duration: Duration::from_secs(10), from: 0.0, to: 100.0 }]);
        let d = dues(Shape::Curve { curve, arrivals: Arrivals::Uniform }, 1, 501);
        assert_eq!(d[0], Some(Duration::ZERO));
        assert!(d[5].unwrap().abs_diff(Duration::from_secs(1)) < Duration::from_micros(1), "{:?}", d[5]);
        assert!(d[499].unwrap() < Duration::from_secs(10));
        assert_eq!(d[500], None, "the plan ends with the last stage");
    }

    #[test]
    fn a_pause_stage_sends_nothing() {
        let stages = parse_stages("1s:10,5s:0,1s:10").unwrap();
        let d = dues(Shape::Curve { curve: RateCurve::stages(stages), arrivals: Arrivals::Uniform }, 1, 20);
        assert_eq!(d[9], Some(secs(0.9)));
        assert_eq!(d[10], Some(Duration::from_secs(6)), "the 11th request waits out the pause");
        assert_eq!(d[19], Some(secs(6.9)));
    }

    #[test]
    fn poisson_with_a_seed_repeats_and_keeps_the_mean_rate() {
        let shape = |seed| Shape::Curve { curve: RateCurve::steady(100.0), arrivals: Arrivals::Poisson { seed } };
        let a = dues(shape(7), 1, 5000);
        assert_eq!(a, dues(shape(7), 1, 5000), "same seed, same plan");
        assert_ne!(a, dues(shape(8), 1, 5000));
        // Exact at every block boundary: request 1024·k is due at 1024·k / rate.
        assert!(a[4096].unwrap().abs_diff(secs(40.96)) < Duration::from_micros(1));
    }

    #[test]
    fn poisson_over_a_bounded_run_plans_exactly_the_even_count() {
        for seed in 0..20 {
            let curve = RateCurve::stages(parse_stages("2s:0-200,1s:200").unwrap());
            let mut s = Schedule::new(Shape::Curve { curve, arrivals: Arrivals::Poisson { seed } }, 1, None);
            let planned = std::iter::from_fn(|| s.due(None)).take(1000).count();
            assert_eq!(planned, 400, "seed {seed}");
            let steady = Shape::Curve { curve: RateCurve::steady(100.0), arrivals: Arrivals::Poisson { seed } };
            let mut s = Schedule::new(steady, 1, Some(Duration::from_secs(10)));
            let in_run = std::iter::from_fn(|| s.due(None)).take_while(|d| *d < Duration::from_secs(10)).count();
            assert_eq!(in_run, 1000, "seed {seed}");
        }
    }

    /// Kolmogorov–Smirnov: the gaps between Poisson arrivals are exponential at the 1% level,
    /// whether the run's length is known (normalised over the run) or not (per block).
    #[test]
    fn poisson_gaps_pass_kolmogorov_smirnov_against_the_exponential() {
        let rate = 50.0;
        for length in [None, Some(Duration::from_secs(400))] {
            let shape = Shape::Curve { curve: RateCurve::steady(rate), arrivals: Arrivals::Poisson { seed: 42 } };
            let mut schedule = Schedule::new(shape, 1, length);
            let d: Vec<_> = (0..20_000).map(|_| schedule.due(None)).collect();
            ks_exponential(&d, rate);
        }
    }

    fn ks_exponential(d: &[Option<Duration>], rate: f64) {
        let mut gaps: Vec<f64> = d.windows(2).map(|w| (w[1].unwrap() - w[0].unwrap()).as_secs_f64()).collect();
        gaps.sort_by(f64::total_cmp);
        let n = gaps.len() as f64;
        let statistic = gaps
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let cdf = 1.0 - (-rate * g).exp();
                (cdf - i as f64 / n).abs().max(((i + 1) as f64 / n - cdf).abs())
            })
            .fold(0.0, f64::max);
        let critical = 1.628 / n.sqrt(); // α = 0.01
        assert!(statistic < critical, "KS statistic {statistic} ≥ {critical}");
    }

    #[test]
    fn logged_timing_divides_gaps_by_speed_and_caps_silences() {
        let clock = |s: f64| Some(LogClock { pass: 1, offset: secs(s) });
        let mut schedule = Schedule::new(Shape::Logged { speed: 4.0, max_gap: Some(Duration::from_secs(2)) }, 1, None);
        let got: Vec<_> = [0.0, 0.4, 0.4, 1.0, 61.0, 62.0].iter().map(|&s| schedule.due(clock(s)).unwrap()).collect();
        let want = [0.0, 0.1, 0.1, 0.25, 0.75, 1.0].map(secs);
        for (g, w) in got.iter().zip(want) {
            assert!(g.abs_diff(w) < Duration::from_micros(1), "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn a_looping_pass_starts_one_average_gap_after_the_last() {
        let mut schedule = Schedule::new(Shape::Logged { speed: 1.0, max_gap: None }, 1, None);
        for (pass, s) in [(1, 0.0), (1, 1.0), (1, 2.0), (2, 0.0), (2, 1.0)] {
            let due = schedule.due(Some(LogClock { pass, offset: secs(s) })).unwrap();
            let want = if pass == 1 { s } else { 3.0 + s };
            assert!(due.abs_diff(secs(want)) < Duration::from_micros(1), "pass {pass} at {s}: {due:?}");
        }
    }

    #[test]
    fn span_after_is_the_due_time_of_the_first_request_not_released() {
        let schedule = Schedule::new(Shape::steady(100.0), 1, None);
        assert_eq!(schedule.span_after(250), Some(secs(2.5)));
        let ramp =
            Shape::Curve { curve: RateCurve::stages(parse_stages("10s:0-100").unwrap()), arrivals: Arrivals::Uniform };
        assert_eq!(
            Schedule::new(ramp, 1, None).span_after(10_000),
            Some(Duration::from_secs(10)),
            "past the end: the curve's length"
        );
    }

    proptest! {
        #[test]
        fn due_times_never_decrease(
            stages in proptest::collection::vec((1u64..5_000, 0.0f64..2_000.0, 0.0f64..2_000.0), 1..6),
            poisson in any::<bool>(),
            seed in any::<u64>(),
            batch in 1u32..20,
        ) {
            let stages: Vec<Stage> = stages.into_iter()
                .map(|(ms, from, to)| Stage { duration: Duration::from_millis(ms), from, to })
                .collect();
            let arrivals = if poisson { Arrivals::Poisson { seed } } else { Arrivals::Uniform };
            let mut schedule = Schedule::new(Shape::Curve { curve: RateCurve::stages(stages), arrivals }, batch, None);
            let mut last = Duration::ZERO;
            for _ in 0..3000 {
                let Some(due) = schedule.due(None) else { break };
                prop_assert!(due >= last, "{due:?} < {last:?}");
                last = due;
            }
        }

        #[test]
        fn each_stage_gets_its_planned_count_within_one(
            stages in proptest::collection::vec((100u64..3_000, 0.0f64..500.0, 0.0f64..500.0), 1..5),
        ) {
            let stages: Vec<Stage> = stages.into_iter()
                .map(|(ms, from, to)| Stage { duration: Duration::from_millis(ms), from, to })
                .collect();
            let curve = RateCurve::stages(stages.clone());
            let mut schedule = Schedule::new(Shape::Curve { curve, arrivals: Arrivals::Uniform }, 1, None);
            let dues: Vec<Duration> = std::iter::from_fn(|| schedule.due(None)).take(100_000).collect();
            let mut start = Duration::ZERO;
            for s in &stages {
                let end = start + s.duration;
                let got = dues.iter().filter(|d| **d >= start && **d < end).count() as f64;
                prop_assert!((got - s.count()).abs() <= 1.0 + 1e-6, "stage {s:?}: {got} vs {}", s.count());
                start = end;
            }
        }

        #[test]
        fn logged_timing_reproduces_the_gaps_divided_by_speed(
            gaps_ms in proptest::collection::vec(0u64..5_000, 1..200),
            speed in 0.1f64..20.0,
        ) {
            let mut schedule = Schedule::new(Shape::Logged { speed, max_gap: None }, 1, None);
            let mut offset = Duration::ZERO;
            let first = schedule.due(Some(LogClock { pass: 1, offset })).unwrap();
            prop_assert_eq!(first, Duration::ZERO);
            for gap in gaps_ms {
                offset += Duration::from_millis(gap);
                let due = schedule.due(Some(LogClock { pass: 1, offset })).unwrap();
                prop_assert!(due.abs_diff(offset.div_f64(speed)) < Duration::from_micros(1));
            }
        }
    }
}
