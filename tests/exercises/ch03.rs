//! Chapter 3, the event loop and its awaitables (`docs/03-awaitables.md`):
//! exercises.
//!
//! Exercises 1–3 grow the toy kernel of "Building the kernel". [`toy`] is
//! that toy with all three answers in it, each marked with its exercise;
//! the tests follow it.

use std::cell::{Cell, RefCell};
use std::panic;
use std::rc::Rc;
use std::sync::Once;
use std::time::Duration;

use bucle::{Future, JoinError, Task};

mod toy {
    use std::cell::{Cell, RefCell};
    use std::collections::{HashMap, VecDeque};
    use std::rc::Rc;

    use bucle::{Generator, GeneratorState, Yielder};

    /// What a task says when it pauses: the kernel's `Trap`.
    pub enum Trap {
        Requeue,
        Park,
    }

    /// Exercise 1: a body returns a value, which `join` hands over.
    type Task = Generator<Trap, u32>;

    thread_local! {
        static READY: RefCell<VecDeque<(usize, Task)>> = RefCell::default();
        static WAITING: RefCell<HashMap<usize, Task>> = RefCell::default();
        static CURRENT: Cell<usize> = const { Cell::new(0) };
        // Exercise 1: each unfinished task's result slot, set by `run`.
        static RESULTS: RefCell<HashMap<usize, Future>> = RefCell::default();
        // Exercise 3: each task's suspension number, bumped by every wait.
        static WAIT_SEQ: RefCell<HashMap<usize, u64>> = RefCell::default();
    }

    /// Exercise 3: the right to wake one task from one suspension (the
    /// kernel's `Waker { task, seq }`).
    #[derive(Clone, Copy)]
    struct Waker {
        id: usize,
        seq: u64,
    }

    /// Starts a new suspension of the running task (the kernel's
    /// `prepare_wait`): wakers made for earlier ones stop working.
    fn prepare_wait() -> Waker {
        let id = CURRENT.with(Cell::get);
        let seq = WAIT_SEQ.with(|w| {
            let mut w = w.borrow_mut();
            let seq = w.entry(id).or_insert(0);
            *seq += 1;
            *seq
        });
        Waker { id, seq }
    }

    /// Moves a parked task back to the ready queue — only if it is parked,
    /// and in the very suspension `w` was made for (the kernel's
    /// `Waker::is_current`). Anything else is a stale wake: ignored.
    fn wake(w: Waker) {
        let current = WAIT_SEQ.with(|s| s.borrow().get(&w.id) == Some(&w.seq));
        if !current {
            return;
        }
        let Some(task) = WAITING.with(|t| t.borrow_mut().remove(&w.id)) else {
            return; // woken already, not parked yet again
        };
        READY.with(|r| r.borrow_mut().push_back((w.id, task)));
    }

    /// A handle to a spawned task (exercise 1).
    #[derive(Clone)]
    pub struct JoinHandle {
        result: Future,
    }

    impl JoinHandle {
        /// Parks until the task has finished; its value.
        pub fn join(&self, y: &Yielder<Trap>) -> u32 {
            self.result.wait(y)
        }
    }

    pub fn spawn(id: usize, body: impl FnOnce(&Yielder<Trap>) -> u32 + 'static) -> JoinHandle {
        let task = Generator::new(move |y: &Yielder<Trap>, ()| body(y));
        let result = Future::default();
        RESULTS.with(|r| r.borrow_mut().insert(id, result.clone()));
        READY.with(|r| r.borrow_mut().push_back((id, task)));
        JoinHandle { result }
    }

    /// Runs until no task is ready. Exercise 2: returns the ids of the
    /// tasks still parked — a deadlock, if there are any — sorted.
    pub fn run() -> Vec<usize> {
        while let Some((id, mut task)) = READY.with(|r| r.borrow_mut().pop_front()) {
            CURRENT.with(|c| c.set(id));
            match task.resume(()) {
                GeneratorState::Yielded(Trap::Requeue) => {
                    READY.with(|r| r.borrow_mut().push_back((id, task)));
                }
                GeneratorState::Yielded(Trap::Park) => {
                    WAITING.with(|w| w.borrow_mut().insert(id, task));
                }
                GeneratorState::Complete(value) => {
                    // Exercise 1: finishing sets the task's result, which
                    // wakes its joiners in the order they started waiting.
                    let result = RESULTS.with(|r| r.borrow_mut().remove(&id));
                    if let Some(result) = result {
                        result.set_result(value);
                    }
                }
            }
        }
        let parked: Vec<(usize, Task)> = WAITING.with(|w| w.borrow_mut().drain().collect());
        let mut ids: Vec<usize> = parked.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        RESULTS.with(|r| r.borrow_mut().retain(|id, _| !ids.contains(id)));
        drop(parked); // unwinds each one (chapter 1), outside any borrow
        ids
    }

