//! The loop's kernel: the ready queue, the task table, suspension and
//! cancellation, and the tick in three named phases (curio's kernel, asyncio's
//! `_run_once`).
//!
//! # Hostile user code
//!
//! User code — a task body, a destructor, a done callback, a `call_soon`
//! callback, the exception handler — may run at any moment the kernel hands
//! control over, may re-enter the API (spawn, cancel, `call_later`, set a
//! future, close the loop) and may panic. The kernel keeps these rules so
//! that none of that can corrupt it:
//!
//! 1. **No user code runs while the kernel holds a `RefCell` borrow or is
//!    half-way through updating a structure.** Values whose destructors may
//!    run user code — tasks (their results), timer actions, callbacks,
//!    waits, waiters — are moved out first and dropped once the borrow has
//!    ended, through [`drop_user`].
//! 2. **A panic in user code never aborts and never strands a task.** Task
//!    bodies are caught at the task boundary (`run_body`), callbacks in
//!    [`Core::run_callback`], destructors the kernel runs in [`drop_user`],
//!    the exception handler in [`Core::report`] (a failing handler is
//!    reported once on stderr, asyncio's "Unhandled error in exception
//!    handler", and never called for its own failure). Panic payloads are
//!    dropped where their own destructor cannot panic out ([`drop_payload`]).
//!    The one abort left is Rust's own: a destructor that panics while its
//!    task is already unwinding.
//! 3. **Close works from every state.** [`Core::close`] drops every task's
//!    coroutine (a forced unwind the task boundary swallows, so it is never
//!    taken for a user panic), releases every timer, waiter and queued
//!    callback, and still delivers the reports of panics nobody retrieved.
//!    Work that destructors create meanwhile (a spawn, a `call_soon`) is
//!    swept up by the next pass.
//! 4. **A failed run leaves the loop reusable**: `run_*` undo everything
//!    they set up (the running flag, the thread's current loop, the stop
//!    request, the main task's stop-the-loop callback) on every exit.
//! 5. **A refused operation changes nothing**: every check comes before the
//!    first change.

use std::any::Any;
use std::cell::OnceCell;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::generator::GeneratorState;
use crate::io::reactor::{Dir, Reactor};
use crate::runtime::remote::{self, Remote};
use crate::runtime::scope::{self, ScopeTimer};
use crate::runtime::task::{
    CancelledUnwind, Interrupt, Outcome, ScopeUnwind, State, TaskRef, Waiter, Waker, panic_message,
};
use crate::stack;
use crate::timer::clock::Clock;
use crate::timer::heap::{self, TimerWork, Timers};

/// What a suspended task waits on: how to cancel it, and what the deadlock
/// report says.
#[derive(Clone)]
pub(crate) enum Wait {
    /// Not waiting (scheduled, running or done).
    Nothing,
    /// Joining another task: cancelling the waiter cancels it (asyncio).
    Join(TaskRef),
    /// Joining another task through `shield`: cancelling the waiter only
    /// wakes the waiter.
    Shield(TaskRef),
    /// Waiting on a future: cancelling the waiter cancels the future.
    Future {
        future: Rc<dyn CancelWait>,
        what: &'static str,
    },
    /// Sleeping until this loop time; a timer will wake it.
    Sleep(Duration),
    /// Waiting for a file descriptor to become readable or writable; the
    /// reactor will wake it.
    Io { fd: RawFd, dir: Dir },
    /// Waiting for a closure running on a worker thread (`to_thread`).
    Thread,
}

impl Wait {
    fn describe(&self) -> String {
        match self {
            Wait::Nothing => "nothing (ready to run)".to_string(),
            Wait::Join(t) => format!("join {}", t.header.describe()),
            Wait::Shield(t) => format!("shield {}", t.header.describe()),
            Wait::Future { what, .. } => (*what).to_string(),
            Wait::Sleep(until) if heap::in_range(*until) => {
                format!("sleep until {until:?}")
            }
            Wait::Sleep(_) => "sleep past the clock's range (forever)".to_string(),
            Wait::Io { fd, dir } => format!("I/O: fd {fd} to become {}able", dir.verb()),
            Wait::Thread => "a closure running on a worker thread".to_string(),
        }
    }
}

/// Something a task can wait on that a cancellation of the waiter cancels
/// (a `Future`).
pub(crate) trait CancelWait {
    /// Cancels it, waking its waiters; `false` if it was already done.
    fn cancel_for_waiter(self: Rc<Self>) -> bool;
}

/// What a task tells the loop when it suspends (curio's traps, reduced to
/// the two the loop must act on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trap {
    /// `yield_now`: put me at the back of the ready queue. The loop does it
    /// with the reference it already holds, so the switch clones nothing.
    Requeue,
    /// Parked on something that will wake me (or already did).
    Park,
}

/// One entry of the ready queue: a unit of work for the next batch.
pub(crate) enum Runnable {
    /// Resume this task (it is `Scheduled`).
    Step(TaskRef),
    /// Wake this task if it is still in that suspension: the expired-timer
    /// half of a sleep, one hop before the task runs, as asyncio's sleep
    /// future does.
    Wake(Waker),
    /// A one-shot callback (done callbacks).
    Call(Box<dyn FnOnce()>),
    /// A cancellable callback (`call_soon`, expired `call_later`).
    Handle(Rc<HandleInner>),
    /// A timeout's timer expired for this scope of this task: interrupt
    /// the task there, unless the scope closed or was rescheduled since.
    Interrupt(TaskRef, u64),
    /// This task panicked with no handle left to join it: report the panic,
    /// unless a done callback (queued before this) took the result or a
    /// handle appeared. Run even by `close`, so a panic in the last tick
    /// before the loop stops is still reported (asyncio reports it when the
    /// task is collected).
    Report(TaskRef),
}

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

impl TimerWork for TimerAction {
    #[inline]
    fn is_dead(&self, seq: u64) -> bool {
        match self {
            TimerAction::Wake(w) => !w.is_current(),
            TimerAction::Call(h) => !h.is_pending(),
            TimerAction::Scope(task, id) => {
                !scope::scope_timer_is(&task.header, *id, ScopeTimer::Armed(seq))
            }
        }
    }
}

