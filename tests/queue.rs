//! `bucle::sync` queues: Queue, LifoQueue, PriorityQueue.
//!
//! Behaviour (order, maxsize, the nowait errors, task_done/join), Python
//! 3.13's shutdown semantics, the exact wake-up order of CPython's
//! `asyncio/queues.py` — each ordering test carries the Python program it
//! was checked against and the list CPython 3.13 printed — and cancellation
//! safety: a getter or putter cancelled or timed out while waiting never
//! loses or duplicates an item and never leaves a ghost waiter.

mod common;

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::rc::Rc;

use bucle::sync::{
    GenericQueue, LifoQueue, PriorityQueue, PutError, Queue, QueueShutDown, QueueStorage,
    TaskDoneError, TryGetError, TryPutError,
};
use bucle::{EventLoop, sleep, spawn, stack_pool_stats, time, timeout, yield_now};
use common::drops::{Drops, Token};
use common::sync_support::{
    Log, OnCancel, deadlock_message, expect_panic, join_all, lines, secs, vrun,
};

// -------------------------------------------------------------------------
// Helpers.

// -------------------------------------------------------------------------
// The seed story.

/// The seed story (5.5.1): a producer and a consumer.
///
/// ```python
/// async def producer(queue, n):
///     for i in range(n):
///         item = f"item_{i}"
///         await queue.put(item)
///         print(f"Productor añadió: {item}")
///         await asyncio.sleep(1)
///     await queue.put(None)
///
/// async def consumer(queue):
///     while True:
///         item = await queue.get()
///         if item is None:
///             break
///         print(f"Consumidor procesó: {item}")
///         await asyncio.sleep(2)
///     print("El consumidor ha terminado de trabajar")
///
/// async def main():
///     queue = asyncio.Queue()
///     await asyncio.gather(producer(queue, 5), consumer(queue))
/// ```
#[test]
fn producer_consumer_story_prints_what_cpython_prints() {
    let out = vrun(|| {
        let log = Log::default();
        let queue: Queue<Option<String>> = Queue::new();
        let producer = {
            let (log, queue) = (log.clone(), queue.clone());
            spawn(move || {
                for i in 0..5 {
                    let item = format!("item_{i}");
                    queue.put(Some(item.clone())).unwrap();
                    log.push(format!("Productor añadió: {item}"));
                    sleep(secs(1));
                }
                queue.put(None).unwrap();
            })
        };
        let consumer = {
            let (log, queue) = (log.clone(), queue.clone());
            spawn(move || {
                while let Some(item) = queue.get().unwrap() {
                    log.push(format!("Consumidor procesó: {item}"));
                    sleep(secs(2));
                }
                log.push("El consumidor ha terminado de trabajar");
            })
        };
        bucle::gather([producer, consumer]).unwrap();
        log.lines()
    });
    assert_eq!(
        out,
        lines(&[
            "Productor añadió: item_0",
            "Consumidor procesó: item_0",
            "Productor añadió: item_1",
            "Consumidor procesó: item_1",
            "Productor añadió: item_2",
            "Productor añadió: item_3",
            "Consumidor procesó: item_2",
            "Productor añadió: item_4",
            "Consumidor procesó: item_3",
            "Consumidor procesó: item_4",
            "El consumidor ha terminado de trabajar",
        ])
    );
}

// -------------------------------------------------------------------------
// Order and size.

#[test]
fn fifo_lifo_and_priority_order() {
    vrun(|| {
        let fifo = Queue::new();
        let lifo = LifoQueue::new();
        let prio = PriorityQueue::new();
        for x in [3, 1, 4, 1, 5, 9, 2, 6] {
            fifo.put_nowait(x).unwrap();
            lifo.put_nowait(x).unwrap();
            prio.put_nowait(x).unwrap();
        }
        let drain = |get: &dyn Fn() -> Result<i32, TryGetError>| {
            std::iter::from_fn(|| get().ok()).collect::<Vec<_>>()
        };
        assert_eq!(drain(&|| fifo.get_nowait()), [3, 1, 4, 1, 5, 9, 2, 6]);
        assert_eq!(drain(&|| lifo.get_nowait()), [6, 2, 9, 5, 1, 4, 1, 3]);
        assert_eq!(drain(&|| prio.get_nowait()), [1, 1, 2, 3, 4, 5, 6, 9]);
    });
}

