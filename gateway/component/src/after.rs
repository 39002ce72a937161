//! Work a request does after its answer is out, so the person waits for the
//! response and not for bookkeeping: the per-rule execution logs are two KV
//! writes per rule that ran, each its own SQLite commit under Spin's default
//! store (49-66 ms for a 2-rule chain, bench/results/2026-12-06-rule-deployments.md).
//!
//! A component instance serves one request on one thread, so the queue is a
//! thread-local; [`crate::events::respond`] runs it once the answer is sent.
//! Work still queued when a request ends another way is dropped with the
//! instance: only best-effort work may be deferred.

use std::cell::RefCell;

type Job = Box<dyn FnOnce()>;

thread_local! {
    static QUEUE: RefCell<Vec<Job>> = const { RefCell::new(Vec::new()) };
}

/// Runs `job` after the answer (best effort).
#[cfg_attr(not(feature = "rules"), allow(dead_code))] // only rules defer work so far
pub fn defer(job: impl FnOnce() + 'static) {
    QUEUE.with(|q| q.borrow_mut().push(Box::new(job)));
}

/// Runs what was deferred, in order.
pub fn run() {
    let jobs = QUEUE.with(|q| std::mem::take(&mut *q.borrow_mut()));
    for job in jobs {
        job();
    }
}
