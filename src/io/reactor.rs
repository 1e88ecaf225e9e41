//! The reactor: a driver below the kernel, over the OS poller (`polling`:
//! epoll on Linux, kqueue on the BSDs and macOS — Python's `selectors`).
//!
//! It knows nothing of tasks: it keeps a table of registered file
//! descriptors, each with at most one waiter per direction (read, write),
//! of whatever type the kernel gives it (`W`, the kernel's waker), and
//! hands back the waiters whose direction the OS reports ready.
//!
//! # Keys, not file descriptors
//!
//! A registration is named by a [`SourceKey`]: a slot index in the table
//! and the slot's generation, packed into the poller's key. Never by the
//! fd: fd numbers are reused the moment one closes, and an event that the
//! OS queued for the old owner must not reach the new one. A slot's
//! generation grows each time the slot is freed, so an event carrying a
//! stale key finds a different generation and is dropped.
//!
//! # Edge-triggered, try first
//!
//! Where the poller supports it (epoll, kqueue), a source is registered
//! once, for both directions, edge-triggered: no system call per wait. The
//! reactor keeps no readiness state; the I/O layer always *tries* the
//! operation first and only waits after `WouldBlock`. Since events are only
//! collected between task steps, none can slip between a `WouldBlock` and
//! the waiter that follows it, and every wake is only a hint: the operation
//! is retried and may wait again. Elsewhere sources are registered oneshot
//! and re-armed each time a waiter is set.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use polling::{Event, Events, PollMode, Poller};

/// A direction of I/O on a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Read = 0,
    Write = 1,
}

impl Dir {
    pub(crate) fn verb(self) -> &'static str {
        match self {
            Dir::Read => "read",
            Dir::Write => "write",
        }
    }
}

/// A registration in the reactor: slot index and generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SourceKey {
    index: u32,
    generation: u32,
}

/// Bits of the poller key that hold the slot index (the rest hold the
/// generation). `polling` reserves `usize::MAX` for its own notifications;
/// an index never reaches all ones, so no key is `usize::MAX`.
const INDEX_BITS: u32 = usize::BITS / 2;
const INDEX_MASK: usize = (1 << INDEX_BITS) - 1;

impl SourceKey {
    fn pack(self) -> usize {
        ((self.generation as usize & INDEX_MASK) << INDEX_BITS) | self.index as usize
    }

    fn unpack(key: usize) -> SourceKey {
        SourceKey {
            index: (key & INDEX_MASK) as u32,
            generation: (key >> INDEX_BITS) as u32,
        }
    }
}

/// One slot of the table.
struct Slot<W> {
    /// Bumped (wrapping within the key's bits) each time the slot is freed:
    /// keys of earlier registrations no longer match.
    generation: u32,
    /// The registered fd; `None` while the slot is free.
    fd: Option<RawFd>,
    /// The task waiting to read, if any (at most one).
    read: Option<W>,
    /// The task waiting to write, if any (at most one).
    write: Option<W>,
    /// Per direction (read, write): false once an operation found the
    /// kernel's buffer drained (a `WouldBlock`, or a short read or write of
    /// a stream) and no event has arrived since — the next operation then
    /// waits without trying. True otherwise, and always in oneshot mode.
    ready: [bool; 2],
}

/// The slot `key` names, if the key is still current: its generation
/// matches and the slot holds a registration (a freed slot's generation has
/// moved on).
fn slot_of<W>(slots: &mut [Slot<W>], key: SourceKey) -> Option<&mut Slot<W>> {
    slots
        .get_mut(key.index as usize)
        .filter(|s| s.generation == key.generation && s.fd.is_some())
}

impl<W> Slot<W> {
    fn dir(&mut self, dir: Dir) -> &mut Option<W> {
        match dir {
            Dir::Read => &mut self.read,
            Dir::Write => &mut self.write,
        }
    }
}

/// Why a waiter could not be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetWaiter {
    /// Another waiter already waits in that direction.
    Busy,
    /// The key is stale: the source was deregistered.
    Gone,
}

