//! Property test (issue #14): a `StreamReader` reading what a peer task
//! writes to a raw socket in random chunks (random sizes, split anywhere,
//! yields and sleeps between them) answers every random read — `readline`,
//! `readuntil` with a random 1–3 byte separator, `readexactly(n)`,
//! `read(n)` — as asyncio's `StreamReader` would with the same bytes in
//! its buffer, under a small random limit (so limit errors are common),
//! while random timeouts and cancels interrupt reads mid-wait; no byte is
//! lost or read twice.
//!
//! The model is asyncio's algorithm (`streams.py`, 3.11) applied to a
//! `VecDeque` of the bytes not yet consumed: what a read method returns is
//! a function of its buffer when it returns (and of the end of the stream
//! having been seen), so each real answer is checked against the model run
//! on exactly the bytes the reader had — those it returned or dropped plus
//! those still buffered — which also proves they are the next bytes of the
//! stream. A model that would still wait means the real read returned too
//! early. `at_eof()` steps (which may buffer what arrived) must not say
//! true before the peer ended and every byte was read. After the script,
//! `read_to_end` must return the rest, and `at_eof()` then say true.
//!
//! Runs on the virtual clock, so timeouts fire at reproducible points.
//! `BUCLE_STREAMS_CASES=n` sets the number of cases (default 96).

#[path = "support/streams.rs"]
mod streams_support;

use std::cell::Cell;
use std::collections::VecDeque;
use std::net::Shutdown;
use std::rc::Rc;
use std::time::Duration;

use bucle::net::{ReadError, StreamReader};
use bucle::{JoinError, spawn, yield_now};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use streams_support::streams_and_peer;

// ---------------------------------------------------------------------------
// A case.

#[derive(Debug, Clone)]
enum Op {
    Readline,
    Readuntil(Vec<u8>),
    Readexactly(usize),
    Read(usize),
    /// `at_eof()`: never suspends; may buffer what arrived.
    AtEof,
}

#[derive(Debug, Clone, Copy)]
enum Interrupt {
    None,
    /// `bucle::timeout(ms)` around the read.
    Timeout(u64),
    /// The read in a task of its own, cancelled after this many yields.
    Cancel(u8),
}

#[derive(Debug, Clone, Copy)]
enum Pause {
    Yields(u8),
    SleepMs(u64),
}

#[derive(Debug, Clone)]
struct Case {
    limit: usize,
    /// What the peer writes, and what it does after each chunk.
    chunks: Vec<(Vec<u8>, Pause)>,
    steps: Vec<(Op, Interrupt)>,
    /// The peer ends with a half-close (else it closes the socket).
    half_close: bool,
}

const ALPHABET: &[u8] = b"ab\n-=";
const SEPARATOR_BYTES: &[u8] = b"\n-=a";

fn bytes_from(
    alphabet: &'static [u8],
    len: std::ops::RangeInclusive<usize>,
) -> BoxedStrategy<Vec<u8>> {
    prop::collection::vec(prop::sample::select(alphabet), len).boxed()
}

fn case() -> impl Strategy<Value = Case> {
    let chunk = (
        prop_oneof![
            4 => bytes_from(ALPHABET, 1..=12),
            1 => bytes_from(ALPHABET, 13..=80),
        ],
        prop_oneof![
            3 => (0u8..4).prop_map(Pause::Yields),
            1 => (1u64..30).prop_map(Pause::SleepMs),
        ],
    );
    let op = prop_oneof![
        3 => Just(Op::Readline),
        3 => bytes_from(SEPARATOR_BYTES, 1..=3).prop_map(Op::Readuntil),
        2 => (0usize..40).prop_map(Op::Readexactly),
        2 => (0usize..40).prop_map(Op::Read),
        1 => Just(Op::AtEof),
    ];
    let interrupt = prop_oneof![
        4 => Just(Interrupt::None),
        2 => (1u64..40).prop_map(Interrupt::Timeout),
        1 => (0u8..6).prop_map(Interrupt::Cancel),
    ];
    (
        1usize..=24,
        prop::collection::vec(chunk, 0..24),
        prop::collection::vec((op, interrupt), 1..40),
        any::<bool>(),
    )
        .prop_map(|(limit, chunks, steps, half_close)| Case {
            limit,
            chunks,
            steps,
            half_close,
        })
}

