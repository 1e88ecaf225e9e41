//! `Future`: a settable result slot with waiters and done callbacks
//! (asyncio's `Future`). Part of stage 3; see the chapter in
//! [`runtime`](crate::runtime).

use std::cell::RefCell;
use std::error::Error;
use std::fmt;
use std::rc::Rc;

use crate::runtime::core::{self, CancelWait, Wait};
use crate::runtime::list::WaitList;
use crate::runtime::task::Waker;

/// Why a [`Future`] holds no value: asyncio's `CancelledError`, or the
/// exception given to `set_exception`.
#[derive(Clone)]
pub enum FutureError {
    /// The future was cancelled.
    Cancelled,
    /// [`Future::set_exception`] was called with this error.
    Exception(Rc<dyn Error>),
}

impl FutureError {
    /// Whether this is [`FutureError::Cancelled`].
    pub fn is_cancelled(&self) -> bool {
        matches!(self, FutureError::Cancelled)
    }
}

impl fmt::Debug for FutureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FutureError::Cancelled => f.write_str("Cancelled"),
            FutureError::Exception(e) => f.debug_tuple("Exception").field(&e.to_string()).finish(),
        }
    }
}

impl fmt::Display for FutureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FutureError::Cancelled => f.write_str("the future was cancelled"),
            FutureError::Exception(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl Error for FutureError {}

/// Setting a result on a future that is already done: asyncio's
/// `InvalidStateError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidState;

impl fmt::Display for InvalidState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid state: the future is already done")
    }
}

impl Error for InvalidState {}

type DoneCallback<T> = Box<dyn FnOnce(&Future<T>)>;

enum FutWaiter<T> {
    Wake(Waker),
    Callback(DoneCallback<T>),
}

struct Inner<T> {
    /// `None` while pending; set once, never changed after.
    outcome: RefCell<Option<Result<T, FutureError>>>,
    /// Waiting tasks and done callbacks in registration order; emptied when
    /// the future completes.
    waiters: RefCell<WaitList<FutWaiter<T>>>,
}

/// A result that will be set later, by someone else: `asyncio.Future`.
///
/// A `Future` is a cheap `Clone` handle; every clone sees the same slot.
/// Tasks [`wait`](Future::wait) on it; [`set_result`](Future::set_result),
/// [`set_exception`](Future::set_exception) or [`cancel`](Future::cancel)
/// completes it, waking the waiters and scheduling the done callbacks in the
/// order they registered.
///
/// ```
/// use std::time::Duration;
///
/// bucle::run(|| {
///     let fut = bucle::Future::new();
///     let setter = fut.clone();
///     bucle::spawn(move || {
///         bucle::sleep(Duration::from_millis(1));
///         setter.set_result("... world").unwrap();
///     });
///     println!("hello ...");
///     assert_eq!(fut.wait().unwrap(), "... world");
/// });
/// ```
pub struct Future<T> {
    inner: Rc<Inner<T>>,
}

impl<T> Clone for Future<T> {
    fn clone(&self) -> Self {
        Future {
            inner: self.inner.clone(),
        }
    }
}

impl<T> Default for Future<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for Future<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &*self.inner.outcome.borrow() {
            None => "pending",
            Some(Ok(_)) => "finished",
            Some(Err(FutureError::Cancelled)) => "cancelled",
            Some(Err(FutureError::Exception(_))) => "failed",
        };
        f.debug_struct("Future").field("state", &state).finish()
    }
}

impl<T> Future<T> {
    /// A pending future. It needs no loop until someone waits on it or a
    /// callback must be scheduled.
    pub fn new() -> Self {
        Future {
            inner: Rc::new(Inner {
                outcome: RefCell::new(None),
                waiters: RefCell::new(WaitList::Empty),
            }),
        }
    }

    /// Whether it has a result, an exception, or was cancelled.
    pub fn is_done(&self) -> bool {
        self.inner.outcome.borrow().is_some()
    }

