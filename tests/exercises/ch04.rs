//! Chapter 4, time (`docs/04-timers.md`): exercises.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bucle::Elapsed;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Exercise 1: the toy of "A timer heap, in a few lines", with task ids and
/// lazy cancellation, and its `run` split into ticks.
mod toy_cancel {
    use std::cell::{Cell, RefCell};
    use std::cmp::Reverse;
    use std::collections::{BinaryHeap, HashMap};
    use std::rc::Rc;
    use std::time::Duration;

    use bucle::{Generator, GeneratorState, Yielder};

    type Sleeper = Generator<Duration, (), Duration>;

    #[derive(Default)]
    struct Loop {
        now: Duration,
        heap: BinaryHeap<Reverse<(Duration, u64)>>,
        /// By seq: the task a timer wakes, and its id. A cancelled task's
        /// seq is missing here; its heap entry stays, dead.
        work: HashMap<u64, (usize, Sleeper)>,
        /// By task id: the seq it sleeps under.
        sleeping: HashMap<usize, u64>,
        next_seq: u64,
        next_id: usize,
    }

    impl Loop {
        fn spawn(&mut self, body: impl FnOnce(&Yielder<Duration, Duration>) + 'static) -> usize {
            let id = self.next_id;
            self.next_id += 1;
            let task = Generator::new(move |y: &Yielder<Duration, Duration>, _start| body(y));
            self.push(id, self.now, task);
            id
        }

        fn push(&mut self, id: usize, deadline: Duration, task: Sleeper) {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.heap.push(Reverse((deadline, seq)));
            self.work.insert(seq, (id, task));
            self.sleeping.insert(id, seq);
        }

        /// Drops task `id` wherever it sleeps, without searching the heap.
        /// Whether it was sleeping.
        fn cancel(&mut self, id: usize) -> bool {
            let Some(seq) = self.sleeping.remove(&id) else {
                return false;
            };
            // Dropping the paused generator unwinds it (chapter 1).
            self.work.remove(&seq).is_some()
        }

        /// One tick; `false` once no live timer is left.
        fn tick(&mut self) -> bool {
            // Phase 1: drop dead entries on top (the real heap's
            // `pop_dead_top`), then wait for the earliest live deadline.
            while let Some(&Reverse((_, seq))) = self.heap.peek() {
                if self.work.contains_key(&seq) {
                    break;
                }
                self.heap.pop();
            }
            let Some(&Reverse((first, _))) = self.heap.peek() else {
                return false;
            };
            self.now = self.now.max(first);
            // Phase 2: the live timers due now; dead ones are skipped.
            let mut batch = Vec::new();
            while let Some(&Reverse((deadline, seq))) = self.heap.peek() {
                if deadline > self.now {
                    break;
                }
                self.heap.pop();
                if let Some((id, task)) = self.work.remove(&seq) {
                    self.sleeping.remove(&id);
                    batch.push((id, task));
                }
            }
            // Phase 3.
            for (id, mut task) in batch {
                if let GeneratorState::Yielded(nap) = task.resume(self.now) {
                    self.push(id, self.now + nap, task);
                }
            }
            true
        }

        fn run(&mut self) {
            while self.tick() {}
        }
    }

    struct OnDrop(Rc<Cell<bool>>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }

    #[test]
    fn a_cancelled_sleeper_never_wakes() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let unwound = Rc::new(Cell::new(false));
        let mut lp = Loop::default();
        let mut ids = Vec::new();
        for (name, secs) in [("a", 1), ("b", 5), ("c", 2)] {
            let (log, unwound) = (log.clone(), unwound.clone());
            ids.push(lp.spawn(move |y| {
                let _guard = (name == "b").then(|| OnDrop(unwound));
                let woke = y.yield_(Duration::from_secs(secs));
                log.borrow_mut()
                    .push(format!("{name} at {}s", woke.as_secs()));
            }));
        }
        assert!(lp.tick()); // every task starts and goes to sleep
        assert!(lp.cancel(ids[1]));
        assert!(unwound.get()); // b's stack unwound at once
        assert!(!lp.cancel(ids[1])); // nothing left to cancel
        assert_eq!(lp.heap.len(), 3); // b's entry is still there, dead
        lp.run();
        assert_eq!(*log.borrow(), ["a at 1s", "c at 2s"]);
        // The dead entry was dropped without moving the clock to 5 s.
        assert_eq!(lp.now, Duration::from_secs(2));
        assert!(lp.heap.is_empty());
    }
}

