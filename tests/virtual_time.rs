//! Stage 4: the virtual clock. Time stands still while anything is ready
//! and jumps to the next timer when nothing is: programs that sleep for
//! hours finish at once, in the same order as on the real clock.

mod timer_support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bucle::{
    EventLoop, Handle, call_later, pending_timers, sleep, spawn, time, timeout, yield_now,
};
use proptest::prelude::*;
use timer_support::{Log, ms, secs, vrun};

#[test]
fn hours_of_sleep_take_milliseconds() {
    let started = Instant::now();
    let (end, per_task) = vrun(|| {
        let tasks: Vec<_> = (1..=5u64)
            .map(|h| {
                spawn(move || {
                    // An hour-long nap, then a minute-by-minute hour.
                    sleep(secs(3600 * h));
                    for _ in 0..60 {
                        sleep(secs(60));
                    }
                    time()
                })
            })
            .collect();
        let per_task: Vec<_> = tasks.into_iter().map(|t| t.join().unwrap()).collect();
        sleep(secs(24 * 3600));
        (time(), per_task)
    });
    let real = started.elapsed();
    assert_eq!(
        per_task,
        (1..=5u64).map(|h| secs(3600 * (h + 1))).collect::<Vec<_>>()
    );
    // main joined the last task at 6 h, then slept a day.
    assert_eq!(end, secs(6 * 3600 + 24 * 3600));
    assert!(
        real < secs(2),
        "30 virtual hours took {real:?} of real time"
    );
}

#[test]
fn the_virtual_clock_starts_at_zero_and_persists_across_runs() {
    let lp = EventLoop::builder().virtual_time().build();
    assert_eq!(lp.time(), Duration::ZERO);
    let a = lp.run_until_complete(|| {
        sleep(secs(10));
        time()
    });
    // Real time passing between runs does not move it.
    std::thread::sleep(ms(5));
    assert_eq!(lp.time(), secs(10));
    let b = lp.run_until_complete(|| {
        let t0 = time();
        sleep(secs(5));
        (t0, time())
    });
    assert_eq!(a, secs(10));
    assert_eq!(b, (secs(10), secs(15)));
}

#[test]
fn virtual_time_only_advances_when_nothing_is_ready() {
    let log = vrun(|| {
        let log = Log::new();
        let sleeper = {
            let log = log.clone();
            spawn(move || {
                sleep(ms(1));
                log.push(format!("sleeper woke@{:?}", time()));
            })
        };
        let busy = {
            let log = log.clone();
            spawn(move || {
                let t0 = time();
                for _ in 0..1000 {
                    yield_now();
                    assert_eq!(time(), t0, "time moved while a task was ready");
                }
                // Real work takes no virtual time either.
                let spin = Instant::now();
                while spin.elapsed() < ms(5) {
                    std::hint::spin_loop();
                }
                log.push(format!("busy done@{:?}", time()));
            })
        };
        busy.join().unwrap();
        sleeper.join().unwrap();
        log.snapshot()
    });
    assert_eq!(log, ["busy done@0ns", "sleeper woke@1ms"]);
}

#[test]
fn virtual_time_jumps_exactly_to_the_next_deadline() {
    let seen = vrun(|| {
        let seen = Rc::new(RefCell::new(Vec::new()));
        for d in [7u64, 3, 3, 11] {
            let s = seen.clone();
            call_later(Duration::from_nanos(d), move || s.borrow_mut().push(time()));
        }
        sleep(Duration::from_nanos(20));
        seen.borrow().clone()
    });
    let ns = Duration::from_nanos;
    assert_eq!(seen, [ns(3), ns(3), ns(7), ns(11)]);
}

/// A small program with several tasks, callbacks and a timeout; `unit` is
/// its time step. Every event is at least one unit from every other, so the
/// real clock's small overshoots cannot reorder them.
fn program(unit: Duration) -> Vec<String> {
    let log = Log::new();
    let u = move |n: u32| unit * n;
    let a = {
        let log = log.clone();
        spawn(move || {
            for i in 1..=4 {
                sleep(u(2));
                log.push(format!("a{i}")); // at 2, 4, 6, 8
            }
        })
    };
    let b = {
        let log = log.clone();
        spawn(move || {
            sleep(u(5));
            log.push("b1"); // at 5
            let r = timeout(u(4), || {
                sleep(u(2));
                log.push("b2"); // at 7
                sleep(u(10));
                log.push("b: not reached");
            });
            log.push(format!("b timeout elapsed={}", r.is_err())); // at 9
            sleep(u(1));
            log.push("b3"); // at 10
        })
    };
    {
        let log = log.clone();
        call_later(u(3), move || log.push("cb3"));
    }
    {
        // Two callbacks due at 1; the older one cancels the younger.
        let victim: Rc<RefCell<Option<Handle>>> = Rc::default();
        let (log2, v) = (log.clone(), victim.clone());
        call_later(u(1), move || {
            let h = v.borrow_mut().take().unwrap();
            log2.push(format!("cb1 cancels: {}", h.cancel())); // at 1
        });
        let log = log.clone();
        *victim.borrow_mut() = Some(call_later(u(1), move || {
            log.push("cb1: cancelled, never runs")
        }));
    }
    let c = {
        let log = log.clone();
        spawn(move || {
            // Yields interleave with the others within a tick.
            for i in 0..3 {
                log.push(format!("c{i}"));
                yield_now();
            }
            sleep(u(11));
            log.push("c done"); // at 11
        })
    };
    for t in [a, b, c] {
        t.join().unwrap();
    }
    log.push("main done");
    log.snapshot()
}

