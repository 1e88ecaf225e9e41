//! Scopes on a task's stack — timeouts and task groups — as the kernel
//! sees them: where each open scope's timer is, arming reserved timers as
//! the task suspends, and delivering a fired scope's interrupt. The
//! task-facing halves (`timeout`, `task_group`) sit above the kernel, in
//! `timer` and `combinators`.

use std::cell::Cell;

use crate::runtime::core::{self, TimerAction};
use crate::runtime::task::{Header, OpenScope, TaskRef};

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
pub(crate) fn with_open_scope<R>(
    h: &Header,
    id: u64,
    f: impl FnOnce(&mut OpenScope) -> R,
) -> Option<R> {
    h.scopes
        .borrow_mut()
        .iter_mut()
        .rev()
        .find(|s| s.id == id)
        .map(f)
}

/// Whether `h`'s open scope `id` has timer `timer`.
pub(crate) fn scope_timer_is(h: &Header, id: u64, timer: ScopeTimer) -> bool {
    with_open_scope(h, id, |s| s.timer == timer) == Some(true)
}

/// If `h`'s open scope `id` still has timer `expected`, replaces it with
/// `new` and returns true.
pub(crate) fn set_timer(h: &Header, id: u64, expected: ScopeTimer, new: ScopeTimer) -> bool {
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
pub(crate) fn mark_fired(h: &Header, id: u64, expected: ScopeTimer) -> bool {
    let fired = set_timer(h, id, expected, ScopeTimer::Fired);
    if fired {
        h.fired.set(h.fired.get() + 1);
    }
    fired
}

/// Forgets a scope timer that was just replaced or whose scope closed:
/// kills it in the heap, or takes it out of its count. (A `Due` callback
/// or a `Firing` interrupt finds the scope changed and does nothing.)
pub(crate) fn disarm(core: &core::Core, h: &Header, timer: ScopeTimer) {
    match timer {
        ScopeTimer::Armed(_) => core.note_dead_timer(),
        ScopeTimer::Reserved(_) => h.reserved.set(h.reserved.get() - 1),
        ScopeTimer::Fired => h.fired.set(h.fired.get() - 1),
        ScopeTimer::Off | ScopeTimer::Due(_) | ScopeTimer::Firing => {}
    }
}

/// Fires scope `id` of `task` if its timer is still `expected`: the
/// deadline's turn in the ready queue has come and nothing called it off.
pub(crate) fn fire_if(task: &TaskRef, id: u64, expected: ScopeTimer) {
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
