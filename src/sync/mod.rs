#![doc = include_str!("../../docs/06-sync-and-queues.md")]

// Built only from public pieces of the earlier stages — `Future`, tasks, the
// ready queue as `Future` exposes it — the way asyncio builds `locks.py` and
// `queues.py` on `loop.create_future()`. Nothing here knows how the loop
// works inside (curio's rule: features live outside the kernel).
//
// The shape of every primitive is CPython's: a deque of waiter futures, one
// per suspended task, created only when the task must wait; a state flag or
// counter; and the cleanup CPython does in `finally`/`except
// CancelledError`, done here by a drop guard that runs while a cancelled or
// timed-out task unwinds.

mod condition;
mod event;
mod lock;
mod queue;
mod semaphore;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use crate::future::Future;

pub use condition::Condition;
pub use event::Event;
pub use lock::{Lock, LockGuard};
pub use queue::{
    GenericQueue, LifoQueue, PriorityQueue, PutError, Queue, QueueShutDown, QueueStorage,
    TaskDoneError, TryGetError, TryPutError,
};
pub use semaphore::{BoundedSemaphore, Semaphore, SemaphorePermit, TooManyReleases};

/// A FIFO of waiter futures: CPython's `collections.deque()` of futures.
type Waiters = RefCell<VecDeque<Future<()>>>;

/// A waiter future kept for reuse by a primitive's next wait (see
/// `Future::recycle`): CPython creates a fresh future per wait, and so does
/// this, observably — but when the last one is no longer referenced, it
/// serves again instead of being freed and allocated anew.
#[derive(Default)]
struct SpareFuture(Cell<Option<Future<()>>>);

impl SpareFuture {
    /// A pending future no one else holds.
    fn take(&self) -> Future<()> {
        self.0.take().unwrap_or_default()
    }

    /// Keeps `fut` for the next `take` if nothing else refers to it.
    fn give_back(&self, fut: Future<()>) {
        if let Some(fut) = fut.recycle() {
            self.0.set(Some(fut));
        }
    }
}

/// Removes `fut` from `waiters` if it is still there (`deque.remove`,
/// ignoring `ValueError`). The waiter being removed is almost always at the
/// front, so the search is short.
fn remove_waiter(waiters: &Waiters, fut: &Future<()>) {
    let mut w = waiters.borrow_mut();
    if let Some(i) = w.iter().position(|x| x.ptr_eq(fut)) {
        w.remove(i);
    }
}

/// Runs its closure when dropped, unless disarmed: the `finally` /
/// `except CancelledError` half of a wait.
struct OnUnwind<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Drop for OnUnwind<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

/// Suspends the current task on `fut` (`await fut`), naming `what` in a
/// deadlock report. Returns `true` once `fut` has a result.
///
/// If the task is cancelled or a timeout fires while it waits, the wait
/// unwinds and `on_unwind` runs on the way out (CPython's `except
/// CancelledError:` clause). If `fut` itself ends up cancelled without the
/// task unwinding (nothing in this module does that), `on_unwind` runs too
/// and this returns `false`, so the caller can start over.
///
/// No `RefCell` borrow may be held across this call: `on_unwind` runs during
/// an unwind, where a second panic would abort.
#[inline(always)]
fn wait_on(fut: &Future<()>, what: &'static str, on_unwind: impl FnOnce()) -> bool {
    let mut guard = OnUnwind(Some(on_unwind));
    let woken = fut.wait_labeled(what).is_ok();
    if woken {
        guard.0 = None;
    }
    woken
}
