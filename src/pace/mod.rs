//! Pacing: when each request leaves.
//!
//! Two pieces, on purpose:
//! - The [schedule] is the plan, a pure function of the request stream: a
//!   steady rate (request `n` at `T0 + floor(n / B) * B / N`), ramp stages, Poisson arrivals or
//!   the log's own timing × speed. `scheduled_at` in the CSV comes from here, never from whatever
//!   a limiter happened to grant, so lag is measured against the ideal plan.
//! - governor is the cap: every release on a rate curve also needs governor's permission, so no
//!   bug, clock jump or catch-up after a stall can ever exceed the peak rate by more than
//!   governor's burst. The burst is two batches or 100 ms of traffic, whichever is more: large
//!   enough that normal timer jitter never makes governor push the plan later (with burst 1, GCRA
//!   turns every late wake-up into permanent drift), small enough that catching up after a stall
//!   is bounded.
//!
//! The loop that drives this (`run_pacer`) is a task on the senders' runtime, so a released
//! request reaches an idle sender without crossing threads. It sleeps on a kernel timer (timerfd)
//! that the runtime polls with its sockets, not on tokio's millisecond wheel: sends stay within
//! tens of microseconds of the plan, and a wake-up costs no thread switch. (A pacer on its own
//! thread, sleeping with 1 µs timer slack, paced as well but cost a fifth of the loader's CPU at
//! 5,000 req/s in context switches and cross-thread wake-ups; bench/RESULTS.md.)
//!
//! [`Pacer`] is generic over governor's clock so it can be tested with a fake clock.

pub mod schedule;
pub mod shard;
pub(crate) mod timer;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::{Clock, MonotonicClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio_util::sync::CancellationToken;

use crate::control::{RunControl, StopReason};
use crate::pace::schedule::{Arrivals, LogClock, Schedule, Shape};
use crate::pace::shard::Shard;
use crate::pace::timer::PreciseTimer;
use crate::plan::read_ahead::footprint;
use crate::plan::{LogPosition, ReplayRequest};
use crate::send::outcome::Outcome;
use crate::send::{Job, OutcomeBuffer};

type Limiter<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// Decides releases from the plan and governor's cap. Owns no clock of its own for the plan: the
/// caller says how much time has elapsed, so tests drive it without sleeping.
pub struct Pacer<C: Clock + Clone = MonotonicClock> {
    schedule: Schedule,
    limiter: Option<(Limiter<C>, C)>,
    released: u64,
    /// With `--shard`: the requests this process sends (every request still gets its due time).
    shard: Option<Shard>,
    /// The pacer wakes at most this often (`--release-every`). At rates above its inverse the
    /// requests due within one wake leave together, each at most this late, never early; in
    /// exchange the pacer and the sender runtime wake that often instead of once per request.
    release_every: Duration,
}

impl Pacer<MonotonicClock> {
    pub fn new(schedule: Schedule, ceiling: Option<f64>) -> Self {
        Pacer::with_clock(schedule, ceiling, MonotonicClock)
    }
}

impl<C: Clock + Clone> Pacer<C> {
    /// The cap is governor at the shape's peak rate, with a burst of two batches or 100 ms of
    /// traffic. Poisson arrivals cluster by nature, so their cap is twice the peak with 200 ms of
    /// burst: a cap at the mean would queue the plan's own clusters. Logged timing has no rate
    /// known in advance: the log is the plan, capped only by `ceiling` when one is given (the
    /// daemon's `--max-rate`), which also lowers any other cap above it.
    pub fn with_clock(schedule: Schedule, ceiling: Option<f64>, clock: C) -> Self {
        let batch = u64::from(schedule.batch());
        let cap = match schedule.shape() {
            Shape::Curve { curve, arrivals: Arrivals::Uniform } => Some((curve.peak(), 10.0)),
            Shape::Curve { curve, arrivals: Arrivals::Poisson { .. } } => Some((2.0 * curve.peak(), 5.0)),
            Shape::Logged { .. } => ceiling.map(|c| (c, 10.0)),
            Shape::Unpaced => None,
        };
        let cap = cap.map(|(rate, burst_divisor)| (ceiling.map_or(rate, |c| rate.min(c)), burst_divisor));
        let limiter = cap.map(|(rate, burst_divisor)| {
            let period = Duration::from_secs_f64(1.0 / rate).max(Duration::from_nanos(1));
            let burst = (2 * batch).max((rate / burst_divisor).ceil() as u64).min(u64::from(u32::MAX)) as u32;
            let quota = Quota::with_period(period)
                .expect("period is positive")
                .allow_burst(NonZeroU32::new(burst).expect("burst is at least 2"));
            (RateLimiter::direct_with_clock(quota, clock.clone()), clock)
        });
        Pacer { schedule, limiter, released: 0, shard: None, release_every: timer::DEFAULT_RELEASE_EVERY }
    }

