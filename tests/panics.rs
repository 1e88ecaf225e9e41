//! Panics are task results: `join` returns them, the loop survives, and a
//! panic nobody retrieves is reported exactly once through the exception
//! handler.

mod support;

use std::cell::RefCell;
use std::rc::Rc;

use bucle::{EventLoop, ExceptionContext, JoinError};
use support::{Counter, INTENTIONAL, Log, catch, ms, record_reports, strs, vloop};

fn boom(what: &str) -> String {
    format!("{INTENTIONAL} {what}")
}

/// Runs `main` on a virtual-time loop that records exception reports, with
/// the leftovers shut down and the loop closed before returning the reports.
fn run_recording<T: 'static>(
    main: impl FnOnce() -> T + 'static,
) -> (T, Rc<RefCell<Vec<ExceptionContext>>>) {
    support::quiet_panics();
    let lp = vloop();
    let reports = record_reports(&lp);
    let out = lp.run_until_complete(main);
    lp.shutdown();
    lp.close();
    (out, reports)
}

#[test]
fn panic_in_a_task_is_returned_by_join_with_its_message() {
    let (_, reports) = run_recording(|| {
        let t = bucle::spawn(|| -> u32 { panic!("{}", boom("kaput")) });
        let err = t.join().unwrap_err();
        assert_eq!(err, JoinError::Panicked(boom("kaput")));
        assert!(err.is_panic() && !err.is_cancelled());
        assert_eq!(err.to_string(), format!("task panicked: {}", boom("kaput")));
        // A &'static str payload keeps its message too.
        let t = bucle::spawn(|| std::panic::panic_any::<&'static str>("[intentional] static"));
        assert_eq!(
            t.join(),
            Err(JoinError::Panicked("[intentional] static".into()))
        );
        let err: Box<dyn std::error::Error> = Box::new(JoinError::Panicked("x".into()));
        assert_eq!(err.to_string(), "task panicked: x");
    });
    assert!(
        reports.borrow().is_empty(),
        "joined panics are not reported"
    );
}

#[test]
fn panicked_task_state_flags() {
    run_recording(|| {
        let t = bucle::spawn(|| panic!("{}", boom("flags")));
        support::yield_until(3, || t.is_done());
        assert!(t.is_panicked());
        assert!(!t.is_cancelled());
        assert!(!t.cancel());
        assert!(matches!(t.take_result(), Some(Err(JoinError::Panicked(_)))));
    });
}

#[test]
fn the_loop_survives_a_panicking_task_and_others_continue() {
    let log = Log::new();
    let l = log.clone();
    let (total, reports) = run_recording(move || {
        let lw = l.clone();
        let worker = bucle::spawn(move || {
            let mut sum = 0;
            for i in 0..5 {
                lw.push(format!("worker {i}"));
                sum += i;
                bucle::yield_now();
            }
            sum
        });
        let bad = bucle::spawn(|| {
            bucle::yield_now();
            panic!("{}", boom("midway"));
        });
        bucle::sleep(ms(1));
        assert!(bad.join().is_err());
        worker.join().unwrap()
    });
    assert_eq!(total, 10);
    assert_eq!(log.len(), 5);
    assert!(reports.borrow().is_empty());
}

#[test]
fn detached_panicking_task_is_reported_exactly_once() {
    let (id, reports) = run_recording(|| {
        let t = bucle::TaskBuilder::new()
            .name("doomed")
            .spawn(|| panic!("{}", boom("detached")));
        let id = t.id();
        drop(t); // detached before it panics
        bucle::sleep(ms(5));
        id
    });
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let r = &reports[0];
    assert_eq!(r.task, Some(id));
    assert_eq!(r.task_name.as_deref(), Some("doomed"));
    assert_eq!(r.panic.as_deref(), Some(boom("detached").as_str()));
    assert!(r.message.contains("doomed"), "{}", r.message);
    assert!(r.message.contains(&boom("detached")), "{}", r.message);
}

#[test]
fn handle_dropped_after_the_panic_reports_once_at_the_drop() {
    let reports_seen = Rc::new(RefCell::new(Vec::new()));
    let seen = reports_seen.clone();
    let (_, reports) = run_recording(move || {
        let t = bucle::spawn(|| panic!("{}", boom("late drop")));
        support::yield_until(3, || t.is_done());
        bucle::yield_now();
        bucle::yield_now();
        seen.borrow_mut().push("before drop");
        drop(t);
        seen.borrow_mut().push("after drop");
        bucle::yield_now();
    });
    assert_eq!(reports.borrow().len(), 1, "{:?}", reports.borrow());
    assert_eq!(
        reports.borrow()[0].panic.as_deref(),
        Some(boom("late drop").as_str())
    );
    assert_eq!(*reports_seen.borrow(), ["before drop", "after drop"]);
}

#[test]
fn report_happens_synchronously_when_the_last_handle_drops() {
    let lp = vloop();
    let count = Counter::new();
    let c = count.clone();
    lp.set_exception_handler(move |_| c.incr());
    support::quiet_panics();
    let c2 = count.clone();
    lp.run_until_complete(move || {
        let t = bucle::spawn(|| panic!("{}", boom("sync")));
        support::yield_until(3, || t.is_done());
        assert_eq!(c2.get(), 0, "still held: not reported");
        drop(t);
        assert_eq!(c2.get(), 1, "reported at the drop");
    });
    drop(lp);
    assert_eq!(count.get(), 1);
}

#[test]
fn joined_panic_is_not_reported() {
    let (_, reports) = run_recording(|| {
        let t = bucle::spawn(|| panic!("{}", boom("joined")));
        assert!(t.join().is_err());
    });
    assert!(reports.borrow().is_empty(), "{:?}", reports.borrow());
}

#[test]
fn panic_taken_by_a_done_callback_is_not_reported() {
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    let (_, reports) = run_recording(move || {
        let t = bucle::spawn(|| panic!("{}", boom("taken by callback")));
        t.add_done_callback(move |t| *g.borrow_mut() = t.take_result());
        drop(t);
        bucle::sleep(ms(1));
    });
    assert!(matches!(*got.borrow(), Some(Err(JoinError::Panicked(_)))));
    assert!(reports.borrow().is_empty(), "{:?}", reports.borrow());
}

#[test]
fn panic_seen_but_not_taken_by_a_done_callback_is_reported_once() {
    let (_, reports) = run_recording(|| {
        let t = bucle::spawn(|| panic!("{}", boom("only looked at")));
        t.add_done_callback(|t| assert!(t.is_panicked()));
        drop(t);
        bucle::sleep(ms(1));
    });
    assert_eq!(reports.borrow().len(), 1, "{:?}", reports.borrow());
}

#[test]
fn panic_returned_by_gather_is_not_reported() {
    let (_, reports) = run_recording(|| {
        let a = bucle::spawn(|| 1);
        let b = bucle::spawn(|| -> i32 { panic!("{}", boom("gathered")) });
        let r = bucle::gather([a, b]);
        assert_eq!(r, Err(JoinError::Panicked(boom("gathered"))));
        bucle::sleep(ms(1));
    });
    assert!(reports.borrow().is_empty(), "{:?}", reports.borrow());
}

/// SRC DIVERGENCE (reported): asyncio's gather marks the exceptions of the
/// children that fail after it has already returned its first failure as
/// retrieved (`_done_callback`: `if outer.done(): fut.exception()`), so
/// asyncio logs nothing (checked with CPython 3.11). bucle reports the
/// second panic as unretrieved (src/combinators.rs, gather's done callback
/// returns early when `outer.is_done()` without taking the result). Run with
/// `--ignored`.
#[test]
fn later_panics_of_a_failed_gather_are_not_reported_as_in_asyncio() {
    let (_, reports) = run_recording(|| {
        let a = bucle::spawn(|| -> i32 {
            bucle::sleep(ms(1));
            panic!("{}", boom("first"))
        });
        let b = bucle::spawn(|| -> i32 {
            bucle::sleep(ms(2));
            panic!("{}", boom("second"))
        });
        assert_eq!(
            bucle::gather([a, b]),
            Err(JoinError::Panicked(boom("first")))
        );
        bucle::sleep(ms(5));
    });
    assert!(reports.borrow().is_empty(), "{:?}", reports.borrow());
}

#[test]
fn panic_in_main_propagates_out_of_run() {
    let baseline = support::stacks_in_use();
    let err = catch(|| {
        bucle::run(|| -> u32 {
            drop(bucle::spawn(|| bucle::sleep(ms(1000))));
            bucle::yield_now();
            panic!("{}", boom("main failed"))
        })
    })
    .unwrap_err();
    assert_eq!(err, boom("main failed"));
    assert_eq!(support::stacks_in_use(), baseline);
    // The thread can run a loop again afterwards.
    assert_eq!(bucle::run(|| 3), 3);
}

#[test]
fn panic_in_main_of_run_until_complete_leaves_the_loop_usable() {
    let lp = EventLoop::new();
    let err = catch(|| lp.run_until_complete(|| panic!("{}", boom("main")))).unwrap_err();
    assert_eq!(err, boom("main"));
    assert!(!lp.is_running());
    assert_eq!(lp.run_until_complete(|| "again"), "again");
}

#[test]
fn panic_in_a_callback_is_reported_and_the_loop_continues() {
    let log = Log::new();
    let l = log.clone();
    let (_, reports) = run_recording(move || {
        let l1 = l.clone();
        bucle::call_soon(move || {
            l1.push("cb1");
            panic!("{}", boom("callback"));
        });
        let l2 = l.clone();
        bucle::call_soon(move || l2.push("cb2"));
        bucle::call_later(ms(3), || panic!("{}", boom("timer callback")));
        bucle::sleep(ms(5));
        l.push("main done");
    });
    assert_eq!(log.get(), strs(&["cb1", "cb2", "main done"]));
    let reports = reports.borrow();
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert_eq!(reports[0].panic.as_deref(), Some(boom("callback").as_str()));
    assert_eq!(reports[0].task, None);
    assert!(reports[0].message.contains("callback"));
    assert!(
        reports[1]
            .panic
            .as_deref()
            .unwrap()
            .contains("timer callback")
    );
}

#[test]
fn default_handler_can_be_restored() {
    support::quiet_panics();
    let lp = vloop();
    let count = Counter::new();
    let c = count.clone();
    lp.set_exception_handler(move |_| c.incr());
    lp.run_until_complete(|| {
        bucle::call_soon(|| panic!("{}", boom("first")));
        bucle::yield_now();
    });
    assert_eq!(count.get(), 1);
    lp.clear_exception_handler();
    // The default handler prints to stderr; it must not reach ours.
    lp.run_until_complete(|| {
        bucle::call_soon(|| panic!("{}", boom("second, printed by the default handler")));
        bucle::yield_now();
    });
    assert_eq!(count.get(), 1);
}

#[test]
fn a_panicking_task_unwinds_its_stack() {
    let drops = support::Drops::new();
    let d = drops.clone();
    let (_, _) = run_recording(move || {
        let tok = d.token();
        let t = bucle::spawn(move || {
            let _inner = tok;
            bucle::yield_now();
            panic!("{}", boom("unwinding"));
        });
        assert!(t.join().is_err());
        assert_eq!(d.live(), 0);
    });
    assert!(drops.all_dropped_once());
}