#[test]
fn priority_queue_orders_tuples_like_heapq() {
    vrun(|| {
        let q = PriorityQueue::new();
        for job in [(2, "b"), (1, "z"), (2, "a"), (0, "x")] {
            q.put(job).unwrap();
        }
        let got: Vec<_> = (0..4).map(|_| q.get().unwrap()).collect();
        assert_eq!(got, [(0, "x"), (1, "z"), (2, "a"), (2, "b")]);
    });
}

#[test]
fn sizes_and_nowait_errors() {
    vrun(|| {
        let q = Queue::with_maxsize(2);
        assert_eq!(q.maxsize(), 2);
        assert!(q.is_empty() && !q.is_full());
        assert_eq!(q.get_nowait(), Err(TryGetError::Empty));
        q.put_nowait("a").unwrap();
        q.put_nowait("b").unwrap();
        assert_eq!(q.len(), 2);
        assert!(q.is_full());
        let err = q.put_nowait("c").unwrap_err();
        assert!(err.is_full() && !err.is_shut_down());
        assert_eq!(err, TryPutError::Full("c"));
        assert_eq!(err.into_inner(), "c", "the refused item comes back");
        assert_eq!(q.get_nowait(), Ok("a"));
        assert!(!q.is_full());
        assert_eq!(TryGetError::Empty.to_string(), "the queue is empty");
        assert_eq!(TryPutError::Full(0).to_string(), "the queue is full");

        let unbounded = Queue::new();
        assert_eq!(unbounded.maxsize(), 0);
        for i in 0..1000 {
            unbounded.put_nowait(i).unwrap();
        }
        assert!(!unbounded.is_full(), "an unbounded queue is never full");
        assert_eq!(unbounded.len(), 1000);
    });
}

#[test]
fn get_and_put_with_room_do_not_suspend() {
    vrun(|| {
        let q = Queue::with_maxsize(1);
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let other = spawn(move || r.set(true));
        q.put(1).unwrap();
        assert_eq!(q.get(), Ok(1));
        q.put(2).unwrap();
        assert_eq!(q.get(), Ok(2));
        assert!(
            !ran.get(),
            "put and get with room/items must not let others run"
        );
        other.join().unwrap();
    });
}

#[test]
fn put_waits_while_full_and_get_waits_while_empty() {
    vrun(|| {
        let q = Queue::with_maxsize(1);
        let producer = {
            let q = q.clone();
            spawn(move || {
                for i in 0..3 {
                    q.put(i).unwrap();
                }
                time()
            })
        };
        let mut got = Vec::new();
        for _ in 0..3 {
            sleep(secs(1));
            got.push((q.get().unwrap(), time().as_secs()));
        }
        assert_eq!(got, [(0, 1), (1, 2), (2, 3)]);
        assert_eq!(producer.join(), Ok(secs(2)), "the last put waited for room");
        let consumer = {
            let q = q.clone();
            spawn(move || (q.get().unwrap(), time()))
        };
        sleep(secs(5));
        q.put(7).unwrap();
        assert_eq!(consumer.join(), Ok((7, secs(8))));
    });
}

#[test]
fn custom_storage_gives_a_queue_with_another_discipline() {
    /// Hands out the largest item first.
    #[derive(Default)]
    struct MaxFirst(BinaryHeap<u32>);
    impl QueueStorage<u32> for MaxFirst {
        fn push(&mut self, item: u32) {
            self.0.push(item);
        }
        fn pop(&mut self) -> Option<u32> {
            self.0.pop()
        }
        fn len(&self) -> usize {
            self.0.len()
        }
    }
    vrun(|| {
        let q: GenericQueue<u32, MaxFirst> = GenericQueue::with_maxsize(3);
        for x in [2, 7, 5] {
            q.put(x).unwrap();
        }
        assert!(q.is_full());
        assert_eq!(q.get(), Ok(7));
        // Storage given up front: its items are not unfinished work.
        let seeded = GenericQueue::with_storage(VecDeque::from([1, 2]), 0);
        assert_eq!(seeded.len(), 2);
        assert_eq!(seeded.unfinished_tasks(), 0);
        seeded.join();
        let heap: GenericQueue<i32, BinaryHeap<Reverse<i32>>> = GenericQueue::new();
        heap.put_nowait(3).unwrap();
        heap.put_nowait(-1).unwrap();
        assert_eq!(heap.get_nowait(), Ok(-1));
    });
}

