//! `bucle::sync`: Lock, Semaphore, BoundedSemaphore, Event, Condition.
//!
//! Behaviour, the fast path (no suspension when nothing is contended), the
//! exact wake-up order CPython's `asyncio/locks.py` (3.12/3.13) produces —
//! each ordering test carries the Python program it was checked against and
//! the list CPython 3.13 printed — guards and permits given back when their
//! task is cancelled or panics, and the names in a deadlock report.

mod common;

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use bucle::sync::{BoundedSemaphore, Condition, Event, Lock, Semaphore, TooManyReleases};
use bucle::{EventLoop, JoinError, sleep, spawn, stack_pool_stats, time, timeout, yield_now};
use common::drops::Drops;
use common::sync_support::{
    Log, OnCancel, deadlock_message, expect_panic, join_all, lines, secs, vrun,
};

// -------------------------------------------------------------------------
// Helpers.

// -------------------------------------------------------------------------
// Lock.

/// The seed story (5.7.1): workers A and B share a lock.
///
/// ```python
/// async def worker(name, lock):
///     print(f"Trabajador {name} está intentando adquirir el lock...")
///     async with lock:
///         print(f"Trabajador {name} ha adquirido el lock.")
///         await asyncio.sleep(2)
///     print(f"Trabajador {name} ha liberado el lock.")
///
/// async def main():
///     lock = asyncio.Lock()
///     await asyncio.gather(worker("A", lock), worker("B", lock))
/// ```
#[test]
fn lock_story_prints_what_cpython_prints() {
    let out = vrun(|| {
        let log = Log::default();
        let lock = Lock::new();
        let workers: Vec<_> = ["A", "B"]
            .into_iter()
            .map(|name| {
                let (log, lock) = (log.clone(), lock.clone());
                spawn(move || {
                    log.push(format!(
                        "Trabajador {name} está intentando adquirir el lock..."
                    ));
                    {
                        let _guard = lock.acquire();
                        log.push(format!("Trabajador {name} ha adquirido el lock."));
                        sleep(secs(2));
                    }
                    log.push(format!("Trabajador {name} ha liberado el lock."));
                })
            })
            .collect();
        bucle::gather(workers).unwrap();
        assert_eq!(time(), secs(4));
        log.lines()
    });
    assert_eq!(
        out,
        lines(&[
            "Trabajador A está intentando adquirir el lock...",
            "Trabajador A ha adquirido el lock.",
            "Trabajador B está intentando adquirir el lock...",
            "Trabajador A ha liberado el lock.",
            "Trabajador B ha adquirido el lock.",
            "Trabajador B ha liberado el lock.",
        ])
    );
}

#[test]
fn uncontended_lock_acquire_does_not_suspend() {
    vrun(|| {
        let lock = Lock::new();
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let other = spawn(move || r.set(true));
        for _ in 0..3 {
            let guard = lock.acquire();
            assert!(lock.locked());
            assert!(guard.lock().ptr_eq(&lock));
            drop(guard);
            assert!(!lock.locked());
        }
        assert!(
            !ran.get(),
            "acquiring a free lock must not let other tasks run"
        );
        other.join().unwrap();
    });
}

#[test]
fn try_acquire_only_takes_a_free_lock_with_nobody_in_line() {
    vrun(|| {
        let lock = Lock::new();
        let g = lock.try_acquire().expect("a free lock");
        assert!(lock.try_acquire().is_none(), "held");
        let waiter = {
            let lock = lock.clone();
            spawn(move || drop(lock.acquire()))
        };
        yield_now(); // the waiter is now in line
        drop(g);
        assert!(!lock.locked());
        assert!(
            lock.try_acquire().is_none(),
            "the woken waiter has not run yet, but the lock is its turn"
        );
        waiter.join().unwrap();
        assert!(lock.try_acquire().is_some());
    });
}

#[test]
fn lock_waiters_are_served_in_arrival_order() {
    let order = vrun(|| {
        let lock = Lock::new();
        let order = Log::default();
        let g = lock.acquire();
        let tasks: Vec<_> = (0..6)
            .map(|i| {
                let (lock, order) = (lock.clone(), order.clone());
                spawn(move || {
                    let _g = lock.acquire();
                    order.push(i.to_string());
                    yield_now();
                })
            })
            .collect();
        yield_now();
        drop(g);
        join_all(tasks);
        order.lines()
    });
    assert_eq!(order, lines(&["0", "1", "2", "3", "4", "5"]));
}

