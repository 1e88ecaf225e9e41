//! Other threads: `to_thread` and `run_in_executor` (results, panics,
//! cancellation, many at once, the pool's bounds) and remote handles
//! (`call_soon_threadsafe` from other threads, a closed loop, deadlock
//! detection while a thread may still wake a task); `set_max_workers`,
//! whose bound is process-wide, in a child process.

#[path = "support/net.rs"]
mod net_support;
mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use bucle::{EventLoop, JoinError, LoopClosed};
use support::{INTENTIONAL, catch, ms, vloop};

#[test]
fn to_thread_returns_the_closures_value_and_runs_off_the_loop_thread() {
    let loop_thread = std::thread::current().id();
    let (value, on_other_thread, name) = bucle::run(move || {
        bucle::to_thread(move || {
            let me = std::thread::current();
            (
                6 * 7,
                me.id() != loop_thread,
                me.name().unwrap_or("").to_string(),
            )
        })
    });
    assert_eq!(value, 42);
    assert!(on_other_thread);
    assert!(name.starts_with("bucle-worker-"), "{name}");
}

#[test]
fn other_tasks_run_while_a_thread_blocks() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    bucle::run(move || {
        let (release, wait) = mpsc::channel::<()>();
        let l2 = l.clone();
        let blocked = bucle::spawn(move || {
            bucle::to_thread(move || wait.recv().unwrap());
            l2.borrow_mut().push("thread returned");
        });
        for i in 0..3 {
            bucle::sleep(ms(1));
            l.borrow_mut().push(["tick 0", "tick 1", "tick 2"][i]);
        }
        release.send(()).unwrap();
        blocked.join().unwrap();
    });
    assert_eq!(
        *log.borrow(),
        ["tick 0", "tick 1", "tick 2", "thread returned"]
    );
}

#[test]
fn a_panic_in_the_closure_resumes_in_the_caller() {
    support::quiet_panics();
    let out = bucle::run(|| {
        let t = bucle::spawn(|| bucle::to_thread(|| -> u8 { panic!("{INTENTIONAL} in a thread") }));
        t.join()
    });
    assert_eq!(
        out,
        Err(JoinError::Panicked(format!("{INTENTIONAL} in a thread")))
    );
}

#[test]
fn cancelling_the_caller_leaves_the_thread_running_and_drops_its_result() {
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let (d, f) = (dropped.clone(), finished.clone());
    let (release, wait) = mpsc::channel::<()>();
    let out = bucle::run(move || {
        let t = bucle::spawn(move || {
            bucle::to_thread(move || {
                wait.recv().unwrap();
                f.fetch_add(1, Ordering::SeqCst);
                Counted(d)
            })
        });
        bucle::sleep(ms(1));
        t.cancel();
        let out = t.join().map(drop);
        // The thread is still blocked; let it go now.
        release.send(()).unwrap();
        out
    });
    assert_eq!(out, Err(JoinError::Cancelled));
    let start = Instant::now();
    while dropped.load(Ordering::SeqCst) == 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "never dropped");
        std::thread::sleep(ms(1));
    }
    assert_eq!(finished.load(Ordering::SeqCst), 1);
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

#[test]
fn a_timeout_around_to_thread_fires_while_the_thread_runs() {
    let (release, wait) = mpsc::channel::<()>();
    let timed_out = bucle::run(move || {
        let r = bucle::timeout(ms(5), move || bucle::to_thread(move || wait.recv()));
        release.send(()).unwrap();
        r.is_err()
    });
    assert!(timed_out);
}

#[test]
fn a_thousand_concurrent_calls() {
    let total = bucle::run(|| {
        let tasks = (0..1000u64).map(|i| bucle::spawn(move || bucle::to_thread(move || i * 2)));
        bucle::gather(tasks).unwrap().into_iter().sum::<u64>()
    });
    assert_eq!(total, 999 * 1000);
}

#[test]
fn the_pool_never_runs_more_than_max_workers_at_once() {
    let max = bucle::max_workers();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    bucle::run({
        let (running, peak) = (running.clone(), peak.clone());
        move || {
            let tasks = (0..max * 3).map(|_| {
                let (running, peak) = (running.clone(), peak.clone());
                bucle::spawn(move || {
                    bucle::to_thread(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(ms(2));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                })
            });
            bucle::gather(tasks).unwrap();
        }
    });
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak >= 2 && peak <= max, "peak {peak}, max {max}");
}

