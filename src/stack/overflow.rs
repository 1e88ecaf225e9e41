//! A coroutine that runs off its stack: a message naming the limit and the
//! fix, instead of a bare `SIGSEGV`.
//!
//! Running off the low end of a coroutine stack touches its guard page, and
//! the kernel raises `SIGSEGV`. Rust's runtime recognises the guard pages of
//! its own threads and prints "thread 'main' has overflowed its stack"; it
//! knows nothing of ours, so without help the process dies of the bare
//! signal, which reads like memory corruption. So the first stack bucle maps
//! installs a handler for `SIGSEGV` and `SIGBUS` that looks the faulting
//! address up among the guard pages of the coroutine stacks. On a hit it
//! prints which stack size was exceeded and how to raise it, then aborts, as
//! Rust does for its threads (an overflow cannot be recovered from: the
//! frame that faulted has nowhere to go).
//!
//! Everything else is left as it would have been:
//! - Any other fault, or a signal sent by `kill`, goes to the action that
//!   was installed before (Rust's own handler, usually), honouring its
//!   `SA_RESETHAND`, `SA_NODEFER`, `SA_RESTART` and mask; a default action
//!   ends the process as before.
//! - A signal that was ignored stays ignored: no handler goes in over it.
//! - A fault on another thread while the handler goes in still reaches the
//!   previous action: that action is recorded before the handler is
//!   installed, never after.
//! - A handler a program installs after bucle's replaces it (and then no
//!   overflow is reported). A library that embeds bucle and is unloaded
//!   with `dlclose` must not be, once a stack has been mapped: the handler
//!   would point at unmapped code.
//!
//! Nothing here runs on the switch path: the guard pages are recorded where
//! stacks are mapped and unmapped, which already costs system calls.
//!
//! Linux only; elsewhere an overflow still ends the process with the bare
//! signal.

use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::HashMap;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};

/// The guard pages of every coroutine stack mapped in the process and not
/// yet unmapped: address of the guard page → usable size of its stack.
///
/// Global rather than per thread: the handler must not touch thread-locals
/// (in a library loaded with `dlopen`, the first access on a thread may
/// allocate or take the loader's lock, and the fault may have struck inside
/// the allocator), and guard pages are unique in the process anyway.
static GUARDS: GuardTable = GuardTable {
    locked: AtomicBool::new(false),
    map: UnsafeCell::new(None),
};

/// A map behind a spin lock, not a `Mutex`: the handler may take it, and
/// must neither block nor touch thread-locals. Whoever cannot get the lock
/// within its budget of spins gives up (the handler: the holder may be the
/// very code it interrupted).
struct GuardTable {
    /// Held while `map` is read or changed.
    locked: AtomicBool,
    /// Invariant: accessed only by the holder of `locked` (see `with`).
    map: UnsafeCell<Option<HashMap<usize, usize>>>,
}

// SAFETY: `map` is only reached through `GuardTable::with`, which holds the
// lock for the whole access, so no two threads ever access it at once.
unsafe impl Sync for GuardTable {}

/// Spins the handler may spend waiting for the table (milliseconds at most).
const HANDLER_SPINS: usize = 1 << 20;

impl GuardTable {
    /// Runs `f` on the map with the lock held; `None` if the lock was not
    /// had within `spins` attempts.
    fn with<R>(
        &self,
        spins: usize,
        f: impl FnOnce(&mut Option<HashMap<usize, usize>>) -> R,
    ) -> Option<R> {
        let mut tries = 0;
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            tries += 1;
            if tries >= spins {
                return None;
            }
            std::hint::spin_loop();
        }
        /// Releases the lock however `f` ends.
        struct Unlock<'a>(&'a AtomicBool);
        impl Drop for Unlock<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _unlock = Unlock(&self.locked);
        // SAFETY: this thread holds `locked` until `_unlock` drops, after
        // `f` returns: the only access to `map` meanwhile is this one.
        Some(f(unsafe { &mut *self.map.get() }))
    }
}

thread_local! {
    /// Whether this thread has been checked for an alternate signal stack.
    /// Read and written only outside the handler.
    static CHECKED: Cell<bool> = const { Cell::new(false) };
    /// An alternate signal stack this module had to give the thread (Rust
    /// gives one to each thread it starts; foreign threads may have none,
    /// and the handler cannot run on the stack that just overflowed).
    static ALT_STACK: RefCell<Option<AltStack>> = const { RefCell::new(None) };
}