/// A task that releases and at once acquires again goes behind the waiter
/// it just woke.
///
/// ```python
/// async def a():
///     await lock.acquire(); log.append("A got")
///     await asyncio.sleep(0)
///     lock.release(); log.append("A released")
///     await lock.acquire(); log.append("A got again")
///     lock.release()
/// async def b():
///     log.append("B waits")
///     async with lock:
///         log.append("B got")
///     log.append("B released")
/// await asyncio.gather(a(), b())
/// ```
#[test]
fn releasing_then_reacquiring_cannot_overtake_the_woken_waiter() {
    let out = vrun(|| {
        let lock = Lock::new();
        let log = Log::default();
        let a = {
            let (lock, log) = (lock.clone(), log.clone());
            spawn(move || {
                let g = lock.acquire();
                log.push("A got");
                yield_now();
                drop(g);
                log.push("A released");
                let _g = lock.acquire();
                log.push("A got again");
            })
        };
        let b = {
            let (lock, log) = (lock.clone(), log.clone());
            spawn(move || {
                log.push("B waits");
                drop(lock.acquire());
                log.push("B got");
                log.push("B released");
            })
        };
        join_all([a, b]);
        log.lines()
    });
    assert_eq!(
        out,
        lines(&[
            "A got",
            "B waits",
            "A released",
            "B got",
            "B released",
            "A got again"
        ])
    );
}

/// A waiter woken by a release but cancelled before it runs passes the lock
/// to the next in line; a newcomer queues behind it.
///
/// ```python
/// await lock.acquire()
/// async def w(name):
///     log.append(f"{name} waits")
///     try:
///         async with lock:
///             log.append(f"{name} got")
///             await asyncio.sleep(0)
///         log.append(f"{name} released")
///     except asyncio.CancelledError:
///         log.append(f"{name} cancelled"); raise
/// b = asyncio.create_task(w("B")); c = asyncio.create_task(w("C"))
/// await asyncio.sleep(0)
/// lock.release()
/// b.cancel()
/// d = asyncio.create_task(w("D"))
/// log.append(f"main try: {lock.locked()}")
/// await asyncio.gather(b, c, d, return_exceptions=True)
/// ```
#[test]
fn woken_lock_waiter_cancelled_before_running_passes_the_lock_on() {
    let out = vrun(|| {
        let lock = Lock::new();
        let log = Log::default();
        let g = lock.acquire();
        let w = |name: &'static str| {
            let (lock, log) = (lock.clone(), log.clone());
            spawn(move || {
                log.push(format!("{name} waits"));
                let _c = OnCancel(log.clone(), format!("{name} cancelled"));
                {
                    let _g = lock.acquire();
                    log.push(format!("{name} got"));
                    yield_now();
                }
                log.push(format!("{name} released"));
            })
        };
        let b = w("B");
        let c = w("C");
        yield_now();
        drop(g);
        b.cancel();
        let d = w("D");
        log.push(format!("main try: {}", lock.locked()));
        join_all([b, c, d]);
        assert!(!lock.locked());
        assert_eq!(format!("{lock:?}"), "Lock { locked: false, waiters: 0 }");
        log.lines()
    });
    assert_eq!(
        out,
        lines(&[
            "B waits",
            "C waits",
            "main try: false",
            "B cancelled",
            "D waits",
            "C got",
            "C released",
            "D got",
            "D released",
        ])
    );
}

#[test]
fn cancelled_lock_waiter_leaves_no_ghost() {
    vrun(|| {
        let lock = Lock::new();
        let g = lock.acquire();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let lock = lock.clone();
                spawn(move || drop(lock.acquire()))
            })
            .collect();
        yield_now();
        assert_eq!(format!("{lock:?}"), "Lock { locked: true, waiters: 3 }");
        for w in &waiters {
            w.cancel();
        }
        for w in waiters {
            assert_eq!(w.join(), Err(JoinError::Cancelled));
        }
        assert_eq!(format!("{lock:?}"), "Lock { locked: true, waiters: 0 }");
        drop(g);
        assert!(
            lock.try_acquire().is_some(),
            "no ghost waiter blocks the lock"
        );
    });
}

#[test]
fn cancelled_waiters_do_not_block_the_fast_path_before_they_unwind() {
    // As CPython: a line made only of cancelled waiters does not stop a
    // newcomer from taking a free lock.
    vrun(|| {
        let lock = Lock::new();
        let g = lock.acquire();
        let w = {
            let lock = lock.clone();
            spawn(move || drop(lock.acquire()))
        };
        yield_now();
        drop(g); // wakes w
        w.cancel(); // ... which is cancelled before it runs
        // w's future was already woken: it is done, not cancelled, so it
        // still counts as in line.
        assert!(lock.try_acquire().is_none());
        assert_eq!(w.join(), Err(JoinError::Cancelled));
        assert!(lock.try_acquire().is_some());
    });
}

