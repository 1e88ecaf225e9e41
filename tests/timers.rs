//! Stage 4: sleeps and timer callbacks. The order and timing of sleeps,
//! `call_later` and `call_at`, cancellation of timer handles, the count of
//! live timers (lazy cancellation must not leave live ones behind), and on
//! the real clock: lower bounds only, and no spinning while waiting.

mod timer_support;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bucle::{
    EventLoop, call_at, call_later, pending_timers, sleep, sleep_until, spawn, time, timeout,
    yield_now,
};
use timer_support::{Drops, Log, ms, rrun, secs, thread_cpu_time, vrun};

// -------------------------------------------------------------------------
// Sleeping on the virtual clock.

#[test]
fn sleep_wakes_at_the_exact_loop_time_on_the_virtual_clock() {
    let times = vrun(|| {
        let mut times = vec![time()];
        sleep(ms(1500));
        times.push(time());
        sleep(Duration::from_nanos(1));
        times.push(time());
        sleep(secs(3600));
        times.push(time());
        times
    });
    assert_eq!(
        times,
        [
            Duration::ZERO,
            ms(1500),
            ms(1500) + Duration::from_nanos(1),
            ms(1500) + Duration::from_nanos(1) + secs(3600),
        ]
    );
}

#[test]
fn concurrent_sleepers_wake_at_their_own_deadlines() {
    let log = vrun(|| {
        let log = Log::new();
        let tasks: Vec<_> = [30u64, 10, 20]
            .into_iter()
            .map(|d| {
                let log = log.clone();
                spawn(move || {
                    sleep(ms(d));
                    log.push(format!("{d}@{:?}", time()));
                })
            })
            .collect();
        for t in tasks {
            t.join().unwrap();
        }
        assert_eq!(time(), ms(30));
        log.snapshot()
    });
    assert_eq!(log, ["10@10ms", "20@20ms", "30@30ms"]);
}

#[test]
fn equal_deadlines_fire_in_creation_order() {
    let log = vrun(|| {
        let log = Log::new();
        // Created in the order 0..8, all due at 5 s, alternating sleeps in
        // tasks and plain callbacks.
        let mut tasks = Vec::new();
        for i in 0..8 {
            let log = log.clone();
            if i % 2 == 0 {
                tasks.push(spawn(move || {
                    sleep(secs(5));
                    log.push(format!("task{i}"));
                }));
            } else {
                call_at(secs(5), move || log.push(format!("cb{i}")));
            }
        }
        // Let every task register its sleep (they start in spawn order).
        yield_now();
        for t in tasks {
            t.join().unwrap();
        }
        log.snapshot()
    });
    // A sleep wakes in two hops (the timer's wake entry, then the task's
    // step), a callback in one: so the callbacks all run in the tick where
    // the timers expire, in creation order, and the tasks in the next, in
    // creation order.
    assert_eq!(
        log,
        [
            "cb1", "cb3", "cb5", "cb7", "task0", "task2", "task4", "task6"
        ]
    );
}

#[test]
fn equal_deadline_sleeps_wake_in_the_order_they_started_sleeping() {
    let log = vrun(|| {
        let log = Log::new();
        // Spawned in the order a, b, c, but c starts sleeping first.
        let mk = |name: &'static str, pre_yields: usize| {
            let log = log.clone();
            spawn(move || {
                for _ in 0..pre_yields {
                    yield_now();
                }
                sleep_until(secs(1));
                log.push(name);
            })
        };
        let a = mk("a", 2);
        let b = mk("b", 1);
        let c = mk("c", 0);
        for t in [a, b, c] {
            t.join().unwrap();
        }
        log.snapshot()
    });
    assert_eq!(log, ["c", "b", "a"]);
}

#[test]
fn call_later_and_call_at_fire_in_deadline_then_creation_order() {
    let log = vrun(|| {
        let log = Log::new();
        let l = log.clone();
        let push = move |name: &'static str| {
            let l = l.clone();
            move || l.push(format!("{name}@{:?}", time()))
        };
        call_later(ms(30), push("later30"));
        call_at(ms(10), push("at10"));
        call_later(ms(20), push("later20a"));
        call_at(ms(20), push("at20"));
        call_later(ms(20), push("later20b"));
        call_at(ms(5), push("at5"));
        assert_eq!(pending_timers(), 6);
        sleep(ms(40));
        assert_eq!(pending_timers(), 0);
        log.snapshot()
    });
    assert_eq!(
        log,
        [
            "at5@5ms",
            "at10@10ms",
            "later20a@20ms",
            "at20@20ms",
            "later20b@20ms",
            "later30@30ms"
        ]
    );
}

