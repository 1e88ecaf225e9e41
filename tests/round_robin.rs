//! Stage 2: the round-robin scheduler (`RoundRobin`, `Spawner`).

mod common;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use bucle::{Generator, RoundRobin, Spawner, Yielder, stack_pool_stats};
use common::drops::Drops;
use common::{INTENTIONAL, panic_message, quiet_intentional_panics};
use proptest::prelude::*;

type Log = Rc<RefCell<Vec<String>>>;

/// A task that logs `{name}{i}` at each of its `steps` steps, yielding
/// between them: it takes `max(steps, 1)` resumes.
fn counter(log: &Log, name: &'static str, steps: usize) -> impl FnOnce(&Yielder<()>) + 'static {
    let log = log.clone();
    move |y| {
        for i in 0..steps {
            if i > 0 {
                y.yield_(());
            }
            log.borrow_mut().push(format!("{name}{i}"));
        }
    }
}

fn take(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.borrow_mut())
}

// ---------------------------------------------------------------------------
// ordering
// ---------------------------------------------------------------------------

#[test]
fn tasks_interleave_in_fifo_order() {
    let log = Log::default();
    let mut rr = RoundRobin::new();
    assert!(rr.is_empty());
    assert_eq!(rr.len(), 0);
    rr.spawn_fn(counter(&log, "a", 3));
    rr.spawn_fn(counter(&log, "b", 1));
    rr.spawn_fn(counter(&log, "c", 2));
    assert_eq!(rr.len(), 3);
    assert!(!rr.is_empty());
    assert_eq!(rr.steps(), 0);
    assert!(log.borrow().is_empty(), "spawning runs nothing");

    assert!(rr.step()); // a0, a yields and goes to the back
    assert_eq!(rr.len(), 3);
    assert!(rr.step()); // b0, b completes
    assert_eq!(rr.len(), 2);
    assert_eq!(rr.steps(), 2);
    assert_eq!(take(&log), ["a0", "b0"]);

    assert_eq!(rr.run(), 4);
    assert_eq!(take(&log), ["c0", "a1", "c1", "a2"]);
    assert_eq!(rr.steps(), 6);
    assert!(rr.is_empty());
    assert_eq!(rr.len(), 0);

    assert!(!rr.step(), "step on an empty scheduler");
    assert_eq!(rr.run(), 0);
    assert_eq!(rr.steps(), 6, "an empty step is not a step");
}

#[test]
fn a_task_that_never_yields_takes_one_step() {
    let mut rr = RoundRobin::default();
    let ran = Rc::new(Cell::new(0));
    for _ in 0..3 {
        let r = ran.clone();
        rr.spawn_fn(move |_| r.set(r.get() + 1));
    }
    assert_eq!(rr.run(), 3);
    assert_eq!(ran.get(), 3);
}

#[test]
fn spawned_tasks_go_to_the_back_of_the_queue() {
    let log = Log::default();
    let mut rr = RoundRobin::new();
    let spawner: Spawner = rr.spawner();
    {
        let log = log.clone();
        rr.spawn_fn(move |y| {
            log.borrow_mut().push("a0".into());
            // Spawned during a's step: behind b, ahead of a itself.
            spawner.spawn_fn(counter(&log, "x", 2));
            y.yield_(());
            log.borrow_mut().push("a1".into());
            spawner.spawn(Generator::new({
                let log = log.clone();
                move |y: &Yielder<()>, ()| {
                    log.borrow_mut().push("z0".into());
                    y.yield_(());
                    log.borrow_mut().push("z1".into());
                }
            }));
            y.yield_(());
            log.borrow_mut().push("a2".into());
        });
    }
    rr.spawn_fn(counter(&log, "b", 3));
    assert_eq!(rr.len(), 2);
    assert!(rr.step());
    // a spawned x while running: x and b queued, a pushed back after x.
    assert_eq!(rr.len(), 3);
    let steps = rr.run();
    assert_eq!(
        take(&log),
        ["a0", "b0", "x0", "a1", "b1", "x1", "z0", "a2", "b2", "z1"]
    );
    assert_eq!(steps + 1, rr.steps());
    assert_eq!(rr.steps(), 10);
    assert!(rr.is_empty());
}

