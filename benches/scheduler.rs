//! Stage 3 scheduler benchmarks, with tokio's `current_thread` runtime as the
//! peer in every group.
//!
//! Run with `cargo bench --bench scheduler`; results are recorded in
//! `docs/performance.md`.
//!
//! Every benchmark uses `iter_custom`: the loop (or runtime) is built once
//! per benchmark function, outside the timed part, and each sample runs one
//! "main" task that reads the clock around the measured work only. On both
//! sides that main task is a spawned task (a bucle task is always one; on
//! tokio it is `tokio::spawn`ed inside `block_on`, so the wake-ups it gets
//! take the ordinary task path, not `block_on`'s thread-unpark path).
//!
//! Groups (functions `bucle` and `tokio` in each):
//! - `yield_now/N`, N = 2 and 1000: N tasks each call `yield_now` K times
//!   (K = iterations / N); one iteration is one switch (a task yields and
//!   the next one resumes). The first resumption and the end of each task
//!   are inside the timed part but amortised over K ≥ thousands of yields.
//!   A third function, `corosensei/raw`, is the floor of any stackful
//!   scheduler: N bare corosensei coroutines (256 KiB stacks, as bucle's
//!   default) resumed in turn from a `Vec`, each suspending at once: the
//!   same two stack switches per step and the same N stacks' worth of cache
//!   and TLB traffic, with no queue and no bookkeeping at all.
//! - `spawn_join`: the main task spawns a trivial task and joins it, in a
//!   loop; one iteration is spawn + run + join (two task switches and the
//!   task's whole life, pooled stack included).
//! - `future_wake`: two tasks ping-pong through one-shot futures
//!   (`bucle::Future` / `tokio::sync::oneshot`); each message carries the
//!   future the reply must be set on, so neither side needs shared state.
//!   One iteration is one set → wake → resume (half a round trip),
//!   including the creation of the next future.
//!
//! Bars (from the design's "Performance bar"):
//! - `yield_now/1000`: ≤ 15 ns per switch and ≥ 4× faster than tokio;
//! - `spawn_join`: ≤ 100 ns and ≥ 5× faster than tokio.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bucle::EventLoop;
use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, CoroutineResult, Yielder as CoYielder};
use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;

/// The peer: a `current_thread` runtime with no driver enabled, the
/// leanest (fastest) configuration for pure scheduling. (`enable_all()`, as
/// `#[tokio::main(flavor = "current_thread")]` builds it, adds the time
/// driver to every park and is no faster.)
fn tokio_rt() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("build a current_thread runtime")
}

/// Scales `elapsed`, measured over `done` iterations, to `wanted` ones.
fn scale(elapsed: Duration, done: u64, wanted: u64) -> Duration {
    if done == wanted {
        elapsed
    } else {
        elapsed.mul_f64(wanted as f64 / done as f64)
    }
}

/// `yield_now` switches with `n` tasks in the ready queue.
fn yield_now(c: &mut Criterion) {
    for n in [2u64, 1000] {
        let mut group = c.benchmark_group(format!("yield_now/{n}"));

        group.bench_function("bucle", |b| {
            let lp = EventLoop::new();
            b.iter_custom(|iters| {
                let k = iters.div_ceil(n).max(1);
                let elapsed = lp.run_until_complete(move || {
                    let tasks: Vec<_> = (0..n)
                        .map(|_| {
                            bucle::spawn(move || {
                                for _ in 0..k {
                                    bucle::yield_now();
                                }
                            })
                        })
                        .collect();
                    let t0 = Instant::now();
                    for t in tasks {
                        t.join().expect("a yielding task finishes");
                    }
                    t0.elapsed()
                });
                scale(elapsed, n * k, iters)
            });
        });

        group.bench_function("corosensei/raw", |b| {
            let mut coroutines: Vec<Coroutine<(), (), (), DefaultStack>> = (0..n)
                .map(|_| {
                    let stack = DefaultStack::new(256 * 1024).expect("map a stack");
                    Coroutine::with_stack(stack, |y: &CoYielder<(), ()>, ()| {
                        loop {
                            y.suspend(());
                        }
                    })
                })
                .collect();
            b.iter_custom(|iters| {
                let rounds = iters.div_ceil(n).max(1);
                let t0 = Instant::now();
                for _ in 0..rounds {
                    for c in coroutines.iter_mut() {
                        if let CoroutineResult::Return(()) = c.resume(()) {
                            unreachable!("the coroutine never returns");
                        }
                    }
                }
                scale(t0.elapsed(), n * rounds, iters)
            });
            // The coroutines are suspended mid-loop: dropping them unwinds
            // their stacks (corosensei's forced unwind).
        });

        group.bench_function("tokio", |b| {
            let rt = tokio_rt();
            b.iter_custom(|iters| {
                let k = iters.div_ceil(n).max(1);
                let elapsed = rt.block_on(async move {
                    tokio::spawn(async move {
                        let tasks: Vec<_> = (0..n)
                            .map(|_| {
                                tokio::spawn(async move {
                                    for _ in 0..k {
                                        tokio::task::yield_now().await;
                                    }
                                })
                            })
                            .collect();
                        let t0 = Instant::now();
                        for t in tasks {
                            t.await.expect("a yielding task finishes");
                        }
                        t0.elapsed()
                    })
                    .await
                    .expect("the main task finishes")
                });
                scale(elapsed, n * k, iters)
            });
        });

        group.finish();
    }
}

