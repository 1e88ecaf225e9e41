//! Combinators over tasks: `gather`, `as_completed`, `shield`, `task_group`.
//! Part of stage 3; see the chapter in [`runtime`](crate::runtime).
//!
//! They are built from the same public pieces a user has — tasks, done
//! callbacks and [`Future`]s — the way asyncio builds them, so they wake in
//! the same ticks asyncio's do.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use crate::future::Future;
use crate::runtime::core;
use crate::runtime::scope::next_scope_id;
use crate::runtime::task::{CancelledUnwind, OpenScope, ScopeUnwind, TaskRef};
use crate::runtime::{JoinError, Task, TaskBuilder};

/// Cancels every task in `tasks` that is not done if dropped while
/// unwinding (the waiting task was cancelled or timed out).
struct CancelOnUnwind<'a, T: 'static>(&'a [Task<T>]);

impl<T: 'static> Drop for CancelOnUnwind<'_, T> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for t in self.0 {
                t.cancel();
            }
        }
    }
}

/// Waits for every task and returns their values in input order:
/// `asyncio.gather(*tasks)`.
///
/// ```
/// bucle::run(|| {
///     let tasks = (1..=3).map(|n| bucle::spawn(move || n * 10));
///     assert_eq!(bucle::gather(tasks), Ok(vec![10, 20, 30]));
/// });
/// ```
///
/// # Errors
///
/// The first failure (panic or cancellation of a task), as soon as it
/// happens; the other tasks keep running, detached, as in asyncio.
///
/// # Panics
///
/// Outside a task of a running loop. If the gathering task is cancelled
/// (or times out), every task not yet done is cancelled too, and `gather`
/// unwinds.
pub fn gather<T: 'static>(tasks: impl IntoIterator<Item = Task<T>>) -> Result<Vec<T>, JoinError> {
    let tasks: Vec<Task<T>> = tasks.into_iter().collect();
    if tasks.is_empty() {
        return Ok(Vec::new());
    }
    // As asyncio's `_GatheringFuture`: each child's done callback counts it
    // off, and the first failure (in completion order) completes `outer`.
    let outer: Future<()> = Future::new();
    let remaining = Rc::new(Cell::new(tasks.len()));
    let failure: Rc<RefCell<Option<JoinError>>> = Rc::new(RefCell::new(None));
    for t in &tasks {
        let (outer, remaining, failure) = (outer.clone(), remaining.clone(), failure.clone());
        t.add_done_callback(move |t| {
            if outer.is_done() {
                // asyncio's gather marks a later failure as retrieved (and
                // leaves it in the task for whoever awaits it).
                if t.is_panicked() {
                    let _ = t.error();
                }
                return;
            }
            if t.is_cancelled() || t.is_panicked() {
                *failure.borrow_mut() = t.error();
                let _ = outer.set_result(());
                return;
            }
            remaining.set(remaining.get() - 1);
            if remaining.get() == 0 {
                let _ = outer.set_result(());
            }
        });
    }
    let guard = CancelOnUnwind(&tasks);
    let _ = outer.wait_labeled("gather");
    drop(guard);
    if let Some(e) = failure.take() {
        return Err(e);
    }
    Ok(tasks
        .iter()
        .map(|t| match t.take_result() {
            Some(Ok(v)) => v,
            _ => unreachable!("gather completes without failure only when every task returned"),
        })
        .collect())
}

/// Shared state of an [`as_completed`] iterator.
struct Completions<T> {
    /// Results in completion order, not yet handed out.
    done: RefCell<VecDeque<Result<T, JoinError>>>,
    /// The future the iterator is waiting on, if it is waiting.
    notify: RefCell<Option<Future<()>>>,
}

/// An iterator over task results in the order the tasks finish; see
/// [`as_completed`].
pub struct AsCompleted<T> {
    shared: Rc<Completions<T>>,
    /// Tasks not yet handed out. Kept so that dropping the iterator early
    /// detaches (not cancels) them, as dropping a `Task` does.
    tasks: Vec<Task<T>>,
    remaining: usize,
}

impl<T> fmt::Debug for AsCompleted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("remaining", &self.remaining)
            .finish()
    }
}