#[test]
fn spawn_from_outside_and_spawner_before_run() {
    let log = Log::default();
    let mut rr = RoundRobin::new();
    let spawner = rr.spawner();
    spawner.spawn_fn(counter(&log, "s", 2));
    rr.spawn(Generator::new({
        let log = log.clone();
        move |_: &Yielder<()>, ()| log.borrow_mut().push("g0".into())
    }));
    assert_eq!(rr.len(), 2);
    // A spawner outlives a run and can refill the queue.
    assert_eq!(rr.run(), 3);
    assert_eq!(take(&log), ["s0", "g0", "s1"]);
    spawner.spawn_fn(counter(&log, "t", 1));
    assert_eq!(rr.len(), 1);
    assert_eq!(rr.run(), 1);
    assert_eq!(take(&log), ["t0"]);
}

#[test]
fn yield_from_inside_a_task_interleaves_step_by_step() {
    let log = Log::default();
    let mut rr = RoundRobin::new();
    {
        let log = log.clone();
        rr.spawn_fn(move |y| {
            log.borrow_mut().push("a:start".into());
            let sub_log = log.clone();
            let sub = Generator::new(move |y: &Yielder<()>, ()| -> u32 {
                for i in 0..3 {
                    sub_log.borrow_mut().push(format!("s{i}"));
                    y.yield_(());
                }
                42
            });
            let r = y.yield_from(sub);
            log.borrow_mut().push(format!("a:end {r}"));
        });
    }
    {
        let log = log.clone();
        rr.spawn_fn(move |y| {
            for i in 0..4 {
                log.borrow_mut().push(format!("b{i}"));
                y.yield_(());
            }
        });
    }
    let mut per_step = Vec::new();
    while rr.step() {
        per_step.push(take(&log));
    }
    let expected: Vec<Vec<&str>> = vec![
        vec!["a:start", "s0"],
        vec!["b0"],
        vec!["s1"],
        vec!["b1"],
        vec!["s2"],
        vec!["b2"],
        vec!["a:end 42"],
        vec!["b3"],
        vec![],
    ];
    assert_eq!(per_step, expected);
    assert_eq!(rr.steps(), 9);
}

// ---------------------------------------------------------------------------
// panics
// ---------------------------------------------------------------------------

#[test]
fn a_panicking_task_propagates_out_of_run_and_the_rest_continue() {
    quiet_intentional_panics();
    let log = Log::default();
    let drops = Drops::new();
    let mut rr = RoundRobin::new();
    rr.spawn_fn(counter(&log, "a", 3));
    {
        let log = log.clone();
        let held = drops.token(0);
        rr.spawn_fn(move |y| {
            let _held = held;
            log.borrow_mut().push("p0".into());
            y.yield_(());
            log.borrow_mut().push("p1".into());
            panic!("{INTENTIONAL} task p");
        });
    }
    rr.spawn_fn(counter(&log, "c", 3));

    let err = catch_unwind(AssertUnwindSafe(|| rr.run())).expect_err("run propagates");
    assert!(
        panic_message(&err).contains("task p"),
        "{}",
        panic_message(&err)
    );
    assert_eq!(take(&log), ["a0", "p0", "c0", "a1", "p1"]);
    assert_eq!(drops.of(0), [1], "the panicked task is dropped, once");
    assert_eq!(rr.len(), 2, "the other tasks stay queued");
    assert_eq!(rr.steps(), 5);

    assert_eq!(rr.run(), 3);
    assert_eq!(take(&log), ["c1", "a2", "c2"]);
    assert!(rr.is_empty());
    assert_eq!(rr.steps(), 8);
    assert!(drops.all_dropped_once(), "{}", drops.report());
}

#[test]
fn a_panicking_task_propagates_out_of_step() {
    quiet_intentional_panics();
    let log = Log::default();
    let mut rr = RoundRobin::new();
    rr.spawn_fn(|_| panic!("{INTENTIONAL} at once"));
    rr.spawn_fn(counter(&log, "b", 2));
    let err = catch_unwind(AssertUnwindSafe(|| rr.step())).expect_err("step propagates");
    assert!(panic_message(&err).contains("at once"));
    assert_eq!(rr.len(), 1);
    assert!(rr.step());
    assert!(rr.step());
    assert!(!rr.step());
    assert_eq!(take(&log), ["b0", "b1"]);
}

