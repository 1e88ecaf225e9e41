//! `bucle::Future`: asyncio's Future, a settable result slot with waiters
//! and done callbacks.

mod support;

use std::fmt;

use bucle::{Future, FutureError, InvalidState, JoinError};
use support::{Log, catch, ms, run_virtual, strs};

#[derive(Debug)]
struct MyError(&'static str);

impl fmt::Display for MyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "my error: {}", self.0)
    }
}

impl std::error::Error for MyError {}

#[test]
fn a_new_future_is_pending() {
    let f: Future<u32> = Future::new();
    assert!(!f.is_done());
    assert!(!f.is_cancelled());
    assert!(f.result().is_none());
    assert!(f.exception().is_none());
    let d: Future<u32> = Future::default();
    assert!(!d.is_done());
    assert!(!d.ptr_eq(&f));
}

#[test]
fn set_result_outside_a_loop_without_callbacks() {
    let f = Future::new();
    assert_eq!(f.set_result(3), Ok(()));
    assert!(f.is_done() && !f.is_cancelled());
    assert!(matches!(f.result(), Some(Ok(3))));
    assert!(f.exception().is_none());
    // Waiting on a done future needs no loop: it does not suspend.
    assert!(matches!(f.wait(), Ok(3)));
}

#[test]
fn setting_a_finished_future_is_invalid_state() {
    let f = Future::new();
    f.set_result(1).unwrap();
    assert_eq!(f.set_result(2), Err(InvalidState));
    assert_eq!(f.set_exception(MyError("late")), Err(InvalidState));
    assert!(!f.cancel(), "cancel on a done future returns false");
    assert!(matches!(f.result(), Some(Ok(1))), "the first outcome stays");
    assert_eq!(
        InvalidState.to_string(),
        "invalid state: the future is already done"
    );

    let c: Future<u8> = Future::new();
    assert!(c.cancel());
    assert!(!c.cancel());
    assert_eq!(c.set_result(1), Err(InvalidState));
}

#[test]
fn set_exception_is_seen_by_result_exception_and_wait() {
    let f: Future<u32> = Future::new();
    f.set_exception(MyError("bad")).unwrap();
    assert!(f.is_done() && !f.is_cancelled());
    let e = f.exception().expect("an exception");
    assert!(!e.is_cancelled());
    assert_eq!(e.to_string(), "my error: bad");
    assert_eq!(format!("{e:?}"), "Exception(\"my error: bad\")");
    match f.result() {
        Some(Err(FutureError::Exception(inner))) => {
            assert_eq!(inner.to_string(), "my error: bad");
        }
        other => panic!("unexpected {other:?}"),
    }
    let waited = run_virtual(move || f.wait().map_err(|e| e.to_string()));
    assert_eq!(waited, Err("my error: bad".to_string()));
}

#[test]
fn cancel_completes_with_cancelled() {
    let f: Future<u32> = Future::new();
    assert!(f.cancel());
    assert!(f.is_done() && f.is_cancelled());
    let e = f.exception().unwrap();
    assert!(e.is_cancelled());
    assert_eq!(e.to_string(), "the future was cancelled");
    assert_eq!(format!("{e:?}"), "Cancelled");
    assert!(matches!(f.result(), Some(Err(FutureError::Cancelled))));
}

