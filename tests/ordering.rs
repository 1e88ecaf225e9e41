//! Scheduling order: the same as asyncio's for the equivalent program.
//!
//! Each test's expected log is what CPython 3.11 prints for the equivalent
//! asyncio program (checked with a virtual-clock `SelectorEventLoop`).

mod support;

use std::time::Duration;

use bucle::{EventLoop, Future, Task};
use support::{Drops, Log, ms, run_virtual, strs, vloop};

/// Spawned tasks go to the back of the ready queue and do not run until the
/// spawner suspends.
#[test]
fn spawn_appends_and_runs_only_after_the_spawner_suspends() {
    let log = Log::new();
    let l = log.clone();
    bucle::run(move || {
        for name in ["A", "B", "C"] {
            let l = l.clone();
            drop(bucle::spawn(move || l.push(name)));
        }
        l.push("main: spawned three");
        // Still nothing ran: spawning never switches.
        assert_eq!(l.len(), 1);
        bucle::yield_now();
        l.push("main: resumed");
    });
    assert_eq!(
        log.get(),
        strs(&["main: spawned three", "A", "B", "C", "main: resumed"])
    );
}

/// A task spawned by a task runs after every task that was already ready.
#[test]
fn spawn_from_a_task_goes_behind_the_already_ready_ones() {
    let log = Log::new();
    let l = log.clone();
    bucle::run(move || {
        let (l1, l2) = (l.clone(), l.clone());
        let a = bucle::spawn(move || {
            l1.push("A: start");
            let l3 = l1.clone();
            let c = bucle::spawn(move || l3.push("C (spawned by A)"));
            bucle::yield_now();
            l1.push("A: after yield");
            c.join().unwrap();
        });
        let b = bucle::spawn(move || {
            l2.push("B: start");
            bucle::yield_now();
            l2.push("B: after yield");
        });
        a.join().unwrap();
        b.join().unwrap();
    });
    // Queue after A's step: [B, C, A]; C is behind B although spawned first
    // by A, and A's yield puts A behind C.
    assert_eq!(
        log.get(),
        strs(&[
            "A: start",
            "B: start",
            "C (spawned by A)",
            "A: after yield",
            "B: after yield",
        ])
    );
}