impl TimerAction {
    /// The ready-queue entry for a live timer that expired (pushed under
    /// `seq`).
    #[inline(always)]
    fn into_runnable(self, seq: u64) -> Runnable {
        match self {
            TimerAction::Wake(w) => Runnable::Wake(w),
            TimerAction::Call(h) => Runnable::Handle(h),
            TimerAction::Scope(task, id) => {
                scope::set_timer(&task.header, id, ScopeTimer::Armed(seq), ScopeTimer::Firing);
                Runnable::Interrupt(task, id)
            }
        }
    }
}

/// Context passed to the exception handler.
#[derive(Debug, Clone)]
pub struct ExceptionContext {
    /// One line describing what happened.
    pub message: String,
    /// The task concerned, if any.
    pub task: Option<crate::TaskId>,
    /// That task's name.
    pub task_name: Option<String>,
    /// The panic message, if a panic is the cause.
    pub panic: Option<String>,
}

type ExceptionHandler = Rc<dyn Fn(&ExceptionContext)>;

/// Options fixed when a loop is built (see `Builder`).
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) stack_size: usize,
    pub(crate) seed: Option<u64>,
    pub(crate) virtual_time: bool,
}

/// Every task of a loop that is not yet done: a slab whose free slots are
/// reused, so registering and removing a task is O(1) with no search.
#[derive(Default)]
struct TaskTable {
    /// `Some` for a live task; `Header::slot_index` is its index here.
    slots: Vec<Option<TaskRef>>,
    /// Indices of `None` slots, reused first.
    free: Vec<usize>,
    /// Number of `Some` slots.
    live: usize,
}

impl TaskTable {
    fn insert(&mut self, task: TaskRef) -> usize {
        self.live += 1;
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(task);
                i
            }
            None => {
                self.slots.push(Some(task));
                self.slots.len() - 1
            }
        }
    }

    /// Empties slot `i`, handing back its task for the caller to drop once
    /// the table is no longer borrowed.
    fn remove(&mut self, i: usize) -> Option<TaskRef> {
        self.free.push(i);
        self.live -= 1;
        self.slots[i].take()
    }

    /// The live tasks, cloned out so the table can change while they are
    /// acted on (cancelling or dropping a task unregisters it).
    fn snapshot(&self) -> Vec<TaskRef> {
        self.slots.iter().flatten().cloned().collect()
    }
}

/// The state of one event loop, shared by every handle to it.
pub(crate) struct Core {
    /// Work for the current and coming batches, FIFO: while a batch runs,
    /// its entries not yet run are the front of the queue, and work appended
    /// meanwhile waits behind them for the next tick. Invariant: a task is
    /// `Scheduled` exactly while one `Step` for it is queued, with one
    /// transient exception: a task that yielded with `Trap::Requeue` is
    /// `Scheduled` from its `yield_now` until the loop pushes it, right after
    /// the resume returns.
    pub(crate) ready: RefCell<VecDeque<Runnable>>,
    /// Every task not yet done, so the loop can report a deadlock and unwind
    /// the leftovers at close.
    tasks: RefCell<TaskTable>,
    /// Whether the table holds at least `PREFETCH_MIN_TASKS` tasks (kept in
    /// step with it by `register`/`unregister`): then the batch loop
    /// prefetches ahead.
    prefetch: Cell<bool>,
    /// Default stack size for tasks.
    pub(crate) stack_size: usize,
    /// xorshift state for seeded mode; `None` is strict FIFO.
    rng: Cell<Option<u64>>,
    /// Set by `stop()`: the loop leaves after the current tick.
    stopping: Cell<bool>,
    /// Whether a `run_*` call (or `shutdown`) is driving this loop now.
    /// Set and cleared only by `EventLoop::run_loop`'s guard.
    pub(crate) running: Cell<bool>,
    /// Set for the whole of [`Core::close`] (and after): tasks' coroutines
    /// are being dropped, and a second `close` from a destructor is a no-op.
    pub(crate) closing: Cell<bool>,
    /// Set once [`Core::close`] has finished; never cleared.
    pub(crate) closed: Cell<bool>,
    handler: RefCell<Option<ExceptionHandler>>,
    /// The timer heap (stage 4).
    pub(crate) timers: Timers<TimerAction>,
    /// The loop clock, real or virtual (stage 4).
    pub(crate) clock: Clock,
    /// The reactor (stage 5), made on first use: a loop that never does
    /// I/O or meets another thread opens no poller.
    reactor: OnceCell<Reactor<Waker>>,
    /// What remote handles share with this loop, made on first use (with
    /// the reactor, whose poller they notify).
    remote: OnceCell<Arc<remote::Shared>>,
    /// Tasks waiting on a worker thread (`to_thread`), by job id: while
    /// any is here the loop blocks for the result instead of reporting a
    /// deadlock, and the virtual clock does not jump. An entry leaves when
    /// the job's result arrives or its task stops waiting.
    threads: RefCell<std::collections::HashMap<u64, Waker>>,
    /// The next job id.
    next_job: Cell<u64>,
    /// Reused buffer of the wakers the reactor hands back each tick.
    woken: RefCell<Vec<Waker>>,
}

thread_local! {
    /// The loop running on this thread, if any.
    static CURRENT: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
    /// The task being resumed right now on this thread, if any (`None`
    /// between steps and while a callback runs). Only one loop runs per
    /// thread, so one slot serves them all.
    static CURRENT_TASK: Cell<Option<TaskRef>> = const { Cell::new(None) };
}

/// The task running now, if any.
#[inline(always)]
pub(crate) fn try_current_task() -> Option<TaskRef> {
    CURRENT_TASK.with(|c| {
        let t = c.take();
        let out = t.clone();
        c.set(t);
        out
    })
}

