//! Property test: random programs of scheduling operations run on a
//! virtual-time loop produce exactly the event order predicted by a small
//! reference model of asyncio's scheduling (semantics 1–8 of the design:
//! FIFO ready queue, tick batches, two-hop sleeps, wake-ups in registration
//! order, cancellation propagation, stop one tick after main).
//!
//! The model is a plain simulation: a ready queue of entries, a list of
//! timers, and per task a program counter. It knows nothing of stacks.
//!
//! The model itself was checked against CPython 3.11's asyncio on 2000
//! random programs (`tests/support/asyncio_replay.py`, see the ignored
//! `dump_programs_for_cpython` below): the logs agree except for programs in
//! which a task cancels itself and then returns without suspending, which
//! asyncio ends as cancelled and bucle (and this model) as returned; see
//! `tests/cancel.rs`. Ties between timers with equal deadlines follow
//! creation order, as bucle documents (asyncio's heap leaves them
//! unspecified; the replay makes them FIFO).

mod support;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use bucle::{AnyTask, Future, FutureError, JoinError, Task};
use proptest::prelude::*;
use support::{catch, ms, stacks_in_use};

/// One operation of a task's script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// Spawn task `c` (each task but main is spawned by exactly one op).
    Spawn(usize),
    Yield,
    /// `sleep(d ms)`.
    Sleep(u64),
    /// Join task `j` (always a later task, so joins cannot form a cycle);
    /// skipped if `j` was not spawned yet or its handle was already taken.
    Join(usize),
    /// `set_result(())` on shared future `f`.
    Set(usize),
    /// `call_later(d ms, || f.set_result(()))`: a one-hop timer callback.
    SetLater(u64, usize),
    /// `wait()` on shared future `f`.
    Wait(usize),
    /// Cancel task `j` (never main); skipped if not spawned yet.
    Cancel(usize),
    /// Return early.
    Finish,
    /// Panic (never main): the task ends with an error its joiners get.
    Panic,
}

const FUTURES: usize = 2;

#[derive(Debug, Clone)]
struct Program {
    /// `scripts[0]` is main.
    scripts: Vec<Vec<Op>>,
}

// ---------------------------------------------------------------------------
// The reference model.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    Join(usize),
    Fut(usize),
    Sleep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Unspawned,
    Scheduled,
    Running,
    Waiting(Wait),
    Done(End),
}

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Returned,
    Cancelled,
    Panicked,
}

#[derive(Debug, Clone)]
struct MTask {
    state: State,
    started: bool,
    /// Index of the next op, or of the op it is suspended in.
    pc: usize,
    /// A cancellation requested and not yet delivered.
    cancel: bool,
    /// A cancellation forwarded to the task this one joins (asyncio's
    /// `Task.cancel` on a task awaiting another): delivered when the join
    /// returns only if the joined task ended cancelled.
    forwarded: bool,
    /// Incremented at every suspension that a waker can end.
    seq: u64,
    /// Joiners: (task, seq), in registration order.
    joiners: Vec<(usize, u64)>,
}

#[derive(Debug, Clone, Copy)]
enum Entry {
    Step(usize),
    /// A sleep's expired timer: wake (task, seq) if still current.
    Wake(usize, u64),
    /// An expired `SetLater` callback, registered by (task, pc), setting
    /// future `f`.
    Call(usize, usize, usize),
    /// main's done callback: stop the loop after this tick.
    Stop,
}

#[derive(Debug, Default, Clone)]
struct MFuture {
    /// `Some(cancelled)` once done.
    done: Option<bool>,
    waiters: Vec<(usize, u64)>,
}

struct Model<'p> {
    prog: &'p Program,
    tasks: Vec<MTask>,
    ready: VecDeque<Entry>,
    /// (deadline, creation seq, what)
    timers: Vec<(u64, u64, Entry)>,
    timer_seq: u64,
    now: u64,
    futs: Vec<MFuture>,
    /// Whether a handle to task j is still available to join.
    handle: Vec<bool>,
    log: Vec<String>,
    stop: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Ending {
    Completed,
    Deadlock,
}

