//! What user destructors and callbacks may do when the kernel runs them:
//! re-enter the API (call_soon, call_later, cancel a handle, release a
//! lock and so wake a waiter) or panic, without ever meeting a borrow the
//! kernel holds, aborting the process, or leaving a task stuck. The
//! exception handler itself may panic.

mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bucle::sync::{Lock, LockGuard, Queue};
use bucle::{EventLoop, ExceptionContext, Handle, JoinError};
use support::{INTENTIONAL, catch, ms, record_reports, stacks_in_use, vloop};

const LONG: Duration = Duration::from_secs(100);

/// What a [`Hostile`] value does when dropped.
enum OnDrop {
    CallSoon(Rc<Cell<u32>>),
    CallLater(Rc<Cell<u32>>),
    Cancel(Handle),
    Release(LockGuard),
    Panic,
}

struct Hostile(Option<OnDrop>);

impl Drop for Hostile {
    fn drop(&mut self) {
        match self.0.take() {
            Some(OnDrop::CallSoon(ran)) => {
                bucle::call_soon(move || ran.set(ran.get() + 1));
            }
            Some(OnDrop::CallLater(ran)) => {
                bucle::call_later(ms(1), move || ran.set(ran.get() + 1));
            }
            Some(OnDrop::Cancel(h)) => {
                h.cancel();
            }
            Some(OnDrop::Release(guard)) => drop(guard),
            Some(OnDrop::Panic) if !std::thread::panicking() => {
                panic!("{INTENTIONAL} destructor")
            }
            _ => {}
        }
    }
}

/// A detached task that returns `value` after a `timeout` around a short
/// sleep: the timeout's dead heap entry is then the last reference to the
/// finished task, and dropping it drops `value` from inside the timer code.
fn detached_returning(value: Hostile) {
    let t = bucle::spawn(move || {
        let _ = bucle::timeout(ms(5), || bucle::sleep(ms(1)));
        value
    });
    drop(t);
}

#[test]
fn a_result_dropped_by_a_dead_timer_may_call_later() {
    // The dead entry reaches the top of the heap while the loop looks for
    // the next deadline: the result's destructor used to run under the
    // heap's borrow ("RefCell already mutably borrowed" in timer.rs).
    let ran = Rc::new(Cell::new(0));
    let r = ran.clone();
    vloop().run_until_complete(move || {
        detached_returning(Hostile(Some(OnDrop::CallLater(r))));
        bucle::sleep(ms(20));
    });
    assert_eq!(ran.get(), 1);
}

#[test]
fn a_result_dropped_by_a_dead_timer_may_cancel_a_timer_handle() {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    vloop().run_until_complete(move || {
        let h = bucle::call_later(ms(10), move || r.set(true));
        detached_returning(Hostile(Some(OnDrop::Cancel(h))));
        bucle::sleep(ms(20));
    });
    assert!(!ran.get(), "the cancelled callback ran");
}

/// Runs `main` on the real clock while the ready queue never empties, so
/// that dead timers are met by the expire phase (with the ready queue
/// borrowed) rather than while looking for the next deadline.
fn busy_until(done: Rc<Cell<bool>>) {
    let start = Instant::now();
    while !done.get() {
        assert!(start.elapsed() < Duration::from_secs(10), "never done");
        bucle::yield_now();
    }
}

#[test]
fn a_result_dropped_by_the_expire_phase_may_call_soon() {
    let ran = Rc::new(Cell::new(0));
    let (r, done) = (ran.clone(), Rc::new(Cell::new(false)));
    let d = done.clone();
    EventLoop::new().run_until_complete(move || {
        detached_returning(Hostile(Some(OnDrop::CallSoon(r))));
        bucle::call_later(ms(10), move || d.set(true));
        busy_until(done);
    });
    assert_eq!(ran.get(), 1);
}

#[test]
fn a_result_dropped_by_the_expire_phase_may_release_a_lock_and_wake_its_waiter() {
    // Releasing the lock wakes its waiter, which schedules it: that used to
    // borrow the ready queue the expire phase was holding (core.rs
    // `schedule`).
    let lock = Lock::new();
    let woke = Rc::new(Cell::new(false));
    let done = Rc::new(Cell::new(false));
    let (l, w, d) = (lock.clone(), woke.clone(), done.clone());
    EventLoop::new().run_until_complete(move || {
        let guard = l.acquire();
        detached_returning(Hostile(Some(OnDrop::Release(guard))));
        let l2 = l.clone();
        let waiter = bucle::spawn(move || {
            drop(l2.acquire());
            w.set(true);
        });
        bucle::call_later(ms(10), move || d.set(true));
        busy_until(done);
        waiter.join().unwrap();
    });
    assert!(woke.get());
}

