#![doc = include_str!("../../docs/03-awaitables.md")]

pub(crate) mod core;
pub(crate) mod list;
pub(crate) mod remote;
pub(crate) mod scope;
pub(crate) mod task;

use std::cell::Cell;
use std::fmt;
use std::io;
use std::panic;
use std::rc::{Rc, Weak};
use std::time::Duration;

use self::core::{Core, Enter, ExceptionContext, HandleInner, Options, Runnable, TimerAction};
pub use self::task::{AnyTask, JoinError, Task, TaskBuilder, TaskId};
use crate::stack::DEFAULT_STACK_SIZE;

/// An event loop: asyncio's `asyncio.new_event_loop()`.
///
/// Most programs use [`run`]; build a loop by hand to reuse it for several
/// `run_until_complete` calls, to run it forever, or to choose options
/// ([`EventLoop::builder`]).
///
/// ```
/// let lp = bucle::EventLoop::new();
/// assert_eq!(lp.run_until_complete(|| 1 + 1), 2);
/// assert_eq!(lp.run_until_complete(|| "again"), "again");
/// lp.close();
/// assert!(lp.is_closed());
/// ```
///
/// Dropping a loop closes it.
pub struct EventLoop {
    core: Rc<Core>,
}

/// Options for a new [`EventLoop`].
///
/// ```
/// use std::time::Duration;
///
/// let lp = bucle::EventLoop::builder()
///     .stack_size(64 * 1024)
///     .seed(7)
///     .virtual_time()
///     .build();
/// let slept = lp.run_until_complete(|| {
///     bucle::sleep(Duration::from_secs(3600)); // an hour, instantly
///     bucle::time()
/// });
/// assert_eq!(slept, Duration::from_secs(3600));
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    opts: Options,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            opts: Options {
                stack_size: DEFAULT_STACK_SIZE,
                seed: None,
                virtual_time: false,
            },
        }
    }
}

impl Builder {
    /// The default options: [`DEFAULT_STACK_SIZE`] stacks, strict FIFO order,
    /// the real clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// The stack size, in usable bytes, of each task spawned on this loop
    /// (unless [`TaskBuilder::stack_size`] says otherwise): rounded up to
    /// whole pages and to at least [`MIN_STACK_SIZE`](crate::MIN_STACK_SIZE).
    ///
    /// A size over [`MAX_STACK_SIZE`](crate::MAX_STACK_SIZE) (1 TiB) is not
    /// refused here but by each spawn: [`EventLoop::try_spawn`] and
    /// [`try_spawn`] return an [`InvalidInput`](io::ErrorKind::InvalidInput)
    /// error naming the size and the limit, the other spawns (and
    /// [`EventLoop::run_until_complete`], which spawns the main task) panic
    /// with that message.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.opts.stack_size = bytes;
        self
    }

    /// Seeded mode: each tick's batch of ready work is shuffled by a PRNG
    /// seeded with `seed`, reproducibly, to expose code that relies on an
    /// order asyncio does not promise. The default is strict FIFO.
    pub fn seed(mut self, seed: u64) -> Self {
        self.opts.seed = Some(seed);
        self
    }

    /// The virtual clock: time stands still while anything is ready, and
    /// jumps straight to the next timer when nothing is. Programs that sleep
    /// for hours finish at once, in the same order as on the real clock.
    pub fn virtual_time(mut self) -> Self {
        self.opts.virtual_time = true;
        self
    }

    /// Builds the loop.
    pub fn build(self) -> EventLoop {
        EventLoop {
            core: Core::new(self.opts),
        }
    }
}

impl Default for EventLoop {
    fn default() -> Self {
        Self::new()
    }
}

impl EventLoop {
    /// A loop with the default options.
    pub fn new() -> Self {
        Builder::new().build()
    }

    /// Options for a new loop.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// The loop's kernel, for the modules above it that add methods to
    /// `EventLoop` (`thread`).
    pub(crate) fn core(&self) -> &Rc<Core> {
        &self.core
    }