impl<'p> Model<'p> {
    fn new(prog: &'p Program) -> Self {
        let n = prog.scripts.len();
        Model {
            prog,
            tasks: vec![
                MTask {
                    state: State::Unspawned,
                    started: false,
                    pc: 0,
                    cancel: false,
                    forwarded: false,
                    seq: 0,
                    joiners: Vec::new(),
                };
                n
            ],
            ready: VecDeque::new(),
            timers: Vec::new(),
            timer_seq: 0,
            now: 0,
            futs: vec![MFuture::default(); FUTURES],
            handle: vec![false; n],
            log: Vec::new(),
            stop: false,
        }
    }

    fn run(mut self) -> (Vec<String>, Ending) {
        self.tasks[0].state = State::Scheduled;
        self.ready.push_back(Entry::Step(0));
        loop {
            // Phase 1: nothing ready → jump to the earliest live timer, or
            // deadlock.
            if self.ready.is_empty() {
                let timers = std::mem::take(&mut self.timers);
                self.timers = timers
                    .into_iter()
                    .filter(|&(_, _, e)| self.is_live(e))
                    .collect();
                match self.timers.iter().map(|e| e.0).min() {
                    Some(d) => self.now = self.now.max(d),
                    None => return (self.log, Ending::Deadlock),
                }
            }
            // Phase 2: expired timers, in (deadline, creation) order.
            self.timers
                .sort_unstable_by_key(|&(deadline, seq, _)| (deadline, seq));
            let now = self.now;
            let due: Vec<_> = self
                .timers
                .iter()
                .take_while(|e| e.0 <= now)
                .copied()
                .collect();
            self.timers.drain(..due.len());
            for (_, _, e) in due {
                if self.is_live(e) {
                    self.ready.push_back(e);
                }
            }
            // Phase 3: exactly the batch.
            for _ in 0..self.ready.len() {
                match self.ready.pop_front().unwrap() {
                    Entry::Step(t) => self.step(t),
                    Entry::Wake(t, s) => self.wake(t, s),
                    Entry::Call(t, pc, f) => {
                        let out = if self.complete(f, false) {
                            "ok"
                        } else {
                            "invalid"
                        };
                        self.emit(t, format!("op{pc} cb {out}"));
                    }
                    Entry::Stop => self.stop = true,
                }
            }
            if self.stop {
                return (self.log, Ending::Completed);
            }
        }
    }

    /// Whether a timer's work can still happen (a sleep's task still
    /// sleeps in that suspension; callbacks are never cancelled here).
    fn is_live(&self, e: Entry) -> bool {
        match e {
            Entry::Wake(t, s) => self.is_current(t, s),
            _ => true,
        }
    }

    fn is_current(&self, t: usize, seq: u64) -> bool {
        matches!(self.tasks[t].state, State::Waiting(_)) && self.tasks[t].seq == seq
    }

    fn schedule(&mut self, t: usize) {
        self.tasks[t].state = State::Scheduled;
        self.ready.push_back(Entry::Step(t));
    }

    fn wake(&mut self, t: usize, seq: u64) {
        if self.is_current(t, seq) {
            self.schedule(t);
        }
    }

    fn finish(&mut self, t: usize, end: End) {
        self.tasks[t].state = State::Done(end);
        self.tasks[t].cancel = false;
        for (w, s) in std::mem::take(&mut self.tasks[t].joiners) {
            self.wake(w, s);
        }
        if t == 0 {
            self.ready.push_back(Entry::Stop);
        }
    }

    /// Completes future `f`; false if it was already done.
    fn complete(&mut self, f: usize, cancelled: bool) -> bool {
        if self.futs[f].done.is_some() {
            return false;
        }
        self.futs[f].done = Some(cancelled);
        for (w, s) in std::mem::take(&mut self.futs[f].waiters) {
            self.wake(w, s);
        }
        true
    }

    fn cancel_task(&mut self, j: usize) -> bool {
        if matches!(self.tasks[j].state, State::Done(_)) {
            return false;
        }
        self.tasks[j].cancel = true;
        self.interrupt_wait(j);
        true
    }

    /// A cancelled waiting task gives up its wait as asyncio does.
    fn interrupt_wait(&mut self, j: usize) {
        match self.tasks[j].state {
            State::Waiting(Wait::Join(k)) => {
                // Forwarded: `j` goes on waiting, and gets `k`'s outcome.
                let forwarded = self.cancel_task(k);
                if forwarded {
                    self.tasks[j].cancel = false;
                    self.tasks[j].forwarded = true;
                }
            }
            State::Waiting(Wait::Fut(f)) => {
                // A future someone waits on is pending: cancelling it wakes
                // all its waiters, `j` among them.
                let was_pending = self.complete(f, true);
                assert!(was_pending, "a waited-on future is pending");
            }
            State::Waiting(Wait::Sleep) => self.schedule(j),
            _ => {}
        }
    }