// ---------------------------------------------------------------------------
// dropping the scheduler
// ---------------------------------------------------------------------------

#[test]
fn dropping_the_scheduler_unwinds_unfinished_tasks() {
    let drops = Drops::new();
    let base = stack_pool_stats().in_use;
    let mut rr = RoundRobin::new();
    for id in 0..3 {
        let captured = drops.token(id);
        let d = drops.clone();
        rr.spawn_fn(move |y| {
            let _captured = captured;
            let _local = d.token(id);
            loop {
                y.yield_(());
            }
        });
    }
    // Task 0 and 1 started, task 2 not.
    rr.step();
    rr.step();
    assert_eq!(drops.made(), 5);
    assert_eq!(drops.dropped(), 0);
    assert_eq!(stack_pool_stats().in_use, base + 3);
    drop(rr);
    assert!(drops.all_dropped_once(), "{}", drops.report());
    assert_eq!(stack_pool_stats().in_use, base);
}

// Regression: the queue is an `Rc` shared with every `Spawner`, so a
// suspended task that holds a `Spawner` (the documented way to spawn from
// inside a task) forms a reference cycle with the queue. Dropping the
// `RoundRobin` must still unwind it (its `Drop` empties the queue).
#[test]
fn dropping_the_scheduler_unwinds_tasks_that_hold_a_spawner() {
    let drops = Drops::new();
    let base = stack_pool_stats().in_use;
    let mut rr = RoundRobin::new();
    let spawner = rr.spawner();
    let held = drops.token(0);
    rr.spawn_fn(move |y| {
        let _held = held;
        let _spawner = spawner;
        loop {
            y.yield_(());
        }
    });
    rr.step();
    drop(rr);
    assert_eq!(
        drops.of(0),
        [1],
        "a suspended task holding a Spawner leaked when its RoundRobin was dropped"
    );
    assert_eq!(stack_pool_stats().in_use, base, "its stack leaked too");
}

#[test]
fn debug_impls() {
    let mut rr = RoundRobin::new();
    let s = rr.spawner();
    rr.spawn_fn(|_| {});
    let a = format!("{rr:?}");
    let b = format!("{s:?}");
    assert!(a.contains("RoundRobin"), "{a}");
    assert!(b.contains("Spawner"), "{b}");
    rr.run();
    assert_ne!(format!("{rr:?}"), a, "Debug should show progress");
}

// ---------------------------------------------------------------------------
// property: the order is exactly round-robin
// ---------------------------------------------------------------------------

/// A task: how many steps it logs, and which tasks it spawns at which step.
#[derive(Debug, Clone)]
struct Spec {
    steps: usize,
    /// `(step index, child)`, in the order they are spawned; the index is
    /// always `< steps`.
    spawns: Vec<(usize, Spec)>,
}

/// A spec with ids given in preorder, so that the model and the real run
/// name tasks the same way whatever order they run in.
#[derive(Debug)]
struct Node {
    id: usize,
    steps: usize,
    spawns: Vec<(usize, Rc<Node>)>,
}

fn number(spec: &Spec, next: &mut usize) -> Rc<Node> {
    let id = *next;
    *next += 1;
    let spawns = spec
        .spawns
        .iter()
        .map(|(at, child)| (*at, number(child, next)))
        .collect();
    Rc::new(Node {
        id,
        steps: spec.steps,
        spawns,
    })
}

fn spec_strategy() -> impl Strategy<Value = Spec> {
    let leaf = (0usize..6).prop_map(|steps| Spec {
        steps,
        spawns: Vec::new(),
    });
    leaf.prop_recursive(3, 16, 3, |inner| {
        (0usize..6, prop::collection::vec((0usize..6, inner), 0..3)).prop_map(|(steps, spawns)| {
            Spec {
                steps,
                spawns: if steps == 0 {
                    Vec::new()
                } else {
                    spawns
                        .into_iter()
                        .map(|(at, child)| (at % steps, child))
                        .collect()
                },
            }
        })
    })
}

type Entries = Rc<RefCell<Vec<(usize, usize)>>>;

