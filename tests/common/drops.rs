//! A drop ledger: hands out tokens and records how many times each one was
//! dropped, so a test can tell "dropped exactly once" from "leaked" (0) and
//! from "double dropped" (2, which only unsound code could cause).

use std::cell::RefCell;
use std::rc::Rc;

/// The ledger. Cloning shares it.
#[derive(Clone, Default, Debug)]
pub struct Drops {
    /// One entry per token made: (owner tag, times dropped).
    entries: Rc<RefCell<Vec<(usize, u32)>>>,
}

/// A value whose destructor writes to its ledger.
#[derive(Debug)]
pub struct Token {
    ledger: Rc<RefCell<Vec<(usize, u32)>>>,
    index: usize,
}

impl Drop for Token {
    fn drop(&mut self) {
        // Never panic here: this may run during an unwind.
        if let Ok(mut entries) = self.ledger.try_borrow_mut() {
            entries[self.index].1 += 1;
        }
    }
}

impl Drops {
    pub fn new() -> Self {
        Self::default()
    }

    /// A new token tagged with `owner` (for instance a task id).
    pub fn token(&self, owner: usize) -> Token {
        let mut entries = self.entries.borrow_mut();
        entries.push((owner, 0));
        Token {
            ledger: self.entries.clone(),
            index: entries.len() - 1,
        }
    }

    /// Tokens made so far.
    pub fn made(&self) -> usize {
        self.entries.borrow().len()
    }

    /// Total drops recorded (a double drop counts twice).
    pub fn dropped(&self) -> usize {
        self.entries.borrow().iter().map(|&(_, n)| n as usize).sum()
    }

    /// Tokens of `owner` made so far, and their drops.
    pub fn of(&self, owner: usize) -> Vec<u32> {
        self.entries
            .borrow()
            .iter()
            .filter(|&&(o, _)| o == owner)
            .map(|&(_, n)| n)
            .collect()
    }

    /// Whether every token made so far was dropped exactly once.
    pub fn all_dropped_once(&self) -> bool {
        self.entries.borrow().iter().all(|&(_, n)| n == 1)
    }

    /// A readable summary for assertion messages.
    pub fn report(&self) -> String {
        format!("{:?}", self.entries.borrow())
    }
}