/// The task running now.
///
/// # Panics
///
/// Outside a running loop, or in a callback (outside any task); the message
/// names `what` and the fix.
#[inline(always)]
pub(crate) fn current_task(what: &str) -> TaskRef {
    match try_current_task() {
        Some(t) => t,
        None => not_in_a_task(what),
    }
}

#[cold]
#[inline(never)]
fn not_in_a_task(what: &str) -> ! {
    let core = running(what);
    if core.closing.get() {
        panic!(
            "{what} called while the event loop is closing: it is unwinding the stacks of its \
             last tasks, and a task can no longer wait. Don't wait in a destructor, and let \
             bucle's unwinds pass through catch_unwind (resume_unwind the payload)"
        );
    }
    panic!(
        "{what} called from a callback, outside any task; only a task can wait. \
         Spawn a task (bucle::spawn) to do the waiting"
    )
}

/// The loop running on this thread.
///
/// # Panics
///
/// If none is: the message names `what` and the fix.
pub(crate) fn running(what: &str) -> Rc<Core> {
    match try_running() {
        Some(core) => core,
        None => panic!(
            "{what} called outside a running event loop; wrap it in bucle::run \
             (or EventLoop::run_until_complete)"
        ),
    }
}

/// The loop running on this thread, if any.
pub(crate) fn try_running() -> Option<Rc<Core>> {
    // `try_with`: a destructor may report from a thread-local's destructor
    // at thread exit, after this slot is gone.
    CURRENT
        .try_with(|c| c.try_borrow().ok().and_then(|c| c.clone()))
        .ok()
        .flatten()
}

/// Makes `core` this thread's running loop until the guard drops.
pub(crate) struct Enter {
    _private: (),
}

impl Enter {
    /// # Panics
    ///
    /// If a loop is already running on this thread (as asyncio refuses).
    pub(crate) fn new(core: &Rc<Core>, what: &str) -> Enter {
        CURRENT.with(|c| {
            let mut c = c.borrow_mut();
            if c.is_some() {
                panic!(
                    "{what}: cannot run an event loop while another is running on this thread; \
                     call the coroutine directly or spawn it as a task instead"
                );
            }
            *c = Some(core.clone());
        });
        Enter { _private: () }
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        CURRENT.with(|c| *c.borrow_mut() = None);
    }
}

impl Core {
    pub(crate) fn new(opts: Options) -> Rc<Core> {
        Rc::new(Core {
            ready: RefCell::new(VecDeque::with_capacity(64)),
            tasks: RefCell::new(TaskTable::default()),
            prefetch: Cell::new(false),
            stack_size: opts.stack_size,
            rng: Cell::new(opts.seed.map(|s| s ^ 0x9E37_79B9_7F4A_7C15 | 1)),
            stopping: Cell::new(false),
            running: Cell::new(false),
            closing: Cell::new(false),
            closed: Cell::new(false),
            handler: RefCell::new(None),
            timers: Timers::new(),
            clock: Clock::new(opts.virtual_time),
            reactor: OnceCell::new(),
            remote: OnceCell::new(),
            threads: RefCell::new(std::collections::HashMap::new()),
            next_job: Cell::new(0),
            woken: RefCell::new(Vec::new()),
        })
    }

    /// Adds a new task to the table and the back of the ready queue.
    pub(crate) fn register(&self, task: TaskRef) {
        let mut tasks = self.tasks.borrow_mut();
        let index = tasks.insert(task.clone());
        self.prefetch.set(tasks.live >= PREFETCH_MIN_TASKS);
        drop(tasks);
        task.header.slot_index.set(index);
        self.ready.borrow_mut().push_back(Runnable::Step(task));
    }

    fn unregister(&self, task: &TaskRef) {
        let i = task.header.slot_index.replace(usize::MAX);
        if i != usize::MAX {
            let mut tasks = self.tasks.borrow_mut();
            let entry = tasks.remove(i);
            self.prefetch.set(tasks.live >= PREFETCH_MIN_TASKS);
            drop(tasks);
            // Never the last reference (the caller holds `task`), but
            // dropped outside the borrow all the same.
            drop(entry);
        }
    }

    /// Number of tasks not yet done.
    pub(crate) fn live_tasks(&self) -> usize {
        self.tasks.borrow().live
    }

    /// Puts a waiting task at the back of the ready queue.
    pub(crate) fn schedule(&self, task: TaskRef) {
        let h = &task.header;
        debug_assert_ne!(h.state.get(), State::Done);
        h.state.set(State::Scheduled);
        let old = h.take_wait();
        self.ready.borrow_mut().push_back(Runnable::Step(task));
        // After the push, with no borrow held: it may hold the last
        // reference to a task or future (see `drop_wait`).
        drop_wait(old);
    }

    pub(crate) fn push_ready(&self, r: Runnable) {
        self.ready.borrow_mut().push_back(r);
    }

    /// Records that a timer in the heap died (its work was called off);
    /// drops what a compaction removed, with no borrow held.
    pub(crate) fn note_dead_timer(&self) {
        drop_all(self.timers.note_dead());
    }

    pub(crate) fn call_soon_boxed(&self, f: Box<dyn FnOnce()>) {
        self.push_ready(Runnable::Call(f));
    }

    pub(crate) fn stop(&self) {
        self.stopping.set(true);
    }

    /// Whether a stop was requested; clears the request.
    pub(crate) fn take_stop(&self) -> bool {
        self.stopping.replace(false)
    }

    pub(crate) fn set_exception_handler(&self, h: Option<ExceptionHandler>) {
        let old = std::mem::replace(&mut *self.handler.borrow_mut(), h);
        drop_user(old);
    }