#[test]
fn callbacks_and_sleeps_interleave_by_deadline() {
    let log = vrun(|| {
        let log = Log::new();
        let sleeper = {
            let log = log.clone();
            spawn(move || {
                for _ in 0..3 {
                    sleep(ms(10));
                    log.push(format!("sleeper@{:?}", time()));
                }
            })
        };
        // Let the sleeper register its first sleep (due at 10 ms) before the
        // callbacks are created.
        yield_now();
        for at in [5u64, 10, 15, 20, 25] {
            let log = log.clone();
            call_at(ms(at), move || log.push(format!("cb@{:?}", time())));
        }
        sleeper.join().unwrap();
        log.snapshot()
    });
    // At 10 ms the sleeper's timer is older than the callback's, yet the
    // callback runs first: the sleep's wake takes one more hop (asyncio's
    // sleep future resolves, then the task step is scheduled).
    assert_eq!(
        log,
        [
            "cb@5ms",
            "cb@10ms",
            "sleeper@10ms",
            "cb@15ms",
            "cb@20ms",
            "sleeper@20ms",
            "cb@25ms",
            "sleeper@30ms"
        ]
    );
}

#[test]
fn a_callback_beats_a_sleep_with_the_same_deadline_whichever_was_created_first() {
    // Chapter 4's rule: a sleep wakes through one more ready-queue hop than
    // a callback, so among equal deadlines every callback runs before the
    // sleeper, whether it was created before or after the sleep began.
    let log = vrun(|| {
        let log = Log::new();
        let l = log.clone();
        call_later(secs(1), move || l.push("callback created before the sleep"));
        let l = log.clone();
        let sleeper = spawn(move || {
            sleep(secs(1));
            l.push("sleeper");
        });
        yield_now(); // the sleeper's timer is in the heap now
        let l = log.clone();
        call_later(secs(1), move || l.push("callback created after the sleep"));
        sleeper.join().unwrap();
        log.snapshot()
    });
    assert_eq!(
        log,
        [
            "callback created before the sleep",
            "callback created after the sleep",
            "sleeper"
        ]
    );
}

#[test]
fn eventloop_call_later_before_running_counts_from_loop_creation() {
    let lp = EventLoop::builder().virtual_time().build();
    let fired = Rc::new(Cell::new(None));
    let f = fired.clone();
    let h = lp.call_later(secs(2), move || f.set(Some(bucle::time())));
    assert_eq!(h.when(), Some(secs(2)));
    assert_eq!(lp.time(), Duration::ZERO);
    let end = lp.run_until_complete(|| {
        sleep(secs(3));
        time()
    });
    assert_eq!(fired.get(), Some(secs(2)));
    assert_eq!(end, secs(3));
    assert_eq!(lp.time(), secs(3));
}

// -------------------------------------------------------------------------
// Handles.

#[test]
fn cancelling_a_handle_before_it_fires_prevents_it() {
    let (ran, was_pending, again, cancelled, when) = vrun(|| {
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let h = call_later(secs(1), move || r.set(true));
        let when = h.when();
        let was_pending = h.cancel();
        let again = h.cancel();
        assert_eq!(pending_timers(), 0, "a cancelled handle is not live");
        sleep(secs(2));
        (ran.get(), was_pending, again, h.is_cancelled(), when)
    });
    assert!(!ran, "a cancelled callback ran");
    assert!(was_pending, "cancel before firing must return true");
    assert!(!again, "a second cancel must return false");
    assert!(cancelled);
    assert_eq!(when, Some(secs(1)));
}

#[test]
fn cancelling_a_handle_after_it_fired_returns_false() {
    let (ran, result, cancelled) = vrun(|| {
        let ran = Rc::new(Cell::new(0));
        let r = ran.clone();
        let h = call_at(secs(1), move || r.set(r.get() + 1));
        sleep(secs(1));
        sleep(secs(1));
        (ran.get(), h.cancel(), h.is_cancelled())
    });
    assert_eq!(ran, 1);
    assert!(!result, "cancel after firing must return false");
    assert!(!cancelled);
}

#[test]
fn a_cancelled_handle_drops_its_callback_at_once() {
    let drops = Drops::new();
    let d = drops.clone();
    vrun(move || {
        let g = d.guard();
        let h = call_later(secs(3600), move || drop(g));
        assert_eq!(d.alive(), 1);
        assert!(h.cancel());
        assert_eq!(
            d.alive(),
            0,
            "the cancelled callback (and what it owns) must be freed"
        );
    });
    assert_eq!(drops.dropped(), 1);
}

#[test]
fn a_handle_cancelled_from_another_callback_in_the_same_tick_does_not_run() {
    let log = vrun(|| {
        let log = Log::new();
        let second: Rc<Cell<Option<bucle::Handle>>> = Rc::new(Cell::new(None));
        let (l, s) = (log.clone(), second.clone());
        call_at(secs(1), move || {
            l.push("first");
            let h = s.take().expect("second handle");
            l.push(format!("cancel={}", h.cancel()));
        });
        let l = log.clone();
        second.set(Some(call_at(secs(1), move || l.push("second"))));
        sleep(secs(2));
        log.snapshot()
    });
    assert_eq!(log, ["first", "cancel=true"]);
}