    fn emit(&mut self, t: usize, what: impl std::fmt::Display) {
        self.log.push(format!("t{t} {what}"));
    }

    fn step(&mut self, t: usize) {
        if self.tasks[t].state != State::Scheduled {
            return;
        }
        if !self.tasks[t].started && self.tasks[t].cancel {
            // Cancelled before its first step: never runs.
            self.finish(t, End::Cancelled);
            return;
        }
        self.tasks[t].state = State::Running;
        if !self.tasks[t].started {
            self.tasks[t].started = true;
            self.emit(t, "start");
        } else if self.tasks[t].cancel {
            self.tasks[t].cancel = false;
            self.emit(t, "unwound");
            self.finish(t, End::Cancelled);
            return;
        } else {
            // Resume the op it was suspended in.
            let pc = self.tasks[t].pc;
            let forwarded = std::mem::take(&mut self.tasks[t].forwarded);
            let out = match self.prog.scripts[t][pc] {
                Op::Yield => "yielded",
                Op::Sleep(_) => "slept",
                Op::Join(j) => match self.tasks[j].state {
                    State::Done(End::Cancelled) if forwarded => {
                        self.emit(t, "unwound");
                        self.finish(t, End::Cancelled);
                        return;
                    }
                    State::Done(end) => join_out(end),
                    s => unreachable!("joiner woken before {j} finished: {s:?}"),
                },
                Op::Wait(f) => match self.futs[f].done {
                    Some(false) => "ok",
                    Some(true) => "cancelled",
                    None => unreachable!("waiter woken before the future was done"),
                },
                op => unreachable!("{op:?} does not suspend"),
            };
            self.emit(t, format!("op{pc} {out}"));
            self.tasks[t].pc += 1;
        }
        self.run_ops(t);
    }

    /// Suspends the running task `t` in `wait`; a pending cancellation
    /// acts on the new wait at once.
    fn park(&mut self, t: usize, wait: Wait) {
        self.tasks[t].state = State::Waiting(wait);
        if self.tasks[t].cancel {
            self.interrupt_wait(t);
        }
    }

    /// Runs task `t`'s ops from its pc until it suspends or ends.
    fn run_ops(&mut self, t: usize) {
        let script = &self.prog.scripts[t];
        loop {
            let pc = self.tasks[t].pc;
            let Some(&op) = script.get(pc) else {
                self.emit(t, "end");
                // A task that cancelled itself and then returned without
                // suspending again still ends cancelled (asyncio's
                // `_must_cancel` checked at StopIteration).
                let end = if std::mem::take(&mut self.tasks[t].cancel) {
                    End::Cancelled
                } else {
                    End::Returned
                };
                self.finish(t, end);
                return;
            };
            let out = match op {
                Op::Spawn(c) => {
                    self.handle[c] = true;
                    self.schedule(c);
                    "spawned"
                }
                Op::Yield => {
                    self.schedule(t);
                    return;
                }
                Op::Sleep(d) => {
                    self.tasks[t].seq += 1;
                    let entry = Entry::Wake(t, self.tasks[t].seq);
                    self.timers.push((self.now + d, self.timer_seq, entry));
                    self.timer_seq += 1;
                    self.park(t, Wait::Sleep);
                    return;
                }
                Op::SetLater(d, f) => {
                    let entry = Entry::Call(t, pc, f);
                    self.timers.push((self.now + d, self.timer_seq, entry));
                    self.timer_seq += 1;
                    "scheduled"
                }
                Op::Join(j) => {
                    if !std::mem::replace(&mut self.handle[j], false) {
                        "skip"
                    } else {
                        match self.tasks[j].state {
                            State::Done(end) => join_out(end),
                            _ => {
                                self.tasks[t].seq += 1;
                                let seq = self.tasks[t].seq;
                                self.tasks[j].joiners.push((t, seq));
                                self.park(t, Wait::Join(j));
                                return;
                            }
                        }
                    }
                }
                Op::Set(f) => {
                    if self.complete(f, false) {
                        "ok"
                    } else {
                        "invalid"
                    }
                }
                Op::Wait(f) => match self.futs[f].done {
                    Some(false) => "ok",
                    Some(true) => "cancelled",
                    None => {
                        self.tasks[t].seq += 1;
                        let seq = self.tasks[t].seq;
                        self.futs[f].waiters.push((t, seq));
                        self.park(t, Wait::Fut(f));
                        return;
                    }
                },
                Op::Cancel(j) => {
                    if self.tasks[j].state == State::Unspawned {
                        "skip"
                    } else if self.cancel_task(j) {
                        "true"
                    } else {
                        "false"
                    }
                }
                Op::Finish => {
                    self.tasks[t].pc = script.len();
                    continue;
                }
                Op::Panic => {
                    self.emit(t, format!("op{pc} panic"));
                    self.emit(t, "unwound");
                    self.tasks[t].cancel = false;
                    self.finish(t, End::Panicked);
                    return;
                }
            };
            self.emit(t, format!("op{pc} {out}"));
            self.tasks[t].pc += 1;
        }
    }
}