#[test]
fn debug_shows_the_state() {
    let p: Future<u8> = Future::new();
    assert_eq!(format!("{p:?}"), r#"Future { state: "pending" }"#);
    let ok = Future::new();
    ok.set_result(1u8).unwrap();
    assert_eq!(format!("{ok:?}"), r#"Future { state: "finished" }"#);
    let c: Future<u8> = Future::new();
    c.cancel();
    assert_eq!(format!("{c:?}"), r#"Future { state: "cancelled" }"#);
    let e: Future<u8> = Future::new();
    e.set_exception(MyError("x")).unwrap();
    assert_eq!(format!("{e:?}"), r#"Future { state: "failed" }"#);
}

#[test]
fn clones_share_one_slot() {
    let a: Future<String> = Future::new();
    let b = a.clone();
    assert!(a.ptr_eq(&b));
    b.set_result("via b".into()).unwrap();
    assert!(a.is_done());
    assert_eq!(a.result().unwrap().unwrap(), "via b");
    assert_eq!(a.set_result("via a".into()), Err(InvalidState));
}

#[test]
fn wait_suspends_until_set_and_returns_the_value() {
    let log = Log::new();
    let l = log.clone();
    let v = run_virtual(move || {
        let f: Future<u32> = Future::new();
        let setter = f.clone();
        let ls = l.clone();
        bucle::spawn(move || {
            bucle::sleep(ms(10));
            ls.push("setting");
            setter.set_result(42).unwrap();
            ls.push("set (waiter not run yet)");
        });
        l.push("waiting");
        let v = f.wait().unwrap();
        l.push(format!("got {v} at {:?}", bucle::time()));
        v
    });
    assert_eq!(v, 42);
    assert_eq!(
        log.get(),
        strs(&[
            "waiting",
            "setting",
            "set (waiter not run yet)",
            "got 42 at 10ms"
        ])
    );
}

#[test]
fn several_tasks_wait_on_one_future_and_wake_in_order() {
    let log = Log::new();
    let l = log.clone();
    run_virtual(move || {
        let f: Future<u32> = Future::new();
        let waiters: Vec<_> = (0..4)
            .map(|i| {
                let (f, l) = (f.clone(), l.clone());
                bucle::spawn(move || {
                    let v = f.wait().unwrap();
                    l.push(format!("w{i} got {v}"));
                    v + i
                })
            })
            .collect();
        bucle::yield_now();
        f.set_result(10).unwrap();
        let sums: Vec<u32> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
        assert_eq!(sums, [10, 11, 12, 13]);
    });
    assert_eq!(
        log.get(),
        strs(&["w0 got 10", "w1 got 10", "w2 got 10", "w3 got 10"])
    );
}

#[test]
fn cancelling_the_future_wakes_all_waiters_with_cancelled() {
    run_virtual(|| {
        let f: Future<u32> = Future::new();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let f = f.clone();
                bucle::spawn(move || f.wait().map_err(|e| e.is_cancelled()))
            })
            .collect();
        bucle::yield_now();
        assert!(f.cancel());
        for w in waiters {
            // The waiters are not cancelled: they see the future's outcome.
            assert_eq!(w.join(), Ok(Err(true)));
        }
    });
}

#[test]
fn done_callbacks_run_in_order_through_the_queue() {
    let log = Log::new();
    let l = log.clone();
    run_virtual(move || {
        let f: Future<u32> = Future::new();
        for i in 0..3 {
            let l = l.clone();
            f.add_done_callback(move |f| {
                l.push(format!("cb{i} sees {:?}", f.result().unwrap().unwrap()));
            });
        }
        f.set_result(8).unwrap();
        l.push("set returned");
        bucle::yield_now();
        l.push("after one tick");
    });
    assert_eq!(
        log.get(),
        strs(&[
            "set returned",
            "cb0 sees 8",
            "cb1 sees 8",
            "cb2 sees 8",
            "after one tick"
        ])
    );
}

/// A callback added to a finished future is scheduled, not run inline.
#[test]
fn callback_added_after_done_is_scheduled_not_called_inline() {
    let log = Log::new();
    let l = log.clone();
    run_virtual(move || {
        let f: Future<&str> = Future::new();
        f.set_result("done").unwrap();
        let lc = l.clone();
        f.add_done_callback(move |f| lc.push(format!("late cb: {}", f.result().unwrap().unwrap())));
        l.push("add returned");
        bucle::yield_now();
        l.push("main resumed");
    });
    assert_eq!(
        log.get(),
        strs(&["add returned", "late cb: done", "main resumed"])
    );
}

#[test]
fn callbacks_see_cancellation_and_exceptions() {
    let log = Log::new();
    let l = log.clone();
    run_virtual(move || {
        let c: Future<u8> = Future::new();
        let lc = l.clone();
        c.add_done_callback(move |f| lc.push(format!("c cancelled={}", f.is_cancelled())));
        let e: Future<u8> = Future::new();
        let le = l.clone();
        e.add_done_callback(move |f| {
            le.push(format!("e exception={}", f.exception().unwrap()));
        });
        c.cancel();
        e.set_exception(MyError("oops")).unwrap();
        bucle::yield_now();
    });
    assert_eq!(
        log.get(),
        strs(&["c cancelled=true", "e exception=my error: oops"])
    );
}

#[test]
fn waiting_outside_a_loop_panics_with_a_clear_message() {
    let f: Future<u8> = Future::new();
    let err = catch(|| f.wait()).unwrap_err();
    assert!(err.contains("bucle::Future::wait"), "{err}");
    assert!(err.contains("bucle::run"), "{err}");
}

#[test]
fn setting_a_future_with_callbacks_outside_a_loop_panics() {
    let f: Future<u8> = Future::new();
    f.add_done_callback(|_| {});
    let err = catch(|| f.set_result(1)).unwrap_err();
    assert!(err.contains("bucle::Future::set_result"), "{err}");
    assert!(err.contains("outside a running event loop"), "{err}");
    let err = catch(|| f.cancel()).unwrap_err();
    assert!(err.contains("bucle::Future::cancel"), "{err}");
}

/// The refused completion changes nothing: the future stays pending with
/// every waiter, and completing it later inside a loop wakes them all, in
/// order (a task parked on it before the callback was added included).
#[test]
fn a_refused_completion_leaves_the_future_pending_with_its_waiters() {
    let log = Log::new();
    let f: Future<u8> = Future::new();
    let lp = support::vloop();
    // A task parks on the future inside one run, which then returns.
    let waiter = {
        let (f, log) = (f.clone(), log.clone());
        lp.run_until_complete(move || {
            let t = bucle::spawn(move || log.push(format!("task {:?}", f.wait())));
            bucle::yield_now();
            t
        })
    };
    let cb_log = log.clone();
    f.add_done_callback(move |f| cb_log.push(format!("cb {:?}", f.result())));
    assert!(catch(|| f.set_exception(MyError("x"))).is_err());
    assert!(!f.is_done());
    assert!(log.get().is_empty());
    lp.run_until_complete(move || {
        f.set_result(7).unwrap();
        waiter.join().unwrap();
        bucle::yield_now();
    });
    assert_eq!(log.get(), strs(&["task Ok(7)", "cb Some(Ok(7))"]));
}

/// A future can carry non-Clone values; `set_result`, `is_done` and
/// callbacks work without `Clone`.
#[test]
fn non_clone_values() {
    struct NoClone;
    let got = std::rc::Rc::new(std::cell::Cell::new(0));
    let g = got.clone();
    run_virtual(move || {
        let f: Future<NoClone> = Future::new();
        f.add_done_callback(move |f| g.set(if f.is_done() { 1 } else { 2 }));
        assert!(f.set_result(NoClone).is_ok());
        bucle::yield_now();
    });
    assert_eq!(got.get(), 1);
}

/// A waiting task that is joined by another sees the future's value flow
/// through.
#[test]
fn future_value_flows_through_join() {
    let r = run_virtual(|| {
        let f: Future<Vec<u8>> = Future::new();
        let g = f.clone();
        let t = bucle::spawn(move || g.wait().unwrap().len());
        bucle::call_later(ms(1), move || f.set_result(vec![1, 2, 3]).unwrap());
        t.join()
    });
    assert_eq!(r, Ok::<usize, JoinError>(3));
}