/// The actions that were installed before ours, for `SIGSEGV` and
/// `SIGBUS`: faults that are not a coroutine overflow go to them. Unset for
/// a signal that was ignored (ours is not installed over `SIG_IGN`).
static PREVIOUS: [Previous; 2] = [Previous::new(), Previous::new()];

/// The action ours took over from, for one signal.
///
/// Filled in two steps so that the handler never runs without it: `read`
/// is stored *before* ours is installed, `replaced` after. A handler that
/// found neither would take the fault for one with the default action and
/// reset it, killing a process whose own handler (a JIT's, a GC's) would
/// have recovered: that was the old order, install first and record after.
struct Previous {
    /// The action read just before ours was installed.
    read: OnceLock<libc::sigaction>,
    /// The action the installing `sigaction` call actually replaced: the
    /// same as `read`, unless another thread changed the action between
    /// the two calls.
    replaced: OnceLock<libc::sigaction>,
}

impl Previous {
    const fn new() -> Self {
        Previous {
            read: OnceLock::new(),
            replaced: OnceLock::new(),
        }
    }

    /// The action to forward to. Async-signal-safe: `OnceLock::get` is
    /// one atomic load.
    fn get(&self) -> Option<&libc::sigaction> {
        self.replaced.get().or_else(|| self.read.get())
    }
}
static INSTALL: Once = Once::new();
const SIGNALS: [libc::c_int; 2] = [libc::SIGSEGV, libc::SIGBUS];

/// The page size, set by `install` before the handler can run (so the
/// handler reads an atomic rather than initialising anything).
static PAGE: AtomicUsize = AtomicUsize::new(4096);

/// Records the stack mapped at `[guard, base)`, whose lowest page is its
/// guard, and makes sure a fault there will be reported.
pub(super) fn register(guard: usize, base: usize) {
    INSTALL.call_once(install);
    if !CHECKED.replace(true) {
        ensure_alt_stack();
    }
    let usable = base - guard - PAGE.load(Ordering::Relaxed);
    GUARDS.with(usize::MAX, |m| {
        m.get_or_insert_with(HashMap::new).insert(guard, usable)
    });
}

/// Forgets the guard page at `guard`: its stack is being unmapped.
pub(super) fn unregister(guard: usize) {
    GUARDS.with(usize::MAX, |m| m.as_mut().map(|m| m.remove(&guard)));
}

/// The usable size of the stack whose guard page holds `addr`, if it is a
/// coroutine stack's. Async-signal-safe: atomics and reads only, no
/// thread-local, and it gives up rather than wait long.
fn overflowed_stack(addr: usize) -> Option<usize> {
    let guard = addr & !(PAGE.load(Ordering::Relaxed) - 1);
    GUARDS
        .with(HANDLER_SPINS, |m| m.as_ref()?.get(&guard).copied())
        .flatten()
}

fn install() {
    // SAFETY: `sysconf` has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    PAGE.store(usize::try_from(page).unwrap_or(4096), Ordering::Relaxed);
    for (sig, previous) in SIGNALS.into_iter().zip(&PREVIOUS) {
        let mut old = empty_action();
        // SAFETY: a null new action only reads the current one into `old`.
        if unsafe { libc::sigaction(sig, ptr::null(), &mut old) } != 0 {
            continue;
        }
        if old.sa_sigaction == libc::SIG_IGN {
            // Ignored on purpose (and inherited so by children): leave it.
            continue;
        }
        // Recorded before ours goes in, so that from the instant the kernel
        // can call `on_fault` (once the `sigaction` below has taken the
        // signal-table lock that delivery takes too, which orders this
        // store before any such call), it has an action to forward to.
        // Should a fault arrive between the install and the `replaced`
        // store below, the handler forwards it to this one: the action in
        // force until a moment before. It could only be the wrong one if
        // another thread changed the action between these two `sigaction`
        // calls; that fault then goes to the action the other thread had
        // just replaced, and every later one to the new one.
        let _ = previous.read.set(old);
        let mut action = empty_action();
        action.sa_sigaction = on_fault as *const () as usize;
        // The previous handler is called from ours, not by the kernel, so
        // ours carries what the kernel would have applied around it: its
        // mask, its `SA_NODEFER` (a handler that `longjmp`s out relies on
        // the signal not staying blocked) and its `SA_RESTART` (system
        // calls the signal interrupts restart instead of failing with
        // `EINTR`). Of its other flags, `SA_SIGINFO` and `SA_ONSTACK` are
        // ours anyway, `SA_RESETHAND` is honoured by `call_previous` (the
        // kernel must not reset *our* handler), and the rest mean nothing
        // for these two signals (`SA_NOCLDSTOP`, `SA_NOCLDWAIT`) or belong
        // to the C library (`SA_RESTORER`, which it sets itself).
        action.sa_mask = old.sa_mask;
        action.sa_flags = libc::SA_SIGINFO
            | libc::SA_ONSTACK
            | (old.sa_flags & (libc::SA_NODEFER | libc::SA_RESTART));
        let mut replaced = empty_action();
        // SAFETY: installs a handler with the three-argument signature
        // `SA_SIGINFO` asks for, and reads back the action it replaced (in
        // one call, so none installed since the read above is lost).
        if unsafe { libc::sigaction(sig, &action, &mut replaced) } == 0 {
            let _ = previous.replaced.set(replaced);
        }
    }
}