    pub(crate) fn check_open(&self, what: &str) {
        if self.core.closed.get() {
            panic!("{what}: the event loop is closed; create a new one");
        }
    }

    /// Runs `main` as the main task until it completes and returns its value:
    /// `loop.run_until_complete(main())`.
    ///
    /// Other tasks run along; those still pending when `main` returns stay
    /// pending (they run again if the loop runs again). As in asyncio, the
    /// loop stops one tick after `main` finishes, so tasks already ready get
    /// that step.
    ///
    /// # Panics
    ///
    /// A panic in `main` propagates out of this call. Also panics if a loop
    /// is already running on this thread, if the loop is closed, if
    /// [`stop`] is called before `main` completes, if `main` is cancelled,
    /// and on deadlock: when `main` waits and nothing can ever wake it, the
    /// message lists each blocked task and what it waits on.
    pub fn run_until_complete<T: 'static>(&self, main: impl FnOnce() -> T + 'static) -> T {
        let what = "EventLoop::run_until_complete";
        self.check_open(what);
        // Refuse a nested run before spawning anything, so a refused call
        // leaves no orphan main task behind.
        drop(Enter::new(&self.core, what));
        let main = TaskBuilder::new().spawn_on(&self.core, main);
        // The main task stops the loop when it is done, but only during this
        // call: if the run fails (a deadlock, a stop) and `main` finishes in
        // a later run, it must not stop that one (asyncio removes
        // `_run_until_complete_cb` in a `finally`).
        let armed = Rc::new(Cell::new(true));
        let weak = Rc::downgrade(&self.core);
        let stop_armed = armed.clone();
        main.on_done(Box::new(move || {
            if stop_armed.get() {
                if let Some(core) = weak.upgrade() {
                    core.stop();
                }
            }
        }));
        struct Disarm(Rc<Cell<bool>>);
        impl Drop for Disarm {
            fn drop(&mut self) {
                self.0.set(false);
            }
        }
        let disarm = Disarm(armed);
        self.run_loop(what, "the main task");
        drop(disarm);
        if !main.is_done() {
            panic!("{what}: the loop was stopped before the main task completed");
        }
        match main.take_result() {
            Some(Ok(value)) => value,
            Some(Err(JoinError::Panicked(msg))) => panic::resume_unwind(Box::new(msg)),
            Some(Err(JoinError::Cancelled)) => panic!("{what}: the main task was cancelled"),
            None => unreachable!("the main task's result is only taken here"),
        }
    }

    /// Runs the loop until [`stop`] is called: `loop.run_forever()`.
    ///
    /// # Panics
    ///
    /// If a loop is already running on this thread, if the loop is closed,
    /// or when nothing is left that could ever make progress (no ready task,
    /// no timer, no I/O) and `stop` was never called: rather than hang
    /// forever, it reports the blocked tasks.
    pub fn run_forever(&self) {
        let what = "EventLoop::run_forever";
        self.check_open(what);
        self.run_loop(what, "run_forever");
    }

    /// Drives the loop, one tick at a time, until `done` says so after a
    /// tick. Makes it the thread's current loop and marks it running for
    /// the duration; every exit, a panic included, undoes both and drops a
    /// pending stop request (asyncio's `run_forever` resets `_stopping` in
    /// its `finally`).
    fn run_loop(&self, what: &str, who: &str) {
        self.drive(what, who, |_| true, |core| core.take_stop());
    }

    /// Enters the loop and marks it running, runs `start` (ticks follow if
    /// it returns true), then ticks until `done`; every exit undoes both.
    fn drive(
        &self,
        what: &str,
        who: &str,
        start: impl FnOnce(&Core) -> bool,
        mut done: impl FnMut(&Core) -> bool,
    ) {
        let _enter = Enter::new(&self.core, what);
        struct Running<'a>(&'a Core);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.running.set(false);
                self.0.take_stop();
            }
        }
        self.core.running.set(true);
        let _running = Running(&self.core);
        if !start(&self.core) {
            return;
        }
        loop {
            self.core.run_once(who);
            if done(&self.core) {
                break;
            }
        }
    }

    /// Cancels every pending task and runs the loop until they have all
    /// finished unwinding: what `asyncio.run` does after `main` returns.
    /// The loop counts as running meanwhile (so it cannot be closed from
    /// one of the unwinding tasks).
    ///
    /// # Panics
    ///
    /// If the loop is closed, or if a loop (this one or another) is running
    /// on this thread — checked before anything is cancelled. On deadlock,
    /// when a task refuses to finish and nothing can wake it.
    pub fn shutdown(&self) {
        let what = "EventLoop::shutdown";
        self.check_open(what);
        // Entering refuses a nested call before anything is cancelled; the
        // cancellations happen inside, the loop running (a cancelled
        // future's done callbacks need it, and no destructor may close it).
        // A `stop()` from a task unwinding now means nothing: shutdown runs
        // until the tasks are done (and a standing stop request would keep
        // the loop from ever blocking).
        self.drive(
            what,
            "shutdown",
            |core| {
                core.cancel_all();
                core.live_tasks() > 0
            },
            |core| {
                core.take_stop();
                core.live_tasks() == 0
            },
        );
    }

    /// Asks the loop to stop after the current tick: `loop.stop()`.
    pub fn stop(&self) {
        self.core.stop();
    }

    /// Whether a `run_*` call is driving the loop right now.
    pub fn is_running(&self) -> bool {
        self.core.running.get()
    }

    /// Closes the loop: every task still pending is dropped, unwinding its
    /// stack (destructors run), and the loop cannot run again. Idempotent.
    ///
    /// # Panics
    ///
    /// If the loop is running.
    pub fn close(&self) {
        if self.core.running.get() {
            panic!("EventLoop::close: cannot close a running event loop; call stop() first");
        }
        if self.core.closed.get() {
            return;
        }
        let enter = core::try_running()
            .is_none()
            .then(|| Enter::new(&self.core, "close"));
        self.core.close();
        drop(enter);
    }

    /// Whether the loop has been closed.
    pub fn is_closed(&self) -> bool {
        self.core.closed.get()
    }

    /// Spawns a task on this loop (running or not): `loop.create_task`.
    ///
    /// # Panics
    ///
    /// If the loop is closed or no stack can be had.
    pub fn spawn<T: 'static>(&self, f: impl FnOnce() -> T + 'static) -> Task<T> {
        self.check_open("EventLoop::spawn");
        TaskBuilder::new().spawn_on(&self.core, f)
    }

    /// Like [`EventLoop::spawn`], reporting a stack that cannot be had.
    ///
    /// # Errors
    ///
    /// See [`try_spawn`].
    ///
    /// # Panics
    ///
    /// If the loop is closed.
    pub fn try_spawn<T: 'static>(&self, f: impl FnOnce() -> T + 'static) -> io::Result<Task<T>> {
        self.check_open("EventLoop::try_spawn");
        TaskBuilder::new().try_spawn_on(&self.core, f)
    }

    /// Schedules `callback` for the next tick: `loop.call_soon`.
    ///
    /// # Panics
    ///
    /// If the loop is closed (asyncio raises "Event loop is closed").
    pub fn call_soon(&self, callback: impl FnOnce() + 'static) -> Handle {
        self.check_open("EventLoop::call_soon");
        Handle::soon(&self.core, Box::new(callback))
    }

    /// Schedules `callback` after `delay` of loop time: `loop.call_later`.
    ///
    /// # Panics
    ///
    /// If the loop is closed.
    pub fn call_later(&self, delay: Duration, callback: impl FnOnce() + 'static) -> Handle {
        self.check_open("EventLoop::call_later");
        let when = self.core.clock.now().saturating_add(delay);
        Handle::timer(&self.core, when, Box::new(callback))
    }

    /// A `Send + Sync` handle other threads use to schedule callbacks on
    /// this loop ([`Remote::call_soon_threadsafe`](crate::Remote::call_soon_threadsafe)).
    ///
    /// # Panics
    ///
    /// If the OS refuses the loop a poller (out of file descriptors).
    pub fn remote(&self) -> crate::Remote {
        self.core
            .remote()
            .unwrap_or_else(|e| panic!("EventLoop::remote: could not open the loop's poller: {e}"))
    }

    /// The loop clock (see [`time`](crate::time)).
    pub fn time(&self) -> Duration {
        self.core.clock.now()
    }

    /// Replaces the handler for problems nobody else will see: panics in
    /// tasks whose result is never retrieved, panics in callbacks.
    /// asyncio's `loop.set_exception_handler`. The default prints one line
    /// on stderr.
    pub fn set_exception_handler(&self, handler: impl Fn(&ExceptionContext) + 'static) {
        self.core.set_exception_handler(Some(Rc::new(handler)));
    }

    /// Restores the default exception handler.
    pub fn clear_exception_handler(&self) {
        self.core.set_exception_handler(None);
    }
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        if !self.core.running.get() {
            self.close();
        }
    }
}