#[test]
fn lock_wait_times_out_without_taking_the_lock() {
    vrun(|| {
        let lock = Lock::new();
        let holder = {
            let lock = lock.clone();
            spawn(move || {
                let _g = lock.acquire();
                sleep(secs(10));
            })
        };
        yield_now();
        let r = timeout(secs(1), || lock.acquire());
        assert!(r.is_err(), "timed out");
        assert_eq!(time(), secs(1));
        assert!(lock.locked(), "still the holder's");
        assert_eq!(format!("{lock:?}"), "Lock { locked: true, waiters: 0 }");
        let g = lock.acquire();
        assert_eq!(time(), secs(10));
        drop(g);
        holder.join().unwrap();
    });
}

#[test]
fn lock_guard_is_released_when_its_task_is_cancelled() {
    vrun(|| {
        let lock = Lock::new();
        let holder = {
            let lock = lock.clone();
            spawn(move || {
                let _g = lock.acquire();
                sleep(secs(3600));
            })
        };
        let next = {
            let lock = lock.clone();
            spawn(move || {
                let _g = lock.acquire();
                time()
            })
        };
        sleep(secs(1));
        assert!(lock.locked());
        holder.cancel();
        assert_eq!(holder.join(), Err(JoinError::Cancelled));
        assert_eq!(next.join(), Ok(secs(1)), "the next waiter got it at once");
        assert!(!lock.locked());
    });
}

#[test]
fn lock_guard_is_released_when_its_task_panics() {
    vrun(|| {
        let lock = Lock::new();
        let t = {
            let lock = lock.clone();
            spawn(move || {
                let _g = lock.acquire();
                yield_now();
                panic!("boom while holding the lock");
            })
        };
        assert!(t.join().unwrap_err().is_panic());
        assert!(!lock.locked());
    });
}

#[test]
fn lock_guard_can_be_released_by_another_task() {
    vrun(|| {
        let lock = Lock::new();
        let g = lock.acquire();
        let t = spawn(move || drop(g));
        t.join().unwrap();
        assert!(!lock.locked());
    });
}

#[test]
fn deadlock_report_names_the_lock() {
    let msg = deadlock_message(|| {
        let lock = Lock::new();
        let _g = lock.acquire();
        let t = {
            let lock = lock.clone();
            bucle::TaskBuilder::new()
                .name("second-locker")
                .spawn(move || drop(lock.acquire()))
        };
        let _ = t.join();
    });
    assert!(msg.contains("bucle: deadlock"), "{msg}");
    assert!(msg.contains("'second-locker' waits on Lock"), "{msg}");
}

#[test]
fn closing_the_loop_with_lock_waiters_unwinds_them_and_frees_their_stacks() {
    let base = stack_pool_stats().in_use;
    let drops = Drops::new();
    {
        let lp = EventLoop::builder().virtual_time().build();
        let lock = Lock::new();
        let d = drops.clone();
        let l = lock.clone();
        lp.run_until_complete(move || {
            let g = l.acquire();
            for i in 0..4 {
                let (l, token) = (l.clone(), d.token(i));
                spawn(move || {
                    let _token = token;
                    drop(l.acquire());
                    sleep(secs(3600));
                });
            }
            // Leave the guard to a task that sleeps forever.
            spawn(move || {
                let _g = g;
                sleep(secs(3600));
            });
            yield_now();
        });
        assert!(lock.locked());
        drop(lp);
        assert!(
            !lock.locked(),
            "the holder's guard was dropped with its stack"
        );
        assert_eq!(format!("{lock:?}"), "Lock { locked: false, waiters: 0 }");
    }
    assert_eq!(drops.made(), 4);
    assert!(drops.all_dropped_once(), "{}", drops.report());
    assert_eq!(stack_pool_stats().in_use, base);
}

// -------------------------------------------------------------------------
// Semaphore.

/// The seed story (5.7.2). The seed's printed output shows lines its code
/// never prints; this is what CPython prints for the code.
///
/// ```python
/// async def worker(name, semaphore):
///     async with semaphore:
///         print(f"Trabajador {name} ha obtenido acceso.")
///         await asyncio.sleep(2)
///     print(f"Trabajador {name} ha liberado acceso.")
///
/// async def main():
///     semaphore = asyncio.Semaphore(2)
///     await asyncio.gather(*(worker(n, semaphore) for n in "ABCD"))
/// ```
#[test]
fn semaphore_story_prints_what_cpython_prints() {
    let out = vrun(|| {
        let log = Log::default();
        let sem = Semaphore::new(2);
        let workers: Vec<_> = ["A", "B", "C", "D"]
            .into_iter()
            .map(|name| {
                let (log, sem) = (log.clone(), sem.clone());
                spawn(move || {
                    {
                        let _permit = sem.acquire();
                        log.push(format!("Trabajador {name} ha obtenido acceso."));
                        sleep(secs(2));
                    }
                    log.push(format!("Trabajador {name} ha liberado acceso."));
                })
            })
            .collect();
        bucle::gather(workers).unwrap();
        assert_eq!(time(), secs(4));
        assert_eq!(sem.available(), 2);
        log.lines()
    });
    assert_eq!(
        out,
        lines(&[
            "Trabajador A ha obtenido acceso.",
            "Trabajador B ha obtenido acceso.",
            "Trabajador A ha liberado acceso.",
            "Trabajador B ha liberado acceso.",
            "Trabajador C ha obtenido acceso.",
            "Trabajador D ha obtenido acceso.",
            "Trabajador C ha liberado acceso.",
            "Trabajador D ha liberado acceso.",
        ])
    );
}

