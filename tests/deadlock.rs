//! Deadlock: when the main task waits and nothing can ever wake anything,
//! the loop panics with a Go-style report listing every blocked task and
//! what it waits on, instead of hanging.

mod support;

use std::time::Duration;

use bucle::{EventLoop, Future, TaskBuilder};
use support::{Drops, catch, ms, stacks_in_use, vloop};

#[test]
fn main_waiting_on_a_never_set_future_reports_every_blocked_task() {
    let baseline = stacks_in_use();
    let drops = Drops::new();
    let d = drops.clone();
    let lp = vloop();
    let err = catch(|| {
        lp.run_until_complete(move || {
            let never: Future<u32> = Future::new();
            let f = never.clone();
            let tok = d.token();
            let waiter = TaskBuilder::new().name("waiter").spawn(move || {
                let _tok = tok;
                f.wait()
            });
            let joiner = TaskBuilder::new()
                .name("joiner")
                .spawn(move || waiter.join().is_ok());
            // A task that finished must not be listed.
            let done = TaskBuilder::new().name("finished-early").spawn(|| ());
            bucle::yield_now();
            assert!(done.is_done());
            let _ = joiner;
            never.wait()
        })
    })
    .unwrap_err();
    assert!(err.starts_with("bucle: deadlock"), "{err}");
    assert!(err.contains("the main task is waiting"), "{err}");
    let lines: Vec<&str> = err.lines().skip(1).map(str::trim).collect();
    assert_eq!(lines.len(), 3, "{err}");
    // main (unnamed: Task-N), then the waiter and the joiner, by id.
    assert!(
        lines[0].starts_with("Task-") && lines[0].ends_with("waits on a Future"),
        "{err}"
    );
    assert!(lines[1].ends_with("'waiter' waits on a Future"), "{err}");
    assert!(lines[2].contains("'joiner' waits on join Task-"), "{err}");
    assert!(lines[2].ends_with("'waiter'"), "{err}");
    assert!(!err.contains("finished-early"), "{err}");
    // The loop is not left running; dropping it unwinds the blocked tasks.
    assert!(!lp.is_running());
    drop(lp);
    assert!(drops.all_dropped_once());
    assert_eq!(stacks_in_use(), baseline);
}

#[test]
fn deadlock_report_names_gather_as_completed_and_task_groups() {
    let lp = vloop();
    let err = catch(|| {
        lp.run_until_complete(|| {
            let never: Future<()> = Future::new();
            let (f1, f2, f3) = (never.clone(), never.clone(), never.clone());
            let g = TaskBuilder::new().name("gatherer").spawn(move || {
                let child = bucle::spawn(move || f1.wait().is_ok());
                bucle::gather([child]).is_ok()
            });
            let a = TaskBuilder::new().name("iterating").spawn(move || {
                let child = bucle::spawn(move || f2.wait().is_ok());
                bucle::as_completed([child]).next().is_some()
            });
            let tg = TaskBuilder::new().name("grouping").spawn(move || {
                bucle::task_group(|g| {
                    g.spawn(move || f3.wait().is_ok());
                })
                .is_ok()
            });
            let _ = g.join();
            let _ = (a, tg);
        })
    })
    .unwrap_err();
    assert!(err.starts_with("bucle: deadlock"), "{err}");
    assert!(err.contains("'gatherer' waits on gather"), "{err}");
    assert!(err.contains("'iterating' waits on as_completed"), "{err}");
    assert!(
        err.contains("'grouping' waits on task_group children"),
        "{err}"
    );
}