/// The reactor. See the module docs.
pub(crate) struct Reactor<W> {
    /// Shared with the loop's remote handles, whose `notify` wakes a
    /// blocked `wait` from another thread.
    poller: Arc<Poller>,
    /// Whether sources are registered edge-triggered (else oneshot).
    edge: bool,
    /// The table. Invariant: a slot with `fd: Some` is registered in the
    /// poller under `SourceKey { index, generation }`; a free slot holds no
    /// waiter and its index is in `free`.
    slots: RefCell<Vec<Slot<W>>>,
    free: RefCell<Vec<u32>>,
    /// Number of `Some` waiters in the table: while nonzero, a task waits on
    /// I/O, and the loop blocks in the poller instead of reporting deadlock.
    waiters: Cell<usize>,
    /// Reused buffer for `wait`'s events.
    events: RefCell<Events>,
    /// Reused buffer for the Linux fast path's raw events (allocated and
    /// zeroed once; the kernel overwrites the entries it reports).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    raw_events: RefCell<Vec<libc::epoll_event>>,
}

/// Events one fast-path `epoll_wait` can return.
#[cfg(any(target_os = "linux", target_os = "android"))]
const RAW_EVENTS: usize = 256;

impl<W> fmt::Debug for Reactor<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reactor")
            .field(
                "sources",
                &(self.slots.borrow().len() - self.free.borrow().len()),
            )
            .field("waiters", &self.waiters.get())
            .finish()
    }
}

impl<W> Reactor<W> {
    /// A new reactor with its own poller (an epoll fd, plus the eventfd and
    /// timerfd `polling` uses for `notify` and fine timeouts).
    pub(crate) fn new() -> io::Result<Self> {
        let poller = Poller::new()?;
        let edge = poller.supports_edge();
        Ok(Reactor {
            poller: Arc::new(poller),
            edge,
            slots: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
            waiters: Cell::new(0),
            events: RefCell::new(Events::new()),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            raw_events: RefCell::new(vec![libc::epoll_event { events: 0, u64: 0 }; RAW_EVENTS]),
        })
    }

    /// The poller, for remote handles to `notify`.
    pub(crate) fn poller(&self) -> &Arc<Poller> {
        &self.poller
    }

    /// Number of tasks waiting on I/O.
    pub(crate) fn waiters(&self) -> usize {
        self.waiters.get()
    }

    /// Number of registered sources.
    // Not called yet (diagnostics to come); allowed so that clippy's
    // `-D warnings` passes.
    #[allow(dead_code)]
    pub(crate) fn sources(&self) -> usize {
        self.slots.borrow().len() - self.free.borrow().len()
    }

    /// Registers `fd` for both directions and returns its key.
    ///
    /// The caller must [`deregister`](Reactor::deregister) it before the fd
    /// is closed (the I/O layer's `AsyncFd` owns the fd and deregisters in
    /// its `Drop`, before the fd's owner is dropped).
    pub(crate) fn register(&self, fd: BorrowedFd<'_>) -> io::Result<SourceKey> {
        let raw = fd.as_raw_fd();
        let mut slots = self.slots.borrow_mut();
        let index = match self.free.borrow_mut().pop() {
            Some(i) => i,
            None => {
                let i = u32::try_from(slots.len())
                    .ok()
                    .filter(|&i| (i as usize) < INDEX_MASK)
                    .ok_or_else(|| io::Error::other("bucle: too many registered I/O sources"))?;
                slots.push(Slot {
                    generation: 0,
                    fd: None,
                    read: None,
                    write: None,
                    ready: [true; 2],
                });
                i
            }
        };
        let slot = &mut slots[index as usize];
        let key = SourceKey {
            index,
            generation: slot.generation,
        };
        let (interest, mode) = if self.edge {
            (Event::all(key.pack()), PollMode::Edge)
        } else {
            (Event::none(key.pack()), PollMode::Oneshot)
        };
        // SAFETY: `Poller::add` requires the source to be deleted from the
        // poller before it is closed. On the unix pollers this crate builds
        // for (epoll, kqueue) closing a registered fd is not undefined
        // behaviour — the kernel drops the registration, or keeps a
        // duplicate's — and bucle deletes it first anyway: a key is only
        // handed to `AsyncFd`, which owns the fd (`T: AsFd + 'static`) and
        // calls `deregister` before the fd can close, in `Drop`, `close` and
        // `into_inner`. Events of a key deregistered late are dropped by the
        // generation check.
        let added = unsafe { self.poller.add_with_mode(raw, interest, mode) };
        if let Err(e) = added {
            self.free.borrow_mut().push(index);
            return Err(e);
        }
        slot.fd = Some(raw);
        slot.ready = [true; 2];
        Ok(key)
    }

