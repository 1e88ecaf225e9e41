//! Property tests for `bucle::sync` on the virtual clock.
//!
//! * Fairness against a FIFO model: for Lock and Semaphore, the order in
//!   which tasks are granted the lock or a permit is the order in which they
//!   called `acquire` (leaving out those that timed out or were cancelled
//!   first), whatever the arrival times, hold times, timeouts and cancels.
//!   For Queue, getters and putters are replayed against a model queue with
//!   a FIFO line of waiting tasks; every item must go where the model says.
//! * Cancel/timeout storms, in FIFO and in seeded (shuffled) mode: permits
//!   are conserved, mutual exclusion holds, no ghost waiter is left behind,
//!   and for queues items in = items out + items left, each exactly once
//!   (checked with drop-counted tokens).

mod common;

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use bucle::sync::{Lock, PutError, Queue, QueueShutDown, Semaphore};
use bucle::{
    AnyTask, EventLoop, JoinError, Task, sleep, sleep_until, spawn, stack_pool_stats, time, timeout,
};
use common::drops::{Drops, Token};
use proptest::prelude::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Runs `main` on a virtual-time loop (seeded if asked), then shuts it
/// down and closes it.
fn vrun<T: 'static>(seed: Option<u64>, main: impl FnOnce() -> T + 'static) -> T {
    let mut b = EventLoop::builder().virtual_time();
    if let Some(s) = seed {
        b = b.seed(s);
    }
    let lp = b.build();
    let out = lp.run_until_complete(main);
    lp.shutdown();
    lp.close();
    out
}

/// Joins a task, turning a panic inside it into a panic here (so a broken
/// invariant asserted in a task fails the property).
fn join_checked<T: 'static>(t: Task<T>) -> Option<T> {
    match t.join() {
        Ok(v) => Some(v),
        Err(JoinError::Cancelled) => None,
        Err(JoinError::Panicked(msg)) => panic!("a task panicked: {msg}"),
    }
}

type Shared<T> = Rc<RefCell<T>>;

fn shared<T: Default>() -> Shared<T> {
    Rc::new(RefCell::new(T::default()))
}

// -------------------------------------------------------------------------
// Lock and Semaphore: fairness and conservation.

/// One task's script: arrive, try to acquire (with a timeout if `patience`
/// is set), hold, release. A separate task may cancel it at `cancel_at`.
#[derive(Debug, Clone)]
struct Acquirer {
    arrive: u64,
    hold: u64,
    patience: Option<u64>,
    cancel_at: Option<u64>,
}

fn acquirer() -> impl Strategy<Value = Acquirer> {
    (
        0u64..8,
        0u64..4,
        prop::option::weighted(0.35, 0u64..10),
        prop::option::weighted(0.25, 0u64..20),
    )
        .prop_map(|(arrive, hold, patience, cancel_at)| Acquirer {
            arrive,
            hold,
            patience,
            cancel_at,
        })
}

/// Counts the tasks inside the critical section; asserts the bound.
struct Holding {
    holders: Rc<Cell<usize>>,
}

impl Holding {
    fn enter(holders: &Rc<Cell<usize>>, max: usize) -> Holding {
        let n = holders.get() + 1;
        assert!(n <= max, "{n} tasks hold what admits {max}");
        holders.set(n);
        Holding {
            holders: holders.clone(),
        }
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        self.holders.set(self.holders.get() - 1);
    }
}

#[derive(Debug, Default)]
struct Trace {
    /// Task indexes in the order they called `acquire`.
    calls: Vec<usize>,
    /// Task indexes in the order `acquire` returned to them.
    grants: Vec<usize>,
    /// Tasks whose `acquire` timed out.
    timed_out: Vec<usize>,
    /// Tasks that ended cancelled.
    cancelled: Vec<usize>,
}