impl fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt(f)
    }
}

/// Runs `main` on a new event loop and returns its value: `asyncio.run`.
///
/// When `main` returns, every task still pending is cancelled and given the
/// chance to unwind, then the loop is closed.
///
/// ```
/// let answer = bucle::run(|| {
///     let t = bucle::spawn(|| 21);
///     t.join().unwrap() * 2
/// });
/// assert_eq!(answer, 42);
/// ```
///
/// # Panics
///
/// As [`EventLoop::run_until_complete`]: a panic in `main` propagates, a
/// deadlock is reported, and calling `run` inside a running loop is refused.
pub fn run<T: 'static>(main: impl FnOnce() -> T + 'static) -> T {
    let lp = EventLoop::new();
    // Refused inside a running loop before anything is set up.
    let out = panic::catch_unwind(panic::AssertUnwindSafe(|| lp.run_until_complete(main)));
    // As `asyncio.run`'s `finally`: the other tasks are cancelled and
    // unwound even when `main` failed. A failure of that shutdown gives way
    // to `main`'s own.
    let shutdown = panic::catch_unwind(panic::AssertUnwindSafe(|| lp.shutdown()));
    lp.close();
    match (out, shutdown) {
        (Ok(value), Ok(())) => value,
        (Ok(_), Err(payload)) => panic::resume_unwind(payload),
        (Err(payload), shutdown) => {
            if let Err(second) = shutdown {
                core::drop_payload(second);
            }
            panic::resume_unwind(payload)
        }
    }
}