#[test]
fn uncontended_semaphore_acquire_does_not_suspend() {
    vrun(|| {
        let sem = Semaphore::new(3);
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let other = spawn(move || r.set(true));
        let a = sem.acquire();
        let b = sem.acquire();
        let c = sem.try_acquire().expect("a third permit");
        assert_eq!(sem.available(), 0);
        assert!(sem.locked());
        assert!(sem.try_acquire().is_none());
        assert!(
            !ran.get(),
            "taking free permits must not let other tasks run"
        );
        drop((a, b, c));
        assert_eq!(sem.available(), 3);
        assert!(!sem.locked());
        other.join().unwrap();
    });
}

#[test]
fn semaphore_waiters_are_served_in_arrival_order_and_newcomers_wait_their_turn() {
    let order = vrun(|| {
        let sem = Semaphore::new(1);
        let order = Log::default();
        let p = sem.acquire();
        let tasks: Vec<_> = (0..5)
            .map(|i| {
                let (sem, order) = (sem.clone(), order.clone());
                spawn(move || {
                    let _p = sem.acquire();
                    order.push(i.to_string());
                    yield_now();
                })
            })
            .collect();
        yield_now();
        drop(p); // hands the permit to waiter 0
        assert_eq!(sem.available(), 0, "the permit is already waiter 0's");
        assert!(sem.locked());
        assert!(sem.try_acquire().is_none(), "no jumping the line");
        join_all(tasks);
        assert_eq!(sem.available(), 1);
        order.lines()
    });
    assert_eq!(order, lines(&["0", "1", "2", "3", "4"]));
}

/// CPython 3.12's `finally:` loop: a waiter that gets its permit wakes
/// whoever queued behind it while a permit was free. Here `main` queues
/// behind W1 (woken, not yet run) although a second permit is free; W1 must
/// wake it, or it would wait forever.
///
/// ```python
/// sem = asyncio.Semaphore(0)
/// async def w(name):
///     log.append(f"{name} waits")
///     await sem.acquire()
///     log.append(f"{name} got")
/// w1 = asyncio.create_task(w("W1"))
/// await asyncio.sleep(0)
/// sem.release(); sem.release()
/// log.append(f"value {sem._value} locked {sem.locked()}")
/// log.append("main waits")
/// await sem.acquire()
/// log.append("main got")
/// await w1
/// log.append(f"value {sem._value}")
/// ```
#[test]
fn woken_semaphore_waiter_wakes_the_newcomers_queued_behind_it() {
    let out = vrun(|| {
        let sem = Semaphore::new(0);
        let log = Log::default();
        let w1 = {
            let (sem, log) = (sem.clone(), log.clone());
            spawn(move || {
                log.push("W1 waits");
                sem.acquire().forget();
                log.push("W1 got");
            })
        };
        yield_now();
        sem.release();
        sem.release();
        log.push(format!("value {} locked {}", sem.available(), sem.locked()));
        log.push("main waits");
        sem.acquire().forget();
        log.push("main got");
        w1.join().unwrap();
        log.push(format!("value {}", sem.available()));
        log.lines()
    });
    assert_eq!(
        out,
        lines(&[
            "W1 waits",
            "value 1 locked true",
            "main waits",
            "W1 got",
            "main got",
            "value 0",
        ])
    );
}

