//! The session gate (`--sessions`): a client session has at most one request in flight. A sender
//! that takes a job whose session is busy parks it on that session and takes another; when the
//! busy request's outcome is recorded, the sender that recorded it sends the session's next
//! parked job. So a session's requests leave in their logged order, each when the answer before
//! it came back (or failed), or at its own planned time if that is later: the pacer only
//! releases a job when its time has come. The wait behind the previous request shows as lag.
//!
//! Bounded: at most 64 jobs per sender (65,536 in all) wait here. When they all do, senders take no
//! new jobs until one leaves, so the pacer's hand-off fills and the delay shows as lag, as when
//! every sender is busy: nothing is dropped.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Job;

/// Parked jobs allowed per sender, and at most in all (a parked job holds its request, body
/// included).
const PARKED_PER_SENDER: usize = 64;
const MAX_PARKED: usize = 65_536;

pub(crate) struct SessionGate {
    /// Taking a job and admitting it happen under this lock, so jobs of one session are admitted
    /// in the order the pacer released them, whichever sender (or runtime thread) takes them.
    taking: tokio::sync::Mutex<()>,
    /// One permit per job that may be parked.
    room: Arc<Semaphore>,
    /// Sessions with a request in flight → their parked jobs, in order.
    busy: Mutex<HashMap<u64, VecDeque<Parked>>>,
}

struct Parked {
    job: Job,
    /// Given back when the job leaves the gate.
    _room: OwnedSemaphorePermit,
}

impl SessionGate {
    pub(crate) fn new(senders: usize) -> SessionGate {
        let max_parked = (senders * PARKED_PER_SENDER).clamp(PARKED_PER_SENDER, MAX_PARKED);
        SessionGate {
            taking: tokio::sync::Mutex::new(()),
            room: Arc::new(Semaphore::new(max_parked)),
            busy: Mutex::new(HashMap::new()),
        }
    }

    /// The next job this sender may send now: its session (if any) has nothing else in flight.
    /// Jobs whose session is busy are parked on the way. `None` when the hand-off is closed.
    pub(crate) async fn take(&self, jobs: &async_channel::Receiver<Job>) -> Option<Job> {
        loop {
            let room = self.room.clone().acquire_owned().await.expect("the semaphore is never closed");
            let _turn = self.taking.lock().await;
            let job = jobs.recv().await.ok()?;
            if let Some(job) = self.admit(job, room) {
                return Some(job);
            }
        }
    }

    fn admit(&self, job: Job, room: OwnedSemaphorePermit) -> Option<Job> {
        let Some(session) = job.req.session else {
            return Some(job);
        };
        match self.busy.lock().expect("not poisoned").entry(session.id) {
            Entry::Occupied(mut parked) => {
                parked.get_mut().push_back(Parked { job, _room: room });
                None
            }
            Entry::Vacant(idle) => {
                idle.insert(VecDeque::new());
                Some(job)
            }
        }
    }

    /// The outcome of `session`'s request in flight is recorded: its next parked job, for the
    /// caller to send now, or `None` and the session has nothing in flight.
    pub(crate) fn finished(&self, session: u64) -> Option<Job> {
        let mut busy = self.busy.lock().expect("not poisoned");
        let parked = busy.get_mut(&session)?;
        match parked.pop_front() {
            Some(next) => Some(next.job),
            None => {
                busy.remove(&session);
                None
            }
        }
    }

    /// Jobs still parked, taken out (in no particular order) for their not-sent rows. Every
    /// sender sends or records its session's parked jobs before it ends, so this is empty unless
    /// a sender ended abnormally.
    pub(crate) fn drain(&self) -> Vec<Job> {
        let mut busy = self.busy.lock().expect("not poisoned");
        busy.drain().flat_map(|(_, parked)| parked.into_iter().map(|p| p.job)).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::plan::ReplayRequest;
    use crate::results::SessionTag;

    fn job(seq: u64, session: Option<(u64, u64)>) -> Job {
        let req = ReplayRequest {
            seq,
            log_line: seq + 1,
            session: session.map(|(id, seq)| SessionTag { id, seq }),
            ..ReplayRequest::for_test("/")
        };
        Job { req, scheduled: Instant::now() }
    }

    #[tokio::test]
    async fn a_busy_sessions_jobs_wait_in_order_while_others_pass() {
        // One sender: room for PARKED_PER_SENDER parked jobs.
        let gate = SessionGate::new(1);
        let (tx, rx) = async_channel::bounded(16);
        for j in [job(0, Some((1, 0))), job(1, Some((1, 1))), job(2, Some((2, 0))), job(3, None), job(4, Some((1, 2)))]
        {
            tx.send(j).await.unwrap();
        }
        drop(tx);
        let mut taken = vec![];
        while let Some(j) = gate.take(&rx).await {
            taken.push(j.req.seq);
        }
        assert_eq!(taken, [0, 2, 3], "session 1's later requests wait for its first");
        assert_eq!(gate.room.available_permits(), PARKED_PER_SENDER - 2);
        assert_eq!(gate.finished(1).map(|j| j.req.seq), Some(1));
        assert_eq!(gate.finished(1).map(|j| j.req.seq), Some(4));
        assert!(gate.finished(1).is_none(), "nothing parked: the session is idle");
        assert!(gate.finished(2).is_none());
        assert_eq!(gate.room.available_permits(), PARKED_PER_SENDER);
        assert!(gate.drain().is_empty());
    }

    #[tokio::test]
    async fn when_the_parking_is_full_no_new_job_is_taken_until_one_leaves() {
        let gate = Arc::new(SessionGate::new(1));
        let (tx, rx) = async_channel::bounded(1024);
        tx.send(job(0, Some((1, 0)))).await.unwrap();
        for n in 1..=PARKED_PER_SENDER as u64 {
            tx.send(job(n, Some((1, n)))).await.unwrap();
        }
        tx.send(job(9999, None)).await.unwrap();
        assert_eq!(gate.take(&rx).await.unwrap().req.seq, 0);
        let waiting = tokio::spawn({
            let (gate, rx) = (gate.clone(), rx.clone());
            async move { gate.take(&rx).await.map(|j| j.req.seq) }
        });
        // The waiting sender parks all the others, then has no room for the next job.
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(!waiting.is_finished(), "full: the sender waits rather than drop or grow");
        assert_eq!(rx.len(), 1, "the job after the full parking is not taken");
        assert_eq!(gate.finished(1).unwrap().req.seq, 1);
        assert_eq!(waiting.await.unwrap(), Some(9999));
        assert_eq!(gate.drain().len(), PARKED_PER_SENDER - 1, "what never left is handed back for its row");
    }
}
