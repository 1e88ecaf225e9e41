//! Tasks: a generator on the loop's ready queue, plus the slot for its result.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::time::Duration;

use crate::generator::{Generator, INLINE_BODY_MAX, Yielder, YielderSlot};
use crate::runtime::core::{self, Core, Trap, Wait};
use crate::runtime::list::WaitList;
use crate::runtime::scope::ScopeTimer;

/// A task's identity, unique within its thread for the life of the process.
///
/// Displays as asyncio's default task names do: `Task-1`, `Task-2`, …
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(pub(crate) u64);

impl TaskId {
    /// The number inside the id.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Task-{}", self.0)
    }
}

thread_local! {
    static NEXT_TASK_ID: Cell<u64> = const { Cell::new(1) };
}

fn next_task_id() -> TaskId {
    NEXT_TASK_ID.with(|n| {
        let id = n.get();
        n.set(id + 1);
        TaskId(id)
    })
}

/// Why [`Task::join`] has no value to give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinError {
    /// The task was cancelled ([`Task::cancel`]) before it finished:
    /// asyncio's `CancelledError`.
    Cancelled,
    /// The task panicked; the panic message is kept.
    Panicked(String),
}

impl JoinError {
    /// Whether this is [`JoinError::Cancelled`].
    pub fn is_cancelled(&self) -> bool {
        matches!(self, JoinError::Cancelled)
    }

    /// Whether this is [`JoinError::Panicked`].
    pub fn is_panic(&self) -> bool {
        matches!(self, JoinError::Panicked(_))
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Cancelled => f.write_str("task was cancelled"),
            JoinError::Panicked(msg) => write!(f, "task panicked: {msg}"),
        }
    }
}

impl std::error::Error for JoinError {}

/// Where a task is in its life. Transitions:
/// `Scheduled → Running → (Scheduled | Waiting | Done)`,
/// `Waiting → Scheduled` (woken), `Scheduled → Done` (cancelled before its
/// first step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// In the ready queue exactly once.
    Scheduled,
    /// Its generator is being resumed right now; it is the loop's current task.
    Running,
    /// Suspended; not in the ready queue. Only a [`Waker`] for its current
    /// `wait_seq` (or an interrupt) puts it back.
    Waiting,
    /// Finished: its result slot is filled (until taken) and its generator
    /// dropped.
    Done,
}

/// How a task ended, kept after the result itself has been taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Pending,
    Returned,
    Cancelled,
    Panicked,
}

/// An unwind a task must perform at its next resumption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interrupt {
    /// `cancel()` was called: unwind to the task boundary.
    Cancel,
    /// A scope (timeout or task group) fired: unwind to that scope.
    Scope(u64),
}

/// Unwind payload of a cancellation. Private: only the task boundary
/// recognises it.
pub(crate) struct CancelledUnwind;

/// Unwind payload of a fired scope; the scope with this id catches it.
pub(crate) struct ScopeUnwind(pub(crate) u64);

/// Something to run when a task or future finishes: wake a task, or call a
/// callback (scheduled through the ready queue, as asyncio's `call_soon`).
pub(crate) enum Waiter {
    Wake(Waker),
    Callback(Box<dyn FnOnce()>),
}

