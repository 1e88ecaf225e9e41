//! Waking the loop from other threads: the [`Remote`] handle and its
//! queue, asyncio's `call_soon_threadsafe`.
//!
//! The loop is single-threaded and its state is `!Send`; other threads
//! reach it only through this queue of `Send` callbacks, which the loop
//! drains into its ready queue at the start of each tick. A push wakes a
//! loop blocked in the poller through `Poller::notify` (an eventfd write).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use polling::Poller;

/// A callback sent from another thread.
pub(crate) type RemoteCall = Box<dyn FnOnce() + Send>;

/// What a loop and its remote handles share.
pub(crate) struct Shared {
    /// The loop's poller, to interrupt a blocking wait.
    poller: Arc<Poller>,
    /// Callbacks not yet moved to the ready queue, in arrival order, and
    /// whether the loop is closed (then nothing more is accepted).
    queue: Mutex<Queue>,
    /// Whether `queue` may hold callbacks: a lock-free check for the loop's
    /// every tick. Set after a push, cleared by the loop before it drains.
    pending: AtomicBool,
}

#[derive(Default)]
struct Queue {
    calls: Vec<RemoteCall>,
    closed: bool,
}

impl Shared {
    pub(crate) fn new(poller: Arc<Poller>) -> Arc<Self> {
        Arc::new(Shared {
            poller,
            queue: Mutex::new(Queue::default()),
            pending: AtomicBool::new(false),
        })
    }

    /// Takes the callbacks sent so far, oldest first (loop side).
    pub(crate) fn take(&self) -> Vec<RemoteCall> {
        if !self.pending.swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        std::mem::take(&mut lock(&self.queue).calls)
    }

    /// Refuses every later call and hands back the ones not yet run, for
    /// the closing loop to drop.
    pub(crate) fn close(&self) -> Vec<RemoteCall> {
        let mut q = lock(&self.queue);
        q.closed = true;
        std::mem::take(&mut q.calls)
    }

    fn push(&self, f: RemoteCall) -> Result<(), LoopClosed> {
        {
            let mut q = lock(&self.queue);
            if q.closed {
                return Err(LoopClosed);
            }
            q.calls.push(f);
        }
        self.pending.store(true, Ordering::Release);
        // A failed notify (out of memory for the eventfd counter) only
        // delays the call to the loop's next wake-up.
        let _ = self.poller.notify();
        Ok(())
    }
}

/// Locks the queue; a callback never runs under this lock, so a poisoned
/// lock (a panic in `Vec::push`'s allocation) leaves consistent data.
fn lock(m: &Mutex<Queue>) -> std::sync::MutexGuard<'_, Queue> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A `Send + Sync` handle to an event loop, for other threads:
/// [`Remote::call_soon_threadsafe`] is asyncio's
/// `loop.call_soon_threadsafe`.
///
/// Get one with [`EventLoop::remote`](crate::EventLoop::remote) (or
/// [`remote`](crate::remote) from inside the loop). While a remote handle
/// exists, an idle loop waits for it instead of reporting a deadlock: a
/// thread holding it may still wake a task.
///
/// ```
/// use std::time::Duration;
///
/// let answer = bucle::run(|| {
///     let fut: bucle::Future<u32> = bucle::Future::new();
///     let remote = bucle::remote();
///     let setter = fut.clone();
///     // The future is not `Send`: the thread sends a callback instead,
///     // which runs on the loop's thread.
///     let (tx, rx) = std::sync::mpsc::channel::<u32>();
///     std::thread::spawn(move || {
///         std::thread::sleep(Duration::from_millis(5));
///         tx.send(42).unwrap();
///         remote.call_soon_threadsafe(|| ()).unwrap();
///     });
///     bucle::spawn(move || {
///         // Woken by the remote call: the value is in the channel.
///         loop {
///             if let Ok(v) = rx.try_recv() {
///                 setter.set_result(v).unwrap();
///                 break;
///             }
///             bucle::sleep(Duration::from_millis(1));
///         }
///     });
///     fut.wait().unwrap()
/// });
/// assert_eq!(answer, 42);
/// ```
#[derive(Clone)]
pub struct Remote {
    shared: Arc<Shared>,
}

impl Remote {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Remote { shared }
    }

    /// Schedules `f` to run on the loop's thread, in the loop's next tick,
    /// waking the loop if it is blocked: `loop.call_soon_threadsafe`.
    /// Callbacks from one thread run in the order they were sent.
    ///
    /// A panic in `f` is reported through the loop's exception handler, as
    /// for [`call_soon`](crate::call_soon).
    ///
    /// # Errors
    ///
    /// [`LoopClosed`] if the loop has been closed (asyncio raises
    /// `RuntimeError('Event loop is closed')`); `f` is dropped.
    pub fn call_soon_threadsafe(
        &self,
        f: impl FnOnce() + Send + 'static,
    ) -> Result<(), LoopClosed> {
        self.shared.push(Box::new(f))
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote").finish_non_exhaustive()
    }
}

/// The loop behind a [`Remote`] is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopClosed;

impl fmt::Display for LoopClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the event loop is closed")
    }
}

impl std::error::Error for LoopClosed {}