/// The real task body. Step `i` (its `i`-th resume) starts by returning
/// from the yield that ended step `i - 1`, logs `(id, i)`, then spawns the
/// children due at step `i`; after the last step the body returns within
/// the same resume.
fn run_node(y: &Yielder<()>, node: &Node, log: &Entries, spawner: &Spawner) {
    for i in 0..node.steps {
        if i > 0 {
            y.yield_(());
        }
        log.borrow_mut().push((node.id, i));
        for (at, child) in &node.spawns {
            if *at == i {
                let (child, log, s) = (child.clone(), log.clone(), spawner.clone());
                spawner.spawn_fn(move |y| run_node(y, &child, &log, &s));
            }
        }
    }
}

/// Reference model: pop the front task, run one step (log, then append its
/// spawns), push it back unless that was its last step. The task being
/// stepped is out of the queue, so its spawns land ahead of it.
fn model(roots: &[Rc<Node>]) -> (Vec<(usize, usize)>, u64) {
    let mut queue: VecDeque<(Rc<Node>, usize)> = roots.iter().map(|n| (n.clone(), 0)).collect();
    let mut log = Vec::new();
    let mut resumes = 0;
    while let Some((node, i)) = queue.pop_front() {
        resumes += 1;
        if node.steps == 0 {
            continue; // one resume, runs to completion, logs nothing
        }
        log.push((node.id, i));
        for (at, child) in &node.spawns {
            if *at == i {
                queue.push_back((child.clone(), 0));
            }
        }
        if i + 1 < node.steps {
            queue.push_back((node, i + 1));
        }
    }
    (log, resumes)
}

proptest! {
    #[test]
    fn order_matches_the_round_robin_model(
        specs in prop::collection::vec(spec_strategy(), 0..5),
        via_step in any::<bool>(),
    ) {
        let mut next = 0;
        let roots: Vec<Rc<Node>> = specs.iter().map(|s| number(s, &mut next)).collect();
        let (expected, expected_resumes) = model(&roots);

        let base = stack_pool_stats().in_use;
        let log = Entries::default();
        let mut rr = RoundRobin::new();
        let spawner = rr.spawner();
        for root in &roots {
            let (root, log, s) = (root.clone(), log.clone(), spawner.clone());
            rr.spawn_fn(move |y| run_node(y, &root, &log, &s));
        }
        prop_assert_eq!(rr.len(), roots.len());
        let taken = if via_step {
            let mut n = 0;
            while rr.step() {
                n += 1;
            }
            n
        } else {
            rr.run()
        };
        prop_assert_eq!(&*log.borrow(), &expected);
        prop_assert_eq!(taken, expected_resumes);
        prop_assert_eq!(rr.steps(), expected_resumes);
        prop_assert!(rr.is_empty());
        prop_assert_eq!(stack_pool_stats().in_use, base);
    }
}

// ---------------------------------------------------------------------------
// property: every task's values are dropped exactly once
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Fate {
    /// Yields `k` times, then returns.
    Complete(usize),
    /// Yields `k` times, then panics.
    Panic(usize),
    /// Yields forever; still queued when the scheduler is dropped.
    Running,
}

#[derive(Debug, Clone, Copy)]
struct DropSpec {
    fate: Fate,
    /// Do the yields (and the panic) inside a sub-generator driven with
    /// `yield_from`, so unwinding crosses two coroutine stacks.
    nested: bool,
}

fn drop_spec_strategy() -> impl Strategy<Value = DropSpec> {
    let fate = prop_oneof![
        (0usize..5).prop_map(Fate::Complete),
        (0usize..5).prop_map(Fate::Panic),
        Just(Fate::Running),
    ];
    (fate, any::<bool>()).prop_map(|(fate, nested)| DropSpec { fate, nested })
}

/// One yield with a token held in a nested frame.
fn yield_holding(y: &Yielder<()>, drops: &Drops, id: usize) {
    let _held = drops.token(id);
    y.yield_(());
}

/// Yields as the fate says, then returns or panics. Tokens live on the
/// stack throughout.
fn live_out(y: &Yielder<()>, fate: Fate, drops: &Drops, id: usize) {
    let _local = drops.token(id);
    let yields = match fate {
        Fate::Complete(k) | Fate::Panic(k) => k,
        Fate::Running => usize::MAX,
    };
    for _ in 0..yields {
        yield_holding(y, drops, id);
    }
    if let Fate::Panic(_) = fate {
        panic!("{INTENTIONAL} task {id}");
    }
}

