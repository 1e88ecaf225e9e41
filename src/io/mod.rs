#![doc = include_str!("../../docs/05-io.md")]

mod fd;
pub(crate) mod reactor;
pub(crate) mod sys;

pub use fd::{AsyncFd, COOP_BUDGET};

#[allow(unused_imports)] // the chapter's intra-doc links
use crate::{Remote, to_thread};
