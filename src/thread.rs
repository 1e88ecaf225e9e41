//! Blocking work on other threads: [`to_thread`] and
//! [`EventLoop::run_in_executor`](crate::EventLoop::run_in_executor)
//! (asyncio's `to_thread` and `run_in_executor`), on a small pool of OS
//! threads shared by every loop of the process.
//!
//! A task hands a closure to the pool and suspends; the worker runs it and
//! sends the result back through the loop's remote queue
//! ([`Remote`](crate::Remote)), which wakes the loop if it is blocked in
//! the poller. Meanwhile the loop runs the other tasks: the point of the
//! exercise, since a blocking call made in a task stops them all.

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::Duration;

use crate::runtime::core::{self, Core, Wait};
use crate::runtime::remote::Remote;
use crate::runtime::task::TaskRef;
use crate::runtime::{EventLoop, Task, TaskBuilder};

/// Work for a worker: the closure, with its result already wired back.
type Work = Box<dyn FnOnce() + Send>;

/// How long an idle worker waits for a job before it exits.
pub const WORKER_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The most worker threads the pool runs at once: asyncio's default
/// executor size, `min(32, cpus + 4)`, unless [`set_max_workers`] changed
/// it. Jobs beyond that wait in a queue.
pub fn max_workers() -> usize {
    match MAX_WORKERS.load(Ordering::Relaxed) {
        0 => {
            // Asked once: on Linux it reads the cgroup's CPU quota from
            // files, and workers check the bound after every job.
            static DEFAULT: OnceLock<usize> = OnceLock::new();
            *DEFAULT.get_or_init(|| {
                let cpus = thread::available_parallelism().map_or(1, usize::from);
                (cpus + 4).min(32)
            })
        }
        n => n,
    }
}

/// The bound [`set_max_workers`] set; 0 for asyncio's default.
static MAX_WORKERS: AtomicUsize = AtomicUsize::new(0);

/// Bounds the pool to `n` threads, for the whole process: asyncio's
/// `loop.set_default_executor(ThreadPoolExecutor(max_workers=n))`.
///
/// With one thread, jobs run one at a time in the order they were handed
/// over, so tasks that take turns on the pool resume in a reproducible
/// order (`examples/05_archivos.rs` uses that to print the same lines on
/// every run, as its Python original does with a one-thread executor).
/// Threads already started beyond the new bound finish the job in hand
/// and exit; none is started while the pool is at the bound.
///
/// ```
/// bucle::set_max_workers(8);
/// assert_eq!(bucle::max_workers(), 8);
/// ```
///
/// # Panics
///
/// If `n` is 0: a pool without threads would never run a job, and every
/// task waiting on one would wait forever. Give it at least one.
pub fn set_max_workers(n: usize) {
    assert!(
        n > 0,
        "bucle::set_max_workers(0): the pool needs at least one thread, or no job would ever \
         run; pass 1 for jobs one at a time"
    );
    MAX_WORKERS.store(n, Ordering::Relaxed);
}

/// The process-wide pool: started lazily, bounded, idle threads exit.
struct Pool {
    state: Mutex<PoolState>,
    /// Signalled when a job is queued (an idle worker takes it).
    work: Condvar,
}

#[derive(Default)]
struct PoolState {
    /// Jobs not yet taken, oldest first.
    jobs: VecDeque<Work>,
    /// Live worker threads.
    threads: usize,
    /// Of those, the ones waiting for a job.
    idle: usize,
    /// For thread names.
    spawned: usize,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(PoolState::default()),
        work: Condvar::new(),
    })
}

/// Nothing runs user code under these locks, so a poisoned lock holds
/// consistent data.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pool {
    /// Queues `job`, starting a worker if none is idle and the bound allows.
    fn submit(&'static self, job: Work) {
        let mut st = lock(&self.state);
        st.jobs.push_back(job);
        if st.jobs.len() <= st.idle {
            // An idle worker is left for every queued job (one woken a
            // moment ago counts as idle until it takes its job).
            drop(st);
            self.work.notify_one();
            return;
        }
        if st.threads < max_workers() {
            st.threads += 1;
            st.spawned += 1;
            let name = format!("bucle-worker-{}", st.spawned);
            drop(st);
            let started = thread::Builder::new()
                .name(name)
                .spawn(move || self.work_loop());
            if let Err(e) = started {
                let mut st = lock(&self.state);
                st.threads -= 1;
                if st.threads == 0 {
                    // No worker at all to run it: fail loudly rather than
                    // leave the caller waiting forever.
                    drop(st);
                    panic!("bucle::to_thread could not start a worker thread: {e}");
                }
            }
        }
    }

    fn work_loop(&'static self) {
        let mut st = lock(&self.state);
        loop {
            if let Some(job) = st.jobs.pop_front() {
                drop(st);
                job();
                st = lock(&self.state);
                if st.threads > max_workers() {
                    // The bound was lowered (set_max_workers): a surplus
                    // thread leaves with its job done.
                    st.threads -= 1;
                    return;
                }
                continue;
            }
            st.idle += 1;
            let (guard, timeout) = self
                .work
                .wait_timeout(st, WORKER_IDLE_TIMEOUT)
                .unwrap_or_else(PoisonError::into_inner);
            st = guard;
            st.idle -= 1;
            if timeout.timed_out() && st.jobs.is_empty() {
                st.threads -= 1;
                return;
            }
        }
    }
}

