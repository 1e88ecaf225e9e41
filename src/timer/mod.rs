#![doc = include_str!("../../docs/04-timers.md")]

//! (The module itself: the task-facing API of stage 4, above the kernel.
//! The kernel's drivers are `clock` and `heap`; the kernel's side of
//! timeout scopes lives in `runtime::scope`.)

pub(crate) mod clock;
pub(crate) mod heap;

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

pub(crate) use self::heap::in_range;
use crate::runtime::Handle;
use crate::runtime::core::{self, TimerAction, Wait};
use crate::runtime::scope::{ScopeTimer, disarm, fire_if, next_scope_id, with_open_scope};
use crate::runtime::task::{OpenScope, ScopeUnwind, TaskRef};

/// The loop clock: how long the running loop has existed. On the virtual
/// clock, the virtual time. Nanosecond resolution.
///
/// # Panics
///
/// Outside a running loop.
pub fn time() -> Duration {
    core::running("bucle::time").clock.now()
}

/// Suspends the current task for `duration`: `await asyncio.sleep(s)`.
///
/// `sleep(Duration::ZERO)` is [`yield_now`](crate::yield_now), as in
/// asyncio. Otherwise the task is woken by a timer; the loop blocks (0%
/// CPU) while nothing else is ready. It sleeps at least `duration` of loop
/// time. A deadline past the clock's range (about 584 years of loop time)
/// never comes: only a cancellation or a timeout ends such a sleep.
///
/// # Panics
///
/// Outside a task of a running loop. If the task is cancelled, or a
/// [`timeout`] around it fires, `sleep` unwinds instead of returning.
#[inline]
pub fn sleep(duration: Duration) {
    if duration.is_zero() {
        crate::yield_now();
        return;
    }
    let (me, core) = task_and_loop("bucle::sleep");
    let deadline = core.clock.now().saturating_add(duration);
    sleep_on(&me, &core, deadline, "bucle::sleep");
}

/// Suspends the current task until the loop clock reads `deadline` (see
/// [`time`]). A deadline already past still goes through the timer heap,
/// so the task yields.
///
/// # Panics
///
/// As [`sleep`].
#[inline]
pub fn sleep_until(deadline: Duration) {
    let (me, core) = task_and_loop("bucle::sleep_until");
    sleep_on(&me, &core, deadline, "bucle::sleep_until");
}

#[inline(always)]
fn sleep_on(me: &TaskRef, core: &core::Core, deadline: Duration, what: &str) {
    if !in_range(deadline) {
        sleep_forever(me, deadline, what);
        return;
    }
    let waker = core::prepare_wait(me);
    core.timers.push(deadline, TimerAction::Wake(waker));
    // If the sleep is interrupted, its timer entry is dead.
    struct Interrupted<'a>(&'a core::Core);
    impl Drop for Interrupted<'_> {
        fn drop(&mut self) {
            self.0.note_dead_timer();
        }
    }
    let guard = Interrupted(core);
    core::park(me, Wait::Sleep(deadline), what);
    std::mem::forget(guard);
}

/// A sleep whose deadline is past the clock's range: no timer can end it,
/// only a cancellation or a timeout's unwind.
#[cold]
#[inline(never)]
fn sleep_forever(me: &TaskRef, deadline: Duration, what: &str) {
    // A new suspension number even with no waker to hand out: a waker left
    // from an earlier suspension (a dead timer) must not match this one.
    drop(core::prepare_wait(me));
    core::park(me, Wait::Sleep(deadline), what);
}

/// Schedules `callback` to run after `delay` (`loop.call_later`). Returns a
/// handle that can cancel it. A deadline past the clock's range (about 584
/// years of loop time) never comes, and the callback never runs.
///
/// # Panics
///
/// Outside a running loop.
pub fn call_later(delay: Duration, callback: impl FnOnce() + 'static) -> Handle {
    let core = core::running("bucle::call_later");
    let when = core.clock.now().saturating_add(delay);
    Handle::timer(&core, when, Box::new(callback))
}

/// Schedules `callback` to run when the loop clock reads `when`
/// (`loop.call_at`; see [`time`]).
///
/// # Panics
///
/// Outside a running loop.
pub fn call_at(when: Duration, callback: impl FnOnce() + 'static) -> Handle {
    let core = core::running("bucle::call_at");
    Handle::timer(&core, when, Box::new(callback))
}

