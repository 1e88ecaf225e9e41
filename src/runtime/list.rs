//! `WaitList`: the waiters of a task or future, in registration order.

use std::mem;

/// A list that stores its first element inline: almost every task is
/// joined by at most one waiter and most futures have one, so this saves
/// an allocation (and its free) on the spawn → join and wait → wake paths.
#[derive(Debug, Default)]
pub(crate) enum WaitList<W> {
    #[default]
    Empty,
    One(W),
    Many(Vec<W>),
}

impl<W> WaitList<W> {
    /// Appends `w` after every waiter already registered.
    pub(crate) fn push(&mut self, w: W) {
        match mem::take(self) {
            WaitList::Empty => *self = WaitList::One(w),
            WaitList::One(first) => *self = WaitList::Many(vec![first, w]),
            WaitList::Many(mut v) => {
                v.push(w);
                *self = WaitList::Many(v);
            }
        }
    }

    /// Calls `f` on every waiter, in registration order, consuming the list.
    pub(crate) fn drain(self, mut f: impl FnMut(W)) {
        match self {
            WaitList::Empty => {}
            WaitList::One(w) => f(w),
            WaitList::Many(v) => v.into_iter().for_each(f),
        }
    }
}
