#![doc = include_str!("../docs/02-round-robin.md")]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;

use crate::generator::{Generator, GeneratorState, Yielder};

/// A task for the round-robin scheduler: a generator that yields `()` at
/// each point where it is willing to let the others run.
pub type RoundRobinTask = Generator<(), (), ()>;

/// Chapter 2's `concurrenciaAsync(tareas)` loop made into a type: a FIFO
/// queue of generators, each resumed once in turn until all complete.
///
/// ```
/// use bucle::RoundRobin;
/// use std::{cell::RefCell, rc::Rc};
///
/// let log = Rc::new(RefCell::new(Vec::new()));
/// let mut rr = RoundRobin::new();
/// for name in ["a", "b"] {
///     let log = log.clone();
///     rr.spawn_fn(move |y| {
///         for i in 0..2 {
///             log.borrow_mut().push(format!("{name}{i}"));
///             y.yield_(());
///         }
///     });
/// }
/// rr.run();
/// assert_eq!(*log.borrow(), ["a0", "b0", "a1", "b1"]);
/// ```
pub struct RoundRobin {
    /// The run queue, shared with every [`Spawner`]. Invariant: it holds
    /// only generators that have not completed; the one being stepped is
    /// out of the queue while it runs, so a task may spawn (push) freely.
    queue: Rc<RefCell<VecDeque<RoundRobinTask>>>,
    /// Steps taken so far (resumes), across every `step`/`run` call.
    steps: u64,
}

/// A handle for adding tasks to a [`RoundRobin`], including from inside a
/// running task. Clone it into the tasks that spawn.
#[derive(Clone)]
pub struct Spawner {
    queue: Rc<RefCell<VecDeque<RoundRobinTask>>>,
}

impl Default for RoundRobin {
    fn default() -> Self {
        Self::new()
    }
}

impl RoundRobin {
    /// An empty scheduler.
    pub fn new() -> Self {
        RoundRobin {
            queue: Rc::new(RefCell::new(VecDeque::new())),
            steps: 0,
        }
    }

    /// Appends a task to the back of the queue.
    pub fn spawn(&self, task: RoundRobinTask) {
        self.queue.borrow_mut().push_back(task);
    }

    /// Appends a task made from `body` (on a default-size stack).
    ///
    /// # Panics
    ///
    /// If no stack can be mapped; see [`Generator::try_new`].
    pub fn spawn_fn(&self, body: impl FnOnce(&Yielder<()>) + 'static) {
        self.spawn(Generator::new(move |y: &Yielder<()>, ()| body(y)));
    }

    /// A handle that can add tasks while the scheduler runs.
    pub fn spawner(&self) -> Spawner {
        Spawner {
            queue: self.queue.clone(),
        }
    }

    /// Number of tasks waiting for a step.
    pub fn len(&self) -> usize {
        self.queue.borrow().len()
    }

    /// Whether every task has completed.
    pub fn is_empty(&self) -> bool {
        self.queue.borrow().is_empty()
    }

    /// Steps taken so far: one per resume of a task.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Takes one step: pops the task at the front, resumes it once, and
    /// pushes it to the back unless it completed. Returns `false` if there
    /// was nothing to run.
    ///
    /// # Panics
    ///
    /// A panic in the task propagates; that task is dropped (it is
    /// complete), the others stay queued.
    #[inline]
    pub fn step(&mut self) -> bool {
        // The borrow ends before `resume`, so the task may spawn.
        let Some(mut task) = self.queue.borrow_mut().pop_front() else {
            return false;
        };
        self.steps += 1;
        if let GeneratorState::Yielded(()) = task.resume(()) {
            self.queue.borrow_mut().push_back(task);
        }
        true
    }

    /// Steps tasks in turn until every one, including those spawned along
    /// the way, has completed. Returns the number of steps this call took.
    ///
    /// # Panics
    ///
    /// As [`RoundRobin::step`].
    pub fn run(&mut self) -> u64 {
        let start = self.steps;
        while self.step() {}
        self.steps - start
    }
}

impl Spawner {
    /// Appends a task to the back of the scheduler's queue.
    pub fn spawn(&self, task: RoundRobinTask) {
        self.queue.borrow_mut().push_back(task);
    }

    /// Appends a task made from `body`; see [`RoundRobin::spawn_fn`].
    ///
    /// # Panics
    ///
    /// If no stack can be mapped; see [`Generator::try_new`].
    pub fn spawn_fn(&self, body: impl FnOnce(&Yielder<()>) + 'static) {
        self.spawn(Generator::new(move |y: &Yielder<()>, ()| body(y)));
    }
}

/// Dropping the scheduler drops every unfinished task, unwinding its stack.
/// Tasks may hold a [`Spawner`] (and so the queue itself), so the queue is
/// emptied explicitly rather than left to reference counting; tasks whose
/// destructors spawn more are drained too.
impl Drop for RoundRobin {
    fn drop(&mut self) {
        loop {
            let tasks = std::mem::take(&mut *self.queue.borrow_mut());
            if tasks.is_empty() {
                break;
            }
            drop(tasks);
        }
    }
}

impl fmt::Debug for RoundRobin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoundRobin")
            .field("queued", &self.len())
            .field("steps", &self.steps)
            .finish()
    }
}

impl fmt::Debug for Spawner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spawner")
            .field("queued", &self.queue.borrow().len())
            .finish()
    }
}