#[test]
fn a_result_dropped_by_heap_compaction_in_a_sleeps_unwind_may_re_enter() {
    // Many timeouts that ended in time leave dead entries; cancelling a
    // sleep marks one more dead and compacts the heap from the sleep's
    // unwind guard. The results the dead entries held used to be dropped
    // there, under the heap's borrow, during an unwind: an abort.
    // (Compaction starts at 64 dead entries: 63 from the timeouts, then the
    // sleep's.)
    let ran = Rc::new(Cell::new(0));
    let r = ran.clone();
    vloop().run_until_complete(move || {
        for _ in 0..63 {
            let t = bucle::spawn({
                let r = r.clone();
                move || {
                    let _ = bucle::timeout(LONG, || bucle::sleep(ms(1)));
                    Hostile(Some(OnDrop::CallLater(r)))
                }
            });
            drop(t);
        }
        bucle::sleep(ms(2));
        let sleeper = bucle::spawn(|| bucle::sleep(LONG));
        bucle::yield_now();
        sleeper.cancel();
        assert!(sleeper.join().unwrap_err().is_cancelled());
        bucle::sleep(ms(5));
    });
    assert_eq!(ran.get(), 63);
}

#[test]
fn a_result_dropped_by_a_dead_timer_may_panic() {
    support::quiet_panics();
    let lp = vloop();
    let reports = record_reports(&lp);
    let after = lp.run_until_complete(|| {
        detached_returning(Hostile(Some(OnDrop::Panic)));
        bucle::sleep(ms(20));
        "main finished"
    });
    assert_eq!(after, "main finished");
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(
        reports[0].message.contains("destructor") && reports[0].message.contains("destructor"),
        "{:?}",
        reports[0]
    );
    assert_eq!(
        reports[0].panic.as_deref(),
        Some(format!("{INTENTIONAL} destructor").as_str())
    );
}

#[test]
fn a_cancelled_task_whose_returned_value_panics_on_drop_ends_cancelled() {
    // It was cancelled while running and returned without suspending: the
    // value is discarded, as asyncio does. Its destructor's panic used to
    // escape run_until_complete and leave the task Running forever.
    support::quiet_panics();
    let lp = vloop();
    let reports = record_reports(&lp);
    let out = lp.run_until_complete(|| {
        let t = bucle::spawn(|| {
            bucle::current_task().unwrap().cancel();
            Hostile(Some(OnDrop::Panic))
        });
        t.join().map(drop)
    });
    assert_eq!(out, Err(JoinError::Cancelled));
    assert_eq!(reports.borrow().len(), 1, "{:?}", reports.borrow());
    assert_eq!(lp.run_until_complete(|| 7), 7);
}

#[test]
fn a_panic_payload_whose_destructor_panics() {
    // The second panic used to escape Core::step, skip the reset of the
    // current task and leave the task Running; afterwards `yield_now`
    // outside any loop spoke of a nested generator.
    support::quiet_panics();
    let lp = vloop();
    let out = lp.run_until_complete(|| {
        struct PanicsOnDrop;
        impl Drop for PanicsOnDrop {
            fn drop(&mut self) {
                panic!("{INTENTIONAL} payload's destructor");
            }
        }
        let t = bucle::spawn(|| std::panic::panic_any(PanicsOnDrop));
        t.join()
    });
    assert!(matches!(out, Err(JoinError::Panicked(_))), "{out:?}");
    assert_eq!(lp.run_until_complete(|| 7), 7);
    let err = catch(bucle::yield_now).unwrap_err();
    assert!(err.contains("outside a running event loop"), "{err}");
}

/// An exception handler that counts its calls and panics on each.
fn panicking_handler(lp: &EventLoop) -> Rc<Cell<u32>> {
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    lp.set_exception_handler(move |_: &ExceptionContext| {
        c.set(c.get() + 1);
        panic!("{INTENTIONAL} handler");
    });
    calls
}

#[test]
fn a_panicking_handler_reporting_from_a_cancellation_unwind_does_not_abort() {
    // The last handle of a panicked task is dropped while its holder
    // unwinds from a cancellation: the report runs in a destructor during
    // an unwind, and the handler's panic used to abort the process.
    support::quiet_panics();
    let lp = vloop();
    let calls = panicking_handler(&lp);
    let out = lp.run_until_complete(|| {
        let failed = bucle::spawn(|| panic!("{INTENTIONAL} task"));
        bucle::yield_now();
        let holder = bucle::spawn(move || {
            let _handle = failed;
            bucle::sleep(LONG);
        });
        bucle::yield_now();
        holder.cancel();
        holder.join()
    });
    assert_eq!(out, Err(JoinError::Cancelled));
    assert_eq!(calls.get(), 1);
}

#[test]
fn a_panicking_handler_reporting_a_callback_panic_is_called_once() {
    // It used to be called twice, and its panic escaped run_until_complete
    // nested in another, leaving the main task pending.
    support::quiet_panics();
    let lp = vloop();
    let calls = panicking_handler(&lp);
    let out = lp.run_until_complete(|| {
        bucle::call_soon(|| panic!("{INTENTIONAL} callback"));
        bucle::sleep(ms(1));
        "main finished"
    });
    assert_eq!(out, "main finished");
    assert_eq!(calls.get(), 1);
    assert_eq!(lp.run_until_complete(|| 7), 7);
}