/// A waiter handed a permit but cancelled before it runs gives the permit
/// back, to the next in line.
///
/// ```python
/// sem = asyncio.Semaphore(1)
/// await sem.acquire()
/// async def w(name):
///     log.append(f"{name} waits")
///     try:
///         await sem.acquire()
///     except asyncio.CancelledError:
///         log.append(f"{name} cancelled"); raise
///     log.append(f"{name} got")
///     await asyncio.sleep(0)
///     sem.release()
///     log.append(f"{name} released")
/// b = asyncio.create_task(w("B")); c = asyncio.create_task(w("C"))
/// await asyncio.sleep(0)
/// sem.release()
/// b.cancel()
/// log.append(f"value {sem._value} locked {sem.locked()}")
/// await asyncio.gather(b, c, return_exceptions=True)
/// log.append(f"value {sem._value}")
/// ```
#[test]
fn woken_semaphore_waiter_cancelled_before_running_passes_the_permit_on() {
    let out = vrun(|| {
        let sem = Semaphore::new(1);
        let log = Log::default();
        sem.acquire().forget();
        let w = |name: &'static str| {
            let (sem, log) = (sem.clone(), log.clone());
            spawn(move || {
                log.push(format!("{name} waits"));
                let c = OnCancel(log.clone(), format!("{name} cancelled"));
                let p = sem.acquire();
                drop(c);
                log.push(format!("{name} got"));
                yield_now();
                drop(p);
                log.push(format!("{name} released"));
            })
        };
        let b = w("B");
        let c = w("C");
        yield_now();
        sem.release();
        b.cancel();
        log.push(format!("value {} locked {}", sem.available(), sem.locked()));
        join_all([b, c]);
        log.push(format!("value {}", sem.available()));
        log.lines()
    });
    assert_eq!(
        out,
        lines(&[
            "B waits",
            "C waits",
            "value 0 locked true",
            "B cancelled",
            "C got",
            "C released",
            "value 1",
        ])
    );
}

#[test]
fn semaphore_permit_is_given_back_when_its_task_is_cancelled_or_panics() {
    vrun(|| {
        let sem = Semaphore::new(2);
        let sleeper = {
            let sem = sem.clone();
            spawn(move || {
                let _p = sem.acquire();
                sleep(secs(3600));
            })
        };
        let panicker = {
            let sem = sem.clone();
            spawn(move || {
                let _p = sem.acquire();
                yield_now();
                panic!("boom while holding a permit");
            })
        };
        yield_now();
        assert_eq!(sem.available(), 0);
        sleeper.cancel();
        assert_eq!(sleeper.join(), Err(JoinError::Cancelled));
        assert!(panicker.join().unwrap_err().is_panic());
        assert_eq!(sem.available(), 2);
    });
}

#[test]
fn semaphore_wait_times_out_and_conserves_permits() {
    vrun(|| {
        let sem = Semaphore::new(1);
        let p = sem.acquire();
        let r = timeout(secs(1), || sem.acquire());
        assert!(r.is_err());
        assert_eq!(sem.available(), 0);
        assert_eq!(format!("{sem:?}"), "Semaphore { value: 0, waiters: 0 }");
        drop(p);
        assert_eq!(sem.available(), 1);
        assert!(!sem.locked());
    });
}

#[test]
fn plain_semaphore_release_may_grow_past_its_initial_value() {
    vrun(|| {
        let sem = Semaphore::new(1);
        sem.release();
        assert_eq!(sem.available(), 2);
        let a = sem.acquire();
        let b = sem.acquire();
        assert!(sem.try_acquire().is_none());
        drop((a, b));
    });
}

#[test]
fn manual_acquire_and_release_with_forget() {
    vrun(|| {
        let sem = Semaphore::new(1);
        sem.acquire().forget();
        assert_eq!(sem.available(), 0);
        let waiter = {
            let sem = sem.clone();
            spawn(move || sem.acquire().forget())
        };
        yield_now();
        sem.release(); // hands it to the waiter
        waiter.join().unwrap();
        assert_eq!(sem.available(), 0);
        sem.release();
        assert_eq!(sem.available(), 1);
    });
}

#[test]
fn bounded_semaphore_refuses_to_be_released_above_its_initial_value() {
    vrun(|| {
        let sem = BoundedSemaphore::new(2);
        assert_eq!(sem.bound(), 2);
        assert_eq!(sem.release(), Err(TooManyReleases));
        assert_eq!(sem.available(), 2, "a refused release changes nothing");
        assert_eq!(
            TooManyReleases.to_string(),
            "BoundedSemaphore released too many times"
        );
        let p = sem.acquire();
        sem.acquire().forget();
        assert!(sem.locked());
        assert_eq!(sem.release(), Ok(()));
        drop(p);
        assert_eq!(sem.available(), 2);
        assert_eq!(sem.release(), Err(TooManyReleases));
    });
}

#[test]
fn bounded_semaphore_serves_waiters_in_order() {
    let order = vrun(|| {
        let sem = BoundedSemaphore::new(1);
        let order = Log::default();
        let p = sem.acquire();
        let tasks: Vec<_> = (0..3)
            .map(|i| {
                let (sem, order) = (sem.clone(), order.clone());
                spawn(move || {
                    let _p = sem.acquire();
                    order.push(i.to_string());
                    yield_now();
                })
            })
            .collect();
        yield_now();
        drop(p);
        join_all(tasks);
        assert_eq!(sem.available(), 1);
        order.lines()
    });
    assert_eq!(order, lines(&["0", "1", "2"]));
}