/// What a join logs for a task that ended so.
fn join_out(end: End) -> &'static str {
    match end {
        End::Returned => "ok",
        End::Cancelled => "cancelled",
        End::Panicked => "panicked",
    }
}

fn model(prog: &Program) -> (Vec<String>, Ending) {
    Model::new(prog).run()
}

// ---------------------------------------------------------------------------
// The real thing.

struct Shared {
    prog: Program,
    log: RefCell<Vec<String>>,
    handles: RefCell<Vec<Option<Task<()>>>>,
    anys: RefCell<Vec<Option<AnyTask>>>,
    futs: Vec<Future<()>>,
}

impl Shared {
    fn emit(&self, t: usize, what: impl std::fmt::Display) {
        self.log.borrow_mut().push(format!("t{t} {what}"));
    }
}

/// Logs `unwound` if the task's stack unwinds through it.
struct UnwindLog(Rc<Shared>, usize);

impl Drop for UnwindLog {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.emit(self.1, "unwound");
        }
    }
}

fn body(s: Rc<Shared>, t: usize) -> impl FnOnce() + 'static {
    move || {
        let _unwind = UnwindLog(s.clone(), t);
        s.emit(t, "start");
        let script = s.prog.scripts[t].clone();
        for (pc, op) in script.into_iter().enumerate() {
            let out = match op {
                Op::Spawn(c) => {
                    let task = bucle::spawn(body(s.clone(), c));
                    s.anys.borrow_mut()[c] = Some(task.as_any());
                    s.handles.borrow_mut()[c] = Some(task);
                    "spawned"
                }
                Op::Yield => {
                    bucle::yield_now();
                    "yielded"
                }
                Op::Sleep(d) => {
                    bucle::sleep(ms(d));
                    "slept"
                }
                Op::Join(j) => {
                    let handle = s.handles.borrow_mut()[j].take();
                    match handle.map(Task::join) {
                        None => "skip",
                        Some(Ok(())) => "ok",
                        Some(Err(JoinError::Cancelled)) => "cancelled",
                        Some(Err(JoinError::Panicked(_))) => "panicked",
                    }
                }
                Op::Set(f) => match s.futs[f].set_result(()) {
                    Ok(()) => "ok",
                    Err(_) => "invalid",
                },
                Op::SetLater(d, f) => {
                    let s2 = s.clone();
                    bucle::call_later(ms(d), move || {
                        let out = match s2.futs[f].set_result(()) {
                            Ok(()) => "ok",
                            Err(_) => "invalid",
                        };
                        s2.emit(t, format!("op{pc} cb {out}"));
                    });
                    "scheduled"
                }
                Op::Wait(f) => match s.futs[f].wait() {
                    Ok(()) => "ok",
                    Err(FutureError::Cancelled) => "cancelled",
                    Err(e) => panic!("unexpected future error {e}"),
                },
                Op::Cancel(j) => {
                    let any = s.anys.borrow()[j].clone();
                    match any.map(|a| a.cancel()) {
                        None => "skip",
                        Some(true) => "true",
                        Some(false) => "false",
                    }
                }
                Op::Finish => break,
                Op::Panic => {
                    s.emit(t, format!("op{pc} panic"));
                    // Without the panic hook's noise.
                    std::panic::resume_unwind(Box::new(format!("t{t} panics")));
                }
            };
            s.emit(t, format!("op{pc} {out}"));
        }
        s.emit(t, "end");
    }
}

