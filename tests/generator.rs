//! Stage 1: stackful generators (`Generator`, `Yielder`, `GeneratorState`)
//! and the per-thread stack pool behind them.

mod common;

use std::cell::{Cell, RefCell};
use std::hint::black_box;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use bucle::{
    DEFAULT_STACK_SIZE, Generator, GeneratorState, MIN_STACK_SIZE, Yielder, stack_pool_stats,
};
use common::drops::Drops;
use common::{INTENTIONAL, panic_message, quiet_intentional_panics};

const ALREADY_COMPLETED: &str = "resumed a generator that already completed";

// ---------------------------------------------------------------------------
// resume / yield / send
// ---------------------------------------------------------------------------

#[test]
fn resume_sends_values_in_and_yields_values_out() {
    let mut g = Generator::new(|y: &Yielder<String, i32>, first: i32| -> Vec<i32> {
        let mut seen = vec![first];
        let a = y.yield_(format!("got {first}"));
        seen.push(a);
        let b = y.yield_(format!("got {a}"));
        seen.push(b);
        seen
    });
    assert!(!g.is_started());
    assert!(!g.is_complete());

    // The first input is the body's second argument...
    assert_eq!(g.resume(10), GeneratorState::Yielded("got 10".to_owned()));
    assert!(g.is_started());
    assert!(!g.is_complete());
    // ...later inputs are what `yield_` returns.
    assert_eq!(g.resume(20), GeneratorState::Yielded("got 20".to_owned()));
    assert!(!g.is_complete());
    assert_eq!(g.resume(30), GeneratorState::Complete(vec![10, 20, 30]));
    assert!(g.is_started());
    assert!(g.is_complete());
}

#[test]
fn generator_state_accessors() {
    let y: GeneratorState<i32, &str> = GeneratorState::Yielded(3);
    let c: GeneratorState<i32, &str> = GeneratorState::Complete("done");
    assert_eq!(y.yielded(), Some(3));
    assert_eq!(y.complete(), None);
    assert_eq!(c.yielded(), None);
    assert_eq!(c.complete(), Some("done"));
}

#[test]
fn body_that_returns_at_once_completes_on_first_resume() {
    let mut g = Generator::new(|_: &Yielder<u8, u8>, x: u8| x * 2);
    assert_eq!(g.resume(21), GeneratorState::Complete(42));
    assert!(g.is_started());
    assert!(g.is_complete());
}

#[test]
fn creating_a_generator_runs_nothing() {
    let ran = Rc::new(Cell::new(0));
    let r = ran.clone();
    let mut g = Generator::new(move |y: &Yielder<()>, ()| {
        r.set(r.get() + 1);
        y.yield_(());
        r.set(r.get() + 1);
    });
    assert_eq!(ran.get(), 0, "the body ran before the first resume");
    assert!(!g.is_started());
    assert_eq!(g.resume(()), GeneratorState::Yielded(()));
    assert_eq!(ran.get(), 1, "the first resume runs up to the first yield");
    assert_eq!(g.resume(()), GeneratorState::Complete(()));
    assert_eq!(ran.get(), 2);
}

// A tree walked by plain recursive functions that yield from any depth:
// the point of stackful generators.
enum Tree {
    Leaf(u32),
    Node(Vec<Tree>),
}

fn walk(y: &Yielder<u32>, tree: &Tree) {
    match tree {
        Tree::Leaf(v) => {
            y.yield_(*v);
        }
        Tree::Node(children) => {
            for child in children {
                walk(y, child);
            }
        }
    }
}

fn walk_tree(y: &Yielder<u32>, (): ()) {
    use Tree::{Leaf, Node};
    let tree = Node(vec![
        Leaf(1),
        Node(vec![Leaf(2), Node(vec![Leaf(3), Leaf(4)])]),
        Node(vec![]),
        Leaf(5),
    ]);
    walk(y, &tree);
}