// -------------------------------------------------------------------------
// Fairness.

#[test]
fn getters_are_served_in_arrival_order() {
    let out = vrun(|| {
        let q = Queue::new();
        let log = Log::default();
        let getters: Vec<_> = (0..5)
            .map(|i| {
                let (q, log) = (q.clone(), log.clone());
                spawn(move || log.push(format!("getter {i} got {}", q.get().unwrap())))
            })
            .collect();
        yield_now();
        for x in ["a", "b", "c", "d", "e"] {
            q.put_nowait(x).unwrap();
        }
        join_all(getters);
        log.lines()
    });
    assert_eq!(
        out,
        lines(&[
            "getter 0 got a",
            "getter 1 got b",
            "getter 2 got c",
            "getter 3 got d",
            "getter 4 got e",
        ])
    );
}

#[test]
fn putters_are_served_in_arrival_order() {
    let got = vrun(|| {
        let q = Queue::with_maxsize(1);
        q.put_nowait(0).unwrap();
        let putters: Vec<_> = (1..=5)
            .map(|i| {
                let q = q.clone();
                spawn(move || q.put(i).unwrap())
            })
            .collect();
        yield_now();
        assert!(format!("{q:?}").contains("putters: 5"), "{q:?}");
        let mut got = Vec::new();
        for _ in 0..6 {
            got.push(q.get().unwrap());
            yield_now();
        }
        join_all(putters);
        got
    });
    assert_eq!(got, [0, 1, 2, 3, 4, 5]);
}

/// As in CPython, `get_nowait` may take an item signalled to a waiting
/// getter that has not run yet; that getter waits again, behind the others.
///
/// ```python
/// async def g(name):
///     item = await q.get()
///     log.append(f"{name} got {item}")
/// a = asyncio.create_task(g("A")); b = asyncio.create_task(g("B"))
/// await asyncio.sleep(0)
/// q.put_nowait(1)
/// log.append(f"main stole {q.get_nowait()}")
/// q.put_nowait(2)
/// await asyncio.sleep(0)
/// q.put_nowait(3)
/// await asyncio.gather(a, b)
/// ```
#[test]
fn get_nowait_can_take_an_item_signalled_to_a_waiter_as_in_cpython() {
    let out = vrun(|| {
        let q = Queue::new();
        let log = Log::default();
        let g = |name: &'static str| {
            let (q, log) = (q.clone(), log.clone());
            spawn(move || log.push(format!("{name} got {}", q.get().unwrap())))
        };
        let a = g("A");
        let b = g("B");
        yield_now();
        q.put_nowait(1).unwrap();
        log.push(format!("main stole {}", q.get_nowait().unwrap()));
        q.put_nowait(2).unwrap();
        yield_now();
        q.put_nowait(3).unwrap();
        join_all([a, b]);
        log.lines()
    });
    assert_eq!(out, lines(&["main stole 1", "A got 2", "B got 3"]));
}

// -------------------------------------------------------------------------
// task_done and join.

#[test]
fn join_waits_until_every_item_is_marked_done() {
    vrun(|| {
        let q = Queue::new();
        q.join(); // nothing unfinished: returns at once
        for i in 0..3 {
            q.put_nowait(i).unwrap();
        }
        assert_eq!(q.unfinished_tasks(), 3);
        let worker = {
            let q = q.clone();
            spawn(move || {
                while let Ok(_item) = q.get() {
                    sleep(secs(1));
                    q.task_done();
                }
            })
        };
        q.join();
        assert_eq!(time(), secs(3));
        assert_eq!(q.unfinished_tasks(), 0);
        q.shutdown(false);
        worker.join().unwrap();
    });
}

#[test]
fn task_done_too_many_times_is_a_clear_error() {
    vrun(|| {
        let q = Queue::new();
        assert_eq!(q.try_task_done(), Err(TaskDoneError));
        assert_eq!(
            TaskDoneError.to_string(),
            "task_done() called too many times"
        );
        q.put_nowait(1).unwrap();
        let _ = q.get_nowait();
        assert_eq!(q.try_task_done(), Ok(()));
        assert_eq!(q.try_task_done(), Err(TaskDoneError));
        assert_eq!(
            q.unfinished_tasks(),
            0,
            "a refused task_done changes nothing"
        );
        let t = {
            let q = q.clone();
            spawn(move || q.task_done())
        };
        expect_panic(t, "task_done() called too many times");
    });
}

