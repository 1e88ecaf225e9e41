#![doc = include_str!("../docs/04-timers.md")]

use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::runtime::Handle;
use crate::runtime::core::{self, HandleInner, Runnable, Wait};
use crate::runtime::task::{ScopeUnwind, TaskRef, Waker};

// -------------------------------------------------------------------------
// The clock.

/// The loop clock: time since the loop was created, real or virtual.
pub(crate) struct Clock {
    start: Instant,
    /// `Some` on the virtual clock: the current virtual time, which only
    /// the loop moves, and only forward, when nothing is ready.
    virtual_now: Option<Cell<Duration>>,
}

impl Clock {
    pub(crate) fn new(virtual_time: bool) -> Self {
        Clock {
            start: Instant::now(),
            virtual_now: virtual_time.then(|| Cell::new(Duration::ZERO)),
        }
    }

    /// The loop time now.
    #[inline]
    pub(crate) fn now(&self) -> Duration {
        match &self.virtual_now {
            Some(t) => t.get(),
            None => self.start.elapsed(),
        }
    }

    pub(crate) fn is_virtual(&self) -> bool {
        self.virtual_now.is_some()
    }

    /// How long a real wait until `deadline` would be (zero if due).
    pub(crate) fn until(&self, deadline: Duration) -> Duration {
        deadline.saturating_sub(self.now())
    }

    /// Waits for the loop time to reach `deadline`: sleeps the thread on the
    /// real clock (at least that long, never spinning), jumps on the virtual
    /// one.
    pub(crate) fn wait_until(&self, deadline: Duration) {
        if self.is_virtual() {
            self.advance_to(deadline);
        } else {
            let d = self.until(deadline);
            if !d.is_zero() {
                std::thread::sleep(d);
            }
        }
    }

    /// Jumps virtual time forward to `deadline` (never backwards).
    pub(crate) fn advance_to(&self, deadline: Duration) {
        if let Some(t) = &self.virtual_now {
            if deadline > t.get() {
                t.set(deadline);
            }
        }
    }
}

// -------------------------------------------------------------------------
// The heap.

/// What an expired timer does.
pub(crate) enum TimerAction {
    /// A sleep: wake that suspension (through the ready queue).
    Wake(Waker),
    /// `call_later` / `call_at`.
    Call(Rc<HandleInner>),
    /// A timeout scope's deadline: interrupt the task at that scope.
    Scope(TaskRef, Rc<ScopeState>),
}

/// One timer. Ordered by (deadline, seq), reversed so that `BinaryHeap`
/// (a max-heap) pops the earliest first; `seq` breaks ties in creation
/// order.
struct Entry {
    deadline: Duration,
    seq: u64,
    action: TimerAction,
}

impl Entry {
    /// A dead entry is one whose work was cancelled; it stays in the heap
    /// until it reaches the top or the heap is compacted.
    fn is_dead(&self) -> bool {
        match &self.action {
            TimerAction::Wake(w) => !w.is_current(),
            TimerAction::Call(h) => !h.is_pending(),
            TimerAction::Scope(_, s) => !s.open.get() || s.armed.get() != Some(self.seq),
        }
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.deadline, other.seq).cmp(&(self.deadline, self.seq))
    }
}

/// The timer heap: every pending timer of one loop.
pub(crate) struct Timers {
    heap: RefCell<BinaryHeap<Entry>>,
    /// Creation counter; never reused, so (deadline, seq) is a total order.
    next_seq: Cell<u64>,
    /// How many entries in the heap are known dead (cancelled but not yet
    /// removed). When they are the majority the heap is rebuilt without
    /// them, so timeouts that never fire cost O(log n) each, amortised.
    dead: Cell<usize>,
}

/// Below this many dead entries the heap is never compacted.
const COMPACT_MIN_DEAD: usize = 64;

impl Timers {
    pub(crate) fn new() -> Self {
        Timers {
            heap: RefCell::new(BinaryHeap::new()),
            next_seq: Cell::new(0),
            dead: Cell::new(0),
        }
    }