/// The non-generic part of every task.
///
/// `repr(C)` with the fields the loop touches on every switch first (state,
/// interrupt, wait, the coroutine): they share the first two or three cache
/// lines, which `Core::prefetch_ahead` pulls in before the task's turn. The
/// rest is only read on spawn, completion and in reports.
#[repr(C)]
pub(crate) struct Header {
    /// See [`State`].
    pub(crate) state: Cell<State>,
    pub(crate) outcome: Cell<Outcome>,
    /// An unwind requested while the task was not running; taken and
    /// performed when it next resumes. A cancel overrides a scope; a scope
    /// does not override anything (the first scope to fire is reported).
    pub(crate) interrupt: Cell<Option<Interrupt>>,
    /// An unwind requested while the task was joining another task, and
    /// forwarded to that task instead (asyncio's `Task.cancel` cancels the
    /// awaited task and leaves the awaiting one alone). Performed when the
    /// join returns only if the joined task ended cancelled; otherwise the
    /// join returns the joined task's outcome and this is dropped. Set only
    /// while the task waits in a join; taken when the join returns.
    pub(crate) forwarded: Cell<Option<Interrupt>>,
    /// The unwind the task is performing because of an interrupt: set when
    /// a suspension point starts it, cleared when the scope it unwinds to
    /// catches it (a cancel runs to the task boundary). While set, the
    /// task's waits — in destructors that run during the unwind — are not
    /// interrupted again: a second unwind cannot start inside a destructor
    /// (Rust aborts), so a cancel during a cancel is dropped as redundant,
    /// and anything else stays in `interrupt` until this unwind is caught.
    pub(crate) unwinding: Cell<Option<Interrupt>>,
    /// Incremented at every suspension; a [`Waker`] is valid only for the
    /// suspension it was made for. Never decreases.
    pub(crate) wait_seq: Cell<u64>,
    /// An address just above the task's stack pointer at its last
    /// suspension (0 before the first): what the loop prefetches before
    /// resuming it. Set by the task itself as it suspends; a hint only,
    /// never dereferenced.
    pub(crate) sp_hint: Cell<usize>,
    /// What the task is waiting on while `Waiting` (and for the deadlock
    /// report); `Wait::Nothing` otherwise.
    pub(crate) wait: RefCell<Wait>,
    /// The coroutine. `Some` from spawn until the task is done (or the loop
    /// closes); taken out only by the loop.
    pub(crate) generator: RefCell<Option<Generator<Trap, (), ()>>>,
    /// Where the body publishes its yielder, so `park` can suspend it.
    pub(crate) yielder: YielderSlot<Trap, ()>,
    pub(crate) id: TaskId,
    pub(crate) name: Option<Box<str>>,
    /// Tasks joining this one and done callbacks, in registration order.
    pub(crate) waiters: RefCell<WaitList<Waiter>>,
    /// Live `Task<T>` handles; when it drops to zero on an unretrieved panic,
    /// the panic is reported.
    pub(crate) handles: Cell<u32>,
    /// Whether a panic has been retrieved (joined) or already reported.
    pub(crate) panic_seen: Cell<bool>,
    /// The panic message, if the task panicked (for the report).
    pub(crate) panic_message: RefCell<Option<String>>,
    /// Set while the loop drops the generator at close: unwinds then are the
    /// generator's own forced unwind, and must pass through the body.
    pub(crate) closing: Cell<bool>,
    /// Index in the loop's task table (see `Core::tasks`).
    pub(crate) slot_index: Cell<usize>,
    /// The loop the task belongs to (weak: the loop owns its tasks).
    pub(crate) core: Weak<Core>,
    /// Open scopes (timeouts, task groups) on this task's stack, innermost
    /// last. Pushed when a scope is entered and popped when it is left, by
    /// the task itself; a timeout scope's timer state changes in place (see
    /// [`ScopeTimer`]). A scope's timer or abort only interrupts the task if
    /// its scope is still here.
    pub(crate) scopes: RefCell<Vec<OpenScope>>,
    /// How many of `scopes` have a [`ScopeTimer::Reserved`] timer. Nonzero
    /// only while the task runs: it arms them as it suspends (see
    /// `scope::arm_reserved`), so a suspended task's timers are all in the
    /// heap.
    pub(crate) reserved: Cell<u32>,
    /// I/O operations this task may still complete without suspending
    /// before it yields (see `io::COOP_BUDGET`); refilled whenever it waits
    /// on I/O or yields for it.
    pub(crate) budget: Cell<u32>,
    /// How many of `scopes` have a [`ScopeTimer::Fired`] timer: lets
    /// `Timeout::expired`, which a CPU-bound body may poll in its hot loop,
    /// answer "no" without searching the scopes.
    pub(crate) fired: Cell<u32>,
}

