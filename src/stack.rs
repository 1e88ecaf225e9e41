//! Coroutine stacks: guarded `mmap` regions, recycled through a per-thread pool.
//!
//! Every generator and every task runs on a stack of its own. A stack is one
//! anonymous mapping: a `PROT_NONE` guard page at the low end (stacks grow
//! down, so running off the end faults instead of scribbling on a neighbour),
//! then the usable region. Mapping a stack costs two system calls (`mmap` and
//! `mprotect`), around 10–15 µs once the page faults of first use are counted,
//! which would dwarf a ~50 ns generator. So a finished coroutine's stack goes
//! back to a per-thread pool, and the next coroutine of the same size takes it
//! from there with no system call at all.
//!
//! # Limits
//!
//! Each guarded stack is two kernel memory mappings (the guard page and the
//! usable part have different protections, so they cannot merge). Linux caps
//! a process at `vm.max_map_count` mappings, 65530 by default, so a process
//! can hold roughly 32 000 stacks at once whatever their size. Hitting the
//! limit exactly would be fatal in a subtle way: the allocator needs
//! mappings too, so the next `Vec` to grow would abort the process. So bucle
//! keeps a budget: it stops mapping stacks [`MAP_RESERVE`] mappings short of
//! the limit (counted from the mappings the process had before its first
//! stack), and [`allocate`] reports the refusal as an [`io::Error`] that
//! names the limit and the fix, while the rest of the program carries on.
//!
//! # Overflow
//!
//! On Linux each stack's guard page is also recorded for the overflow
//! handler (the `overflow` submodule): a coroutine that runs into it ends
//! the process with a message naming its stack size and how to raise it,
//! instead of a bare `SIGSEGV`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::mem::ManuallyDrop;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use corosensei::stack::{DefaultStack, Stack, StackPointer};

#[cfg(target_os = "linux")]
mod overflow;

/// The usable size of a stack when none is asked for: 256 KiB.
///
/// Only the pages a coroutine touches become resident, so a generous size
/// costs address space, not memory: a suspended task that used 8 KiB of its
/// stack holds about 8 KiB of RSS. 256 KiB leaves room for unoptimised debug
/// builds, formatting machinery and panics with backtraces.
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

/// The smallest usable stack size accepted; smaller requests are rounded up.
pub const MIN_STACK_SIZE: usize = 16 * 1024;

/// The largest usable stack size accepted: 1 TiB on 64-bit targets (on
/// 32-bit ones, the largest whole number of pages up to `isize::MAX`).
///
/// Larger requests are refused: the `try_` constructors and spawns return
/// an [`io::Error`] of kind [`InvalidInput`](io::ErrorKind::InvalidInput)
/// that names the size and this limit, the others panic with that message.
/// 1 TiB is four million times the default and a thousand times the
/// largest stack Go lets a goroutine grow (1 GB), so no real program is
/// refused; yet it lies far inside the address space (128 TiB of user
/// space on x86-64 Linux), so the rounding to pages and the guard page
/// cannot overflow, and a nonsense size (`usize::MAX` from a bad
/// computation, a negative number cast to `usize`) is reported as what it
/// is. A size under the limit can still be refused by the OS (most
/// machines will not commit a terabyte); that error says so.
pub const MAX_STACK_SIZE: usize = if usize::BITS >= 64 {
    (1u64 << 40) as usize
} else {
    isize::MAX as usize & !(4096 - 1)
};

/// How many free stacks of each size a thread keeps for reuse.
///
/// Beyond this, a returning stack is unmapped. 1024 × 256 KiB is 256 MiB of
/// address space, of which only the pages previously touched stay resident.
pub const POOL_LIMIT_PER_SIZE: usize = 1024;

/// How many memory mappings bucle leaves free below `vm.max_map_count` for
/// the allocator, thread stacks and libraries, when it refuses a new stack.
pub const MAP_RESERVE: usize = 1024;

/// Coroutine stacks mapped in this process right now (in use or pooled, on
/// every thread). Only `Mapped` changes it.
static MAPPED: AtomicUsize = AtomicUsize::new(0);

/// The process's stack budget, read once, on the first mapping.
static BUDGET: OnceLock<Option<MapBudget>> = OnceLock::new();