    /// Removes a registration (before its fd closes) and hands back the
    /// waiters it had, for the caller to wake (they will find the source
    /// closed). A stale key does nothing.
    pub(crate) fn deregister(&self, key: SourceKey, fd: BorrowedFd<'_>) -> [Option<W>; 2] {
        let mut slots = self.slots.borrow_mut();
        let Some(slot) = slot_of(&mut slots, key) else {
            return [None, None];
        };
        // An error here means the fd was no longer registered (closed
        // behind our back): nothing is left to remove.
        let _ = self.poller.delete(fd);
        slot.fd = None;
        slot.generation = slot.generation.wrapping_add(1) & (INDEX_MASK as u32);
        let waiting = [slot.read.take(), slot.write.take()];
        let n = waiting.iter().flatten().count();
        self.waiters.set(self.waiters.get() - n);
        self.free.borrow_mut().push(key.index);
        waiting
    }

    /// Makes `w` the waiter for `dir` on `key` until an event for it
    /// arrives (or [`Reactor::clear_waiter`]).
    pub(crate) fn set_waiter(
        &self,
        key: SourceKey,
        fd: BorrowedFd<'_>,
        dir: Dir,
        w: W,
    ) -> Result<(), (SetWaiter, W)> {
        let mut slots = self.slots.borrow_mut();
        let Some(slot) = slot_of(&mut slots, key) else {
            return Err((SetWaiter::Gone, w));
        };
        let waiter = slot.dir(dir);
        if waiter.is_some() {
            return Err((SetWaiter::Busy, w));
        }
        *waiter = Some(w);
        self.waiters.set(self.waiters.get() + 1);
        if !self.edge {
            // Oneshot: arm the directions that now have a waiter.
            let mut ev = Event::none(key.pack());
            ev.readable = slot.read.is_some();
            ev.writable = slot.write.is_some();
            drop(slots);
            if self
                .poller
                .modify_with_mode(fd, ev, PollMode::Oneshot)
                .is_err()
            {
                // Could not arm: hand the waiter back rather than strand it.
                if let Some(w) = self.take_if(key, dir, |_| true) {
                    return Err((SetWaiter::Gone, w));
                }
            }
        }
        Ok(())
    }

    /// Takes the waiter for `dir` on `key` if `is_mine` accepts it: what a
    /// task that stops waiting (cancelled, timed out) does on its way out.
    pub(crate) fn take_if(
        &self,
        key: SourceKey,
        dir: Dir,
        is_mine: impl FnOnce(&W) -> bool,
    ) -> Option<W> {
        let mut slots = self.slots.borrow_mut();
        let slot = slot_of(&mut slots, key)?;
        let waiter = slot.dir(dir);
        if !waiter.as_ref().is_some_and(is_mine) {
            return None;
        }
        self.waiters.set(self.waiters.get() - 1);
        waiter.take()
    }

    /// Whether an operation in direction `dir` should be tried before
    /// waiting (see `Slot::ready`). A stale key says yes: the operation
    /// will find the source closed.
    #[inline]
    pub(crate) fn is_ready(&self, key: SourceKey, dir: Dir) -> bool {
        slot_of(&mut self.slots.borrow_mut(), key).is_none_or(|s| s.ready[dir as usize])
    }

    /// Records that an operation found direction `dir` drained: the next
    /// one waits for an event first. Only meaningful edge-triggered (an
    /// edge follows every arrival after the drain); a no-op otherwise.
    #[inline]
    pub(crate) fn drained(&self, key: SourceKey, dir: Dir) {
        if !self.edge {
            return;
        }
        let mut slots = self.slots.borrow_mut();
        if let Some(s) = slot_of(&mut slots, key) {
            s.ready[dir as usize] = false;
        }
    }