// ---------------------------------------------------------------------------
// The model: asyncio's read methods on a buffer.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Bytes(Vec<u8>),
    Overrun {
        consumed: usize,
        found: bool,
    },
    TooLong {
        dropped: usize,
    },
    Incomplete {
        partial: Vec<u8>,
        expected: Option<usize>,
    },
}

impl Outcome {
    /// How many bytes the outcome took out of the buffer.
    fn consumed(&self) -> usize {
        match self {
            Outcome::Bytes(b) => b.len(),
            Outcome::Overrun { .. } => 0,
            Outcome::TooLong { dropped } => *dropped,
            Outcome::Incomplete { partial, .. } => partial.len(),
        }
    }
}

/// asyncio's reader with `buf` buffered and `eof` fed: the outcome of
/// `op`, or `None` if it would wait for more data.
struct Model {
    buf: VecDeque<u8>,
    eof: bool,
    limit: usize,
}

impl Model {
    fn find(&self, sep: &[u8]) -> Option<usize> {
        let b: Vec<u8> = self.buf.iter().copied().collect();
        b.windows(sep.len()).position(|w| w == sep)
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        self.buf.drain(..n).collect()
    }

    fn readuntil(&mut self, sep: &[u8]) -> Option<Outcome> {
        let len = self.buf.len();
        if len >= sep.len() {
            if let Some(isep) = self.find(sep) {
                if isep > self.limit {
                    return Some(Outcome::Overrun {
                        consumed: isep,
                        found: true,
                    });
                }
                return Some(Outcome::Bytes(self.take(isep + sep.len())));
            }
            let offset = len + 1 - sep.len();
            if offset > self.limit {
                return Some(Outcome::Overrun {
                    consumed: offset,
                    found: false,
                });
            }
        }
        if self.eof {
            return Some(Outcome::Incomplete {
                partial: self.take(len),
                expected: None,
            });
        }
        None
    }

    fn readline(&mut self) -> Option<Outcome> {
        Some(match self.readuntil(b"\n")? {
            Outcome::Incomplete { partial, .. } => Outcome::Bytes(partial),
            Outcome::Overrun { consumed, .. } => {
                let dropped = if self.buf.get(consumed) == Some(&b'\n') {
                    consumed + 1
                } else {
                    self.buf.len()
                };
                self.take(dropped);
                Outcome::TooLong { dropped }
            }
            other => other,
        })
    }

    fn readexactly(&mut self, n: usize) -> Option<Outcome> {
        if n == 0 {
            return Some(Outcome::Bytes(Vec::new()));
        }
        if self.buf.len() >= n {
            return Some(Outcome::Bytes(self.take(n)));
        }
        if self.eof {
            let len = self.buf.len();
            return Some(Outcome::Incomplete {
                partial: self.take(len),
                expected: Some(n),
            });
        }
        None
    }

    fn read(&mut self, n: usize) -> Option<Outcome> {
        if n == 0 {
            return Some(Outcome::Bytes(Vec::new()));
        }
        if self.buf.is_empty() && !self.eof {
            return None;
        }
        let k = n.min(self.buf.len());
        Some(Outcome::Bytes(self.take(k)))
    }

    fn apply(&mut self, op: &Op) -> Option<Outcome> {
        match op {
            Op::Readline => self.readline(),
            Op::Readuntil(sep) => self.readuntil(sep),
            Op::Readexactly(n) => self.readexactly(*n),
            Op::Read(n) => self.read(*n),
            Op::AtEof => unreachable!("at_eof is checked apart"),
        }
    }
}

// ---------------------------------------------------------------------------
// The real reader.

fn call(reader: &StreamReader, op: &Op) -> Result<Vec<u8>, ReadError> {
    match op {
        Op::Readline => reader.readline(),
        Op::Readuntil(sep) => reader.readuntil(sep),
        Op::Readexactly(n) => reader.readexactly(*n),
        Op::Read(n) => reader.read(*n),
        Op::AtEof => unreachable!("at_eof is checked apart"),
    }
}

fn outcome(r: Result<Vec<u8>, ReadError>) -> Result<Outcome, String> {
    match r {
        Ok(b) => Ok(Outcome::Bytes(b)),
        Err(ReadError::LimitOverrun { consumed, found }) => {
            Ok(Outcome::Overrun { consumed, found })
        }
        Err(ReadError::LineTooLong { dropped }) => Ok(Outcome::TooLong { dropped }),
        Err(ReadError::Incomplete { partial, expected }) => {
            Ok(Outcome::Incomplete { partial, expected })
        }
        Err(e) => Err(format!("unexpected error {e:?}")),
    }
}

