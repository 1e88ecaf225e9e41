#![doc = include_str!("../docs/01-generators.md")]

use std::cell::Cell;
use std::fmt;
use std::io;
use std::iter::FusedIterator;
use std::marker::PhantomData;
use std::mem;
use std::ptr::NonNull;

use corosensei::stack::Stack;
use corosensei::{Coroutine, CoroutineResult};

use crate::stack::{self, DEFAULT_STACK_SIZE, PooledStack};

/// The largest closure `corosensei::Coroutine::with_stack` accepts: it
/// writes the closure onto the new stack, and above 1,024 bytes it panics
/// ("type is too big to transfer", an assertion in its
/// `allocate_obj_on_stack`) rather than return an error.
const INLINE_ENTRY_MAX: usize = 1024;

/// The largest body a generator keeps inline: what is left of
/// [`INLINE_ENTRY_MAX`] once the entry closure has added the stack's range
/// to it. Larger bodies are boxed (see `Generator::try_with_stack_size`).
pub(crate) const INLINE_BODY_MAX: usize = INLINE_ENTRY_MAX - mem::size_of::<(usize, usize)>();

/// What one [`Generator::resume`] produced: a yielded value, or the body's
/// return value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GeneratorState<Y, R> {
    /// The body called [`Yielder::yield_`] with this value and is suspended.
    Yielded(Y),
    /// The body returned this value; the generator is complete.
    Complete(R),
}

impl<Y, R> GeneratorState<Y, R> {
    /// The yielded value, if this is [`GeneratorState::Yielded`].
    pub fn yielded(self) -> Option<Y> {
        match self {
            GeneratorState::Yielded(y) => Some(y),
            GeneratorState::Complete(_) => None,
        }
    }

    /// The return value, if this is [`GeneratorState::Complete`].
    pub fn complete(self) -> Option<R> {
        match self {
            GeneratorState::Yielded(_) => None,
            GeneratorState::Complete(r) => Some(r),
        }
    }
}

/// A function body suspended on a stack of its own: Python's generator,
/// made stackful.
///
/// `Y` is what the body yields, `R` what it finally returns, `S` what each
/// [`resume`](Generator::resume) sends in (Python's `send`). Creating a
/// generator runs nothing; the first `resume` starts the body, which runs
/// until it yields or returns.
///
/// A generator is tied to the thread that created it (its stack belongs to
/// that thread's pool), so it is neither `Send` nor `Sync`.
///
/// # Dropping
///
/// Dropping a generator that has started but not finished unwinds its stack
/// from the suspension point: every destructor on that stack runs, like
/// `finally` blocks when Python closes a generator. The stack then goes back
/// to the thread's pool.
pub struct Generator<Y, R = (), S = ()> {
    /// The coroutine. Invariant: `co.done()` is true exactly when the body
    /// has returned or panicked; it never becomes false again.
    co: Coroutine<S, Y, R, PooledStack>,
    /// Usable size of the stack, for `Debug`.
    stack_size: usize,
    /// Neither `Send` nor `Sync`: see the type docs.
    _not_send: PhantomData<*const ()>,
}

/// The body's handle on its own generator: the way to yield.
///
/// A `Yielder` exists only on its generator's stack, for the duration of the
/// body, and the body only ever sees it by reference.
pub struct Yielder<Y, S = ()> {
    /// corosensei's yielder for this generator. Invariant: it lives on this
    /// generator's stack for the whole body, and a `Yielder` is created only
    /// in the entry closure of `Generator::build`, lent to the body by
    /// reference, and dropped before the body's frame is gone; so this
    /// pointer is valid for every `&Yielder` anyone can hold.
    inner: NonNull<corosensei::Yielder<S, Y>>,
    /// The stack's address range `[low, high)`, to tell whether code is
    /// running on this generator (see [`YielderSlot::suspend`]).
    stack_range: (usize, usize),
}