// -------------------------------------------------------------------------
// Zero and past deadlines.

#[test]
fn sleep_zero_is_a_yield() {
    let log = vrun(|| {
        let log = Log::new();
        let other = {
            let log = log.clone();
            spawn(move || {
                log.push("b1");
                log.push(format!("timers={}", pending_timers()));
                yield_now();
                log.push("b2");
            })
        };
        log.push("a1");
        sleep(Duration::ZERO);
        log.push("a2");
        sleep(Duration::ZERO);
        log.push(format!("a3@{:?}", time()));
        other.join().unwrap();
        log.snapshot()
    });
    assert_eq!(log, ["a1", "b1", "timers=0", "a2", "b2", "a3@0ns"]);
}

#[test]
fn sleep_until_a_past_deadline_still_yields() {
    let log = vrun(|| {
        sleep(secs(5));
        let log = Log::new();
        let other = {
            let log = log.clone();
            spawn(move || log.push("other"))
        };
        log.push("before");
        sleep_until(secs(1));
        log.push(format!("after@{:?}", time()));
        other.join().unwrap();
        log.snapshot()
    });
    assert_eq!(log, ["before", "other", "after@5s"]);
}

#[test]
fn sleep_until_now_still_yields() {
    let log = vrun(|| {
        let log = Log::new();
        let other = {
            let log = log.clone();
            spawn(move || log.push("other"))
        };
        log.push("before");
        sleep_until(time());
        log.push("after");
        other.join().unwrap();
        log.snapshot()
    });
    assert_eq!(log, ["before", "other", "after"]);
}

#[test]
fn call_at_a_past_deadline_is_appended_after_the_ready_work() {
    let log = vrun(|| {
        sleep(secs(5));
        let log = Log::new();
        let l = log.clone();
        call_at(secs(1), move || l.push(format!("cb@{:?}", time())));
        log.push("scheduled");
        yield_now();
        log.push("after one yield");
        yield_now();
        log.push("after two");
        log.snapshot()
    });
    // As in asyncio: the next tick appends the expired timer behind the
    // task that was already ready, so the callback runs right after it.
    assert_eq!(log, ["scheduled", "after one yield", "cb@5s", "after two"]);
}

// -------------------------------------------------------------------------
// Live timer counts.

#[test]
fn pending_timers_counts_live_sleeps_and_drops_when_sleepers_are_cancelled() {
    let drops = Drops::new();
    let d = drops.clone();
    vrun(move || {
        assert_eq!(pending_timers(), 0);
        let tasks: Vec<_> = (1..=3u64)
            .map(|i| {
                let g = d.guard();
                spawn(move || {
                    let _g = g;
                    sleep(secs(100 * i));
                })
            })
            .collect();
        yield_now(); // every task is now asleep
        assert_eq!(pending_timers(), 3);
        assert!(tasks[1].cancel());
        // Lazy cancellation: the heap entry may linger, but it is not live.
        assert_eq!(
            pending_timers(),
            2,
            "a cancelled sleep's timer is still live"
        );
        let h = call_later(secs(1), || {});
        assert_eq!(pending_timers(), 3);
        assert!(h.cancel());
        assert_eq!(pending_timers(), 2);
        let mut tasks = tasks.into_iter();
        let (a, b, c) = (
            tasks.next().unwrap(),
            tasks.next().unwrap(),
            tasks.next().unwrap(),
        );
        assert_eq!(b.join(), Err(bucle::JoinError::Cancelled));
        assert_eq!(d.dropped(), 1, "the cancelled sleeper unwound");
        assert_eq!(time(), Duration::ZERO, "cancelling needs no time to pass");
        assert_eq!(pending_timers(), 2);
        c.cancel();
        a.join().unwrap();
        assert_eq!(time(), secs(100));
        assert_eq!(pending_timers(), 0);
        assert_eq!(c.join(), Err(bucle::JoinError::Cancelled));
        assert_eq!(pending_timers(), 0);
    });
    assert_eq!(drops.made(), 3);
    assert_eq!(drops.dropped(), 3);
}

#[test]
fn a_cancelled_sleeper_does_not_keep_the_virtual_clock_waiting() {
    // If the dead timer of a cancelled hour-long sleep still counted, the
    // loop would jump to it before finishing.
    let end = vrun(|| {
        let t = spawn(|| sleep(secs(3600)));
        yield_now();
        t.cancel();
        let _ = t.join();
        sleep(secs(1));
        time()
    });
    assert_eq!(end, secs(1));
}