#[test]
fn nested_functions_yield_through_the_yielder() {
    // `walk_tree` is a plain fn item, not a closure.
    let g = Generator::new(walk_tree);
    assert_eq!(g.collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
}

// ---------------------------------------------------------------------------
// Iterator
// ---------------------------------------------------------------------------

#[test]
fn iterator_yields_then_is_fused() {
    let tail_runs = Rc::new(Cell::new(0));
    let t = tail_runs.clone();
    let mut g = Generator::new(move |y: &Yielder<&'static str>, ()| {
        y.yield_("a");
        y.yield_("b");
        t.set(t.get() + 1);
    });
    assert_eq!(g.next(), Some("a"));
    assert_eq!(g.next(), Some("b"));
    assert!(!g.is_complete());
    assert_eq!(tail_runs.get(), 0);
    // This `next` runs the tail and sees the body return.
    assert_eq!(g.next(), None);
    assert!(g.is_complete());
    assert_eq!(tail_runs.get(), 1);
    // Fused: no panic, no rerun.
    for _ in 0..3 {
        assert_eq!(g.next(), None);
    }
    assert_eq!(tail_runs.get(), 1);
}

#[test]
fn iterator_adapters_work() {
    let evens = Generator::new(|y: &Yielder<u64>, ()| {
        let mut n = 0;
        loop {
            y.yield_(n);
            n += 2;
        }
    });
    let v: Vec<u64> = evens.skip(1).take(4).collect();
    assert_eq!(v, [2, 4, 6, 8]);
}

// ---------------------------------------------------------------------------
// yield_from
// ---------------------------------------------------------------------------

#[test]
fn yield_from_forwards_yields_and_sends_and_returns_the_sub_result() {
    let sub_log = Rc::new(RefCell::new(Vec::new()));
    let log = sub_log.clone();
    let mut outer = Generator::new(move |y: &Yielder<u32, i32>, start: i32| -> String {
        let x = y.yield_(100);
        let sub = Generator::new(move |y: &Yielder<u32, i32>, first: i32| -> &'static str {
            log.borrow_mut().push(first);
            let a = y.yield_(1);
            log.borrow_mut().push(a);
            let b = y.yield_(2);
            log.borrow_mut().push(b);
            "sub done"
        });
        let r = y.yield_from(sub);
        let z = y.yield_(200);
        format!("{start} {x} {r} {z}")
    });
    assert_eq!(outer.resume(7), GeneratorState::Yielded(100));
    // The sub starts with S::default() (Python sends None), not with 8.
    assert_eq!(outer.resume(8), GeneratorState::Yielded(1));
    assert_eq!(outer.resume(9), GeneratorState::Yielded(2));
    assert_eq!(outer.resume(10), GeneratorState::Yielded(200));
    assert_eq!(*sub_log.borrow(), [0, 9, 10]);
    assert_eq!(
        outer.resume(11),
        GeneratorState::Complete("7 8 sub done 11".to_owned())
    );
}

#[test]
fn yield_from_an_immediately_complete_sub_does_not_suspend() {
    let mut outer = Generator::new(|y: &Yielder<u8>, ()| -> u8 {
        let r = y.yield_from(Generator::new(|_: &Yielder<u8>, ()| 5u8));
        y.yield_(r);
        r + 1
    });
    assert_eq!(outer.resume(()), GeneratorState::Yielded(5));
    assert_eq!(outer.resume(()), GeneratorState::Complete(6));
}

// ---------------------------------------------------------------------------
// panics
// ---------------------------------------------------------------------------

#[test]
fn panic_in_body_propagates_and_completes_the_generator() {
    quiet_intentional_panics();
    let mut g = Generator::new(|y: &Yielder<i32>, ()| {
        y.yield_(1);
        panic!("{INTENTIONAL} boom");
    });
    assert_eq!(g.resume(()), GeneratorState::Yielded(1));
    let err = catch_unwind(AssertUnwindSafe(|| g.resume(()))).expect_err("the panic propagates");
    assert!(
        panic_message(&err).contains("boom"),
        "{}",
        panic_message(&err)
    );
    assert!(g.is_complete());
    assert!(g.is_started());

    let err = catch_unwind(AssertUnwindSafe(|| g.resume(()))).expect_err("resume after panic");
    let msg = panic_message(&err);
    assert!(msg.contains(ALREADY_COMPLETED), "{msg}");
    // Still complete, and still refusing.
    assert!(g.is_complete());
    let err = catch_unwind(AssertUnwindSafe(|| g.resume(()))).expect_err("and again");
    assert!(panic_message(&err).contains(ALREADY_COMPLETED));
}