/// Plays the scripts against `acquire` (which returns a type-erased guard),
/// with at most `max` holders at once. Runs inside a loop.
fn play(scripts: &[Acquirer], max: usize, acquire: Rc<dyn Fn() -> Box<dyn Any>>) -> Trace {
    let trace: Shared<Trace> = shared();
    let holders = Rc::new(Cell::new(0));
    let tasks: Vec<Task<()>> = scripts
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, s)| {
            let (trace, holders, acquire) = (trace.clone(), holders.clone(), acquire.clone());
            spawn(move || {
                sleep(ms(s.arrive));
                trace.borrow_mut().calls.push(i);
                let guard = match s.patience {
                    Some(p) => match timeout(ms(p), || acquire()) {
                        Ok(g) => g,
                        Err(_) => {
                            trace.borrow_mut().timed_out.push(i);
                            return;
                        }
                    },
                    None => acquire(),
                };
                trace.borrow_mut().grants.push(i);
                let inside = Holding::enter(&holders, max);
                sleep(ms(s.hold));
                drop(inside);
                drop(guard);
            })
        })
        .collect();
    let cancellers: Vec<Task<()>> = scripts
        .iter()
        .zip(&tasks)
        .filter_map(|(s, t)| s.cancel_at.map(|c| (c, t.as_any())))
        .map(|(c, t): (u64, AnyTask)| {
            spawn(move || {
                sleep(ms(c));
                t.cancel();
            })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        if join_checked(t).is_none() {
            trace.borrow_mut().cancelled.push(i);
        }
    }
    for c in cancellers {
        join_checked(c);
    }
    assert_eq!(holders.get(), 0);
    Rc::try_unwrap(trace)
        .map(RefCell::into_inner)
        .unwrap_or_else(|t| std::mem::take(&mut *t.borrow_mut()))
}

/// The FIFO model: grants come in call order, skipping only tasks that
/// timed out or were cancelled before their grant; everyone else is
/// granted.
fn check_fifo(scripts: &[Acquirer], trace: &Trace) -> Result<(), TestCaseError> {
    let granted: BTreeSet<usize> = trace.grants.iter().copied().collect();
    prop_assert_eq!(
        granted.len(),
        trace.grants.len(),
        "granted twice: {:?}",
        trace
    );
    let expected: Vec<usize> = trace
        .calls
        .iter()
        .copied()
        .filter(|i| granted.contains(i))
        .collect();
    prop_assert_eq!(
        &trace.grants,
        &expected,
        "grants out of call order: {:?}",
        trace
    );
    for (i, s) in scripts.iter().enumerate() {
        let gave_up = trace.timed_out.contains(&i) || trace.cancelled.contains(&i);
        if !gave_up {
            prop_assert!(granted.contains(&i), "task {} never got it: {:?}", i, trace);
        }
        if s.patience.is_none() && s.cancel_at.is_none() {
            prop_assert!(granted.contains(&i));
        }
    }
    Ok(())
}

fn lock_run(scripts: Vec<Acquirer>, seed: Option<u64>) -> Result<(), TestCaseError> {
    let base = stack_pool_stats().in_use;
    let s = scripts.clone();
    let trace = vrun(seed, move || {
        let lock = Lock::new();
        let l = lock.clone();
        let trace = play(
            &s,
            1,
            Rc::new(move || Box::new(l.acquire()) as Box<dyn Any>),
        );
        assert!(!lock.locked(), "the lock is free at the end");
        assert_eq!(format!("{lock:?}"), "Lock { locked: false, waiters: 0 }");
        assert!(lock.try_acquire().is_some(), "no ghost waiter");
        trace
    });
    // Only one waiter is ever woken at a time, so even a shuffled batch
    // cannot reorder grants.
    check_fifo(&scripts, &trace)?;
    prop_assert_eq!(stack_pool_stats().in_use, base);
    Ok(())
}

