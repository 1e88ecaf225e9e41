//! [`AsyncFd`]: any non-blocking file descriptor, registered in the loop's
//! reactor, with operations that suspend the task instead of the thread.

use std::cell::Cell;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::rc::Rc;

use crate::io::reactor::{Dir, SetWaiter, SourceKey};
use crate::io::sys;
pub use crate::runtime::core::COOP_BUDGET;
use crate::runtime::core::{self, Core, Wait};
use crate::runtime::task::TaskRef;

/// A non-blocking file descriptor registered in the running loop's reactor:
/// asyncio's `add_reader`/`add_writer`, curio's `read_wait`/`write_wait`,
/// tokio's `AsyncFd`. Bring your own source — a pipe, an eventfd, a tty, a
/// socket std has no wrapper for — and wait on it from a task.
///
/// [`AsyncFd::read_with`] and [`AsyncFd::write_with`] do what every socket
/// operation of [`crate::net`] does: *try* the operation, and only on
/// `WouldBlock` wait for the reactor to say the descriptor is ready, then
/// try again. A wake-up is only a hint.
///
/// ```
/// use std::io::{Read, Write};
/// use std::os::unix::net::UnixStream;
/// use bucle::io::AsyncFd;
///
/// bucle::run(|| {
///     let (a, b) = UnixStream::pair().unwrap();
///     let reader = AsyncFd::new(a).unwrap();
///     let writer = bucle::spawn(move || {
///         bucle::yield_now(); // the reader is parked by now
///         (&b).write_all(b"ping").unwrap();
///     });
///     let mut buf = [0u8; 4];
///     // Suspends this task (not the thread) until the bytes arrive.
///     let n = reader.read_with(|s| (&*s).read(&mut buf)).unwrap();
///     assert_eq!(&buf[..n], b"ping");
///     writer.join().unwrap();
/// });
/// ```
///
/// # One reader, one writer
///
/// At most one task may wait to read and one to write on a source at a
/// time (curio's rule): a second concurrent waiter in the same direction
/// gets an error of kind `ResourceBusy` naming the descriptor.
///
/// # Closing
///
/// [`AsyncFd::close`] removes the source from the reactor at once: a task
/// waiting on it wakes with an error (kind `NotConnected`), and so does
/// every later operation. The descriptor itself is closed when the
/// `AsyncFd` is dropped, after it has left the reactor — never before, so
/// its number cannot be reused while an event for it may still arrive.
pub struct AsyncFd<T: AsFd + 'static> {
    /// The descriptor's owner. `None` only inside `into_inner`.
    inner: Option<T>,
    /// The loop whose reactor holds the registration.
    core: Rc<Core>,
    /// The registration; stale once `closed`.
    key: SourceKey,
    /// Whether the source has left the reactor (`close`).
    closed: Cell<bool>,
}

