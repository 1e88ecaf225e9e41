//! `Queue`, `LifoQueue`, `PriorityQueue`: asyncio's queues (CPython 3.13's
//! `queues.py`, with `shutdown`), one generic core over a storage trait.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::error::Error;
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;

use super::{SpareFuture, Waiters, remove_waiter, wait_on};
use crate::sync::Event;

/// How a queue stores its items and which one comes out next: the three
/// methods CPython's queue subclasses override (`_put`, `_get`, `qsize`).
///
/// Implemented for [`VecDeque`] (first in, first out: [`Queue`]), [`Vec`]
/// (last in, first out: [`LifoQueue`]) and [`BinaryHeap`]`<`[`Reverse`]`<T>>`
/// (smallest first, like Python's `heapq`: [`PriorityQueue`]). Implement it
/// for another type to get a [`GenericQueue`] with another discipline.
///
/// The methods run while the queue's storage is borrowed: they must not
/// call back into the same queue.
pub trait QueueStorage<T> {
    /// Adds an item.
    fn push(&mut self, item: T);
    /// Removes the next item to hand out, if any.
    fn pop(&mut self) -> Option<T>;
    /// How many items are stored.
    fn len(&self) -> usize;
    /// Whether no item is stored.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> QueueStorage<T> for VecDeque<T> {
    fn push(&mut self, item: T) {
        self.push_back(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.pop_front()
    }
    fn len(&self) -> usize {
        VecDeque::len(self)
    }
}

impl<T> QueueStorage<T> for Vec<T> {
    fn push(&mut self, item: T) {
        Vec::push(self, item);
    }
    fn pop(&mut self) -> Option<T> {
        Vec::pop(self)
    }
    fn len(&self) -> usize {
        Vec::len(self)
    }
}

impl<T: Ord> QueueStorage<T> for BinaryHeap<Reverse<T>> {
    fn push(&mut self, item: T) {
        BinaryHeap::push(self, Reverse(item));
    }
    fn pop(&mut self) -> Option<T> {
        BinaryHeap::pop(self).map(|Reverse(item)| item)
    }
    fn len(&self) -> usize {
        BinaryHeap::len(self)
    }
}

/// A first-in, first-out queue: `asyncio.Queue`. See [`GenericQueue`] for
/// the methods.
///
/// ```
/// use std::time::Duration;
/// use bucle::sync::Queue;
///
/// bucle::run(|| {
///     let queue = Queue::with_maxsize(2);
///     let producer = {
///         let queue = queue.clone();
///         bucle::spawn(move || {
///             for i in 0..5 {
///                 queue.put(i).unwrap(); // waits while the queue is full
///             }
///             queue.shutdown(false); // no more items; getters drain the rest
///         })
///     };
///     let mut got = Vec::new();
///     while let Ok(item) = queue.get() {
///         got.push(item);
///         bucle::sleep(Duration::from_millis(1));
///     }
///     producer.join().unwrap();
///     assert_eq!(got, [0, 1, 2, 3, 4]);
/// });
/// ```
pub type Queue<T> = GenericQueue<T, VecDeque<T>>;

/// A last-in, first-out queue (a stack): `asyncio.LifoQueue`. See
/// [`GenericQueue`] for the methods.
///
/// ```
/// use bucle::sync::LifoQueue;
///
/// bucle::run(|| {
///     let stack = LifoQueue::new();
///     for i in 1..=3 {
///         stack.put_nowait(i).unwrap();
///     }
///     assert_eq!(stack.get(), Ok(3));
///     assert_eq!(stack.get(), Ok(2));
/// });
/// ```
pub type LifoQueue<T> = GenericQueue<T, Vec<T>>;

/// A queue that hands out its smallest item first: `asyncio.PriorityQueue`
/// (Python's `heapq` order). Items are typically `(priority, data)` tuples.
/// See [`GenericQueue`] for the methods.
///
/// ```
/// use bucle::sync::PriorityQueue;
///
/// bucle::run(|| {
///     let jobs = PriorityQueue::new();
///     jobs.put_nowait((2, "write")).unwrap();
///     jobs.put_nowait((1, "read")).unwrap();
///     jobs.put_nowait((3, "close")).unwrap();
///     assert_eq!(jobs.get(), Ok((1, "read")));
///     assert_eq!(jobs.get(), Ok((2, "write")));
/// });
/// ```
pub type PriorityQueue<T> = GenericQueue<T, BinaryHeap<Reverse<T>>>;

struct Inner<T, S> {
    items: RefCell<S>,
    /// 0 means unbounded (Python's `maxsize <= 0`).
    maxsize: usize,
    /// Tasks waiting for an item, in arrival order. `_wakeup_next` pops the
    /// one it wakes; the item stays in the queue until that task takes it.
    getters: Waiters,
    /// Tasks waiting for room, in arrival order.
    putters: Waiters,
    /// A finished waiter future for the next `get` or `put` that must wait.
    spare: SpareFuture,
    unfinished: Cell<usize>,
    /// Set while `unfinished == 0`; `join` waits on it.
    finished: Event,
    shut_down: Cell<bool>,
    _items: PhantomData<T>,
}

/// `_wakeup_next`: wake the first waiter not already woken or cancelled,
/// taking it out of line.
#[inline]
fn wakeup_next(waiters: &Waiters) {
    loop {
        let next = waiters.borrow_mut().pop_front();
        match next {
            None => return,
            Some(fut) if !fut.is_done() => {
                let _ = fut.set_result(());
                return;
            }
            Some(_) => {}
        }
    }
}

/// Wakes every waiter, emptying the line (`shutdown`).
fn wakeup_all(waiters: &Waiters) {
    let all = std::mem::take(&mut *waiters.borrow_mut());
    for fut in all {
        if !fut.is_done() {
            let _ = fut.set_result(());
        }
    }
}

impl<T, S: QueueStorage<T>> Inner<T, S> {
    fn len(&self) -> usize {
        self.items.borrow().len()
    }