    /// Hands `ctx` to the exception handler (default: one line on stderr).
    ///
    /// A handler that panics is reported once on stderr, with what it was
    /// reporting, and the panic goes no further (asyncio's "Unhandled error
    /// in exception handler"): the handler is never called for its own
    /// failure, and a report made from a destructor during an unwind cannot
    /// abort the process.
    pub(crate) fn report(&self, ctx: &ExceptionContext) {
        let handler = self.handler.borrow().clone();
        let Some(handler) = handler else {
            eprintln!("bucle: {}", ctx.message);
            return;
        };
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| handler(ctx))) {
            let msg = panic_message(&*payload);
            drop_payload(payload);
            eprintln!(
                "bucle: Unhandled error in exception handler: {msg}\n  while reporting: {}",
                ctx.message
            );
        }
        // The handler may have replaced itself: this may be the last
        // reference to the old one.
        drop_user(handler);
    }

    // ---------------------------------------------------------------------
    // The tick.

    /// Runs one loop iteration: (1) wait for I/O or time, (2) move expired
    /// timers to the ready queue, (3) run exactly the batch that was ready
    /// when it started.
    ///
    /// # Panics
    ///
    /// On deadlock (see [`Core::deadlock_report`]), with `who` naming the
    /// waiting party.
    pub(crate) fn run_once(&self, who: &str) {
        let now = self.phase_wait(who);
        self.phase_expire_timers(now);
        self.phase_run_ready();
    }

    /// Phase 1: wait for I/O — block until something can be ready, and
    /// append the tasks whose I/O is ready. Never blocks if the ready queue
    /// has work (it still polls, without blocking, while anything outside
    /// the loop can wake a task); otherwise blocks in the poller until the
    /// next timer (or for good if there is none) while a task waits on I/O,
    /// a worker thread or a remote handle may call; otherwise sleeps until
    /// the next timer (on the virtual clock, jumps to it); otherwise nothing
    /// can ever wake the loop, and it reports the deadlock.
    ///
    /// On the virtual clock with something outside the loop: what has
    /// already arrived is delivered first (a non-blocking poll), and the
    /// clock jumps only if that made nothing ready and no worker thread is
    /// running; else the loop blocks, for real, until one of them wakes it.
    ///
    /// Returns the loop time if it read the clock and then did not block,
    /// so phase 2 need not read it again.
    #[inline(always)]
    fn phase_wait(&self, who: &str) -> Option<Duration> {
        if !self.ready.borrow().is_empty() || self.stopping.get() {
            // Work to do, or asked to stop after this tick: don't block.
            // (Without a reactor there is no I/O, thread or remote call to
            // look at: the pure task-switching tick pays one load here.)
            if self.reactor.get().is_some() {
                self.poll_busy();
            }
            return None;
        }
        self.wait_idle(who)
    }

    /// Phase 1 with work ready: calls other threads sent, and a look
    /// (without blocking) at the I/O if anything outside can wake a task.
    #[inline(never)]
    fn poll_busy(&self) {
        self.drain_remote();
        if self.outside_can_wake() {
            self.poll_io(Some(Duration::ZERO));
        }
    }

    /// Phase 1 with nothing ready: see [`Core::phase_wait`].
    #[inline(never)]
    fn wait_idle(&self, who: &str) -> Option<Duration> {
        // Calls other threads already sent (their handles may be gone).
        self.drain_remote();
        if !self.ready.borrow().is_empty() {
            return None;
        }
        let mut removed = Vec::new();
        let next = self.timers.next_deadline(&mut removed);
        if !removed.is_empty() {
            // Dropping dead timers' actions may run destructors that wake a
            // task or schedule a callback: then there is work after all.
            drop_all(removed);
            if !self.ready.borrow().is_empty() {
                return None;
            }
        }
        if !self.outside_can_wake() {
            return match next {
                Some(deadline) => self.clock.wait_until(deadline),
                None => panic!("{}", self.deadlock_report(who)),
            };
        }
        if self.clock.is_virtual() {
            self.poll_io(Some(Duration::ZERO));
            if !self.ready.borrow().is_empty() {
                return None;
            }
            if let Some(deadline) = next.filter(|_| self.threads.borrow().is_empty()) {
                return self.clock.wait_until(deadline);
            }
            self.poll_io(None);
            return None;
        }
        let timeout = next.map(|d| d.saturating_sub(self.clock.now()));
        self.poll_io(timeout);
        None
    }

    /// Whether something outside the ready queue and the timers may still
    /// make a task ready: a task waiting on I/O or on a worker thread, or a
    /// remote handle in another thread's hands.
    #[inline(always)]
    fn outside_can_wake(&self) -> bool {
        // Threads and remote handles need the reactor's poller: a loop
        // without one (pure task switching) pays a single load here.
        match self.reactor.get() {
            None => false,
            Some(r) => r.waiters() > 0 || self.threads_or_remotes(),
        }
    }

    #[inline(never)]
    fn threads_or_remotes(&self) -> bool {
        !self.threads.borrow().is_empty()
            || self.remote.get().is_some_and(|r| Arc::strong_count(r) > 1)
    }

    /// Polls the reactor for up to `timeout`, wakes the tasks whose I/O is
    /// ready, and moves the callbacks sent by other threads to the ready
    /// queue.
    ///
    /// # Panics
    ///
    /// If the OS poller fails (it never should: `EINTR` is retried).
    fn poll_io(&self, timeout: Option<Duration>) {
        if let Some(reactor) = self.reactor.get() {
            let mut woken = std::mem::take(&mut *self.woken.borrow_mut());
            if let Err(e) = reactor.wait(timeout, &mut woken) {
                panic!("bucle: the OS poller failed while waiting for I/O: {e}");
            }
            // Woken with no borrow held (a wake may drop user values).
            for w in woken.drain(..) {
                w.wake_on(self);
            }
            *self.woken.borrow_mut() = woken;
        }
        self.drain_remote();
    }

    /// Moves the callbacks other threads sent to the ready queue.
    #[inline]
    fn drain_remote(&self) {
        if let Some(remote) = self.remote.get() {
            for f in remote.take() {
                self.push_ready(Runnable::Call(f));
            }
        }
    }

    /// The reactor, made on first use.
    ///
    /// # Errors
    ///
    /// If the OS refuses a poller (out of file descriptors, typically).
    pub(crate) fn reactor(&self) -> io::Result<&Reactor<Waker>> {
        if let Some(r) = self.reactor.get() {
            return Ok(r);
        }
        let r = Reactor::new()?;
        Ok(self.reactor.get_or_init(|| r))
    }

    /// Records that a task waits (with `waker`) for a worker thread's job;
    /// returns the job's id.
    pub(crate) fn park_for_thread(&self, waker: Waker) -> u64 {
        let id = self.next_job.get();
        self.next_job.set(id + 1);
        self.threads.borrow_mut().insert(id, waker);
        id
    }

    /// The task waiting on job `id` stops waiting (its waker, if still
    /// here, is handed back for the caller to drop).
    pub(crate) fn unpark_thread(&self, id: u64) -> Option<Waker> {
        self.threads.borrow_mut().remove(&id)
    }

    /// Job `id`'s result is in: wake its task, if it still waits.
    pub(crate) fn thread_done(&self, id: u64) {
        let waker = self.unpark_thread(id);
        if let Some(w) = waker {
            w.wake_on(self);
        }
    }

    /// A remote handle to this loop (see [`Remote`]).
    ///
    /// # Errors
    ///
    /// If the reactor cannot be made (see [`Core::reactor`]).
    pub(crate) fn remote(&self) -> io::Result<Remote> {
        if let Some(shared) = self.remote.get() {
            return Ok(Remote::new(shared.clone()));
        }
        let shared = remote::Shared::new(self.reactor()?.poller().clone());
        if self.closed.get() {
            drop(shared.close());
        }
        Ok(Remote::new(self.remote.get_or_init(|| shared).clone()))
    }

    /// Phase 2: append every timer's work due at `now` (read now if `None`),
    /// in (deadline, creation) order.
    fn phase_expire_timers(&self, now: Option<Duration>) {
        if self.timers.is_empty() {
            // No timer: don't even read the clock (a syscall-free vDSO call,
            // but still the largest cost of a tick of pure task switching).
            return;
        }
        let now = now.unwrap_or_else(|| self.clock.now());
        let mut dead = Vec::new();
        {
            let mut ready = self.ready.borrow_mut();
            self.timers.expire(
                now,
                |action, seq| ready.push_back(action.into_runnable(seq)),
                &mut dead,
            );
        }
        // Dead timers' actions may hold the last reference to a finished
        // task: dropped here, with the ready queue no longer borrowed.
        drop_all(dead);
    }

    /// Phase 3: run the batch. Work appended while it runs waits for the
    /// next tick.
    fn phase_run_ready(&self) {
        // The batch is the first `n` entries; whatever they append lands
        // behind them. (Counting rather than swapping in a second queue:
        // moving a `VecDeque` whose length was just stored reloads it with
        // wider loads than the stores, a stall the CPU cannot forward.)
        let n = self.ready.borrow().len();
        if let Some(mut x) = self.rng.get() {
            let mut ready = self.ready.borrow_mut();
            let batch = &mut ready.make_contiguous()[..n];
            for i in (1..batch.len()).rev() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                batch.swap(i, (x % (i as u64 + 1)) as usize);
            }
            self.rng.set(Some(x));
        }
        if self.prefetch.get() {
            self.run_batch_prefetching(n);
        } else {
            for _ in 0..n {
                let next = self.ready.borrow_mut().pop_front();
                let Some(next) = next else { break };
                self.run(next);
            }
        }
    }

    /// The batch loop for many tasks: the same, with [`prefetch_ahead`]
    /// before each entry. A loop of its own, out of line, because merely
    /// having the prefetch code in the common loop (even never executed)
    /// measurably slows its small-batch switches.
    #[inline(never)]
    fn run_batch_prefetching(&self, n: usize) {
        for left in (0..n).rev() {
            let next = {
                let mut ready = self.ready.borrow_mut();
                let next = ready.pop_front();
                // Only within the batch: later entries may not run soon.
                if left > 0 {
                    prefetch_ahead(&ready, left);
                }
                next
            };
            let Some(next) = next else { break };
            self.run(next);
        }
    }

    /// Runs one entry of the batch.
    #[inline(always)]
    fn run(&self, next: Runnable) {
        match next {
            Runnable::Step(task) => self.step(task),
            Runnable::Wake(waker) => waker.wake_on(self),
            Runnable::Call(f) => self.run_callback(f),
            Runnable::Handle(h) => {
                if let Some(f) = h.take() {
                    self.run_callback(f);
                }
            }
            Runnable::Interrupt(task, id) => scope::deliver_interrupt(&task, id),
            Runnable::Report(task) => report_if_unretrieved(&task),
        }
    }

    /// Runs a callback; a panic in it is reported, and goes no further.
    fn run_callback(&self, f: Box<dyn FnOnce()>) {
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(f)) {
            let msg = panic_message(&*payload);
            drop_payload(payload);
            self.report(&ExceptionContext {
                message: format!("a callback panicked: {msg}"),
                task: None,
                task_name: None,
                panic: Some(msg),
            });
        }
    }

    /// Resumes one task until it suspends or finishes.
    ///
    /// Inlined into the batch loop on purpose: see "Balanced returns" in
    /// docs/performance.md. Between two resumes the loop must not return
    /// from a frame the switch crossed.
    #[inline(always)]
    fn step(&self, task: TaskRef) {
        let h = &task.header;
        if h.state.get() != State::Scheduled {
            return;
        }
        let mut slot = h.generator.borrow_mut();
        let Some(generator) = slot.as_mut() else {
            return;
        };
        if !generator.is_started() && h.interrupt.get() == Some(Interrupt::Cancel) {
            drop(slot);
            self.cancel_unstarted(&task);
            return;
        }
        h.state.set(State::Running);
        CURRENT_TASK.with(|c| c.set(Some(task.clone())));
        // `resume` never unwinds: the task boundary (`run_body`) catches
        // every panic of the body, payloads and discarded values included,
        // so the reset below always runs. (A drop guard here cost 2 ns per
        // switch in `yield_now/2`.)
        let state = generator.resume(());
        CURRENT_TASK.with(Cell::take);
        match state {
            GeneratorState::Yielded(Trap::Requeue) => {
                drop(slot);
                self.ready.borrow_mut().push_back(Runnable::Step(task));
            }
            GeneratorState::Yielded(Trap::Park) => {}
            GeneratorState::Complete(()) => {
                let generator = slot.take();
                drop(slot);
                drop(generator);
                self.finish(&task);
            }
        }
    }

    /// Ends a task cancelled before its first step: it never runs.
    #[cold]
    #[inline(never)]
    fn cancel_unstarted(&self, task: &TaskRef) {
        let h = &task.header;
        let generator = h.generator.borrow_mut().take();
        // Drops the body's closure, and what it captured.
        drop_user(generator);
        h.outcome.set(Outcome::Cancelled);
        task.set_cancelled();
        self.finish(task);
    }

    /// Marks a task done and wakes what waits on it, in registration order.
    #[inline(never)]
    fn finish(&self, task: &TaskRef) {
        let h = &task.header;
        h.state.set(State::Done);
        h.interrupt.set(None);
        let wait = h.take_wait();
        self.unregister(task);
        let waiters = std::mem::take(&mut *h.waiters.borrow_mut());
        waiters.drain(|w| match w {
            Waiter::Wake(waker) => waker.wake(),
            Waiter::Callback(cb) => self.call_soon_boxed(cb),
        });
        if h.outcome.get() == Outcome::Panicked && h.handles.get() == 0 {
            // No handle can join it any more; report it unless a done
            // callback (they run first, from the queue) takes the result.
            self.push_ready(Runnable::Report(task.clone()));
        }
        drop_wait(wait);
    }

    /// The Go-style "all tasks are asleep" report.
    pub(crate) fn deadlock_report(&self, who: &str) -> String {
        let mut msg = format!(
            "bucle: deadlock: {who} is waiting, but no task is ready, no timer is pending and \
             nothing outside the loop can wake a task. Blocked tasks:"
        );
        let tasks = self.tasks.borrow();
        let mut blocked: Vec<_> = tasks.slots.iter().flatten().collect();
        blocked.sort_by_key(|t| t.header.id);
        for t in blocked {
            let h = &t.header;
            msg.push_str(&format!(
                "\n  {} waits on {}",
                h.describe(),
                h.wait.borrow().describe()
            ));
        }
        msg
    }

    /// Requests cancellation of every task not yet done (asyncio.run's
    /// `_cancel_all_tasks`).
    pub(crate) fn cancel_all(&self) {
        let all = self.tasks.borrow().snapshot();
        for t in all {
            cancel_task(&t);
        }
    }

    /// Drops every remaining task's generator (unwinding its stack), and
    /// clears the queues and the timers. Called by `EventLoop::close`, with
    /// this loop entered as the thread's current loop.
    ///
    /// Destructors that run meanwhile may spawn, schedule callbacks or
    /// timers, cancel tasks: each pass sweeps up what the previous one left,
    /// until a pass finds nothing. A `close` called from one of them returns
    /// at once; this one finishes the job. Panic reports still queued are
    /// delivered rather than dropped.
    pub(crate) fn close(&self) {
        if self.closing.replace(true) {
            return;
        }
        loop {
            // Each pass releases what the previous one left; the destructors
            // it runs may create more (spawn, call_soon, call_later), so the
            // loop ends only with a pass that found nothing at all.
            let mut found = false;
            if let Some(remote) = self.remote.get() {
                let calls = remote.close();
                found |= !calls.is_empty();
                drop_all(calls);
            }
            let timers = self.timers.clear();
            found |= timers.iter().any(Option::is_some);
            drop_all(timers);
            let pending = self.ready.borrow_mut().drain(..).collect::<Vec<_>>();
            let all = self.tasks.borrow().snapshot();
            if !found && all.is_empty() && pending.is_empty() {
                break;
            }
            for r in pending {
                match r {
                    Runnable::Report(task) => report_if_unretrieved(&task),
                    other => drop_user(other),
                }
            }
            for t in all {
                let h = &t.header;
                if h.state.get() == State::Done {
                    // Finished by a destructor of this close (a task
                    // dropped unstarted, say), and already unregistered.
                    continue;
                }
                h.closing.set(true);
                let generator = h.generator.borrow_mut().take();
                // A suspended coroutine is force-unwound (its destructors
                // run; the task boundary swallows that unwind), an
                // unstarted one drops its closure.
                drop_user(generator);
                h.state.set(State::Done);
                h.outcome.set(Outcome::Cancelled);
                h.interrupt.set(None);
                let wait = h.take_wait();
                let waiters = std::mem::take(&mut *h.waiters.borrow_mut());
                t.set_cancelled();
                self.unregister(&t);
                drop_wait(wait);
                drop_user(waiters);
            }
        }
        self.closed.set(true);
    }
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLoop")
            .field("running", &self.running.get())
            .field("closed", &self.closed.get())
            .field("ready", &self.ready.borrow().len())
            .field("tasks", &self.live_tasks())
            .field(
                "io_sources",
                &self.reactor.get().map_or(0, Reactor::sources),
            )
            .finish()
    }
}

