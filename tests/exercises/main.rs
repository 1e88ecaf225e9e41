//! Solutions to the exercises at the end of the book's chapters
//! (`docs/NN-*.md`), one module per chapter. Each exercise in a chapter names
//! the test here that holds its solution, so the solutions keep compiling and
//! passing as the library changes.
//!
//! Run one chapter's with `cargo test --test exercises ch03`.

mod ch01;
mod ch02;
mod ch03;
mod ch04;
mod ch05;
mod ch06;