#[test]
fn panic_on_first_resume_propagates() {
    quiet_intentional_panics();
    let mut g = Generator::new(|_: &Yielder<(), u32>, n: u32| -> u32 {
        if n > 0 {
            panic!("{INTENTIONAL} first resume {n}");
        }
        n
    });
    let err = catch_unwind(AssertUnwindSafe(|| g.resume(3))).expect_err("panics");
    assert!(panic_message(&err).contains("first resume 3"));
    assert!(g.is_complete());
    // An iterator over a panicked generator is fused too.
    let mut it = Generator::new(|_: &Yielder<u8>, ()| panic!("{INTENTIONAL} iter"));
    assert!(catch_unwind(AssertUnwindSafe(|| it.next())).is_err());
    assert_eq!(it.next(), None);
}

#[test]
fn resuming_a_completed_generator_panics_with_a_clear_message() {
    quiet_intentional_panics();
    let mut g = Generator::new(|y: &Yielder<u8>, ()| {
        y.yield_(1);
    });
    assert_eq!(g.resume(()), GeneratorState::Yielded(1));
    assert_eq!(g.resume(()), GeneratorState::Complete(()));
    let err = catch_unwind(AssertUnwindSafe(|| g.resume(()))).expect_err("must panic");
    let msg = panic_message(&err);
    assert!(msg.contains(ALREADY_COMPLETED), "{msg}");
}

#[test]
fn values_on_the_stack_of_a_panicking_body_are_dropped_once() {
    quiet_intentional_panics();
    let drops = Drops::new();
    let d = drops.clone();
    let captured = drops.token(0);
    let mut g = Generator::new(move |y: &Yielder<()>, ()| {
        let _captured = captured;
        let _local = d.token(1);
        y.yield_(());
        let _late = d.token(2);
        panic!("{INTENTIONAL} with tokens live");
    });
    g.resume(());
    assert_eq!(drops.dropped(), 0);
    assert!(catch_unwind(AssertUnwindSafe(|| g.resume(()))).is_err());
    assert_eq!(drops.made(), 3);
    assert!(drops.all_dropped_once(), "{}", drops.report());
    drop(g);
    assert!(drops.all_dropped_once(), "{}", drops.report());
}

// ---------------------------------------------------------------------------
// drops
// ---------------------------------------------------------------------------

fn hold_and_yield(y: &Yielder<u32>, drops: &Drops, depth: u32) {
    let _held = drops.token(depth as usize + 10);
    if depth == 0 {
        y.yield_(99);
    } else {
        hold_and_yield(y, drops, depth - 1);
    }
}

#[test]
fn dropping_a_suspended_generator_unwinds_its_stack() {
    let drops = Drops::new();
    let d = drops.clone();
    let captured = drops.token(0);
    let resumed_after_yield = Rc::new(Cell::new(false));
    let after = resumed_after_yield.clone();
    let mut g = Generator::new(move |y: &Yielder<u32>, ()| {
        let _captured = captured;
        let _local = d.token(1);
        y.yield_(1);
        // Suspended three frames deep, each frame holding a token.
        hold_and_yield(y, &d, 3);
        after.set(true);
    });
    assert_eq!(g.resume(()), GeneratorState::Yielded(1));
    assert_eq!(g.resume(()), GeneratorState::Yielded(99));
    assert_eq!(drops.made(), 6);
    assert_eq!(drops.dropped(), 0);
    drop(g);
    assert!(drops.all_dropped_once(), "{}", drops.report());
    assert_eq!(drops.dropped(), 6);
    assert!(
        !resumed_after_yield.get(),
        "drop must unwind from the yield, not resume the body normally"
    );
}