// -------------------------------------------------------------------------
// Dropping user values (rules 1 and 2 of the module docs).

/// Drops a value whose destructor may run user code: a task (its result),
/// a callback, a timer's action. Call it only with no kernel borrow held. A
/// panic in the destructor is caught and reported through the exception
/// handler, never propagated into the kernel (asyncio prints "Exception
/// ignored in ..." for a failing `__del__` and carries on).
#[inline]
pub(crate) fn drop_user<T>(value: T) {
    if std::mem::needs_drop::<T>() {
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(move || drop(value))) {
            destructor_panicked(payload);
        }
    }
}

/// [`drop_user`] for each value in turn: one destructor's panic does not
/// skip the others.
pub(crate) fn drop_all<T>(values: Vec<T>) {
    for v in values {
        drop_user(v);
    }
}

#[cold]
#[inline(never)]
fn destructor_panicked(payload: Box<dyn Any + Send>) {
    let msg = panic_message(&*payload);
    drop_payload(payload);
    let ctx = ExceptionContext {
        message: format!("a destructor run by the event loop panicked: {msg}"),
        task: None,
        task_name: None,
        panic: Some(msg),
    };
    match try_running() {
        Some(core) => core.report(&ctx),
        None => eprintln!("bucle: {}", ctx.message),
    }
}