/// A scope closed while one opened inside it is still open. Only a
/// generator nested in a task can cause it: a timeout or task group entered
/// inside the generator's body stays open when the generator yields, while
/// the task goes on to close its own scopes.
///
/// Before panicking it takes `id` out from below the innermost scope, so
/// that the other scopes still close cleanly as the panic unwinds them (a
/// second panic there, inside a generator's forced unwind, would abort).
#[cold]
#[inline(never)]
fn scopes_misnested(h: &Header, id: u64) -> ! {
    {
        let mut scopes = h.scopes.borrow_mut();
        if let Some(i) = scopes.iter().rposition(|s| s.id == id) {
            scopes.remove(i);
        }
    }
    panic!(
        "timeout and task-group scopes must nest: a scope was closed while a scope opened \
         inside it was still open, which happens when a generator nested in a task yields \
         from inside a timeout or task group. Keep each timeout or task group within one \
         step of the generator (open and close it between two yields)"
    )
}

/// One scope open on a task's stack: a timeout or a task group.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OpenScope {
    /// Unique on this thread (see `scope::next_scope_id`): a scope's unwind
    /// (`ScopeUnwind(id)`) is caught by this scope and no other.
    pub(crate) id: u64,
    /// A timeout's deadline (loop time); `None` for a task group or an
    /// unbounded timeout scope.
    pub(crate) deadline: Option<Duration>,
    /// Where the deadline's timer is; `Off` exactly when `deadline` is
    /// `None`.
    pub(crate) timer: ScopeTimer,
}

impl OpenScope {
    /// A scope without a deadline (a task group).
    pub(crate) fn unbounded(id: u64) -> Self {
        OpenScope {
            id,
            deadline: None,
            timer: ScopeTimer::Off,
        }
    }
}

impl Header {
    /// Takes scope `id`, the innermost, off the open scopes as it closes.
    ///
    /// # Panics
    ///
    /// If `id` is not the innermost open scope (see [`scopes_misnested`]).
    #[inline(always)]
    pub(crate) fn close_scope(&self, id: u64) -> OpenScope {
        let mut scopes = self.scopes.borrow_mut();
        if scopes.last().map(|s| s.id) != Some(id) {
            drop(scopes);
            scopes_misnested(self, id)
        }
        let Some(OpenScope {
            deadline, timer, ..
        }) = scopes.pop()
        else {
            unreachable!("the innermost scope was just seen")
        };
        OpenScope {
            id,
            deadline,
            timer,
        }
    }

    /// A scope caught its own unwind (`ScopeUnwind(id)`): the task is no
    /// longer unwinding (see `Header::unwinding`), and interrupts act on
    /// its waits again.
    pub(crate) fn caught_scope(&self, id: u64) {
        if self.unwinding.get() == Some(Interrupt::Scope(id)) {
            self.unwinding.set(None);
        }
    }

    /// Takes the task's wait, leaving `Wait::Nothing`, for the caller to
    /// drop with no borrow held (see `core::drop_wait`).
    #[inline(always)]
    pub(crate) fn take_wait(&self) -> Wait {
        if matches!(*self.wait.borrow(), Wait::Nothing) {
            return Wait::Nothing;
        }
        std::mem::replace(&mut *self.wait.borrow_mut(), Wait::Nothing)
    }

    /// The task's loop, unless it has been dropped.
    pub(crate) fn core(&self) -> Option<Rc<Core>> {
        self.core.upgrade()
    }

    pub(crate) fn describe(&self) -> String {
        match &self.name {
            Some(name) => format!("{} '{}'", self.id, name),
            None => format!("{}", self.id),
        }
    }

    pub(crate) fn name(&self) -> String {
        match &self.name {
            Some(name) => name.to_string(),
            None => self.id.to_string(),
        }
    }
}

/// A task's result slot, with its type erased for the loop.
pub(crate) trait ResultSlot {
    /// Fills the slot with `Err(JoinError::Cancelled)`, for a task cancelled
    /// before its body ever ran (or dropped at close).
    fn set_cancelled(&self);
}