#[test]
fn several_joiners_all_wake() {
    vrun(|| {
        let q = Queue::new();
        q.put_nowait(()).unwrap();
        let joiners: Vec<_> = (0..3)
            .map(|_| {
                let q = q.clone();
                spawn(move || {
                    q.join();
                    time()
                })
            })
            .collect();
        sleep(secs(2));
        q.get().unwrap();
        q.task_done();
        for j in joiners {
            assert_eq!(j.join(), Ok(secs(2)));
        }
    });
}

// -------------------------------------------------------------------------
// Shutdown (Python 3.13).

/// ```python
/// q = asyncio.Queue(2)
/// async def g(name):
///     try:
///         while True:
///             item = await q.get()
///             log.append(f"{name} got {item}")
///             await asyncio.sleep(0)
///     except asyncio.QueueShutDown:
///         log.append(f"{name} shut down")
/// async def p(name, x):
///     try:
///         await q.put(x)
///         log.append(f"{name} put {x}")
///     except asyncio.QueueShutDown:
///         log.append(f"{name} put refused {x}")
/// for i in range(2): q.put_nowait(i)
/// ps = [asyncio.create_task(p("P", 10)), asyncio.create_task(p("Q", 11))]
/// await asyncio.sleep(0)
/// q.shutdown()
/// log.append(f"shutdown len {q.qsize()}")
/// gs = [asyncio.create_task(g("G")), asyncio.create_task(g("H"))]
/// await asyncio.gather(*ps, *gs)
/// ```
#[test]
fn shutdown_refuses_puts_wakes_putters_and_lets_getters_drain() {
    let out = vrun(|| {
        let q = Queue::with_maxsize(2);
        let log = Log::default();
        let g = |name: &'static str| {
            let (q, log) = (q.clone(), log.clone());
            spawn(move || {
                loop {
                    match q.get() {
                        Ok(item) => log.push(format!("{name} got {item}")),
                        Err(QueueShutDown) => {
                            log.push(format!("{name} shut down"));
                            return;
                        }
                    }
                    yield_now();
                }
            })
        };
        let p = |name: &'static str, x: i32| {
            let (q, log) = (q.clone(), log.clone());
            spawn(move || match q.put(x) {
                Ok(()) => log.push(format!("{name} put {x}")),
                Err(PutError(item)) => log.push(format!("{name} put refused {item}")),
            })
        };
        for i in 0..2 {
            q.put_nowait(i).unwrap();
        }
        let ps = [p("P", 10), p("Q", 11)];
        yield_now();
        q.shutdown(false);
        assert!(q.is_shut_down());
        log.push(format!("shutdown len {}", q.len()));
        let gs = [g("G"), g("H")];
        join_all(ps);
        join_all(gs);
        assert_eq!(q.put_nowait(99), Err(TryPutError::ShutDown(99)));
        assert_eq!(q.put(98), Err(PutError(98)));
        assert_eq!(q.get_nowait(), Err(TryGetError::ShutDown));
        assert_eq!(q.get(), Err(QueueShutDown));
        log.lines()
    });
    assert_eq!(
        out,
        lines(&[
            "shutdown len 2",
            "P put refused 10",
            "Q put refused 11",
            "G got 0",
            "H got 1",
            "G shut down",
            "H shut down",
        ])
    );
}

#[test]
fn shutdown_wakes_getters_waiting_on_an_empty_queue() {
    vrun(|| {
        let q: Queue<u8> = Queue::new();
        let getters: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                spawn(move || q.get())
            })
            .collect();
        yield_now();
        q.shutdown(false);
        for g in getters {
            assert_eq!(g.join(), Ok(Err(QueueShutDown)));
        }
        assert!(format!("{q:?}").contains("getters: 0"));
    });
}