fn semaphore_run(
    scripts: Vec<Acquirer>,
    permits: usize,
    seed: Option<u64>,
) -> Result<(), TestCaseError> {
    let base = stack_pool_stats().in_use;
    let s = scripts.clone();
    let trace = vrun(seed, move || {
        let sem = Semaphore::new(permits);
        let sm = sem.clone();
        let trace = play(
            &s,
            permits,
            Rc::new(move || Box::new(sm.acquire()) as Box<dyn Any>),
        );
        assert_eq!(sem.available(), permits, "permits conserved");
        assert!(format!("{sem:?}").ends_with("waiters: 0 }"), "{sem:?}");
        let all: Vec<_> = (0..permits).map(|_| sem.try_acquire()).collect();
        assert!(all.iter().all(Option::is_some), "no ghost waiter");
        assert!(sem.try_acquire().is_none());
        trace
    });
    if seed.is_none() {
        // Several waiters can be woken in one tick; a seeded loop may run
        // them in any order, so the grant order is only checked in FIFO mode.
        check_fifo(&scripts, &trace)?;
    }
    prop_assert_eq!(stack_pool_stats().in_use, base);
    Ok(())
}

// -------------------------------------------------------------------------
// Queue getters against a FIFO model.
//
// To compare with a model that knows nothing of ticks, the test keeps the
// producer and the consumers apart in time: items are put only at even
// milliseconds, `get` is only called at odd ones. A woken getter runs at
// the even time its item was put (the virtual clock stands still while
// anything is ready), so no newcomer can race it for the item, and the
// model can hand an item to the head of the line as soon as it is put.

#[derive(Debug, Clone, PartialEq, Eq)]
enum GetEvent {
    Put(u32),
    Call(usize),
    Got(usize, u32),
}

fn getters_run(
    put_times: Vec<u64>,
    consumers: Vec<Vec<u64>>,
    seed: Option<u64>,
) -> Result<(), TestCaseError> {
    let n_items = put_times.len();
    let total_gets: usize = consumers.iter().map(Vec::len).sum();
    let c2 = consumers.clone();
    let log = vrun(seed, move || {
        let q: Queue<u32> = Queue::new();
        let log: Shared<Vec<GetEvent>> = shared();
        let tasks: Vec<Task<()>> = c2
            .into_iter()
            .enumerate()
            .map(|(c, times)| {
                let (q, log) = (q.clone(), log.clone());
                spawn(move || {
                    for t in times {
                        // The next odd millisecond at or after `t`, and
                        // strictly after now.
                        let now = time().as_millis() as u64;
                        let mut at = (2 * t + 1).max(now + 1);
                        if at % 2 == 0 {
                            at += 1;
                        }
                        sleep_until(ms(at));
                        log.borrow_mut().push(GetEvent::Call(c));
                        let Ok(x) = q.get() else { return };
                        log.borrow_mut().push(GetEvent::Got(c, x));
                    }
                })
            })
            .collect();
        let producer = {
            let (q, log) = (q.clone(), log.clone());
            spawn(move || {
                for (x, t) in put_times.into_iter().enumerate() {
                    if 2 * t > time().as_millis() as u64 {
                        sleep_until(ms(2 * t));
                    }
                    log.borrow_mut().push(GetEvent::Put(x as u32));
                    q.put_nowait(x as u32).unwrap();
                }
            })
        };
        join_checked(producer);
        // Wake whoever still waits once everything put has been taken.
        let last = time().as_millis() as u64 + 1000;
        sleep_until(ms(last));
        q.shutdown(false);
        for t in tasks {
            join_checked(t);
        }
        // Clone out of the `RefCell` before the closure's locals drop.
        let snapshot: Vec<_> = log.borrow().clone();
        snapshot
    });

    // Replay against the model.
    let mut items: VecDeque<u32> = VecDeque::new();
    let mut line: VecDeque<usize> = VecDeque::new();
    let mut owed: Vec<VecDeque<u32>> = vec![VecDeque::new(); consumers.len()];
    let mut calls = 0;
    for e in &log {
        match *e {
            GetEvent::Put(x) => match line.pop_front() {
                Some(c) => owed[c].push_back(x),
                None => items.push_back(x),
            },
            GetEvent::Call(c) => {
                calls += 1;
                match items.pop_front() {
                    Some(x) => owed[c].push_back(x),
                    None => line.push_back(c),
                }
            }
            GetEvent::Got(c, x) => {
                let want = owed[c].pop_front();
                prop_assert_eq!(
                    Some(x),
                    want,
                    "consumer {} got {} but the model owed {:?}; log {:?}",
                    c,
                    x,
                    want,
                    log
                );
            }
        }
    }
    prop_assert!(calls <= total_gets);
    let got = log
        .iter()
        .filter(|e| matches!(e, GetEvent::Got(..)))
        .count();
    prop_assert_eq!(
        got + items.len(),
        n_items,
        "items in = items out + items left"
    );
    prop_assert!(
        owed.iter().all(VecDeque::is_empty),
        "owed items never delivered"
    );
    Ok(())
}