/// Spawn a trivial task, let it run, join it.
fn spawn_join(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn_join");

    group.bench_function("bucle", |b| {
        let lp = EventLoop::new();
        b.iter_custom(|iters| {
            lp.run_until_complete(move || {
                let t0 = Instant::now();
                for i in 0..iters {
                    let t = bucle::spawn(move || black_box(i));
                    black_box(t.join().expect("a trivial task finishes"));
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
                        let t = tokio::spawn(async move { black_box(i) });
                        black_box(t.await.expect("a trivial task finishes"));
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

/// A message of the bucle ping-pong: a counter and the future to reply on.
#[derive(Clone)]
struct BucleMsg {
    n: u64,
    reply: bucle::Future<BucleMsg>,
}

/// A message of the tokio ping-pong: a counter and the sender to reply on.
struct TokioMsg {
    n: u64,
    reply: tokio::sync::oneshot::Sender<TokioMsg>,
}

/// Two tasks ping-pong through one-shot futures.
fn future_wake(c: &mut Criterion) {
    let mut group = c.benchmark_group("future_wake");

    group.bench_function("bucle", |b| {
        let lp = EventLoop::new();
        b.iter_custom(|iters| {
            let rounds = iters.div_ceil(2).max(1);
            let elapsed = lp.run_until_complete(move || {
                // The echo side: waits on its future, replies on the one it
                // was handed, with a fresh future of its own to be answered on.
                let first = bucle::Future::<BucleMsg>::new();
                let mine = first.clone();
                let echo = bucle::spawn(move || {
                    let mut mine = mine;
                    loop {
                        let msg = mine.wait().expect("the pinger never cancels");
                        if msg.n == u64::MAX {
                            break;
                        }
                        let next = bucle::Future::new();
                        msg.reply
                            .set_result(BucleMsg {
                                n: msg.n,
                                reply: next.clone(),
                            })
                            .expect("a fresh future");
                        mine = next;
                    }
                });
                // Let the echo task reach its first wait before timing.
                bucle::yield_now();
                let mut theirs = first;
                let t0 = Instant::now();
                for n in 0..rounds {
                    let mine = bucle::Future::new();
                    theirs
                        .set_result(BucleMsg {
                            n,
                            reply: mine.clone(),
                        })
                        .expect("a fresh future");
                    let msg = mine.wait().expect("the echo never cancels");
                    black_box(msg.n);
                    theirs = msg.reply;
                }
                let elapsed = t0.elapsed();
                theirs
                    .set_result(BucleMsg {
                        n: u64::MAX,
                        reply: bucle::Future::new(),
                    })
                    .expect("a fresh future");
                echo.join().expect("the echo task finishes");
                elapsed
            });
            scale(elapsed, 2 * rounds, iters)
        });
    });

    group.bench_function("tokio", |b| {
        let rt = tokio_rt();
        b.iter_custom(|iters| {
            let rounds = iters.div_ceil(2).max(1);
            let elapsed = rt.block_on(async move {
                let (first_tx, first_rx) = tokio::sync::oneshot::channel::<TokioMsg>();
                let echo = tokio::spawn(async move {
                    let mut mine = first_rx;
                    // Ends when the pinger drops the last sender.
                    while let Ok(msg) = mine.await {
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        if msg
                            .reply
                            .send(TokioMsg {
                                n: msg.n,
                                reply: tx,
                            })
                            .is_err()
                        {
                            unreachable!("the pinger waits for every reply");
                        }
                        mine = rx;
                    }
                });
                let ping = tokio::spawn(async move {
                    // Let the echo task reach its first wait before timing.
                    tokio::task::yield_now().await;
                    let mut theirs = first_tx;
                    let t0 = Instant::now();
                    for n in 0..rounds {
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        if theirs.send(TokioMsg { n, reply: tx }).is_err() {
                            unreachable!("the echo task waits for every message");
                        }
                        let msg = rx.await.expect("the echo never drops a sender");
                        black_box(msg.n);
                        theirs = msg.reply;
                    }
                    t0.elapsed()
                });
                let elapsed = ping.await.expect("the pinger finishes");
                echo.await.expect("the echo task finishes");
                elapsed
            });
            scale(elapsed, 2 * rounds, iters)
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
    targets = yield_now, spawn_join, future_wake
}
criterion_main!(benches);
