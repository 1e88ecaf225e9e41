//! A coroutine that runs off its stack: a message naming the limit and the
//! fix, instead of a bare `SIGSEGV`.
//!
//! Running off the low end of a coroutine stack touches its guard page, and
//! the kernel raises `SIGSEGV`. Rust's runtime recognises the guard pages of
//! its own threads and prints "thread 'main' has overflowed its stack"; it
//! knows nothing of ours, so without help the process dies of the bare
//! signal, which reads like memory corruption. So the first stack bucle maps
//! installs a handler for `SIGSEGV` and `SIGBUS` that looks the faulting
//! address up among this thread's guard pages. On a hit it prints which
//! stack size was exceeded and how to raise it, then aborts, as Rust does for
//! its threads (an overflow cannot be recovered from: the frame that faulted
//! has nowhere to go). Any other fault is handed to the handler that was
//! installed before, usually Rust's, which does what it would have done.
//!
//! Nothing here runs on the switch path: the guard pages are recorded where
//! stacks are mapped and unmapped, which already costs system calls.
//!
//! Linux only; elsewhere an overflow still ends the process with the bare
//! signal.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ptr;
use std::sync::{Once, OnceLock};

thread_local! {
    /// The guard pages of the stacks mapped on this thread and alive:
    /// address of the guard page → usable size of its stack. A stack never
    /// leaves its thread (a `Generator` is not `Send` and the pool is
    /// per-thread), and the fault of an overflow is raised on the thread
    /// that runs the coroutine, so this thread's map is the one to search.
    static GUARDS: RefCell<HashMap<usize, usize>> = RefCell::new(HashMap::new());
    /// Whether this thread has recorded a guard page (so `GUARDS` exists).
    /// A slot with no destructor: the handler reads it first, and touches
    /// `GUARDS` (whose first use would register a destructor, which may
    /// allocate) only when it is set.
    static ARMED: Cell<bool> = const { Cell::new(false) };
    /// An alternate signal stack this module had to give the thread (Rust
    /// gives one to each thread it starts; foreign threads may have none,
    /// and the handler cannot run on the stack that just overflowed).
    static ALT_STACK: RefCell<Option<AltStack>> = const { RefCell::new(None) };
}

/// The handlers that were installed before ours, for `SIGSEGV` and
/// `SIGBUS`: faults that are not a coroutine overflow go to them.
static PREVIOUS: [OnceLock<libc::sigaction>; 2] = [OnceLock::new(), OnceLock::new()];
static INSTALL: Once = Once::new();
const SIGNALS: [libc::c_int; 2] = [libc::SIGSEGV, libc::SIGBUS];

/// Records the guard page at `guard` of a stack with `usable` bytes, mapped
/// on this thread, and makes sure a fault there will be reported.
pub(super) fn register(guard: usize, usable: usize) {
    INSTALL.call_once(install);
    if !ARMED.get() {
        ensure_alt_stack();
    }
    let _ = GUARDS.try_with(|g| g.borrow_mut().insert(guard, usable));
    ARMED.set(true);
}

/// Forgets the guard page at `guard`: its stack is being unmapped.
pub(super) fn unregister(guard: usize) {
    // `try_with`: at thread exit the map may be gone already.
    let _ = GUARDS.try_with(|g| g.borrow_mut().remove(&guard));
}

/// The usable size of this thread's stack whose guard page holds `addr`.
/// Async-signal-safe: reads only, and gives up rather than wait or panic.
fn overflowed_stack(addr: usize) -> Option<usize> {
    if !ARMED.get() {
        return None;
    }
    let page = page_size();
    let guard = addr & !(page - 1);
    GUARDS
        .try_with(|g| g.try_borrow().ok()?.get(&guard).copied())
        .ok()
        .flatten()
}

fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    // Read once, outside the handler (`install` reads it first).
    *PAGE.get_or_init(|| {
        // SAFETY: `sysconf` has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(page).unwrap_or(4096)
    })
}

fn install() {
    let _ = page_size();
    for (sig, previous) in SIGNALS.into_iter().zip(&PREVIOUS) {
        // SAFETY: an all-zero `sigaction` is a valid value of the C struct
        // (no handler, empty mask, no flags).
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: a null new action only reads the current one into `old`.
        if unsafe { libc::sigaction(sig, ptr::null(), &mut old) } != 0 {
            continue;
        }
        // Kept before ours goes in, so the handler always finds it.
        let _ = previous.set(old);
        // SAFETY: as above.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_fault as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: `sa_mask` is a valid `sigset_t` to initialise; installing
        // a handler with the three-argument signature `SA_SIGINFO` asks for.
        unsafe {
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, ptr::null_mut());
        }
    }
}

/// The `SIGSEGV`/`SIGBUS` handler. It runs on the thread's alternate signal
/// stack (`SA_ONSTACK`), as the faulting stack has no room left.
extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid `siginfo_t` to an `SA_SIGINFO`
    // handler, and for these two signals `si_addr` is the faulting address.
    let addr = unsafe { (*info).si_addr() } as usize;
    if let Some(usable) = overflowed_stack(addr) {
        report_and_abort(usable);
    }
    let index = usize::from(sig == libc::SIGBUS);
    let previous = PREVIOUS[index].get();
    let handler = previous.map_or(libc::SIG_DFL, |p| p.sa_sigaction);
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // Restore the default and return: the faulting instruction runs
        // again, faults again, and the kernel ends the process as it would
        // have without us.
        // SAFETY: as in `install`.
        let mut dfl: libc::sigaction = unsafe { std::mem::zeroed() };
        dfl.sa_sigaction = libc::SIG_DFL;
        // SAFETY: installs the default action; `sigaction` is
        // async-signal-safe.
        unsafe { libc::sigaction(sig, &dfl, ptr::null_mut()) };
    } else if previous.is_some_and(|p| p.sa_flags & libc::SA_SIGINFO != 0) {
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

/// Gives this thread an alternate signal stack if it has none.
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
    let page = page_size();
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
    let alt = AltStack { map, len };
    // SAFETY: the first page of the mapping just made becomes its guard;
    // the rest, inside the same mapping, is handed to the kernel as this
    // thread's signal stack, and stays mapped until `AltStack::drop` has
    // unset it.
    let installed = unsafe {
        libc::mprotect(map, page, libc::PROT_NONE);
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
        // SAFETY: unsets the signal stack before unmapping it (so no signal
        // can land on unmapped memory), then unmaps exactly the mapping
        // `ensure_alt_stack` made.
        unsafe {
            let off = libc::stack_t {
                ss_sp: ptr::null_mut(),
                ss_flags: libc::SS_DISABLE,
                ss_size: ALT_STACK_SIZE,
            };
            libc::sigaltstack(&off, ptr::null_mut());
            libc::munmap(self.map, self.len);
        }
    }
}