/// Spawns `f` as a new task on the running loop: `asyncio.create_task`.
///
/// The task is appended to the back of the ready queue; it first runs
/// after the spawner suspends. Dropping the returned handle detaches the
/// task; it keeps running.
///
/// `f` may capture values of any size. A closure of up to about 1 KiB is
/// moved onto the task's new stack; a bigger one (corosensei moves at most
/// 1,024 bytes onto a new stack) is moved to the heap first, which costs
/// one allocation, and is only moved out of it when the task first runs.
/// Which of the two happens is decided at compile time from its type.
///
/// # Panics
///
/// Outside a running loop, or if no stack can be had (see [`try_spawn`]).
pub fn spawn<T: 'static>(f: impl FnOnce() -> T + 'static) -> Task<T> {
    TaskBuilder::new().spawn(f)
}

/// Like [`spawn`], reporting a stack that cannot be had.
///
/// # Errors
///
/// When the OS refuses another stack mapping, typically at
/// `vm.max_map_count` (about 32 000 live tasks by default); the message
/// names the limit and the fix. [`InvalidInput`](io::ErrorKind::InvalidInput)
/// when the loop's stack size ([`Builder::stack_size`]) is over
/// [`MAX_STACK_SIZE`](crate::MAX_STACK_SIZE).
///
/// # Panics
///
/// Outside a running loop.
pub fn try_spawn<T: 'static>(f: impl FnOnce() -> T + 'static) -> io::Result<Task<T>> {
    TaskBuilder::new().try_spawn(f)
}

