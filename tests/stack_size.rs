//! Stack sizes at the edges: absurd requests (`usize::MAX`, a negative
//! number cast, anything past `MAX_STACK_SIZE`) are refused with an
//! `InvalidInput` error that names the size and the limit on every `try_`
//! path, and with a panic that says the same on the others, in debug and
//! release builds alike. Tiny ones (0) are rounded up to `MIN_STACK_SIZE`.
//!
//! The old code multiplied without a check while rounding: a debug build
//! panicked with "attempt to multiply with overflow", a release build
//! wrapped `usize::MAX` to a 0-byte request (a 4 KiB stack, below the
//! minimum, that the task then overflowed), and `usize::MAX - 4095`
//! panicked inside corosensei.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};

use bucle::{
    EventLoop, Generator, JoinError, MAX_STACK_SIZE, MIN_STACK_SIZE, TaskBuilder, Yielder,
};

/// Sizes past the limit, each with the reason it is interesting.
const ABSURD: [usize; 5] = [
    usize::MAX,        // wrapped to 0 by the old rounding in release builds
    usize::MAX - 4095, // rounded fine, then overflowed inside corosensei
    isize::MAX as usize,
    usize::MAX / 2 + 1, // a negative `isize` cast to `usize`
    MAX_STACK_SIZE + 1,
];

/// Checks that `e` is the refusal of a stack of `size` bytes.
fn assert_refused(e: &io::Error, size: usize) {
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&format!("{size} bytes")), "{msg}");
    assert!(msg.contains(&MAX_STACK_SIZE.to_string()), "{msg}");
    assert!(msg.contains("MAX_STACK_SIZE"), "{msg}");
}

/// The message of the panic `f` raises.
fn panic_of<T>(f: impl FnOnce() -> T) -> String {
    let payload = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(_) => panic!("expected a panic"),
        Err(payload) => payload,
    };
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        payload.downcast_ref::<&str>().unwrap().to_string()
    }
}

#[test]
fn the_limit_is_one_tib_on_64_bit_targets() {
    if usize::BITS == 64 {
        assert_eq!(MAX_STACK_SIZE as u64, 1 << 40);
    }
    assert_eq!(MAX_STACK_SIZE % 4096, 0);
    assert!(MAX_STACK_SIZE <= isize::MAX as usize);
}

#[test]
fn try_with_stack_size_refuses_absurd_sizes() {
    for size in ABSURD {
        let e = Generator::try_with_stack_size(size, |_: &Yielder<u8>, ()| 1u8)
            .expect_err("an absurd size is refused");
        assert_refused(&e, size);
    }
}

#[test]
fn with_stack_size_panics_naming_the_size_and_the_limit() {
    for size in ABSURD {
        let msg = panic_of(|| Generator::with_stack_size(size, |_: &Yielder<u8>, ()| 1u8));
        assert!(msg.contains(&format!("{size} bytes")), "{msg}");
        assert!(msg.contains("MAX_STACK_SIZE"), "{msg}");
    }
}

#[test]
fn a_size_of_zero_is_rounded_up_to_the_minimum() {
    let mut g = Generator::try_with_stack_size(0, |y: &Yielder<u32>, ()| {
        y.yield_(1);
        2u32
    })
    .expect("0 is rounded up, not refused");
    assert!(
        format!("{g:?}").contains(&format!("stack_size: {MIN_STACK_SIZE}")),
        "{g:?}"
    );
    assert_eq!(g.resume(()).yielded(), Some(1));
    assert_eq!(g.resume(()).complete(), Some(2));

    let got = bucle::run(|| TaskBuilder::new().stack_size(0).spawn(|| 6 * 7).join());
    assert_eq!(got, Ok(42));
}

/// The largest size accepted passes the size check; whether the OS then
/// grants a terabyte depends on the machine (overcommit), but a refusal
/// must not blame the count of mappings, which is not the cause.
#[test]
fn the_largest_size_is_tried_and_a_refusal_blames_the_size() {
    match Generator::try_with_stack_size(MAX_STACK_SIZE, |y: &Yielder<u8>, ()| y.yield_(5)) {
        Ok(mut g) => assert_eq!(g.resume(()).yielded(), Some(5)),
        Err(e) => {
            assert_ne!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
            let msg = e.to_string();
            assert!(!msg.contains("smaller stacks do not help"), "{msg}");
            assert!(msg.contains("smaller stack"), "{msg}");
        }
    }
}

#[test]
fn try_spawn_refuses_an_absurd_task_stack_size() {
    bucle::run(|| {
        for size in ABSURD {
            let e = TaskBuilder::new()
                .stack_size(size)
                .try_spawn(|| 1)
                .expect_err("an absurd size is refused");
            assert_refused(&e, size);
        }
        // The loop carries on.
        assert_eq!(bucle::spawn(|| 2).join(), Ok(2));
    });
}

#[test]
fn spawn_panics_naming_the_size_and_the_limit() {
    let joined = bucle::run(|| {
        bucle::spawn(|| TaskBuilder::new().stack_size(usize::MAX).spawn(|| 1)).join()
    });
    let Err(JoinError::Panicked(msg)) = joined else {
        panic!("expected the spawning task to panic, got {joined:?}");
    };
    assert!(msg.contains(&format!("{} bytes", usize::MAX)), "{msg}");
    assert!(msg.contains("MAX_STACK_SIZE"), "{msg}");
}

#[test]
fn a_loop_with_an_absurd_stack_size_refuses_its_tasks() {
    for size in ABSURD {
        let lp = EventLoop::builder().stack_size(size).build();
        let e = lp.try_spawn(|| 1).expect_err("an absurd size is refused");
        assert_refused(&e, size);
        let msg = panic_of(|| lp.run_until_complete(|| 1));
        assert!(msg.contains(&format!("{size} bytes")), "{msg}");
        assert!(msg.contains("MAX_STACK_SIZE"), "{msg}");
    }
}