struct MapBudget {
    /// `vm.max_map_count`.
    limit: usize,
    /// Mappings the process held before its first stack.
    baseline: usize,
    /// Stacks that fit: `(limit - baseline - MAP_RESERVE) / 2`.
    stacks: usize,
}

/// The budget, or `None` where the limit cannot be read (not Linux).
fn budget() -> Option<&'static MapBudget> {
    BUDGET
        .get_or_init(|| {
            let limit = std::fs::read_to_string("/proc/sys/vm/max_map_count")
                .ok()?
                .trim()
                .parse::<usize>()
                .ok()?;
            let baseline = count_mappings()?;
            let stacks = limit.saturating_sub(baseline + MAP_RESERVE) / 2;
            Some(MapBudget {
                limit,
                baseline,
                stacks,
            })
        })
        .as_ref()
}

/// Counts this process's memory mappings (lines of `/proc/self/maps`)
/// through a fixed buffer: it is called when memory may be short, and the
/// file is megabytes long when tens of thousands of stacks are mapped.
fn count_mappings() -> Option<usize> {
    use std::io::Read;
    let mut file = std::fs::File::open("/proc/self/maps").ok()?;
    let mut buf = [0u8; 4096];
    let mut lines = 0;
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Some(lines),
            Ok(n) => lines += buf[..n].iter().filter(|&&b| b == b'\n').count(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// A mapped stack, counted in `MAPPED` for as long as it exists, and (on
/// Linux) its guard page known to the overflow handler.
struct Mapped(DefaultStack);

impl Mapped {
    fn new(stack: DefaultStack) -> Mapped {
        MAPPED.fetch_add(1, Ordering::Relaxed);
        // `limit` is the low end of the mapping: the guard page.
        #[cfg(target_os = "linux")]
        overflow::register(stack.limit().get(), stack.base().get());
        Mapped(stack)
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        overflow::unregister(self.0.limit().get());
        MAPPED.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A snapshot of this thread's stack pool, from [`stack_pool_stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Stacks currently lent to live generators and tasks on this thread.
    pub in_use: usize,
    /// Free stacks waiting in the pool for the next coroutine.
    pub pooled: usize,
    /// Stacks mapped from the OS on this thread since it started (each one
    /// is an `mmap` + `mprotect`); a steady state shows this not growing.
    pub mapped: u64,
}

/// Returns the state of the calling thread's stack pool.
///
/// Useful to check that coroutines give their stacks back: after every
/// generator and task has finished or been dropped, `in_use` returns to
/// where it started.
pub fn stack_pool_stats() -> PoolStats {
    POOL.with(|p| {
        let pool = p.free.borrow();
        PoolStats {
            in_use: p.in_use.get(),
            pooled: pool.iter().map(|(_, v)| v.len()).sum(),
            mapped: p.mapped.get(),
        }
    })
}

/// The per-thread pool.
struct Pool {
    /// Free stacks, bucketed by usable size (bytes, page-rounded). Usually a
    /// single bucket; a `Vec` of pairs beats a map for one to three sizes.
    /// Invariant: every stack in a bucket has exactly that usable size.
    free: RefCell<Vec<(usize, Vec<Mapped>)>>,
    /// Stacks handed out by [`allocate`] and not yet dropped on this thread.
    in_use: Cell<usize>,
    /// Stacks ever mapped by this thread.
    mapped: Cell<u64>,
}

thread_local! {
    static POOL: Pool = const {
        Pool { free: RefCell::new(Vec::new()), in_use: Cell::new(0), mapped: Cell::new(0) }
    };
}

/// A stack owned by one coroutine, returned to this thread's pool on drop.
///
/// Invariant: `stack` is initialised from creation until `drop` takes it
/// (exactly once), and its usable size is `size`. `ManuallyDrop` rather
/// than `Option`: the stack is moved with every generator, and the smaller,
/// check-free representation measurably speeds up create and drop.
pub(crate) struct PooledStack {
    stack: ManuallyDrop<Mapped>,
    size: usize,
}

impl fmt::Debug for PooledStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledStack")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

fn page_size() -> usize {
    // Every platform corosensei's `DefaultStack` supports on unix uses
    // 4 KiB or larger pages; rounding to 4 KiB only decides the bucket key.
    4096
}

/// Rounds a requested stack size to the size actually used and pooled: at
/// least [`MIN_STACK_SIZE`], a whole number of pages.
///
/// # Errors
///
/// [`InvalidInput`](io::ErrorKind::InvalidInput) above [`MAX_STACK_SIZE`],
/// naming the size and the limit.
pub(crate) fn round_size(size: usize) -> io::Result<usize> {
    if size > MAX_STACK_SIZE {
        return Err(too_big(size));
    }
    // `MAX_STACK_SIZE` is a whole number of pages, so this can neither
    // overflow nor exceed it; checked all the same.
    size.max(MIN_STACK_SIZE)
        .checked_next_multiple_of(page_size())
        .ok_or_else(|| too_big(size))
}

/// The error for a size over [`MAX_STACK_SIZE`].
#[cold]
fn too_big(size: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "a coroutine stack of {size} bytes was asked for, more than the largest accepted, \
             MAX_STACK_SIZE = {MAX_STACK_SIZE} bytes ({}). Stack sizes are in bytes: ask for a \
             smaller one (the default, DEFAULT_STACK_SIZE, is {})",
            human(MAX_STACK_SIZE),
            human(DEFAULT_STACK_SIZE)
        ),
    )
}

/// `bytes` in the largest binary unit that divides it: "1 TiB", "256 KiB".
fn human(bytes: usize) -> String {
    let b = bytes as u64;
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if b >= 1 << shift && b % (1 << shift) == 0 {
            return format!("{} {unit}", b >> shift);
        }
    }
    format!("{bytes} bytes")
}

