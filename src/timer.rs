#![doc = include_str!("../docs/04-timers.md")]

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::runtime::Handle;
use crate::runtime::core::{self, HandleInner, Runnable, Wait};
use crate::runtime::task::{Header, OpenScope, ScopeUnwind, TaskRef, Waker};

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

    /// Waits for the loop time to reach `deadline`: sleeps the thread on the
    /// real clock (at least that long, never spinning), jumps on the virtual
    /// one. Returns the loop time if it did not have to sleep (then it read
    /// the clock a moment ago, and the caller can use that reading).
    pub(crate) fn wait_until(&self, deadline: Duration) -> Option<Duration> {
        match &self.virtual_now {
            Some(_) => {
                self.advance_to(deadline);
                Some(self.now())
            }
            None => {
                let now = self.now();
                if deadline > now {
                    std::thread::sleep(deadline - now);
                    None
                } else {
                    Some(now)
                }
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
    /// A timeout scope's deadline: interrupt the task at the scope with
    /// this id. Live while that scope is open and its timer is
    /// [`ScopeTimer::Armed`] with this entry's seq.
    Scope(TaskRef, u64),
}

/// One heap entry: the key, and where the timer's work waits. Kept to 24
/// bytes (the work lives in [`Timers::actions`]) so that sifting moves three
/// words and makes one comparison per level. Ordered by (deadline, seq):
/// `seq` breaks ties in creation order.
#[derive(Clone, Copy)]
struct Entry {
    /// Loop time in nanoseconds (584 years of range).
    deadline: u64,
    /// Creation number: unique, so (deadline, seq) is a total order.
    seq: u64,
    /// Index of the action in `Timers::actions`, owned by this entry.
    slot: u32,
}

impl Entry {
    /// The order key: deadline, then creation. One 128-bit comparison.
    #[inline(always)]
    fn key(&self) -> u128 {
        (u128::from(self.deadline) << 64) | u128::from(self.seq)
    }
}

/// A binary min-heap of entries ordered by [`Entry::key`]. (std's
/// `BinaryHeap` spends about twice the instructions per level on its
/// generic `Ord` plumbing; this is the timer loop's hottest structure.)
#[derive(Default)]
struct Heap {
    /// Heap-ordered: every entry's key is ≤ its children's (`2i+1`, `2i+2`).
    v: Vec<Entry>,
}

impl Heap {
    #[inline]
    fn peek(&self) -> Option<&Entry> {
        self.v.first()
    }

    fn len(&self) -> usize {
        self.v.len()
    }

    fn push(&mut self, e: Entry) {
        self.v.push(e);
        self.sift_up(self.v.len() - 1, e);
    }

    /// Moves `e`, which belongs at `i`, up past every larger ancestor.
    #[inline]
    fn sift_up(&mut self, mut i: usize, e: Entry) {
        let key = e.key();
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.v[parent].key() <= key {
                break;
            }
            self.v[i] = self.v[parent];
            i = parent;
        }
        self.v[i] = e;
    }

    /// Removes the top. Floyd's method: sink the hole to the bottom along
    /// the smaller children (one comparison per level), put the last entry
    /// there and sift it up (rarely more than a level).
    ///
    /// The smaller child is picked arithmetically, not by a branch: which
    /// one it is, is a coin toss the branch predictor loses half the time,
    /// at a dozen cycles a level.
    fn pop(&mut self) -> Option<Entry> {
        let last = self.v.pop()?;
        let v = &mut self.v[..];
        let n = v.len();
        if n == 0 {
            return Some(last);
        }
        let top = v[0];
        let mut hole = 0;
        loop {
            let left = 2 * hole + 1;
            let right = left + 1;
            if right >= n {
                if left < n {
                    // A lone left child, at the very bottom.
                    v[hole] = v[left];
                    hole = left;
                }
                break;
            }
            let child = left + usize::from(v[right].key() < v[left].key());
            v[hole] = v[child];
            hole = child;
        }
        self.sift_up(hole, last);
        Some(top)
    }

    /// Keeps the entries `keep` accepts and restores the heap order.
    fn retain(&mut self, keep: impl FnMut(&Entry) -> bool) {
        self.v.retain(keep);
        self.v.sort_unstable_by_key(Entry::key);
    }

    fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.v.iter()
    }

    fn clear(&mut self) {
        self.v.clear();
    }

    fn is_empty(&self) -> bool {
        self.v.is_empty()
    }
}