    fn is_empty(&self) -> bool {
        self.items.borrow().is_empty()
    }

    fn is_full(&self) -> bool {
        self.maxsize > 0 && self.len() >= self.maxsize
    }
}

/// The queue machinery shared by [`Queue`], [`LifoQueue`] and
/// [`PriorityQueue`], over a [`QueueStorage`]: asyncio's `Queue` class.
///
/// Producers [`put`](GenericQueue::put) items (waiting while the queue is
/// full), consumers [`get`](GenericQueue::get) them (waiting while it is
/// empty). Both lines of waiting tasks are served in arrival order. An item
/// stays in the queue until a consumer actually takes it, so a consumer
/// cancelled or timed out while waiting never loses one, and a producer
/// cancelled while waiting never adds one.
///
/// [`task_done`](GenericQueue::task_done) and [`join`](GenericQueue::join)
/// track the work on the items; [`shutdown`](GenericQueue::shutdown) ends the
/// queue (Python 3.13).
///
/// A queue is a cheap `Clone` handle; every clone is the same queue.
pub struct GenericQueue<T, S> {
    inner: Rc<Inner<T, S>>,
}

impl<T, S> Clone for GenericQueue<T, S> {
    fn clone(&self) -> Self {
        GenericQueue {
            inner: self.inner.clone(),
        }
    }
}

impl<T, S: QueueStorage<T> + Default> Default for GenericQueue<T, S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, S: QueueStorage<T> + Default> GenericQueue<T, S> {
    /// An unbounded queue: `Queue()`.
    pub fn new() -> Self {
        Self::with_maxsize(0)
    }