/// A task's typed result slot: `Some` once the task is done, until a join
/// or `take_result` takes it.
///
/// Whoever drops the last reference to a finished task drops a result
/// nobody took — the loop's bookkeeping as often as user code — so the
/// slot drops it through `core::drop_user`: a panicking destructor is
/// reported, never propagated into whatever happened to let go last.
pub(crate) struct Slot<T>(RefCell<Option<Result<T, JoinError>>>);

impl<T> std::ops::Deref for Slot<T> {
    type Target = RefCell<Option<Result<T, JoinError>>>;

    #[inline(always)]
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<T> Drop for Slot<T> {
    fn drop(&mut self) {
        if std::mem::needs_drop::<T>() {
            if let Some(result) = self.0.get_mut().take() {
                core::drop_user(result);
            }
        }
    }
}

impl<T> ResultSlot for Slot<T> {
    fn set_cancelled(&self) {
        let old = self.0.replace(Some(Err(JoinError::Cancelled)));
        core::drop_user(old);
    }
}

/// A task: its header, then its typed result slot. The loop sees it as
/// `TaskCell<dyn ResultSlot>` (a [`TaskRef`]); the header stays a plain
/// field access, with no virtual call on the hot path.
pub(crate) struct TaskCell<R: ?Sized> {
    pub(crate) header: Header,
    /// `Some` once the task is done, until a join or `take_result` takes it.
    pub(crate) result: R,
}

/// The typed cell behind a `Task<T>`.
pub(crate) type TypedCell<T> = TaskCell<Slot<T>>;

/// A reference-counted, type-erased task.
pub(crate) type TaskRef = Rc<TaskCell<dyn ResultSlot>>;

impl TaskCell<dyn ResultSlot> {
    pub(crate) fn set_cancelled(&self) {
        self.result.set_cancelled();
    }
}

/// A one-shot right to wake a task from one particular suspension.
#[derive(Clone)]
pub(crate) struct Waker {
    pub(crate) task: TaskRef,
    pub(crate) seq: u64,
}

impl Waker {
    /// Whether the task is still in the suspension this waker was made for.
    pub(crate) fn is_current(&self) -> bool {
        let h = &self.task.header;
        h.state.get() == State::Waiting && h.wait_seq.get() == self.seq
    }

    /// Appends the task to the ready queue if it still waits in the
    /// suspension this waker was made for; otherwise does nothing.
    pub(crate) fn wake(self) {
        // Checked before the loop is looked up, and not through `wake_on`:
        // passing the waker on by value copies it, which measured slower.
        if self.is_current() {
            if let Some(core) = self.task.header.core() {
                core.schedule(self.task);
            }
        }
    }

    /// [`Waker::wake`], given the task's loop (the loop itself, waking from
    /// its ready queue, need not look it up).
    pub(crate) fn wake_on(self, core: &Core) {
        if self.is_current() {
            core.schedule(self.task);
        }
    }
}

/// A handle to a spawned task: `asyncio.Task`.
///
/// Dropping the handle detaches the task: it keeps running. [`join`]
/// waits for its result.
///
/// [`join`]: Task::join
pub struct Task<T> {
    cell: Rc<TypedCell<T>>,
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = &self.cell.header;
        f.debug_struct("Task")
            .field("id", &h.id)
            .field("name", &h.name())
            .field("state", &h.state.get())
            .finish()
    }
}