    /// A result slot someone else fills.
    #[derive(Clone, Default)]
    pub struct Future {
        value: Rc<Cell<Option<u32>>>,
        waiters: Rc<RefCell<Vec<Waker>>>,
    }

    impl Future {
        pub fn wait(&self, y: &Yielder<Trap>) -> u32 {
            if self.value.get().is_none() {
                self.waiters.borrow_mut().push(prepare_wait());
                y.yield_(Trap::Park);
            }
            self.value.get().expect("woken only once the value is set")
        }

        pub fn set_result(&self, value: u32) {
            self.value.set(Some(value));
            let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
            for w in waiters {
                wake(w);
            }
        }
    }

    /// Exercise 3: parks until `a` or `b` is set; that value (`a`'s if
    /// both are). One suspension, one waker, registered with both.
    pub fn first_of(a: &Future, b: &Future, y: &Yielder<Trap>) -> u32 {
        if let Some(v) = a.value.get().or(b.value.get()) {
            return v;
        }
        let w = prepare_wait();
        a.waiters.borrow_mut().push(w);
        b.waiters.borrow_mut().push(w);
        y.yield_(Trap::Park);
        a.value
            .get()
            .or(b.value.get())
            .expect("woken by one of the two")
    }
}

type Log = Rc<RefCell<Vec<String>>>;

fn push(log: &Log, line: impl Into<String>) {
    log.borrow_mut().push(line.into());
}

mod toy_join {
    use super::toy::{Trap, run, spawn};
    use super::{Log, push};

    #[test]
    fn joiners_wake_in_order() {
        let log: Log = Default::default();
        let l = log.clone();
        let worker = spawn(10, move |y| {
            push(&l, "worker starts");
            y.yield_(Trap::Requeue);
            y.yield_(Trap::Requeue);
            push(&l, "worker ends");
            7
        });
        for id in [1, 2] {
            let (l, worker) = (log.clone(), worker.clone());
            spawn(id, move |y| {
                push(&l, format!("joiner {id} waits"));
                let v = worker.join(y);
                push(&l, format!("joiner {id} got {v}"));
                0
            });
        }
        assert!(run().is_empty());
        assert_eq!(
            *log.borrow(),
            [
                "worker starts",
                "joiner 1 waits",
                "joiner 2 waits",
                "worker ends",
                "joiner 1 got 7",
                "joiner 2 got 7",
            ]
        );
    }
}

mod toy_deadlock {
    use super::toy::{Future, run, spawn};

    #[test]
    fn two_tasks_wait_on_each_other() {
        let (a, b) = (Future::default(), Future::default());
        let (a1, b1) = (a.clone(), b.clone());
        spawn(1, move |y| {
            let v = a1.wait(y); // only task 2 sets `a`, after `b`
            b1.set_result(v);
            0
        });
        spawn(2, move |y| {
            let v = b.wait(y); // only task 1 sets `b`, after `a`
            a.set_result(v);
            0
        });
        assert_eq!(run(), [1, 2]);
        // The toy is clean afterwards: a new run starts from nothing.
        spawn(3, |_| 0);
        assert!(run().is_empty());
    }
}

mod toy_first_of {
    use super::toy::{Future, Trap, first_of, run, spawn};
    use super::{Log, push};

    #[test]
    fn a_stale_wake_is_ignored() {
        let log: Log = Default::default();
        let (a, b, c) = (Future::default(), Future::default(), Future::default());
        let (a1, b1, c1, l) = (a.clone(), b.clone(), c.clone(), log.clone());
        spawn(1, move |y| {
            let first = first_of(&a1, &b1, y);
            push(&l, format!("first of two: {first}"));
            // Parked again, on something else, when `b` is set below: the
            // waker `b` holds is for the earlier suspension. Without the
            // suspension number, setting `b` would resume this wait with
            // no value in `c`.
            let then = c1.wait(y);
            push(&l, format!("then: {then}"));
            0
        });
        spawn(2, move |y| {
            a.set_result(1);
            y.yield_(Trap::Requeue);
            b.set_result(2); // stale for task 1
            y.yield_(Trap::Requeue);
            c.set_result(3);
            0
        });
        assert!(run().is_empty());
        assert_eq!(*log.borrow(), ["first of two: 1", "then: 3"]);
    }
}

