//! Closing, dropping and shutting down a loop from every state: tasks inside
//! task-group bodies, timeouts, joins, waits on futures, queues and locks,
//! callbacks and timers queued. Every stack, timer and waiter is released,
//! the loop's forced unwinds are never taken for user panics, and the calls
//! that must be refused are refused before they change anything.

mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use bucle::sync::{Lock, Queue};
use bucle::{EventLoop, Future, Generator, Yielder};
use support::{Drops, INTENTIONAL, catch, ms, record_reports, stacks_in_use, vloop};

const LONG: Duration = Duration::from_secs(100);

/// A task inside a task group's body (its child asleep too) when the loop
/// is closed, dropped, or when `bucle::run`'s main panics: before, the
/// group waited for its children in the middle of the close's forced
/// unwind, and the process aborted ("cannot propagate coroutine panic").
fn loop_with_a_task_in_a_group_body(drops: &Drops) -> EventLoop {
    let lp = vloop();
    let (body, child) = (drops.token(), drops.token());
    lp.spawn(move || {
        bucle::task_group(move |g| {
            g.spawn(move || {
                let _child = child;
                bucle::sleep(LONG);
            });
            let _body = body;
            bucle::sleep(LONG);
        })
    });
    lp.run_until_complete(|| bucle::sleep(ms(1)));
    lp
}

#[test]
fn dropping_a_loop_with_a_task_in_a_group_body_unwinds_it() {
    let base = stacks_in_use();
    let drops = Drops::new();
    drop(loop_with_a_task_in_a_group_body(&drops));
    assert_eq!(drops.made(), 2);
    assert!(drops.all_dropped_once(), "{}", drops.report());
    assert_eq!(stacks_in_use(), base);
}

#[test]
fn closing_a_loop_with_a_task_in_a_group_body_unwinds_it() {
    let base = stacks_in_use();
    let drops = Drops::new();
    let lp = loop_with_a_task_in_a_group_body(&drops);
    let reports = record_reports(&lp);
    lp.close();
    assert!(lp.is_closed());
    assert!(drops.all_dropped_once(), "{}", drops.report());
    assert_eq!(stacks_in_use(), base);
    // The forced unwind is not a panic of the task's.
    assert!(reports.borrow().is_empty(), "{:?}", reports.borrow());
}

#[test]
fn run_whose_main_panics_while_a_task_is_in_a_group_body() {
    let base = stacks_in_use();
    let drops = Drops::new();
    let d = drops.clone();
    let err = catch(move || {
        bucle::run(move || {
            let token = d.token();
            bucle::spawn(move || {
                bucle::task_group(move |g| {
                    g.spawn(|| bucle::sleep(LONG));
                    let _token = token;
                    bucle::sleep(LONG);
                })
            });
            bucle::sleep(ms(1));
            panic!("{INTENTIONAL} main gives up");
        })
    })
    .unwrap_err();
    assert_eq!(err, format!("{INTENTIONAL} main gives up"));
    assert!(drops.all_dropped_once(), "{}", drops.report());
    assert_eq!(stacks_in_use(), base);
}

