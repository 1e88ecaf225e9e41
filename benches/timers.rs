//! Stage 4 timer benchmarks, with tokio's `current_thread` runtime (and its
//! timer wheel) as the peer in every group.
//!
//! Run with `cargo bench --bench timers`; results are recorded in
//! `docs/performance.md`.
//!
//! Both sides run on the real clock. The loop (or runtime) and its tasks are
//! built once per benchmark function, outside the timed part.
//!
//! Groups (functions `bucle` and `tokio` side by side):
//!
//! - `sleep_100k/N tasks`: schedule and fire 100,000 sleeps with random
//!   deadlines. N tasks (10,000 or 1,000) each sleep 100,000 / N times in a
//!   row, every sleep a pseudo-random 0–1 ms (the same sequence on both
//!   sides); one iteration is the whole round of 100,000 sleeps (the
//!   reported throughput is sleeps per second). The tasks stay alive
//!   between rounds, waiting for a start signal, so spawning and stack
//!   mapping are not measured. The time measured is the thread's **CPU
//!   time** (`CLOCK_THREAD_CPUTIME_ID`: user and system time), not wall
//!   time: with deadlines spread over a millisecond both loops spend part of
//!   a round blocked waiting for the next deadline, and that waiting is not
//!   the timer's cost. The CPU time does include every extra wake-up a finer
//!   timer resolution causes (bucle sleeps to the nanosecond deadline,
//!   tokio's wheel rounds up to the millisecond). 10,000 sleepers keep the
//!   loop busy (a round is CPU-bound); 1,000 fit in the caches but leave the
//!   loop idle between deadlines.
//!   `bucle/16 KiB stacks` (10,000 tasks): the same with
//!   `Builder::stack_size(16 KiB)` instead of the default 256 KiB, to show
//!   what the spacing of the tasks' stack pages costs in page walks.
//! - `sleep_100k_wall/10000 tasks`: the CPU-bound rounds again, in wall
//!   time, for reference.
//! - `timeout_unfired`: a timeout that never fires (one hour), entered and
//!   left; one iteration is one timeout. `bucle` / `tokio`: the body returns
//!   at once. bucle arms a timer at entry and disarms it at exit, like
//!   asyncio's `timeout`; tokio's `timeout` polls the body first and never
//!   registers its timer when the body is ready at once. So two more pairs
//!   make both register and cancel a timer: `… body yields` (the body
//!   yields once inside the scope) and `… yield only` (the same yield
//!   without the timeout: subtract it to get the timeout's own cost).
//! - `deadline_check`: the check a CPU-bound task makes in its hot loop to
//!   give up at a deadline. `bucle/time()` compares `bucle::time()` (the
//!   loop clock: a thread-local lookup of the running loop plus a monotonic
//!   clock read) with a deadline; `tokio/Instant::now()` does the same with
//!   `tokio::time::Instant::now()`. `bucle/Timeout::expired` and
//!   `tokio/Sleep::is_elapsed` are the ready-made variant: an armed
//!   one-hour timeout (`timeout_scope`) or registered `Sleep`, whose flag
//!   the timer sets, read in the loop without touching the clock (it only
//!   changes when the loop gets to run, i.e. at a suspension).
//!
//! Bar (from the design's "Performance bar"): per-timer cost below tokio's
//! in `sleep_100k` and in `timeout_unfired`.

use std::cell::{Cell, RefCell};
use std::future::Future as _;
use std::hint::black_box;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bucle::EventLoop;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;

/// Sleeps per round of `sleep_100k`.
const SLEEPS: usize = 100_000;
/// Deadlines are uniform in `0..MAX_SLEEP_NS` nanoseconds.
const MAX_SLEEP_NS: u64 = 1_000_000;
/// A timeout that never fires.
const HOUR: Duration = Duration::from_secs(3600);

fn tokio_rt() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("build a current_thread runtime")
}

/// A tiny PRNG (xorshift64*), so both sides sleep the same durations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next_sleep(&mut self) -> Duration {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        Duration::from_nanos(self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % MAX_SLEEP_NS)
    }
}

/// The CPU time this thread has used (user + system).
#[cfg(target_os = "linux")]
fn cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes one `timespec` through a valid,
    // exclusive pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Elsewhere, fall back to wall time (the group name then says too much).
#[cfg(not(target_os = "linux"))]
fn cpu_now() -> Duration {
    thread_local!(static START: Instant = Instant::now());
    START.with(|s| s.elapsed())
}

/// Which clock a `sleep_100k*` group reads.
#[derive(Clone, Copy)]
enum Clock {
    Cpu,
    Wall,
}

/// Both clocks, read at once.
struct Stamp {
    cpu: Duration,
    wall: Instant,
}

impl Stamp {
    fn now() -> Stamp {
        Stamp {
            cpu: cpu_now(),
            wall: Instant::now(),
        }
    }

    fn elapsed(&self, clock: Clock) -> Duration {
        match clock {
            Clock::Cpu => cpu_now() - self.cpu,
            Clock::Wall => self.wall.elapsed(),
        }
    }
}