    /// Whether it was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(
            &*self.inner.outcome.borrow(),
            Some(Err(FutureError::Cancelled))
        )
    }

    /// Makes a finished future that no other handle can see pending again,
    /// for reuse; `None` (and the future is dropped) if another handle or a
    /// waiter still refers to it. The sync primitives wait on one future per
    /// suspension; reusing it saves an allocation and a free per wait.
    pub(crate) fn recycle(self) -> Option<Future<T>> {
        if Rc::strong_count(&self.inner) != 1 || Rc::weak_count(&self.inner) != 0 {
            return None;
        }
        // Unique: nothing can observe the reset. Completion drained the
        // waiters; a pending future's waiters (callbacks) are dropped.
        // (`take` rather than assigning: an assignment builds the new value
        // on the stack, calls the old one's destructor, then copies the new
        // one in with wide loads the CPU cannot forward from the narrow
        // stores that built it, a stall of a dozen cycles each.)
        drop(self.inner.outcome.borrow_mut().take());
        if !matches!(*self.inner.waiters.borrow(), WaitList::Empty) {
            drop(std::mem::take(&mut *self.inner.waiters.borrow_mut()));
        }
        Some(self)
    }

    /// Whether `self` and `other` are handles to the same future.
    pub fn ptr_eq(&self, other: &Future<T>) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }
}

impl<T: 'static> Future<T> {
    /// Completes the future with `value`.
    ///
    /// # Errors
    ///
    /// [`InvalidState`] if it is already done.
    ///
    /// # Panics
    ///
    /// If it has done callbacks and no loop is running to schedule them.
    /// The future is then left as it was: pending, with its callbacks.
    pub fn set_result(&self, value: T) -> Result<(), InvalidState> {
        self.complete(Ok(value), "bucle::Future::set_result")
    }

    /// Completes the future with an error: `set_exception`.
    ///
    /// # Errors
    ///
    /// [`InvalidState`] if it is already done.
    ///
    /// # Panics
    ///
    /// As [`Future::set_result`].
    pub fn set_exception(&self, error: impl Error + 'static) -> Result<(), InvalidState> {
        self.complete(
            Err(FutureError::Exception(Rc::new(error))),
            "bucle::Future::set_exception",
        )
    }

    /// Cancels the future, waking its waiters with
    /// [`FutureError::Cancelled`]. Returns `false` if it was already done.
    ///
    /// # Panics
    ///
    /// As [`Future::set_result`].
    pub fn cancel(&self) -> bool {
        self.complete(Err(FutureError::Cancelled), "bucle::Future::cancel")
            .is_ok()
    }

    fn complete(&self, outcome: Result<T, FutureError>, what: &str) -> Result<(), InvalidState> {
        {
            let mut slot = self.inner.outcome.borrow_mut();
            if slot.is_some() {
                return Err(InvalidState);
            }
            // Checked before anything changes: a panic half-way through the
            // waiters would leave the future done with its callbacks lost
            // and the tasks behind them never woken.
            if self.has_callbacks() && core::try_running().is_none() {
                drop(slot);
                callbacks_need_a_loop(what);
            }
            *slot = Some(outcome);
        }
        let waiters = std::mem::take(&mut *self.inner.waiters.borrow_mut());
        waiters.drain(|w| match w {
            FutWaiter::Wake(waker) => waker.wake(),
            FutWaiter::Callback(cb) => self.schedule_callback(cb),
        });
        Ok(())
    }

    /// Whether any done callback is registered (they need a loop to run on).
    fn has_callbacks(&self) -> bool {
        match &*self.inner.waiters.borrow() {
            WaitList::Empty | WaitList::One(FutWaiter::Wake(_)) => false,
            WaitList::One(FutWaiter::Callback(_)) => true,
            WaitList::Many(v) => v.iter().any(|w| matches!(w, FutWaiter::Callback(_))),
        }
    }

    fn schedule_callback(&self, cb: DoneCallback<T>) {
        let me = self.clone();
        core::running("bucle::Future (running its done callbacks)")
            .call_soon_boxed(Box::new(move || cb(&me)));
    }

    /// Registers `callback` to run once the future is done, with the future
    /// as argument. Callbacks run through the ready queue, in registration
    /// order (interleaved with waiting tasks); one added to a finished
    /// future is scheduled at once.
    ///
    /// # Panics
    ///
    /// If the future is done and no loop is running.
    pub fn add_done_callback(&self, callback: impl FnOnce(&Future<T>) + 'static) {
        if self.is_done() {
            self.schedule_callback(Box::new(callback));
        } else {
            self.inner
                .waiters
                .borrow_mut()
                .push(FutWaiter::Callback(Box::new(callback)));
        }
    }

    /// The error, if the future failed or was cancelled; `None` while
    /// pending or on success.
    pub fn exception(&self) -> Option<FutureError> {
        match &*self.inner.outcome.borrow() {
            Some(Err(e)) => Some(e.clone()),
            _ => None,
        }
    }
}