/// A closure handed to the pool, whose result waits for whoever asks for
/// it: the piece under [`to_thread`] and `bucle::fs::File`.
///
/// The result does not belong to a waiter. A task that waits and unwinds
/// (cancelled, timed out) leaves the job running and its result in place,
/// and any task, of any loop, may wait for it later. Dropping every handle
/// before the job ends leaves the result to the worker, which drops it on
/// its own thread when the closure returns.
pub(crate) struct Job<T> {
    shared: Arc<Mutex<JobState<T>>>,
}

impl<T> Clone for Job<T> {
    /// Another handle to the same job and result.
    fn clone(&self) -> Self {
        Job {
            shared: self.shared.clone(),
        }
    }
}

struct JobState<T> {
    /// The closure's value or its panic, from its end until it is taken.
    result: Option<thread::Result<T>>,
    /// Whether the closure has ended.
    done: bool,
    /// The task waiting now, if any: its loop, and the id of its wait in
    /// that loop's table of tasks waiting on threads.
    waiter: Option<(Remote, u64)>,
}

/// A task's place as the waiter of a job. While it is held, the job's end
/// wakes the task through its loop's remote queue, and the loop counts the
/// task as waiting on a thread. Dropping it (after the wait, or unwinding
/// out of it) withdraws it.
pub(crate) struct Ticket<T> {
    shared: Arc<Mutex<JobState<T>>>,
    me: TaskRef,
    core: Rc<Core>,
    id: u64,
}

impl<T> Ticket<T> {
    /// Registers the current task, for its next park, as a waiter of the
    /// job behind `shared`. `None` if the job has already ended (no wake
    /// will come for it: its result is there).
    fn new(what: &str, shared: &Arc<Mutex<JobState<T>>>) -> Option<Ticket<T>> {
        let me = core::current_task(what);
        let core = me
            .header
            .core()
            .expect("a running task's loop is alive: it is the one running it");
        let remote = core
            .remote()
            .unwrap_or_else(|e| panic!("{what}: could not open the loop's poller: {e}"));
        let mut st = lock(shared);
        if st.done {
            return None;
        }
        let id = core.park_for_thread(core::prepare_wait(&me));
        st.waiter = Some((remote, id));
        drop(st);
        Some(Ticket {
            shared: shared.clone(),
            me,
            core,
            id,
        })
    }

    /// Suspends the task until the job's end wakes it, and takes the
    /// result.
    pub(crate) fn wait(self, what: &str) -> thread::Result<T> {
        core::park(&self.me, Wait::Thread, what);
        let shared = self.shared.clone();
        drop(self);
        take(&shared)
    }
}

impl<T> Drop for Ticket<T> {
    fn drop(&mut self) {
        // The job keeps no handle to this loop any more, the loop no entry.
        let waiter = {
            let mut st = lock(&self.shared);
            match &st.waiter {
                Some((_, id)) if *id == self.id => st.waiter.take(),
                _ => None,
            }
        };
        drop(waiter);
        drop(self.core.unpark_thread(self.id));
    }
}

fn take<T>(shared: &Mutex<JobState<T>>) -> thread::Result<T> {
    lock(shared)
        .result
        .take()
        .expect("a job's result is there once it is done, and taken once")
}