    /// A queue holding at most `maxsize` items; `0` means unbounded:
    /// `Queue(maxsize)`.
    pub fn with_maxsize(maxsize: usize) -> Self {
        Self::with_storage(S::default(), maxsize)
    }
}

impl<T, S: QueueStorage<T>> GenericQueue<T, S> {
    /// A queue over `storage` (its items, if any, count as already put
    /// and processed: they do not hold up [`join`](GenericQueue::join)),
    /// holding at most `maxsize` items; `0` means unbounded.
    pub fn with_storage(storage: S, maxsize: usize) -> Self {
        let finished = Event::new();
        finished.set();
        GenericQueue {
            inner: Rc::new(Inner {
                items: RefCell::new(storage),
                maxsize,
                getters: Waiters::default(),
                putters: Waiters::default(),
                spare: SpareFuture::default(),
                unfinished: Cell::new(0),
                finished,
                shut_down: Cell::new(false),
                _items: PhantomData,
            }),
        }
    }

    /// The most items the queue holds; `0` means unbounded.
    pub fn maxsize(&self) -> usize {
        self.inner.maxsize
    }

    /// How many items are in the queue: `qsize()`.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether the queue holds no item: `empty()`.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Whether the queue holds `maxsize` items; never for an unbounded
    /// queue: `full()`.
    pub fn is_full(&self) -> bool {
        self.inner.is_full()
    }

    /// Whether [`shutdown`](GenericQueue::shutdown) has been called.
    pub fn is_shut_down(&self) -> bool {
        self.inner.shut_down.get()
    }

    /// Items put and not yet marked done with
    /// [`task_done`](GenericQueue::task_done).
    pub fn unfinished_tasks(&self) -> usize {
        self.inner.unfinished.get()
    }

    /// Puts an item into the queue, waiting while it is full: `await
    /// queue.put(item)`. Returns at once, without suspending, if there is
    /// room. Putters waiting for room are served in arrival order.
    ///
    /// A task cancelled (or timed out) while waiting leaves the line; its
    /// item is never added (it is dropped with the task's stack). If room
    /// had already been signalled to it, the next putter is woken instead.
    ///
    /// # Errors
    ///
    /// [`PutError`] with the item if the queue is shut down, before or while
    /// this waits (Python's `QueueShutDown`).
    ///
    /// # Panics
    ///
    /// If it must wait and is called outside a task of a running loop. When
    /// the task is cancelled or a timeout fires while it waits, the call
    /// unwinds instead of returning.
    #[inline]
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        let s = &*self.inner;
        while s.is_full() {
            if s.shut_down.get() {
                return Err(PutError(item));
            }
            let putter = s.spare.take();
            s.putters.borrow_mut().push_back(putter.clone());
            wait_on(&putter, "Queue.put", || {
                putter.cancel();
                remove_waiter(&s.putters, &putter);
                if !s.is_full() && !putter.is_cancelled() {
                    // Room was signalled to us, but we cannot take it.
                    wakeup_next(&s.putters);
                }
            });
            s.spare.give_back(putter);
        }
        self.put_nowait(item).map_err(|e| PutError(e.into_inner()))
    }

    /// Puts an item into the queue if there is room, without waiting:
    /// `put_nowait(item)`. Wakes the first getter in line, if any.
    ///
    /// # Errors
    ///
    /// [`TryPutError::ShutDown`] if the queue is shut down,
    /// [`TryPutError::Full`] if it is full (Python's `QueueShutDown` and
    /// `QueueFull`); either way the item comes back.
    pub fn put_nowait(&self, item: T) -> Result<(), TryPutError<T>> {
        let s = &*self.inner;
        if s.shut_down.get() {
            return Err(TryPutError::ShutDown(item));
        }
        if s.is_full() {
            return Err(TryPutError::Full(item));
        }
        s.items.borrow_mut().push(item);
        s.unfinished.set(s.unfinished.get() + 1);
        s.finished.clear();
        wakeup_next(&s.getters);
        Ok(())
    }