/// Exercise 4: the program of the exercise; the log is the prediction.
#[test]
fn predicted_order() {
    let log: Log = Default::default();
    let l = log.clone();
    bucle::run(move || {
        let la = l.clone();
        let a = bucle::spawn(move || {
            push(&la, "a1");
            bucle::yield_now();
            push(&la, "a2");
            bucle::yield_now();
            push(&la, "a3");
        });
        let lb = l.clone();
        let _b = bucle::spawn(move || {
            push(&lb, "b1");
            let lc = lb.clone();
            bucle::spawn(move || push(&lc, "c1"));
            bucle::yield_now();
            push(&lb, "b2");
        });
        push(&l, "main waits");
        a.join().unwrap();
        push(&l, "main done");
    });
    // tick 1: [main]       main spawns a, b (appended) and parks in join
    // tick 2: [a b]        a1, a to the back; b1, c appended, b to the back
    // tick 3: [a c b]      a2; c1; b2
    // tick 4: [a]          a3: a ends, main is appended
    // tick 5: [main]       main done
    assert_eq!(
        *log.borrow(),
        [
            "main waits",
            "a1",
            "b1",
            "a2",
            "c1",
            "b2",
            "a3",
            "main done"
        ]
    );
}

/// Exercise 5: the index and outcome of the first task to finish; the
/// others are cancelled.
fn first_completed<T: 'static>(tasks: Vec<Task<T>>) -> (usize, Result<T, JoinError>) {
    let first: Future<usize> = Future::new();
    for (i, t) in tasks.iter().enumerate() {
        let first = first.clone();
        t.add_done_callback(move |_| {
            // Later finishers find it set: Err(InvalidState), as intended.
            let _ = first.set_result(i);
        });
    }
    let winner = first.wait().expect("only a done callback sets it");
    let mut outcome = None;
    for (i, t) in tasks.into_iter().enumerate() {
        if i == winner {
            outcome = t.take_result();
        } else {
            t.cancel();
        }
    }
    (winner, outcome.expect("the winner is done"))
}

#[test]
fn first_completed_cancels_the_rest() {
    let lp = bucle::EventLoop::builder().virtual_time().build();
    lp.run_until_complete(|| {
        let tasks: Vec<Task<&str>> = [("a", 3), ("b", 1), ("c", 2)]
            .into_iter()
            .map(|(name, secs)| {
                bucle::spawn(move || {
                    bucle::sleep(Duration::from_secs(secs));
                    name
                })
            })
            .collect();
        let handles: Vec<_> = tasks.iter().map(Task::as_any).collect();
        assert_eq!(first_completed(tasks), (1, Ok("b")));
        assert_eq!(bucle::time(), Duration::from_secs(1));
        bucle::yield_now(); // the cancelled ones unwind in this tick
        let cancelled: Vec<bool> = handles.iter().map(|t| t.is_cancelled()).collect();
        assert_eq!(cancelled, [true, false, true]);
    });
}

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

static QUIET_HOOK: Once = Once::new();

/// Exercise 6: runs `f` with this thread's panic messages silenced; other
/// threads' panics still reach the hook that was installed before.
fn quietly<T>(f: impl FnOnce() -> T) -> T {
    QUIET_HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            // `try_with`: a panic during thread exit finds no flag.
            if !QUIET.try_with(Cell::get).unwrap_or(false) {
                previous(info);
            }
        }));
    });
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            QUIET.with(|q| q.set(self.0)); // on the way out, panicking or not
        }
    }
    let _restore = Restore(QUIET.with(|q| q.replace(true)));
    f()
}

#[test]
fn quiet_panics_on_this_thread_only() {
    let r = quietly(|| {
        assert!(QUIET.with(Cell::get));
        bucle::run(|| bucle::spawn(|| -> u8 { panic!("¡Ocurrió un error!") }).join())
    });
    assert_eq!(r, Err(JoinError::Panicked("¡Ocurrió un error!".into())));
    assert!(!QUIET.with(Cell::get));

    // Restored even when `f` itself panics; nested calls keep the outer one.
    let caught = panic::catch_unwind(|| {
        quietly(|| -> u8 {
            quietly(|| ());
            assert!(QUIET.with(Cell::get));
            panic!("quiet")
        })
    });
    assert!(caught.is_err());
    assert!(!QUIET.with(Cell::get));

    // Another thread is not silenced by this one's flag.
    QUIET.with(|q| q.set(true));
    let other = std::thread::spawn(|| QUIET.with(Cell::get)).join().unwrap();
    QUIET.with(|q| q.set(false));
    assert!(!other);
}