fn real(prog: &Program) -> (Vec<String>, Ending) {
    let baseline = stacks_in_use();
    let n = prog.scripts.len();
    let shared = Rc::new(Shared {
        prog: prog.clone(),
        log: RefCell::new(Vec::new()),
        handles: RefCell::new((0..n).map(|_| None).collect()),
        anys: RefCell::new(vec![None; n]),
        futs: (0..FUTURES).map(|_| Future::new()).collect(),
    });
    let ending = {
        let lp = support::vloop();
        // Panics nobody joins are reported; they are part of the program.
        lp.set_exception_handler(|_| {});
        let main = body(shared.clone(), 0);
        let ending = match catch(|| lp.run_until_complete(main)) {
            Ok(()) => Ending::Completed,
            Err(msg) => {
                assert!(
                    msg.starts_with("bucle: deadlock"),
                    "unexpected panic: {msg}"
                );
                Ending::Deadlock
            }
        };
        shared.log.borrow_mut().push("--shutdown--".into());
        if ending == Ending::Completed {
            lp.shutdown();
        }
        ending
        // The loop is dropped here: whatever is left unwinds.
    };
    let log = shared.log.borrow().clone();
    // Nothing may hold on to the program's state once the loop is gone.
    shared.handles.borrow_mut().clear();
    shared.anys.borrow_mut().clear();
    assert_eq!(Rc::strong_count(&shared), 1, "a task leaked its closure");
    assert_eq!(stacks_in_use(), baseline, "a stack leaked");
    // The log taken just after run_until_complete is what the model sees;
    // shutdown adds only unwinds of tasks that were still pending.
    let cut = log
        .iter()
        .position(|e| e == "--shutdown--")
        .unwrap_or(log.len());
    (log[..cut].to_vec(), ending)
}

// ---------------------------------------------------------------------------
// Programs.

/// Raw material for one op, interpreted relative to its task.
#[derive(Debug, Clone, Copy)]
struct RawOp {
    kind: u8,
    a: u8,
}

fn raw_op() -> impl Strategy<Value = RawOp> {
    // Weights: yield, sleep, join, set, wait, cancel, finish, set later,
    // panic.
    prop_oneof![
        3 => Just(0u8),
        3 => Just(1u8),
        2 => Just(2u8),
        1 => Just(3u8),
        3 => Just(4u8),
        2 => Just(5u8),
        1 => Just(6u8),
        2 => Just(7u8),
        1 => Just(8u8),
    ]
    .prop_flat_map(|kind| (Just(kind), any::<u8>()))
    .prop_map(|(kind, a)| RawOp { kind, a })
}

fn cook(raw: RawOp, i: usize, n: usize) -> Op {
    let a = raw.a as usize;
    match raw.kind {
        0 => Op::Yield,
        1 => Op::Sleep(1 + (a % 3) as u64),
        2 if i + 1 < n => Op::Join(i + 1 + a % (n - i - 1)),
        3 => Op::Set(a % FUTURES),
        4 => Op::Wait(a % FUTURES),
        5 if n > 1 => Op::Cancel(1 + a % (n - 1)),
        6 => Op::Finish,
        7 => Op::SetLater(1 + (a % 3) as u64, (a / 3) % FUTURES),
        8 if i > 0 => Op::Panic,
        _ => Op::Yield,
    }
}

fn program() -> impl Strategy<Value = Program> {
    (1usize..=5)
        .prop_flat_map(|n| {
            (
                Just(n),
                prop::collection::vec(prop::collection::vec(raw_op(), 0..5), n),
                // For each task t ≥ 1: (spawner index seed, position seed).
                prop::collection::vec((any::<u8>(), any::<u8>()), n - 1),
            )
        })
        .prop_map(|(n, raw, spawns)| {
            let mut scripts: Vec<Vec<Op>> = raw
                .iter()
                .enumerate()
                .map(|(i, ops)| ops.iter().map(|&r| cook(r, i, n)).collect())
                .collect();
            for (k, &(p, pos)) in spawns.iter().enumerate() {
                let child = k + 1;
                let parent = p as usize % child;
                let at = pos as usize % (scripts[parent].len() + 1);
                scripts[parent].insert(at, Op::Spawn(child));
            }
            Program { scripts }
        })
}