/// Exercise 2: calls `body` `n` times, at `start + k × period` exactly.
fn every(period: Duration, n: u32, mut body: impl FnMut()) {
    let start = bucle::time();
    for k in 1..=n {
        bucle::sleep_until(start + period * k);
        body();
    }
}

#[test]
fn a_ticker_does_not_drift() {
    let lp = bucle::EventLoop::builder().virtual_time().build();
    let (steady, drifting) = lp.run_until_complete(|| {
        let work = || bucle::sleep(Duration::from_millis(300));
        let mut steady = Vec::new();
        every(secs(1), 3, || {
            steady.push(bucle::time());
            work();
        });
        // The naive ticker, for comparison: each round also pays `work`.
        let start = bucle::time();
        let mut drifting = Vec::new();
        for _ in 0..3 {
            bucle::sleep(secs(1));
            drifting.push(bucle::time() - start);
            work();
        }
        (steady, drifting)
    });
    assert_eq!(steady, [secs(1), secs(2), secs(3)]);
    let ms = Duration::from_millis;
    assert_eq!(drifting, [ms(1000), ms(2300), ms(3600)]);
}

/// Exercise 3: each value sleeps that many seconds, then is pushed.
fn sleep_sort<T: Copy + 'static>(items: &[(u64, T)]) -> Vec<(u64, T)> {
    let out = Rc::new(RefCell::new(Vec::new()));
    let tasks = items.iter().map(|&(n, tag)| {
        let out = out.clone();
        bucle::spawn(move || {
            bucle::sleep(secs(n));
            out.borrow_mut().push((n, tag));
        })
    });
    bucle::gather(tasks.collect::<Vec<_>>()).unwrap();
    out.take()
}

#[test]
fn sleep_sort_is_stable() {
    let lp = bucle::EventLoop::builder().virtual_time().build();
    let sorted = lp.run_until_complete(|| {
        sleep_sort(&[(3, 'a'), (1, 'b'), (0, 'c'), (3, 'd'), (1, 'e'), (2, 'f')])
    });
    // Equal deadlines fire in creation order (the heap's seq), and the
    // tasks started sleeping in input order: 'b' before 'e', 'a' before 'd'.
    assert_eq!(
        sorted,
        [(0, 'c'), (1, 'b'), (1, 'e'), (2, 'f'), (3, 'a'), (3, 'd')]
    );
}

/// Exercise 4: `op` under a timeout of `first`, then twice that, and so
/// on: the first `Ok`, or the last `Err(Elapsed)`.
fn retry<T>(attempts: u32, first: Duration, mut op: impl FnMut() -> T) -> Result<T, Elapsed> {
    assert!(attempts > 0, "retry needs at least one attempt");
    let mut limit = first;
    let mut last = None;
    for _ in 0..attempts {
        match bucle::timeout(limit, &mut op) {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
        limit *= 2;
    }
    Err(last.expect("at least one attempt ran"))
}

#[test]
fn retry_doubles_the_timeout() {
    let lp = bucle::EventLoop::builder().virtual_time().build();
    lp.run_until_complete(|| {
        let slow = || {
            bucle::sleep(secs(5));
            "done"
        };
        // Timeouts of 1, 2 and 4 s fail; the fourth, 8 s, lets the 5 s through.
        assert_eq!(retry(5, secs(1), slow), Ok("done"));
        assert_eq!(bucle::time(), secs(1 + 2 + 4 + 5));

        let start = bucle::time();
        let err = retry(3, secs(1), slow).unwrap_err();
        assert_eq!(bucle::time() - start, secs(1 + 2 + 4));
        assert_eq!(err.deadline(), bucle::time());
    });
}

fn is_prime(n: u64) -> bool {
    n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
}

/// Exercise 5: counts primes below `n`, with a suspension point every
/// thousand candidates so that a timeout (or a cancel) can stop it.
fn count_primes_below(n: u64) -> u64 {
    let mut count = 0;
    for candidate in 2..n {
        if candidate % 1000 == 0 {
            bucle::yield_now();
        }
        if is_prime(candidate) {
            count += 1;
        }
    }
    count
}

#[test]
fn a_yielding_computation_can_be_timed_out() {
    bucle::run(|| {
        assert_eq!(count_primes_below(100), 25);
        // Far too much work for 5 ms: stopped at a yield after the deadline.
        // (On the virtual clock time would stand still — a task that only
        // yields is always ready — and the deadline would never come.)
        let r = bucle::timeout(Duration::from_millis(5), || count_primes_below(1 << 40));
        assert!(r.is_err());
    });
}