impl<Y: 'static, R: 'static, S: 'static> Generator<Y, R, S> {
    /// Creates a generator that will run `body` on a stack of the default
    /// size ([`DEFAULT_STACK_SIZE`]).
    ///
    /// `body` may capture values of any size. The closure is moved onto the
    /// new stack as it is when it is small; one that captures more than
    /// about 1 KiB (corosensei's limit for that move is 1,024 bytes) is
    /// moved to the heap first, which costs one allocation. Whether it
    /// does is known at compile time from the closure's type.
    ///
    /// # Panics
    ///
    /// If no stack can be mapped (see [`Generator::try_new`]).
    pub fn new<F>(body: F) -> Self
    where
        F: FnOnce(&Yielder<Y, S>, S) -> R + 'static,
    {
        Self::try_new(body).unwrap_or_else(|e| no_stack("Generator::new", &e))
    }

    /// Creates a generator whose stack has `size` usable bytes (rounded up
    /// to whole pages, at least [`MIN_STACK_SIZE`](crate::MIN_STACK_SIZE),
    /// at most [`MAX_STACK_SIZE`](crate::MAX_STACK_SIZE), 1 TiB).
    ///
    /// # Panics
    ///
    /// If `size` is over [`MAX_STACK_SIZE`](crate::MAX_STACK_SIZE), or if no
    /// stack can be mapped (see [`Generator::try_with_stack_size`]).
    pub fn with_stack_size<F>(size: usize, body: F) -> Self
    where
        F: FnOnce(&Yielder<Y, S>, S) -> R + 'static,
    {
        Self::try_with_stack_size(size, body)
            .unwrap_or_else(|e| no_stack("Generator::with_stack_size", &e))
    }

    /// Like [`Generator::new`], but reports a stack that cannot be mapped.
    ///
    /// # Errors
    ///
    /// When the OS refuses a new mapping, usually because the process hit
    /// `vm.max_map_count` (two mappings per live stack); the message says so.
    pub fn try_new<F>(body: F) -> io::Result<Self>
    where
        F: FnOnce(&Yielder<Y, S>, S) -> R + 'static,
    {
        Self::try_with_stack_size(DEFAULT_STACK_SIZE, body)
    }

    /// Like [`Generator::with_stack_size`], but reports a size or a stack
    /// that cannot be had.
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) if `size` is over
    /// [`MAX_STACK_SIZE`](crate::MAX_STACK_SIZE), with a message naming the
    /// size and the limit; otherwise as [`Generator::try_new`].
    pub fn try_with_stack_size<F>(size: usize, body: F) -> io::Result<Self>
    where
        F: FnOnce(&Yielder<Y, S>, S) -> R + 'static,
    {
        // Known at compile time: each instance keeps one branch, and small
        // bodies cost no allocation.
        if mem::size_of::<F>() <= INLINE_BODY_MAX {
            Self::start(size, body)
        } else {
            // Only the pointer travels on, and onto the new stack; the body
            // is moved out of the box when it is called.
            Self::start(size, Box::new(body))
        }
    }

    /// Maps the stack and sets `body` up to run on it.
    fn start<B>(size: usize, body: B) -> io::Result<Self>
    where
        B: FnOnce(&Yielder<Y, S>, S) -> R + 'static,
    {
        let stack = stack::allocate(size)?;
        let stack_size = stack.size();
        let stack_range = (stack.limit().get(), stack.base().get());
        let entry = move |inner: &corosensei::Yielder<S, Y>, input| {
            let yielder = Yielder {
                inner: NonNull::from(inner),
                stack_range,
            };
            body(&yielder, input)
        };
        // `body` is at most `INLINE_BODY_MAX` bytes here (or a box), so this
        // fits but for alignment padding (a capture aligned to more than
        // 1 KiB); such an entry is boxed too rather than let corosensei
        // panic. Also known at compile time.
        let co = if mem::size_of_val(&entry) <= INLINE_ENTRY_MAX {
            Coroutine::with_stack(stack, entry)
        } else {
            Coroutine::with_stack(stack, Box::new(entry))
        };
        Ok(Generator {
            co,
            stack_size,
            _not_send: PhantomData,
        })
    }
}

impl<Y, R, S> Generator<Y, R, S> {
    /// Runs the body until it next yields or returns, sending `input` in.
    ///
    /// The first `resume` starts the body and `input` becomes its second
    /// argument; every later one becomes the return value of the
    /// [`Yielder::yield_`] call the body is suspended in.
    ///
    /// # Panics
    ///
    /// If the generator already completed ("resumed a generator that already
    /// completed"). A panic inside the body propagates out of `resume`, and
    /// leaves the generator complete.
    #[inline]
    pub fn resume(&mut self, input: S) -> GeneratorState<Y, R> {
        if self.co.done() {
            already_completed();
        }
        match self.co.resume(input) {
            CoroutineResult::Yield(y) => GeneratorState::Yielded(y),
            CoroutineResult::Return(r) => GeneratorState::Complete(r),
        }
    }

    /// Whether the body has returned (or panicked). A complete generator
    /// cannot be resumed.
    #[inline]
    pub fn is_complete(&self) -> bool {
        self.co.done()
    }

    /// Whether the body has been resumed at least once.
    #[inline]
    pub fn is_started(&self) -> bool {
        self.co.started()
    }
}

#[cold]
#[inline(never)]
fn no_stack(what: &str, e: &io::Error) -> ! {
    panic!("{what} could not get a stack: {e}")
}

#[cold]
#[inline(never)]
fn already_completed() -> ! {
    panic!("resumed a generator that already completed; check is_complete() before resuming")
}