#[test]
fn dropping_an_unstarted_generator_drops_the_captured_values_once() {
    let drops = Drops::new();
    let a = drops.token(0);
    let b = drops.token(1);
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let g = Generator::new(move |y: &Yielder<()>, ()| {
        r.set(true);
        let _a = a;
        y.yield_(());
        drop(b);
    });
    assert_eq!(drops.dropped(), 0);
    drop(g);
    assert!(
        !ran.get(),
        "dropping an unstarted generator must not run it"
    );
    assert_eq!(drops.dropped(), 2);
    assert!(drops.all_dropped_once(), "{}", drops.report());
}

#[test]
fn dropping_a_completed_generator_does_not_drop_again() {
    let drops = Drops::new();
    let d = drops.clone();
    let captured = drops.token(0);
    let mut g = Generator::new(move |y: &Yielder<common::drops::Token>, ()| {
        let _captured = captured;
        let _local = d.token(1);
        y.yield_(d.token(2));
        d.token(3) // returned to the caller
    });
    let yielded = g.resume(()).yielded().expect("yields a token");
    let returned = g.resume(()).complete().expect("returns a token");
    // Everything that lived on the stack has been dropped; what was handed
    // out is still alive.
    assert_eq!(drops.of(0), [1]);
    assert_eq!(drops.of(1), [1]);
    assert_eq!(drops.of(2), [0]);
    assert_eq!(drops.of(3), [0]);
    drop(g);
    assert_eq!(drops.dropped(), 2);
    drop(yielded);
    drop(returned);
    assert!(drops.all_dropped_once(), "{}", drops.report());
}

#[test]
fn sent_values_are_dropped_once() {
    let drops = Drops::new();
    let mut g = Generator::new(|y: &Yielder<(), common::drops::Token>, first| {
        let _first = first;
        let _second = y.yield_(());
        let _third = y.yield_(());
    });
    g.resume(drops.token(0));
    g.resume(drops.token(1));
    assert_eq!(drops.dropped(), 0);
    drop(g);
    assert!(drops.all_dropped_once(), "{}", drops.report());
    assert_eq!(drops.made(), 2);
}

#[test]
fn dropping_a_generator_suspended_in_yield_from_unwinds_both_stacks() {
    let drops = Drops::new();
    let d = drops.clone();
    let baseline = stack_pool_stats().in_use;
    let mut outer = Generator::new(move |y: &Yielder<u8>, ()| {
        let _outer = d.token(0);
        let d2 = d.clone();
        let captured_by_sub = d.token(1);
        y.yield_from(Generator::new(move |y: &Yielder<u8>, ()| {
            let _c = captured_by_sub;
            let _inner = d2.token(2);
            loop {
                y.yield_(7);
            }
        }));
        unreachable!("the sub never returns");
    });
    assert_eq!(outer.resume(()), GeneratorState::Yielded(7));
    assert_eq!(outer.resume(()), GeneratorState::Yielded(7));
    assert_eq!(stack_pool_stats().in_use, baseline + 2);
    drop(outer);
    assert_eq!(drops.made(), 3);
    assert!(drops.all_dropped_once(), "{}", drops.report());
    assert_eq!(stack_pool_stats().in_use, baseline);
}

fn suspended_holding(drops: &Drops, owner: usize) -> Generator<u8> {
    let d = drops.clone();
    let mut g = Generator::new(move |y: &Yielder<u8>, ()| {
        let _held = d.token(owner);
        loop {
            y.yield_(1);
        }
    });
    assert_eq!(g.resume(()), GeneratorState::Yielded(1));
    g
}

#[test]
fn a_suspended_generator_dropped_while_a_panic_unwinds_is_unwound_too() {
    quiet_intentional_panics();
    let drops = Drops::new();
    let base = stack_pool_stats().in_use;

    // On the thread's own stack.
    let g = suspended_holding(&drops, 0);
    let r = catch_unwind(AssertUnwindSafe(|| {
        let _g = g;
        panic!("{INTENTIONAL} while holding a suspended generator");
    }));
    assert!(r.is_err());
    assert_eq!(drops.of(0), [1]);

    // Inside another generator whose body panics.
    let d = drops.clone();
    let mut outer = Generator::new(move |y: &Yielder<u8>, ()| {
        let mut held = suspended_holding(&d, 1);
        let v = held.resume(()).yielded().unwrap_or(0);
        y.yield_(v);
        panic!("{INTENTIONAL} outer panics with a live sub");
    });
    assert_eq!(outer.resume(()), GeneratorState::Yielded(1));
    let err = catch_unwind(AssertUnwindSafe(|| outer.resume(()))).expect_err("propagates");
    assert!(panic_message(&err).contains("outer panics"));
    assert_eq!(drops.of(1), [1]);
    drop(outer);
    assert!(drops.all_dropped_once(), "{}", drops.report());
    assert_eq!(stack_pool_stats().in_use, base);
}