fn drop_task(id: usize, spec: DropSpec, drops: &Drops) -> impl FnOnce(&Yielder<()>) + 'static {
    let captured = drops.token(id);
    let drops = drops.clone();
    move |y| {
        let _captured = captured;
        let _outer = drops.token(id);
        if spec.nested {
            let sub_captured = drops.token(id);
            let d = drops.clone();
            y.yield_from(Generator::new(move |y: &Yielder<()>, ()| {
                let _sub_captured = sub_captured;
                live_out(y, spec.fate, &d, id);
            }));
        } else {
            live_out(y, spec.fate, &drops, id);
        }
    }
}

/// Which tasks have finished (completed or panicked) after `max_steps`
/// steps, and how many steps were taken.
fn finished_after(specs: &[DropSpec], max_steps: usize) -> (Vec<bool>, usize) {
    let mut queue: VecDeque<(usize, usize)> = (0..specs.len()).map(|id| (id, 0)).collect();
    let mut finished = vec![false; specs.len()];
    let mut steps = 0;
    while steps < max_steps {
        let Some((id, resumes)) = queue.pop_front() else {
            break;
        };
        steps += 1;
        let needed = match specs[id].fate {
            Fate::Complete(k) | Fate::Panic(k) => k + 1,
            Fate::Running => usize::MAX,
        };
        if resumes + 1 == needed {
            finished[id] = true;
        } else {
            queue.push_back((id, resumes + 1));
        }
    }
    (finished, steps)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn every_value_is_dropped_exactly_once(
        specs in prop::collection::vec(drop_spec_strategy(), 0..8),
        max_steps in 0usize..40,
    ) {
        quiet_intentional_panics();
        let base = stack_pool_stats().in_use;
        let drops = Drops::new();
        let mut rr = RoundRobin::new();
        for (id, spec) in specs.iter().enumerate() {
            rr.spawn_fn(drop_task(id, *spec, &drops));
        }
        let (finished, expected_steps) = finished_after(&specs, max_steps);

        let mut steps = 0;
        let mut panicked = Vec::new();
        while steps < max_steps {
            match catch_unwind(AssertUnwindSafe(|| rr.step())) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => panicked.push(panic_message(&e)),
            }
            steps += 1;
        }
        prop_assert_eq!(steps, expected_steps);
        prop_assert_eq!(rr.steps(), expected_steps as u64);
        for msg in &panicked {
            prop_assert!(msg.contains(INTENTIONAL), "unexpected panic: {}", msg);
        }
        let expected_panics = specs
            .iter()
            .zip(&finished)
            .filter(|(s, f)| **f && matches!(s.fate, Fate::Panic(_)))
            .count();
        prop_assert_eq!(panicked.len(), expected_panics);

        // Finished tasks dropped everything they held, exactly once;
        // unfinished ones dropped nothing they still hold (their per-step
        // tokens from earlier steps are gone, the current ones are not).
        for (id, done) in finished.iter().enumerate() {
            let counts = drops.of(id);
            if *done {
                prop_assert!(counts.iter().all(|&n| n == 1), "task {}: {:?}", id, counts);
            } else {
                prop_assert!(counts.iter().all(|&n| n <= 1), "task {}: {:?}", id, counts);
                prop_assert!(counts.contains(&0), "task {} holds nothing: {:?}", id, counts);
            }
        }
        let unfinished = finished.iter().filter(|f| !**f).count();
        prop_assert_eq!(rr.len(), unfinished);
        // Each unfinished task holds its stack (a nested one possibly two).
        let in_use = stack_pool_stats().in_use;
        prop_assert!(in_use >= base + unfinished, "{} < {} + {}", in_use, base, unfinished);
        prop_assert!(in_use <= base + 2 * unfinished, "{} > {} + 2 * {}", in_use, base, unfinished);

        drop(rr);
        prop_assert!(drops.all_dropped_once(), "{}", drops.report());
        prop_assert_eq!(stack_pool_stats().in_use, base);
    }
}