#[test]
fn run_whose_main_panics_cancels_the_other_tasks_as_asyncio_run_does() {
    // asyncio.run cancels the leftovers in a `finally`: their cancellation
    // unwinds run as a cancellation (they may still wait), not as the
    // close's forced unwind.
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let err = catch(move || {
        bucle::run(move || {
            let l2 = l.clone();
            bucle::spawn(move || {
                struct WaitsOnUnwind(Rc<RefCell<Vec<&'static str>>>);
                impl Drop for WaitsOnUnwind {
                    fn drop(&mut self) {
                        // A cancellation unwinds inside the task (it could
                        // still wait); the close's forced unwind does not.
                        let how = match bucle::current_task() {
                            Some(_) => "cancelled",
                            None => "dropped by close",
                        };
                        self.0.borrow_mut().push(how);
                    }
                }
                let _g = WaitsOnUnwind(l2);
                bucle::sleep(LONG);
            });
            bucle::sleep(ms(1));
            panic!("{INTENTIONAL} main");
        })
    })
    .unwrap_err();
    assert!(err.ends_with("main"));
    assert_eq!(*log.borrow(), ["cancelled"]);
}

#[test]
fn close_releases_tasks_in_every_state() {
    let base = stacks_in_use();
    let drops = Drops::new();
    let lp = vloop();
    let reports = record_reports(&lp);
    let fut: Future<u32> = Future::new();
    let queue: Queue<u32> = Queue::new();
    let lock = Lock::new();
    let guard_lock = lock.clone();
    let held = Rc::new(RefCell::new(None));
    let h2 = held.clone();
    let (t1, t2, t3, t4, t5, t6) = (
        drops.token(),
        drops.token(),
        drops.token(),
        drops.token(),
        drops.token(),
        drops.token(),
    );
    let sleeper = lp.spawn(move || {
        let _t = t1;
        bucle::sleep(LONG)
    });
    lp.spawn(move || {
        let _t = t2;
        let _ = bucle::timeout(LONG, || bucle::sleep(LONG * 2));
    });
    lp.spawn(move || {
        let _t = t3;
        let _ = sleeper.join();
    });
    let f = fut.clone();
    lp.spawn(move || {
        let _t = t4;
        let _ = f.wait();
    });
    let q = queue.clone();
    lp.spawn(move || {
        let _t = t5;
        let _ = q.get();
    });
    lp.spawn(move || {
        *h2.borrow_mut() = Some(guard_lock.acquire());
    });
    let l = lock.clone();
    lp.spawn(move || {
        let _t = t6;
        let _g = l.acquire();
    });
    let token = drops.token();
    let later = drops.token();
    lp.run_until_complete(|| bucle::sleep(ms(1)));
    lp.call_soon(move || drop(token));
    lp.call_later(LONG, move || drop(later));
    lp.close();
    assert_eq!(drops.made(), 8);
    assert!(drops.all_dropped_once(), "{}", drops.report());
    assert_eq!(stacks_in_use(), base);
    assert!(reports.borrow().is_empty(), "{:?}", reports.borrow());
    drop(held);
}

#[test]
fn shutdown_inside_a_task_of_another_loop_is_refused_before_cancelling_anything() {
    support::quiet_panics();
    let other = Rc::new(vloop());
    let pending = other.spawn(|| bucle::sleep(LONG));
    let o = other.clone();
    let err = vloop()
        .run_until_complete(move || catch(move || o.shutdown()))
        .unwrap_err();
    assert!(
        err.contains("cannot run an event loop while another is running"),
        "{err}"
    );
    assert!(
        !pending.is_done(),
        "shutdown cancelled the task before refusing"
    );
    // Still usable: the refused call changed nothing.
    other.run_until_complete(|| bucle::sleep(ms(1)));
    assert!(!pending.is_cancelled());
}

#[test]
fn shutdown_of_its_own_loop_from_a_task_is_refused_before_cancelling_anything() {
    support::quiet_panics();
    let lp = Rc::new(vloop());
    let pending = lp.spawn(|| bucle::sleep(LONG));
    let me = lp.clone();
    let err = lp
        .run_until_complete(move || catch(move || me.shutdown()))
        .unwrap_err();
    assert!(err.contains("EventLoop::shutdown"), "{err}");
    assert!(!pending.is_done() && !pending.is_cancelled());
    lp.shutdown();
    assert!(pending.is_cancelled());
}

#[test]
fn close_from_a_task_during_shutdown_is_refused() {
    // A task that runs during shutdown's ticks (spawned by a destructor of
    // a cancelled one) tries to close the loop: refused, since the loop is
    // running, and the loop is left consistent and usable. It used to be
    // accepted, and closing dropped the running task's own coroutine.
    support::quiet_panics();
    let lp = Rc::new(vloop());
    let refused = Rc::new(RefCell::new(None));
    struct SpawnCloser(Rc<EventLoop>, Rc<RefCell<Option<String>>>);
    impl Drop for SpawnCloser {
        fn drop(&mut self) {
            let (lp, refused) = (self.0.clone(), self.1.clone());
            bucle::spawn(move || {
                *refused.borrow_mut() = Some(catch(|| lp.close()).unwrap_err());
            });
        }
    }
    let closer = SpawnCloser(lp.clone(), refused.clone());
    let first = lp.spawn(move || {
        let _closer = closer;
        bucle::sleep(LONG)
    });
    let second = lp.spawn(|| bucle::sleep(LONG));
    lp.run_until_complete(|| bucle::sleep(ms(1)));
    lp.shutdown();
    assert!(first.is_cancelled() && second.is_cancelled());
    assert!(!lp.is_running() && !lp.is_closed());
    let refused = refused.borrow_mut().take().expect("the closer ran");
    assert!(
        refused.contains("cannot close a running event loop"),
        "{refused}"
    );
    assert_eq!(lp.run_until_complete(|| 42), 42);
    lp.close();
    assert!(lp.is_closed());
}

#[test]
fn call_soon_and_call_later_on_a_closed_loop_are_refused() {
    let lp = EventLoop::new();
    lp.close();
    let err = catch(|| lp.call_soon(|| ())).unwrap_err();
    assert!(err.contains("the event loop is closed"), "{err}");
    let err = catch(|| lp.call_later(ms(1), || ())).unwrap_err();
    assert!(err.contains("the event loop is closed"), "{err}");
}

#[test]
fn a_detached_task_panicking_in_the_last_tick_is_still_reported() {
    // `bucle::run(|| { drop(spawn(|| panic!())); })`: the task panics in
    // the tick in which the loop stops; its report was queued, then
    // dropped by close. asyncio reports it.
    support::quiet_panics();
    let lp = vloop();
    let reports = record_reports(&lp);
    lp.run_until_complete(|| {
        drop(bucle::spawn(|| panic!("{INTENTIONAL} last tick")));
    });
    lp.shutdown();
    lp.close();
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(
        reports[0].panic.as_deref(),
        Some(format!("{INTENTIONAL} last tick").as_str())
    );
}

#[test]
fn waiting_after_catching_the_close_unwind_is_reported_with_a_clear_message() {
    // A task that swallows the close's forced unwind and then waits: the
    // wait is refused with a message naming the close (it used to say
    // "called from a callback") and reported; the process does not abort.
    support::quiet_panics();
    let base = stacks_in_use();
    let lp = vloop();
    let reports = record_reports(&lp);
    let t = lp.spawn(|| {
        let _ = std::panic::catch_unwind(|| bucle::sleep(LONG));
        bucle::sleep(LONG);
    });
    lp.run_until_complete(|| bucle::sleep(ms(1)));
    lp.close();
    assert!(t.is_cancelled());
    assert_eq!(stacks_in_use(), base);
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let msg = &reports[0].message;
    assert!(
        msg.contains("panicked while its event loop was closing"),
        "{msg}"
    );
    assert!(
        msg.contains("bucle::sleep called while the event loop is closing"),
        "{msg}"
    );
}

#[test]
fn a_timeout_opened_in_a_generator_that_fires_elsewhere_names_the_generator() {
    support::quiet_panics();
    let lp = vloop();
    let t = lp.spawn(|| {
        let mut g = Generator::new(|y: &Yielder<()>, ()| {
            let _ = bucle::timeout(ms(10), || y.yield_(()));
        });
        g.resume(());
        // The generator's timeout fires while the task waits here, where
        // nothing can catch its unwind.
        bucle::sleep(ms(100));
    });
    let err = lp.run_until_complete(move || t.join()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("escaped its scope"), "{msg}");
    assert!(msg.contains("generator nested in this task"), "{msg}");
}

#[test]
fn a_destructor_closing_the_loop_during_close_is_harmless() {
    let lp = Rc::new(vloop());
    let inner = Rc::new(Cell::new(0));
    struct CloseAgain(Rc<EventLoop>, Rc<Cell<u32>>);
    impl Drop for CloseAgain {
        fn drop(&mut self) {
            self.0.close();
            self.1.set(self.1.get() + 1);
        }
    }
    let guard = CloseAgain(lp.clone(), inner.clone());
    lp.spawn(move || {
        let _g = guard;
        bucle::sleep(LONG);
    });
    lp.run_until_complete(|| bucle::sleep(ms(1)));
    lp.close();
    assert_eq!(inner.get(), 1);
    assert!(lp.is_closed());
}

#[test]
fn destructors_that_spawn_and_schedule_during_close_are_swept_up() {
    let base = stacks_in_use();
    let drops = Drops::new();
    let lp = vloop();
    struct Respawn(Drops);
    impl Drop for Respawn {
        fn drop(&mut self) {
            let t = self.0.token();
            let u = self.0.token();
            bucle::spawn(move || {
                let _t = t;
                bucle::sleep(LONG);
            });
            bucle::call_soon(move || drop(u));
        }
    }
    let r = Respawn(drops.clone());
    lp.spawn(move || {
        let _r = r;
        bucle::sleep(LONG);
    });
    lp.run_until_complete(|| bucle::sleep(ms(1)));
    lp.close();
    assert_eq!(drops.made(), 2);
    assert!(drops.all_dropped_once(), "{}", drops.report());
    assert_eq!(stacks_in_use(), base);
}
