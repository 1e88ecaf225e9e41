//! `Semaphore` and `BoundedSemaphore`: asyncio's, with the fairness rules of
//! CPython 3.12 (`locks.py`), and an RAII permit for `async with`.

use std::cell::Cell;
use std::error::Error;
use std::fmt;
use std::rc::Rc;

use super::{Waiters, remove_waiter, wait_on};
use crate::future::Future;

struct Inner {
    /// Permits available now (`_value`). A woken waiter's permit is already
    /// taken off, before it runs.
    value: Cell<usize>,
    /// Tasks waiting for a permit, in arrival order; a woken waiter stays
    /// until it runs.
    waiters: Waiters,
    /// `Some(initial value)` for a `BoundedSemaphore`.
    bound: Option<usize>,
}

impl Inner {
    fn new(value: usize, bound: Option<usize>) -> Rc<Inner> {
        Rc::new(Inner {
            value: Cell::new(value),
            waiters: Waiters::default(),
            bound,
        })
    }

    /// CPython 3.12's `locked()`: no permit, or someone (alive) is in line
    /// and must be served first.
    fn locked(&self) -> bool {
        self.value.get() == 0 || self.waiters.borrow().iter().any(|w| !w.is_cancelled())
    }

    /// `_wake_up_next`: hand a permit to the first waiter not yet woken.
    /// Returns whether there was one.
    fn wake_up_next(&self) -> bool {
        let next = self.waiters.borrow().iter().find(|w| !w.is_done()).cloned();
        match next {
            Some(fut) => {
                self.value.set(self.value.get() - 1);
                let _ = fut.set_result(());
                true
            }
            None => false,
        }
    }

    /// The `finally:` of CPython's `acquire`: waiters that arrived while
    /// permits were in flight get as many as are free now.
    fn wake_up_many(&self) {
        while self.value.get() > 0 {
            if !self.wake_up_next() {
                break;
            }
        }
    }

    fn acquire(self: &Rc<Self>) -> SemaphorePermit {
        loop {
            if !self.locked() {
                self.value.set(self.value.get() - 1);
                return SemaphorePermit {
                    sem: Some(self.clone()),
                };
            }
            let fut = Future::new();
            self.waiters.borrow_mut().push_back(fut.clone());
            let woken = wait_on(&fut, "Semaphore", || {
                remove_waiter(&self.waiters, &fut);
                if fut.is_done() && !fut.is_cancelled() {
                    // Handed a permit, but cancelled before taking it: give
                    // it back and let the next waiter have it.
                    self.value.set(self.value.get() + 1);
                }
                self.wake_up_many();
            });
            if woken {
                remove_waiter(&self.waiters, &fut);
                self.wake_up_many();
                return SemaphorePermit {
                    sem: Some(self.clone()),
                };
            }
        }
    }

    fn try_acquire(self: &Rc<Self>) -> Option<SemaphorePermit> {
        if self.locked() {
            return None;
        }
        self.value.set(self.value.get() - 1);
        Some(SemaphorePermit {
            sem: Some(self.clone()),
        })
    }

    /// `Semaphore.release`, without the bound check.
    fn release_unchecked(&self) {
        self.value.set(self.value.get() + 1);
        self.wake_up_next();
    }

    /// `BoundedSemaphore.release` (or plain, without a bound).
    fn release(&self) -> Result<(), TooManyReleases> {
        if let Some(bound) = self.bound {
            if self.value.get() >= bound {
                return Err(TooManyReleases);
            }
        }
        self.release_unchecked();
        Ok(())
    }

    fn fmt(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct(name);
        d.field("value", &self.value.get());
        if let Some(bound) = self.bound {
            d.field("bound", &bound);
        }
        d.field("waiters", &self.waiters.borrow().len()).finish()
    }
}

/// A counter of permits for tasks: `asyncio.Semaphore`.
///
/// [`acquire`](Semaphore::acquire) takes a permit, waiting in line while
/// none is available, and returns a [`SemaphorePermit`] that gives it back
/// when dropped — `async with sem:`. For manual use,
/// [`SemaphorePermit::forget`] keeps the permit taken and
/// [`release`](Semaphore::release) adds one.
///
/// Waiters are served strictly in arrival order (CPython 3.12's rules): a
/// newcomer does not take a free permit while an earlier task is still in
/// line.
///
/// A `Semaphore` is a cheap `Clone` handle; every clone is the same
/// semaphore.
///
/// ```
/// use std::time::Duration;
/// use bucle::sync::Semaphore;
///
/// let lp = bucle::EventLoop::builder().virtual_time().build();
/// lp.run_until_complete(|| {
///     let sem = Semaphore::new(2); // at most two at a time
///     let workers: Vec<_> = (0..4)
///         .map(|i| {
///             let sem = sem.clone();
///             bucle::spawn(move || {
///                 let _permit = sem.acquire();
///                 bucle::sleep(Duration::from_secs(2));
///                 (i, bucle::time().as_secs())
///             })
///         })
///         .collect();
///     let done = bucle::gather(workers).unwrap();
///     assert_eq!(done, [(0, 2), (1, 2), (2, 4), (3, 4)]);
///     assert_eq!(sem.available(), 2);
/// });
/// ```
#[derive(Clone)]
pub struct Semaphore {
    inner: Rc<Inner>,
}

impl Semaphore {
    /// A semaphore with `value` permits.
    pub fn new(value: usize) -> Self {
        Semaphore {
            inner: Inner::new(value, None),
        }
    }