    /// Sends only this shard's requests. Governor's cap stays the whole plan's: a shard's share
    /// of it is never more than the whole.
    pub fn with_shard(mut self, shard: Option<Shard>) -> Self {
        self.shard = shard;
        self
    }

    /// Wakes at most once per `every` (`--release-every`).
    pub fn with_release_every(mut self, every: Duration) -> Self {
        self.release_every = every;
        self
    }

    /// How many requests have been released so far.
    pub fn released(&self) -> u64 {
        self.released
    }

    pub fn is_paced(&self) -> bool {
        self.schedule.shape().is_paced()
    }

    /// The next request's due time (it must be asked once per request, in plan order). `None`:
    /// unpaced, or the plan has ended.
    pub fn due(&mut self, clock: Option<LogClock>) -> Option<Duration> {
        self.schedule.due(clock)
    }

    /// May the request due at `due` leave now, `elapsed` after T0? Either it is released (and
    /// counted), or the answer says how long to wait: for its due time, or for governor.
    pub fn next(&mut self, elapsed: Duration, due: Duration) -> Next {
        if due > elapsed {
            return Next::WaitUntil(due);
        }
        if let Some((limiter, clock)) = &self.limiter
            && let Err(not_until) = limiter.check()
        {
            return Next::WaitUntil(elapsed + not_until.wait_time_from(clock.now()));
        }
        self.released += 1;
        Next::Release
    }

    /// Whether this process sends `req` (always, unless sharded).
    fn keeps(&self, req: &ReplayRequest) -> bool {
        self.shard.is_none_or(|shard| shard.keeps(req))
    }

    /// An unpaced release: counted, no plan to check.
    fn release_now(&mut self) {
        self.released += 1;
    }

    /// The stretch of plan that `released` requests covered (see [`PacerReport::span`]).
    fn span(&self, released: u64) -> Option<Duration> {
        self.schedule.span_after(released)
    }
}

/// What the pacer says to do with the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Send it now.
    Release,
    /// Nothing may leave before this offset from the start.
    WaitUntil(Duration),
}

/// When the plan starts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Start {
    /// The common T0 of `--start-at`; without it, T0 is when the first request is ready.
    pub at: Option<Instant>,
    /// Started after `at`: keep T0 and record what was already due as `skipped_late`, instead of
    /// sending it late.
    pub skip_late: bool,
}

/// What the pacer reports when it ends.
#[derive(Debug, Clone, Copy)]
pub struct PacerReport {
    pub released: u64,
    /// When the first request was released (the plan's T0); `None` if nothing was.
    pub t0: Option<Instant>,
    /// The stretch of plan that was covered: the deadline, or the slot of the first request not
    /// released, or (at `--rate max`) the time to the last release. Achieved rate = released / span.
    pub span: Duration,
    pub reason: StopReason,
    /// How far into the log the last released request was: the lines actually replayed, as
    /// against the lines the reader had read ahead.
    pub replayed: LogPosition,
}

/// Requests from the reader's queue, one at a time, until the log ends or the run stops. Each
/// request taken gives its bytes back to the read-ahead budget (`crate::plan::read_ahead`).
struct Incoming {
    queue: async_channel::Receiver<Vec<ReplayRequest>>,
    ready: std::vec::IntoIter<ReplayRequest>,
    stop: CancellationToken,
    control: Arc<RunControl>,
}

impl Incoming {
    async fn next(&mut self) -> Option<ReplayRequest> {
        let req = match self.ready.next() {
            Some(req) => req,
            None => tokio::select! {
                biased;
                _ = self.stop.cancelled() => return None,
                chunk = self.queue.recv() => {
                    self.ready = chunk.ok()?.into_iter();
                    self.ready.next()?
                }
            },
        };
        self.control.read_ahead.give_back(footprint(&req));
        Some(req)
    }
}