#[test]
fn dropping_a_bounded_permit_after_a_manual_release_panics_clearly() {
    vrun(|| {
        let sem = BoundedSemaphore::new(1);
        let t = {
            let sem = sem.clone();
            spawn(move || {
                let p = sem.acquire();
                sem.release().unwrap(); // the permit's slot, released by hand
                drop(p);
            })
        };
        match t.join() {
            Err(JoinError::Panicked(msg)) => {
                assert!(
                    msg.contains("BoundedSemaphore released too many times"),
                    "{msg}"
                )
            }
            other => panic!("expected a panic, got {other:?}"),
        }
        assert_eq!(sem.available(), 1);
    });
}

#[test]
fn deadlock_report_names_the_semaphore() {
    let msg = deadlock_message(|| {
        let sem = Semaphore::new(0);
        drop(sem.acquire());
    });
    assert!(msg.contains("waits on Semaphore"), "{msg}");
}

// -------------------------------------------------------------------------
// Event.

/// The seed story (5.7.3).
///
/// ```python
/// async def waiter(event, name):
///     print(f"Esperador {name} está esperando el evento...")
///     await event.wait()
///     print(f"Esperador {name} ha recibido el evento!")
///
/// async def setter(event):
///     await asyncio.sleep(2)
///     print("Estableciendo el evento.")
///     event.set()
///
/// async def main():
///     event = asyncio.Event()
///     await asyncio.gather(waiter(event, "A"), waiter(event, "B"), setter(event))
/// ```
#[test]
fn event_story_prints_what_cpython_prints() {
    let out = vrun(|| {
        let log = Log::default();
        let event = Event::new();
        let mut tasks: Vec<_> = ["A", "B"]
            .into_iter()
            .map(|name| {
                let (log, event) = (log.clone(), event.clone());
                spawn(move || {
                    log.push(format!("Esperador {name} está esperando el evento..."));
                    event.wait();
                    log.push(format!("Esperador {name} ha recibido el evento!"));
                })
            })
            .collect();
        tasks.push({
            let (log, event) = (log.clone(), event.clone());
            spawn(move || {
                sleep(secs(2));
                log.push("Estableciendo el evento.");
                event.set();
            })
        });
        bucle::gather(tasks).unwrap();
        log.lines()
    });
    assert_eq!(
        out,
        lines(&[
            "Esperador A está esperando el evento...",
            "Esperador B está esperando el evento...",
            "Estableciendo el evento.",
            "Esperador A ha recibido el evento!",
            "Esperador B ha recibido el evento!",
        ])
    );
}

#[test]
fn event_set_clear_and_waiting_on_a_set_event() {
    vrun(|| {
        let event = Event::new();
        assert!(!event.is_set());
        event.set();
        assert!(event.is_set());
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let other = spawn(move || r.set(true));
        event.wait(); // set: returns at once
        assert!(!ran.get(), "waiting on a set event must not suspend");
        event.clear();
        assert!(!event.is_set());
        other.join().unwrap();
        let r = timeout(secs(1), || event.wait());
        assert!(r.is_err(), "a cleared event blocks again");
        assert_eq!(format!("{event:?}"), "Event { set: false, waiters: 0 }");
    });
}

#[test]
fn event_waiters_woken_by_set_return_even_if_it_is_cleared_at_once() {
    vrun(|| {
        let event = Event::new();
        let woke = Rc::new(Cell::new(0));
        let tasks: Vec<_> = (0..3)
            .map(|_| {
                let (event, woke) = (event.clone(), woke.clone());
                spawn(move || {
                    event.wait();
                    woke.set(woke.get() + 1);
                })
            })
            .collect();
        yield_now();
        event.set();
        event.clear();
        join_all(tasks);
        assert_eq!(woke.get(), 3);
        assert!(!event.is_set());
    });
}

#[test]
fn cancelled_event_waiter_leaves_no_trace() {
    vrun(|| {
        let event = Event::new();
        let w = {
            let event = event.clone();
            spawn(move || event.wait())
        };
        let other = {
            let event = event.clone();
            spawn(move || {
                event.wait();
                "woken"
            })
        };
        yield_now();
        assert_eq!(format!("{event:?}"), "Event { set: false, waiters: 2 }");
        w.cancel();
        assert_eq!(w.join(), Err(JoinError::Cancelled));
        assert_eq!(format!("{event:?}"), "Event { set: false, waiters: 1 }");
        event.set();
        assert_eq!(other.join(), Ok("woken"));
        assert_eq!(format!("{event:?}"), "Event { set: true, waiters: 0 }");
    });
}

#[test]
fn deadlock_report_names_the_event() {
    let msg = deadlock_message(|| Event::new().wait());
    assert!(msg.contains("waits on Event"), "{msg}");
}

// -------------------------------------------------------------------------
// Condition.