/// Nanoseconds of loop time, saturating. Only deadlines [`in_range`] reach
/// the heap, so a saturated value is only ever a "now" past the range.
#[inline]
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Whether a deadline is within the loop clock's range: under 2^64 ns of
/// loop time (about 584 years). A deadline past it never fires, on either
/// clock: it is kept out of the heap, so it neither wakes the loop nor
/// moves the virtual clock, and a task waiting on it alone is deadlocked
/// (the real clock would never reach it either).
#[inline]
pub(crate) fn in_range(deadline: Duration) -> bool {
    deadline.as_nanos() < u128::from(u64::MAX)
}

/// The actions of the timers in the heap: a slab indexed by `Entry::slot`.
#[derive(Default)]
struct Actions {
    /// `Some` exactly for the slots a heap entry refers to.
    slots: Vec<Option<(TimerAction, u64)>>,
    /// The `None` slots, reused first.
    free: Vec<u32>,
}

impl Actions {
    fn insert(&mut self, action: TimerAction, seq: u64) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some((action, seq));
                i
            }
            None => {
                let i = u32::try_from(self.slots.len()).expect("fewer than 2^32 pending timers");
                self.slots.push(Some((action, seq)));
                i
            }
        }
    }

    fn take(&mut self, slot: u32) -> TimerAction {
        self.free.push(slot);
        self.slots[slot as usize]
            .take()
            .expect("a heap entry owns its slot")
            .0
    }

    /// A dead timer is one whose work was cancelled; it stays in the heap
    /// until it reaches the top or the heap is compacted.
    fn is_dead(&self, slot: u32) -> bool {
        match &self.slots[slot as usize] {
            Some((TimerAction::Wake(w), _)) => !w.is_current(),
            Some((TimerAction::Call(h), _)) => !h.is_pending(),
            Some((TimerAction::Scope(task, id), seq)) => {
                !scope_timer_is(&task.header, *id, ScopeTimer::Armed(*seq))
            }
            None => unreachable!("a heap entry owns its slot"),
        }
    }
}