// ---------------------------------------------------------------------------
// stacks and the pool
// ---------------------------------------------------------------------------

fn started_generator(size: usize) -> Generator<u32> {
    let mut g = Generator::with_stack_size(size, |y: &Yielder<u32>, ()| {
        let buf = black_box([1u8; 512]);
        y.yield_(buf.iter().map(|&b| b as u32).sum());
    });
    assert_eq!(g.resume(()), GeneratorState::Yielded(512));
    g
}

#[test]
fn stacks_go_back_to_the_pool() {
    const N: usize = 16;
    let base = stack_pool_stats();
    let gens: Vec<_> = (0..N)
        .map(|_| started_generator(DEFAULT_STACK_SIZE))
        .collect();
    let unstarted: Vec<_> = (0..N)
        .map(|_| Generator::new(|_: &Yielder<u8>, ()| {}))
        .collect();
    let live = stack_pool_stats();
    assert_eq!(live.in_use, base.in_use + 2 * N);
    drop(gens);
    assert_eq!(stack_pool_stats().in_use, base.in_use + N);
    drop(unstarted);
    let after = stack_pool_stats();
    assert_eq!(after.in_use, base.in_use);
    assert!(after.pooled >= 2 * N, "{after:?}");
}

#[test]
fn steady_state_reuses_stacks_without_mapping() {
    let base = stack_pool_stats();
    // Warm up: make sure a few stacks of each size are pooled.
    let sizes = [DEFAULT_STACK_SIZE, MIN_STACK_SIZE, 1 << 20];
    for size in sizes {
        let warm: Vec<_> = (0..4).map(|_| started_generator(size)).collect();
        drop(warm);
    }
    let warmed = stack_pool_stats();
    assert_eq!(warmed.in_use, base.in_use);
    for round in 0..200 {
        let size = sizes[round % sizes.len()];
        let a = started_generator(size);
        let b = Generator::with_stack_size(size, |_: &Yielder<u8>, ()| 1u8);
        let mut c = Generator::with_stack_size(size, |y: &Yielder<u8>, ()| {
            y.yield_(1);
        });
        c.resume(());
        assert_eq!(stack_pool_stats().in_use, base.in_use + 3);
        c.resume(());
        drop((a, b, c));
    }
    let after = stack_pool_stats();
    assert_eq!(
        after.mapped, warmed.mapped,
        "steady-state create/run/drop mapped new stacks: {warmed:?} -> {after:?}"
    );
    assert_eq!(after.in_use, base.in_use);
}

#[test]
fn panicked_and_unstarted_generators_return_their_stacks() {
    quiet_intentional_panics();
    let base = stack_pool_stats().in_use;
    let mut p = Generator::new(|_: &Yielder<()>, ()| panic!("{INTENTIONAL} pool"));
    assert!(catch_unwind(AssertUnwindSafe(|| p.resume(()))).is_err());
    let u = Generator::new(|_: &Yielder<()>, ()| {});
    assert_eq!(stack_pool_stats().in_use, base + 2);
    drop(p);
    drop(u);
    assert_eq!(stack_pool_stats().in_use, base);
}