impl<T: 'static> Task<T> {
    /// Waits until the task finishes and returns its value: `await task`.
    ///
    /// Returns at once, without suspending, if the task already finished.
    ///
    /// # Errors
    ///
    /// [`JoinError::Cancelled`] if the task was cancelled,
    /// [`JoinError::Panicked`] if it panicked.
    ///
    /// # Panics
    ///
    /// Outside a task of a running loop; when a task joins itself. If the
    /// joining task is cancelled while it waits, the cancel is forwarded to
    /// the joined task (asyncio's rule); once that one has finished, `join`
    /// unwinds the joining task if it ended cancelled, and otherwise
    /// returns its outcome: a joined task that panics before its next
    /// suspension ends panicked, and the joining task gets that panic and
    /// goes on, as with asyncio's `await task`.
    #[inline(always)]
    pub fn join(self) -> Result<T, JoinError> {
        self.wait_done("bucle::Task::join", true);
        self.take_finished()
    }

    /// Waits for the task without letting a cancellation of the waiting
    /// task reach it: see [`shield`](crate::shield).
    pub(crate) fn join_shielded(self) -> Result<T, JoinError> {
        self.wait_done("bucle::shield", false);
        self.take_finished()
    }

    fn take_finished(self) -> Result<T, JoinError> {
        self.take_result()
            .expect("a finished task's result was already taken (take_result)")
    }

    /// Suspends the current task until this one is done.
    #[inline(always)]
    fn wait_done(&self, what: &'static str, propagate_cancel: bool) {
        if self.is_done() {
            return;
        }
        // Panics outside a running loop, or in a callback, naming `what`.
        let me = core::current_task(what);
        if Rc::ptr_eq(&(self.cell.clone() as TaskRef), &me) {
            panic!("{what}: a task cannot join itself; it would wait forever");
        }
        let waker = core::prepare_wait(&me);
        self.cell
            .header
            .waiters
            .borrow_mut()
            .push(Waiter::Wake(waker));
        let target: TaskRef = self.cell.clone();
        let wait = if propagate_cancel {
            Wait::Join(target)
        } else {
            Wait::Shield(target)
        };
        core::park(&me, wait, what);
        // A cancel (or a scope) forwarded to the joined task while we
        // waited: asyncio's `await t1` raises `CancelledError` only if
        // `t1` ended cancelled; if it returned or raised, the awaiting
        // task gets that outcome and goes on.
        if let Some(interrupt) = me.header.forwarded.take() {
            if self.cell.header.outcome.get() == Outcome::Cancelled {
                me.header.unwinding.set(Some(interrupt));
                match interrupt {
                    Interrupt::Cancel => panic::resume_unwind(Box::new(CancelledUnwind)),
                    Interrupt::Scope(id) => panic::resume_unwind(Box::new(ScopeUnwind(id))),
                }
            }
        }
    }
}

