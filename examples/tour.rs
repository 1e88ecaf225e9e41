//! A guided tour of every stage of `bucle` that exists so far, one function
//! per stage, each printing a few short demonstrations.
//!
//! Run it with `cargo run --release --example tour`. Each stage's chapter is
//! named in its header; the stories themselves are the numbered examples
//! (`cargo run --example 01_generators`, ...).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use bucle::{DEFAULT_STACK_SIZE, Generator, GeneratorState, RoundRobin, Yielder, stack_pool_stats};

fn main() {
    stage_1_generators();
    stage_2_round_robin();
    println!();
    println!("End of the tour (stages 1-2 so far). Every stage's stories: see README.md.");
}

/// Prints a stage header.
fn header(stage: u32, title: &str, module: &str, chapter: &str, example: &str) {
    println!();
    println!("=== Stage {stage}: {title} ===");
    println!("    module {module}, chapter {chapter}, story: cargo run --example {example}");
    println!();
}

/// Stage 1: a function that pauses at each `yield_` and is resumed later.
fn stage_1_generators() {
    header(
        1,
        "stackful generators",
        "bucle::generator",
        "docs/01-generators.md",
        "01_generators",
    );

    println!("-- building a generator runs nothing; each next() runs to the next yield");
    let mut countdown = Generator::new(|y: &Yielder<u32>, ()| {
        println!("   (body starts)");
        for n in (1..=3).rev() {
            y.yield_(n);
        }
        println!("   (body ends)");
    });
    println!("   built; started = {}", countdown.is_started());
    for n in countdown.by_ref() {
        println!("   next() -> {n}");
    }
    println!("   next() -> None: complete = {}", countdown.is_complete());

    println!("-- stackful: a recursive helper yields from any depth, no `yield from` needed");
    fn hanoi(y: &Yielder<String>, n: u32, from: char, to: char, via: char) {
        if n > 0 {
            hanoi(y, n - 1, from, via, to);
            y.yield_(format!("disk {n}: {from} -> {to}"));
            hanoi(y, n - 1, via, to, from);
        }
    }
    let moves = Generator::new(|y: &Yielder<String>, ()| hanoi(y, 3, 'A', 'C', 'B'));
    println!("   hanoi(3): {}", moves.collect::<Vec<_>>().join(", "));

    println!("-- resume(v) is Python's send(v); the return value is Complete(r)");
    let mut average = Generator::new(|y: &Yielder<f64, Option<f64>>, _first| {
        let (mut sum, mut count) = (0.0, 0u32);
        while let Some(x) = y.yield_(if count == 0 { 0.0 } else { sum / count as f64 }) {
            sum += x;
            count += 1;
        }
        count
    });
    average.resume(None);
    for x in [10.0, 20.0, 60.0] {
        if let GeneratorState::Yielded(avg) = average.resume(Some(x)) {
            println!("   send({x}) -> running average {avg}");
        }
    }
    println!("   send(None) -> {:?}", average.resume(None));

    println!("-- dropping a paused generator unwinds it: destructors run, like `finally`");
    struct Noisy;
    impl Drop for Noisy {
        fn drop(&mut self) {
            println!("   Noisy dropped inside the generator");
        }
    }
    let mut paused = Generator::new(|y: &Yielder<()>, ()| {
        let _noisy = Noisy;
        y.yield_(());
        unreachable!("never resumed again");
    });
    paused.next();
    println!("   paused at its first yield; dropping it");
    drop(paused);

    println!(
        "-- stacks: {} KiB each, guard page below, recycled by a per-thread pool",
        { DEFAULT_STACK_SIZE / 1024 }
    );
    let before = stack_pool_stats();
    let n = 100_000u64;
    let start = Instant::now();
    let mut total = 0;
    for i in 0..n {
        let g = Generator::new(move |y: &Yielder<u64>, ()| y.yield_(i));
        total += g.sum::<u64>(); // runs it to completion
    }
    let finished = start.elapsed();
    let start = Instant::now();
    for i in 0..n {
        let mut g = Generator::new(move |y: &Yielder<u64>, ()| y.yield_(i));
        total += g.next().unwrap_or(0);
        drop(g); // still paused: dropping it unwinds its stack
    }
    let unwound = start.elapsed();
    let after = stack_pool_stats();
    let each = |d: std::time::Duration| d.as_nanos() as f64 / n as f64;
    println!(
        "   {n} generators created, run to completion and dropped: {:.0} ns each",
        each(finished)
    );
    println!(
        "   {n} more dropped while paused (a real unwind): {:.0} ns each (checksum {total})",
        each(unwound)
    );
    println!(
        "   stacks mapped from the OS meanwhile: {}; pooled now: {}",
        after.mapped - before.mapped,
        after.pooled
    );
}

/// Stage 2: a FIFO queue of generators, each resumed once in turn.
fn stage_2_round_robin() {
    header(
        2,
        "round-robin scheduler",
        "bucle::round_robin",
        "docs/02-round-robin.md",
        "02_round_robin",
    );

    println!("-- three tasks take turns; each yield_(()) hands the turn to the next");
    let mut rr = RoundRobin::new();
    for (name, steps) in [("twitter", 3), ("facebook", 2), ("mail", 1)] {
        rr.spawn_fn(move |y| {
            for step in 1..=steps {
                println!("   {name} {step}/{steps}");
                y.yield_(());
            }
        });
    }
    println!("   run() took {} steps", rr.run());

    println!("-- a task spawns a task: it goes to the back of the queue");
    let mut rr = RoundRobin::new();
    let spawner = rr.spawner();
    rr.spawn_fn(move |y| {
        println!("   parent: spawning a child");
        spawner.spawn_fn(|y| {
            println!("   child: first turn");
            y.yield_(());
            println!("   child: second turn");
        });
        println!("   parent: the child has not run yet");
        y.yield_(());
        println!("   parent: done");
    });
    println!("   run() took {} steps", rr.run());

    println!("-- what is missing: no waiting; a task can only yield, so `sleep` spins");
    let log = Rc::new(RefCell::new(0u64));
    let mut rr = RoundRobin::new();
    let spins = log.clone();
    rr.spawn_fn(move |y| {
        let deadline = Instant::now() + std::time::Duration::from_millis(2);
        while Instant::now() < deadline {
            *spins.borrow_mut() += 1;
            y.yield_(());
        }
    });
    rr.run();
    println!(
        "   a 2 ms busy \"sleep\" took {} useless turns (chapter 4 adds timers)",
        log.borrow()
    );

    println!("-- switching cost: 1000 tasks x 1000 yields");
    let mut rr = RoundRobin::new();
    for _ in 0..1000 {
        rr.spawn_fn(|y| {
            for _ in 0..1000 {
                y.yield_(());
            }
        });
    }
    let start = Instant::now();
    let steps = rr.run();
    let elapsed = start.elapsed();
    println!(
        "   {steps} steps in {:.1} ms: {:.1} ns per step",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_nanos() as f64 / steps as f64
    );
}