/// ```python
/// q = asyncio.Queue()
/// for i in range(3): q.put_nowait(i)
/// q.get_nowait()
/// async def j():
///     await q.join(); log.append("joined")
/// t = asyncio.create_task(j())
/// await asyncio.sleep(0)
/// q.shutdown(immediate=True)
/// log.append(f"len {q.qsize()} unfinished {q._unfinished_tasks}")
/// await asyncio.sleep(0)
/// log.append(f"join done {t.done()}")
/// q.task_done()
/// await t
/// try:
///     q.get_nowait()
/// except asyncio.QueueShutDown:
///     log.append("get_nowait shut down")
/// ```
#[test]
fn immediate_shutdown_discards_items_and_counts_them_done() {
    let drops = Drops::new();
    let d = drops.clone();
    let out = vrun(move || {
        let q: Queue<Token> = Queue::new();
        let log = Log::default();
        for i in 0..3 {
            q.put_nowait(d.token(i)).unwrap();
        }
        let first = q.get_nowait().unwrap();
        let j = {
            let (q, log) = (q.clone(), log.clone());
            spawn(move || {
                q.join();
                log.push("joined");
            })
        };
        yield_now();
        q.shutdown(true);
        log.push(format!(
            "len {} unfinished {}",
            q.len(),
            q.unfinished_tasks()
        ));
        assert_eq!(d.dropped(), 2, "the two items left were dropped");
        yield_now();
        log.push(format!("join done {}", j.is_done()));
        q.task_done();
        j.join().unwrap();
        if let Err(TryGetError::ShutDown) = q.get_nowait() {
            log.push("get_nowait shut down");
        }
        drop(first);
        log.lines()
    });
    assert_eq!(
        out,
        lines(&[
            "len 0 unfinished 1",
            "join done false",
            "joined",
            "get_nowait shut down",
        ])
    );
    assert!(drops.all_dropped_once(), "{}", drops.report());
}

#[test]
fn immediate_shutdown_wakes_getters_with_an_error() {
    vrun(|| {
        let q: Queue<u8> = Queue::new();
        let g = {
            let q = q.clone();
            spawn(move || q.get())
        };
        yield_now();
        q.shutdown(true);
        assert_eq!(g.join(), Ok(Err(QueueShutDown)));
        // A later plain shutdown changes nothing.
        q.shutdown(false);
        assert!(q.is_shut_down());
    });
}

#[test]
fn immediate_shutdown_releases_joiners_when_it_leaves_nothing_unfinished() {
    vrun(|| {
        let q = Queue::new();
        q.put_nowait('a').unwrap();
        q.put_nowait('b').unwrap();
        let joiner = {
            let q = q.clone();
            spawn(move || {
                q.join();
                time()
            })
        };
        sleep(secs(1));
        assert!(!joiner.is_done());
        q.shutdown(true);
        assert_eq!(q.unfinished_tasks(), 0);
        assert_eq!(joiner.join(), Ok(secs(1)));
        q.join();
    });
}

#[test]
fn items_whose_destructor_uses_the_queue_can_be_discarded_by_shutdown() {
    struct Nosy(Queue<Nosy>, Rc<Cell<usize>>);
    impl Drop for Nosy {
        fn drop(&mut self) {
            // Reads the queue while it is being shut down.
            self.1.set(self.1.get() + self.0.len() + 1);
        }
    }
    vrun(|| {
        let q: Queue<Nosy> = Queue::new();
        let seen = Rc::new(Cell::new(0));
        for _ in 0..2 {
            q.put_nowait(Nosy(q.clone(), seen.clone())).unwrap();
        }
        q.shutdown(true);
        assert_eq!(seen.get(), 2, "both dropped, after the queue was emptied");
    });
}

// -------------------------------------------------------------------------
// Cancellation safety.

/// ```python
/// q = asyncio.Queue()
/// async def g(name):
///     try:
///         item = await q.get()
///     except asyncio.CancelledError:
///         log.append(f"{name} cancelled"); raise
///     log.append(f"{name} got {item}")
/// a = asyncio.create_task(g("A")); b = asyncio.create_task(g("B"))
/// await asyncio.sleep(0)
/// q.put_nowait(1)
/// a.cancel()
/// await asyncio.gather(a, b, return_exceptions=True)
/// log.append(f"left {q.qsize()}")
/// ```
#[test]
fn woken_getter_cancelled_before_running_leaves_the_item_to_the_next() {
    let out = vrun(|| {
        let q = Queue::new();
        let log = Log::default();
        let g = |name: &'static str| {
            let (q, log) = (q.clone(), log.clone());
            spawn(move || {
                let c = OnCancel(log.clone(), format!("{name} cancelled"));
                let item = q.get().unwrap();
                drop(c);
                log.push(format!("{name} got {item}"));
            })
        };
        let a = g("A");
        let b = g("B");
        yield_now();
        q.put_nowait(1).unwrap();
        a.cancel();
        join_all([a, b]);
        log.push(format!("left {}", q.len()));
        log.lines()
    });
    assert_eq!(out, lines(&["A cancelled", "B got 1", "left 0"]));
}