    /// Adds a timer; returns its sequence number.
    pub(crate) fn push(&self, deadline: Duration, action: TimerAction) -> u64 {
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        self.heap.borrow_mut().push(Entry {
            deadline,
            seq,
            action,
        });
        seq
    }

    /// Records that one entry just died; compacts when the dead dominate.
    pub(crate) fn note_dead(&self) {
        let dead = self.dead.get() + 1;
        self.dead.set(dead);
        let len = self.heap.borrow().len();
        if dead >= COMPACT_MIN_DEAD && dead * 2 > len {
            self.heap.borrow_mut().retain(|e| !e.is_dead());
            self.dead.set(0);
        }
    }

    fn pop_dead_top(&self) {
        let mut heap = self.heap.borrow_mut();
        while heap.peek().is_some_and(Entry::is_dead) {
            heap.pop();
            self.dead.set(self.dead.get().saturating_sub(1));
        }
    }

    /// The earliest live deadline.
    pub(crate) fn next_deadline(&self) -> Option<Duration> {
        self.pop_dead_top();
        self.heap.borrow().peek().map(|e| e.deadline)
    }

    /// Whether the heap holds no entry at all (live or dead).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.heap.borrow().is_empty()
    }

    /// Moves the work of every live timer due at `now` to `ready`, in
    /// (deadline, seq) order.
    pub(crate) fn expire(&self, now: Duration, ready: &mut VecDeque<Runnable>) {
        let mut heap = self.heap.borrow_mut();
        while heap.peek().is_some_and(|e| e.deadline <= now) {
            let entry = heap.pop().expect("peeked");
            if entry.is_dead() {
                self.dead.set(self.dead.get().saturating_sub(1));
                continue;
            }
            ready.push_back(match entry.action {
                TimerAction::Wake(w) => Runnable::Wake(w),
                TimerAction::Call(h) => Runnable::Handle(h),
                TimerAction::Scope(task, scope) => {
                    scope.fired.set(true);
                    Runnable::Interrupt(task, scope.id)
                }
            });
        }
    }

    /// Live timers (those whose work can still happen). O(n): diagnostics.
    pub(crate) fn live(&self) -> usize {
        self.heap.borrow().iter().filter(|e| !e.is_dead()).count()
    }

    pub(crate) fn clear(&self) {
        self.heap.borrow_mut().clear();
        self.dead.set(0);
    }
}

// -------------------------------------------------------------------------
// The public face of stage 4.

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
/// time.
///
/// # Panics
///
/// Outside a task of a running loop. If the task is cancelled, or a
/// [`timeout`] around it fires, `sleep` unwinds instead of returning.
pub fn sleep(duration: Duration) {
    if duration.is_zero() {
        crate::yield_now();
        return;
    }
    let core = core::running("bucle::sleep");
    let deadline = core.clock.now().saturating_add(duration);
    sleep_on(&core, deadline, "bucle::sleep");
}

/// Suspends the current task until the loop clock reads `deadline` (see
/// [`time`]). A deadline already past still goes through the timer heap,
/// so the task yields.
///
/// # Panics
///
/// As [`sleep`].
pub fn sleep_until(deadline: Duration) {
    let core = core::running("bucle::sleep_until");
    sleep_on(&core, deadline, "bucle::sleep_until");
}

fn sleep_on(core: &Rc<core::Core>, deadline: Duration, what: &str) {
    let me = core::current_task(what);
    let waker = core::prepare_wait(&me);
    core.timers.push(deadline, TimerAction::Wake(waker));
    // If the sleep is interrupted, its timer entry is dead.
    struct Interrupted<'a>(&'a core::Core);
    impl Drop for Interrupted<'_> {
        fn drop(&mut self) {
            self.0.timers.note_dead();
        }
    }
    let guard = Interrupted(core);
    core::park(core, &me, Wait::Sleep(deadline), what);
    std::mem::forget(guard);
}

/// Schedules `callback` to run after `delay` (`loop.call_later`). Returns a
/// handle that can cancel it.
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
    core::running("bucle::pending_timers").timers.live()
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

