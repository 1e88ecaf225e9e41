//! The timer heap: a driver below the kernel (it knows nothing of tasks).
//! Every pending timer of a loop, ordered by (deadline, creation), with lazy
//! cancellation. The kernel owns one and decides what a timer does.

use std::cell::{Cell, RefCell};
use std::time::Duration;

/// One heap entry: the key, and where the timer's work waits. Kept to 24
/// bytes (the work lives in `Timers::actions`) so that sifting moves three
/// words and makes one comparison per level. Ordered by (deadline, seq):
/// `seq` breaks ties in creation order.
#[derive(Clone, Copy)]
struct Entry {
    /// Loop time in nanoseconds (584 years of range).
    deadline: u64,
    /// Creation number: unique, so (deadline, seq) is a total order.
    seq: u64,
    /// Index of the action in `Timers::actions`, owned by this entry.
    slot: u32,
}

impl Entry {
    /// The order key: deadline, then creation. One 128-bit comparison.
    #[inline(always)]
    fn key(&self) -> u128 {
        (u128::from(self.deadline) << 64) | u128::from(self.seq)
    }
}

/// A binary min-heap of entries ordered by [`Entry::key`]. (std's
/// `BinaryHeap` spends about twice the instructions per level on its
/// generic `Ord` plumbing; this is the timer loop's hottest structure.)
#[derive(Default)]
struct Heap {
    /// Heap-ordered: every entry's key is ≤ its children's (`2i+1`, `2i+2`).
    v: Vec<Entry>,
}

impl Heap {
    #[inline]
    fn peek(&self) -> Option<&Entry> {
        self.v.first()
    }

    fn len(&self) -> usize {
        self.v.len()
    }

    fn push(&mut self, e: Entry) {
        self.v.push(e);
        self.sift_up(self.v.len() - 1, e);
    }

    /// Moves `e`, which belongs at `i`, up past every larger ancestor.
    #[inline]
    fn sift_up(&mut self, mut i: usize, e: Entry) {
        let key = e.key();
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.v[parent].key() <= key {
                break;
            }
            self.v[i] = self.v[parent];
            i = parent;
        }
        self.v[i] = e;
    }

    /// Removes the top. Floyd's method: sink the hole to the bottom along
    /// the smaller children (one comparison per level), put the last entry
    /// there and sift it up (rarely more than a level).
    ///
    /// The smaller child is picked arithmetically, not by a branch: which
    /// one it is, is a coin toss the branch predictor loses half the time,
    /// at a dozen cycles a level.
    fn pop(&mut self) -> Option<Entry> {
        let last = self.v.pop()?;
        let v = &mut self.v[..];
        let n = v.len();
        if n == 0 {
            return Some(last);
        }
        let top = v[0];
        let mut hole = 0;
        loop {
            let left = 2 * hole + 1;
            let right = left + 1;
            if right >= n {
                if left < n {
                    // A lone left child, at the very bottom.
                    v[hole] = v[left];
                    hole = left;
                }
                break;
            }
            let child = left + usize::from(v[right].key() < v[left].key());
            v[hole] = v[child];
            hole = child;
        }
        self.sift_up(hole, last);
        Some(top)
    }

    /// Keeps the entries `keep` accepts and restores the heap order.
    fn retain(&mut self, keep: impl FnMut(&Entry) -> bool) {
        self.v.retain(keep);
        self.v.sort_unstable_by_key(Entry::key);
    }

    fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.v.iter()
    }

    fn clear(&mut self) {
        self.v.clear();
    }

    fn is_empty(&self) -> bool {
        self.v.is_empty()
    }
}

/// Nanoseconds of loop time, saturating. Only deadlines [`in_range`] reach
/// the heap, so a saturated value is only ever a "now" past the range.
#[inline]
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Whether a deadline is within the loop clock's range: under 2^64 ns of
/// loop time (about 584 years). A deadline past it never fires, on either
/// clock: it is kept out of the heap, so it neither wakes the loop nor
/// moves the virtual clock, and a task waiting on it alone is deadlocked
/// (the real clock would never reach it either).
#[inline]
pub(crate) fn in_range(deadline: Duration) -> bool {
    deadline.as_nanos() < u128::from(u64::MAX)
}

/// The work of a timer, as the kernel defines it: the heap only needs to
/// know whether it is dead (cancelled, so it can be skipped and dropped).
pub(crate) trait TimerWork {
    /// Whether this work, pushed under sequence number `seq`, was called
    /// off since. A dead timer stays in the heap until it reaches the top
    /// or the heap is compacted.
    fn is_dead(&self, seq: u64) -> bool;
}

/// The actions of the timers in the heap: a slab indexed by `Entry::slot`.
struct Actions<A> {
    /// `Some` exactly for the slots a heap entry refers to.
    slots: Vec<Option<(A, u64)>>,
    /// The `None` slots, reused first.
    free: Vec<u32>,
}

impl<A> Default for Actions<A> {
    fn default() -> Self {
        Actions {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<A: TimerWork> Actions<A> {
    fn insert(&mut self, action: A, seq: u64) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some((action, seq));
                i
            }
            None => {
                let i = u32::try_from(self.slots.len()).expect("fewer than 2^32 pending timers");
                self.slots.push(Some((action, seq)));
                i
            }
        }
    }

    fn take(&mut self, slot: u32) -> A {
        self.free.push(slot);
        self.slots[slot as usize]
            .take()
            .expect("a heap entry owns its slot")
            .0
    }

    fn is_dead(&self, slot: u32) -> bool {
        match &self.slots[slot as usize] {
            Some((action, seq)) => action.is_dead(*seq),
            None => unreachable!("a heap entry owns its slot"),
        }
    }
}