impl<Y, R, S> fmt::Debug for Generator<Y, R, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generator")
            .field("started", &self.is_started())
            .field("complete", &self.is_complete())
            .field("stack_size", &self.stack_size)
            .finish()
    }
}

/// A generator that takes and returns `()` is an iterator over what it
/// yields, like a Python generator in a `for` loop.
impl<Y> Iterator for Generator<Y, (), ()> {
    type Item = Y;

    fn next(&mut self) -> Option<Y> {
        if self.is_complete() {
            return None;
        }
        self.resume(()).yielded()
    }
}

impl<Y> FusedIterator for Generator<Y, (), ()> {}

impl<Y, S> Yielder<Y, S> {
    /// Suspends the generator, handing `value` to the caller of
    /// [`Generator::resume`]; returns what the next `resume` sends in.
    ///
    /// Called from any depth of nested function calls on the generator's
    /// stack: that is what "stackful" buys.
    ///
    /// # Panics
    ///
    /// If the generator is dropped while suspended here, this call unwinds
    /// (so destructors run) instead of returning. Code that catches panics
    /// must let that unwind continue.
    #[inline(always)]
    pub fn yield_(&self, value: Y) -> S {
        // SAFETY: see the invariant on `inner`: the corosensei yielder it
        // points to outlives every `&Yielder`.
        let inner = unsafe { self.inner.as_ref() };
        inner.suspend(value)
    }

    /// Drives `sub` to completion from inside this generator, passing each
    /// of its yielded values out and each sent value in, and returns its
    /// return value: Python's `yield from`.
    ///
    /// `sub` is first resumed with `S::default()` (Python sends `None`).
    pub fn yield_from<R2>(&self, mut sub: Generator<Y, R2, S>) -> R2
    where
        S: Default,
    {
        let mut input = S::default();
        loop {
            match sub.resume(input) {
                GeneratorState::Yielded(y) => input = self.yield_(y),
                GeneratorState::Complete(r) => return r,
            }
        }
    }

    /// Whether the calling code is running on this generator's stack.
    #[inline(always)]
    fn on_own_stack(&self) -> bool {
        let marker = 0u8;
        let sp = std::hint::black_box(&marker) as *const u8 as usize;
        self.stack_range.0 <= sp && sp < self.stack_range.1
    }

    /// Makes this yielder reachable through `slot` while `f` runs, so code
    /// deep in the body can suspend the generator without a `&Yielder` in
    /// hand. The runtime publishes each task's yielder this way.
    pub(crate) fn publish<T>(&self, slot: &YielderSlot<Y, S>, f: impl FnOnce() -> T) -> T {
        struct Restore<'a, Y, S> {
            slot: &'a YielderSlot<Y, S>,
            prev: Option<NonNull<Yielder<Y, S>>>,
        }
        impl<Y, S> Drop for Restore<'_, Y, S> {
            fn drop(&mut self) {
                self.slot.published.set(self.prev);
            }
        }
        let _restore = Restore {
            slot,
            prev: slot.published.replace(Some(NonNull::from(self))),
        };
        f()
    }
}

impl<Y, S> fmt::Debug for Yielder<Y, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Yielder").finish_non_exhaustive()
    }
}

/// A place where a running generator's [`Yielder`] is published (see
/// [`Yielder::publish`]), so that a function that only knows the slot can
/// suspend the generator.
pub(crate) struct YielderSlot<Y, S> {
    /// The published yielder. Invariant: `Some(p)` only while a
    /// `Yielder::publish` call that borrows `*p` is on the stack (the guard
    /// in `publish` restores the previous value when it returns or unwinds).
    /// If the generator is leaked mid-body its stack is never unmapped, so
    /// `*p` stays valid memory.
    published: Cell<Option<NonNull<Yielder<Y, S>>>>,
}

impl<Y, S> YielderSlot<Y, S> {
    pub(crate) const fn new() -> Self {
        YielderSlot {
            published: Cell::new(None),
        }
    }

    /// Suspends the published generator with `value`, if the caller is
    /// running on that generator's own stack; otherwise gives `value` back.
    ///
    /// The stack check is what makes this safe to call from anywhere: it
    /// refuses the loop's own stack and the stack of a nested generator,
    /// where switching away would be wrong.
    #[inline(always)]
    pub(crate) fn suspend(&self, value: Y) -> Result<S, Y> {
        let Some(ptr) = self.published.get() else {
            return Err(value);
        };
        // SAFETY: per the invariant on `published`, `ptr` points to a
        // `Yielder` that is alive: it is borrowed by a `publish` call still
        // on its generator's stack (or leaked along with that stack).
        let yielder = unsafe { ptr.as_ref() };
        if !yielder.on_own_stack() {
            return Err(value);
        }
        Ok(yielder.yield_(value))
    }
}