// -------------------------------------------------------------------------
// Queue putters against a FIFO model: producers call `put` at odd
// milliseconds on a bounded queue; one consumer takes at most one item per
// even millisecond with `get_nowait`, so each woken putter has run before
// anything else happens.

#[derive(Debug, Clone, PartialEq, Eq)]
enum PutEvent {
    Call(u32),
    Done(u32),
    Take(u32),
}

fn putters_run(
    maxsize: usize,
    producers: Vec<Vec<u64>>,
    takes: Vec<u64>,
    seed: Option<u64>,
) -> Result<(), TestCaseError> {
    let p2 = producers.clone();
    let (log, left) = vrun(seed, move || {
        let q: Queue<u32> = Queue::with_maxsize(maxsize);
        let log: Shared<Vec<PutEvent>> = shared();
        let tasks: Vec<Task<()>> = p2
            .into_iter()
            .enumerate()
            .map(|(p, times)| {
                let (q, log) = (q.clone(), log.clone());
                spawn(move || {
                    for (k, t) in times.into_iter().enumerate() {
                        let now = time().as_millis() as u64;
                        let mut at = (2 * t + 1).max(now + 1);
                        if at % 2 == 0 {
                            at += 1;
                        }
                        sleep_until(ms(at));
                        let x = (p * 100 + k) as u32;
                        log.borrow_mut().push(PutEvent::Call(x));
                        if q.put(x).is_err() {
                            return;
                        }
                        log.borrow_mut().push(PutEvent::Done(x));
                    }
                })
            })
            .collect();
        let mut at = 0;
        for t in takes {
            at = (2 * t).max(at + 2);
            sleep_until(ms(at));
            if let Ok(x) = q.get_nowait() {
                log.borrow_mut().push(PutEvent::Take(x));
            }
        }
        sleep(ms(1000));
        q.shutdown(false);
        for t in tasks {
            join_checked(t);
        }
        let mut left = Vec::new();
        while let Ok(x) = q.get_nowait() {
            left.push(x);
        }
        let log = log.borrow().clone();
        (log, left)
    });

    let mut items: VecDeque<u32> = VecDeque::new();
    let mut line: VecDeque<u32> = VecDeque::new();
    let mut entered: BTreeSet<u32> = BTreeSet::new();
    for e in &log {
        match *e {
            PutEvent::Call(x) => {
                if items.len() < maxsize {
                    prop_assert!(line.is_empty(), "room while putters wait: {:?}", log);
                    items.push_back(x);
                    entered.insert(x);
                } else {
                    line.push_back(x);
                }
            }
            PutEvent::Done(x) => {
                prop_assert!(
                    entered.contains(&x),
                    "put {} returned before its turn: {:?}",
                    x,
                    log
                );
            }
            PutEvent::Take(x) => {
                prop_assert_eq!(items.pop_front(), Some(x), "log {:?}", log);
                if let Some(next) = line.pop_front() {
                    items.push_back(next);
                    entered.insert(next);
                }
            }
        }
    }
    // What the model still holds is what the queue still held (the putters
    // still in line were refused by the shutdown).
    prop_assert_eq!(items.into_iter().collect::<Vec<_>>(), left);
    Ok(())
}