#[test]
fn timeouts_that_never_fire_leave_no_live_timers_and_cost_little() {
    let started = Instant::now();
    vrun(|| {
        for i in 0..10_000u32 {
            let v = timeout(secs(3600), || i);
            assert_eq!(v, Ok(i));
            if i % 100 == 0 {
                assert_eq!(pending_timers(), 0, "after {i} timeouts");
            }
        }
        assert_eq!(pending_timers(), 0);
        assert_eq!(time(), Duration::ZERO);
    });
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "10,000 unfired timeouts took {:?}",
        started.elapsed()
    );
}

#[test]
fn dead_timeout_timers_are_compacted_away() {
    // Each task opens a timeout that never fires, then finishes with an
    // unretrieved result. A timer entry that lingers in the heap keeps its
    // task (and so that result) alive; compaction must free them long before
    // the loop closes.
    const TASKS: usize = 2_000;
    let drops = Drops::new();
    let d = drops.clone();
    let alive_in_loop = vrun(move || {
        for _ in 0..TASKS {
            let g = d.guard();
            let t = spawn(move || {
                timeout(secs(3600), || ()).unwrap();
                g
            });
            drop(t); // detach: the result is never taken
        }
        // Let them all run and finish.
        yield_now();
        yield_now();
        assert_eq!(pending_timers(), 0);
        d.alive()
    });
    assert!(
        alive_in_loop <= TASKS / 4,
        "{alive_in_loop} of {TASKS} finished tasks are still kept alive by dead timer entries"
    );
    assert_eq!(drops.alive(), 0);
}

#[test]
fn dead_sleep_timers_are_compacted_away() {
    // Same as above with interrupted sleeps: each task's hour-long sleep is
    // cut short by a timeout, leaving a dead sleep entry that refers to the
    // task, which then finishes with an unretrieved result.
    const TASKS: usize = 2_000;
    let drops = Drops::new();
    let d = drops.clone();
    let (alive_in_loop, end) = vrun(move || {
        for _ in 0..TASKS {
            let g = d.guard();
            drop(spawn(move || {
                timeout(secs(1), || sleep(secs(3600))).unwrap_err();
                g
            }));
        }
        yield_now();
        assert_eq!(
            pending_timers(),
            2 * TASKS,
            "a sleep and a timeout per task"
        );
        sleep(secs(2));
        assert_eq!(pending_timers(), 0);
        (d.alive(), time())
    });
    assert_eq!(end, secs(2), "the clock must not jump to a dead timer");
    assert!(
        alive_in_loop <= TASKS / 4,
        "{alive_in_loop} of {TASKS} finished tasks are still kept alive by dead timer entries"
    );
    assert_eq!(drops.alive(), 0);
}

// -------------------------------------------------------------------------
// The real clock: lower bounds only.

#[test]
fn real_sleep_lasts_at_least_its_duration() {
    rrun(|| {
        for d in [ms(1), ms(15), ms(30)] {
            let t0 = Instant::now();
            let loop_t0 = time();
            sleep(d);
            let slept = t0.elapsed();
            assert!(slept >= d, "sleep({d:?}) returned after {slept:?}");
            assert!(time() - loop_t0 >= d, "loop time advanced less than {d:?}");
        }
    });
}

#[test]
fn real_call_later_fires_no_earlier_than_its_delay() {
    let (t0, fired) = rrun(|| {
        let fired = Rc::new(Cell::new(None));
        let f = fired.clone();
        let t0 = Instant::now();
        let h = call_later(ms(20), move || f.set(Some(Instant::now())));
        assert!(h.when().unwrap() >= ms(20));
        sleep(ms(40));
        (t0, fired.get())
    });
    let fired = fired.expect("the callback never ran");
    assert!(fired - t0 >= ms(20), "fired after {:?}", fired - t0);
}

#[test]
fn real_loop_time_is_monotonic_and_covers_the_sleep() {
    rrun(|| {
        let a = time();
        sleep(ms(5));
        let b = time();
        yield_now();
        let c = time();
        assert!(b >= a + ms(5));
        assert!(c >= b);
    });
}

#[test]
fn the_loop_blocks_instead_of_spinning_while_waiting_for_a_timer() {
    let Some(cpu0) = thread_cpu_time() else {
        eprintln!("skipped: /proc/thread-self/stat is unavailable");
        return;
    };
    let wall0 = Instant::now();
    rrun(|| {
        // A task waiting too, so the loop has more than one thing pending.
        let t = spawn(|| sleep(ms(100)));
        sleep(ms(200));
        t.join().unwrap();
    });
    let wall = wall0.elapsed();
    let cpu = thread_cpu_time().unwrap() - cpu0;
    assert!(wall >= ms(200), "slept only {wall:?}");
    assert!(
        cpu < ms(50),
        "the loop used {cpu:?} of CPU while waiting {wall:?} for timers: it spins"
    );
}
