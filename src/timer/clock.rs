//! The loop clock, real or virtual: a driver below the kernel.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// The loop clock: time since the loop was created, real or virtual.
pub(crate) struct Clock {
    start: Instant,
    /// `Some` on the virtual clock: the current virtual time, which only
    /// the loop moves, and only forward, when nothing is ready.
    virtual_now: Option<Cell<Duration>>,
}

impl Clock {
    pub(crate) fn new(virtual_time: bool) -> Self {
        Clock {
            start: Instant::now(),
            virtual_now: virtual_time.then(|| Cell::new(Duration::ZERO)),
        }
    }

    /// Whether this is the virtual clock.
    pub(crate) fn is_virtual(&self) -> bool {
        self.virtual_now.is_some()
    }

    /// The loop time now.
    #[inline]
    pub(crate) fn now(&self) -> Duration {
        match &self.virtual_now {
            Some(t) => t.get(),
            None => self.start.elapsed(),
        }
    }

    /// Waits for the loop time to reach `deadline`: sleeps the thread on the
    /// real clock (at least that long, never spinning), jumps on the virtual
    /// one. Returns the loop time if it did not have to sleep (then it read
    /// the clock a moment ago, and the caller can use that reading).
    pub(crate) fn wait_until(&self, deadline: Duration) -> Option<Duration> {
        match &self.virtual_now {
            Some(_) => {
                self.advance_to(deadline);
                Some(self.now())
            }
            None => {
                let now = self.now();
                if deadline > now {
                    std::thread::sleep(deadline - now);
                    None
                } else {
                    Some(now)
                }
            }
        }
    }

    /// Jumps virtual time forward to `deadline` (never backwards).
    pub(crate) fn advance_to(&self, deadline: Duration) {
        if let Some(t) = &self.virtual_now {
            if deadline > t.get() {
                t.set(deadline);
            }
        }
    }
}