impl<T: 'static> Task<T> {
    pub(crate) fn from_cell(cell: Rc<TypedCell<T>>) -> Self {
        cell.header.handles.set(cell.header.handles.get() + 1);
        Task { cell }
    }

    /// Takes the result of a finished task without waiting: `Some` once,
    /// after the task is done; `None` while it runs or once taken.
    pub fn take_result(&self) -> Option<Result<T, JoinError>> {
        let r = self.cell.result.borrow_mut().take();
        if r.is_some() {
            self.cell.header.panic_seen.set(true);
        }
        r
    }

    /// How the task failed, if it did, whether or not its result has been
    /// taken (asyncio keeps a task's exception for every `await`; a join
    /// takes bucle's result, but the outcome and the panic message stay).
    /// Marks a panic as retrieved. `None` unless the task is done and
    /// failed.
    pub(crate) fn error(&self) -> Option<JoinError> {
        let h = &self.cell.header;
        match h.outcome.get() {
            Outcome::Cancelled => Some(JoinError::Cancelled),
            Outcome::Panicked => {
                h.panic_seen.set(true);
                let msg = h.panic_message.borrow().clone().unwrap_or_default();
                Some(JoinError::Panicked(msg))
            }
            Outcome::Pending | Outcome::Returned => None,
        }
    }

    /// Requests cancellation: the task unwinds from its current (or next)
    /// suspension point, running destructors, and its result becomes
    /// [`JoinError::Cancelled`]. A task cancelled before it ever ran never
    /// runs. If it is waiting on another task or a future, that is
    /// cancelled too (unless it waits through [`shield`](crate::shield)).
    ///
    /// Returns `false` if the task had already finished.
    pub fn cancel(&self) -> bool {
        core::cancel_task(&(self.cell.clone() as TaskRef))
    }

    /// Whether the task has finished (returned, panicked or was cancelled).
    pub fn is_done(&self) -> bool {
        self.cell.header.state.get() == State::Done
    }

    /// Whether the task finished by being cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cell.header.outcome.get() == Outcome::Cancelled
    }

    /// Whether the task finished by panicking.
    pub fn is_panicked(&self) -> bool {
        self.cell.header.outcome.get() == Outcome::Panicked
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.cell.header.id
    }

    /// The task's name: the one given to [`TaskBuilder::name`], or its id
    /// (`Task-N`) as asyncio names tasks.
    pub fn name(&self) -> String {
        self.cell.header.name()
    }

    /// Registers `callback` to run once the task is done, with the task as
    /// argument. Callbacks and joining tasks are woken in the order they
    /// registered, through the ready queue; if the task is already done, the
    /// callback is scheduled right away.
    ///
    /// # Panics
    ///
    /// If the task is already done and no loop is running on this thread.
    pub fn add_done_callback(&self, callback: impl FnOnce(&Task<T>) + 'static) {
        let cell = self.cell.clone();
        let cb = Box::new(move || callback(&Task::from_cell(cell)));
        if self.is_done() {
            core::running("bucle::Task::add_done_callback").call_soon_boxed(cb);
        } else {
            self.cell
                .header
                .waiters
                .borrow_mut()
                .push(Waiter::Callback(cb));
        }
    }

    /// Runs `f` (through the ready queue) when the task is done, without
    /// handing it the task.
    pub(crate) fn on_done(&self, f: Box<dyn FnOnce()>) {
        if self.is_done() {
            if let Some(core) = self.cell.header.core() {
                core.call_soon_boxed(f);
            }
        } else {
            self.cell
                .header
                .waiters
                .borrow_mut()
                .push(Waiter::Callback(f));
        }
    }

    /// A type-erased handle to the same task.
    pub fn as_any(&self) -> AnyTask {
        AnyTask {
            task: self.cell.clone(),
        }
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        let h = &self.cell.header;
        h.handles.set(h.handles.get() - 1);
        if h.handles.get() == 0 && h.outcome.get() == Outcome::Panicked {
            core::report_unretrieved_panic(h);
        }
    }
}

/// A type-erased handle to a task, as returned by
/// [`current_task`](crate::current_task): everything but the result.
#[derive(Clone)]
pub struct AnyTask {
    task: TaskRef,
}

impl AnyTask {
    pub(crate) fn new(task: TaskRef) -> Self {
        AnyTask { task }
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.task.header.id
    }

    /// The task's name (see [`Task::name`]).
    pub fn name(&self) -> String {
        self.task.header.name()
    }

    /// Requests cancellation; see [`Task::cancel`].
    pub fn cancel(&self) -> bool {
        core::cancel_task(&self.task)
    }

    /// Whether the task has finished.
    pub fn is_done(&self) -> bool {
        self.task.header.state.get() == State::Done
    }

    /// Whether the task finished by being cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.task.header.outcome.get() == Outcome::Cancelled
    }

    /// Whether a cancellation has been requested and not yet delivered.
    pub fn is_cancelling(&self) -> bool {
        let h = &self.task.header;
        h.interrupt.get() == Some(Interrupt::Cancel) || h.forwarded.get() == Some(Interrupt::Cancel)
    }
}

impl fmt::Debug for AnyTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = &self.task.header;
        f.debug_struct("AnyTask")
            .field("id", &h.id)
            .field("name", &h.name())
            .field("state", &h.state.get())
            .finish()
    }
}

impl PartialEq for AnyTask {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}
impl Eq for AnyTask {}

/// Options for spawning one task: its name and stack size.
///
/// ```
/// bucle::run(|| {
///     let t = bucle::TaskBuilder::new().name("worker").spawn(|| 6 * 7);
///     assert_eq!(t.name(), "worker");
///     assert_eq!(t.join(), Ok(42));
/// });
/// ```
#[derive(Debug, Clone, Default)]
pub struct TaskBuilder {
    name: Option<String>,
    stack_size: Option<usize>,
}

