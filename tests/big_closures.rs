//! Bodies of any size: a generator or task whose closure captures more than
//! corosensei copies onto a new stack (1,024 bytes) works, its closure
//! moved to the heap first. The old code panicked inside corosensei ("type
//! is too big to transfer"), from the `try_` constructors and spawns too.

use std::rc::Rc;

use bucle::{EventLoop, Generator, GeneratorState, TaskBuilder, Yielder};

/// An array whose bytes are all different from their neighbours', so a
/// copy that lost or shifted bytes would change the sums below.
fn pattern<const N: usize>() -> [u8; N] {
    std::array::from_fn(|i| (i * 7 + 3) as u8)
}

fn sum(bytes: &[u8]) -> u64 {
    bytes.iter().map(|&b| u64::from(b)).sum()
}

/// A generator whose body captures `N` bytes (and an `Rc`, to count
/// drops): it yields the sum, then returns the last byte.
fn check_generator<const N: usize>() {
    let big = pattern::<N>();
    let expected = (sum(&big), big[N - 1]);
    let witness = Rc::new(());
    let held = witness.clone();
    let mut g = Generator::try_new(move |y: &Yielder<u64>, ()| {
        let _held = held;
        y.yield_(sum(&big));
        big[N - 1]
    })
    .unwrap_or_else(|e| panic!("a body of {N} bytes: {e}"));
    assert_eq!(g.resume(()), GeneratorState::Yielded(expected.0), "N = {N}");
    assert_eq!(
        g.resume(()),
        GeneratorState::Complete(expected.1),
        "N = {N}"
    );
    drop(g);
    assert_eq!(
        Rc::strong_count(&witness),
        1,
        "N = {N}: captures dropped once"
    );
}

#[test]
fn a_generator_body_of_4_kib_runs() {
    check_generator::<4096>();
}

#[test]
fn a_generator_body_of_64_kib_runs() {
    check_generator::<{ 64 * 1024 }>();
}

/// Around the limit, where the inline path hands over to the boxed one.
#[test]
fn generator_bodies_around_the_limit_run() {
    check_generator::<960>();
    check_generator::<990>();
    check_generator::<1000>();
    check_generator::<1008>();
    check_generator::<1009>();
    check_generator::<1016>();
    check_generator::<1017>();
    check_generator::<1024>();
    check_generator::<1025>();
    check_generator::<1100>();
}

/// A body that captures nothing but a zero-sized value aligned to 2 KiB:
/// it is 0 bytes, yet once the generator adds its own 16 bytes the entry
/// closure is padded to 2 KiB, past the limit.
#[test]
fn a_body_with_a_capture_aligned_past_the_limit_runs() {
    #[repr(align(2048))]
    struct Aligned;
    let aligned = Aligned;
    let mut g = Generator::new(move |_: &Yielder<u8>, ()| {
        let a = &aligned;
        (a as *const Aligned as usize % 2048) as u8 + 9
    });
    assert_eq!(g.resume(()), GeneratorState::Complete(9));
}

/// Unstarted, and dropped suspended: the captures are dropped once either
/// way, on the boxed path too.
#[test]
fn a_big_body_is_dropped_once_whether_started_or_not() {
    let witness = Rc::new(());
    let (a, b) = (witness.clone(), witness.clone());
    let big = pattern::<4096>();
    let unstarted = Generator::new(move |_: &Yielder<u8>, ()| {
        let _a = a;
        big[0]
    });
    let mut suspended = Generator::new(move |y: &Yielder<u8>, ()| {
        let _b = b;
        y.yield_(big[1]);
        big[2]
    });
    assert_eq!(suspended.resume(()), GeneratorState::Yielded(big[1]));
    assert_eq!(Rc::strong_count(&witness), 3);
    drop(unstarted);
    drop(suspended);
    assert_eq!(Rc::strong_count(&witness), 1);
}

/// A task whose closure captures `N` bytes returns their sum, through
/// `spawn` and `try_spawn`, spawned from a task on a stack of
/// `spawner_stack` bytes.
fn check_task<const N: usize>(spawner_stack: usize) {
    let big = pattern::<N>();
    let expected = sum(&big);
    let lp = EventLoop::builder().stack_size(spawner_stack).build();
    let got = lp.run_until_complete(move || {
        let a = bucle::spawn(move || sum(&big));
        let b = TaskBuilder::new()
            .name("big")
            .try_spawn(move || sum(&big) + 1)
            .unwrap_or_else(|e| panic!("a task body of {N} bytes: {e}"));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(got, (expected, expected + 1), "N = {N}");
}

#[test]
fn a_task_body_of_4_kib_runs() {
    check_task::<4096>(bucle::DEFAULT_STACK_SIZE);
}

/// In an unoptimised build the spawning task needs a bigger stack than the
/// default: the closure is passed down by value, and each frame on the way
/// to the heap (the test's own, `spawn`'s, `TaskBuilder::spawn`'s, ...)
/// holds a copy of it, 400 to 500 KiB of the spawner's stack in all. An
/// optimised build passes it by reference and fits in the default.
#[test]
fn a_task_body_of_64_kib_runs() {
    let spawner_stack = if cfg!(debug_assertions) {
        1024 * 1024
    } else {
        bucle::DEFAULT_STACK_SIZE
    };
    check_task::<{ 64 * 1024 }>(spawner_stack);
}

/// Around the limit, where the task starts boxing its closure.
#[test]
fn task_bodies_around_the_limit_run() {
    check_task::<960>(bucle::DEFAULT_STACK_SIZE);
    check_task::<1000>(bucle::DEFAULT_STACK_SIZE);
    check_task::<1001>(bucle::DEFAULT_STACK_SIZE);
    check_task::<1008>(bucle::DEFAULT_STACK_SIZE);
    check_task::<1016>(bucle::DEFAULT_STACK_SIZE);
    check_task::<1017>(bucle::DEFAULT_STACK_SIZE);
    check_task::<1024>(bucle::DEFAULT_STACK_SIZE);
    check_task::<1100>(bucle::DEFAULT_STACK_SIZE);
}

/// Spawned from outside the loop, and as the main task.
#[test]
fn a_big_body_can_be_spawned_on_a_loop_and_be_its_main_task() {
    let big = pattern::<8192>();
    let lp = EventLoop::new();
    let t = lp.try_spawn(move || sum(&big)).expect("try_spawn");
    let main = lp.run_until_complete(move || sum(&big) * 2);
    assert_eq!(main, sum(&big) * 2);
    assert_eq!(t.take_result(), Some(Ok(sum(&big))));
}