/// Takes a stack of (at least) `size` usable bytes from the pool, or maps a
/// new one.
///
/// # Errors
///
/// [`InvalidInput`](io::ErrorKind::InvalidInput) for a size over
/// [`MAX_STACK_SIZE`]. When the OS refuses the mapping, the error message
/// names the likely cause (`vm.max_map_count`, usually, or the size) and
/// the fix.
pub(crate) fn allocate(size: usize) -> io::Result<PooledStack> {
    let size = round_size(size)?;
    let reused = POOL.with(|p| {
        let mut free = p.free.borrow_mut();
        let stack = free
            .iter_mut()
            .find(|(s, _)| *s == size)
            .and_then(|(_, v)| v.pop());
        if stack.is_some() {
            p.in_use.set(p.in_use.get() + 1);
        }
        stack
    });
    let stack = match reused {
        Some(stack) => stack,
        None => map_new(size)?,
    };
    Ok(PooledStack {
        stack: ManuallyDrop::new(stack),
        size,
    })
}

#[cold]
fn map_new(size: usize) -> io::Result<Mapped> {
    if let Some(b) = budget() {
        if MAPPED.load(Ordering::Relaxed) >= b.stacks {
            // Free stacks of other sizes pooled on this thread count too.
            release_pooled();
        }
        if MAPPED.load(Ordering::Relaxed) >= b.stacks {
            return Err(budget_exhausted(size, b));
        }
    }
    match DefaultStack::new(size) {
        Ok(stack) => {
            let mapped = Mapped::new(stack);
            POOL.with(|p| {
                p.in_use.set(p.in_use.get() + 1);
                p.mapped.set(p.mapped.get() + 1);
            });
            Ok(mapped)
        }
        Err(e) => Err(explain_map_failure(size, e)),
    }
}

/// Unmaps every free stack pooled on this thread.
fn release_pooled() {
    let freed = POOL.with(|p| std::mem::take(&mut *p.free.borrow_mut()));
    drop(freed);
}

const FIX: &str = "Each guarded stack costs two mappings, whatever its size, so smaller stacks do \
                   not help: raise the limit (`sysctl -w vm.max_map_count=262144`) or keep fewer \
                   coroutines alive at once";

/// The error for a stack refused by the budget.
fn budget_exhausted(size: usize, b: &MapBudget) -> io::Error {
    io::Error::new(
        io::ErrorKind::OutOfMemory,
        format!(
            "could not map a {} KiB coroutine stack: {} stacks are mapped, the most that fit in \
             vm.max_map_count = {} while keeping {MAP_RESERVE} mappings free for the rest of the \
             process (which held {} mappings before its first stack). {FIX}",
            size / 1024,
            MAPPED.load(Ordering::Relaxed),
            b.limit,
            b.baseline
        ),
    )
}