/// Yields each task's result as soon as it finishes:
/// `asyncio.as_completed(tasks)`.
///
/// Each call to `next` suspends the current task until the next result is
/// in.
///
/// ```
/// use std::time::Duration;
///
/// bucle::run(|| {
///     let slow = bucle::spawn(|| { bucle::sleep(Duration::from_millis(20)); "slow" });
///     let fast = bucle::spawn(|| { bucle::sleep(Duration::from_millis(1)); "fast" });
///     let order: Vec<_> = bucle::as_completed([slow, fast]).map(Result::unwrap).collect();
///     assert_eq!(order, ["fast", "slow"]);
/// });
/// ```
///
/// # Panics
///
/// `next` panics outside a task of a running loop.
pub fn as_completed<T: 'static>(tasks: impl IntoIterator<Item = Task<T>>) -> AsCompleted<T> {
    let tasks: Vec<Task<T>> = tasks.into_iter().collect();
    let shared = Rc::new(Completions {
        done: RefCell::new(VecDeque::new()),
        notify: RefCell::new(None),
    });
    for t in &tasks {
        let shared = shared.clone();
        t.add_done_callback(move |t| {
            if let Some(r) = t.take_result() {
                shared.done.borrow_mut().push_back(r);
            }
            if let Some(f) = shared.notify.borrow_mut().take() {
                let _ = f.set_result(());
            }
        });
    }
    AsCompleted {
        shared,
        remaining: tasks.len(),
        tasks,
    }
}

impl<T: 'static> Iterator for AsCompleted<T> {
    type Item = Result<T, JoinError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        loop {
            if let Some(r) = self.shared.done.borrow_mut().pop_front() {
                self.remaining -= 1;
                if self.remaining == 0 {
                    self.tasks.clear();
                }
                return Some(r);
            }
            let f = Future::new();
            *self.shared.notify.borrow_mut() = Some(f.clone());
            let _ = f.wait_labeled("as_completed");
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

/// Waits for `task` without letting a cancellation of the waiting task
/// reach it: `await asyncio.shield(task)`.
///
/// If the waiting task is cancelled (or a timeout around it fires), it
/// unwinds as usual, but `task` keeps running, detached.
///
/// # Errors
///
/// As [`Task::join`].
///
/// # Panics
///
/// Outside a task of a running loop.
pub fn shield<T: 'static>(task: Task<T>) -> Result<T, JoinError> {
    task.join_shielded()
}

/// The errors of a [`task_group`] whose tasks failed: asyncio's
/// `ExceptionGroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupError {
    /// Every failure, in the order the tasks failed. Cancellations caused
    /// by the group's own shutdown are not failures.
    pub errors: Vec<JoinError>,
}

impl fmt::Display for GroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} task(s) in the group failed", self.errors.len())?;
        for e in &self.errors {
            write!(f, "; {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for GroupError {}

struct GroupState {
    /// The scope id the body runs in (shared numbering with timeouts).
    scope: u64,
    /// The task running the group's body.
    parent: TaskRef,
    /// Children, for cancelling on abort. Done ones are skipped.
    children: RefCell<Vec<crate::AnyTask>>,
    /// Children not yet done.
    running: Cell<usize>,
    /// Failures so far, in order.
    errors: RefCell<Vec<JoinError>>,
    /// Set by the first failure: the rest are being cancelled.
    aborting: Cell<bool>,
    /// Completed when `running` reaches zero while the body waits for it.
    all_done: RefCell<Option<Future<()>>>,
}

impl GroupState {
    fn abort(&self) {
        if self.aborting.replace(true) {
            return;
        }
        for c in self.children.borrow().iter() {
            c.cancel();
        }
        // Unwind the body if it is still running inside the scope.
        core::fire_scope(&self.parent, self.scope);
    }
}

/// A structured group of tasks, lent to the body of [`task_group`]:
/// asyncio's `TaskGroup`.
pub struct TaskGroup {
    state: Rc<GroupState>,
}

impl fmt::Debug for TaskGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGroup")
            .field("running", &self.state.running.get())
            .field("aborting", &self.state.aborting.get())
            .finish()
    }
}

impl TaskGroup {
    /// Spawns a child task into the group.
    ///
    /// # Panics
    ///
    /// If the group is shutting down after a failure (asyncio raises
    /// `RuntimeError` there too), or as [`spawn`](crate::spawn).
    pub fn spawn<T: 'static>(&self, f: impl FnOnce() -> T + 'static) -> Task<T> {
        self.spawn_with(TaskBuilder::new(), f)
    }

    /// Spawns a child with options (name, stack size).
    ///
    /// # Panics
    ///
    /// As [`TaskGroup::spawn`].
    pub fn spawn_with<T: 'static>(
        &self,
        builder: TaskBuilder,
        f: impl FnOnce() -> T + 'static,
    ) -> Task<T> {
        if self.state.aborting.get() {
            panic!("TaskGroup::spawn: the group is shutting down after a failure");
        }
        let task = builder.spawn(f);
        let st = &self.state;
        st.children.borrow_mut().push(task.as_any());
        st.running.set(st.running.get() + 1);
        let state = self.state.clone();
        task.add_done_callback(move |t| {
            state.running.set(state.running.get() - 1);
            if t.is_panicked() {
                // Retrieved by the group, and still there for a join of the
                // child (asyncio keeps it in the task).
                if let Some(e) = t.error() {
                    state.errors.borrow_mut().push(e);
                }
                state.abort();
            }
            if state.running.get() == 0 {
                if let Some(f) = state.all_done.borrow_mut().take() {
                    let _ = f.set_result(());
                }
            }
        });
        task
    }
}