/// Number of live timers on the running loop (sleeps, `call_later`s and
/// armed timeouts whose work can still happen).
///
/// # Panics
///
/// Outside a running loop.
pub fn pending_timers() -> usize {
    let core = core::running("bucle::pending_timers");
    // The running task's timeouts not yet in the heap count too.
    let reserved = core::try_current_task().map_or(0, |t| t.header.reserved.get());
    core.timers.live() + reserved as usize
}

/// The error of a [`timeout`] whose deadline passed: asyncio's
/// `TimeoutError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed {
    deadline: Duration,
}

impl Elapsed {
    /// The loop time at which the scope expired.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "deadline has elapsed (at loop time {:?})", self.deadline)
    }
}

impl std::error::Error for Elapsed {}

/// An open timeout scope, lent to the body of [`timeout_scope`]: asyncio's
/// `asyncio.Timeout` (the `cm` in `async with asyncio.timeout(d) as cm`).
pub struct Timeout {
    core: Rc<core::Core>,
    task: TaskRef,
    /// The scope's id in `task`'s open scopes; it stays open while this is
    /// lent.
    id: u64,
}

impl Timeout {
    /// The deadline (loop time, see [`time`]), or `None` if unbounded.
    pub fn when(&self) -> Option<Duration> {
        self.with_scope(|s| s.deadline)
    }

    /// Moves the deadline to `when` (loop time), or removes it with `None`:
    /// `Timeout.reschedule`. A deadline already reached whose interrupt has
    /// not been delivered yet is called off, as asyncio cancels the timer
    /// handle waiting in its ready queue.
    ///
    /// Once the scope has expired ([`Timeout::expired`]) the body is
    /// already on its way out, and `reschedule` does nothing. (asyncio
    /// raises `RuntimeError` there; a panic would abort the process when
    /// the call comes from a destructor during the unwind.)
    pub fn reschedule(&self, when: Option<Duration>) {
        if self.expired() {
            return;
        }
        let timer = self.timer_for(when, None);
        let old = self.with_scope(|s| {
            s.deadline = when;
            std::mem::replace(&mut s.timer, timer)
        });
        disarm(&self.core, &self.task.header, old);
    }

    /// Whether the deadline has been acted on: true from the moment the
    /// loop fires the scope (its body then unwinds at its next suspension)
    /// until the scope closes.
    #[inline]
    pub fn expired(&self) -> bool {
        // Usually no scope of the task has fired: then not this one.
        self.task.header.fired.get() != 0 && self.fired()
    }

    /// [`Timeout::expired`]'s answer once some scope of the task has fired.
    #[inline(never)]
    fn fired(&self) -> bool {
        self.with_scope(|s| s.timer == ScopeTimer::Fired)
    }

    /// Runs `f` on this scope's entry in its task's open scopes.
    fn with_scope<R>(&self, f: impl FnOnce(&mut OpenScope) -> R) -> R {
        with_open_scope(&self.task.header, self.id, f)
            .expect("a Timeout's scope stays open while the Timeout is lent")
    }

    /// A new timer for deadline `when`; `now` is the loop time if the
    /// caller just read it (a clock read is a good part of a short
    /// timeout's cost).
    fn timer_for(&self, when: Option<Duration>, now: Option<Duration>) -> ScopeTimer {
        let Some(when) = when.filter(|&w| in_range(w)) else {
            // No deadline, or one past the clock's range: no timer.
            return ScopeTimer::Off;
        };
        let seq = self.core.timers.reserve_seq();
        if when > now.unwrap_or_else(|| self.core.clock.now()) {
            // The usual case: armed only if the body suspends.
            let h = &self.task.header;
            h.reserved.set(h.reserved.get() + 1);
            return ScopeTimer::Reserved(seq);
        }
        // Already due: fire on the next tick through the ready queue, so
        // the body unwinds at its very next suspension.
        let (task, id) = (self.task.clone(), self.id);
        self.core
            .call_soon_boxed(Box::new(move || fire_if(&task, id, ScopeTimer::Due(seq))));
        ScopeTimer::Due(seq)
    }
}

