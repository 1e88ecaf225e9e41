//! Context-switch benchmarks: what a stackful generator costs next to the raw
//! `corosensei` coroutine it is built on.
//!
//! Run with `cargo bench --bench context_switch`; results are recorded in
//! `docs/performance.md`.
//!
//! Group `switch` (one resume + one suspend per iteration, side by side):
//! - `corosensei/resume+suspend`: the peer, a bare `corosensei::Coroutine` on
//!   its own `DefaultStack` that suspends in an endless loop;
//! - `bucle/Generator::resume`: the same loop as a `bucle::Generator`;
//! - `bucle/RoundRobin::step/N`: one `RoundRobin::step` (pop the front task,
//!   resume it once, push it back) with N = 1, 10, 1000 endless generators
//!   queued, so the queue and the cache footprint of N stacks are included.
//!
//! Group `create_run_drop` (a generator whose body returns at once: create,
//! resume to completion, drop):
//! - `bucle/Generator pooled`: stack taken from and returned to the
//!   per-thread pool, so no system call in steady state;
//! - `corosensei/DefaultStack fresh`: the peer, a coroutine on a freshly
//!   mapped 256 KiB `DefaultStack` (the size of `bucle::DEFAULT_STACK_SIZE`),
//!   i.e. `mmap` + `mprotect` + first-touch page faults + `munmap`;
//! - `corosensei/DefaultStack reused`: a reference point, not a bar: one
//!   `DefaultStack` recycled by hand through `Coroutine::into_stack`, the
//!   floor any pooling scheme can reach.
//!
//! Group `drop_suspended` (a generator dropped while it is paused at a
//! yield: create, resume once, drop, which unwinds its stack):
//! - `bucle/Generator pooled`: `Generator::drop`, the unwind that runs the
//!   body's destructors (Python's `close()`), stack back to the pool;
//! - `corosensei/DefaultStack reused`: the floor, a bare coroutine on one
//!   stack recycled by hand, unwound with `Coroutine::force_unwind`.
//!
//! Group `return_balance` (why bucle inlines its waits down to the switch;
//! see "Balanced returns" in `docs/performance.md`): two bare corosensei
//! coroutines resumed in turn, one iteration being one resume + suspend,
//! with the switch reached through `depth` frames that are not inlined:
//! - `task frames/0`: the suspend is inlined into the coroutine's loop and
//!   the resume into the driver's loop (no return crosses a switch);
//! - `task frames/1`, `task frames/2`: the coroutine calls 1 or 2
//!   out-of-line functions to reach its suspend, so after each resume it
//!   returns through them, past the switch;
//! - `task frames/2, loop frames/2`: the driver too resumes through two
//!   out-of-line frames.
//!
//! Every return that crosses a switch finds the CPU's return-address
//! predictor (a stack of the calls it saw) holding the other context's
//! addresses, and costs a mispredicted branch.
//!
//! Bars (the "Performance bar" table in `docs/performance.md`):
//! - `bucle/Generator::resume` ≤ 1.5 × `corosensei/resume+suspend`;
//! - `bucle/Generator pooled` ≤ 50 ns per create + run + drop.

use std::hint::black_box;
use std::time::Duration;

use bucle::{DEFAULT_STACK_SIZE, Generator, GeneratorState, RoundRobin, Yielder};
use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, CoroutineResult, Yielder as CoYielder};
use criterion::{Criterion, criterion_group, criterion_main};

/// Resume + suspend round trips, ours next to the peer.
fn switch(c: &mut Criterion) {
    let mut group = c.benchmark_group("switch");

    group.bench_function("corosensei/resume+suspend", |b| {
        let mut co = Coroutine::<(), (), ()>::new(|y: &CoYielder<(), ()>, ()| {
            loop {
                y.suspend(());
            }
        });
        b.iter(|| match co.resume(()) {
            CoroutineResult::Yield(v) => black_box(v),
            CoroutineResult::Return(()) => unreachable!("the coroutine never returns"),
        });
    });

    group.bench_function("bucle/Generator::resume", |b| {
        let mut g = Generator::<(), (), ()>::new(|y: &Yielder<()>, ()| {
            loop {
                y.yield_(());
            }
        });
        b.iter(|| match g.resume(()) {
            GeneratorState::Yielded(v) => black_box(v),
            GeneratorState::Complete(()) => unreachable!("the generator never returns"),
        });
    });

    for n in [1usize, 10, 1000] {
        group.bench_function(format!("bucle/RoundRobin::step/{n}"), |b| {
            let mut rr = RoundRobin::new();
            for _ in 0..n {
                rr.spawn_fn(|y| {
                    loop {
                        y.yield_(());
                    }
                });
            }
            b.iter(|| black_box(rr.step()));
            assert_eq!(rr.len(), n, "every task is endless and stays queued");
        });
    }

    group.finish();
}

