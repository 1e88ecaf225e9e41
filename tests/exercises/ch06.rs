//! Chapter 6, synchronisation primitives and queues
//! (`docs/06-sync-and-queues.md`): exercises.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

use bucle::Future;
use bucle::sync::{Event, Lock, Queue, Semaphore};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn virtual_loop() -> bucle::EventLoop {
    bucle::EventLoop::builder().virtual_time().build()
}

/// Exercise 1.
#[test]
fn a_semaphore_bounds_concurrency() {
    let (most, ended) = virtual_loop().run_until_complete(|| {
        let sem = Semaphore::new(3);
        let running = Rc::new(Cell::new(0));
        let most = Rc::new(Cell::new(0));
        let downloads: Vec<_> = (0..10)
            .map(|_| {
                let (sem, running, most) = (sem.clone(), running.clone(), most.clone());
                bucle::spawn(move || {
                    let _permit = sem.acquire();
                    running.set(running.get() + 1);
                    most.set(most.get().max(running.get()));
                    bucle::sleep(secs(1));
                    running.set(running.get() - 1); // before the permit drops
                })
            })
            .collect();
        bucle::gather(downloads).unwrap();
        (most.get(), bucle::time())
    });
    assert_eq!(most, 3);
    assert_eq!(ended, secs(4)); // ⌈10 / 3⌉ rounds of one second
}

/// Exercise 2: `wait` returns once `n` tasks have called it; `true` for
/// exactly one of them, the last to arrive.
#[derive(Clone)]
struct Barrier {
    n: usize,
    arrived: Rc<Cell<usize>>,
    all_here: Event,
}

impl Barrier {
    fn new(n: usize) -> Self {
        Barrier {
            n,
            arrived: Rc::new(Cell::new(0)),
            all_here: Event::new(),
        }
    }

    fn wait(&self) -> bool {
        self.arrived.set(self.arrived.get() + 1);
        if self.arrived.get() == self.n {
            self.all_here.set(); // wakes the others, in arrival order
            true
        } else {
            self.all_here.wait();
            false
        }
    }
}

#[test]
fn a_barrier_releases_everyone_together() {
    let out = virtual_loop().run_until_complete(|| {
        let barrier = Barrier::new(4);
        let tasks: Vec<_> = [3, 1, 4, 2]
            .into_iter()
            .map(|s| {
                let barrier = barrier.clone();
                bucle::spawn(move || {
                    bucle::sleep(secs(s));
                    let last = barrier.wait();
                    (s, last, bucle::time())
                })
            })
            .collect();
        bucle::gather(tasks).unwrap()
    });
    // Everyone leaves at 4 s, when the last (the 4 s sleeper) arrives.
    assert_eq!(
        out,
        [
            (3, false, secs(4)),
            (1, false, secs(4)),
            (4, true, secs(4)),
            (2, false, secs(4)),
        ]
    );
}

/// Exercise 3.
#[test]
fn a_bounded_queue_slows_the_producer() {
    let put_times = virtual_loop().run_until_complete(|| {
        let queue = Queue::with_maxsize(2);
        let q = queue.clone();
        let producer = bucle::spawn(move || {
            let mut times = Vec::new();
            for item in 0..5 {
                q.put(item).unwrap();
                times.push(bucle::time());
            }
            times
        });
        let consumer = bucle::spawn(move || {
            for expected in 0..5 {
                bucle::sleep(secs(1));
                assert_eq!(queue.get().unwrap(), expected);
            }
        });
        consumer.join().unwrap();
        producer.join().unwrap()
    });
    // Two puts find room; each later one waits for the next get.
    assert_eq!(put_times, [secs(0), secs(0), secs(1), secs(2), secs(3)]);
}

/// Exercise 4: an event made of futures, outside the kernel.
#[derive(Clone, Default)]
struct MyEvent {
    /// The future waiters wait on now; replaced by `clear` once done.
    current: Rc<RefCell<Future<()>>>,
}

impl MyEvent {
    fn is_set(&self) -> bool {
        self.current.borrow().is_done()
    }

    fn set(&self) {
        let fut = self.current.borrow().clone();
        let _ = fut.set_result(()); // already set: nothing to do
    }

    fn clear(&self) {
        if self.is_set() {
            // Tasks woken by the old future keep it, and return.
            let old = self.current.replace(Future::new());
            drop(old);
        }
    }

    fn wait(&self) {
        let fut = self.current.borrow().clone();
        // A set event: `wait` on a done future returns without suspending.
        fut.wait().expect("this event never cancels its futures");
    }
}

#[test]
fn an_event_built_on_futures() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    virtual_loop().run_until_complete(move || {
        let ev = MyEvent::default();
        let waiters: Vec<_> = ["A", "B"]
            .into_iter()
            .map(|name| {
                let (ev, l) = (ev.clone(), l.clone());
                bucle::spawn(move || {
                    ev.wait();
                    l.borrow_mut()
                        .push(format!("{name} at {:?}", bucle::time()));
                })
            })
            .collect();
        bucle::sleep(secs(1));
        ev.set();
        // Cleared before A and B have run: they were woken, and still return.
        ev.clear();
        assert!(!ev.is_set());
        bucle::gather(waiters).unwrap();

        // Set: `wait` does not suspend (the spawned task has not run yet).
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let other = bucle::spawn(move || r.set(true));
        ev.set();
        ev.wait();
        assert!(!ran.get());
        other.join().unwrap();
    });
    assert_eq!(*log.borrow(), ["A at 1s", "B at 1s"]);
}

/// Exercise 5.
#[test]
fn a_lock_taken_twice_is_a_reported_deadlock() {
    fn helper(lock: &Lock) {
        let _again = lock.acquire(); // not reentrant: waits for itself
    }
    let r = panic::catch_unwind(AssertUnwindSafe(|| {
        bucle::run(|| {
            let lock = Lock::new();
            let _held = lock.acquire();
            helper(&lock);
        })
    }));
    let msg = *r.unwrap_err().downcast::<String>().unwrap();
    assert!(msg.starts_with("bucle: deadlock"), "{msg}");
    assert!(msg.contains("waits on Lock"), "{msg}");
}