fn check(prog: &Program) -> Result<(), TestCaseError> {
    let (expected, expected_end) = model(prog);
    let (got, got_end) = real(prog);
    prop_assert_eq!(
        &got,
        &expected,
        "event order differs from the model for {:?}",
        prog
    );
    prop_assert_eq!(got_end, expected_end);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn event_order_matches_the_asyncio_model(prog in program()) {
        check(&prog)?;
    }
}

// ---------------------------------------------------------------------------
// Fixed programs: the model (and bucle) against hand-checked logs. Each is
// what CPython 3.11 prints for the equivalent asyncio program.

fn fixed(scripts: Vec<Vec<Op>>, expected: &[&str], end: Ending) {
    let prog = Program { scripts };
    let (m, m_end) = model(&prog);
    assert_eq!(m, support::strs(expected), "model");
    assert_eq!(m_end, end, "model ending");
    let (r, r_end) = real(&prog);
    assert_eq!(r, m, "bucle");
    assert_eq!(r_end, end, "bucle ending");
}

#[test]
fn fixed_spawn_yield_join() {
    use Op::*;
    fixed(
        vec![
            vec![Spawn(1), Spawn(2), Yield, Join(1)],
            vec![Yield],
            vec![],
        ],
        &[
            "t0 start",
            "t0 op0 spawned",
            "t0 op1 spawned",
            "t1 start",
            "t2 start",
            "t2 end",
            "t0 op2 yielded",
            "t1 op0 yielded",
            "t1 end",
            "t0 op3 ok",
            "t0 end",
        ],
        Ending::Completed,
    );
}

#[test]
fn fixed_cancel_a_joiner_cancels_the_joined_task_first() {
    use Op::*;
    fixed(
        vec![
            vec![Spawn(1), Spawn(2), Yield, Cancel(1), Yield, Yield],
            vec![Join(2)],
            vec![Sleep(3)],
        ],
        &[
            "t0 start",
            "t0 op0 spawned",
            "t0 op1 spawned",
            "t1 start",
            "t2 start",
            "t0 op2 yielded",
            "t0 op3 true",
            "t2 unwound",
            "t0 op4 yielded",
            "t1 unwound",
            "t0 op5 yielded",
            "t0 end",
        ],
        Ending::Completed,
    );
}

#[test]
fn fixed_cancelled_waiter_cancels_the_future_for_everyone() {
    use Op::*;
    fixed(
        vec![
            vec![Spawn(1), Spawn(2), Yield, Cancel(1), Wait(0)],
            vec![Wait(0)],
            vec![Wait(0)],
        ],
        &[
            "t0 start",
            "t0 op0 spawned",
            "t0 op1 spawned",
            "t1 start",
            "t2 start",
            "t0 op2 yielded",
            "t0 op3 true",
            "t0 op4 cancelled",
            "t0 end",
            "t1 unwound",
            "t2 op0 cancelled",
            "t2 end",
        ],
        Ending::Completed,
    );
}

#[test]
fn fixed_cancel_before_start_and_deadlock() {
    use Op::*;
    fixed(
        vec![vec![Spawn(1), Cancel(1), Join(1), Wait(1)], vec![Set(1)]],
        &[
            "t0 start",
            "t0 op0 spawned",
            "t0 op1 true",
            "t0 op2 cancelled",
            // main waits on future 1; only t1 (cancelled, never ran) would
            // have set it.
        ],
        Ending::Deadlock,
    );
}

#[test]
fn fixed_sleepers_and_stop_one_tick_after_main() {
    use Op::*;
    fixed(
        vec![vec![Spawn(1), Sleep(1)], vec![Sleep(1), Yield, Yield]],
        &[
            "t0 start",
            "t0 op0 spawned",
            "t1 start",
            // time jumps to 1 ms: both timers' wake entries run, then (next
            // tick) both tasks, in timer order
            "t0 op1 slept",
            "t0 end",
            "t1 op0 slept",
            // main is done: the loop runs one more tick, then stops
            "t1 op1 yielded",
        ],
        Ending::Completed,
    );
}