impl Incoming {
    /// After the end of the run: the requests already read ahead whose due time was before
    /// `end`, each handed to `missed` (this shard's only), without waiting for more.
    fn drain_due_before(&mut self, pacer: &mut Pacer, end: Duration, mut missed: impl FnMut(ReplayRequest, Duration)) {
        loop {
            let req = match self.ready.next() {
                Some(req) => req,
                None => match self.queue.try_recv() {
                    Ok(chunk) => {
                        self.ready = chunk.into_iter();
                        continue;
                    }
                    Err(_) => return,
                },
            };
            self.control.read_ahead.give_back(footprint(&req));
            let Some(due) = pacer.due(LogClock::of(&req)).filter(|due| *due < end) else { return };
            if pacer.keeps(&req) {
                missed(req, due);
            }
        }
    }
}

impl Drop for Incoming {
    /// The pacer has ended: a reader waiting for budget must not wait for ever.
    fn drop(&mut self) {
        self.control.read_ahead.close();
    }
}

/// The pacer: takes requests from the queue in plan order, waits for each one's due time, and
/// hands it to the senders. When all senders are busy the hand-off waits, the next due times
/// pass, and the lateness shows up as lag: requests are never silently dropped or re-timed.
pub(crate) async fn run_pacer(
    mut pacer: Pacer,
    start: Start,
    deadline: Option<Duration>,
    queue: async_channel::Receiver<Vec<ReplayRequest>>,
    work: async_channel::Sender<Job>,
    outcomes: Arc<OutcomeBuffer>,
    control: Arc<RunControl>,
) -> PacerReport {
    let stop = control.stop_token();
    let mut incoming = Incoming { queue, ready: Vec::new().into_iter(), stop: stop.clone(), control: control.clone() };
    let timer = PreciseTimer::new();
    let mut replayed = LogPosition::default();
    // `next_due`: the due time of the first request not released, when it is known.
    let report = |pacer: &Pacer, t0: Option<Instant>, reason: StopReason, replayed, next_due: Option<Duration>| {
        let released = pacer.released();
        let span = match (reason, deadline) {
            (StopReason::Deadline, Some(d)) => d,
            _ => {
                next_due.or_else(|| pacer.span(released)).unwrap_or_else(|| t0.map(|t| t.elapsed()).unwrap_or_default())
            }
        };
        PacerReport { released, t0, span, reason, replayed }
    };
    let stopped = |control: &RunControl| match control.stop_reason() {
        Some(reason) => reason,
        None if control.is_stopping() => StopReason::Cancelled,
        None => StopReason::EndOfLog,
    };

    // T0 is when the first request is ready, so start-up (opening files, sniffing) is not lag.
    let Some(first) = incoming.next().await else {
        return report(&pacer, None, stopped(&control), replayed, None);
    };
    let ready = Instant::now();
    let t0 = match start.at {
        Some(at) if at > ready => {
            tokio::select! {
                biased;
                _ = stop.cancelled() => return report(&pacer, None, stopped(&control), replayed, None),
                _ = timer.sleep_until(at) => {}
            }
            at
        }
        Some(at) => at,
        None => ready,
    };
    // Requests due before this were missed by a late start (`--late-start skip`).
    let missed = (start.skip_late && ready > t0).then(|| ready - t0);
    control.set_t0(t0);
    // The end of the duration also reaches a pacer blocked on busy senders: the stop closes the
    // hand-off, so the run ends at `duration + drain timeout` whatever the target does.
    let _deadline_guard = deadline.map(|d| {
        let control = control.clone();
        AbortOnDrop(tokio::spawn(async move {
            tokio::time::sleep_until((t0 + d).into()).await;
            control.stop_because(StopReason::Deadline);
        }))
    });
    let mut pending = Some(first);
    let mut last_release = Duration::ZERO;
    loop {
        if control.is_stopping() {
            return report(&pacer, Some(t0), stopped(&control), replayed, None);
        }
        let req = match pending.take() {
            Some(req) => req,
            None => match incoming.next().await {
                Some(req) => req,
                None => return report(&pacer, Some(t0), stopped(&control), replayed, None),
            },
        };
        let scheduled = if pacer.is_paced() {
            let Some(due) = pacer.due(LogClock::of(&req)) else {
                // The plan has ended (the last stage is over) before the log did.
                return report(&pacer, Some(t0), StopReason::Deadline, replayed, None);
            };
            if !pacer.keeps(&req) {
                continue;
            }
            if missed.is_some_and(|missed| due < missed) {
                outcomes.push(Outcome::skipped_late(req, t0 + due));
                continue;
            }
            // Wait for the due time (and governor), or for the end of the run.
            loop {
                let elapsed = t0.elapsed();
                if let Some(d) = deadline
                    && (elapsed >= d || due >= d)
                {
                    // Past the end: this request is not sent. (When only its due time is past
                    // it, those already released may still leave in time.) Requests due before
                    // the end that the pacer reached only after it are part of the plan: each
                    // gets its not-sent row, so the plan's rows are exactly those due before it.
                    if due < d {
                        outcomes.push(Outcome::not_sent(req, t0 + due));
                        incoming.drain_due_before(&mut pacer, d, |req, due| {
                            outcomes.push(Outcome::not_sent(req, t0 + due));
                        });
                    }
                    if elapsed >= d {
                        control.stop_because(StopReason::Deadline);
                    }
                    return report(&pacer, Some(t0), StopReason::Deadline, replayed, Some(due));
                }
                match pacer.next(elapsed, due) {
                    Next::Release => {
                        last_release = elapsed;
                        break;
                    }
                    Next::WaitUntil(at) => {
                        let at = at.max(last_release + pacer.release_every);
                        let wake = deadline.map_or(at, |d| at.min(d));
                        tokio::select! {
                            biased;
                            _ = stop.cancelled() => {
                                return report(&pacer, Some(t0), stopped(&control), replayed, Some(due));
                            }
                            _ = timer.sleep_until(t0 + wake) => {}
                        }
                    }
                }
            }
            t0 + due
        } else {
            if !pacer.keeps(&req) {
                continue;
            }
            // At --rate max the plan time is the moment it was released.
            pacer.release_now();
            Instant::now()
        };
        replayed = req.position;
        // The hand-off fails only when a stop has closed it. A request whose due time came but
        // that could not be handed over is part of the plan: it gets its row.
        if let Err(async_channel::SendError(job)) = work.send(Job { req, scheduled }).await {
            let paced = pacer.is_paced();
            if paced {
                outcomes.push(Outcome::not_sent(job.req, job.scheduled));
            }
            // Only the requests actually handed over count as released.
            pacer.released -= 1;
            let due = paced.then(|| job.scheduled.saturating_duration_since(t0));
            return report(&pacer, Some(t0), stopped(&control), replayed, due);
        }
    }
}