impl<T: AsFd + 'static> AsyncFd<T> {
    /// Registers `inner` in the running loop's reactor, after putting it in
    /// non-blocking mode (`O_NONBLOCK`).
    ///
    /// # Errors
    ///
    /// If the descriptor cannot be made non-blocking or registered (an
    /// epoll refuses regular files, for instance: they are always ready).
    ///
    /// # Panics
    ///
    /// Outside a running loop.
    pub fn new(inner: T) -> io::Result<Self> {
        let core = core::running("bucle::io::AsyncFd::new");
        let fd = inner.as_fd();
        sys::set_nonblocking(fd)?;
        sys::no_sigpipe(fd).ok();
        let key = core.reactor()?.register(fd)?;
        Ok(AsyncFd {
            inner: Some(inner),
            core,
            key,
            closed: Cell::new(false),
        })
    }

    /// The wrapped value.
    pub fn get_ref(&self) -> &T {
        self.inner.as_ref().expect("present until into_inner")
    }

    /// The wrapped value, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        self.inner.as_mut().expect("present until into_inner")
    }

    /// Takes the value back out of the reactor (it stays non-blocking).
    pub fn into_inner(mut self) -> T {
        self.leave();
        self.inner.take().expect("present until into_inner")
    }

    /// The raw descriptor, for messages.
    fn raw(&self) -> i32 {
        self.get_ref().as_fd().as_raw_fd()
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.get_ref().as_fd()
    }

    /// Whether [`AsyncFd::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Removes the source from the reactor: a task waiting on it wakes with
    /// an error, and so does every later operation. The descriptor is
    /// closed when the `AsyncFd` is dropped. Idempotent.
    pub fn close(&self) {
        for waiter in self.leave() {
            waiter.wake();
        }
    }

    /// Deregisters (once), returning the waiters it had.
    fn leave(&self) -> Vec<crate::runtime::task::Waker> {
        if self.closed.replace(true) {
            return Vec::new();
        }
        match self.core.reactor() {
            Ok(r) => r
                .deregister(self.key, self.fd())
                .into_iter()
                .flatten()
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Suspends the current task until the descriptor is readable (or
    /// closed, or in error: a wake-up is a hint, so try the operation).
    ///
    /// # Errors
    ///
    /// `NotConnected` if the source was closed; `ResourceBusy` if another
    /// task already waits to read it.
    ///
    /// # Panics
    ///
    /// Outside a task of the loop the source belongs to. If the task is
    /// cancelled or a timeout fires, it unwinds, and the wait is withdrawn.
    pub fn wait_readable(&self) -> io::Result<()> {
        self.wait(Dir::Read, "bucle::io::AsyncFd::wait_readable")
    }

    /// Suspends the current task until the descriptor is writable; see
    /// [`AsyncFd::wait_readable`].
    ///
    /// # Errors
    ///
    /// As [`AsyncFd::wait_readable`].
    ///
    /// # Panics
    ///
    /// As [`AsyncFd::wait_readable`].
    pub fn wait_writable(&self) -> io::Result<()> {
        self.wait(Dir::Write, "bucle::io::AsyncFd::wait_writable")
    }

    /// Runs `op` until it does not return `WouldBlock`, waiting for
    /// readability in between: a read that suspends the task instead of the
    /// thread.
    ///
    /// After [`COOP_BUDGET`] operations in a row that completed without
    /// waiting, the task yields once, so an always-ready source cannot
    /// starve the others.
    ///
    /// # Errors
    ///
    /// `op`'s error, or one of [`AsyncFd::wait_readable`]'s.
    ///
    /// # Panics
    ///
    /// As [`AsyncFd::wait_readable`], when `op` returns `WouldBlock`.
    pub fn read_with<R>(&self, op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.io(Dir::Read, "bucle::io::AsyncFd::read_with", op)
    }

    /// [`AsyncFd::read_with`] for writes: runs `op`, waiting for
    /// writability while it returns `WouldBlock`.
    ///
    /// # Errors
    ///
    /// As [`AsyncFd::read_with`].
    ///
    /// # Panics
    ///
    /// As [`AsyncFd::read_with`].
    pub fn write_with<R>(&self, op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.io(Dir::Write, "bucle::io::AsyncFd::write_with", op)
    }

    /// Try, park on `WouldBlock`, retry.
    #[inline]
    pub(crate) fn io<R>(
        &self,
        dir: Dir,
        what: &'static str,
        op: impl FnMut(&T) -> io::Result<R>,
    ) -> io::Result<R> {
        self.io_until(dir, what, op, |_| false)
    }

    /// [`AsyncFd::io`] where a result can prove the kernel's buffer
    /// exhausted: `drained` says so (a stream's short write filled its send
    /// buffer). Edge-triggered, the next operation in that direction then
    /// waits for an event first instead of trying: the `WouldBlock` it
    /// would get is a system call saved (tokio does the same). An edge
    /// follows every change after the drain, so nothing can be missed.
    /// (Not for reads: a short read may leave an end of stream behind it,
    /// and no edge would come for that.)
    #[inline]
    pub(crate) fn io_until<R>(
        &self,
        dir: Dir,
        what: &'static str,
        mut op: impl FnMut(&T) -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> io::Result<R> {
        let reactor = self.core.reactor()?;
        let mut waited = false;
        loop {
            if self.closed.get() {
                return Err(closed());
            }
            if !reactor.is_ready(self.key, dir) {
                self.wait(dir, what)?;
                waited = true;
                continue;
            }
            match op(self.get_ref()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    reactor.drained(self.key, dir);
                    self.wait(dir, what)?;
                    waited = true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                done => {
                    if done.as_ref().is_ok_and(&drained) {
                        reactor.drained(self.key, dir);
                    }
                    if !waited {
                        spend_budget(what);
                    }
                    return done;
                }
            }
        }
    }

    /// One attempt at `op`, never waiting: `WouldBlock` if the reactor
    /// knows the direction drained (or the OS says so), the operation's
    /// result otherwise. `drained` is as for [`AsyncFd::io_until`]. For
    /// calls that must not suspend (a stream writer's `write`).
    pub(crate) fn try_io<R>(
        &self,
        dir: Dir,
        op: impl FnOnce(&T) -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> io::Result<R> {
        if self.closed.get() {
            return Err(closed());
        }
        let reactor = self.core.reactor()?;
        if !reactor.is_ready(self.key, dir) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let done = op(self.get_ref());
        match &done {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => reactor.drained(self.key, dir),
            Ok(r) if drained(r) => reactor.drained(self.key, dir),
            _ => {}
        }
        done
    }

    fn wait(&self, dir: Dir, what: &'static str) -> io::Result<()> {
        if self.closed.get() {
            return Err(closed());
        }
        let me = core::current_task(what);
        if !me.header.core().is_some_and(|c| Rc::ptr_eq(&c, &self.core)) {
            panic!(
                "{what}: this I/O source belongs to another event loop; use each socket on the \
                 loop that created it"
            );
        }
        let reactor = self.core.reactor()?;
        let waker = core::prepare_wait(&me);
        let seq = waker.seq;
        if let Err((why, waker)) = reactor.set_waiter(self.key, self.fd(), dir, waker) {
            drop(waker);
            return Err(match why {
                SetWaiter::Busy => io::Error::new(
                    io::ErrorKind::ResourceBusy,
                    format!(
                        "bucle: another task is already waiting to {} fd {}; one reader and one \
                         writer may wait on a source at a time",
                        dir.verb(),
                        self.raw()
                    ),
                ),
                SetWaiter::Gone => closed(),
            });
        }
        // Withdraws the wait if it is still ours when the task leaves (an
        // interrupt woke it, or it is unwinding).
        struct Withdraw<'a, T: AsFd + 'static> {
            source: &'a AsyncFd<T>,
            dir: Dir,
            me: &'a TaskRef,
            seq: u64,
        }
        impl<T: AsFd + 'static> Drop for Withdraw<'_, T> {
            fn drop(&mut self) {
                if let Ok(r) = self.source.core.reactor() {
                    let mine = r.take_if(self.source.key, self.dir, |w| {
                        w.seq == self.seq && Rc::ptr_eq(&w.task, self.me)
                    });
                    drop(mine);
                }
            }
        }
        let withdraw = Withdraw {
            source: self,
            dir,
            me: &me,
            seq,
        };
        me.header.budget.set(COOP_BUDGET);
        core::park(
            &me,
            Wait::Io {
                fd: self.raw(),
                dir,
            },
            what,
        );
        drop(withdraw);
        if self.closed.get() {
            return Err(closed());
        }
        Ok(())
    }
}

/// Counts one operation that completed without waiting against the current
/// task's budget; yields when it runs out.
#[inline]
fn spend_budget(what: &str) {
    let Some(me) = core::try_current_task() else {
        return;
    };
    let left = me.header.budget.get().saturating_sub(1);
    if left > 0 {
        me.header.budget.set(left);
        return;
    }
    me.header.budget.set(COOP_BUDGET);
    core::yield_task(&me, what);
}

/// The error of an operation on a closed source.
fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "bucle: the I/O source was closed (AsyncFd::close)",
    )
}

impl<T: AsFd + 'static> Drop for AsyncFd<T> {
    fn drop(&mut self) {
        // Leave the reactor before `inner` (and with it the fd) is dropped.
        self.close();
    }
}

impl<T: AsFd + fmt::Debug + 'static> fmt::Debug for AsyncFd<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncFd")
            .field("inner", &self.inner)
            .field("closed", &self.closed.get())
            .finish()
    }
}