#[test]
fn deadlock_report_lists_a_join_cycle() {
    let lp = vloop();
    let err = catch(|| {
        lp.run_until_complete(|| {
            let slot = std::rc::Rc::new(std::cell::RefCell::new(None));
            let s = slot.clone();
            let a = TaskBuilder::new().name("A").spawn(move || {
                bucle::yield_now();
                let b: bucle::Task<()> = s.borrow_mut().take().unwrap();
                let _ = b.join();
            });
            let b = TaskBuilder::new().name("B").spawn(move || {
                let _ = a.join();
            });
            *slot.borrow_mut() = Some(b);
            bucle::Future::<()>::new().wait().ok();
        })
    })
    .unwrap_err();
    assert!(err.contains("'A' waits on join Task-"), "{err}");
    assert!(err.contains("'B' waits on join Task-"), "{err}");
    // Do not cancel the cycle: see cancel.rs (a reported bug); closing the
    // loop only drops the stacks.
    drop(lp);
}

#[test]
fn run_forever_with_nothing_left_reports_instead_of_hanging() {
    let lp = vloop();
    let err = catch(|| lp.run_forever()).unwrap_err();
    assert!(err.starts_with("bucle: deadlock"), "{err}");
    assert!(err.contains("run_forever"), "{err}");
    assert_eq!(err.lines().count(), 1, "no task is blocked: {err}");

    let never: Future<()> = Future::new();
    let f = never.clone();
    let t = lp.spawn(move || {
        let _ = f.wait();
    });
    let err = catch(|| lp.run_forever()).unwrap_err();
    assert!(err.starts_with("bucle: deadlock"), "{err}");
    assert!(
        err.contains(&format!("{} waits on a Future", t.id())),
        "{err}"
    );
    assert!(!lp.is_running());
}

#[test]
fn no_false_positive_while_a_timer_is_pending() {
    let lp = vloop();
    let v = lp.run_until_complete(|| {
        let fut: Future<&str> = Future::new();
        let f = fut.clone();
        bucle::call_later(Duration::from_secs(3600), move || {
            f.set_result("set by a timer an hour later").unwrap();
        });
        let v = fut.wait().unwrap();
        assert_eq!(bucle::time(), Duration::from_secs(3600));
        v
    });
    assert_eq!(v, "set by a timer an hour later");
}

#[test]
fn no_false_positive_while_a_task_sleeps() {
    let v = support::run_virtual(|| {
        let fut: Future<u32> = Future::new();
        let f = fut.clone();
        bucle::spawn(move || {
            bucle::sleep(ms(500));
            f.set_result(7).unwrap();
        });
        fut.wait().unwrap()
    });
    assert_eq!(v, 7);
}

/// Real clock: with a timer pending the loop blocks (no report) until it
/// fires.
#[test]
fn no_false_positive_on_the_real_clock() {
    let start = std::time::Instant::now();
    let lp = EventLoop::new();
    lp.run_until_complete(|| {
        let fut: Future<()> = Future::new();
        let f = fut.clone();
        bucle::call_later(ms(20), move || f.set_result(()).unwrap());
        fut.wait().unwrap();
    });
    assert!(start.elapsed() >= ms(20));
}

/// A deadlock after the only timer fired is still reported.
#[test]
fn deadlock_after_the_last_timer_fires_is_reported() {
    let lp = vloop();
    let err = catch(|| {
        lp.run_until_complete(|| {
            bucle::sleep(ms(10));
            Future::<()>::new().wait().ok();
        })
    })
    .unwrap_err();
    assert!(err.starts_with("bucle: deadlock"), "{err}");
}

#[test]
fn a_task_waiting_on_io_is_not_deadlocked() {
    // No timer, nothing ready, no remote handle: only a socket can wake the
    // task, so the loop blocks in the poller instead of reporting.
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    let (a, b) = UnixStream::pair().unwrap();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(20));
        (&b).write_all(b"x").unwrap();
        b
    });
    let got = bucle::run(move || {
        let a = bucle::io::AsyncFd::new(a).unwrap();
        let mut buf = [0u8; 1];
        a.read_with(|s| (&*s).read(&mut buf)).unwrap();
        buf[0]
    });
    assert_eq!(got, b'x');
    drop(writer.join().unwrap());
}
