#![doc = include_str!("../../docs/05-io.md")]

mod fd;
pub(crate) mod reactor;
pub(crate) mod sys;

pub use fd::{AsyncFd, COOP_BUDGET};