/// The `SIGSEGV`/`SIGBUS` handler. It runs on the thread's alternate signal
/// stack (`SA_ONSTACK`), as the faulting stack has no room left.
extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid `siginfo_t` to an `SA_SIGINFO`
    // handler, and for these two signals `si_addr` is the faulting address
    // (of a real fault; for a signal sent by `kill` it is just a number).
    let (addr, code) = unsafe { ((*info).si_addr() as usize, (*info).si_code) };
    // A signal sent with `kill`, `raise` or `sigqueue` (`si_code <= 0`) is
    // not a fault, whatever its address.
    if code > 0 {
        if let Some(usable) = overflowed_stack(addr) {
            report_and_abort(usable);
        }
    }
    match PREVIOUS[usize::from(sig == libc::SIGBUS)].get() {
        Some(previous)
            if previous.sa_sigaction != libc::SIG_DFL && previous.sa_sigaction != libc::SIG_IGN =>
        {
            call_previous(previous, sig, info, ctx);
        }
        // The default action, or an ignored signal (another thread set
        // `SIG_IGN` while ours went in). `None` cannot happen while the
        // handler `install` put in is the one installed: it records the
        // previous action before installing (see `Previous`).
        previous => {
            let ignored = previous.is_some_and(|p| p.sa_sigaction == libc::SIG_IGN);
            if ignored && code <= 0 {
                return; // A sent signal, ignored as before.
            }
            // Restore the default action. A fault then happens again as the
            // faulting instruction reruns; a sent signal is sent again (it
            // stays pending until this handler returns). Either way the
            // kernel ends the process as it would have without us.
            set_default(sig);
            if code <= 0 {
                // SAFETY: `raise` is async-signal-safe.
                unsafe { libc::raise(sig) };
            }
        }
    }
}

/// Calls the handler function of `previous` as the kernel would have.
fn call_previous(
    previous: &libc::sigaction,
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) {
    if previous.sa_flags & libc::SA_RESETHAND != 0 {
        // A one-shot handler: the kernel would have reset the action
        // before calling it.
        set_default(sig);
    }
    let handler = previous.sa_sigaction;
    if previous.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with `SA_SIGINFO`, so
        // its address is a function of this signature; it gets the very
        // arguments the kernel gave us.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(handler) };
        f(sig, info, ctx);
    } else {
        // SAFETY: installed without `SA_SIGINFO`: a one-argument handler.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
        f(sig);
    }
}

/// A `sigaction` with no handler (`SIG_DFL`), an empty mask and no flags.
fn empty_action() -> libc::sigaction {
    // SAFETY: all zeroes is a valid value of the C struct, and that value.
    unsafe { std::mem::zeroed() }
}

/// Makes `sig`'s action the default one.
fn set_default(sig: libc::c_int) {
    // SAFETY: installs the default action; `sigaction` is
    // async-signal-safe.
    unsafe { libc::sigaction(sig, &empty_action(), ptr::null_mut()) };
}