impl TaskBuilder {
    /// Default options: named `Task-N`, the loop's stack size.
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the task (see [`Task::name`]).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Gives the task a stack of `bytes` usable bytes instead of the loop's
    /// default ([`Builder::stack_size`](crate::Builder::stack_size)),
    /// rounded up to whole pages and to at least
    /// [`MIN_STACK_SIZE`](crate::MIN_STACK_SIZE).
    ///
    /// A size over [`MAX_STACK_SIZE`](crate::MAX_STACK_SIZE) (1 TiB) is
    /// refused when the task is spawned: [`TaskBuilder::try_spawn`] returns
    /// an [`InvalidInput`](io::ErrorKind::InvalidInput) error naming the size
    /// and the limit, [`TaskBuilder::spawn`] panics with that message.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Spawns `f` on the running loop; see [`spawn`](crate::spawn).
    ///
    /// # Panics
    ///
    /// Outside a running loop, or if no stack can be had (see
    /// [`TaskBuilder::try_spawn`]).
    pub fn spawn<T: 'static>(self, f: impl FnOnce() -> T + 'static) -> Task<T> {
        let core = core::running("bucle::spawn");
        self.spawn_on(&core, f)
    }

    /// Spawns `f` on the running loop, reporting a stack that cannot be had.
    ///
    /// # Errors
    ///
    /// When no stack can be mapped: the message names `vm.max_map_count`,
    /// the limit on live stacks, and the fix.
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) when the stack size
    /// (this builder's or the loop's) is over
    /// [`MAX_STACK_SIZE`](crate::MAX_STACK_SIZE).
    ///
    /// # Panics
    ///
    /// Outside a running loop.
    pub fn try_spawn<T: 'static>(self, f: impl FnOnce() -> T + 'static) -> io::Result<Task<T>> {
        let core = core::running("bucle::try_spawn");
        self.try_spawn_on(&core, f)
    }

    pub(crate) fn spawn_on<T: 'static>(
        self,
        core: &Rc<Core>,
        f: impl FnOnce() -> T + 'static,
    ) -> Task<T> {
        match self.try_spawn_on(core, f) {
            Ok(task) => task,
            Err(e) => panic!("bucle::spawn could not get a stack for the task: {e}"),
        }
    }

    pub(crate) fn try_spawn_on<T: 'static>(
        self,
        core: &Rc<Core>,
        f: impl FnOnce() -> T + 'static,
    ) -> io::Result<Task<T>> {
        // A body too big for the generator to keep inline (it would box the
        // closure below, `f` and all) is boxed here instead, so that only
        // the pointer travels through the task's layers on its stack
        // (`run_body`, `publish`, `catch_unwind`), each of which would
        // otherwise move a copy of it. Known at compile time.
        if mem::size_of_val(&f) + mem::size_of::<Rc<TypedCell<T>>>() <= INLINE_BODY_MAX {
            self.spawn_body(core, f)
        } else {
            self.spawn_body(core, Box::new(f))
        }
    }

    fn spawn_body<T: 'static>(
        self,
        core: &Rc<Core>,
        f: impl FnOnce() -> T + 'static,
    ) -> io::Result<Task<T>> {
        let cell = Rc::new(TaskCell {
            header: Header {
                id: next_task_id(),
                name: self.name.map(String::into_boxed_str),
                state: Cell::new(State::Scheduled),
                outcome: Cell::new(Outcome::Pending),
                wait_seq: Cell::new(0),
                wait: RefCell::new(Wait::Nothing),
                interrupt: Cell::new(None),
                forwarded: Cell::new(None),
                unwinding: Cell::new(None),
                generator: RefCell::new(None),
                yielder: YielderSlot::new(),
                waiters: RefCell::new(WaitList::Empty),
                handles: Cell::new(0),
                panic_seen: Cell::new(false),
                panic_message: RefCell::new(None),
                closing: Cell::new(false),
                slot_index: Cell::new(usize::MAX),
                core: Rc::downgrade(core),
                scopes: RefCell::new(Vec::new()),
                reserved: Cell::new(0),
                fired: Cell::new(0),
                budget: Cell::new(core::COOP_BUDGET),
                sp_hint: Cell::new(0),
            },
            result: Slot(RefCell::new(None)),
        });
        let body_cell = cell.clone();
        let generator = Generator::try_with_stack_size(
            self.stack_size.unwrap_or(core.stack_size),
            move |y: &Yielder<Trap, ()>, ()| run_body(&body_cell, y, f),
        )?;
        *cell.header.generator.borrow_mut() = Some(generator);
        let task: TaskRef = cell.clone();
        core.register(task);
        Ok(Task::from_cell(cell))
    }
}