/// The state of one timeout scope, shared with its timer.
pub(crate) struct ScopeState {
    pub(crate) id: u64,
    /// Whether the scope is still on its task's stack.
    pub(crate) open: Cell<bool>,
    /// The seq of the timer currently armed for it, if any; older timers of
    /// a rescheduled scope are dead.
    pub(crate) armed: Cell<Option<u64>>,
    deadline: Cell<Option<Duration>>,
    /// Whether its deadline has been reached (the interrupt is on its way).
    pub(crate) fired: Cell<bool>,
}

thread_local! {
    static NEXT_SCOPE: Cell<u64> = const { Cell::new(1) };
}

/// A fresh scope id (timeouts and task groups share the numbering).
pub(crate) fn next_scope_id() -> u64 {
    NEXT_SCOPE.with(|n| {
        let id = n.get();
        n.set(id + 1);
        id
    })
}

/// An open timeout scope, lent to the body of [`timeout_scope`]: asyncio's
/// `asyncio.Timeout` (the `cm` in `async with asyncio.timeout(d) as cm`).
pub struct Timeout {
    core: Rc<core::Core>,
    task: TaskRef,
    state: Rc<ScopeState>,
}

impl Timeout {
    /// The deadline (loop time, see [`time`]), or `None` if unbounded.
    pub fn when(&self) -> Option<Duration> {
        self.state.deadline.get()
    }

    /// Moves the deadline to `when` (loop time), or removes it with `None`:
    /// `Timeout.reschedule`.
    pub fn reschedule(&self, when: Option<Duration>) {
        if self.state.armed.take().is_some() {
            self.core.timers.note_dead();
        }
        self.state.deadline.set(when);
        self.state.fired.set(false);
        if let Some(when) = when {
            let seq = self.core.timers.push(
                when,
                TimerAction::Scope(self.task.clone(), self.state.clone()),
            );
            self.state.armed.set(Some(seq));
            if when <= self.core.clock.now() {
                // Already due: fire on the next tick through the ready queue,
                // as asyncio's `Timeout.reschedule` does with `call_soon`,
                // so the body unwinds at its very next suspension.
                let (task, state) = (self.task.clone(), self.state.clone());
                self.core.call_soon_boxed(Box::new(move || {
                    if state.open.get() && state.armed.get() == Some(seq) {
                        state.fired.set(true);
                        core::fire_scope(&task, state.id);
                    }
                }));
            }
        }
    }

    /// Whether the deadline has been reached.
    pub fn expired(&self) -> bool {
        self.state.fired.get()
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
    let core = core::running("bucle::timeout");
    let when = core.clock.now().saturating_add(duration);
    scope(core, Some(when), |_| f(), "bucle::timeout")
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
    let core = core::running("bucle::timeout_at");
    scope(core, Some(deadline), |_| f(), "bucle::timeout_at")
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
    let core = core::running("bucle::timeout_scope");
    scope(core, deadline, f, "bucle::timeout_scope")
}

fn scope<T>(
    core: Rc<core::Core>,
    deadline: Option<Duration>,
    f: impl FnOnce(&Timeout) -> T,
    what: &str,
) -> Result<T, Elapsed> {
    let task = core::current_task(what);
    let id = next_scope_id();
    task.header.scopes.borrow_mut().push(id);
    let t = Timeout {
        core,
        task,
        state: Rc::new(ScopeState {
            id,
            open: Cell::new(true),
            armed: Cell::new(None),
            deadline: Cell::new(None),
            fired: Cell::new(false),
        }),
    };
    t.reschedule(deadline);
    let out = panic::catch_unwind(AssertUnwindSafe(|| f(&t)));
    // Close the scope: pop it, kill its timer.
    let h = &t.task.header;
    let popped = h.scopes.borrow_mut().pop();
    debug_assert_eq!(popped, Some(id), "timeout scopes must nest");
    t.state.open.set(false);
    if t.state.armed.take().is_some() && !t.state.fired.get() {
        t.core.timers.note_dead();
    }
    match out {
        Ok(v) => Ok(v),
        Err(payload) => match payload.downcast_ref::<ScopeUnwind>() {
            Some(ScopeUnwind(s)) if *s == id => Err(Elapsed {
                deadline: t.when().unwrap_or_default(),
            }),
            _ => panic::resume_unwind(payload),
        },
    }
}