#[test]
fn try_constructors_return_working_generators() {
    let base = stack_pool_stats().in_use;
    let mut a = Generator::try_new(|y: &Yielder<u8, u8>, x: u8| {
        let z = y.yield_(x + 1);
        z * 2
    })
    .expect("try_new");
    let mut b = Generator::try_with_stack_size(64 * 1024, |y: &Yielder<u8>, ()| {
        y.yield_(3);
    })
    .expect("try_with_stack_size");
    // Sizes below the minimum are rounded up, not refused.
    let mut c = Generator::try_with_stack_size(1, |_: &Yielder<u8>, ()| 9u8)
        .expect("tiny sizes are rounded up");
    assert_eq!(stack_pool_stats().in_use, base + 3);
    assert_eq!(a.resume(1), GeneratorState::Yielded(2));
    assert_eq!(a.resume(5), GeneratorState::Complete(10));
    assert_eq!(b.resume(()), GeneratorState::Yielded(3));
    assert_eq!(c.resume(()), GeneratorState::Complete(9));
    drop((a, b, c));
    assert_eq!(stack_pool_stats().in_use, base);
}

/// Recurses `depth` frames, each holding 1 KiB live across the call; yields
/// at the bottom. Returns (sum of the buffers, lowest frame address).
///
/// One array per frame, touched through `black_box` before and after the
/// call: about 1.2 KiB per frame in debug builds (a by-value `black_box`
/// of the array would copy it and quadruple the frame).
#[inline(never)]
fn recurse(y: &Yielder<usize>, depth: usize) -> (usize, usize) {
    let mut buf = [0u8; 1024];
    buf[0] = (depth % 251) as u8;
    buf[1023] = buf[0];
    let here = black_box(&mut buf) as *mut _ as usize;
    let (sum, lowest) = if depth == 0 {
        y.yield_(here);
        (0, here)
    } else {
        recurse(y, depth - 1)
    };
    black_box(&mut buf);
    (sum + buf[0] as usize + buf[1023] as usize, lowest.min(here))
}

fn expected_sum(depth: usize) -> usize {
    (0..=depth).map(|d| 2 * (d % 251)).sum()
}

#[test]
fn deep_recursion_fits_in_the_default_stack() {
    const DEPTH: usize = 64;
    let mut g = Generator::new(|y: &Yielder<usize>, ()| {
        let marker = black_box(0u8);
        let top = &marker as *const u8 as usize;
        let (sum, lowest) = recurse(y, DEPTH);
        (sum, top - lowest)
    });
    // Suspended at the bottom of the recursion, then resumed back up.
    let bottom = g.resume(()).yielded().expect("yields at the bottom");
    assert_ne!(bottom, 0);
    let (sum, span) = g.resume(()).complete().expect("completes");
    assert_eq!(sum, expected_sum(DEPTH));
    assert!(
        span >= 60 * 1024,
        "the recursion really used the stack: {span} bytes"
    );
    assert!(span < DEFAULT_STACK_SIZE);
}

#[test]
fn a_bigger_stack_holds_a_deeper_recursion() {
    // ~400 KiB of frames: more than the default stack, well under 1 MiB.
    const DEPTH: usize = 400;
    let mut g = Generator::with_stack_size(1 << 20, |y: &Yielder<usize>, ()| {
        let marker = black_box(0u8);
        let top = &marker as *const u8 as usize;
        let (sum, lowest) = recurse(y, DEPTH);
        (sum, top - lowest)
    });
    assert!(g.resume(()).yielded().is_some());
    let (sum, span) = g.resume(()).complete().expect("completes");
    assert_eq!(sum, expected_sum(DEPTH));
    assert!(span > DEFAULT_STACK_SIZE, "span {span}");
}

// ---------------------------------------------------------------------------
// Debug
// ---------------------------------------------------------------------------

#[test]
fn debug_impls() {
    let mut g = Generator::new(|y: &Yielder<String, u8>, _: u8| {
        let me = format!("{y:?}");
        y.yield_(me);
    });
    let before = format!("{g:?}");
    assert!(before.contains("Generator"), "{before}");
    let yielder = g.resume(0).yielded().expect("yields its Yielder's Debug");
    assert!(yielder.contains("Yielder"), "{yielder}");
    let after = format!("{g:?}");
    assert!(after.contains("Generator"), "{after}");
    assert_ne!(before, after, "Debug should show the generator's progress");

    let s: GeneratorState<i32, &str> = GeneratorState::Yielded(3);
    assert_eq!(format!("{s:?}"), "Yielded(3)");
    let s: GeneratorState<i32, &str> = GeneratorState::Complete("x");
    assert_eq!(format!("{s:?}"), "Complete(\"x\")");
}