/// The message of a string panic payload (`panic!` with a message).
pub(crate) fn payload_str(payload: &(dyn Any + Send)) -> Option<&str> {
    if let Some(s) = payload.downcast_ref::<&str>() {
        Some(s)
    } else {
        payload.downcast_ref::<String>().map(String::as_str)
    }
}

/// Drops a panic payload so that a panic in the payload's own destructor
/// cannot escape (std does the same with a thread's result): such a second
/// payload is leaked rather than dropped.
pub(crate) fn drop_payload(payload: Box<dyn Any + Send>) {
    if let Err(again) = panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}

/// Drops a task's former [`Wait`], which may hold the last reference to the
/// task or future it waited on (and so their results). Cheap for the waits
/// that hold nothing.
#[inline(always)]
pub(crate) fn drop_wait(wait: Wait) {
    match wait {
        Wait::Nothing | Wait::Sleep(_) | Wait::Io { .. } | Wait::Thread => {}
        other => drop_user(other),
    }
}

// -------------------------------------------------------------------------
// Suspension, from inside a task.

/// Starts a new suspension of `me` and returns the waker for it. Register
/// the waker wherever the wake-up will come from, then [`park`].
#[inline(always)]
pub(crate) fn prepare_wait(me: &TaskRef) -> Waker {
    let h = &me.header;
    let seq = h.wait_seq.get() + 1;
    h.wait_seq.set(seq);
    Waker {
        task: me.clone(),
        seq,
    }
}