    /// Removes and returns the next item, waiting while the queue is empty:
    /// `await queue.get()`. Returns at once, without suspending, if an item
    /// is there. Getters waiting for items are served in arrival order.
    ///
    /// A task cancelled (or timed out) while waiting leaves the line without
    /// taking an item: the item stays in the queue, and if it had already
    /// been signalled to this task, the next getter is woken instead.
    ///
    /// # Errors
    ///
    /// [`QueueShutDown`] if the queue is shut down and empty (after
    /// `shutdown(false)` the remaining items are still handed out first;
    /// `shutdown(true)` discards them).
    ///
    /// # Panics
    ///
    /// If it must wait and is called outside a task of a running loop. When
    /// the task is cancelled or a timeout fires while it waits, the call
    /// unwinds instead of returning.
    #[inline]
    pub fn get(&self) -> Result<T, QueueShutDown> {
        let s = &*self.inner;
        while s.is_empty() {
            if s.shut_down.get() {
                return Err(QueueShutDown);
            }
            let getter = s.spare.take();
            s.getters.borrow_mut().push_back(getter.clone());
            wait_on(&getter, "Queue.get", || {
                getter.cancel();
                remove_waiter(&s.getters, &getter);
                if !s.is_empty() && !getter.is_cancelled() {
                    // An item was signalled to us, but we cannot take it.
                    wakeup_next(&s.getters);
                }
            });
            s.spare.give_back(getter);
        }
        self.get_nowait().map_err(|_| QueueShutDown)
    }

    /// Removes and returns the next item if there is one, without waiting:
    /// `get_nowait()`. Wakes the first putter in line, if any.
    ///
    /// # Errors
    ///
    /// [`TryGetError::Empty`] if the queue is empty,
    /// [`TryGetError::ShutDown`] if it is empty and shut down (Python's
    /// `QueueEmpty` and `QueueShutDown`).
    pub fn get_nowait(&self) -> Result<T, TryGetError> {
        let s = &*self.inner;
        let item = s.items.borrow_mut().pop();
        match item {
            Some(item) => {
                wakeup_next(&s.putters);
                Ok(item)
            }
            None if s.shut_down.get() => Err(TryGetError::ShutDown),
            None => Err(TryGetError::Empty),
        }
    }

    /// Marks one item taken with `get` as processed: `task_done()`. When
    /// every item put has been marked, [`join`](GenericQueue::join)
    /// returns.
    ///
    /// # Panics
    ///
    /// If called more times than items were put (Python's `ValueError`);
    /// [`try_task_done`](GenericQueue::try_task_done) reports it instead.
    pub fn task_done(&self) {
        if let Err(e) = self.try_task_done() {
            panic!("Queue::task_done: {e}");
        }
    }

    /// [`task_done`](GenericQueue::task_done), reporting a call too many
    /// instead of panicking.
    ///
    /// # Errors
    ///
    /// [`TaskDoneError`] if no put item is left unfinished; nothing changes
    /// then.
    pub fn try_task_done(&self) -> Result<(), TaskDoneError> {
        let s = &*self.inner;
        let n = s.unfinished.get();
        if n == 0 {
            return Err(TaskDoneError);
        }
        s.unfinished.set(n - 1);
        if n == 1 {
            s.finished.set();
        }
        Ok(())
    }

    /// Waits until every item put has been marked with
    /// [`task_done`](GenericQueue::task_done): `await queue.join()`.
    /// Returns at once if none is unfinished.
    ///
    /// # Panics
    ///
    /// If it must wait and is called outside a task of a running loop. When
    /// the task is cancelled or a timeout fires while it waits, the call
    /// unwinds instead of returning.
    pub fn join(&self) {
        if self.inner.unfinished.get() > 0 {
            self.inner.finished.wait_labeled("Queue.join");
        }
    }