/// What the bucle sleepers share with the round's driver.
struct BucleRound {
    /// Set to start a round; replaced by a fresh one before it is set.
    start: RefCell<bucle::Future<()>>,
    /// Sleepers that have not finished this round.
    remaining: Cell<usize>,
    /// Set by the last sleeper to finish the round.
    done: RefCell<bucle::Future<()>>,
}

/// `sleepers` tasks, each sleeping `SLEEPS / sleepers` times per round.
///
/// `stack_size`: the loop's task stacks (`None`: the default, 256 KiB).
fn bucle_sleepers(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    clock: Clock,
    sleepers: usize,
    stack_size: Option<usize>,
) {
    let sleeps_each = SLEEPS / sleepers;
    let name = match stack_size {
        None => "bucle".to_string(),
        Some(size) => format!("bucle/{} KiB stacks", size / 1024),
    };
    group.bench_function(name, |b| {
        let lp = match stack_size {
            None => EventLoop::new(),
            Some(size) => EventLoop::builder().stack_size(size).build(),
        };
        let shared = Rc::new(BucleRound {
            start: RefCell::new(bucle::Future::new()),
            remaining: Cell::new(0),
            done: RefCell::new(bucle::Future::new()),
        });
        for i in 0..sleepers {
            let shared = shared.clone();
            lp.spawn(move || {
                let mut rng = Rng::new(i as u64 + 1);
                loop {
                    let start = shared.start.borrow().clone();
                    start.wait().expect("the driver never cancels a round");
                    for _ in 0..sleeps_each {
                        bucle::sleep(rng.next_sleep());
                    }
                    let left = shared.remaining.get() - 1;
                    shared.remaining.set(left);
                    if left == 0 {
                        let done = shared.done.borrow().clone();
                        done.set_result(()).expect("set once per round");
                    }
                }
            });
        }
        b.iter_custom(|rounds| {
            let shared = shared.clone();
            lp.run_until_complete(move || {
                let mut total = Duration::ZERO;
                for _ in 0..rounds {
                    // Every sleeper is parked on the current start future.
                    let done = bucle::Future::new();
                    *shared.done.borrow_mut() = done.clone();
                    shared.remaining.set(sleepers);
                    let start = shared.start.replace(bucle::Future::new());
                    let t0 = Stamp::now();
                    start.set_result(()).expect("set once per round");
                    done.wait().expect("the last sleeper sets it");
                    total += t0.elapsed(clock);
                }
                total
            })
        });
        // Dropping the loop unwinds the parked sleepers.
    });
}

/// The tokio twin of [`bucle_sleepers`].
fn tokio_sleepers(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    clock: Clock,
    sleepers: usize,
) {
    let sleeps_each = SLEEPS / sleepers;
    group.bench_function("tokio", |b| {
        let rt = tokio_rt();
        let (start_tx, start_rx) = tokio::sync::watch::channel(0u64);
        let remaining = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(tokio::sync::Notify::new());
        {
            let _guard = rt.enter();
            for i in 0..sleepers {
                let mut start = start_rx.clone();
                let remaining = remaining.clone();
                let done = done.clone();
                tokio::spawn(async move {
                    let mut rng = Rng::new(i as u64 + 1);
                    // Ends when the runtime (and the sender) is dropped.
                    while start.changed().await.is_ok() {
                        for _ in 0..sleeps_each {
                            tokio::time::sleep(rng.next_sleep()).await;
                        }
                        if remaining.fetch_sub(1, Ordering::Relaxed) == 1 {
                            done.notify_one();
                        }
                    }
                });
            }
        }
        // Let every sleeper reach its first wait: the scheduler drains its
        // run queue before it parks for the timer.
        rt.block_on(async { tokio::time::sleep(Duration::from_millis(10)).await });
        b.iter_custom(|rounds| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..rounds {
                    remaining.store(sleepers, Ordering::Relaxed);
                    let t0 = Stamp::now();
                    start_tx.send_modify(|n| *n += 1);
                    done.notified().await;
                    total += t0.elapsed(clock);
                }
                total
            })
        });
    });
}

/// Schedule and fire 100k sleeps with random deadlines.
fn sleep_100k(c: &mut Criterion) {
    let runs = [
        ("sleep_100k/10000 tasks", Clock::Cpu, 10_000),
        ("sleep_100k/1000 tasks", Clock::Cpu, 1_000),
        ("sleep_100k_wall/10000 tasks", Clock::Wall, 10_000),
    ];
    for (name, clock, sleepers) in runs {
        let mut group = c.benchmark_group(name);
        group
            .throughput(Throughput::Elements(SLEEPS as u64))
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        bucle_sleepers(&mut group, clock, sleepers, None);
        if sleepers == 10_000 && matches!(clock, Clock::Cpu) {
            // Each resume touches its task's own stack page; how far apart
            // those pages lie decides what the page walks cost.
            bucle_sleepers(&mut group, clock, sleepers, Some(16 * 1024));
        }
        tokio_sleepers(&mut group, clock, sleepers);
        group.finish();
    }
}