/// Runs `body` with a [`TaskGroup`] and waits for every task spawned into
/// it: `async with asyncio.TaskGroup() as tg`.
///
/// The first child to panic cancels the others and the body (which unwinds
/// at its next suspension point); the group then waits for all of them and
/// returns every failure.
///
/// ```
/// bucle::run(|| {
///     let total = bucle::task_group(|g| {
///         let a = g.spawn(|| 1);
///         let b = g.spawn(|| 2);
///         a.join().unwrap() + b.join().unwrap()
///     });
///     assert_eq!(total, Ok(3));
/// });
/// ```
///
/// # Errors
///
/// [`GroupError`] with every child's panic, if any child panicked.
///
/// # Panics
///
/// Outside a task of a running loop. If the body itself panics, or the task
/// running the group is cancelled, the children are cancelled and waited
/// for, then the panic or cancellation continues.
pub fn task_group<R>(body: impl FnOnce(&TaskGroup) -> R) -> Result<R, GroupError> {
    let what = "bucle::task_group";
    let parent = core::current_task(what);
    let scope = next_scope_id();
    parent
        .header
        .scopes
        .borrow_mut()
        .push(OpenScope::unbounded(scope));
    let group = TaskGroup {
        state: Rc::new(GroupState {
            scope,
            parent: parent.clone(),
            children: RefCell::new(Vec::new()),
            running: Cell::new(0),
            errors: RefCell::new(Vec::new()),
            aborting: Cell::new(false),
            all_done: RefCell::new(None),
        }),
    };
    let out = panic::catch_unwind(AssertUnwindSafe(|| body(&group)));
    let st = &group.state;
    if parent.header.closing.get() {
        // The loop is closing and dropping this task: nothing can wait any
        // more, and the children are being dropped too. Let the unwind go on.
        st.aborting.set(true);
        parent.header.close_scope(scope);
        return match out {
            Ok(v) => Ok(v),
            Err(payload) => panic::resume_unwind(payload),
        };
    }
    let aborted_body = match &out {
        Ok(_) => false,
        Err(payload) => match payload.downcast_ref::<ScopeUnwind>() {
            Some(ScopeUnwind(s)) if *s == scope => true,
            // The body panicked or the parent was cancelled: cancel the
            // children; the unwind continues once they are done.
            _ => {
                st.aborting.set(true);
                for c in st.children.borrow().iter() {
                    c.cancel();
                }
                false
            }
        },
    };
    if aborted_body {
        parent.header.caught_scope(scope);
    }
    // Wait for every child. The scope stays open meanwhile, so a child that
    // fails now still aborts the others. An unwind here (the group's own
    // abort, a timeout, a cancellation of this task) must not escape before
    // the children are done: as asyncio's `TaskGroup.__aexit__`, cancel
    // them, keep waiting, and continue the unwind afterwards.
    let mut pending_unwind = None;
    while st.running.get() > 0 {
        let f = Future::new();
        *st.all_done.borrow_mut() = Some(f.clone());
        let waited = panic::catch_unwind(AssertUnwindSafe(|| {
            let _ = f.wait_labeled("task_group children");
        }));
        if let Err(payload) = waited {
            st.aborting.set(true);
            for c in st.children.borrow().iter() {
                c.cancel();
            }
            // Only a cancellation or a scope's unwind may wait for the
            // children; anything else (the loop closing and dropping this
            // task, a panic) must go on at once.
            if parent.header.closing.get()
                || (!payload.is::<ScopeUnwind>() && !payload.is::<CancelledUnwind>())
            {
                parent.header.close_scope(scope);
                panic::resume_unwind(payload);
            }
            let ours = matches!(payload.downcast_ref::<ScopeUnwind>(), Some(ScopeUnwind(s)) if *s == scope);
            if ours {
                parent.header.caught_scope(scope);
            }
            if !ours && pending_unwind.is_none() {
                pending_unwind = Some(payload);
            }
        }
    }
    parent.header.close_scope(scope);
    if parent.header.interrupt.get() == Some(crate::runtime::task::Interrupt::Scope(scope)) {
        parent.header.interrupt.set(None);
    }
    let errors = std::mem::take(&mut *st.errors.borrow_mut());
    if let Some(payload) = pending_unwind {
        panic::resume_unwind(payload);
    }
    match out {
        Err(payload) if !aborted_body => panic::resume_unwind(payload),
        _ if !errors.is_empty() => Err(GroupError { errors }),
        Ok(v) => Ok(v),
        Err(_) => unreachable!("the body is only aborted by a failing child"),
    }
}
