//! Memory and scale: what a suspended task costs, and what happens at the
//! operating system's limit on stacks.
//!
//! ```sh
//! cargo run --release --example 03_scale
//! ```
//!
//! 1. **Memory.** Spawns 10,000 tasks on the default stack, lets each run
//!    until it suspends on a shared `Future`, and reads the process's
//!    resident set size (`VmRSS` in `/proc/self/status`) before and after:
//!    the difference per task must be at most 16 KiB. Only the stack pages
//!    a task has touched are resident; the rest of its 256 KiB is address
//!    space.
//! 2. **Scale.** Spawns suspended tasks with `try_spawn` until the kernel
//!    refuses another stack. Each guarded stack is two memory mappings, and
//!    Linux caps a process at `vm.max_map_count` mappings (65530 by
//!    default), so this stops near 32,000 tasks — `bucle::MAP_RESERVE`
//!    mappings short of the limit, so the allocator can still grow. The error must name the
//!    limit; `spawn` at that point must panic with the same explanation (it
//!    is caught here). Then every task runs, finishes, and gives its stack
//!    back: no crash, no abort.
//! 3. **Smaller stacks do not help.** The same with 16 KiB stacks: the
//!    count is set by mappings, not by bytes.
//!
//! With `-- --alloc-after-limit`, part 2 also allocates ~200,000 small boxes
//! while the process sits at the limit, as a program that handles the error
//! and carries on would.
//!
//! Linux only (it reads `/proc`). The whole run takes a few seconds; it maps
//! about 32,000 stacks and touches one or two pages of each (~0.3 GiB).

use std::panic::{self, AssertUnwindSafe};
use std::time::Instant;

use bucle::{DEFAULT_STACK_SIZE, EventLoop, Future, MIN_STACK_SIZE, TaskBuilder};

/// Tasks in the memory measurement.
const TASKS: usize = 10_000;
/// The bar: resident memory per suspended task on the default stack.
const BAR_KIB: f64 = 16.0;

/// The process's resident set size, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line in /proc/self/status")
}

/// Memory mappings the process holds now (lines of `/proc/self/maps`).
///
/// Counted through a fixed buffer on the stack: at the mapping limit, the
/// heap may be unable to grow, so reading the 5 MB file into a `String`
/// can fail.
fn maps() -> Option<usize> {
    use std::io::Read;
    let mut file = std::fs::File::open("/proc/self/maps").ok()?;
    let mut buf = [0u8; 16 * 1024];
    let mut lines = 0;
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Some(lines),
            Ok(n) => lines += buf[..n].iter().filter(|&&b| b == b'\n').count(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

fn show(n: Option<usize>) -> String {
    n.map_or_else(|| "unreadable".to_string(), |n| n.to_string())
}

/// The kernel's limit on mappings per process.
fn max_map_count() -> String {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

fn pool() -> String {
    let s = bucle::stack_pool_stats();
    format!(
        "{} in use, {} pooled, {} mapped so far",
        s.in_use, s.pooled, s.mapped
    )
}

/// Part 1: resident memory per suspended task.
fn memory(lp: &EventLoop) -> bool {
    lp.run_until_complete(|| {
        let gate = Future::<()>::new();
        let before = rss_kib();
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let gate = gate.clone();
                bucle::spawn(move || gate.wait().expect("the gate opens"))
            })
            .collect();
        // One tick: every task runs until it suspends on the gate.
        bucle::yield_now();
        let after = rss_kib();
        let per_task = (after.saturating_sub(before)) as f64 / TASKS as f64;
        let ok = per_task <= BAR_KIB;
        println!(
            "{TASKS} suspended tasks on the default {} KiB stack: RSS {before} KiB -> {after} KiB, \
             {per_task:.1} KiB per task (bar <= {BAR_KIB} KiB: {})",
            DEFAULT_STACK_SIZE / 1024,
            if ok { "met" } else { "NOT met" }
        );
        gate.set_result(()).expect("opened once");
        for t in tasks {
            t.join().expect("every task finishes");
        }
        ok
    })
}

/// Part 2 and 3: spawn suspended tasks until bucle refuses a stack.
///
/// With `alloc_after_limit`, also allocates ~200,000 small boxes while the
/// process sits at the limit, as a program that handles the error and goes
/// on would.
fn scale(lp: &EventLoop, stack_size: usize, alloc_after_limit: bool) -> bool {
    lp.run_until_complete(move || {
        let started = Instant::now();
        let maps_before = show(maps());
        let gate = Future::<()>::new();
        let spawn_one = |gate: &Future<()>| {
            let gate = gate.clone();
            TaskBuilder::new()
                .stack_size(stack_size)
                .try_spawn(move || gate.wait().expect("the gate opens"))
        };
        let mut tasks = Vec::new();
        let err = loop {
            match spawn_one(&gate) {
                Ok(t) => tasks.push(t),
                Err(e) => break e,
            }
        };
        let spawned = tasks.len();
        println!(
            "  try_spawn succeeded {spawned} times (mappings: {maps_before} before, {} at the \
             limit, vm.max_map_count = {}; pool: {})",
            show(maps()),
            max_map_count(),
            pool()
        );
        println!("  then try_spawn returned Err({:?}): {err}", err.kind());
        let err_names_limit = err.to_string().contains("vm.max_map_count");
        if alloc_after_limit {
            let boxes: Vec<Box<u64>> = (0..200_000).map(Box::new).collect();
            println!("  allocated {} boxes at the limit", boxes.len());
        }

        // `spawn` cannot return an error: it panics, with the same message.
        let hook = panic::take_hook();
        panic::set_hook(Box::new(|_| {}));
        let caught = panic::catch_unwind(AssertUnwindSafe(|| {
            TaskBuilder::new().stack_size(stack_size).spawn(|| ())
        }));
        panic::set_hook(hook);
        let panic_msg = match caught {
            Ok(_) => "no panic: the limit was not reached".to_string(),
            Err(payload) => payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default(),
        };
        println!("  spawn panicked: {panic_msg}");
        let panic_names_limit = panic_msg.contains("vm.max_map_count");

        // Every task runs to its wait, then finishes.
        bucle::yield_now();
        gate.set_result(()).expect("opened once");
        let finished = tasks
            .into_iter()
            .map(|t| t.join())
            .filter(Result::is_ok)
            .count();
        println!(
            "  all {finished} tasks ran and finished; pool now: {}; {:.1} s",
            pool(),
            started.elapsed().as_secs_f64()
        );
        err_names_limit && panic_names_limit && finished == spawned && spawned > 0
    })
}

fn main() {
    let alloc_after_limit = std::env::args().any(|a| a == "--alloc-after-limit");
    let lp = EventLoop::new();
    let mut ok = memory(&lp);
    println!(
        "Spawning suspended tasks on the default {} KiB stack until bucle's map budget refuses one:",
        DEFAULT_STACK_SIZE / 1024
    );
    ok &= scale(&lp, DEFAULT_STACK_SIZE, alloc_after_limit);
    println!(
        "The same with {} KiB stacks (the free default-size stacks left in the pool are \
         unmapped first, so the count is the same):",
        MIN_STACK_SIZE / 1024
    );
    ok &= scale(&lp, MIN_STACK_SIZE, alloc_after_limit);
    lp.close();
    println!(
        "{}",
        if ok {
            "ok: no crash, and both errors name the limit"
        } else {
            "FAILED"
        }
    );
    if !ok {
        std::process::exit(1);
    }
}