/// Timeouts that never fire: insert + cancel.
fn timeout_unfired(c: &mut Criterion) {
    let mut group = c.benchmark_group("timeout_unfired");

    group.bench_function("bucle", |b| {
        let lp = EventLoop::new();
        b.iter_custom(|iters| {
            lp.run_until_complete(move || {
                let t0 = Instant::now();
                for i in 0..iters {
                    let r = bucle::timeout(HOUR, || black_box(i));
                    black_box(r.expect("an hour is long enough"));
                }
                t0.elapsed()
            })
        });
    });

    group.bench_function("tokio", |b| {
        let rt = tokio_rt();
        b.iter_custom(|iters| {
            rt.block_on(async move {
                tokio::spawn(async move {
                    let t0 = Instant::now();
                    for i in 0..iters {
                        let r = tokio::time::timeout(HOUR, async { black_box(i) }).await;
                        black_box(r.expect("an hour is long enough"));
                    }
                    t0.elapsed()
                })
                .await
                .expect("the main task finishes")
            })
        });
    });

    group.bench_function("bucle/body yields", |b| {
        let lp = EventLoop::new();
        b.iter_custom(|iters| {
            lp.run_until_complete(move || {
                let t0 = Instant::now();
                for i in 0..iters {
                    let r = bucle::timeout(HOUR, || {
                        bucle::yield_now();
                        black_box(i)
                    });
                    black_box(r.expect("an hour is long enough"));
                }
                t0.elapsed()
            })
        });
    });

    group.bench_function("tokio/body yields", |b| {
        let rt = tokio_rt();
        b.iter_custom(|iters| {
            rt.block_on(async move {
                tokio::spawn(async move {
                    let t0 = Instant::now();
                    for i in 0..iters {
                        let r = tokio::time::timeout(HOUR, async {
                            tokio::task::yield_now().await;
                            black_box(i)
                        })
                        .await;
                        black_box(r.expect("an hour is long enough"));
                    }
                    t0.elapsed()
                })
                .await
                .expect("the main task finishes")
            })
        });
    });

    group.bench_function("bucle/yield only", |b| {
        let lp = EventLoop::new();
        b.iter_custom(|iters| {
            lp.run_until_complete(move || {
                let t0 = Instant::now();
                for i in 0..iters {
                    bucle::yield_now();
                    black_box(i);
                }
                t0.elapsed()
            })
        });
    });

    group.bench_function("tokio/yield only", |b| {
        let rt = tokio_rt();
        b.iter_custom(|iters| {
            rt.block_on(async move {
                tokio::spawn(async move {
                    let t0 = Instant::now();
                    for i in 0..iters {
                        tokio::task::yield_now().await;
                        black_box(i);
                    }
                    t0.elapsed()
                })
                .await
                .expect("the main task finishes")
            })
        });
    });

    group.finish();
}

/// The deadline check of a CPU-bound loop.
fn deadline_check(c: &mut Criterion) {
    let mut group = c.benchmark_group("deadline_check");

    group.bench_function("bucle/time()", |b| {
        let lp = EventLoop::new();
        b.iter_custom(|iters| {
            lp.run_until_complete(move || {
                let deadline = bucle::time() + HOUR;
                let t0 = Instant::now();
                for _ in 0..iters {
                    black_box(bucle::time() < black_box(deadline));
                }
                t0.elapsed()
            })
        });
    });

    group.bench_function("tokio/Instant::now()", |b| {
        let rt = tokio_rt();
        b.iter_custom(|iters| {
            rt.block_on(async move {
                let deadline = tokio::time::Instant::now() + HOUR;
                let t0 = Instant::now();
                for _ in 0..iters {
                    black_box(tokio::time::Instant::now() < black_box(deadline));
                }
                t0.elapsed()
            })
        });
    });

    group.bench_function("bucle/Timeout::expired", |b| {
        let lp = EventLoop::new();
        b.iter_custom(|iters| {
            lp.run_until_complete(move || {
                let deadline = bucle::time() + HOUR;
                bucle::timeout_scope(Some(deadline), |t| {
                    let t0 = Instant::now();
                    for _ in 0..iters {
                        black_box(black_box(t).expired());
                    }
                    t0.elapsed()
                })
                .expect("an hour is long enough")
            })
        });
    });

    group.bench_function("tokio/Sleep::is_elapsed", |b| {
        let rt = tokio_rt();
        b.iter_custom(|iters| {
            rt.block_on(async move {
                let mut sleep = pin!(tokio::time::sleep(HOUR));
                // Register it with the timer wheel, as an armed timeout is.
                std::future::poll_fn(|cx| {
                    assert!(sleep.as_mut().poll(cx).is_pending());
                    std::task::Poll::Ready(())
                })
                .await;
                let t0 = Instant::now();
                for _ in 0..iters {
                    black_box(black_box(&sleep).is_elapsed());
                }
                t0.elapsed()
            })
        });
    });

    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(800))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = sleep_100k, timeout_unfired, deadline_check
}
criterion_main!(benches);