/// The body of every task's generator: run `f` with the yielder published,
/// and turn its ending (value, panic, cancellation) into the result.
///
/// Nothing escapes it: the task boundary is where user panics stop. That
/// includes a panic from the value of a cancelled task as it is dropped, and
/// one from a panic payload's own destructor.
fn run_body<T>(cell: &TypedCell<T>, y: &Yielder<Trap, ()>, f: impl FnOnce() -> T) {
    let h = &cell.header;
    let caught = y.publish(&h.yielder, || panic::catch_unwind(AssertUnwindSafe(f)));
    if h.closing.get() {
        // The loop is closing and dropped this coroutine: what arrives here
        // is corosensei's forced unwind (or whatever a body that caught it
        // did next). Returning normally ends the unwind as well as
        // rethrowing it would, and a user panic met on the way is reported
        // instead of aborting the process.
        closing_unwind(h, caught);
        return;
    }
    let result = match caught {
        Ok(value) if h.interrupt.get() == Some(Interrupt::Cancel) => {
            // Cancelled and then returned without suspending again: asyncio
            // still ends the task cancelled (`_must_cancel`) and discards the
            // value; a panic in its destructor is reported, as asyncio
            // reports an exception in `__del__`, and the task stays
            // cancelled.
            core::drop_user(value);
            h.outcome.set(Outcome::Cancelled);
            Err(JoinError::Cancelled)
        }
        Ok(value) => {
            h.outcome.set(Outcome::Returned);
            Ok(value)
        }
        Err(payload) if payload.is::<CancelledUnwind>() => {
            h.outcome.set(Outcome::Cancelled);
            Err(JoinError::Cancelled)
        }
        Err(payload) => panicked(h, payload),
    };
    *cell.result.borrow_mut() = Some(result);
}

/// The task's result for a panic with `payload`.
fn panicked<T>(h: &Header, payload: Box<dyn Any + Send>) -> Result<T, JoinError> {
    let msg = panic_message(&*payload);
    core::drop_payload(payload);
    h.outcome.set(Outcome::Panicked);
    *h.panic_message.borrow_mut() = Some(msg.clone());
    Err(JoinError::Panicked(msg))
}

/// The end of a body that `close` unwound: reports a user panic met on
/// the way (a destructor that waited, say), drops the rest quietly.
#[cold]
#[inline(never)]
fn closing_unwind<T>(h: &Header, caught: std::thread::Result<T>) {
    match caught {
        Ok(value) => core::drop_user(value),
        Err(payload) => {
            // corosensei's forced-unwind payload is not a string; a string
            // is a panic of the task's own code.
            let msg = crate::runtime::core::payload_str(&*payload).map(str::to_owned);
            core::drop_payload(payload);
            if let Some(msg) = msg {
                core::report_task_panic(h, "panicked while its event loop was closing", msg);
            }
        }
    }
}

/// The message of a panic payload, as the default panic hook prints it.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = core::payload_str(payload) {
        s.to_string()
    } else if payload.is::<ScopeUnwind>() {
        "a timeout or task-group unwind escaped its scope: the scope was opened inside a \
         generator nested in this task and fired while that generator was suspended, so its \
         frame was not on the task's stack to catch it. Open and close each timeout or task \
         group within one step of the generator (between two yields)"
            .to_string()
    } else {
        "Box<dyn Any>".to_string()
    }
}