/// Runs `op` as the step says; `None` if it was interrupted.
fn step(
    reader: &Rc<StreamReader>,
    op: &Op,
    interrupt: Interrupt,
) -> Option<Result<Vec<u8>, ReadError>> {
    match interrupt {
        Interrupt::None => Some(call(reader, op)),
        Interrupt::Timeout(ms) => {
            bucle::timeout(Duration::from_millis(ms), || call(reader, op)).ok()
        }
        Interrupt::Cancel(yields) => {
            let r = reader.clone();
            let op = op.clone();
            let task = spawn(move || call(&r, &op));
            for _ in 0..yields {
                yield_now();
            }
            task.cancel();
            match task.join() {
                Ok(result) => Some(result),
                Err(JoinError::Cancelled) => None,
                Err(e) => panic!("the read task failed: {e:?}"),
            }
        }
    }
}

/// What the reader may hold after `op` at most: twice the limit, or more
/// for a read that needs more (asyncio resumes reading for it), or what it
/// held before.
fn buffer_bound(op: &Op, limit: usize, before: usize) -> usize {
    let need = match op {
        Op::Readexactly(n) => *n,
        Op::Readuntil(sep) => limit + sep.len(),
        Op::Readline => limit + 1,
        Op::Read(_) | Op::AtEof => 1,
    };
    before.max(2 * limit).max(need)
}

fn run_case(case: &Case) -> Result<(), TestCaseError> {
    let lp = bucle::EventLoop::builder().virtual_time().build();
    let case = case.clone();
    let result = lp.run_until_complete(move || -> Result<(), String> {
        let (reader, _writer, peer) = streams_and_peer();
        reader.set_limit(case.limit);
        let reader = Rc::new(reader);
        let stream: Vec<u8> = case.chunks.iter().flat_map(|(c, _)| c.clone()).collect();
        // Bytes the peer has begun to write, and whether it has ended.
        let started = Rc::new(Cell::new(0usize));
        let ended = Rc::new(Cell::new(false));
        let (s, e) = (started.clone(), ended.clone());
        let chunks = case.chunks.clone();
        let half_close = case.half_close;
        let writer = spawn(move || {
            for (chunk, pause) in chunks {
                s.set(s.get() + chunk.len());
                peer.write_all(&chunk).unwrap();
                match pause {
                    Pause::Yields(n) => (0..n).for_each(|_| yield_now()),
                    Pause::SleepMs(ms) => bucle::sleep(Duration::from_millis(ms)),
                }
            }
            if half_close {
                peer.shutdown(Shutdown::Write).unwrap();
            } else {
                drop(peer);
            }
            e.set(true);
        });
        // Bytes consumed so far.
        let mut pos = 0;
        for (i, (op, interrupt)) in case.steps.iter().enumerate() {
            if let Op::AtEof = op {
                // asyncio: `self._eof and not self._buffer`.
                if reader.at_eof() && !(ended.get() && pos == stream.len()) {
                    return Err(format!(
                        "step {i}: at_eof at byte {pos} of {} (the peer ended: {})",
                        stream.len(),
                        ended.get()
                    ));
                }
                if pos + reader.buffered() > started.get() {
                    return Err(format!("step {i}: at_eof buffered more than was sent"));
                }
                continue;
            }
            let before = reader.buffered();
            let got = step(&reader, op, *interrupt);
            let after = reader.buffered();
            let ctx = format!("step {i} {op:?} {interrupt:?} at byte {pos}");
            if after > buffer_bound(op, case.limit, before) {
                return Err(format!(
                    "{ctx}: {after} bytes buffered (limit {})",
                    case.limit
                ));
            }
            if pos + after > started.get() {
                return Err(format!("{ctx}: {after} buffered, more than was sent"));
            }
            let Some(got) = got else {
                continue; // interrupted: nothing consumed, checked by what follows
            };
            let got = outcome(got).map_err(|e| format!("{ctx}: {e}"))?;
            let avail = got.consumed() + after;
            if pos + avail > started.get() {
                return Err(format!(
                    "{ctx}: {got:?} and {after} buffered: more than was sent"
                ));
            }
            let mut model = Model {
                buf: stream[pos..pos + avail].iter().copied().collect(),
                eof: ended.get() && pos + avail == stream.len(),
                limit: case.limit,
            };
            let expected = model.apply(op);
            if expected.as_ref() != Some(&got) {
                return Err(format!(
                    "{ctx}: bucle {got:?}, asyncio {expected:?} with {:?} buffered (eof {})",
                    String::from_utf8_lossy(&stream[pos..pos + avail]),
                    model.eof
                ));
            }
            // The model consumed as much as the real reader did.
            debug_assert_eq!(model.buf.len(), after);
            pos += got.consumed();
        }
        let rest = reader
            .read_to_end()
            .map_err(|e| format!("read_to_end: {e:?}"))?;
        if rest != stream[pos..] {
            return Err(format!(
                "read_to_end returned {:?}, the rest of the stream is {:?}",
                String::from_utf8_lossy(&rest),
                String::from_utf8_lossy(&stream[pos..])
            ));
        }
        if !reader.at_eof() {
            return Err("not at_eof after read_to_end".into());
        }
        writer.join().unwrap();
        Ok(())
    });
    lp.close();
    result.map_err(TestCaseError::fail)
}