impl<T: Clone + 'static> Future<T> {
    /// The outcome without waiting: `None` while pending.
    #[inline]
    pub fn result(&self) -> Option<Result<T, FutureError>> {
        self.inner.outcome.borrow().clone()
    }

    /// Suspends the current task until the future is done and returns its
    /// outcome: `await fut`. Returns at once if it is already done.
    ///
    /// # Errors
    ///
    /// [`FutureError::Cancelled`] if the future was cancelled,
    /// [`FutureError::Exception`] if it failed.
    ///
    /// # Panics
    ///
    /// Outside a task of a running loop. If the waiting task is cancelled
    /// (or a timeout around it fires), the future is cancelled — as in
    /// asyncio; [`shield`](crate::shield) a task to avoid that — and `wait`
    /// unwinds.
    #[inline(always)]
    pub fn wait(&self) -> Result<T, FutureError> {
        self.wait_as("a Future", Some("bucle::Future::wait"))
    }

    /// [`Future::wait`], naming what the future stands for ("Lock",
    /// "Queue.get") in a deadlock report and in the misuse message.
    #[inline(always)]
    pub(crate) fn wait_labeled(&self, what: &'static str) -> Result<T, FutureError> {
        self.wait_as(what, None)
    }

    #[inline(always)]
    fn wait_as(&self, what: &'static str, api: Option<&str>) -> Result<T, FutureError> {
        if let Some(outcome) = self.result() {
            return outcome;
        }
        // A current task means a running loop: tasks only run inside one.
        let Some(me) = core::try_current_task() else {
            misuse(what, api)
        };
        let name = api.unwrap_or(what);
        let waker = core::prepare_wait(&me);
        self.inner.waiters.borrow_mut().push(FutWaiter::Wake(waker));
        let target: Rc<dyn CancelWait> = self.inner.clone();
        core::park(
            &me,
            Wait::Future {
                future: target,
                what,
            },
            name,
        );
        self.result()
            .expect("a task waiting on a future is only woken once it is done")
    }
}

/// Panics for completing a future that has done callbacks while no loop
/// runs to schedule them.
#[cold]
#[inline(never)]
fn callbacks_need_a_loop(what: &str) -> ! {
    panic!(
        "{what} called outside a running event loop on a future with done callbacks, which \
         run on the loop; complete it from inside bucle::run (a task or a callback). The \
         future is left pending"
    )
}

/// Panics with the message for waiting outside a task of a running loop,
/// naming the API (or what is waited on: "waiting on Lock").
#[cold]
#[inline(never)]
fn misuse(what: &str, api: Option<&str>) -> ! {
    let name = api.map_or_else(|| format!("waiting on {what}"), str::to_owned);
    drop(core::running(&name));
    drop(core::current_task(&name));
    unreachable!("misuse() is only called without a running loop or task")
}

impl<T: 'static> CancelWait for Inner<T> {
    fn cancel_for_waiter(self: Rc<Self>) -> bool {
        Future { inner: self }.cancel()
    }
}
