//! # bucle — an event loop built from scratch on stackful coroutines
//!
//! `bucle` ("bucle de eventos", event loop) retells the progression from
//! Python generators to `asyncio` as working Rust, one stage per module and
//! one chapter per stage. Each stage is usable on its own; each later stage
//! is built on the earlier ones.
//!
//! | stage | module | chapter | example |
//! |---|---|---|---|
//! | 1. stackful generators | [`generator`] | `docs/01-generators.md` | `examples/01_generators.rs` |
//! | 2. round-robin scheduler | [`round_robin`] | `docs/02-round-robin.md` | `examples/02_round_robin.rs` |
//! | 3. awaitables: event loop, tasks, futures | [`runtime`] | `docs/03-awaitables.md` | `examples/03_*.rs` |
//! | 4. timers: sleep, call_later, timeouts | [`timer`] | `docs/04-timers.md` | `examples/04_*.rs` |
//! | 5. I/O: the reactor, sockets, other threads, files | [`io`], [`net`], [`fs`] | `docs/05-io.md` | `examples/05_*.rs` |
//! | locks, semaphores, events, queues | [`sync`] | `docs/06-sync-and-queues.md` | `examples/06_*.rs` |
//!
//! Start with [`generator`]: its documentation is chapter 1.
//!
//! ```
//! use bucle::{Generator, Yielder};
//!
//! let countdown = Generator::new(|y: &Yielder<u32>, ()| {
//!     for n in (1..=3).rev() {
//!         y.yield_(n);
//!     }
//! });
//! assert_eq!(countdown.collect::<Vec<_>>(), [3, 2, 1]);
//! ```
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod combinators;
pub mod fs;
mod future;
pub mod generator;
pub mod io;
pub mod net;
pub mod round_robin;
pub mod runtime;
mod stack;
pub mod sync;
mod thread;
pub mod timer;

pub use combinators::{
    AsCompleted, GroupError, TaskGroup, as_completed, gather, shield, task_group,
};
pub use future::{Future, FutureError, InvalidState};
pub use generator::{Generator, GeneratorState, Yielder};
pub use round_robin::{RoundRobin, RoundRobinTask, Spawner};
pub use runtime::core::ExceptionContext;
pub use runtime::remote::{LoopClosed, Remote};
pub use runtime::{
    AnyTask, Builder, EventLoop, Handle, JoinError, Task, TaskBuilder, TaskId, call_soon,
    current_task, remote, run, spawn, stop, try_spawn, yield_now,
};
pub use stack::{
    DEFAULT_STACK_SIZE, MAP_RESERVE, MAX_STACK_SIZE, MIN_STACK_SIZE, PoolStats, stack_pool_stats,
};
pub use thread::{WORKER_IDLE_TIMEOUT, max_workers, set_max_workers, to_thread};
pub use timer::{
    Elapsed, Timeout, call_at, call_later, pending_timers, sleep, sleep_until, time, timeout,
    timeout_at, timeout_scope, wait_for,
};