// -------------------------------------------------------------------------
// Queue storms: producers and consumers with random timeouts and cancels.

#[derive(Debug, Clone)]
struct QueueActor {
    /// Delays between operations, and an optional timeout for each.
    ops: Vec<(u64, Option<u64>)>,
    cancel_at: Option<u64>,
}

fn queue_actor() -> impl Strategy<Value = QueueActor> {
    (
        prop::collection::vec((0u64..4, prop::option::weighted(0.4, 0u64..5)), 1..6),
        prop::option::weighted(0.3, 0u64..20),
    )
        .prop_map(|(ops, cancel_at)| QueueActor { ops, cancel_at })
}

fn queue_storm(
    maxsize: usize,
    producers: Vec<QueueActor>,
    consumers: Vec<QueueActor>,
    seed: Option<u64>,
) -> Result<(), TestCaseError> {
    let base = stack_pool_stats().in_use;
    let drops = Drops::new();
    let d = drops.clone();
    let (put_ok, got, left) = vrun(seed, move || {
        let q: Queue<(u32, Token)> = Queue::with_maxsize(maxsize);
        let put_ok: Shared<Vec<u32>> = shared();
        let got: Shared<Vec<u32>> = shared();
        let mut tasks: Vec<Task<()>> = Vec::new();
        let mut cancels: Vec<(u64, AnyTask)> = Vec::new();
        for (p, actor) in producers.into_iter().enumerate() {
            let (q, put_ok, d) = (q.clone(), put_ok.clone(), d.clone());
            let cancel_at = actor.cancel_at;
            let t = spawn(move || {
                for (k, (delay, patience)) in actor.ops.into_iter().enumerate() {
                    sleep(ms(delay));
                    let id = (p * 100 + k) as u32;
                    let item = (id, d.token(id as usize));
                    let r = match patience {
                        Some(t) => match timeout(ms(t), || q.put(item)) {
                            Ok(r) => r,
                            Err(_) => continue, // the item went with the unwind
                        },
                        None => q.put(item),
                    };
                    match r {
                        Ok(()) => put_ok.borrow_mut().push(id),
                        Err(PutError(_item)) => return, // shut down; the item comes back
                    }
                }
            });
            if let Some(c) = cancel_at {
                cancels.push((c, t.as_any()));
            }
            tasks.push(t);
        }
        let mut consumer_tasks = Vec::new();
        for actor in consumers {
            let (q, got) = (q.clone(), got.clone());
            let cancel_at = actor.cancel_at;
            let t = spawn(move || {
                for (delay, patience) in actor.ops {
                    sleep(ms(delay));
                    let r = match patience {
                        Some(t) => match timeout(ms(t), || q.get()) {
                            Ok(r) => r,
                            Err(_) => continue,
                        },
                        None => q.get(),
                    };
                    match r {
                        Ok((id, token)) => {
                            got.borrow_mut().push(id);
                            drop(token);
                        }
                        Err(QueueShutDown) => return,
                    }
                }
            });
            if let Some(c) = cancel_at {
                cancels.push((c, t.as_any()));
            }
            consumer_tasks.push(t);
        }
        let cancellers: Vec<_> = cancels
            .into_iter()
            .map(|(c, t)| {
                spawn(move || {
                    sleep(ms(c));
                    t.cancel();
                })
            })
            .collect();
        // Let the storm blow over, then refuse the putters still waiting
        // and let the consumers still waiting out.
        sleep(ms(1000));
        q.shutdown(false);
        for t in tasks.into_iter().chain(consumer_tasks).chain(cancellers) {
            join_checked(t);
        }
        let dbg = format!("{q:?}");
        assert!(
            dbg.contains("getters: 0") && dbg.contains("putters: 0"),
            "{dbg}"
        );
        let mut left = Vec::new();
        while let Ok((id, _token)) = q.get_nowait() {
            left.push(id);
        }
        let put_ok = put_ok.borrow().clone();
        let got = got.borrow().clone();
        (put_ok, got, left)
    });
    let mut out: Vec<u32> = got.iter().chain(&left).copied().collect();
    out.sort_unstable();
    let mut ins = put_ok.clone();
    ins.sort_unstable();
    prop_assert_eq!(
        ins,
        out,
        "items in != items out + items left (got {:?}, left {:?})",
        got,
        left
    );
    prop_assert!(drops.all_dropped_once(), "{}", drops.report());
    prop_assert_eq!(stack_pool_stats().in_use, base);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn lock_grants_follow_call_order_through_timeouts_and_cancels(
        scripts in prop::collection::vec(acquirer(), 1..12),
        seed in prop::option::weighted(0.5, any::<u64>()),
    ) {
        lock_run(scripts, seed)?;
    }

    #[test]
    fn semaphore_grants_follow_call_order_and_permits_are_conserved(
        scripts in prop::collection::vec(acquirer(), 1..12),
        permits in 1usize..4,
        seed in prop::option::weighted(0.5, any::<u64>()),
    ) {
        semaphore_run(scripts, permits, seed)?;
    }

    #[test]
    fn queue_getters_are_served_like_a_fifo_model(
        // Fewer items than gets, put later on average, so that getters
        // often queue up behind each other.
        put_times in prop::collection::vec(0u64..16, 0..10)
            .prop_map(|mut v| { v.sort_unstable(); v }),
        consumers in prop::collection::vec(
            prop::collection::vec(0u64..8, 1..5).prop_map(|mut v| { v.sort_unstable(); v }),
            1..5,
        ),
    ) {
        getters_run(put_times, consumers, None)?;
    }

    #[test]
    fn queue_putters_are_served_like_a_fifo_model(
        maxsize in 1usize..4,
        producers in prop::collection::vec(
            prop::collection::vec(0u64..12, 1..5).prop_map(|mut v| { v.sort_unstable(); v }),
            1..5,
        ),
        takes in prop::collection::vec(0u64..20, 0..14).prop_map(|mut v| { v.sort_unstable(); v }),
    ) {
        putters_run(maxsize, producers, takes, None)?;
    }

    #[test]
    fn queue_storms_conserve_items(
        maxsize in 0usize..4,
        producers in prop::collection::vec(queue_actor(), 1..4),
        consumers in prop::collection::vec(queue_actor(), 1..4),
        seed in prop::option::weighted(0.5, any::<u64>()),
    ) {
        queue_storm(maxsize, producers, consumers, seed)?;
    }
}

// -------------------------------------------------------------------------
// Fixed cases that once mattered, kept as plain tests.

#[test]
fn lock_waiter_timing_out_as_the_lock_is_released_lets_the_next_one_have_it() {
    // B's timeout fires in the tick A's hold ends: B leaves the line while
    // it is at its head; C must still get the lock.
    let scripts = vec![
        Acquirer {
            arrive: 0,
            hold: 5,
            patience: None,
            cancel_at: None,
        },
        Acquirer {
            arrive: 1,
            hold: 1,
            patience: Some(4),
            cancel_at: None,
        },
        Acquirer {
            arrive: 2,
            hold: 1,
            patience: None,
            cancel_at: None,
        },
    ];
    lock_run(scripts, None).unwrap();
}

#[test]
fn storm_with_every_consumer_cancelled_keeps_items_in_the_queue() {
    let actor = |ops: Vec<(u64, Option<u64>)>, cancel_at| QueueActor { ops, cancel_at };
    queue_storm(
        1,
        vec![actor(vec![(0, None), (0, None), (1, Some(2))], None)],
        vec![actor(vec![(1, None), (0, None)], Some(1))],
        None,
    )
    .unwrap();
}
