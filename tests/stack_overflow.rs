//! A task or generator that runs off its stack ends the process with a
//! message naming the size it exceeded and how to raise it (then aborts,
//! as Rust does for a thread), where it used to die of a bare `SIGSEGV`.
//! Other faults, and overflows of ordinary thread stacks, end as before.
//!
//! Each case crashes, so it runs in a child process: this test binary run
//! again with `BUCLE_OVERFLOW_CASE` set, filtered to the `child` test.
#![cfg(target_os = "linux")]

use std::hint::black_box;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};

const CASE: &str = "BUCLE_OVERFLOW_CASE";

/// Runs `case` in a child process and returns what it left behind.
fn crash(case: &str) -> (Option<i32>, String) {
    let Output { status, stderr, .. } = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CASE, case)
        .output()
        .expect("the test binary runs again");
    (
        status.signal(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// Recursion that no optimiser can turn into a loop: each frame keeps a
/// buffer alive across the call.
fn deep(n: u64) -> u64 {
    let frame = black_box([n; 32]);
    if black_box(n) == u64::MAX {
        return 0;
    }
    deep(n + 1).wrapping_add(frame[7])
}

/// The crashing side: does nothing unless run by [`crash`].
#[test]
fn child() {
    let Ok(case) = std::env::var(CASE) else {
        return;
    };
    // No core file for a crash that is the point of the test.
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: sets this (child) process's own core-size limit.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &none) };
    match case.as_str() {
        "task" => bucle::run(|| {
            let t = bucle::TaskBuilder::new()
                .stack_size(20 * 1024)
                .spawn(|| deep(0));
            let _ = t.join();
        }),
        "generator" => {
            let mut g = bucle::Generator::with_stack_size(
                64 * 1024 + 100,
                |y: &bucle::Yielder<u64>, ()| y.yield_(deep(0)),
            );
            let _ = g.resume(());
        }
        "no_signal_stack" => {
            // A thread with no alternate signal stack, as a thread started
            // by C code may be: bucle must give it one, or its handler
            // could not run on the overflowed stack.
            std::thread::spawn(|| {
                let off = libc::stack_t {
                    ss_sp: std::ptr::null_mut(),
                    ss_flags: libc::SS_DISABLE,
                    ss_size: 0,
                };
                // SAFETY: only unsets this thread's signal stack.
                assert_eq!(unsafe { libc::sigaltstack(&off, std::ptr::null_mut()) }, 0);
                bucle::run(|| bucle::TaskBuilder::new().spawn(|| deep(0)).join())
            })
            .join()
            .unwrap()
            .unwrap();
        }
        "thread" => {
            // A loop has run, so bucle's handler is installed; the
            // thread's own overflow must still get Rust's message.
            bucle::run(|| bucle::spawn(|| 1).join().unwrap());
            let t = std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(|| deep(0))
                .unwrap();
            let _ = t.join();
        }
        "null" => {
            bucle::run(|| bucle::spawn(|| 1).join().unwrap());
            // SAFETY: not safe at all: the point is a fault that is not an
            // overflow, in a process that exists to crash.
            unsafe { std::ptr::null_mut::<u64>().write_volatile(black_box(1)) };
        }
        other => panic!("unknown case {other}"),
    }
    unreachable!("case {case} should have crashed the process");
}

/// Runs `case`, which must overflow a bucle stack of `kib` KiB: the child
/// aborts after bucle's report. Returns its stderr.
fn bucle_overflow(case: &str, kib: usize) -> String {
    let (signal, stderr) = crash(case);
    assert_eq!(signal, Some(libc::SIGABRT), "{stderr}");
    let line = format!("bucle: a task or generator has overflowed its stack of {kib} KiB");
    assert!(stderr.contains(&line), "{stderr}");
    stderr
}

#[test]
fn a_task_overflow_names_its_stack_size_and_the_fix() {
    let stderr = bucle_overflow("task", 20);
    assert!(stderr.contains("TaskBuilder::stack_size"), "{stderr}");
    assert!(stderr.contains("Builder::stack_size"), "{stderr}");
}

#[test]
fn a_generator_overflow_is_reported_too() {
    // 64 KiB + 100 bytes is rounded up to whole pages: 68 KiB.
    let stderr = bucle_overflow("generator", 68);
    assert!(stderr.contains("Generator::with_stack_size"), "{stderr}");
}

#[test]
fn a_thread_without_a_signal_stack_is_given_one() {
    bucle_overflow("no_signal_stack", 256);
}

/// Not bucle's stack: Rust's report, with nothing of bucle's.
#[test]
fn a_thread_overflow_still_gets_rusts_own_message() {
    let (signal, stderr) = crash("thread");
    assert_eq!(signal, Some(libc::SIGABRT), "{stderr}");
    assert!(stderr.contains("has overflowed its stack"), "{stderr}");
    assert!(!stderr.contains("bucle:"), "{stderr}");
}

/// Not an overflow at all: the plain fault, with no report.
#[test]
fn other_faults_end_the_process_as_before() {
    let (signal, stderr) = crash("null");
    assert_eq!(signal, Some(libc::SIGSEGV), "{stderr}");
    assert!(!stderr.contains("overflowed"), "{stderr}");
}
