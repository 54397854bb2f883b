//! Pacing: when each request leaves.
//!
//! Two pieces, on purpose:
//! - [`Schedule`] is the plan, a pure function of the request number: request `n` is due at
//!   `T0 + floor(n / B) * B / N`. `scheduled_at` in the CSV comes from here, never from whatever a
//!   limiter happened to grant, so lag is measured against the ideal plan.
//! - governor is the cap: every release also needs governor's permission, so no bug, clock jump or
//!   catch-up after a stall can ever exceed the rate by more than governor's burst. The burst is
//!   two batches or 100 ms of traffic, whichever is more: large enough that normal timer jitter
//!   never makes governor push the plan later (with burst 1, GCRA turns every late wake-up into
//!   permanent drift), small enough that catching up after a stall is bounded.
//!
//! The loop that drives this ([`run_pacer`]) is a task on the senders' runtime, so a released
//! request reaches an idle sender without crossing threads. It sleeps on a kernel timer (timerfd)
//! that the runtime polls with its sockets, not on tokio's millisecond wheel: sends stay within
//! tens of microseconds of the plan, and a wake-up costs no thread switch. (A pacer on its own
//! thread, sleeping with 1 µs timer slack, paced as well but cost a fifth of the loader's CPU at
//! 5,000 req/s in context switches and cross-thread wake-ups; bench/RESULTS.md.)
//!
//! [`Pacer`] is generic over governor's clock so it can be tested with a fake clock.

mod timer;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::{Clock, MonotonicClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio_util::sync::CancellationToken;

use crate::control::{RunControl, StopReason};
use crate::pace::timer::PreciseTimer;
use crate::plan::read_ahead::footprint;
use crate::plan::{LogPosition, ReplayRequest};
use crate::send::outcome::Outcome;
use crate::send::{Job, OutcomeBuffer};

/// The ideal send plan for a fixed rate.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    rate: f64,
    batch: u32,
}

impl Schedule {
    pub fn new(rate_per_second: f64, batch: u32) -> Schedule {
        assert!(rate_per_second > 0.0 && batch > 0, "validated by config");
        Schedule { rate: rate_per_second, batch }
    }

    /// When request `n` (0-based) is due, as an offset from the start: the start of its batch's slot.
    pub fn slot(&self, n: u64) -> Duration {
        let batch_index = n / u64::from(self.batch);
        let nanos = (batch_index as f64 * f64::from(self.batch) * 1e9 / self.rate).round();
        Duration::from_nanos(nanos as u64)
    }

    pub fn batch(&self) -> u32 {
        self.batch
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }
}

/// What the pacer says to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Release `count` requests now, numbered from `first`; their plan time is `slot` after the start.
    Release { first: u64, count: u32, slot: Duration },
    /// Nothing is due before this offset from the start.
    WaitUntil(Duration),
}

type Limiter<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// Decides releases from the plan and governor's cap. Owns no clock of its own for the plan: the
/// caller says how much time has elapsed, so tests drive it without sleeping.
pub struct Pacer<C: Clock + Clone = MonotonicClock> {
    schedule: Option<Schedule>,
    limiter: Option<(Limiter<C>, C)>,
    released: u64,
}

impl Pacer<MonotonicClock> {
    /// `None` paces nothing: every request is released as soon as there is room (`--rate max`).
    pub fn new(schedule: Option<Schedule>) -> Self {
        Pacer::with_clock(schedule, MonotonicClock)
    }
}

impl<C: Clock + Clone> Pacer<C> {
    pub fn with_clock(schedule: Option<Schedule>, clock: C) -> Self {
        let limiter = schedule.map(|s| {
            let period = Duration::from_secs_f64(1.0 / s.rate).max(Duration::from_nanos(1));
            let burst = (2 * u64::from(s.batch)).max((s.rate / 10.0).ceil() as u64).min(u64::from(u32::MAX)) as u32;
            let quota = Quota::with_period(period)
                .expect("period is positive")
                .allow_burst(NonZeroU32::new(burst).expect("burst is at least 2"));
            (RateLimiter::direct_with_clock(quota, clock.clone()), clock)
        });
        Pacer { schedule, limiter, released: 0 }
    }

    /// How many requests have been released so far.
    pub fn released(&self) -> u64 {
        self.released
    }

    /// The plan time of the next request, if paced.
    pub fn next_slot(&self) -> Option<Duration> {
        self.schedule.map(|s| s.slot(self.released))
    }