/// The timer heap: every pending timer of one loop.
pub(crate) struct Timers {
    /// The keys, earliest on top. Invariant: each entry's `slot` is `Some`
    /// in `actions`, and no two entries share a slot.
    heap: RefCell<Heap>,
    /// What each timer does when it fires (or whether it is dead).
    actions: RefCell<Actions>,
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
            heap: RefCell::new(Heap::default()),
            actions: RefCell::new(Actions::default()),
            next_seq: Cell::new(0),
            dead: Cell::new(0),
        }
    }

    /// Adds a timer; returns its sequence number.
    pub(crate) fn push(&self, deadline: Duration, action: TimerAction) -> u64 {
        let seq = self.reserve_seq();
        self.push_reserved(deadline, seq, action);
        seq
    }

    /// Takes the next sequence number for a timer that will be pushed later
    /// with [`Timers::push_reserved`]: it then orders exactly as if it had
    /// been pushed now.
    pub(crate) fn reserve_seq(&self) -> u64 {
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        seq
    }

    /// Adds a timer under a sequence number from [`Timers::reserve_seq`].
    /// `deadline` must be [`in_range`].
    pub(crate) fn push_reserved(&self, deadline: Duration, seq: u64, action: TimerAction) {
        debug_assert!(in_range(deadline), "a timer past the clock's range");
        let slot = self.actions.borrow_mut().insert(action, seq);
        self.heap.borrow_mut().push(Entry {
            deadline: nanos(deadline),
            seq,
            slot,
        });
    }

    /// Records that one entry just died; compacts when the dead dominate.
    pub(crate) fn note_dead(&self) {
        let dead = self.dead.get() + 1;
        self.dead.set(dead);
        let len = self.heap.borrow().len();
        if dead >= COMPACT_MIN_DEAD && dead * 2 > len {
            self.compact();
        }
    }

    /// Rebuilds the heap without its dead entries.
    #[cold]
    fn compact(&self) {
        let mut removed = Vec::new();
        {
            let mut actions = self.actions.borrow_mut();
            self.heap.borrow_mut().retain(|e| {
                let dead = actions.is_dead(e.slot);
                if dead {
                    removed.push(actions.take(e.slot));
                }
                !dead
            });
            self.dead.set(0);
        }
        // A dead action may hold the last reference to a finished task,
        // whose result's destructor is user code: dropped with no borrow
        // held (this runs from a sleep's unwind guard, among others).
        core::drop_all(removed);
    }

    fn pop_dead_top(&self) {
        let mut removed = Vec::new();
        {
            let mut heap = self.heap.borrow_mut();
            let mut actions = self.actions.borrow_mut();
            while let Some(top) = heap.peek().filter(|e| actions.is_dead(e.slot)) {
                removed.push(actions.take(top.slot));
                heap.pop();
                self.dead.set(self.dead.get().saturating_sub(1));
            }
        }
        core::drop_all(removed);
    }

    /// The earliest live deadline.
    pub(crate) fn next_deadline(&self) -> Option<Duration> {
        self.pop_dead_top();
        self.heap
            .borrow()
            .peek()
            .map(|e| Duration::from_nanos(e.deadline))
    }

    /// Whether the heap holds no entry at all (live or dead).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.heap.borrow().is_empty()
    }

    /// Moves the work of every live timer due at `now` to `ready`, in
    /// (deadline, seq) order, and the actions of dead ones to `dead`, for
    /// the caller to drop once it no longer borrows `ready` (see
    /// `core::drop_user`).
    pub(crate) fn expire(
        &self,
        now: Duration,
        ready: &mut VecDeque<Runnable>,
        dead: &mut Vec<TimerAction>,
    ) {
        let now = nanos(now);
        let mut heap = self.heap.borrow_mut();
        let mut actions = self.actions.borrow_mut();
        while let Some(entry) = heap.peek().copied().filter(|e| e.deadline <= now) {
            heap.pop();
            let is_dead = actions.is_dead(entry.slot);
            let action = actions.take(entry.slot);
            if is_dead {
                self.dead.set(self.dead.get().saturating_sub(1));
                dead.push(action);
                continue;
            }
            ready.push_back(match action {
                TimerAction::Wake(w) => Runnable::Wake(w),
                TimerAction::Call(h) => Runnable::Handle(h),
                TimerAction::Scope(task, id) => {
                    set_timer(
                        &task.header,
                        id,
                        ScopeTimer::Armed(entry.seq),
                        ScopeTimer::Firing,
                    );
                    Runnable::Interrupt(task, id)
                }
            });
        }
    }

    /// Live timers (those whose work can still happen). O(n): diagnostics.
    pub(crate) fn live(&self) -> usize {
        let actions = self.actions.borrow();
        self.heap
            .borrow()
            .iter()
            .filter(|e| !actions.is_dead(e.slot))
            .count()
    }

    pub(crate) fn clear(&self) {
        self.heap.borrow_mut().clear();
        self.dead.set(0);
        // The actions hold tasks and callbacks: drop them with no borrow held.
        let actions = std::mem::take(&mut *self.actions.borrow_mut());
        core::drop_all(actions.slots);
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
            self.0.timers.note_dead();
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

/// Where an open timeout scope's timer is (see `OpenScope`). Changes only
/// on the scope's own task (entering, rescheduling, suspending, leaving)
/// and in the loop: `Armed` to `Firing` when the timer expires, `Firing` or
/// `Due` to `Fired` when the interrupt is delivered.
///
/// A scope's timer costs nothing but a sequence number until its task
/// suspends: most timeouts end before their body ever waits (the data was
/// there, the lock was free), and then arming and disarming a timer in the
/// heap was most of their cost. The seq is taken when the deadline is set,
/// so a timer armed late orders exactly like one armed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScopeTimer {
    /// No deadline: a task group, or a timeout scope without one.
    Off,
    /// The deadline is in the future and its seq is taken, but the timer is
    /// not in the heap: the task has not suspended since. Counted in
    /// `Header::reserved`; [`arm_reserved`] makes it `Armed` as the task
    /// suspends (the loop only looks at the heap while no task runs).
    Reserved(u64),
    /// In the heap under this seq; that heap entry is live exactly while
    /// the scope is open and still says `Armed(seq)`.
    Armed(u64),
    /// The deadline had already passed (or was now) when it was set: a
    /// `call_soon` callback fires the scope on the next tick, if it still
    /// says `Due(seq)` then (asyncio's `Timeout.reschedule` does the same).
    Due(u64),
    /// The timer expired and left the heap; its interrupt waits in the
    /// ready queue and fires the scope when it runs, if the scope still
    /// says `Firing` then. (asyncio: the timer handle is in `_ready`, and a
    /// `reschedule` before it runs cancels it.)
    Firing,
    /// The deadline was acted on: the body unwinds at its next suspension
    /// (unless a cancellation or an outer scope's unwind overrides it).
    /// Counted in `Header::fired`.
    Fired,
}

