//! Chapter 6 benches: `bucle::sync` next to tokio's current_thread runtime,
//! in the same criterion groups so a ratio reads off one run.
//!
//! - `queue_ping_pong`: one round trip between two tasks through two
//!   unbounded queues (bucle `Queue`) vs two tokio `mpsc::unbounded_channel`s.
//! - `lock_uncontended`: acquire + release of a free lock.
//! - `lock_contended`: two tasks take turns on one lock, each yielding while
//!   holding it, so every acquire waits; per acquire.
//! - `semaphore`: acquire + release of a free permit.
//!
//! Bar (issue 5): ahead of tokio current_thread in each.
use std::hint::black_box;
use std::time::{Duration, Instant};

use bucle::sync::{Lock, Queue, Semaphore};
use criterion::{Criterion, criterion_group, criterion_main};

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio current_thread runtime")
}

fn queue_ping_pong(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue_ping_pong");
    g.bench_function("bucle", |b| {
        b.iter_custom(|iters| {
            bucle::run(move || {
                let (ping, pong) = (Queue::new(), Queue::new());
                let echo = {
                    let (ping, pong) = (ping.clone(), pong.clone());
                    bucle::spawn(move || {
                        while let Ok(Some(n)) = ping.get() {
                            pong.put(n).unwrap();
                        }
                    })
                };
                let start = Instant::now();
                for n in 0..iters {
                    ping.put(Some(n)).unwrap();
                    black_box(pong.get().unwrap());
                }
                let elapsed = start.elapsed();
                ping.put(None).unwrap();
                echo.join().unwrap();
                elapsed
            })
        })
    });
    g.bench_function("tokio", |b| {
        let rt = tokio_rt();
        b.iter_custom(|iters| {
            rt.block_on(async move {
                let local = tokio::task::LocalSet::new();
                local
                    .run_until(async move {
                        let (ping_tx, mut ping_rx) = tokio::sync::mpsc::unbounded_channel();
                        let (pong_tx, mut pong_rx) = tokio::sync::mpsc::unbounded_channel();
                        let echo = tokio::task::spawn_local(async move {
                            while let Some(n) = ping_rx.recv().await {
                                pong_tx.send(n).unwrap();
                            }
                        });
                        let start = Instant::now();
                        for n in 0..iters {
                            ping_tx.send(n).unwrap();
                            black_box(pong_rx.recv().await.unwrap());
                        }
                        let elapsed = start.elapsed();
                        drop(ping_tx);
                        echo.await.unwrap();
                        elapsed
                    })
                    .await
            })
        })
    });
    g.finish();
}

fn lock_uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("lock_uncontended");
    g.bench_function("bucle", |b| {
        b.iter_custom(|iters| {
            bucle::run(move || {
                let lock = Lock::new();
                let start = Instant::now();
                for _ in 0..iters {
                    drop(black_box(lock.acquire()));
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("tokio", |b| {
        let rt = tokio_rt();
        b.iter_custom(|iters| {
            rt.block_on(async move {
                let lock = tokio::sync::Mutex::new(());
                let start = Instant::now();
                for _ in 0..iters {
                    drop(black_box(lock.lock().await));
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

fn lock_contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("lock_contended");
    g.bench_function("bucle", |b| {
        b.iter_custom(|iters| {
            bucle::run(move || {
                let lock = Lock::new();
                let per_task = iters.div_ceil(2);
                let start = Instant::now();
                let tasks = [lock.clone(), lock].map(|lock| {
                    bucle::spawn(move || {
                        for _ in 0..per_task {
                            let _guard = lock.acquire();
                            bucle::yield_now();
                        }
                    })
                });
                bucle::gather(tasks).unwrap();
                start.elapsed()
            })
        })
    });
    g.bench_function("tokio", |b| {
        let rt = tokio_rt();
        b.iter_custom(|iters| {
            rt.block_on(async move {
                let local = tokio::task::LocalSet::new();
                local
                    .run_until(async move {
                        let lock = std::rc::Rc::new(tokio::sync::Mutex::new(()));
                        let per_task = iters.div_ceil(2);
                        let start = Instant::now();
                        let tasks = [lock.clone(), lock].map(|lock| {
                            tokio::task::spawn_local(async move {
                                for _ in 0..per_task {
                                    let _guard = lock.lock().await;
                                    tokio::task::yield_now().await;
                                }
                            })
                        });
                        for t in tasks {
                            t.await.unwrap();
                        }
                        start.elapsed()
                    })
                    .await
            })
        })
    });
    g.finish();
}

fn semaphore(c: &mut Criterion) {
    let mut g = c.benchmark_group("semaphore");
    g.bench_function("bucle", |b| {
        b.iter_custom(|iters| {
            bucle::run(move || {
                let sem = Semaphore::new(4);
                let start = Instant::now();
                for _ in 0..iters {
                    drop(black_box(sem.acquire()));
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("tokio", |b| {
        let rt = tokio_rt();
        b.iter_custom(|iters| {
            rt.block_on(async move {
                let sem = tokio::sync::Semaphore::new(4);
                let start = Instant::now();
                for _ in 0..iters {
                    drop(black_box(sem.acquire().await.unwrap()));
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = queue_ping_pong, lock_uncontended, lock_contended, semaphore
}
criterion_main!(benches);