    pub fn next(&mut self, elapsed: Duration) -> Next {
        let Some(schedule) = self.schedule else {
            let first = self.released;
            self.released += 1;
            return Next::Release { first, count: 1, slot: elapsed };
        };
        let slot = schedule.slot(self.released);
        if slot > elapsed {
            return Next::WaitUntil(slot);
        }
        // The rest of the current batch (all of it, unless a batch was cut short by governor).
        let batch = u64::from(schedule.batch);
        let count = (batch - self.released % batch) as u32;
        let (limiter, clock) = self.limiter.as_ref().expect("a paced run has a limiter");
        let cells = NonZeroU32::new(count).expect("count >= 1");
        match limiter.check_n(cells) {
            Ok(Ok(())) => {
                let first = self.released;
                self.released += u64::from(count);
                Next::Release { first, count, slot }
            }
            Ok(Err(not_until)) => Next::WaitUntil(elapsed + not_until.wait_time_from(clock.now())),
            // Cannot happen (burst >= 2 batches); releasing one keeps the run going if it ever did.
            Err(_) => {
                let first = self.released;
                self.released += 1;
                Next::Release { first, count: 1, slot }
            }
        }
    }
}

/// The pacer wakes at most this often. At rates above 1/QUANTUM (2,000/s) the requests
/// due within one quantum leave together, each at most this late; in exchange the pacer and the
/// sender runtime wake a couple of thousand times a second instead of once per request. Measured
/// at 5,000/s: 500 µs cut the loader's CPU by about a quarter against 200 µs, with lag p99 still
/// under 1 ms (bench/RESULTS.md).
const WAKE_QUANTUM: Duration = Duration::from_micros(500);

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

impl Drop for Incoming {
    /// The pacer has ended: a reader waiting for budget must not wait for ever.
    fn drop(&mut self) {
        self.control.read_ahead.close();
    }
}