/// Suspends the current task `me` until woken, recording `wait`. On
/// resumption, performs any pending interrupt (by unwinding).
#[inline(always)]
pub(crate) fn park(me: &TaskRef, wait: Wait, what: &str) {
    let h = &me.header;
    // `replace`, not assignment: the old value (always `Wait::Nothing` for
    // a running task) is dropped after the new one is stored.
    let old = std::mem::replace(&mut *h.wait.borrow_mut(), wait);
    drop(old);
    h.state.set(State::Waiting);
    if h.interrupt.get().is_some() && h.unwinding.get().is_none() {
        // Cancelled while running: cancel what it now waits on, as asyncio
        // does when a task with `_must_cancel` awaits. (The running task's
        // loop is alive: it is the one running.)
        if let Some(core) = h.core() {
            interrupt_wait(&core, me);
        }
    }
    suspend(me, Trap::Park, what);
}

/// I/O operations a task may complete in a row without suspending before it
/// yields to the others anyway (tokio's coop budget): a socket that is
/// always ready must not starve the rest of the loop. Kept per task in
/// `Header::budget`; spent and refilled by the I/O layer.
pub const COOP_BUDGET: u32 = 128;

/// Live tasks from which the loop prefetches ahead (see [`prefetch_ahead`]).
/// Below it their hot lines stay in the L1 and L2 caches anyway; from a few
/// hundred sleepers on (their order of resumption is then the timers',
/// not the spawn order) prefetching measurably shortens each resume.
const PREFETCH_MIN_TASKS: usize = 256;

/// Software pipelining for big batches: while one entry runs, pull in the
/// stack top of the next task to run and the header of the one after.
///
/// With thousands of tasks, their headers and stacks fall out of the caches
/// (and their pages out of the TLB); resuming a task then stalls first on
/// its header, then on its stack, for hundreds of nanoseconds each. Asking
/// for them a step early overlaps those misses with useful work (measured:
/// about a third off the CPU time per sleep with 10,000 sleeping tasks). A
/// prefetch is only a hint, so a stale address costs nothing but the hint.
#[inline(always)]
fn prefetch_ahead(ready: &VecDeque<Runnable>, left: usize) {
    if let Some(Runnable::Step(t)) = ready.front() {
        // Its header was prefetched one entry ago. The switch restores
        // registers from just below the hint.
        let sp = t.header.sp_hint.get();
        stack::prefetch(sp.wrapping_sub(64));
        stack::prefetch(sp);
    }
    if left < 2 {
        return;
    }
    let header = match ready.get(1) {
        Some(Runnable::Step(t)) => &t.header,
        Some(Runnable::Wake(w)) => &w.task.header,
        _ => return,
    };
    let at = std::ptr::from_ref(header) as usize;
    stack::prefetch(at);
    stack::prefetch(at + 64);
    stack::prefetch(at + 128);
}

/// Suspends the current task and has the loop put it at the back of the
/// ready queue.
#[inline(always)]
pub(crate) fn yield_task(me: &TaskRef, what: &str) {
    me.header.state.set(State::Scheduled);
    suspend(me, Trap::Requeue, what);
}

#[inline(always)]
fn suspend(me: &TaskRef, trap: Trap, what: &str) {
    let h = &me.header;
    if h.reserved.get() != 0 {
        if let Some(core) = h.core() {
            scope::arm_reserved(&core, me);
        }
    }
    // `me` lives in a caller's frame on this stack, a little above where
    // the switch saves the registers: the loop prefetches around it before
    // resuming us.
    h.sp_hint.set(std::ptr::from_ref(me) as usize);
    if h.yielder.suspend(trap).is_err() {
        nested_generator(what);
    }
    // Resumed by the loop (state is `Running` again). An interrupt is
    // performed here unless the task is already unwinding (see
    // `Header::unwinding`): then it waits for that unwind to be caught.
    if h.interrupt.get().is_some() && h.unwinding.get().is_none() {
        let interrupt = h.interrupt.take().expect("checked just above");
        h.unwinding.set(Some(interrupt));
        match interrupt {
            Interrupt::Cancel => panic::resume_unwind(Box::new(CancelledUnwind)),
            Interrupt::Scope(id) => panic::resume_unwind(Box::new(ScopeUnwind(id))),
        }
    }
}

