//! `Condition`: asyncio's `asyncio.Condition`, over a [`Lock`].

use std::fmt;
use std::rc::Rc;

use super::{OnUnwind, Waiters, remove_waiter, wait_on};
use crate::future::Future;
use crate::sync::{Lock, LockGuard};

struct Inner {
    lock: Lock,
    /// Tasks waiting to be notified, in arrival order.
    waiters: Waiters,
}

impl Inner {
    /// `_notify(n)`: wake up to `n` waiters not yet notified, in order.
    fn notify(&self, n: usize) {
        let mut woken = 0;
        for fut in self.waiters.borrow().iter() {
            if woken >= n {
                break;
            }
            if !fut.is_done() {
                woken += 1;
                let _ = fut.set_result(());
            }
        }
    }
}

/// A condition variable for tasks: `asyncio.Condition`.
///
/// A condition pairs a [`Lock`] with a line of waiting tasks. A task holding
/// the lock calls [`wait`](Condition::wait) with its guard: the lock is
/// released, the task sleeps until another task calls
/// [`notify`](Condition::notify) or [`notify_all`](Condition::notify_all),
/// then it takes the lock again (in line with the lock's other waiters) and
/// gets a fresh guard back. [`wait_for`](Condition::wait_for) loops until a
/// predicate holds.
///
/// A `Condition` is a cheap `Clone` handle; every clone is the same
/// condition.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use bucle::sync::Condition;
///
/// bucle::run(|| {
///     let cond = Condition::new();
///     let ready = Rc::new(Cell::new(false));
///     let consumer = {
///         let (cond, ready) = (cond.clone(), ready.clone());
///         bucle::spawn(move || {
///             let guard = cond.acquire();
///             let _guard = cond.wait_for(guard, || ready.get());
///             "saw it"
///         })
///     };
///     bucle::yield_now(); // let the consumer start waiting
///     {
///         let _guard = cond.acquire();
///         ready.set(true);
///         cond.notify_all();
///     }
///     assert_eq!(consumer.join().unwrap(), "saw it");
/// });
/// ```
#[derive(Clone)]
pub struct Condition {
    inner: Rc<Inner>,
}

impl Default for Condition {
    fn default() -> Self {
        Self::new()
    }
}

impl Condition {
    /// A condition with a new lock of its own: `Condition()`.
    pub fn new() -> Self {
        Self::with_lock(Lock::new())
    }

    /// A condition over an existing lock (shared with other code or other
    /// conditions): `Condition(lock)`.
    pub fn with_lock(lock: Lock) -> Self {
        Condition {
            inner: Rc::new(Inner {
                lock,
                waiters: Waiters::default(),
            }),
        }
    }

    /// The underlying lock.
    pub fn lock(&self) -> &Lock {
        &self.inner.lock
    }

    /// Acquires the underlying lock: `async with cond`. See
    /// [`Lock::acquire`].
    ///
    /// # Panics
    ///
    /// As [`Lock::acquire`].
    pub fn acquire(&self) -> LockGuard {
        self.inner.lock.acquire()
    }

    /// Acquires the underlying lock if that needs no waiting; see
    /// [`Lock::try_acquire`].
    pub fn try_acquire(&self) -> Option<LockGuard> {
        self.inner.lock.try_acquire()
    }

    /// Whether the underlying lock is held.
    pub fn locked(&self) -> bool {
        self.inner.lock.locked()
    }

    /// Releases the lock held by `guard`, waits until notified, then
    /// acquires the lock again and returns the new guard: `await
    /// cond.wait()`.
    ///
    /// As with every condition variable, the caller should check its
    /// condition again after waking (or use
    /// [`wait_for`](Condition::wait_for)).
    ///
    /// If the task is cancelled or times out, it unwinds without holding
    /// the lock — the guard it handed in was consumed, so nothing is left to
    /// release. (CPython instead re-acquires the lock before raising, so that
    /// its `async with` block can release it; ownership makes that step
    /// unnecessary here.) If the task had already been notified, the
    /// notification is passed on to the next waiter, as CPython 3.13 does.
    ///
    /// # Panics
    ///
    /// If `guard` holds a different lock than this condition's (Python's
    /// `RuntimeError`), or outside a task of a running loop. When the task
    /// is cancelled or a timeout fires while it waits, the call unwinds
    /// instead of returning.
    #[inline]
    pub fn wait(&self, guard: LockGuard) -> LockGuard {
        let inner = &*self.inner;
        assert!(
            guard.lock().ptr_eq(&inner.lock),
            "Condition::wait: the guard holds a different lock than this condition's"
        );
        let fut = Future::new();
        drop(guard);
        inner.waiters.borrow_mut().push_back(fut.clone());
        let notified = wait_on(&fut, "Condition", || {
            remove_waiter(&inner.waiters, &fut);
            if fut.is_done() && !fut.is_cancelled() {
                // Notified, but we will not act on it: wake someone else.
                inner.notify(1);
            }
        });
        if notified {
            remove_waiter(&inner.waiters, &fut);
        }
        // Take the lock back. If that wait is cancelled, the notification
        // we consumed goes to another waiter.
        let mut pass_on = OnUnwind(Some(|| inner.notify(1)));
        let guard = inner.lock.acquire();
        pass_on.0 = None;
        guard
    }

    /// Waits until `predicate` returns `true`: `await cond.wait_for(pred)`.
    /// The predicate is checked first (with the lock held), and again each
    /// time the task is woken. Returns the guard, with the lock held and the
    /// predicate true.
    ///
    /// # Panics
    ///
    /// As [`Condition::wait`].
    pub fn wait_for(&self, guard: LockGuard, mut predicate: impl FnMut() -> bool) -> LockGuard {
        let mut guard = guard;
        while !predicate() {
            guard = self.wait(guard);
        }
        guard
    }

    /// Wakes up to `n` waiting tasks, in the order they started waiting:
    /// `notify(n)`. A woken task returns from `wait` only once it gets the
    /// lock back, so the caller should release it soon.
    ///
    /// # Panics
    ///
    /// If the lock is not held (Python's `RuntimeError('cannot notify on
    /// un-acquired lock')`).
    pub fn notify(&self, n: usize) {
        assert!(
            self.inner.lock.locked(),
            "Condition::notify: cannot notify on un-acquired lock"
        );
        self.inner.notify(n);
    }

    /// Wakes every waiting task: `notify_all()`.
    ///
    /// # Panics
    ///
    /// As [`Condition::notify`].
    pub fn notify_all(&self) {
        let n = self.inner.waiters.borrow().len();
        self.notify(n);
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("locked", &self.inner.lock.locked())
            .field("waiters", &self.inner.waiters.borrow().len())
            .finish()
    }
}
