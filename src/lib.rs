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

pub mod generator;
pub mod round_robin;
mod stack;

pub use generator::{Generator, GeneratorState, Yielder};
pub use round_robin::{RoundRobin, RoundRobinTask, Spawner};
pub use stack::{DEFAULT_STACK_SIZE, MIN_STACK_SIZE, PoolStats, stack_pool_stats};