/// A generator's whole life, pooled stack against a freshly mapped one.
fn create_run_drop(c: &mut Criterion) {
    let mut group = c.benchmark_group("create_run_drop");

    group.bench_function("bucle/Generator pooled", |b| {
        b.iter(|| {
            let mut g = Generator::<(), u32, ()>::new(|_: &Yielder<()>, ()| black_box(7));
            black_box(g.resume(()))
        });
    });

    group.bench_function("corosensei/DefaultStack fresh", |b| {
        b.iter(|| {
            let stack = DefaultStack::new(DEFAULT_STACK_SIZE).expect("map a stack");
            let mut co =
                Coroutine::<(), (), u32, _>::with_stack(stack, |_: &CoYielder<(), ()>, ()| {
                    black_box(7)
                });
            black_box(co.resume(()))
        });
    });

    group.bench_function("corosensei/DefaultStack reused", |b| {
        let mut spare = Some(DefaultStack::new(DEFAULT_STACK_SIZE).expect("map a stack"));
        b.iter(|| {
            let stack = spare.take().expect("the stack is returned each iteration");
            let mut co =
                Coroutine::<(), (), u32, _>::with_stack(stack, |_: &CoYielder<(), ()>, ()| {
                    black_box(7)
                });
            let r = black_box(co.resume(()));
            spare = Some(co.into_stack());
            r
        });
    });

    group.finish();
}

/// A generator's life when it is dropped while paused: the unwind.
fn drop_suspended(c: &mut Criterion) {
    let mut group = c.benchmark_group("drop_suspended");

    group.bench_function("bucle/Generator pooled", |b| {
        b.iter(|| {
            let mut g = Generator::<(), (), ()>::new(|y: &Yielder<()>, ()| {
                y.yield_(());
                unreachable!("dropped while paused at the first yield");
            });
            black_box(g.resume(()));
            drop(g);
        });
    });

    group.bench_function("corosensei/DefaultStack reused", |b| {
        let mut spare = Some(DefaultStack::new(DEFAULT_STACK_SIZE).expect("map a stack"));
        b.iter(|| {
            let stack = spare.take().expect("the stack is returned each iteration");
            let mut co =
                Coroutine::<(), (), (), _>::with_stack(stack, |y: &CoYielder<(), ()>, ()| {
                    y.suspend(());
                    unreachable!("unwound while suspended");
                });
            black_box(co.resume(()));
            co.force_unwind();
            spare = Some(co.into_stack());
        });
    });

    group.finish();
}

/// Suspends through `depth` out-of-line frames.
#[inline(never)]
fn suspend_through(y: &CoYielder<(), ()>, depth: u32) {
    if depth <= 1 {
        y.suspend(());
    } else {
        suspend_through(y, depth - 1);
    }
    // Not a tail call: the frame must be returned through.
    black_box(depth);
}

/// Resumes through `depth` out-of-line frames.
#[inline(never)]
fn resume_through(co: &mut Coroutine<(), (), ()>, depth: u32) {
    if depth <= 1 {
        if let CoroutineResult::Return(()) = co.resume(()) {
            unreachable!("the coroutine never returns");
        }
    } else {
        resume_through(co, depth - 1);
    }
    black_box(depth);
}

/// The cost of returns that cross a context switch.
fn return_balance(c: &mut Criterion) {
    let mut group = c.benchmark_group("return_balance");
    let cases = [
        ("task frames/0", 0, 0),
        ("task frames/1", 1, 0),
        ("task frames/2", 2, 0),
        ("task frames/2, loop frames/2", 2, 2),
    ];
    for (name, task_depth, loop_depth) in cases {
        group.bench_function(name, |b| {
            let mut pair: Vec<Coroutine<(), (), ()>> = (0..2)
                .map(|_| {
                    Coroutine::new(move |y: &CoYielder<(), ()>, ()| {
                        loop {
                            if task_depth == 0 {
                                y.suspend(());
                            } else {
                                suspend_through(y, task_depth);
                            }
                        }
                    })
                })
                .collect();
            let mut turn = 0;
            b.iter(|| {
                let co = &mut pair[turn];
                turn ^= 1;
                if loop_depth == 0 {
                    if let CoroutineResult::Return(()) = co.resume(()) {
                        unreachable!("the coroutine never returns");
                    }
                } else {
                    resume_through(co, loop_depth);
                }
            });
            // Dropping a suspended coroutine unwinds its stack.
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = switch, create_run_drop, drop_suspended, return_balance
}
criterion_main!(benches);