#[test]
fn run_in_executor_gives_a_task_that_gathers_with_others() {
    let lp = EventLoop::new();
    let x = lp.run_in_executor(|| 3);
    let y = lp.run_in_executor(|| 2);
    let out = lp.run_until_complete(move || bucle::gather([x, y]));
    assert_eq!(out, Ok(vec![3, 2]));
}

#[test]
fn a_task_waiting_on_a_thread_is_not_deadlocked_even_on_the_virtual_clock() {
    // Nothing else can run, no timer is pending: the loop must block for
    // the thread's result, not report a deadlock. The virtual clock does
    // not jump past a running thread either.
    let lp = vloop();
    let (value, elapsed) = lp.run_until_complete(|| {
        let t0 = bucle::time();
        let sleeper = bucle::spawn(|| bucle::sleep(Duration::from_secs(3600)));
        let v = bucle::to_thread(|| {
            std::thread::sleep(ms(20));
            7
        });
        let elapsed = bucle::time() - t0;
        sleeper.cancel();
        (v, elapsed)
    });
    assert_eq!(value, 7);
    assert_eq!(
        elapsed,
        Duration::ZERO,
        "the clock jumped past a running thread"
    );
}

#[test]
fn call_soon_threadsafe_runs_on_the_loop_thread_in_order() {
    let lp = EventLoop::new();
    let remote = lp.remote();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let out = lp.run_until_complete({
        let seen = seen.clone();
        move || {
            let done: bucle::Future<()> = bucle::Future::new();
            let d = done.clone();
            let loop_thread = std::thread::current().id();
            // The future is not Send; the callbacks find the loop's thread
            // through a thread-local cell set up here.
            thread_local! {
                static DONE: RefCell<Option<bucle::Future<()>>> = const { RefCell::new(None) };
            }
            DONE.with(|c| *c.borrow_mut() = Some(d));
            let sender = std::thread::spawn(move || {
                for i in 0..100 {
                    let seen = seen.clone();
                    remote
                        .call_soon_threadsafe(move || {
                            assert_eq!(std::thread::current().id(), loop_thread);
                            seen.lock().unwrap().push(i);
                            if i == 99 {
                                DONE.with(|c| c.borrow_mut().take().unwrap().set_result(()))
                                    .unwrap();
                            }
                        })
                        .unwrap();
                }
            });
            done.wait().unwrap();
            sender.join().unwrap();
            "done"
        }
    });
    assert_eq!(out, "done");
    assert_eq!(*seen.lock().unwrap(), (0..100).collect::<Vec<_>>());
}

#[test]
fn a_remote_call_wakes_a_loop_blocked_with_nothing_to_do() {
    // A remote handle in another thread's hands counts as something that
    // can wake the loop: an idle loop blocks for it instead of reporting a
    // deadlock, and the call wakes it.
    let lp = EventLoop::new();
    let remote = lp.remote();
    let barrier = Arc::new(Barrier::new(2));
    let b = barrier.clone();
    let thread = std::thread::spawn(move || {
        b.wait();
        std::thread::sleep(ms(20));
        remote.call_soon_threadsafe(bucle::stop).unwrap();
    });
    let started = Instant::now();
    barrier.wait();
    lp.run_forever();
    assert!(started.elapsed() >= ms(20));
    thread.join().unwrap();
}

#[test]
fn without_remote_handles_an_idle_loop_still_reports_the_deadlock() {
    let lp = EventLoop::new();
    drop(lp.remote());
    let err = catch(|| lp.run_forever()).unwrap_err();
    assert!(err.starts_with("bucle: deadlock"), "{err}");
}