/// The timer heap: every pending timer of one loop, generic over what a
/// timer does (the kernel's `TimerAction`). A driver: it knows nothing of
/// tasks, and never drops an action itself while anything is borrowed —
/// removed actions are handed back to the caller (the kernel drops them
/// with no borrow held, as their destructors may run user code).
pub(crate) struct Timers<A> {
    /// The keys, earliest on top. Invariant: each entry's `slot` is `Some`
    /// in `actions`, and no two entries share a slot.
    heap: RefCell<Heap>,
    /// What each timer does when it fires (or whether it is dead).
    actions: RefCell<Actions<A>>,
    /// Creation counter; never reused, so (deadline, seq) is a total order.
    next_seq: Cell<u64>,
    /// How many entries in the heap are known dead (cancelled but not yet
    /// removed). When they are the majority the heap is rebuilt without
    /// them, so timeouts that never fire cost O(log n) each, amortised.
    dead: Cell<usize>,
}

/// Below this many dead entries the heap is never compacted.
const COMPACT_MIN_DEAD: usize = 64;

impl<A: TimerWork> Timers<A> {
    pub(crate) fn new() -> Self {
        Timers {
            heap: RefCell::new(Heap::default()),
            actions: RefCell::new(Actions::default()),
            next_seq: Cell::new(0),
            dead: Cell::new(0),
        }
    }

    /// Adds a timer; returns its sequence number.
    pub(crate) fn push(&self, deadline: Duration, action: A) -> u64 {
        let seq = self.reserve_seq();
        self.push_reserved(deadline, seq, action);
        seq
    }

    /// Takes the next sequence number for a timer that will be pushed later
    /// with [`Timers::push_reserved`]: it then orders exactly as if it had
    /// been pushed now.
    pub(crate) fn reserve_seq(&self) -> u64 {
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        seq
    }

    /// Adds a timer under a sequence number from [`Timers::reserve_seq`].
    /// `deadline` must be [`in_range`].
    pub(crate) fn push_reserved(&self, deadline: Duration, seq: u64, action: A) {
        debug_assert!(in_range(deadline), "a timer past the clock's range");
        let slot = self.actions.borrow_mut().insert(action, seq);
        self.heap.borrow_mut().push(Entry {
            deadline: nanos(deadline),
            seq,
            slot,
        });
    }

    /// Records that one entry just died; compacts when the dead dominate,
    /// and then returns the removed actions for the caller to drop.
    #[must_use]
    pub(crate) fn note_dead(&self) -> Vec<A> {
        let dead = self.dead.get() + 1;
        self.dead.set(dead);
        let len = self.heap.borrow().len();
        if dead >= COMPACT_MIN_DEAD && dead * 2 > len {
            self.compact()
        } else {
            Vec::new()
        }
    }

    /// Rebuilds the heap without its dead entries.
    #[cold]
    fn compact(&self) -> Vec<A> {
        let mut removed = Vec::new();
        {
            let mut actions = self.actions.borrow_mut();
            self.heap.borrow_mut().retain(|e| {
                let dead = actions.is_dead(e.slot);
                if dead {
                    removed.push(actions.take(e.slot));
                }
                !dead
            });
            self.dead.set(0);
        }
        removed
    }

    fn pop_dead_top(&self, removed: &mut Vec<A>) {
        {
            let mut heap = self.heap.borrow_mut();
            let mut actions = self.actions.borrow_mut();
            while let Some(top) = heap.peek().filter(|e| actions.is_dead(e.slot)) {
                removed.push(actions.take(top.slot));
                heap.pop();
                self.dead.set(self.dead.get().saturating_sub(1));
            }
        }
    }

    /// The earliest live deadline. Dead entries met on top are removed, and
    /// their actions appended to `removed` for the caller to drop.
    pub(crate) fn next_deadline(&self, removed: &mut Vec<A>) -> Option<Duration> {
        self.pop_dead_top(removed);
        self.heap
            .borrow()
            .peek()
            .map(|e| Duration::from_nanos(e.deadline))
    }

    /// Whether the heap holds no entry at all (live or dead).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.heap.borrow().is_empty()
    }

    /// Hands the work of every live timer due at `now` to `live`, in
    /// (deadline, seq) order, with its seq; appends the actions of dead ones
    /// to `dead`, for the caller to drop once it holds no borrow.
    #[inline]
    pub(crate) fn expire(&self, now: Duration, mut live: impl FnMut(A, u64), dead: &mut Vec<A>) {
        let now = nanos(now);
        let mut heap = self.heap.borrow_mut();
        let mut actions = self.actions.borrow_mut();
        while let Some(entry) = heap.peek().copied().filter(|e| e.deadline <= now) {
            heap.pop();
            let is_dead = actions.is_dead(entry.slot);
            let action = actions.take(entry.slot);
            if is_dead {
                self.dead.set(self.dead.get().saturating_sub(1));
                dead.push(action);
            } else {
                live(action, entry.seq);
            }
        }
    }

    /// Live timers (those whose work can still happen). O(n): diagnostics.
    pub(crate) fn live(&self) -> usize {
        let actions = self.actions.borrow();
        self.heap
            .borrow()
            .iter()
            .filter(|e| !actions.is_dead(e.slot))
            .count()
    }

    /// Removes every timer, handing back their actions (they hold tasks
    /// and callbacks) for the caller to drop with no borrow held.
    #[must_use]
    pub(crate) fn clear(&self) -> Vec<Option<(A, u64)>> {
        self.heap.borrow_mut().clear();
        self.dead.set(0);
        std::mem::take(&mut *self.actions.borrow_mut()).slots
    }
}