/// `yield_now` moves the task to the back: three yielding tasks round-robin.
#[test]
fn yield_now_requeues_to_the_back() {
    let log = Log::new();
    let l = log.clone();
    bucle::run(move || {
        let tasks: Vec<Task<()>> = ["A", "B", "C"]
            .into_iter()
            .map(|name| {
                let l = l.clone();
                bucle::spawn(move || {
                    for i in 0..3 {
                        l.push(format!("{name}{i}"));
                        bucle::yield_now();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.join().unwrap();
        }
    });
    assert_eq!(
        log.get(),
        strs(&["A0", "B0", "C0", "A1", "B1", "C1", "A2", "B2", "C2"])
    );
}

/// Work appended during a batch runs in the next tick, after the timers
/// that expired in between: a callback that reschedules itself with
/// `call_soon` does not starve a due timer. asyncio prints
/// `c0 timer c1 c2 c3 c4 main woke`; a loop that ran the queue until empty
/// would print the timer after `c4`.
#[test]
fn tick_batches_call_soon_from_a_callback_runs_next_tick() {
    fn chain(l: Log, i: u32) {
        l.push(format!("c{i}"));
        if i < 4 {
            bucle::call_soon(move || chain(l, i + 1));
        }
    }
    let log = Log::new();
    let l = log.clone();
    run_virtual(move || {
        let l2 = l.clone();
        bucle::call_soon(move || chain(l2, 0));
        let l3 = l.clone();
        bucle::call_later(Duration::ZERO, move || l3.push("timer"));
        bucle::sleep(ms(1));
        l.push("main woke");
    });
    assert_eq!(
        log.get(),
        strs(&["c0", "timer", "c1", "c2", "c3", "c4", "main woke"])
    );
}

/// A timer due now is appended at the next tick's phase 2, behind the tasks
/// already ready, but ahead of what those tasks append.
#[test]
fn tick_batches_due_timer_joins_the_next_batch() {
    let log = Log::new();
    let l = log.clone();
    run_virtual(move || {
        let l2 = l.clone();
        bucle::call_later(Duration::ZERO, move || l2.push("timer"));
        for i in 0..3 {
            l.push(format!("main{i}"));
            bucle::yield_now();
        }
    });
    // Tick 1: main0 (registers the timer). Tick 2: [main] + timer → main1,
    // timer. Tick 3: main2.
    assert_eq!(log.get(), strs(&["main0", "main1", "timer", "main2"]));
}

/// Done callbacks run as their own queue entries, appended at the back in
/// registration order, before the joiner that registered after them; a task
/// already ready runs first.
#[test]
fn task_done_callbacks_and_joiner_wake_in_registration_order() {
    let log = Log::new();
    let l = log.clone();
    bucle::run(move || {
        let lt = l.clone();
        let target = bucle::spawn(move || {
            lt.push("target: step 1");
            bucle::yield_now();
            lt.push("target: finishing");
            7
        });
        let l1 = l.clone();
        target.add_done_callback(move |t| {
            assert!(t.is_done());
            l1.push("cb1");
        });
        let l2 = l.clone();
        target.add_done_callback(move |_| l2.push("cb2"));
        let lj = l.clone();
        let joiner = bucle::spawn(move || {
            lj.push("joiner: waiting");
            let v = target.join().unwrap();
            lj.push(format!("joiner: got {v}"));
        });
        let lb = l.clone();
        let bystander = bucle::spawn(move || {
            for i in 0..3 {
                lb.push(format!("bystander{i}"));
                bucle::yield_now();
            }
        });
        joiner.join().unwrap();
        bystander.join().unwrap();
    });
    assert_eq!(
        log.get(),
        strs(&[
            "target: step 1",
            "joiner: waiting",
            "bystander0",
            "target: finishing",
            // target finished: [bystander, cb1, cb2, joiner] appended in order
            "bystander1",
            "cb1",
            "cb2",
            "joiner: got 7",
            "bystander2",
        ])
    );
}

/// A future's waiting tasks and done callbacks are appended interleaved, in
/// the order they registered.
#[test]
fn future_waiters_and_callbacks_wake_interleaved_in_registration_order() {
    let log = Log::new();
    let l = log.clone();
    bucle::run(move || {
        let fut: Future<u32> = Future::new();
        let waiter = |name: &'static str| {
            let (l, f) = (l.clone(), fut.clone());
            bucle::spawn(move || {
                let v = f.wait().unwrap();
                l.push(format!("{name} got {v}"));
            })
        };
        let w1 = waiter("W1");
        bucle::yield_now(); // W1 registers
        let l1 = l.clone();
        fut.add_done_callback(move |f| l1.push(format!("cb1 sees {:?}", f.result())));
        let w2 = waiter("W2");
        bucle::yield_now(); // W2 registers
        let l2 = l.clone();
        fut.add_done_callback(move |_| l2.push("cb2"));
        let w3 = waiter("W3");
        bucle::yield_now();
        fut.set_result(5).unwrap();
        l.push("main: set");
        for w in [w1, w2, w3] {
            w.join().unwrap();
        }
    });
    assert_eq!(
        log.get(),
        strs(&[
            "main: set",
            "W1 got 5",
            "cb1 sees Some(Ok(5))",
            "W2 got 5",
            "cb2",
            "W3 got 5",
        ])
    );
}

/// Joining a finished task or waiting on a finished future returns at once,
/// without letting anyone else run.
#[test]
fn waiting_on_something_finished_does_not_suspend() {
    let log = Log::new();
    let l = log.clone();
    bucle::run(move || {
        let t = bucle::spawn(|| 1);
        support::yield_until(5, || t.is_done());
        let fut = Future::new();
        fut.set_result(2).unwrap();

        let lx = l.clone();
        let x = bucle::spawn(move || lx.push("X ran"));
        let a = t.join().unwrap();
        let b = fut.wait().unwrap();
        l.push(format!("main: {a} {b} without suspending"));
        x.join().unwrap();
    });
    assert_eq!(log.get(), strs(&["main: 1 2 without suspending", "X ran"]));
}

/// A sleep's timer wakes its task in two hops (timer → wake entry → task), a
/// `call_later` callback in one: with equal deadlines the callback runs
/// first even when the sleep's timer was registered first. CPython prints
/// the same three cases.
#[test]
fn sleep_wakes_in_two_hops_call_later_in_one() {
    let log = Log::new();
    let l = log.clone();
    run_virtual(move || {
        let sleeper = |name: &'static str| {
            let l = l.clone();
            bucle::spawn(move || {
                l.push(format!("{name} start"));
                bucle::sleep(Duration::from_secs(1));
                l.push(format!("{name} woke"));
            })
        };
        // 1. The sleep's timer first, then a call_later with the same deadline.
        let s = sleeper("s1");
        bucle::yield_now();
        let l1 = l.clone();
        bucle::call_later(Duration::from_secs(1), move || l1.push("callback1"));
        s.join().unwrap();

        // 2. The call_later first.
        let l2 = l.clone();
        bucle::call_later(Duration::from_secs(1), move || l2.push("callback2"));
        sleeper("s2").join().unwrap();

        // 3. A callback with the same deadline that itself calls call_soon:
        // its work lands behind the sleeper's second hop.
        let s = sleeper("s3");
        bucle::yield_now();
        let l3 = l.clone();
        bucle::call_later(Duration::from_secs(1), move || {
            let l4 = l3.clone();
            bucle::call_soon(move || l4.push("callback3 soon"));
        });
        s.join().unwrap();
        assert_eq!(bucle::time(), Duration::from_secs(3));
    });
    assert_eq!(
        log.get(),
        strs(&[
            "s1 start",
            "callback1",
            "s1 woke",
            "s2 start",
            "callback2",
            "s2 woke",
            "s3 start",
            "s3 woke",
            "callback3 soon",
        ])
    );
}

/// Timers with the same deadline fire in creation order; earlier deadlines
/// first whatever the creation order.
#[test]
fn timers_fire_in_deadline_then_creation_order() {
    let log = Log::new();
    let l = log.clone();
    run_virtual(move || {
        for (name, d) in [("a", 30), ("b", 10), ("c", 30), ("d", 10), ("e", 20)] {
            let l = l.clone();
            bucle::call_later(ms(d), move || l.push(format!("{name}@{:?}", bucle::time())));
        }
        let sleepers: Vec<_> = [("s30", 30), ("s10", 10)]
            .into_iter()
            .map(|(name, d)| {
                let l = l.clone();
                bucle::spawn(move || {
                    bucle::sleep(ms(d));
                    l.push(name);
                })
            })
            .collect();
        for s in sleepers {
            s.join().unwrap();
        }
    });
    assert_eq!(
        log.get(),
        strs(&[
            "b@10ms", "d@10ms", "s10", "e@20ms", "a@30ms", "c@30ms", "s30"
        ])
    );
}

/// `run_until_complete` stops one tick after main finishes: a task already
/// ready gets exactly one more step; then `bucle::run` cancels it and its
/// destructors run (asyncio prints `T0 main1 T1 main2 T2` and then runs the
/// task's `finally`).
#[test]
fn main_stops_one_tick_after_completion_and_leftovers_are_cancelled() {
    let log = Log::new();
    let drops = Drops::new();
    let (l, d) = (log.clone(), drops.clone());
    let value = bucle::run(move || {
        let lt = l.clone();
        let guard = d.logging(&l, "T finally");
        drop(bucle::spawn(move || {
            let _guard = guard;
            for i in 0..10 {
                lt.push(format!("T{i}"));
                bucle::yield_now();
            }
        }));
        bucle::yield_now();
        l.push("main1");
        bucle::yield_now();
        l.push("main2");
        "main's value"
    });
    assert_eq!(value, "main's value");
    assert_eq!(
        log.get(),
        strs(&["T0", "main1", "T1", "main2", "T2", "T finally"])
    );
    assert!(drops.all_dropped_once(), "{}", drops.report());
}

/// Fire-and-forget tasks spawned by main just before it returns get exactly
/// their first step under `bucle::run`, and are then cancelled.
#[test]
fn fire_and_forget_tasks_get_exactly_their_first_step() {
    let log = Log::new();
    let drops = Drops::new();
    let (l, d) = (log.clone(), drops.clone());
    let baseline = support::stacks_in_use();
    bucle::run(move || {
        for name in ["F1", "F2"] {
            let l = l.clone();
            let token = d.logging(&l, format!("{name} dropped"));
            drop(bucle::spawn(move || {
                let _token = token;
                l.push(format!("{name} step 1"));
                bucle::yield_now();
                l.push(format!("{name} step 2 (must not happen)"));
            }));
        }
    });
    assert_eq!(
        log.get(),
        strs(&["F1 step 1", "F2 step 1", "F1 dropped", "F2 dropped"])
    );
    assert!(drops.all_dropped_once(), "{}", drops.report());
    assert_eq!(support::stacks_in_use(), baseline);
}

fn seeded_order(seed: Option<u64>) -> Vec<String> {
    let mut b = EventLoop::builder().virtual_time();
    if let Some(s) = seed {
        b = b.seed(s);
    }
    let lp = b.build();
    let log = Log::new();
    let l = log.clone();
    lp.run_until_complete(move || {
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let l = l.clone();
                bucle::spawn(move || {
                    for round in 0..3 {
                        l.push(format!("t{i}.{round}"));
                        bucle::yield_now();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.join().unwrap();
        }
    });
    log.get()
}

#[test]
fn default_order_is_strict_fifo() {
    let expected: Vec<String> = (0..3)
        .flat_map(|round| (0..8).map(move |i| format!("t{i}.{round}")))
        .collect();
    assert_eq!(seeded_order(None), expected);
}

#[test]
fn seeded_mode_is_reproducible_and_seed_dependent() {
    let fifo = seeded_order(None);
    let a = seeded_order(Some(42));
    assert_eq!(a, seeded_order(Some(42)), "same seed, same order");
    let mut sorted = a.clone();
    sorted.sort();
    let mut fifo_sorted = fifo.clone();
    fifo_sorted.sort();
    assert_eq!(sorted, fifo_sorted, "the same events, permuted");
    let orders: std::collections::HashSet<Vec<String>> =
        (1..=8).map(|s| seeded_order(Some(s))).collect();
    assert!(
        orders.len() > 1,
        "different seeds should give different orders"
    );
    assert!(
        orders.iter().any(|o| *o != fifo),
        "seeded mode should permute the FIFO order"
    );
}

/// Seeded mode only permutes within a tick: a task's own steps stay in
/// order and no step moves across a tick boundary.
#[test]
fn seeded_mode_permutes_only_within_a_tick() {
    for seed in 1..=5 {
        let order = seeded_order(Some(seed));
        for round in 0..3 {
            let tick = &order[round * 8..(round + 1) * 8];
            assert!(
                tick.iter().all(|e| e.ends_with(&format!(".{round}"))),
                "seed {seed}: round {round} leaked across ticks: {order:?}"
            );
        }
    }
}

/// The virtual clock keeps the real clock's order: many sleepers finish in
/// deadline order, instantly.
#[test]
fn virtual_clock_wakes_sleepers_in_deadline_order() {
    let lp = vloop();
    let log = Log::new();
    let l = log.clone();
    let start = std::time::Instant::now();
    lp.run_until_complete(move || {
        let tasks: Vec<_> = [5u64, 3, 9, 1, 7]
            .into_iter()
            .map(|h| {
                let l = l.clone();
                bucle::spawn(move || {
                    bucle::sleep(Duration::from_secs(3600 * h));
                    l.push(format!("{h}h"));
                })
            })
            .collect();
        for t in tasks {
            t.join().unwrap();
        }
        assert_eq!(bucle::time(), Duration::from_secs(9 * 3600));
    });
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(log.get(), strs(&["1h", "3h", "5h", "7h", "9h"]));
}

/// Found by a differential run against CPython: `t0` joins `t1`; `t1`,
/// while running, cancels `t0` and then panics. asyncio forwards `t0`'s
/// cancel to `t1` (which is marked to be cancelled at its next suspension)
/// and does not cancel `t0` itself; `t1` ends with its exception, so `t0`'s
/// `await t1` raises it and `t0` goes on. CPython 3.11 prints:
///
/// ```text
/// t0 got t1 error: boom
/// t0 done
/// t0 cancelled? False
/// ```
#[test]
fn a_cancel_forwarded_to_a_joined_task_that_then_panics_leaves_the_joiner_running() {
    use bucle::JoinError;
    let log = Log::new();
    let l = log.clone();
    run_virtual(move || {
        let t0 = {
            let l = l.clone();
            bucle::spawn(move || {
                let me = bucle::current_task().unwrap();
                let t1 = bucle::spawn(move || {
                    assert!(me.cancel(), "t0 is waiting: the cancel is taken");
                    std::panic::resume_unwind(Box::new("boom"));
                });
                match t1.join() {
                    Err(JoinError::Panicked(msg)) => l.push(format!("t0 got t1 error: {msg}")),
                    other => l.push(format!("t0 got {other:?}")),
                }
                bucle::yield_now(); // still running: no cancel is pending
                l.push("t0 done");
            })
        };
        let r = t0.join();
        l.push(format!("t0 cancelled? {}", r.is_err()));
    });
    assert_eq!(
        log.take(),
        strs(&["t0 got t1 error: boom", "t0 done", "t0 cancelled? false"])
    );
}
