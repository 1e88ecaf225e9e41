//! Helpers shared by the stage 4 integration tests (timers, timeouts,
//! virtual time).
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::fmt::Display;
use std::rc::Rc;
use std::time::Duration;

use bucle::EventLoop;

/// Shorthand for a duration in milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Shorthand for a duration in seconds.
pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Runs `main` on a fresh virtual-clock loop the way `bucle::run` does
/// (run, shut down, close) and checks that every stack lent on this thread
/// came back to the pool.
pub fn vrun<T: 'static>(main: impl FnOnce() -> T + 'static) -> T {
    let baseline = bucle::stack_pool_stats().in_use;
    let lp = EventLoop::builder().virtual_time().build();
    let out = lp.run_until_complete(main);
    lp.shutdown();
    lp.close();
    assert_eq!(
        bucle::stack_pool_stats().in_use,
        baseline,
        "a stack was not returned to the pool"
    );
    out
}

/// Like [`vrun`], on the real clock.
pub fn rrun<T: 'static>(main: impl FnOnce() -> T + 'static) -> T {
    let baseline = bucle::stack_pool_stats().in_use;
    let out = bucle::run(main);
    assert_eq!(
        bucle::stack_pool_stats().in_use,
        baseline,
        "a stack was not returned to the pool"
    );
    out
}

/// Counts how many of its guards have been dropped.
#[derive(Clone, Default, Debug)]
pub struct Drops {
    made: Rc<Cell<usize>>,
    dropped: Rc<Cell<usize>>,
}

/// Increments its [`Drops`] when dropped.
#[derive(Debug)]
pub struct Guard(Drops);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.dropped.set(self.0.dropped.get() + 1);
    }
}

impl Drops {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn guard(&self) -> Guard {
        self.made.set(self.made.get() + 1);
        Guard(self.clone())
    }
    pub fn made(&self) -> usize {
        self.made.get()
    }
    pub fn dropped(&self) -> usize {
        self.dropped.get()
    }
    /// Guards made and not yet dropped.
    pub fn alive(&self) -> usize {
        self.made.get() - self.dropped.get()
    }
}

/// A shared, cloneable event log.
#[derive(Clone, Default, Debug)]
pub struct Log(Rc<RefCell<Vec<String>>>);

impl Log {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn push(&self, s: impl Display) {
        self.0.borrow_mut().push(s.to_string());
    }
    pub fn snapshot(&self) -> Vec<String> {
        self.0.borrow().clone()
    }
}

/// CPU time (user + system) consumed so far by the calling thread, from
/// `/proc/thread-self/stat` (fields 14 and 15, in clock ticks; we assume the
/// usual USER_HZ of 100). `None` where procfs is unavailable.
///
/// Per thread rather than per process: the test harness runs other tests on
/// other threads of the same process at the same time.
pub fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3, so field N is at index N - 3.
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    const USER_HZ: u64 = 100;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}
