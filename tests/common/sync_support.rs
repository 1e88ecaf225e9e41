//! Helpers shared by the `bucle::sync` test files (sync, queue).
#![allow(dead_code)]

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

use bucle::{EventLoop, JoinError, Task};

/// A shared list of lines, in the order they were written.
#[derive(Clone, Default)]
pub struct Log(Rc<RefCell<Vec<String>>>);

impl Log {
    pub fn push(&self, line: impl Into<String>) {
        self.0.borrow_mut().push(line.into());
    }
    pub fn lines(&self) -> Vec<String> {
        self.0.borrow().clone()
    }
}

/// Writes `msg` to the log if dropped while unwinding: Python's
/// `except CancelledError: log(...); raise`.
pub struct OnCancel(pub Log, pub String);

impl Drop for OnCancel {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.push(std::mem::take(&mut self.1));
        }
    }
}

/// Runs `main` on a virtual-time loop, as `asyncio.run` would.
pub fn vrun<T: 'static>(main: impl FnOnce() -> T + 'static) -> T {
    let lp = EventLoop::builder().virtual_time().build();
    let out = lp.run_until_complete(main);
    lp.shutdown();
    lp.close();
    out
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Joins every task, ignoring how it ended (`gather(..., return_exceptions=True)`).
pub fn join_all<T: 'static>(tasks: impl IntoIterator<Item = Task<T>>) {
    for t in tasks {
        let _ = t.join();
    }
}

/// Joins `task` and checks that it panicked with a message containing
/// `needle`.
pub fn expect_panic<T: std::fmt::Debug + 'static>(task: Task<T>, needle: &str) {
    match task.join() {
        Err(JoinError::Panicked(msg)) => assert!(msg.contains(needle), "{msg}"),
        other => panic!("expected a panic mentioning {needle:?}, got {other:?}"),
    }
}

/// The expected lines of a log, as owned strings.
pub fn lines(expected: &[&str]) -> Vec<String> {
    expected.iter().map(|s| s.to_string()).collect()
}

/// The panic message of a run that must deadlock.
pub fn deadlock_message(main: impl FnOnce() + 'static) -> String {
    let lp = EventLoop::new();
    let err = panic::catch_unwind(AssertUnwindSafe(|| lp.run_until_complete(main)))
        .expect_err("the loop should report a deadlock");
    drop(lp);
    super::panic_message(&err)
}