#[test]
fn the_virtual_clock_keeps_the_real_clocks_order() {
    let real = {
        let lp = EventLoop::new();
        let started = Instant::now();
        let log = lp.run_until_complete(|| program(ms(15)));
        assert!(
            started.elapsed() >= ms(15 * 11),
            "the real run was too quick"
        );
        log
    };
    let (virt, end) = vrun(|| {
        let log = program(secs(3600));
        (log, time())
    });
    assert_eq!(virt, real);
    assert_eq!(end, secs(3600 * 11));
    // And the order itself is the intended one.
    assert_eq!(
        virt,
        [
            "c0",
            "c1",
            "c2",
            "cb1 cancels: true",
            "a1",
            "cb3",
            "a2",
            "b1",
            "a3",
            "b2",
            "a4",
            "b timeout elapsed=true",
            "b3",
            "c done",
            "main done"
        ]
    );
}

// -------------------------------------------------------------------------
// Property: call_later timers with inserts and cancels fire in (deadline,
// creation) order.

#[derive(Debug, Clone)]
enum Op {
    /// `call_later(delay)`.
    Insert(u64),
    /// Cancel the k-th inserted handle (modulo how many exist).
    Cancel(usize),
    /// The driving task sleeps.
    Sleep(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..20).prop_map(Op::Insert),
        2 => any::<usize>().prop_map(Op::Cancel),
        1 => (0u64..15).prop_map(Op::Sleep),
    ]
}

/// The model: every timer as (deadline, creation seq), fired or cancelled.
#[derive(Default)]
struct Model {
    timers: Vec<(u64, usize, bool, bool)>, // deadline, id, fired, cancelled
    now: u64,
    fired: Vec<(usize, u64)>,
}