/// Turns a failed `mmap`/`mprotect` into an error that names the limit, or
/// the size when the limit is not what refused it.
fn explain_map_failure(size: usize, e: io::Error) -> io::Error {
    let limit = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let mut msg = format!(
        "could not map a {} coroutine stack ({e}) with {} stacks mapped",
        human(size),
        MAPPED.load(Ordering::Relaxed)
    );
    match (limit, count_mappings()) {
        // Room for the two mappings of a stack: the limit is not what
        // refused it, the memory was (overcommit, the address space,
        // `RLIMIT_AS`), and the size is what to change.
        (Some(limit), Some(maps)) if (maps as u64).saturating_add(2) <= limit => {
            msg.push_str(&format!(
                "; the process holds {maps} memory mappings, well within vm.max_map_count = \
                 {limit}, so the OS refused the memory itself: ask for a smaller stack"
            ));
            return io::Error::new(e.kind(), msg);
        }
        (Some(limit), Some(maps)) => msg.push_str(&format!(
            "; the process holds {maps} memory mappings against vm.max_map_count = {limit}"
        )),
        (Some(limit), None) => msg.push_str(&format!("; vm.max_map_count = {limit}")),
        _ => {}
    }
    msg.push_str(". ");
    msg.push_str(FIX);
    io::Error::new(e.kind(), msg)
}

impl Drop for PooledStack {
    fn drop(&mut self) {
        // SAFETY: `stack` is initialised until this point (see the type's
        // invariant) and is never touched again after being taken here.
        let stack = unsafe { ManuallyDrop::take(&mut self.stack) };
        let size = self.size;
        // `try_with`: during thread teardown the pool may already be gone, in
        // which case the stack is simply unmapped by its own destructor.
        let _ = POOL.try_with(move |p| {
            p.in_use.set(p.in_use.get().saturating_sub(1));
            let mut free = p.free.borrow_mut();
            let bucket = match free.iter().position(|(s, _)| *s == size) {
                Some(i) => &mut free[i].1,
                None => {
                    free.push((size, Vec::new()));
                    &mut free.last_mut().expect("just pushed").1
                }
            };
            if bucket.len() < POOL_LIMIT_PER_SIZE {
                bucket.push(stack);
            }
        });
    }
}

impl PooledStack {
    #[inline]
    fn inner(&self) -> &DefaultStack {
        &self.stack.0
    }

    /// The usable size of this stack in bytes.
    pub(crate) fn size(&self) -> usize {
        self.size
    }
}

// SAFETY: `PooledStack` only forwards to a `DefaultStack` that it owns for its
// whole life (it is only taken out in `drop`). `DefaultStack`
// upholds the trait's contract: a guard page below the usable region and at
// least `MIN_STACK_SIZE` usable bytes. A stack is reused only after the
// coroutine that ran on it has been dropped (corosensei unwinds or finishes
// the coroutine in its own `Drop` before dropping the stack), so no live
// frame is ever on a stack that enters the pool.
unsafe impl Stack for PooledStack {
    #[inline]
    fn base(&self) -> StackPointer {
        self.inner().base()
    }

    #[inline]
    fn limit(&self) -> StackPointer {
        self.inner().limit()
    }

    #[cfg(windows)]
    fn teb_fields(&self) -> corosensei::stack::StackTebFields {
        self.inner().teb_fields()
    }

    #[cfg(windows)]
    fn update_teb_fields(&mut self, stack_limit: usize, guaranteed_stack_bytes: usize) {
        self.stack
            .0
            .update_teb_fields(stack_limit, guaranteed_stack_bytes)
    }
}

/// Hints the CPU to bring the cache line holding `addr` into the cache (and
/// its page into the TLB). Used by the loop on the stacks and headers of the
/// tasks about to run; a no-op on targets without a prefetch intrinsic.
#[inline(always)]
pub(crate) fn prefetch(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults whatever the address
    // (unmapped or guard pages included) and changes no memory; SSE, which it
    // needs, is part of the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(addr as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}