impl fmt::Debug for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("when", &self.when())
            .field("expired", &self.expired())
            .finish()
    }
}

/// Runs `f` inline with a time limit: `async with asyncio.timeout(d)`.
///
/// If the deadline passes, `f` is unwound at its next suspension point
/// (destructors run) and `timeout` returns `Err(Elapsed)`; the task itself
/// is not cancelled and carries on. Whatever `f` was waiting on is
/// cancelled, as asyncio's timeout cancels the awaited future. Nested
/// timeouts report the one that fired. A scope that ends in time removes its
/// timer.
///
/// # Errors
///
/// [`Elapsed`] when the deadline passed first.
///
/// # Panics
///
/// Outside a task of a running loop.
pub fn timeout<T>(duration: Duration, f: impl FnOnce() -> T) -> Result<T, Elapsed> {
    let (task, core) = task_and_loop("bucle::timeout");
    let now = core.clock.now();
    let when = now.saturating_add(duration);
    scope(task, core, Some(when), Some(now), |_| f())
}

/// The current task and its loop.
///
/// # Panics
///
/// Outside a task of a running loop, naming `what` and the fix.
#[inline]
fn task_and_loop(what: &str) -> (TaskRef, Rc<core::Core>) {
    let task = core::current_task(what);
    let core = task
        .header
        .core()
        .expect("a running task's loop is alive: it is the one running it");
    (task, core)
}

/// Like [`timeout`], with an absolute deadline in loop time (see [`time`]).
///
/// # Errors
///
/// [`Elapsed`] when the deadline passed first.
///
/// # Panics
///
/// Outside a task of a running loop.
pub fn timeout_at<T>(deadline: Duration, f: impl FnOnce() -> T) -> Result<T, Elapsed> {
    let (task, core) = task_and_loop("bucle::timeout_at");
    scope(task, core, Some(deadline), None, |_| f())
}

/// `asyncio.wait_for(aw, timeout)`: the same as [`timeout`] (since Python
/// 3.12 `wait_for` is implemented with `timeout`).
///
/// # Errors
///
/// [`Elapsed`] when the deadline passed first.
///
/// # Panics
///
/// Outside a task of a running loop.
pub fn wait_for<T>(duration: Duration, f: impl FnOnce() -> T) -> Result<T, Elapsed> {
    timeout(duration, f)
}

/// A timeout scope whose deadline `f` can inspect and move through the
/// [`Timeout`] it is lent; `None` starts unbounded.
///
/// # Errors
///
/// [`Elapsed`] when the deadline passed first.
///
/// # Panics
///
/// Outside a task of a running loop.
pub fn timeout_scope<T>(
    deadline: Option<Duration>,
    f: impl FnOnce(&Timeout) -> T,
) -> Result<T, Elapsed> {
    let (task, core) = task_and_loop("bucle::timeout_scope");
    scope(task, core, deadline, None, f)
}

/// Runs `f` in a timeout scope of the current `task` with `deadline`;
/// `now` is the loop time if the caller just read it.
fn scope<T>(
    task: TaskRef,
    core: Rc<core::Core>,
    deadline: Option<Duration>,
    now: Option<Duration>,
    f: impl FnOnce(&Timeout) -> T,
) -> Result<T, Elapsed> {
    let id = next_scope_id();
    let t = Timeout { core, task, id };
    let timer = t.timer_for(deadline, now);
    t.task.header.scopes.borrow_mut().push(OpenScope {
        id,
        deadline,
        timer,
    });
    let out = panic::catch_unwind(AssertUnwindSafe(|| f(&t)));
    // Close the scope: pop it, forget its timer.
    let Timeout { core, task, id } = t;
    let h = &task.header;
    let OpenScope {
        deadline, timer, ..
    } = h.close_scope(id);
    disarm(&core, h, timer);
    match out {
        Ok(v) => Ok(v),
        Err(payload) => match payload.downcast_ref::<ScopeUnwind>() {
            Some(ScopeUnwind(s)) if *s == id => {
                h.caught_scope(id);
                Err(Elapsed {
                    deadline: deadline.unwrap_or_default(),
                })
            }
            _ => panic::resume_unwind(payload),
        },
    }
}