impl Model {
    fn insert(&mut self, delay: u64) {
        let id = self.timers.len();
        self.timers.push((self.now + delay, id, false, false));
    }
    fn cancel(&mut self, k: usize) -> bool {
        let t = &mut self.timers[k];
        let pending = !t.2 && !t.3;
        if pending {
            t.3 = true;
        }
        pending
    }
    /// Advances to `now + d`, firing what is due sorted by (deadline, id).
    fn sleep(&mut self, d: u64) {
        if d == 0 {
            // A yield: only timers already due (deadline == now) fire, and
            // the model's inserts are never due before a sleep.
            return;
        }
        self.now += d;
        let mut due: Vec<_> = self
            .timers
            .iter_mut()
            .filter(|t| !t.2 && !t.3 && t.0 <= self.now)
            .collect();
        due.sort_by_key(|t| (t.0, t.1));
        for t in due {
            t.2 = true;
            self.fired.push((t.1, t.0));
        }
    }
    fn live(&self) -> usize {
        self.timers.iter().filter(|t| !t.2 && !t.3).count()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn call_later_timers_fire_in_deadline_then_creation_order(
        ops in prop::collection::vec(op(), 1..60),
    ) {
        // The driver's sleeps are positive: a zero sleep is a yield, after
        // which timers that were already due (zero-delay inserts) have left
        // the heap but not yet run. Positive sleeps let every due callback
        // run before the driver resumes, which is what the model says.
        let mut model = Model::default();
        let mut expected_cancels = Vec::new();
        let mut expected_live = Vec::new();
        let ops: Vec<Op> = ops
            .into_iter()
            .map(|o| match o {
                Op::Sleep(0) => Op::Sleep(1),
                o => o,
            })
            .collect();
        for o in &ops {
            match *o {
                Op::Insert(d) => model.insert(d),
                Op::Cancel(k) if !model.timers.is_empty() => {
                    let k = k % model.timers.len();
                    expected_cancels.push(model.cancel(k));
                }
                Op::Cancel(_) => {}
                Op::Sleep(d) => model.sleep(d),
            }
            expected_live.push(model.live());
        }
        model.sleep(100);

        let ops2 = ops.clone();
        let (fired, cancels, lives, left) = vrun(move || {
            let fired = Rc::new(RefCell::new(Vec::new()));
            let mut handles: Vec<Handle> = Vec::new();
            let mut cancels = Vec::new();
            let mut lives = Vec::new();
            let ok = Rc::new(Cell::new(true));
            for o in ops2 {
                match o {
                    Op::Insert(d) => {
                        let id = handles.len();
                        let deadline = time() + ms(d);
                        let (f, ok) = (fired.clone(), ok.clone());
                        handles.push(call_later(ms(d), move || {
                            // Exactly on time.
                            if time() != deadline {
                                ok.set(false);
                            }
                            f.borrow_mut().push((id, time().as_millis() as u64));
                        }));
                    }
                    Op::Cancel(k) if !handles.is_empty() => {
                        cancels.push(handles[k % handles.len()].cancel());
                    }
                    Op::Cancel(_) => {}
                    Op::Sleep(d) => sleep(ms(d)),
                }
                lives.push(pending_timers());
            }
            sleep(ms(100));
            assert!(ok.get(), "a callback ran off its deadline");
            let fired = fired.borrow().clone();
            (fired, cancels, lives, pending_timers())
        });
        prop_assert_eq!(fired, model.fired);
        prop_assert_eq!(cancels, expected_cancels);
        prop_assert_eq!(lives, expected_live);
        prop_assert_eq!(left, 0);
    }
}

/// Runs `f`, returning the message of its panic, if any.
fn panic_of<R>(f: impl FnOnce() -> R) -> Option<String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    out.err().map(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

#[test]
fn a_deadline_past_the_clocks_range_never_fires_and_never_moves_the_clock() {
    // On the real clock these never fire; the virtual clock agrees. It used
    // to jump to ~584 years, report `Elapsed`, and leave the clock there
    // (a later `sleep(1 s)` then took no loop time).
    let lp = EventLoop::builder().virtual_time().build();
    let never = bucle::sync::Event::new();
    let n = never.clone();
    let err = panic_of(|| lp.run_until_complete(move || timeout(Duration::MAX, || n.wait())))
        .expect("a wait nothing can end is a deadlock");
    assert!(err.starts_with("bucle: deadlock"), "{err}");
    assert_eq!(lp.time(), Duration::ZERO);

    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let slept = lp.run_until_complete(move || {
        let h: Handle = call_later(Duration::MAX, move || r.set(true));
        let late: Handle = call_later(secs(600 * 365 * 86_400), || ()); // 600 years
        let t0 = time();
        sleep(secs(1));
        assert_eq!(pending_timers(), 0, "out-of-range timers are not pending");
        drop((h, late));
        time() - t0
    });
    assert_eq!(slept, secs(1));
    assert!(!ran.get());

    let err = panic_of(|| lp.run_until_complete(|| sleep(Duration::MAX)))
        .expect("sleeping forever alone is a deadlock");
    assert!(err.contains("sleep past the clock's range"), "{err}");
    assert_eq!(lp.time(), secs(1));
    drop(never);
}

#[test]
fn a_sleep_past_the_clocks_range_still_yields_to_cancellation_and_timeouts() {
    let (cancelled, timed_out) = vrun(|| {
        let t = spawn(|| sleep(Duration::MAX));
        yield_now();
        t.cancel();
        let cancelled = t.join().unwrap_err().is_cancelled();
        let timed_out = timeout(secs(5), || sleep(Duration::MAX)).is_err();
        (cancelled, timed_out)
    });
    assert!(cancelled && timed_out);
}

/// The rule with real I/O: the clock jumps to the next timer only once a
/// non-blocking poll has delivered what has already arrived; a task
/// waiting on I/O does not hold the clock back (a server idle on a socket
/// must not freeze time).
#[test]
fn with_io_the_virtual_clock_delivers_what_arrived_then_jumps() {
    use bucle::io::AsyncFd;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    let lp = EventLoop::builder().virtual_time().build();
    let (idle_end, _idle_peer) = UnixStream::pair().unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    let (read_at, slept_to) = lp.run_until_complete(move || {
        // Never gets data: waits on I/O the whole run.
        let idle = AsyncFd::new(idle_end).unwrap();
        let idle_task = spawn(move || {
            let mut buf = [0u8; 1];
            let _ = idle.read_with(|s| (&*s).read(&mut buf));
        });
        let reader = AsyncFd::new(a).unwrap();
        let r = spawn(move || {
            let mut buf = [0u8; 5];
            reader.read_with(|s| (&*s).read(&mut buf)).unwrap();
            time()
        });
        yield_now(); // both are parked on I/O now
        (&b).write_all(b"hello").unwrap();
        sleep(secs(10));
        let slept_to = time();
        idle_task.cancel();
        (r.join().unwrap(), slept_to)
    });
    assert_eq!(
        read_at,
        Duration::ZERO,
        "data that had arrived waited for the jump"
    );
    assert_eq!(slept_to, secs(10));
}