#[test]
fn a_handler_replacing_itself_while_reporting() {
    support::quiet_panics();
    let lp = Rc::new(vloop());
    let seen = Rc::new(RefCell::new(Vec::new()));
    let (me, s) = (lp.clone(), seen.clone());
    lp.set_exception_handler(move |ctx| {
        s.borrow_mut()
            .push(format!("first: {}", ctx.panic.clone().unwrap()));
        let s2 = s.clone();
        me.set_exception_handler(move |ctx| {
            s2.borrow_mut()
                .push(format!("second: {}", ctx.panic.clone().unwrap()))
        });
    });
    lp.run_until_complete(|| {
        bucle::call_soon(|| panic!("{INTENTIONAL} a"));
        bucle::call_soon(|| panic!("{INTENTIONAL} b"));
        bucle::yield_now();
    });
    lp.clear_exception_handler();
    assert_eq!(
        *seen.borrow(),
        [
            format!("first: {INTENTIONAL} a"),
            format!("second: {INTENTIONAL} b")
        ]
    );
}

#[test]
fn a_queue_item_dropped_by_a_cancelled_getter_may_re_enter() {
    // `wait_for` around a `Queue::get` whose item arrives too late: the
    // items stay in the queue and are dropped with it, in user code.
    let base = stacks_in_use();
    let ran = Rc::new(Cell::new(0));
    let r = ran.clone();
    vloop().run_until_complete(move || {
        let q: Queue<Hostile> = Queue::new();
        let getter = bucle::spawn({
            let q = q.clone();
            move || bucle::wait_for(ms(1), || q.get().map(drop)).is_err()
        });
        bucle::sleep(ms(2));
        q.put_nowait(Hostile(Some(OnDrop::CallSoon(r))))
            .ok()
            .unwrap();
        assert!(getter.join().unwrap());
        drop(q);
        bucle::yield_now();
    });
    assert_eq!(ran.get(), 1);
    assert_eq!(stacks_in_use(), base);
}

/// A guard whose `Drop` waits (asyncio's `__aexit__` awaiting), in a task
/// that is cancelled, then cancelled again while the guard waits: the
/// second cancel cannot start a second unwind inside the destructor (Rust
/// aborts on that), so it is redundant and the guard's wait completes; the
/// task ends cancelled. Found porting the seed's AsyncContextManager story.
#[test]
fn a_second_cancel_while_a_destructor_waits_during_the_unwind_does_not_abort() {
    struct Guard(Rc<Cell<Option<Duration>>>);
    impl Drop for Guard {
        fn drop(&mut self) {
            bucle::sleep(ms(1000));
            self.0.set(Some(bucle::time()));
        }
    }
    let exited = Rc::new(Cell::new(None));
    let e = exited.clone();
    let lp = vloop();
    let (end, joined) = lp.run_until_complete(move || {
        let t = bucle::spawn(move || {
            let _g = Guard(e);
            bucle::sleep(ms(10_000));
        });
        bucle::sleep(ms(1000));
        assert!(t.cancel());
        bucle::sleep(ms(500));
        assert!(t.cancel(), "still running its destructor");
        let joined = t.join();
        (bucle::time(), joined)
    });
    assert_eq!(joined, Err(JoinError::Cancelled));
    assert_eq!(
        exited.get(),
        Some(ms(2000)),
        "the guard's wait ran to its end"
    );
    assert_eq!(end, ms(2000));
}

/// The same with a timeout that fires while the destructor of the
/// timeout's own unwind waits, and a cancel during a timeout's unwind: the
/// cancel is kept and delivered at the first suspension after the timeout
/// has caught its unwind.
#[test]
fn interrupts_during_an_unwinds_destructor_wait_are_deferred_not_fatal() {
    struct Guard;
    impl Drop for Guard {
        fn drop(&mut self) {
            bucle::sleep(ms(1000));
        }
    }
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let lp = vloop();
    let joined = lp.run_until_complete(move || {
        let l2 = l.clone();
        let t = bucle::spawn(move || {
            let r = bucle::timeout(ms(500), || {
                let _g = Guard;
                bucle::sleep(ms(10_000));
            });
            l2.borrow_mut()
                .push(format!("timeout {} at {:?}", r.is_err(), bucle::time()));
            bucle::sleep(ms(10_000)); // the deferred cancel lands here
            l2.borrow_mut().push("not reached".to_string());
        });
        bucle::sleep(ms(1000)); // the guard is waiting in the timeout's unwind
        assert!(t.cancel());
        t.join()
    });
    assert_eq!(joined, Err(JoinError::Cancelled));
    assert_eq!(*log.borrow(), ["timeout true at 1.5s"]);
}