fn config() -> ProptestConfig {
    let cases = std::env::var("BUCLE_STREAMS_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(96);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn reads_match_asyncio_and_lose_no_byte(case in case()) {
        run_case(&case)?;
    }
}

// ---------------------------------------------------------------------------
// The model itself, against what CPython 3.11 answers (checked with a
// script feeding a StreamReader by hand).

#[test]
fn the_model_agrees_with_cpython_on_fixed_buffers() {
    let m = |buf: &[u8], eof: bool, limit: usize, op: Op| {
        Model {
            buf: buf.iter().copied().collect(),
            eof,
            limit,
        }
        .apply(&op)
    };
    // limit 8, readuntil(b'XYZ'): 10 bytes make offset 8, not past it;
    // 11 make 9
    assert_eq!(
        m(b"0123456789", false, 8, Op::Readuntil(b"XYZ".to_vec())),
        None
    );
    assert_eq!(
        m(b"0123456789a", false, 8, Op::Readuntil(b"XYZ".to_vec())),
        Some(Outcome::Overrun {
            consumed: 9,
            found: false
        })
    );
    // limit 8: b'0123456789\n' -> readuntil: found at 10
    assert_eq!(
        m(b"0123456789\nx", false, 8, Op::Readuntil(b"\n".to_vec())),
        Some(Outcome::Overrun {
            consumed: 10,
            found: true
        })
    );
    // readline drops through the newline, or the whole buffer
    assert_eq!(
        m(b"0123456789\nx", false, 8, Op::Readline),
        Some(Outcome::TooLong { dropped: 11 })
    );
    assert_eq!(
        m(b"0123456789", false, 8, Op::Readline),
        Some(Outcome::TooLong { dropped: 10 })
    );
    // at EOF: the partial line, then b''
    assert_eq!(
        m(b"ab", true, 8, Op::Readline),
        Some(Outcome::Bytes(b"ab".to_vec()))
    );
    assert_eq!(
        m(b"", true, 8, Op::Readline),
        Some(Outcome::Bytes(Vec::new()))
    );
    // 8 bytes, no separator, limit 8, not EOF: waits (offset 8 is not past it)
    assert_eq!(m(b"01234567", false, 8, Op::Readline), None);
    assert_eq!(
        m(b"ab-", true, 8, Op::Readuntil(b"--".to_vec())),
        Some(Outcome::Incomplete {
            partial: b"ab-".to_vec(),
            expected: None
        })
    );
    assert_eq!(
        m(b"ab", true, 8, Op::Readexactly(3)),
        Some(Outcome::Incomplete {
            partial: b"ab".to_vec(),
            expected: Some(3)
        })
    );
    assert_eq!(
        m(b"", false, 8, Op::Readexactly(0)),
        Some(Outcome::Bytes(Vec::new()))
    );
    assert_eq!(
        m(b"", false, 8, Op::Read(0)),
        Some(Outcome::Bytes(Vec::new()))
    );
    assert_eq!(m(b"", false, 8, Op::Read(3)), None);
    assert_eq!(
        m(b"", true, 8, Op::Read(3)),
        Some(Outcome::Bytes(Vec::new()))
    );
}