impl<T: Send + 'static> Job<T> {
    /// A job not yet handed to the pool ([`Job::submit`]), with the current
    /// task registered as its waiter from the start: the job cannot end
    /// unseen before the ticket's wait, so its end always reaches the task
    /// through the loop's queue, in the order jobs end (as asyncio's
    /// futures set by `call_soon_threadsafe`). A task that found its job
    /// done and went on at once would overtake the tasks whose jobs ended
    /// earlier. Everything that can fail here fails before anything is
    /// handed over.
    ///
    /// # Panics
    ///
    /// Outside a task of a running loop (the message names `what`); if
    /// the loop cannot have a poller (out of descriptors).
    pub(crate) fn new(what: &str) -> (Job<T>, Ticket<T>) {
        let shared = Arc::new(Mutex::new(JobState {
            result: None,
            done: false,
            waiter: None,
        }));
        let ticket = Ticket::new(what, &shared).expect("a job not yet started has not ended");
        (Job { shared }, ticket)
    }

    /// Hands `f` to the pool. Once per job.
    pub(crate) fn submit(&self, f: impl FnOnce() -> T + Send + 'static) {
        let theirs = self.shared.clone();
        pool().submit(Box::new(move || {
            let result = panic::catch_unwind(AssertUnwindSafe(f));
            let waiter = {
                let mut st = lock(&theirs);
                st.result = Some(result);
                st.done = true;
                st.waiter.take()
            };
            // If the handles are gone, the result is dropped here, on this
            // thread.
            drop(theirs);
            if let Some((remote, id)) = waiter {
                // Wakes the task on its loop's thread. A closed loop
                // refuses the call: nobody waits any more.
                let _ = remote.call_soon_threadsafe(move || {
                    if let Some(core) = core::try_running() {
                        core.thread_done(id);
                    }
                });
            }
        }));
    }

    /// Suspends the current task until the closure has ended (at once if
    /// it has), and takes its value or its panic: for a job whose first
    /// waiter is gone. Other tasks run meanwhile. Unwinding out of the
    /// wait (a cancellation, a timeout) leaves the job as it was.
    ///
    /// # Panics
    ///
    /// Outside a task of a running loop (the message names `what`), and if
    /// the result was already taken.
    pub(crate) fn wait(&self, what: &str) -> thread::Result<T> {
        match Ticket::new(what, &self.shared) {
            Some(ticket) => ticket.wait(what),
            None => take(&self.shared),
        }
    }
}

/// [`to_thread`], naming `what` in its panics: `bucle::fs::read` is not
/// `bucle::to_thread` to the person who called it.
pub(crate) fn to_thread_as<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (job, ticket) = Job::new(what);
    job.submit(f);
    match ticket.wait(what) {
        Ok(value) => value,
        Err(payload) => panic::resume_unwind(payload),
    }
}

/// Runs `f` on a worker thread and suspends the current task until it
/// returns: `await asyncio.to_thread(f)`. Other tasks run meanwhile.
///
/// ```
/// use std::time::Duration;
///
/// bucle::run(|| {
///     let slow = bucle::spawn(|| bucle::to_thread(|| {
///         std::thread::sleep(Duration::from_millis(20)); // blocking, but not the loop
///         "done"
///     }));
///     let ticks = bucle::spawn(|| {
///         for _ in 0..3 {
///             bucle::sleep(Duration::from_millis(1));
///         }
///         "ticked"
///     });
///     assert_eq!(ticks.join().unwrap(), "ticked"); // ran while the thread blocked
///     assert_eq!(slow.join().unwrap(), "done");
/// });
/// ```
///
/// The pool is shared by the process: at most [`max_workers`] threads,
/// started on demand, named `bucle-worker-N`, each exiting after
/// [`WORKER_IDLE_TIMEOUT`] without work. Jobs past the bound wait their
/// turn.
///
/// # Panics
///
/// Outside a task of a running loop (and then `f` does not run). A panic
/// in `f` resumes in the caller, as an exception from asyncio's
/// `to_thread` is raised by the `await`. If the calling task is cancelled
/// (or a timeout fires), it unwinds at once; the thread runs `f` to the
/// end anyway and its result is dropped (asyncio's rule: a thread cannot
/// be interrupted).
pub fn to_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    to_thread_as("bucle::to_thread", f)
}

impl EventLoop {
    /// Runs `f` on a worker thread, as a task that finishes with `f`'s
    /// result: `loop.run_in_executor(None, f)`. The task can be joined,
    /// gathered or cancelled like any other (see [`to_thread`]).
    ///
    /// # Panics
    ///
    /// If the loop is closed.
    pub fn run_in_executor<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Task<T> {
        self.check_open("EventLoop::run_in_executor");
        TaskBuilder::new().spawn_on(self.core(), move || to_thread(f))
    }
}