    /// Shuts the queue down (Python 3.13's `shutdown(immediate)`): from now
    /// on `put` and `put_nowait` fail, and every task waiting in `put` wakes
    /// with [`PutError`].
    ///
    /// With `immediate == false`, consumers still get the items left in the
    /// queue; once it is empty, `get` fails with [`QueueShutDown`] (getters
    /// waiting on an empty queue wake with it now).
    ///
    /// With `immediate == true`, the items left are dropped at once, each
    /// counted as done for [`join`](GenericQueue::join) (which returns once
    /// nothing is unfinished), and every getter wakes with
    /// [`QueueShutDown`].
    ///
    /// Calling it again is allowed (and can upgrade to `immediate`).
    pub fn shutdown(&self, immediate: bool) {
        let s = &*self.inner;
        s.shut_down.set(true);
        let mut discarded = Vec::new();
        if immediate {
            loop {
                // One short borrow per item: the items are dropped later,
                // outside any borrow, since their destructors may use the
                // queue.
                let item = s.items.borrow_mut().pop();
                let Some(item) = item else { break };
                discarded.push(item);
                let n = s.unfinished.get();
                if n > 0 {
                    s.unfinished.set(n - 1);
                }
            }
            if s.unfinished.get() == 0 {
                s.finished.set();
            }
        }
        wakeup_all(&s.getters);
        wakeup_all(&s.putters);
        drop(discarded);
    }
}

impl<T, S: QueueStorage<T>> fmt::Debug for GenericQueue<T, S> {
    /// Like CPython's repr: size, bound, both lines, unfinished count.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &*self.inner;
        f.debug_struct("Queue")
            .field("len", &s.len())
            .field("maxsize", &s.maxsize)
            .field("getters", &s.getters.borrow().len())
            .field("putters", &s.putters.borrow().len())
            .field("unfinished", &s.unfinished.get())
            .field("shut_down", &s.shut_down.get())
            .finish()
    }
}

/// Why [`put_nowait`](GenericQueue::put_nowait) refused an item; the item
/// comes back in either case.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TryPutError<T> {
    /// The queue is full: Python's `QueueFull`.
    Full(T),
    /// The queue is shut down: Python's `QueueShutDown`.
    ShutDown(T),
}

impl<T> TryPutError<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        match self {
            TryPutError::Full(item) | TryPutError::ShutDown(item) => item,
        }
    }

    /// Whether the queue was full.
    pub fn is_full(&self) -> bool {
        matches!(self, TryPutError::Full(_))
    }

    /// Whether the queue was shut down.
    pub fn is_shut_down(&self) -> bool {
        matches!(self, TryPutError::ShutDown(_))
    }
}

impl<T> fmt::Debug for TryPutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryPutError::Full(_) => f.write_str("Full(..)"),
            TryPutError::ShutDown(_) => f.write_str("ShutDown(..)"),
        }
    }
}

impl<T> fmt::Display for TryPutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryPutError::Full(_) => f.write_str("the queue is full"),
            TryPutError::ShutDown(_) => f.write_str("the queue is shut down"),
        }
    }
}

impl<T> Error for TryPutError<T> {}

/// [`put`](GenericQueue::put) on a shut-down queue (Python's
/// `QueueShutDown`); the item comes back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PutError<T>(pub T);

impl<T> PutError<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PutError(..)")
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the queue is shut down")
    }
}

impl<T> Error for PutError<T> {}

/// Why [`get_nowait`](GenericQueue::get_nowait) returned no item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryGetError {
    /// The queue is empty: Python's `QueueEmpty`.
    Empty,
    /// The queue is empty and shut down: Python's `QueueShutDown`.
    ShutDown,
}

impl fmt::Display for TryGetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryGetError::Empty => f.write_str("the queue is empty"),
            TryGetError::ShutDown => f.write_str("the queue is shut down and empty"),
        }
    }
}

impl Error for TryGetError {}

/// [`get`](GenericQueue::get) on a queue that is shut down and empty:
/// Python's `QueueShutDown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueShutDown;

impl fmt::Display for QueueShutDown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the queue is shut down and empty")
    }
}

impl Error for QueueShutDown {}

/// [`try_task_done`](GenericQueue::try_task_done) called more times than
/// items were put: Python's `ValueError('task_done() called too many
/// times')`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskDoneError;

impl fmt::Display for TaskDoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task_done() called too many times")
    }
}

impl Error for TaskDoneError {}