#[test]
fn a_closed_loop_refuses_remote_calls() {
    let lp = EventLoop::new();
    let remote = lp.remote();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    // Queued but never run: the loop closes first.
    remote
        .call_soon_threadsafe(move || {
            r.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    lp.close();
    assert_eq!(remote.call_soon_threadsafe(|| ()), Err(LoopClosed));
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    // A handle made after the close is refused too.
    let late = lp.remote();
    assert_eq!(late.call_soon_threadsafe(|| ()), Err(LoopClosed));
}

#[test]
fn a_panicking_remote_callback_is_reported() {
    support::quiet_panics();
    let lp = EventLoop::new();
    let reports = support::record_reports(&lp);
    let remote = lp.remote();
    lp.run_until_complete(move || {
        remote
            .call_soon_threadsafe(|| panic!("{INTENTIONAL} remote"))
            .unwrap();
        drop(remote);
        bucle::sleep(ms(1));
    });
    assert_eq!(reports.borrow().len(), 1);
}

#[test]
fn to_thread_outside_a_task_is_refused() {
    let err = catch(|| bucle::to_thread(|| 1)).unwrap_err();
    assert!(err.contains("bucle::to_thread"), "{err}");
    let done = Rc::new(Cell::new(false));
    let d = done.clone();
    let lp = EventLoop::new();
    lp.call_soon(move || {
        let err = catch(|| bucle::to_thread(|| 1)).unwrap_err();
        assert!(err.contains("outside any task"), "{err}");
        d.set(true);
    });
    lp.run_until_complete(bucle::yield_now);
    assert!(done.get());
}

#[test]
fn two_jobs_submitted_at_once_run_at_once_even_with_one_idle_worker() {
    // One worker idle from an earlier job: a second job submitted before it
    // wakes must get a thread of its own, not wait behind the first. Each
    // job waits (10 s at most) to hear that the other has started: both
    // hear it only if they run at the same time.
    bucle::run(|| bucle::to_thread(|| ()));
    let (a_tx, a_rx) = mpsc::channel::<()>();
    let (b_tx, b_rx) = mpsc::channel::<()>();
    let met = bucle::run(move || {
        let a = bucle::spawn(move || {
            bucle::to_thread(move || {
                a_tx.send(()).unwrap();
                b_rx.recv_timeout(Duration::from_secs(10)).is_ok()
            })
        });
        let b = bucle::spawn(move || {
            bucle::to_thread(move || {
                b_tx.send(()).unwrap();
                a_rx.recv_timeout(Duration::from_secs(10)).is_ok()
            })
        });
        bucle::gather([a, b]).unwrap()
    });
    assert_eq!(met, [true, true], "the jobs ran one after the other");
}

/// With one worker, jobs run in the order they were handed over, and each
/// task resumes in the order its job ended, even when a job ends before
/// its task gets to wait for it: ten tasks making three calls each take
/// turns, on every run. (A task that found its job done and went on at
/// once used to overtake tasks whose jobs had ended before.)
#[test]
fn one_worker_runs_jobs_in_order_and_tasks_resume_in_that_order() {
    const NAME: &str = "one_worker_runs_jobs_in_order_and_tasks_resume_in_that_order";
    if !net_support::is_child(NAME) {
        net_support::in_child(NAME, Duration::from_secs(60));
        return;
    }
    bucle::set_max_workers(1);
    assert_eq!(bucle::max_workers(), 1);
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    for _ in 0..20 {
        let (running, peak) = (running.clone(), peak.clone());
        let log = bucle::run(move || {
            let log = Rc::new(RefCell::new(Vec::new()));
            let tasks = (0..10).map(|t| {
                let (log, running, peak) = (log.clone(), running.clone(), peak.clone());
                bucle::spawn(move || {
                    for step in 0..3 {
                        let (running, peak) = (running.clone(), peak.clone());
                        bucle::to_thread(move || {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(now, Ordering::SeqCst);
                            running.fetch_sub(1, Ordering::SeqCst);
                        });
                        log.borrow_mut().push((step, t));
                    }
                })
            });
            bucle::gather(tasks).unwrap();
            log.take()
        });
        let turns: Vec<(i32, i32)> = (0..3).flat_map(|s| (0..10).map(move |t| (s, t))).collect();
        assert_eq!(log, turns);
    }
    assert_eq!(peak.load(Ordering::SeqCst), 1, "two jobs ran at once");
}

#[test]
fn set_max_workers_refuses_zero_and_changes_nothing() {
    let before = bucle::max_workers();
    let msg = catch(|| bucle::set_max_workers(0)).unwrap_err();
    assert!(
        msg.starts_with("bucle::set_max_workers(0): the pool needs at least one thread"),
        "{msg}"
    );
    assert_eq!(bucle::max_workers(), before);
}