/// Moves the current task to the back of the ready queue and lets the
/// others run: `await asyncio.sleep(0)`.
///
/// # Panics
///
/// Outside a task of a running loop. If the task has been cancelled, it
/// unwinds instead of returning.
#[inline(always)]
pub fn yield_now() {
    let what = "bucle::yield_now";
    core::yield_task(&core::current_task(what), what);
}

/// The task running now, or `None` in a callback: `asyncio.current_task()`.
///
/// # Panics
///
/// Outside a running loop.
pub fn current_task() -> Option<AnyTask> {
    drop(core::running("bucle::current_task"));
    core::try_current_task().map(AnyTask::new)
}

/// Schedules `callback` to run in the next tick: `loop.call_soon`.
///
/// # Panics
///
/// Outside a running loop.
pub fn call_soon(callback: impl FnOnce() + 'static) -> Handle {
    Handle::soon(&core::running("bucle::call_soon"), Box::new(callback))
}

/// A [`Remote`](crate::Remote) handle to the running loop, for other
/// threads.
///
/// # Panics
///
/// Outside a running loop, or if the OS refuses the loop a poller.
pub fn remote() -> crate::Remote {
    core::running("bucle::remote")
        .remote()
        .unwrap_or_else(|e| panic!("bucle::remote: could not open the loop's poller: {e}"))
}

/// Asks the running loop to stop after the current tick: `loop.stop()`.
///
/// # Panics
///
/// Outside a running loop.
pub fn stop() {
    core::running("bucle::stop").stop();
}

/// A scheduled callback (from `call_soon`, `call_later`, `call_at`) that can
/// be cancelled: asyncio's `Handle` / `TimerHandle`.
pub struct Handle {
    inner: Rc<HandleInner>,
    /// For timer handles: the loop whose heap holds it.
    timers_of: Option<Weak<Core>>,
}

impl Handle {
    fn soon(core: &Core, f: Box<dyn FnOnce()>) -> Handle {
        let inner = HandleInner::new(f, None);
        core.push_ready(Runnable::Handle(inner.clone()));
        Handle {
            inner,
            timers_of: None,
        }
    }

    pub(crate) fn timer(core: &Rc<Core>, when: Duration, f: Box<dyn FnOnce()>) -> Handle {
        let inner = HandleInner::new(f, Some(when));
        // A deadline past the clock's range never comes: no timer for it.
        let timers_of = crate::timer::heap::in_range(when).then(|| {
            core.timers.push(when, TimerAction::Call(inner.clone()));
            Rc::downgrade(core)
        });
        Handle { inner, timers_of }
    }

    /// Cancels the callback if it has not run yet; returns whether it was
    /// still pending.
    pub fn cancel(&self) -> bool {
        let was_pending = self.inner.cancel();
        if was_pending {
            if let Some(core) = self.timers_of.as_ref().and_then(Weak::upgrade) {
                core.note_dead_timer();
            }
        }
        was_pending
    }

    /// Whether [`Handle::cancel`] cancelled it.
    pub fn is_cancelled(&self) -> bool {
        self.inner.is_cancelled()
    }

    /// For `call_later`/`call_at` handles, the loop time it is due.
    pub fn when(&self) -> Option<Duration> {
        self.inner.when
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("when", &self.inner.when)
            .field("cancelled", &self.inner.is_cancelled())
            .field("pending", &self.inner.is_pending())
            .finish()
    }
}