/// Aborts a task when dropped: the deadline watcher must not outlive the pacer.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn steady(rate: f64, batch: u32, clock: &FakeRelativeClock) -> Pacer<FakeRelativeClock> {
        Pacer::with_clock(Schedule::new(Shape::steady(rate), batch, None), None, clock.clone())
    }

    /// Drives a pacer on a fake clock in 1 ms steps, returning (release time, due time) pairs.
    fn drive(
        pacer: &mut Pacer<FakeRelativeClock>,
        clock: &FakeRelativeClock,
        until: Duration,
    ) -> Vec<(Duration, Duration)> {
        let mut out = Vec::new();
        let mut now = Duration::ZERO;
        let mut due = pacer.due(None).expect("paced");
        while now <= until {
            while pacer.next(now, due) == Next::Release {
                out.push((now, due));
                due = pacer.due(None).expect("paced");
            }
            now += ms(1);
            clock.advance(ms(1));
        }
        out
    }

    #[test]
    fn releases_each_request_at_its_due_time_never_early() {
        let clock = FakeRelativeClock::default();
        let releases = drive(&mut steady(100.0, 1, &clock), &clock, ms(999));
        assert_eq!(releases.len(), 100);
        for (i, (at, due)) in releases.iter().enumerate() {
            assert_eq!(*due, ms(10 * i as u64));
            assert_eq!(at, due, "released exactly at its due time when polled every ms");
        }
    }

    #[test]
    fn batches_leave_together_b_over_n_apart() {
        let clock = FakeRelativeClock::default();
        let releases = drive(&mut steady(100.0, 10, &clock), &clock, ms(450));
        assert_eq!(releases.len(), 50);
        for (i, (at, _)) in releases.iter().enumerate() {
            assert_eq!(*at, ms(100 * (i as u64 / 10)), "request {i}");
        }
    }

    #[test]
    fn a_late_poll_catches_up_but_governor_bounds_the_burst() {
        let clock = FakeRelativeClock::default();
        let mut pacer = steady(1000.0, 1, &clock);
        let due = pacer.due(None).unwrap();
        assert_eq!(pacer.next(Duration::ZERO, due), Next::Release);
        // A one-second stall (e.g. every in-flight slot busy): 999 requests are overdue.
        clock.advance(Duration::from_secs(1));
        let now = Duration::from_secs(1);
        let mut burst = 0;
        let mut due = pacer.due(None).unwrap();
        while pacer.next(now, due) == Next::Release {
            assert!(due <= now);
            burst += 1;
            due = pacer.due(None).unwrap();
        }
        // Burst is 100 ms of traffic (100 requests) at 1000/s: the backlog drains at a bounded pace.
        assert!((95..=101).contains(&burst), "burst {burst}");
        match pacer.next(now, due) {
            Next::WaitUntil(at) => assert!(at > now && at <= now + ms(2), "governor asks for ~1 interval, got {at:?}"),
            other => panic!("expected a wait, got {other:?}"),
        }
    }

    #[test]
    fn jittery_late_wakeups_do_not_turn_into_drift() {
        // Each poll lands 0.3 ms after the due time: the plan keeps the rate, governor does not push it later.
        let clock = FakeRelativeClock::default();
        let mut pacer = steady(1000.0, 1, &clock);
        let jitter = Duration::from_micros(300);
        clock.advance(jitter);
        for n in 0..5000u64 {
            let now = ms(n) + jitter;
            let due = pacer.due(None).unwrap();
            assert_eq!(due, ms(n));
            assert_eq!(pacer.next(now, due), Next::Release, "request {n} not released at {now:?}");
            clock.advance(ms(1));
        }
    }

    #[test]
    fn poisson_clusters_are_not_held_back_by_the_cap() {
        // At the mean rate a Poisson plan runs ahead of an even one for a while; the cap (twice
        // the peak, 200 ms of burst) must let every request leave at its own due time.
        let clock = FakeRelativeClock::default();
        let shape = Shape::Curve { curve: schedule::RateCurve::steady(200.0), arrivals: Arrivals::Poisson { seed: 3 } };
        let mut pacer = Pacer::with_clock(Schedule::new(shape, 1, None), None, clock.clone());
        let releases = drive(&mut pacer, &clock, Duration::from_secs(20));
        assert!(releases.len() > 3500, "{}", releases.len());
        let late = releases.iter().filter(|(at, due)| at.saturating_sub(*due) > ms(1)).count();
        assert_eq!(late, 0, "requests held back by governor");
    }

    #[test]
    fn logged_timing_has_no_cap_but_the_ceiling() {
        let clock = FakeRelativeClock::default();
        let logged = || Schedule::new(Shape::Logged { speed: 1.0, max_gap: None }, 1, None);
        let mut pacer = Pacer::with_clock(logged(), None, clock.clone());
        // 10,000 requests logged in the same instant all leave at once.
        for _ in 0..10_000 {
            let due = pacer.due(Some(LogClock { pass: 1, offset: Duration::ZERO })).unwrap();
            assert_eq!(pacer.next(Duration::ZERO, due), Next::Release);
        }
        // Unless there is a ceiling (the daemon's --max-rate): then 100 ms of it, and a wait.
        let mut capped = Pacer::with_clock(logged(), Some(1000.0), clock);
        let mut released = 0;
        loop {
            let due = capped.due(Some(LogClock { pass: 1, offset: Duration::ZERO })).unwrap();
            match capped.next(Duration::ZERO, due) {
                Next::Release => released += 1,
                Next::WaitUntil(at) => {
                    assert!(at > Duration::ZERO);
                    break;
                }
            }
        }
        assert_eq!(released, 100);
    }
}