/// ```python
/// cond = asyncio.Condition()
/// async def w(name):
///     async with cond:
///         log.append(f"{name} waits")
///         await cond.wait()
///         log.append(f"{name} woke")
/// ts = [asyncio.create_task(w(n)) for n in "ABCD"]
/// await asyncio.sleep(0)
/// async with cond:
///     cond.notify(1)
///     log.append("notified 1")
/// await asyncio.sleep(0); await asyncio.sleep(0)
/// async with cond:
///     cond.notify_all()
///     log.append("notified all")
/// await asyncio.gather(*ts)
/// ```
#[test]
fn condition_notify_wakes_waiters_in_arrival_order() {
    let out = vrun(|| {
        let cond = Condition::new();
        let log = Log::default();
        let tasks: Vec<_> = ["A", "B", "C", "D"]
            .into_iter()
            .map(|name| {
                let (cond, log) = (cond.clone(), log.clone());
                spawn(move || {
                    let g = cond.acquire();
                    log.push(format!("{name} waits"));
                    let _g = cond.wait(g);
                    log.push(format!("{name} woke"));
                })
            })
            .collect();
        yield_now();
        {
            let _g = cond.acquire();
            cond.notify(1);
            log.push("notified 1");
        }
        yield_now();
        yield_now();
        {
            let _g = cond.acquire();
            cond.notify_all();
            log.push("notified all");
        }
        bucle::gather(tasks).unwrap();
        assert!(!cond.locked());
        log.lines()
    });
    assert_eq!(
        out,
        lines(&[
            "A waits",
            "B waits",
            "C waits",
            "D waits",
            "notified 1",
            "A woke",
            "notified all",
            "B woke",
            "C woke",
            "D woke",
        ])
    );
}

#[test]
fn condition_notify_skips_waiters_already_notified() {
    let out = vrun(|| {
        let cond = Condition::new();
        let log = Log::default();
        let tasks: Vec<_> = ["A", "B", "C"]
            .into_iter()
            .map(|name| {
                let (cond, log) = (cond.clone(), log.clone());
                spawn(move || {
                    let g = cond.acquire();
                    let _g = cond.wait(g);
                    log.push(format!("{name} woke"));
                })
            })
            .collect();
        yield_now();
        {
            let _g = cond.acquire();
            cond.notify(1);
            cond.notify(1); // A is notified already: this one is B's
        }
        for _ in 0..4 {
            yield_now();
        }
        assert_eq!(log.lines(), lines(&["A woke", "B woke"]));
        assert_eq!(
            format!("{cond:?}"),
            "Condition { locked: false, waiters: 1 }"
        );
        {
            let _g = cond.acquire();
            cond.notify(5); // more than are waiting
        }
        join_all(tasks);
        log.lines()
    });
    assert_eq!(out, lines(&["A woke", "B woke", "C woke"]));
}

/// A waiter notified and then cancelled passes the notification on
/// (CPython 3.13; 3.12 loses it and this program hangs there).
///
/// ```python
/// async def w(name):
///     try:
///         async with cond:
///             log.append(f"{name} waits")
///             await cond.wait()
///             log.append(f"{name} woke")
///     except asyncio.CancelledError:
///         log.append(f"{name} cancelled"); raise
/// a = asyncio.create_task(w("A")); b = asyncio.create_task(w("B"))
/// await asyncio.sleep(0)
/// async with cond:
///     cond.notify(1)
///     a.cancel()
///     log.append("notified 1, cancelled A")
/// await asyncio.gather(a, b, return_exceptions=True)
/// ```
#[test]
fn notified_condition_waiter_cancelled_passes_the_notification_on() {
    let out = vrun(|| {
        let cond = Condition::new();
        let log = Log::default();
        let w = |name: &'static str| {
            let (cond, log) = (cond.clone(), log.clone());
            spawn(move || {
                let _c = OnCancel(log.clone(), format!("{name} cancelled"));
                let g = cond.acquire();
                log.push(format!("{name} waits"));
                let _g = cond.wait(g);
                log.push(format!("{name} woke"));
            })
        };
        let a = w("A");
        let b = w("B");
        yield_now();
        {
            let _g = cond.acquire();
            cond.notify(1);
            a.cancel();
            log.push("notified 1, cancelled A");
        }
        join_all([a, b]);
        assert!(!cond.locked());
        assert_eq!(
            format!("{cond:?}"),
            "Condition { locked: false, waiters: 0 }"
        );
        log.lines()
    });
    assert_eq!(
        out,
        lines(&[
            "A waits",
            "B waits",
            "notified 1, cancelled A",
            "A cancelled",
            "B woke",
        ])
    );
}