#[cold]
#[inline(never)]
fn nested_generator(what: &str) -> ! {
    panic!(
        "{what} was called on the stack of a generator nested inside a task; only code \
         running on the task's own stack can suspend it. Yield the value out of the nested \
         generator and wait in the task instead"
    );
}

/// Makes a waiting task give up its wait: cancels what it waits on where
/// asyncio would, else wakes it now.
fn interrupt_wait(core: &Core, task: &TaskRef) {
    let h = &task.header;
    if h.state.get() != State::Waiting {
        return;
    }
    let wait = h.wait.borrow().clone();
    match wait {
        Wait::Nothing => {}
        Wait::Join(other) => {
            // asyncio forwards the cancel to the awaited task and, when
            // that task takes it, does not cancel the awaiting one: it
            // gets the awaited task's outcome (see `Task::wait_done`).
            if cancel_task(&other) {
                if let Some(interrupt) = h.interrupt.take() {
                    let merged = match h.forwarded.get() {
                        Some(Interrupt::Cancel) => Interrupt::Cancel,
                        _ => interrupt,
                    };
                    h.forwarded.set(Some(merged));
                }
            }
        }
        Wait::Future { future, .. } => {
            if !future.cancel_for_waiter() && h.state.get() == State::Waiting {
                core.schedule(task.clone());
            }
        }
        Wait::Shield(_) | Wait::Sleep(_) | Wait::Io { .. } | Wait::Thread => {
            core.schedule(task.clone())
        }
    }
}

/// `Task::cancel`: request an unwind to the task boundary.
pub(crate) fn cancel_task(task: &TaskRef) -> bool {
    let h = &task.header;
    if h.state.get() == State::Done {
        return false;
    }
    if h.unwinding.get() == Some(Interrupt::Cancel) {
        // Already unwinding for a cancel: nothing more to do, and its
        // destructors' waits must not be interrupted (see
        // `Header::unwinding`).
        return true;
    }
    if h.interrupt.replace(Some(Interrupt::Cancel)) == Some(Interrupt::Cancel) {
        // Already being cancelled: what it waits on was cancelled then (and
        // propagating again would loop forever around a cycle of joins).
        return true;
    }
    if h.state.get() == State::Waiting && h.unwinding.get().is_none() {
        if let Some(core) = h.core() {
            interrupt_wait(&core, task);
        }
    }
    true
}

/// A scope's timer or abort fired: unwind `task` to scope `scope`, if that
/// scope is still open and nothing else is already pending.
pub(crate) fn fire_scope(task: &TaskRef, scope: u64) {
    let h = &task.header;
    if h.state.get() == State::Done {
        return;
    }
    let scopes = h.scopes.borrow();
    let Some(depth) = scopes.iter().position(|s| s.id == scope) else {
        return;
    };
    match h.interrupt.get() {
        // A cancellation unwinds past every scope anyway.
        Some(Interrupt::Cancel) => return,
        // Unwinding to the outer of two fired scopes passes through the
        // inner one, so the outer one is what is reported (as asyncio does
        // when two timeouts cancel the task before it runs).
        Some(Interrupt::Scope(pending)) => {
            let pending_depth = scopes.iter().position(|s| s.id == pending);
            if pending_depth.is_some_and(|d| d <= depth) {
                return;
            }
        }
        None => {}
    }
    drop(scopes);
    if h.unwinding.get() == Some(Interrupt::Cancel) {
        // Unwinding past every scope anyway.
        return;
    }
    h.interrupt.set(Some(Interrupt::Scope(scope)));
    if h.state.get() == State::Waiting && h.unwinding.get().is_none() {
        if let Some(core) = h.core() {
            interrupt_wait(&core, task);
        }
    }
}

/// A queued [`Runnable::Report`]: reports the task's panic unless a handle
/// to it exists again or its result was taken.
fn report_if_unretrieved(task: &TaskRef) {
    if task.header.handles.get() == 0 {
        report_unretrieved_panic(&task.header);
    }
}

/// Reports a panic that no one will retrieve, once.
pub(crate) fn report_unretrieved_panic(h: &crate::runtime::task::Header) {
    if h.panic_seen.replace(true) {
        return;
    }
    let msg = h.panic_message.borrow().clone().unwrap_or_default();
    report_task_panic(h, "panicked and its result was never retrieved", msg);
}

/// Reports, through the task's loop (or on stderr if the loop is gone),
/// that the task of `h` panicked: "`Task-N` `what`: `msg`".
pub(crate) fn report_task_panic(h: &crate::runtime::task::Header, what: &str, msg: String) {
    let ctx = ExceptionContext {
        message: format!("{} {what}: {msg}", h.describe()),
        task: Some(h.id),
        task_name: Some(h.name()),
        panic: Some(msg),
    };
    match h.core() {
        Some(core) => core.report(&ctx),
        None => eprintln!("bucle: {}", ctx.message),
    }
}

// -------------------------------------------------------------------------
// Callback handles.

/// A scheduled callback; see [`Handle`](crate::Handle).
pub(crate) struct HandleInner {
    /// The callback until it runs or is cancelled.
    callback: RefCell<Option<Box<dyn FnOnce()>>>,
    cancelled: Cell<bool>,
    /// The loop time it is due, for timer handles.
    pub(crate) when: Option<Duration>,
}

impl HandleInner {
    pub(crate) fn new(f: Box<dyn FnOnce()>, when: Option<Duration>) -> Rc<Self> {
        Rc::new(HandleInner {
            callback: RefCell::new(Some(f)),
            cancelled: Cell::new(false),
            when,
        })
    }

    fn take(&self) -> Option<Box<dyn FnOnce()>> {
        self.callback.borrow_mut().take()
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.get()
    }

    /// Whether it is neither run nor cancelled.
    pub(crate) fn is_pending(&self) -> bool {
        self.callback.borrow().is_some()
    }

    pub(crate) fn cancel(&self) -> bool {
        let pending = self.take().is_some();
        if pending {
            self.cancelled.set(true);
        }
        pending
    }
}
