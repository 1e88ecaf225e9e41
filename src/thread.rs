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
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::Duration;

use crate::runtime::core::{self, Wait};
use crate::runtime::{EventLoop, Task, TaskBuilder};

/// A job for a worker: the closure, with its result already wired back.
type Job = Box<dyn FnOnce() + Send>;

/// How long an idle worker waits for a job before it exits.
pub const WORKER_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The most worker threads the pool runs at once: asyncio's default
/// executor size, `min(32, cpus + 4)`. Jobs beyond that wait in a queue.
pub fn max_workers() -> usize {
    let cpus = thread::available_parallelism().map_or(1, usize::from);
    (cpus + 4).min(32)
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
    jobs: VecDeque<Job>,
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

/// Jobs never run under the lock, so a poisoned lock holds consistent data.
fn lock(m: &Mutex<PoolState>) -> MutexGuard<'_, PoolState> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pool {
    /// Queues `job`, starting a worker if none is idle and the bound allows.
    fn submit(&'static self, job: Job) {
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

/// Where a worker leaves its result for the waiting task.
type Slot<T> = Arc<Mutex<Option<thread::Result<T>>>>;

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
/// Outside a task of a running loop. A panic in `f` resumes in the caller,
/// as an exception from asyncio's `to_thread` is raised by the `await`. If
/// the calling task is cancelled (or a timeout fires), it unwinds at once;
/// the thread runs `f` to the end anyway and its result is dropped
/// (asyncio's rule: a thread cannot be interrupted).
pub fn to_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let what = "bucle::to_thread";
    let me = core::current_task(what);
    let core = me
        .header
        .core()
        .expect("a running task's loop is alive: it is the one running it");
    let remote = core
        .remote()
        .unwrap_or_else(|e| panic!("{what}: could not open the loop's poller: {e}"));
    let slot: Slot<T> = Arc::new(Mutex::new(None));
    let waker = core::prepare_wait(&me);
    let id = core.park_for_thread(waker);
    let out = slot.clone();
    pool().submit(Box::new(move || {
        let result = panic::catch_unwind(AssertUnwindSafe(f));
        *out.lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
        drop(out);
        // Wakes the task on its loop's thread. A closed loop refuses the
        // call: nobody waits any more.
        let _ = remote.call_soon_threadsafe(move || {
            if let Some(core) = core::try_running() {
                core.thread_done(id);
            }
        });
    }));
    // Whatever way the task leaves the wait, it no longer waits for `id`.
    struct Forget<'a>(&'a core::Core, u64);
    impl Drop for Forget<'_> {
        fn drop(&mut self) {
            drop(self.0.unpark_thread(self.1));
        }
    }
    let forget = Forget(&core, id);
    core::park(&me, Wait::Thread, what);
    drop(forget);
    let result = slot
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .expect("a task waiting on a thread is only woken once the result is in");
    match result {
        Ok(value) => value,
        Err(payload) => panic::resume_unwind(payload),
    }
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
