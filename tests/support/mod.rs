//! Helpers shared by the stage 3 integration tests (the event loop and its
//! awaitables): an event log, drop counters, a quiet panic hook, virtual-time
//! loops and exception-handler recorders.
#![allow(dead_code)]

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Once;
use std::time::Duration;

use bucle::{EventLoop, ExceptionContext};

/// Marker that starts every panic message these tests raise on purpose.
pub const INTENTIONAL: &str = "[intentional]";

/// Panics the library raises that some tests provoke on purpose.
const EXPECTED_LIBRARY_PANICS: &[&str] = &[
    "outside a running event loop",
    "cannot run an event loop while another is running",
    "cannot close a running event loop",
    "the event loop is closed",
    "the loop was stopped before the main task completed",
    "while the event loop is closing",
];

/// Whether a panic message is one a test provokes on purpose. Only the start
/// of the message counts, so that a failed assertion whose message merely
/// quotes an intentional panic still prints.
pub fn is_intentional(msg: &str) -> bool {
    msg.starts_with(INTENTIONAL)
        || msg.starts_with("bucle: deadlock")
        || ((msg.starts_with("bucle::") || msg.starts_with("EventLoop::"))
            && EXPECTED_LIBRARY_PANICS.iter().any(|l| msg.contains(l)))
}

/// Installs, once per test binary, a panic hook that stays silent for the
/// panics tests provoke on purpose and forwards every other panic to the
/// previous hook, so real failures still print.
pub fn quiet_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !payload_str(info.payload()).is_some_and(is_intentional) {
                previous(info);
            }
        }));
    });
}

/// The message of a panic payload, if it is a string.
pub fn payload_str(payload: &(dyn Any + Send)) -> Option<&str> {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        Some(s)
    } else {
        payload.downcast_ref::<String>().map(String::as_str)
    }
}

/// Runs `f`, returning its value or the message of its panic.
pub fn catch<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    quiet_panics();
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        payload_str(p.as_ref())
            .map(str::to_owned)
            .unwrap_or_else(|| "<non-string panic payload>".to_owned())
    })
}

/// An ordered event log shared by the tasks of a test. Cloning shares it.
#[derive(Clone, Default, Debug)]
pub struct Log(Rc<RefCell<Vec<String>>>);

impl Log {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&self, event: impl Into<String>) {
        self.0.borrow_mut().push(event.into());
    }

    /// A copy of the events so far.
    pub fn get(&self) -> Vec<String> {
        self.0.borrow().clone()
    }

    /// Takes the events so far, leaving the log empty.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.borrow_mut())
    }

    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }

    pub fn contains(&self, event: &str) -> bool {
        self.0.borrow().iter().any(|e| e == event)
    }
}

/// Counts tokens made and dropped; a token dropped twice would be counted
/// twice, so `made == dropped` together with `all_dropped_once` proves
/// exactly-once destruction.
#[derive(Clone, Default, Debug)]
pub struct Drops {
    counts: Rc<RefCell<Vec<u32>>>,
}

/// A value whose destructor records itself in its [`Drops`] ledger.
#[derive(Debug)]
pub struct Token {
    counts: Rc<RefCell<Vec<u32>>>,
    index: usize,
    on_drop: Option<(Log, String)>,
}

impl Drop for Token {
    fn drop(&mut self) {
        // Never panic here: this may run during an unwind.
        if let Ok(mut counts) = self.counts.try_borrow_mut() {
            counts[self.index] += 1;
        }
        if let Some((log, event)) = self.on_drop.take() {
            if let Ok(mut events) = log.0.try_borrow_mut() {
                events.push(event);
            }
        }
    }
}

impl Drops {
    pub fn new() -> Self {
        Self::default()
    }

    /// A new token.
    pub fn token(&self) -> Token {
        let mut counts = self.counts.borrow_mut();
        counts.push(0);
        Token {
            counts: self.counts.clone(),
            index: counts.len() - 1,
            on_drop: None,
        }
    }

    /// A new token that also logs `event` when dropped (a `finally` block).
    pub fn logging(&self, log: &Log, event: impl Into<String>) -> Token {
        let mut t = self.token();
        t.on_drop = Some((log.clone(), event.into()));
        t
    }

    pub fn made(&self) -> usize {
        self.counts.borrow().len()
    }

    /// Total drops recorded (a double drop counts twice).
    pub fn dropped(&self) -> usize {
        self.counts.borrow().iter().map(|&n| n as usize).sum()
    }

    /// Tokens made and not dropped yet.
    pub fn live(&self) -> usize {
        self.counts.borrow().iter().filter(|&&n| n == 0).count()
    }

    /// Whether every token made so far was dropped exactly once.
    pub fn all_dropped_once(&self) -> bool {
        self.counts.borrow().iter().all(|&n| n == 1)
    }

    pub fn report(&self) -> String {
        format!("{:?}", self.counts.borrow())
    }
}

/// A loop on the virtual clock.
pub fn vloop() -> EventLoop {
    EventLoop::builder().virtual_time().build()
}

/// `bucle::run` on the virtual clock: run `main`, cancel the leftovers, let
/// them unwind, close.
pub fn run_virtual<T: 'static>(main: impl FnOnce() -> T + 'static) -> T {
    let lp = vloop();
    let out = lp.run_until_complete(main);
    lp.shutdown();
    lp.close();
    out
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Installs on `lp` an exception handler that records every report.
pub fn record_reports(lp: &EventLoop) -> Rc<RefCell<Vec<ExceptionContext>>> {
    let reports = Rc::new(RefCell::new(Vec::new()));
    let r = reports.clone();
    lp.set_exception_handler(move |ctx| r.borrow_mut().push(ctx.clone()));
    reports
}

/// Yields until `cond` holds, at most `max` times; panics otherwise.
pub fn yield_until(max: usize, mut cond: impl FnMut() -> bool) {
    for _ in 0..max {
        if cond() {
            return;
        }
        bucle::yield_now();
    }
    assert!(cond(), "condition still false after {max} yields");
}

/// A counter shared by a test's tasks.
#[derive(Clone, Default, Debug)]
pub struct Counter(Rc<Cell<usize>>);

impl Counter {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn incr(&self) {
        self.0.set(self.0.get() + 1);
    }
    pub fn get(&self) -> usize {
        self.0.get()
    }
}

/// The stack pool's `in_use` count on this thread.
pub fn stacks_in_use() -> usize {
    bucle::stack_pool_stats().in_use
}

/// Converts string literals to owned strings, to compare with a [`Log`].
pub fn strs(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}