/// The pacer: takes requests from the queue in plan order, waits for each one's slot, and hands
/// it to the senders. When all senders are busy the hand-off waits, the next slots pass, and the
/// lateness shows up as lag: requests are never silently dropped or re-timed.
pub(crate) async fn run_pacer(
    mut pacer: Pacer,
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
    let report = |pacer: &Pacer, t0: Option<Instant>, reason: StopReason, replayed: LogPosition| {
        let span = match (reason, deadline) {
            (StopReason::Deadline, Some(d)) => d,
            _ => pacer.next_slot().unwrap_or_else(|| t0.map(|t| t.elapsed()).unwrap_or_default()),
        };
        PacerReport { released: pacer.released(), t0, span, reason, replayed }
    };
    let stopped = |control: &RunControl| match control.stop_reason() {
        Some(reason) => reason,
        None if control.is_stopping() => StopReason::Cancelled,
        None => StopReason::EndOfLog,
    };

    // T0 is when the first request is ready, so start-up (opening files, sniffing) is not lag.
    let Some(first) = incoming.next().await else {
        return report(&pacer, None, stopped(&control), replayed);
    };
    let t0 = Instant::now();
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
            return report(&pacer, Some(t0), stopped(&control), replayed);
        }
        let elapsed = t0.elapsed();
        if let Some(d) = deadline
            && (elapsed >= d || pacer.next_slot().is_some_and(|slot| slot >= d))
        {
            // Past the end: what was released but not yet taken by a sender is not sent. (When
            // only the next slot is past it, the released requests may still leave in time.)
            if elapsed >= d {
                control.stop_because(StopReason::Deadline);
            }
            return report(&pacer, Some(t0), StopReason::Deadline, replayed);
        }
        match pacer.next(elapsed) {
            Next::WaitUntil(at) => {
                let at = at.max(last_release + WAKE_QUANTUM);
                let wake = deadline.map_or(at, |d| at.min(d));
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => return report(&pacer, Some(t0), stopped(&control), replayed),
                    _ = timer.sleep_until(t0 + wake) => {}
                }
            }
            Next::Release { first, count, slot } => {
                last_release = elapsed;
                for seq_in_plan in first..first + u64::from(count) {
                    let req = match pending.take() {
                        Some(req) => Some(req),
                        None => incoming.next().await,
                    };
                    // At --rate max the plan time is the moment it was released.
                    let scheduled = if pacer.schedule.is_none() { Instant::now() } else { t0 + slot };
                    // The hand-off fails only when a stop has closed it. A request whose slot came
                    // but that could not be handed over is part of the plan: it gets its row.
                    if let Some(req) = &req {
                        replayed = req.position;
                    }
                    let handed = match req {
                        Some(req) => match work.send(Job { req, scheduled }).await {
                            Ok(()) => true,
                            Err(async_channel::SendError(job)) => {
                                if pacer.schedule.is_some() {
                                    outcomes.push(Outcome::not_sent(job.req, job.scheduled));
                                }
                                false
                            }
                        },
                        None => false,
                    };
                    if !handed {
                        let reason = stopped(&control);
                        // Only the requests actually handed over count as released.
                        let mut r = report(&pacer, Some(t0), reason, replayed);
                        r.released = seq_in_plan;
                        if reason == StopReason::EndOfLog && pacer.schedule.is_some() {
                            r.span = pacer.schedule.map(|s| s.slot(seq_in_plan)).unwrap_or(r.span).max(slot);
                        }
                        return r;
                    }
                }
            }
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

    /// Drives a pacer on a fake clock in 1 ms steps, returning (release time, first, count) tuples.
    fn drive(
        pacer: &mut Pacer<FakeRelativeClock>,
        clock: &FakeRelativeClock,
        until: Duration,
    ) -> Vec<(Duration, u64, u32, Duration)> {
        let mut out = Vec::new();
        let mut now = Duration::ZERO;
        while now <= until {
            while let Next::Release { first, count, slot } = pacer.next(now) {
                out.push((now, first, count, slot));
            }
            now += ms(1);
            clock.advance(ms(1));
        }
        out
    }

    #[test]
    fn schedule_is_the_ideal_plan() {
        let s = Schedule::new(200.0, 1);
        assert_eq!(s.slot(0), Duration::ZERO);
        assert_eq!(s.slot(1), ms(5));
        assert_eq!(s.slot(600), Duration::from_secs(3));
        let b = Schedule::new(100.0, 10);
        assert_eq!(b.slot(9), Duration::ZERO);
        assert_eq!(b.slot(10), ms(100));
        assert_eq!(b.slot(25), ms(200));
        // Fractional intervals do not accumulate rounding error over a long run.
        let odd = Schedule::new(3.0, 1);
        assert_eq!(odd.slot(3 * 3600 * 6), Duration::from_secs(6 * 3600));
    }

    #[test]
    fn releases_each_request_at_its_slot_never_early() {
        let clock = FakeRelativeClock::default();
        let mut pacer = Pacer::with_clock(Some(Schedule::new(100.0, 1)), clock.clone());
        let releases = drive(&mut pacer, &clock, ms(999));
        assert_eq!(releases.len(), 100);
        for (i, (at, first, count, slot)) in releases.iter().enumerate() {
            assert_eq!((*first, *count), (i as u64, 1));
            assert_eq!(*slot, ms(10 * i as u64));
            assert_eq!(at, slot, "released exactly at its slot when polled every ms");
        }
    }

    #[test]
    fn batches_leave_together_b_over_n_apart() {
        let clock = FakeRelativeClock::default();
        let mut pacer = Pacer::with_clock(Some(Schedule::new(100.0, 10)), clock.clone());
        let releases = drive(&mut pacer, &clock, ms(450));
        let got: Vec<_> = releases.iter().map(|(at, first, count, _)| (*at, *first, *count)).collect();
        assert_eq!(
            got,
            vec![(ms(0), 0, 10), (ms(100), 10, 10), (ms(200), 20, 10), (ms(300), 30, 10), (ms(400), 40, 10)]
        );
    }

    #[test]
    fn a_late_poll_catches_up_but_governor_bounds_the_burst() {
        let clock = FakeRelativeClock::default();
        let mut pacer = Pacer::with_clock(Some(Schedule::new(1000.0, 1)), clock.clone());
        assert!(matches!(pacer.next(Duration::ZERO), Next::Release { first: 0, .. }));
        // A one-second stall (e.g. every in-flight slot busy): 999 requests are overdue.
        clock.advance(Duration::from_secs(1));
        let now = Duration::from_secs(1);
        let mut burst = 0;
        while let Next::Release { slot, .. } = pacer.next(now) {
            assert!(slot <= now);
            burst += 1;
        }
        // Burst is 100 ms of traffic (100 requests) at 1000/s: the backlog drains at a bounded pace.
        assert!((95..=101).contains(&burst), "burst {burst}");
        match pacer.next(now) {
            Next::WaitUntil(at) => assert!(at > now && at <= now + ms(2), "governor asks for ~1 interval, got {at:?}"),
            other => panic!("expected a wait, got {other:?}"),
        }
    }

    #[test]
    fn jittery_late_wakeups_do_not_turn_into_drift() {
        // Each poll lands 0.3 ms after the slot: the plan keeps the rate, governor does not push it later.
        let clock = FakeRelativeClock::default();
        let mut pacer = Pacer::with_clock(Some(Schedule::new(1000.0, 1)), clock.clone());
        let jitter = Duration::from_micros(300);
        clock.advance(jitter);
        for n in 0..5000u64 {
            let now = ms(n) + jitter;
            match pacer.next(now) {
                Next::Release { first, slot, .. } => {
                    assert_eq!(first, n);
                    assert_eq!(slot, ms(n));
                }
                other => panic!("request {n} not released at {now:?}: {other:?}"),
            }
            clock.advance(ms(1));
        }
    }

    #[test]
    fn unpaced_releases_immediately() {
        let mut pacer = Pacer::new(None);
        for i in 0..10 {
            assert_eq!(pacer.next(ms(i)), Next::Release { first: i, count: 1, slot: ms(i) });
        }
        assert_eq!(pacer.next_slot(), None);
    }
}