    /// Waits for I/O events for up to `timeout` (`None`: until one comes, or
    /// a `notify`), and appends the waiters of every ready direction to
    /// `woken`, in the order the OS reports them. The caller wakes them once
    /// it no longer borrows anything. Returns the number of events,
    /// notifications included.
    ///
    /// # Errors
    ///
    /// What the poller's `wait` returns (`EINTR` is retried inside).
    pub(crate) fn wait(&self, timeout: Option<Duration>, woken: &mut Vec<W>) -> io::Result<usize> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if self.edge && timeout.is_none_or(|t| t.is_zero()) {
            return self.wait_epoll(timeout.is_some(), woken);
        }
        self.wait_polling(timeout, woken)
    }

    /// The general path: `polling`'s own wait. On epoll it arms a timerfd
    /// for the timeout (nanosecond precision) and clears and re-arms its
    /// notification eventfd: five system calls per wait.
    fn wait_polling(&self, timeout: Option<Duration>, woken: &mut Vec<W>) -> io::Result<usize> {
        let mut events = self.events.borrow_mut();
        events.clear();
        let n = self.poller.wait(&mut events, timeout)?;
        let mut slots = self.slots.borrow_mut();
        for ev in events.iter() {
            if ev.key == usize::MAX {
                // `polling`'s own notification key.
                continue;
            }
            self.deliver(&mut slots, ev.key, ev.readable, ev.writable, woken);
        }
        Ok(n)
    }

    /// The hot path on Linux, for the two timeouts that need no timer — none
    /// (block until an event) and zero (just look) — which are every wait
    /// of a busy server: one `epoll_wait` on the poller's own epoll fd,
    /// instead of `polling`'s five calls. An event of `polling`'s
    /// notification key (another thread's `notify`, or its timerfd) is
    /// handed to `polling`'s wait, which clears and re-arms it.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn wait_epoll(&self, nonblocking: bool, woken: &mut Vec<W>) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        let mut buf = self.raw_events.borrow_mut();
        let epfd = self.poller.as_raw_fd();
        let n = loop {
            // SAFETY: `buf` is a live, initialised slice of `buf.len()`
            // epoll_events that the kernel overwrites (up to the count
            // returned), and `epfd` is the poller's epoll descriptor, open
            // as long as `self.poller` is.
            let n = unsafe {
                libc::epoll_wait(
                    epfd,
                    buf.as_mut_ptr(),
                    buf.len() as libc::c_int,
                    if nonblocking { 0 } else { -1 },
                )
            };
            if n >= 0 {
                break n as usize;
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        };
        let mut notified = false;
        {
            let mut slots = self.slots.borrow_mut();
            for ev in &buf[..n] {
                // Copied out: the struct is packed on some targets.
                let (bits, key) = (ev.events as libc::c_int, ev.u64 as usize);
                if key == usize::MAX {
                    notified = true;
                    continue;
                }
                // As `polling` reads them (hang-ups and errors wake both).
                let readable =
                    bits & (libc::EPOLLIN | libc::EPOLLPRI | libc::EPOLLHUP | libc::EPOLLERR) != 0;
                let writable = bits & (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) != 0;
                self.deliver(&mut slots, key, readable, writable, woken);
            }
        }
        drop(buf);
        if notified {
            return Ok(n + self.wait_polling(Some(Duration::ZERO), woken)?);
        }
        Ok(n)
    }

    /// One event: marks its directions ready and hands their waiters over.
    #[inline]
    fn deliver(
        &self,
        slots: &mut [Slot<W>],
        key: usize,
        readable: bool,
        writable: bool,
        woken: &mut Vec<W>,
    ) {
        let key = SourceKey::unpack(key);
        let Some(slot) = slot_of(slots, key) else {
            // Deregistered since the OS queued it: not for anyone now.
            return;
        };
        if readable {
            slot.ready[Dir::Read as usize] = true;
            if let Some(w) = slot.read.take() {
                woken.push(w);
                self.waiters.set(self.waiters.get() - 1);
            }
        }
        if writable {
            slot.ready[Dir::Write as usize] = true;
            if let Some(w) = slot.write.take() {
                woken.push(w);
                self.waiters.set(self.waiters.get() - 1);
            }
        }
        if !self.edge && (slot.read.is_some() || slot.write.is_some()) {
            // Oneshot disarmed the source; re-arm for the waiter left.
            let mut ev = Event::none(key.pack());
            ev.readable = slot.read.is_some();
            ev.writable = slot.write.is_some();
            if let Some(fd) = slot.fd {
                // On failure the fd is gone; its owner will find out.
                let _ = rearm(&self.poller, fd, ev);
            }
        }
    }
}

/// Re-arms a oneshot registration (pollers without edge mode only).
fn rearm(poller: &Poller, fd: RawFd, ev: Event) -> io::Result<()> {
    // SAFETY: `fd` is registered in this reactor (its slot says so), and a
    // registered fd is open: it is deregistered before its owner closes it
    // (see `Reactor::register`). The borrow ends with this call.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    poller.modify_with_mode(fd, ev, PollMode::Oneshot)
}