#[test]
fn condition_waiter_cancelled_while_waiting_unwinds_without_the_lock() {
    vrun(|| {
        let cond = Condition::new();
        let w = {
            let cond = cond.clone();
            spawn(move || {
                let g = cond.acquire();
                let _g = cond.wait(g);
            })
        };
        yield_now();
        assert!(!cond.locked(), "wait released the lock");
        w.cancel();
        assert_eq!(w.join(), Err(JoinError::Cancelled));
        assert!(!cond.locked());
        assert_eq!(
            format!("{cond:?}"),
            "Condition { locked: false, waiters: 0 }"
        );
        // Nobody is notified by a cancelled, un-notified waiter.
        let g = cond.acquire();
        cond.notify_all();
        drop(g);
    });
}

#[test]
fn condition_waiter_cancelled_while_taking_the_lock_back_passes_the_notification_on() {
    vrun(|| {
        let cond = Condition::new();
        let log = Log::default();
        let w = |name: &'static str| {
            let (cond, log) = (cond.clone(), log.clone());
            spawn(move || {
                let g = cond.acquire();
                let _g = cond.wait(g);
                log.push(format!("{name} woke"));
            })
        };
        let a = w("A");
        let b = w("B");
        yield_now();
        let g = cond.acquire();
        cond.notify(1);
        // A wakes, and waits for the lock we hold; cancel it there.
        yield_now();
        yield_now();
        assert!(!a.is_done());
        a.cancel();
        assert_eq!(a.join(), Err(JoinError::Cancelled));
        drop(g);
        b.join().unwrap();
        assert_eq!(log.lines(), lines(&["B woke"]));
    });
}

#[test]
fn condition_wait_for_checks_the_predicate_first_and_after_each_wake() {
    vrun(|| {
        let cond = Condition::new();
        let value = Rc::new(Cell::new(0));
        let checks = Rc::new(Cell::new(0));
        let waiter = {
            let (cond, value, checks) = (cond.clone(), value.clone(), checks.clone());
            spawn(move || {
                let g = cond.acquire();
                let g = cond.wait_for(g, || {
                    checks.set(checks.get() + 1);
                    value.get() >= 3
                });
                assert!(g.lock().locked());
                value.get()
            })
        };
        for v in 1..=3 {
            yield_now();
            let _g = cond.acquire();
            value.set(v);
            cond.notify_all();
        }
        assert_eq!(waiter.join(), Ok(3));
        assert_eq!(
            checks.get(),
            4,
            "once before waiting, once per notification"
        );
        // A predicate already true does not wait at all.
        let g = cond.acquire();
        let _g = cond.wait_for(g, || true);
    });
}

#[test]
fn condition_over_a_shared_lock() {
    vrun(|| {
        let lock = Lock::new();
        let cond = Condition::with_lock(lock.clone());
        assert!(cond.lock().ptr_eq(&lock));
        let g = lock.acquire();
        assert!(cond.locked());
        assert!(cond.try_acquire().is_none());
        cond.notify(1); // held through the shared lock: allowed
        drop(g);
        let g = cond.try_acquire().expect("free");
        assert!(lock.locked());
        drop(g);
    });
}

#[test]
fn condition_notify_without_the_lock_panics() {
    vrun(|| {
        let cond = Condition::new();
        let t = {
            let cond = cond.clone();
            spawn(move || cond.notify(1))
        };
        expect_panic(t, "cannot notify on un-acquired lock");
    });
}

#[test]
fn condition_wait_with_another_locks_guard_panics() {
    vrun(|| {
        let cond = Condition::new();
        let other = Lock::new();
        let t = {
            let (cond, other) = (cond.clone(), other.clone());
            spawn(move || {
                let g = other.acquire();
                let _g = cond.wait(g);
            })
        };
        match t.join() {
            Err(JoinError::Panicked(msg)) => assert!(msg.contains("different lock"), "{msg}"),
            other => panic!("expected a panic, got {other:?}"),
        }
        assert!(
            !other.locked(),
            "the foreign guard was dropped on the way out"
        );
    });
}

#[test]
fn deadlock_report_names_the_condition() {
    let msg = deadlock_message(|| {
        let cond = Condition::new();
        let g = cond.acquire();
        let _g = cond.wait(g);
    });
    assert!(msg.contains("waits on Condition"), "{msg}");
}

#[test]
fn waiting_on_a_lock_outside_a_loop_names_the_lock_and_the_fix() {
    let lock = Lock::new();
    let _held = lock.try_acquire().expect("a new lock is free");
    let err = panic::catch_unwind(AssertUnwindSafe(|| drop(lock.acquire())))
        .expect_err("a contended acquire outside a loop cannot wait");
    let msg = common::panic_message(&err);
    assert!(msg.contains("waiting on Lock"), "{msg}");
    assert!(msg.contains("wrap it in bucle::run"), "{msg}");
}