/// Prints the overflow message with `write(2)` (no allocation, no lock:
/// this runs in a signal handler) and aborts.
fn report_and_abort(usable: usize) -> ! {
    let mut buf = [0u8; 512];
    let mut len = 0;
    let mut put = |bytes: &[u8]| {
        let n = bytes.len().min(buf.len() - len);
        buf[len..len + n].copy_from_slice(&bytes[..n]);
        len += n;
    };
    put(b"\nbucle: a task or generator has overflowed its stack of ");
    let (amount, unit): (usize, &[u8]) = if usable % 1024 == 0 {
        (usable / 1024, b" KiB")
    } else {
        (usable, b" bytes")
    };
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = amount;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    put(&digits[i..]);
    put(unit);
    put(
        b" (it ran into the guard page below it).\nGive it a bigger stack: \
          TaskBuilder::stack_size for one task, Builder::stack_size for every task \
          of a loop, Generator::with_stack_size for a generator.\n\
          fatal runtime error: stack overflow, aborting\n",
    );
    // SAFETY: writes `len` initialised bytes of `buf` to stderr; `write`
    // and `abort` are async-signal-safe.
    unsafe {
        libc::write(2, buf.as_ptr().cast(), len);
        libc::abort()
    }
}

/// An alternate signal stack mapped for a thread that had none; unset and
/// unmapped when the thread exits.
struct AltStack {
    /// The whole mapping: a guard page, then the stack.
    map: *mut libc::c_void,
    len: usize,
}

/// Usable size of an alternate signal stack: the handler needs well under
/// a page; this leaves room for the previous handler too.
const ALT_STACK_SIZE: usize = 64 * 1024;

/// Gives this thread an alternate signal stack, with a guard page below
/// it, if it has none; leaves it with none if the guard cannot be made.
fn ensure_alt_stack() {
    // SAFETY: an all-zero `stack_t` is a valid value of the C struct.
    let mut current: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: a null new stack only reads the current one into `current`.
    if unsafe { libc::sigaltstack(ptr::null(), &mut current) } != 0 {
        return;
    }
    if current.ss_flags & libc::SS_DISABLE == 0 {
        return; // It has one (Rust gives one to each thread it starts).
    }
    let page = PAGE.load(Ordering::Relaxed);
    let len = ALT_STACK_SIZE + page;
    // SAFETY: a fresh private anonymous mapping; no existing memory is
    // affected.
    let map = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if map == libc::MAP_FAILED {
        return;
    }
    // Dropping `alt` unmaps the mapping (unsetting the signal stack first
    // if it is this one), on every path below.
    let alt = AltStack { map, len };
    // SAFETY: changes the protection of the first page of the mapping just
    // made, which nothing else refers to yet.
    if unsafe { libc::mprotect(map, page, libc::PROT_NONE) } != 0 {
        // No guard, no signal stack: a handler running off the end of an
        // unguarded one (ours is small, but it calls the previous handler
        // on it) would silently write over whatever mapping lies below.
        // The usual cause is the process's map count at
        // `vm.max_map_count` (the guard splits the mapping in two). The
        // thread then does without, as it did before bucle: an overflow of
        // a coroutine stack on it ends the process with a bare `SIGSEGV`
        // instead of the report, and nothing else changes.
        return;
    }
    // SAFETY: the first page of the mapping just made is now its guard;
    // the rest, inside the same mapping, is handed to the kernel as this
    // thread's signal stack, and stays mapped until `AltStack::drop` has
    // unset it.
    let installed = unsafe {
        let stack = libc::stack_t {
            ss_sp: map.cast::<u8>().add(page).cast(),
            ss_flags: 0,
            ss_size: ALT_STACK_SIZE,
        };
        libc::sigaltstack(&stack, ptr::null_mut()) == 0
    };
    if installed {
        let _ = ALT_STACK.try_with(|a| *a.borrow_mut() = Some(alt));
    }
}

impl Drop for AltStack {
    fn drop(&mut self) {
        // SAFETY: an all-zero `stack_t` is a valid value; reading the
        // current signal stack has no other effect.
        let mut current: libc::stack_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::sigaltstack(ptr::null(), &mut current) };
        let ours = current.ss_flags & libc::SS_DISABLE == 0
            && current.ss_sp as usize > self.map as usize
            && (current.ss_sp as usize) < self.map as usize + self.len;
        // SAFETY: unsets the signal stack if it is still this one, before
        // unmapping it (so no signal can land on unmapped memory), then
        // unmaps exactly the mapping `ensure_alt_stack` made. If another
        // stack replaced it, the kernel no longer refers to this mapping.
        unsafe {
            if ours {
                let off = libc::stack_t {
                    ss_sp: ptr::null_mut(),
                    ss_flags: libc::SS_DISABLE,
                    ss_size: ALT_STACK_SIZE,
                };
                libc::sigaltstack(&off, ptr::null_mut());
            }
            libc::munmap(self.map, self.len);
        }
    }
}
