//! `Event`: asyncio's `asyncio.Event`.

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;

use super::{Waiters, remove_waiter, wait_on};
use crate::future::Future;

struct Inner {
    value: Cell<bool>,
    waiters: Waiters,
}

/// A flag tasks can wait for: `asyncio.Event`.
///
/// [`wait`](Event::wait) suspends until the flag is set; [`set`](Event::set)
/// wakes every waiting task, in the order they started waiting;
/// [`clear`](Event::clear) resets it. An `Event` is a cheap `Clone` handle;
/// every clone is the same flag.
///
/// ```
/// use std::time::Duration;
/// use bucle::sync::Event;
///
/// bucle::run(|| {
///     let event = Event::new();
///     let waiter = {
///         let event = event.clone();
///         bucle::spawn(move || {
///             event.wait();
///             "got it"
///         })
///     };
///     bucle::sleep(Duration::from_millis(1));
///     event.set();
///     assert_eq!(waiter.join().unwrap(), "got it");
/// });
/// ```
#[derive(Clone)]
pub struct Event {
    inner: Rc<Inner>,
}

impl Default for Event {
    fn default() -> Self {
        Self::new()
    }
}

impl Event {
    /// A new event, not set.
    pub fn new() -> Self {
        Event {
            inner: Rc::new(Inner {
                value: Cell::new(false),
                waiters: Waiters::default(),
            }),
        }
    }

    /// Whether the flag is set: `is_set()`.
    pub fn is_set(&self) -> bool {
        self.inner.value.get()
    }

    /// Sets the flag and wakes every task waiting for it, in the order
    /// they started waiting. Tasks that call [`wait`](Event::wait)
    /// afterwards do not suspend at all. Does nothing if already set.
    pub fn set(&self) {
        let inner = &*self.inner;
        if inner.value.get() {
            return;
        }
        inner.value.set(true);
        // Setting a result only schedules the waiting task; nothing here
        // can reenter the event while the deque is borrowed.
        for fut in inner.waiters.borrow().iter() {
            if !fut.is_done() {
                let _ = fut.set_result(());
            }
        }
    }

    /// Resets the flag: later calls to [`wait`](Event::wait) suspend until
    /// [`set`](Event::set) is called again. Tasks already woken still
    /// return from their `wait`.
    pub fn clear(&self) {
        self.inner.value.set(false);
    }

    /// Waits until the flag is set: `await event.wait()`. Returns at once,
    /// without suspending, if it is set already.
    ///
    /// # Panics
    ///
    /// If it must wait and is called outside a task of a running loop. When
    /// the task is cancelled or a timeout fires while it waits, the call
    /// unwinds (leaving no trace in the event) instead of returning.
    #[inline]
    pub fn wait(&self) {
        self.wait_labeled("Event");
    }

    /// [`Event::wait`], naming what the event stands for in a deadlock
    /// report (`Queue.join` waits on one).
    pub(crate) fn wait_labeled(&self, what: &'static str) {
        let inner = &*self.inner;
        while !inner.value.get() {
            let fut = Future::new();
            inner.waiters.borrow_mut().push_back(fut.clone());
            let woken = wait_on(&fut, what, || remove_waiter(&inner.waiters, &fut));
            if woken {
                remove_waiter(&inner.waiters, &fut);
                return;
            }
        }
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.inner.value.get())
            .field("waiters", &self.inner.waiters.borrow().len())
            .finish()
    }
}
