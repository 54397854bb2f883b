//! The byte budget of the read-ahead between the reader thread and the pacer.
//!
//! The queue between them is bounded in requests (`--queue-capacity`), but requests are not all
//! alike: one log line may carry a long URL, many headers or a large logged body, and a queue of
//! 8,192 requests of a megabyte each is 8 GB. This budget bounds the bytes the queued requests
//! hold, whatever their number: the reader takes a request's size before queueing it and waits
//! while the budget is spent; the pacer gives the size back as it takes each request off the
//! queue. A request is always let through when nothing is held, so one larger than the whole
//! budget still moves (alone).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

use crate::plan::ReplayRequest;

/// Bytes of requests held between the reader and the pacer. Typical access-log requests are a
/// few hundred bytes, so the default `--queue-capacity` (8,192) stays well inside it; only long
/// lines reach it.
pub const READ_AHEAD_BYTES: u64 = 16 * 1024 * 1024;

/// What a queued request holds in memory, near enough: the struct, its URL, headers and body.
/// The same request always weighs the same, so what the reader takes the pacer gives back.
pub fn footprint(req: &ReplayRequest) -> u64 {
    let header = std::mem::size_of::<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>();
    let headers: usize = req.headers.iter().map(|(name, value)| header + name.as_str().len() + value.len()).sum();
    let body = req.body.as_ref().map_or(0, |b| b.len());
    (std::mem::size_of::<ReplayRequest>() + req.url.as_str().len() + headers + body) as u64
}

/// One reader takes, one consumer gives back. The hot path is two atomic operations per
/// request; the lock is taken only while the reader waits.
pub struct ReadAheadBudget {
    limit: u64,
    held: AtomicU64,
    /// Set while the reader waits, so that a give-back knows to wake it.
    waiting: AtomicBool,
    /// The consumer has gone: nothing will be given back any more.
    closed: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

impl ReadAheadBudget {
    pub fn new(limit: u64) -> ReadAheadBudget {
        ReadAheadBudget {
            limit,
            held: AtomicU64::new(0),
            waiting: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        }
    }

    /// Bytes taken and not yet given back.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::SeqCst)
    }

    /// Takes `bytes` if they fit (or nothing is held). Only the reader takes, so the check and the
    /// add need not be one step: a give-back in between only leaves more room.
    pub fn try_take(&self, bytes: u64) -> bool {
        let held = self.held();
        if held == 0 || held.saturating_add(bytes) <= self.limit {
            self.held.fetch_add(bytes, Ordering::SeqCst);
            true
        } else {
            false
        }
    }

    /// Waits until `bytes` fit and takes them; false if the consumer has gone. The caller must
    /// have handed over everything it took before, or it may wait for its own bytes.
    pub fn take_blocking(&self, bytes: u64) -> bool {
        loop {
            if self.closed.load(Ordering::SeqCst) {
                return false;
            }
            if self.try_take(bytes) {
                return true;
            }
            let guard = self.lock.lock().expect("not poisoned");
            self.waiting.store(true, Ordering::SeqCst);
            // Checked again under the lock: a give-back after the check above either shows here,
            // or sees `waiting` and wakes us (it takes the lock, which `wait` releases).
            if !self.closed.load(Ordering::SeqCst) && !self.fits(bytes) {
                drop(self.wake.wait(guard).expect("not poisoned"));
            }
            self.waiting.store(false, Ordering::SeqCst);
        }
    }

    /// The consumer took a request of `bytes` off the queue.
    pub fn give_back(&self, bytes: u64) {
        self.held.fetch_sub(bytes, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) {
            let _guard = self.lock.lock().expect("not poisoned");
            self.wake.notify_one();
        }
    }

    /// The consumer has gone: a waiting reader returns at once, and every later take fails.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let _guard = self.lock.lock().expect("not poisoned");
        self.wake.notify_all();
    }

    fn fits(&self, bytes: u64) -> bool {
        let held = self.held();
        held == 0 || held.saturating_add(bytes) <= self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn takes_within_the_limit_and_always_lets_one_through() {
        let budget = ReadAheadBudget::new(100);
        assert!(budget.try_take(60));
        assert!(budget.try_take(40));
        assert!(!budget.try_take(1), "the budget is spent");
        budget.give_back(100);
        assert!(budget.try_take(500), "a request larger than the budget moves when nothing is held");
        assert!(!budget.try_take(1));
        assert_eq!(budget.held(), 500);
    }

    #[test]
    fn a_waiting_reader_resumes_when_the_consumer_gives_back() {
        let budget = Arc::new(ReadAheadBudget::new(100));
        assert!(budget.try_take(100));
        let reader = std::thread::spawn({
            let budget = budget.clone();
            move || budget.take_blocking(50)
        });
        // Whether the reader is already waiting or not, the give-back must let it through.
        std::thread::sleep(Duration::from_millis(20));
        assert!(!reader.is_finished(), "the reader waits while the budget is spent");
        budget.give_back(60);
        assert!(reader.join().unwrap());
        assert_eq!(budget.held(), 90);
    }

    #[test]
    fn closing_releases_a_waiting_reader_with_a_refusal() {
        let budget = Arc::new(ReadAheadBudget::new(10));
        assert!(budget.try_take(10));
        let reader = std::thread::spawn({
            let budget = budget.clone();
            move || budget.take_blocking(5)
        });
        std::thread::sleep(Duration::from_millis(20));
        budget.close();
        assert!(!reader.join().unwrap());
        assert!(!budget.take_blocking(1), "nothing is taken after the consumer has gone");
    }

    #[test]
    fn many_hand_offs_never_exceed_the_limit_or_lose_a_wake_up() {
        let budget = Arc::new(ReadAheadBudget::new(1000));
        let (tx, rx) = crossbeam_channel::unbounded::<u64>();
        let consumer = std::thread::spawn({
            let budget = budget.clone();
            move || {
                let mut n = 0;
                while let Ok(size) = rx.recv() {
                    assert!(budget.held() <= 1000);
                    budget.give_back(size);
                    n += 1;
                }
                n
            }
        });
        for i in 0..20_000u64 {
            let size = 1 + i % 300;
            assert!(budget.take_blocking(size));
            tx.send(size).unwrap();
        }
        drop(tx);
        assert_eq!(consumer.join().unwrap(), 20_000);
        assert_eq!(budget.held(), 0);
    }
}