/// While anything is ready the virtual clock stands still: a yielding task
/// delays the sleepers' timers.
#[test]
fn fixed_virtual_time_waits_for_the_ready_queue_to_drain() {
    use Op::*;
    fixed(
        vec![
            vec![Spawn(1), Spawn(2), Sleep(1), Join(2)],
            vec![Yield, Yield],
            vec![Sleep(1)],
        ],
        &[
            "t0 start",
            "t0 op0 spawned",
            "t0 op1 spawned",
            "t1 start",
            "t2 start",
            "t1 op0 yielded",
            "t1 op1 yielded",
            "t1 end",
            "t0 op2 slept",
            "t2 op0 slept",
            "t2 end",
            "t0 op3 ok",
            "t0 end",
        ],
        Ending::Completed,
    );
}

// ---------------------------------------------------------------------------
// Cross-check against CPython (manual, not part of the suite): dumps random
// programs with the model's logs as JSON lines for
// `tests/support/asyncio_replay.py` to replay with asyncio. Run with
// `BUCLE_DUMP=/tmp/programs.jsonl cargo test --test ordering_model -- --ignored`
// then `python3 tests/support/asyncio_replay.py /tmp/programs.jsonl`.

fn op_json(op: Op) -> String {
    match op {
        Op::Spawn(c) => format!("[\"Spawn\",{c}]"),
        Op::Yield => "[\"Yield\"]".into(),
        Op::Sleep(d) => format!("[\"Sleep\",{d}]"),
        Op::Join(j) => format!("[\"Join\",{j}]"),
        Op::Set(f) => format!("[\"Set\",{f}]"),
        Op::SetLater(d, f) => format!("[\"SetLater\",{d},{f}]"),
        Op::Wait(f) => format!("[\"Wait\",{f}]"),
        Op::Cancel(j) => format!("[\"Cancel\",{j}]"),
        Op::Finish => "[\"Finish\"]".into(),
        Op::Panic => "[\"Panic\"]".into(),
    }
}

#[test]
#[ignore = "manual cross-check against CPython; needs BUCLE_DUMP"]
fn dump_programs_for_cpython() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let Ok(path) = std::env::var("BUCLE_DUMP") else {
        return;
    };
    let mut runner = TestRunner::deterministic();
    let mut out = String::new();
    for _ in 0..2000 {
        let prog = program().new_tree(&mut runner).unwrap().current();
        let (log, end) = model(&prog);
        let scripts: Vec<String> = prog
            .scripts
            .iter()
            .map(|s| {
                format!(
                    "[{}]",
                    s.iter().map(|&o| op_json(o)).collect::<Vec<_>>().join(",")
                )
            })
            .collect();
        let log: Vec<String> = log.iter().map(|e| format!("\"{e}\"")).collect();
        out.push_str(&format!(
            "{{\"scripts\":[{}],\"log\":[{}],\"end\":\"{end:?}\"}}\n",
            scripts.join(","),
            log.join(",")
        ));
    }
    std::fs::write(path, out).unwrap();
}

/// asyncio forwards a cancel to the awaited task and leaves the awaiting one
/// alone: when the awaited task then raises, the awaiting one gets that
/// error and goes on (CPython 3.11 prints "t0 got t1 error" and finishes t0
/// normally for the equivalent program).
#[test]
fn fixed_a_forwarded_cancel_leaves_the_joiner_the_joined_tasks_panic() {
    use Op::*;
    fixed(
        vec![
            vec![Spawn(1), Join(1)],
            vec![Spawn(2), Join(2)],
            vec![Cancel(1), Panic],
        ],
        &[
            "t0 start",
            "t0 op0 spawned",
            "t1 start",
            "t1 op0 spawned",
            "t2 start",
            "t2 op0 true",
            "t2 op1 panic",
            "t2 unwound",
            "t1 op1 panicked",
            "t1 end",
            "t0 op1 ok",
            "t0 end",
        ],
        Ending::Completed,
    );
}

/// The same, but the joined task ends cancelled: the forwarded cancel then
/// unwinds the joiner too.
#[test]
fn fixed_a_forwarded_cancel_unwinds_the_joiner_when_the_joined_task_is_cancelled() {
    use Op::*;
    fixed(
        vec![
            vec![Spawn(1), Join(1)],
            vec![Spawn(2), Join(2)],
            vec![Cancel(1), Yield],
        ],
        &[
            "t0 start",
            "t0 op0 spawned",
            "t1 start",
            "t1 op0 spawned",
            "t2 start",
            "t2 op0 true",
            "t2 unwound",
            "t1 unwound",
            "t0 op1 cancelled",
            "t0 end",
        ],
        Ending::Completed,
    );
}