/// ```python
/// q = asyncio.Queue(1)
/// q.put_nowait(0)
/// async def p(name, x):
///     try:
///         await q.put(x)
///     except asyncio.CancelledError:
///         log.append(f"{name} cancelled"); raise
///     log.append(f"{name} put {x}")
/// a = asyncio.create_task(p("A", 1)); b = asyncio.create_task(p("B", 2))
/// await asyncio.sleep(0)
/// log.append(f"main got {q.get_nowait()}")
/// a.cancel()
/// await asyncio.gather(a, b, return_exceptions=True)
/// log.append(f"main got {q.get_nowait()} left {q.qsize()}")
/// ```
#[test]
fn woken_putter_cancelled_before_running_leaves_the_room_to_the_next() {
    let out = vrun(|| {
        let q = Queue::with_maxsize(1);
        let log = Log::default();
        q.put_nowait(0).unwrap();
        let p = |name: &'static str, x: i32| {
            let (q, log) = (q.clone(), log.clone());
            spawn(move || {
                let c = OnCancel(log.clone(), format!("{name} cancelled"));
                q.put(x).unwrap();
                drop(c);
                log.push(format!("{name} put {x}"));
            })
        };
        let a = p("A", 1);
        let b = p("B", 2);
        yield_now();
        log.push(format!("main got {}", q.get_nowait().unwrap()));
        a.cancel();
        join_all([a, b]);
        log.push(format!(
            "main got {} left {}",
            q.get_nowait().unwrap(),
            q.len()
        ));
        log.lines()
    });
    assert_eq!(
        out,
        lines(&["main got 0", "A cancelled", "B put 2", "main got 2 left 0",])
    );
}

/// A cancelled getter whose task has not unwound yet is still in line; a
/// put must skip it and wake the next one.
///
/// ```python
/// a = asyncio.create_task(g("A")); b = asyncio.create_task(g("B"))
/// await asyncio.sleep(0)
/// a.cancel()
/// q.put_nowait(1)
/// await asyncio.gather(a, b, return_exceptions=True)
/// ```
#[test]
fn put_skips_a_cancelled_getter_still_in_line() {
    let out = vrun(|| {
        let q = Queue::new();
        let log = Log::default();
        let g = |name: &'static str| {
            let (q, log) = (q.clone(), log.clone());
            spawn(move || {
                let c = OnCancel(log.clone(), format!("{name} cancelled"));
                let item = q.get().unwrap();
                drop(c);
                log.push(format!("{name} got {item}"));
            })
        };
        let a = g("A");
        let b = g("B");
        yield_now();
        a.cancel();
        q.put_nowait(1).unwrap();
        join_all([a, b]);
        log.lines()
    });
    assert_eq!(out, lines(&["A cancelled", "B got 1"]));
}

/// The same for putters: a get must skip a cancelled putter still in line.
///
/// ```python
/// q = asyncio.Queue(1)
/// q.put_nowait(0)
/// a = asyncio.create_task(p("A", 1)); b = asyncio.create_task(p("B", 2))
/// await asyncio.sleep(0)
/// a.cancel()
/// log.append(f"main got {q.get_nowait()}")
/// await asyncio.gather(a, b, return_exceptions=True)
/// log.append(f"left {list(q._queue)}")
/// ```
#[test]
fn get_skips_a_cancelled_putter_still_in_line() {
    let out = vrun(|| {
        let q = Queue::with_maxsize(1);
        let log = Log::default();
        q.put_nowait(0).unwrap();
        let p = |name: &'static str, x: i32| {
            let (q, log) = (q.clone(), log.clone());
            spawn(move || {
                let c = OnCancel(log.clone(), format!("{name} cancelled"));
                q.put(x).unwrap();
                drop(c);
                log.push(format!("{name} put {x}"));
            })
        };
        let a = p("A", 1);
        let b = p("B", 2);
        yield_now();
        a.cancel();
        log.push(format!("main got {}", q.get_nowait().unwrap()));
        join_all([a, b]);
        let left: Vec<_> = std::iter::from_fn(|| q.get_nowait().ok()).collect();
        log.push(format!("left {left:?}"));
        log.lines()
    });
    assert_eq!(
        out,
        lines(&["main got 0", "A cancelled", "B put 2", "left [2]"])
    );
}