    /// Takes a permit, waiting in line while none can be had: `async with
    /// sem` (or `await sem.acquire()`). The permit goes back when the
    /// returned [`SemaphorePermit`] is dropped.
    ///
    /// If a permit is free and nobody is waiting, this returns at once
    /// without suspending or allocating. A task cancelled (or timed out)
    /// while waiting leaves the line without a trace; a permit that had
    /// already been handed to it goes to the next waiter.
    ///
    /// # Panics
    ///
    /// If it must wait and is called outside a task of a running loop.
    /// When the task is cancelled or a timeout fires while it waits, the
    /// call unwinds instead of returning.
    #[inline]
    pub fn acquire(&self) -> SemaphorePermit {
        self.inner.acquire()
    }

    /// Takes a permit only if that needs no waiting: one is free and no
    /// task is in line. Never suspends.
    pub fn try_acquire(&self) -> Option<SemaphorePermit> {
        self.inner.try_acquire()
    }

    /// Adds a permit, waking the first waiter in line if any: `release()`.
    /// Use it with [`SemaphorePermit::forget`] for manual acquire/release;
    /// as in asyncio, nothing stops a plain semaphore from growing past its
    /// initial value (see [`BoundedSemaphore`]).
    pub fn release(&self) {
        self.inner.release_unchecked();
    }

    /// Permits free right now (CPython's `_value`). A permit already handed
    /// to a woken waiter that has not run yet is not counted.
    pub fn available(&self) -> usize {
        self.inner.value.get()
    }

    /// Whether [`acquire`](Semaphore::acquire) would wait: no permit is
    /// free, or tasks are in line ahead.
    pub fn locked(&self) -> bool {
        self.inner.locked()
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt("Semaphore", f)
    }
}

/// A [`Semaphore`] that refuses to be released above its initial value:
/// `asyncio.BoundedSemaphore`.
///
/// ```
/// use bucle::sync::{BoundedSemaphore, TooManyReleases};
///
/// bucle::run(|| {
///     let sem = BoundedSemaphore::new(1);
///     sem.acquire().forget(); // manual use: keep the permit
///     assert_eq!(sem.release(), Ok(()));
///     assert_eq!(sem.release(), Err(TooManyReleases));
/// });
/// ```
#[derive(Clone)]
pub struct BoundedSemaphore {
    inner: Rc<Inner>,
}

impl BoundedSemaphore {
    /// A bounded semaphore with `value` permits, which is also its bound.
    pub fn new(value: usize) -> Self {
        BoundedSemaphore {
            inner: Inner::new(value, Some(value)),
        }
    }

    /// Takes a permit, waiting in line while none can be had; see
    /// [`Semaphore::acquire`].
    ///
    /// # Panics
    ///
    /// As [`Semaphore::acquire`].
    #[inline]
    pub fn acquire(&self) -> SemaphorePermit {
        self.inner.acquire()
    }

    /// Takes a permit only if that needs no waiting; see
    /// [`Semaphore::try_acquire`].
    pub fn try_acquire(&self) -> Option<SemaphorePermit> {
        self.inner.try_acquire()
    }

    /// Adds a permit back, waking the first waiter in line if any.
    ///
    /// # Errors
    ///
    /// [`TooManyReleases`] (Python's `ValueError`) if the semaphore already
    /// has its initial number of permits; nothing changes then.
    pub fn release(&self) -> Result<(), TooManyReleases> {
        self.inner.release()
    }

    /// Permits free right now; see [`Semaphore::available`].
    pub fn available(&self) -> usize {
        self.inner.value.get()
    }

    /// The initial number of permits, which releases cannot exceed.
    pub fn bound(&self) -> usize {
        self.inner.bound.unwrap_or_default()
    }

    /// Whether [`acquire`](BoundedSemaphore::acquire) would wait.
    pub fn locked(&self) -> bool {
        self.inner.locked()
    }
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt("BoundedSemaphore", f)
    }
}

/// A permit taken from a [`Semaphore`] or [`BoundedSemaphore`]; dropping
/// it gives the permit back (the end of `async with sem:`), waking the next
/// waiter in line. It owns a handle to its semaphore, so it can be moved or
/// stored; it is given back on drop wherever it is, including while a
/// cancelled task unwinds.
///
/// # Panics
///
/// Dropping a permit of a [`BoundedSemaphore`] that is already at its bound
/// (because it was released by hand while this permit was out) panics with
/// "BoundedSemaphore released too many times", unless the thread is already
/// unwinding. Use [`SemaphorePermit::forget`] for manual release.
#[must_use = "the permit is given back as soon as it is dropped"]
pub struct SemaphorePermit {
    /// `None` once forgotten.
    sem: Option<Rc<Inner>>,
}

impl SemaphorePermit {
    /// Keeps the permit taken without giving it back: for manual
    /// `acquire()` ... `release()` pairs, as in Python.
    pub fn forget(mut self) {
        self.sem = None;
    }
}

impl Drop for SemaphorePermit {
    /// Gives the permit back.
    ///
    /// # Panics
    ///
    /// For a [`BoundedSemaphore`] that is already at its bound (because it
    /// was released by hand while this permit was out), with "BoundedSemaphore
    /// released too many times" — unless the thread is already unwinding,
    /// in which case the permit is dropped without releasing.
    fn drop(&mut self) {
        if let Some(sem) = self.sem.take() {
            if sem.release().is_err() && !std::thread::panicking() {
                panic!("{TooManyReleases}: a permit was dropped after a manual release()");
            }
        }
    }
}

impl fmt::Debug for SemaphorePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit").finish_non_exhaustive()
    }
}

/// [`BoundedSemaphore::release`] would raise the count above the initial
/// value: Python's `ValueError('BoundedSemaphore released too many times')`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyReleases;

impl fmt::Display for TooManyReleases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BoundedSemaphore released too many times")
    }
}

impl Error for TooManyReleases {}
