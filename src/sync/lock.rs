//! `Lock`: asyncio's `asyncio.Lock`, with an RAII guard for `async with`.

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;

use super::{Waiters, remove_waiter, wait_on};
use crate::future::Future;

struct Inner {
    locked: Cell<bool>,
    /// Tasks waiting to acquire, in arrival order. A woken waiter stays
    /// here (its future done) until it runs and takes the lock, so nobody
    /// can jump ahead of it.
    waiters: Waiters,
}

impl Inner {
    /// CPython's fast-path test: free, and nobody (alive) in line.
    fn can_take(&self) -> bool {
        !self.locked.get() && self.waiters.borrow().iter().all(Future::is_cancelled)
    }

    /// `_wake_up_first`: wake the head waiter unless it is already woken
    /// (or cancelled: then it will pass the turn on when it unwinds).
    fn wake_up_first(&self) {
        let first = self.waiters.borrow().front().cloned();
        if let Some(fut) = first {
            if !fut.is_done() {
                let _ = fut.set_result(());
            }
        }
    }

    fn release(&self) {
        debug_assert!(self.locked.get(), "released a Lock that was not locked");
        self.locked.set(false);
        self.wake_up_first();
    }
}

/// A mutual-exclusion lock for tasks: `asyncio.Lock`.
///
/// [`acquire`](Lock::acquire) returns a [`LockGuard`]; the lock is held
/// until the guard is dropped — the `async with lock:` block. Waiters are
/// served strictly in arrival order: once a task waits, a newcomer cannot
/// take the lock ahead of it, even in the instant between a release and the
/// woken waiter running.
///
/// A `Lock` is a cheap `Clone` handle; every clone is the same lock. It is
/// not reentrant and not owned by a task: any task may drop the guard.
///
/// ```
/// use std::time::Duration;
/// use bucle::sync::Lock;
///
/// bucle::run(|| {
///     let lock = Lock::new();
///     let workers: Vec<_> = ["A", "B"]
///         .into_iter()
///         .map(|name| {
///             let lock = lock.clone();
///             bucle::spawn(move || {
///                 let _guard = lock.acquire();
///                 println!("{name} has the lock");
///                 bucle::sleep(Duration::from_millis(1));
///                 name
///             })
///         })
///         .collect();
///     assert_eq!(bucle::gather(workers).unwrap(), ["A", "B"]);
///     assert!(!lock.locked());
/// });
/// ```
#[derive(Clone)]
pub struct Lock {
    inner: Rc<Inner>,
}

impl Default for Lock {
    fn default() -> Self {
        Self::new()
    }
}

impl Lock {
    /// A new, unlocked lock.
    pub fn new() -> Self {
        Lock {
            inner: Rc::new(Inner {
                locked: Cell::new(false),
                waiters: Waiters::default(),
            }),
        }
    }

    /// Acquires the lock, waiting in line if it is held: `async with lock`
    /// (or `await lock.acquire()`). The lock is released when the returned
    /// guard is dropped.
    ///
    /// If the lock is free and nobody is waiting, this returns at once
    /// without suspending or allocating. Otherwise the task waits for its
    /// turn; waiters are served in arrival order.
    ///
    /// A task cancelled (or timed out) while waiting leaves the line without
    /// a trace; if it had already been handed the lock, the lock passes to
    /// the next waiter. A task cancelled while it holds the guard releases
    /// the lock as its stack unwinds.
    ///
    /// # Panics
    ///
    /// If the lock is held and this is called outside a task of a running
    /// loop (only a task can wait). When the task is cancelled or a timeout
    /// fires while it waits, the call unwinds instead of returning.
    #[inline]
    pub fn acquire(&self) -> LockGuard {
        let inner = &*self.inner;
        loop {
            if inner.can_take() {
                inner.locked.set(true);
                return LockGuard { lock: self.clone() };
            }
            let fut = Future::new();
            inner.waiters.borrow_mut().push_back(fut.clone());
            let woken = wait_on(&fut, "Lock", || {
                remove_waiter(&inner.waiters, &fut);
                // If the lock is free, make sure the head of the line runs
                // (it may have been us, woken and then cancelled).
                if !inner.locked.get() {
                    inner.wake_up_first();
                }
            });
            if woken {
                remove_waiter(&inner.waiters, &fut);
                debug_assert!(!inner.locked.get(), "a woken Lock waiter found it locked");
                inner.locked.set(true);
                return LockGuard { lock: self.clone() };
            }
        }
    }

    /// Acquires the lock only if that needs no waiting: it is free and no
    /// task is waiting for it. Never suspends.
    pub fn try_acquire(&self) -> Option<LockGuard> {
        if self.inner.can_take() {
            self.inner.locked.set(true);
            Some(LockGuard { lock: self.clone() })
        } else {
            None
        }
    }

    /// Whether the lock is held: `lock.locked()`.
    pub fn locked(&self) -> bool {
        self.inner.locked.get()
    }

    /// Whether `self` and `other` are handles to the same lock.
    pub fn ptr_eq(&self, other: &Lock) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }
}

impl fmt::Debug for Lock {
    /// Like CPython's repr: the state and how many tasks are in line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("locked", &self.inner.locked.get())
            .field("waiters", &self.inner.waiters.borrow().len())
            .finish()
    }
}

/// Proof that a [`Lock`] is held; dropping it releases the lock (the end
/// of the `async with` block), waking the next waiter in line.
///
/// The guard owns a handle to its lock, so it can be moved to another task
/// or stored; it releases on drop wherever it is, including while a
/// cancelled task unwinds.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard {
    lock: Lock,
}

impl LockGuard {
    /// The lock this guard holds.
    pub fn lock(&self) -> &Lock {
        &self.lock
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.lock.inner.release();
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}