/// Runs `f` on `h`'s open scope `id`, if it is still open.
fn with_open_scope<R>(h: &Header, id: u64, f: impl FnOnce(&mut OpenScope) -> R) -> Option<R> {
    h.scopes
        .borrow_mut()
        .iter_mut()
        .rev()
        .find(|s| s.id == id)
        .map(f)
}

/// Whether `h`'s open scope `id` has timer `timer`.
fn scope_timer_is(h: &Header, id: u64, timer: ScopeTimer) -> bool {
    with_open_scope(h, id, |s| s.timer == timer) == Some(true)
}

/// If `h`'s open scope `id` still has timer `expected`, replaces it with
/// `new` and returns true.
fn set_timer(h: &Header, id: u64, expected: ScopeTimer, new: ScopeTimer) -> bool {
    with_open_scope(h, id, |s| {
        let matches = s.timer == expected;
        if matches {
            s.timer = new;
        }
        matches
    }) == Some(true)
}

/// If `h`'s open scope `id` still has timer `expected`, marks it fired and
/// returns true.
fn mark_fired(h: &Header, id: u64, expected: ScopeTimer) -> bool {
    let fired = set_timer(h, id, expected, ScopeTimer::Fired);
    if fired {
        h.fired.set(h.fired.get() + 1);
    }
    fired
}

/// Forgets a scope timer that was just replaced or whose scope closed:
/// kills it in the heap, or takes it out of its count. (A `Due` callback
/// or a `Firing` interrupt finds the scope changed and does nothing.)
fn disarm(core: &core::Core, h: &Header, timer: ScopeTimer) {
    match timer {
        ScopeTimer::Armed(_) => core.timers.note_dead(),
        ScopeTimer::Reserved(_) => h.reserved.set(h.reserved.get() - 1),
        ScopeTimer::Fired => h.fired.set(h.fired.get() - 1),
        ScopeTimer::Off | ScopeTimer::Due(_) | ScopeTimer::Firing => {}
    }
}

/// Fires scope `id` of `task` if its timer is still `expected`: the
/// deadline's turn in the ready queue has come and nothing called it off.
fn fire_if(task: &TaskRef, id: u64, expected: ScopeTimer) {
    if mark_fired(&task.header, id, expected) {
        core::fire_scope(task, id);
    }
}

/// An expired scope timer's interrupt, run from the ready queue.
pub(crate) fn deliver_interrupt(task: &TaskRef, id: u64) {
    fire_if(task, id, ScopeTimer::Firing);
}

/// Puts the reserved timers of `task`'s open timeout scopes into the heap.
/// Called as the task suspends, which is the first moment they can matter.
#[cold]
pub(crate) fn arm_reserved(core: &core::Core, task: &TaskRef) {
    let h = &task.header;
    h.reserved.set(0);
    for s in h.scopes.borrow_mut().iter_mut() {
        let ScopeTimer::Reserved(seq) = s.timer else {
            continue;
        };
        let deadline = s.deadline.expect("a scope with a timer has a deadline");
        s.timer = ScopeTimer::Armed(seq);
        core.timers
            .push_reserved(deadline, seq, TimerAction::Scope(task.clone(), s.id));
    }
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
            Some(ScopeUnwind(s)) if *s == id => Err(Elapsed {
                deadline: deadline.unwrap_or_default(),
            }),
            _ => panic::resume_unwind(payload),
        },
    }
}