#[test]
fn timed_out_getters_and_putters_lose_nothing_and_leave_no_ghosts() {
    let drops = Drops::new();
    let d = drops.clone();
    vrun(move || {
        let q: Queue<Token> = Queue::with_maxsize(1);
        // Getters on an empty queue time out.
        for _ in 0..3 {
            assert!(timeout(secs(1), || q.get()).is_err());
        }
        assert!(format!("{q:?}").contains("getters: 0"), "{q:?}");
        // Putters on a full queue time out; their items are dropped, never added.
        q.put_nowait(d.token(0)).unwrap();
        for i in 1..4 {
            let (token, qr) = (d.token(i), &q);
            assert!(timeout(secs(1), move || qr.put(token)).is_err());
        }
        assert!(format!("{q:?}").contains("putters: 0"), "{q:?}");
        assert_eq!(d.of(1), [1], "the timed-out put's item was dropped once");
        assert_eq!(q.len(), 1);
        assert_eq!(q.unfinished_tasks(), 1);
        // Both lines still work.
        let getter = {
            let q = q.clone();
            spawn(move || {
                let a = q.get().unwrap();
                let b = q.get().unwrap();
                (a, b)
            })
        };
        q.put(d.token(9)).unwrap();
        let (a, b) = getter.join().unwrap();
        assert_eq!((d.of(0), d.of(9)), (vec![0], vec![0]), "still alive");
        drop((a, b));
        assert!(q.is_empty());
    });
    assert!(drops.all_dropped_once(), "{}", drops.report());
}

#[test]
fn getter_timing_out_in_the_tick_its_item_arrives_leaves_the_item_queued() {
    // The put and the timeout land in the same tick: the getter is woken
    // with an item and unwound before it takes it. The item must stay.
    vrun(|| {
        let q = Queue::new();
        let getter = {
            let q = q.clone();
            spawn(move || timeout(secs(1), || q.get().unwrap()))
        };
        let putter = {
            let q = q.clone();
            bucle::call_later(secs(1), move || q.put_nowait("item").unwrap())
        };
        let r = getter.join().unwrap();
        drop(putter);
        assert!(r.is_err(), "the timeout fired after the item was signalled");
        assert_eq!(q.get_nowait(), Ok("item"), "the item was not lost");
    });
}

#[test]
fn deadlock_reports_name_queue_operations() {
    let get = deadlock_message(|| {
        let q: Queue<u8> = Queue::new();
        let _ = q.get();
    });
    assert!(get.contains("waits on Queue.get"), "{get}");
    let put = deadlock_message(|| {
        let q = Queue::with_maxsize(1);
        q.put(1).unwrap();
        q.put(2).unwrap();
    });
    assert!(put.contains("waits on Queue.put"), "{put}");
    let join = deadlock_message(|| {
        let q = Queue::new();
        q.put(1).unwrap();
        q.join();
    });
    assert!(join.contains("waits on Queue.join"), "{join}");
}

#[test]
fn closing_the_loop_with_blocked_putters_drops_every_item_once() {
    let base = stack_pool_stats().in_use;
    let drops = Drops::new();
    {
        let lp = EventLoop::builder().virtual_time().build();
        let d = drops.clone();
        let q: Queue<Token> = Queue::with_maxsize(1);
        let q2 = q.clone();
        lp.run_until_complete(move || {
            q2.put_nowait(d.token(0)).unwrap();
            for i in 1..5 {
                let (q, token) = (q2.clone(), d.token(i));
                spawn(move || q.put(token).unwrap());
            }
            for _ in 0..3 {
                let q = Queue::<Token>::new();
                spawn(move || drop(q.get()));
            }
            yield_now();
        });
        assert_eq!(drops.dropped(), 0);
        drop(lp);
        assert_eq!(
            drops.dropped(),
            4,
            "the blocked putters' items went with their stacks"
        );
        assert!(format!("{q:?}").contains("putters: 0"), "{q:?}");
        assert_eq!(q.len(), 1);
    }
    assert!(drops.all_dropped_once(), "{}", drops.report());
    assert_eq!(stack_pool_stats().in_use, base);
}
