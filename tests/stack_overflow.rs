//! A task or generator that runs off its stack ends the process with a
//! message naming the size it exceeded and how to raise it (then aborts,
//! as Rust does for a thread), where it used to die of a bare `SIGSEGV`.
//! Other faults, and overflows of ordinary thread stacks, end as before.
//!
//! Each case crashes, so it runs in a child process: this test binary run
//! again with `BUCLE_OVERFLOW_CASE` set, filtered to the `child` test.
#![cfg(target_os = "linux")]

use std::hint::black_box;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const CASE: &str = "BUCLE_OVERFLOW_CASE";

/// How a child process ended.
struct Ended {
    /// The signal that killed it, if one did.
    signal: Option<i32>,
    /// Its exit code, if it exited.
    code: Option<i32>,
    stderr: String,
}

/// Runs `case` in a child process and returns how it ended. A child still
/// running after a minute (a handler called in a loop, say) is killed and
/// the test fails.
fn run_case(case: &str) -> Ended {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CASE, case)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the test binary runs again");
    let mut pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "case {case} still ran after a minute: {}",
                reader.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ended {
        signal: status.signal(),
        code: status.code(),
        stderr: reader.join().unwrap(),
    }
}

/// Runs `case`, which must end by a signal; returns it and the stderr.
fn crash(case: &str) -> (Option<i32>, String) {
    let ended = run_case(case);
    (ended.signal, ended.stderr)
}

/// Runs `case`, which must exit cleanly; returns its stderr.
fn survive(case: &str) -> String {
    let ended = run_case(case);
    assert_eq!(ended.code, Some(0), "{}", ended.stderr);
    ended.stderr
}

/// Runs a loop, so that bucle has mapped a stack and installed its handler.
fn use_bucle() {
    bucle::run(|| bucle::spawn(|| 1).join().unwrap());
}

/// Sets `sig`'s action to `handler` with `flags`.
fn set_action(sig: libc::c_int, handler: libc::sighandler_t, flags: libc::c_int) {
    // SAFETY: an all-zero `sigaction` is valid; the handler is either
    // SIG_DFL/SIG_IGN or a one-argument `extern "C"` function (no
    // `SA_SIGINFO`).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler;
        action.sa_flags = flags;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(libc::sigaction(sig, &action, std::ptr::null_mut()), 0);
    }
}

/// `sig`'s current action.
fn action_of(sig: libc::c_int) -> libc::sigaction {
    // SAFETY: reads the current action into a valid, zeroed struct.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(sig, std::ptr::null(), &mut action), 0);
        action
    }
}

/// A program's own one-shot crash handler: reports, and returns so that
/// the fault repeats and meets the default action.
extern "C" fn one_shot(_sig: libc::c_int) {
    let msg = b"the program's own handler ran\n";
    // SAFETY: `write` is async-signal-safe; `msg` is valid for its length.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
}

/// A program's own handler for faults it expects and can recover from (a
/// JIT's or a GC's write barrier, say): it makes the faulting page
/// writable again, and the faulting write then reruns and succeeds.
extern "C" fn make_writable(
    _sig: libc::c_int,
    info: *mut libc::siginfo_t,
    _ctx: *mut libc::c_void,
) {
    // SAFETY: the kernel hands an `SA_SIGINFO` handler a valid `siginfo_t`,
    // whose `si_addr` for a `SIGSEGV` fault is the faulting address; the
    // page holding it is one of the pages `fault_until` mapped, and
    // `mprotect` is async-signal-safe.
    unsafe {
        let page = (*info).si_addr() as usize & !4095;
        libc::mprotect(
            page as *mut libc::c_void,
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
        );
    }
}

/// Takes a recoverable fault (see [`make_writable`]) over and over, on a
/// page of its own, counting them in `faults`, until `stop` is set.
fn fault_until(stop: &AtomicBool, faults: &AtomicUsize) {
    // SAFETY: a fresh private anonymous page, used only by this thread;
    // making it read-only and writing to it faults, and `make_writable`
    // undoes the protection before the write reruns.
    unsafe {
        let page = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(page, libc::MAP_FAILED);
        while !stop.load(Ordering::Relaxed) {
            libc::mprotect(page, 4096, libc::PROT_READ);
            page.cast::<u64>().write_volatile(black_box(1));
            faults.fetch_add(1, Ordering::Relaxed);
        }
        libc::munmap(page, 4096);
    }
}

/// One run of the install race, in a fresh (forked) process where bucle
/// has mapped no stack yet: two threads take recoverable faults while this
/// one maps the process's first stack, which installs bucle's handler. A
/// fault that meets the handler before it knows the program's handler
/// must still reach that handler; the old code reset `SIGSEGV` to the
/// default instead, and the process died. Returns the exit code.
fn install_race_once() -> i32 {
    // SAFETY: installs `make_writable`, a three-argument handler, as
    // `SA_SIGINFO` asks.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = make_writable as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGSEGV, &action, std::ptr::null_mut()),
            0
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let faults = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (stop, faults) = (stop.clone(), faults.clone());
            std::thread::spawn(move || fault_until(&stop, &faults))
        })
        .collect();
    while faults.load(Ordering::Relaxed) < 20 {
        std::hint::spin_loop();
    }
    let mut g = bucle::Generator::new(|y: &bucle::Yielder<u32>, ()| y.yield_(7));
    let yielded = g.resume(()).yielded();
    // Faults after the install go through bucle's handler to the
    // program's, as before.
    let seen = faults.load(Ordering::Relaxed);
    while faults.load(Ordering::Relaxed) < seen + 20 {
        std::hint::spin_loop();
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    if yielded == Some(7) { 0 } else { 1 }
}

/// Makes every later `mprotect(.., PROT_NONE)` of the calling thread fail
/// with `ENOMEM`, as it does when the process is out of memory mappings
/// (making one page of a mapping a guard splits it in two). A seccomp
/// filter: it applies to this thread only. Returns whether it took.
fn refuse_guard_pages_on_this_thread() -> bool {
    const ARG2: u32 = 16 + 2 * 8 + if cfg!(target_endian = "big") { 4 } else { 0 };
    // SAFETY: `BPF_STMT`/`BPF_JUMP` only build instructions; the filter
    // is a valid classic-BPF program (every path returns) that reads the
    // syscall number and the low word of the third argument of
    // `seccomp_data`, and `PR_SET_NO_NEW_PRIVS`, which an unprivileged
    // filter requires, only affects this process's later `execve`s.
    unsafe {
        let mut filter = [
            libc::BPF_STMT((libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16, 0),
            libc::BPF_JUMP(
                (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
                libc::SYS_mprotect as u32,
                0,
                3,
            ),
            libc::BPF_STMT((libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16, ARG2),
            libc::BPF_JUMP(
                (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
                libc::PROT_NONE as u32,
                0,
                1,
            ),
            libc::BPF_STMT(
                (libc::BPF_RET | libc::BPF_K) as u16,
                libc::SECCOMP_RET_ERRNO | libc::ENOMEM as u32,
            ),
            libc::BPF_STMT(
                (libc::BPF_RET | libc::BPF_K) as u16,
                libc::SECCOMP_RET_ALLOW,
            ),
        ];
        let program = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_mut_ptr(),
        };
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
            && libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &program as *const libc::sock_fprog,
            ) == 0
    }
}

/// Describes the calling thread's alternate signal stack: "none", or
/// whether the page below it is a guard (`PROT_NONE`).
fn signal_stack_guard() -> String {
    // SAFETY: a null new stack only reads the current one into a valid,
    // zeroed `stack_t`.
    let current = unsafe {
        let mut current: libc::stack_t = std::mem::zeroed();
        assert_eq!(libc::sigaltstack(std::ptr::null(), &mut current), 0);
        current
    };
    if current.ss_flags & libc::SS_DISABLE != 0 {
        return "none".to_string();
    }
    let below = current.ss_sp as usize - 1;
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let perms = maps
        .lines()
        .find_map(|line| {
            let (range, rest) = line.split_once(' ')?;
            let (lo, hi) = range.split_once('-')?;
            let (lo, hi) = (
                usize::from_str_radix(lo, 16).ok()?,
                usize::from_str_radix(hi, 16).ok()?,
            );
            (lo <= below && below < hi).then(|| rest[..4].to_string())
        })
        .unwrap_or_else(|| "unmapped".to_string());
    format!("guarded: {}", perms == "---p" || perms == "unmapped")
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
            use_bucle();
            let t = std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(|| deep(0))
                .unwrap();
            let _ = t.join();
        }
        "one_shot" => {
            set_action(
                libc::SIGSEGV,
                one_shot as *const () as usize,
                libc::SA_RESETHAND,
            );
            use_bucle();
            // SAFETY: none; a fault on purpose, in a process that exists to
            // crash.
            unsafe { std::ptr::null_mut::<u64>().write_volatile(black_box(1)) };
        }
        "raise_default" => {
            set_action(libc::SIGSEGV, libc::SIG_DFL, 0);
            use_bucle();
            // SAFETY: sends this process a signal whose action is default.
            unsafe { libc::raise(libc::SIGSEGV) };
        }
        "ignored" => {
            set_action(libc::SIGBUS, libc::SIG_IGN, 0);
            use_bucle();
            eprintln!(
                "SIGBUS ignored: {}",
                action_of(libc::SIGBUS).sa_sigaction == libc::SIG_IGN
            );
            std::process::exit(0);
        }
        "nodefer" => {
            set_action(
                libc::SIGSEGV,
                one_shot as *const () as usize,
                libc::SA_NODEFER,
            );
            use_bucle();
            let now = action_of(libc::SIGSEGV);
            eprintln!(
                "replaced: {}, nodefer: {}",
                now.sa_sigaction != one_shot as *const () as usize,
                now.sa_flags & libc::SA_NODEFER != 0
            );
            std::process::exit(0);
        }
        "install_race" => {
            // Each run needs a process in which bucle has not installed
            // its handler yet, so each is a fork of this one (which maps no
            // stack itself). Bounded in runs and in time.
            let start = Instant::now();
            let (mut runs, mut failed, mut first) = (0, 0, None);
            while runs < 400 && start.elapsed() < Duration::from_millis(1500) {
                runs += 1;
                // SAFETY: the child runs `install_race_once`, and ends
                // with `_exit` without returning into the test harness;
                // this process only waits for it.
                let status = unsafe {
                    match libc::fork() {
                        -1 => panic!("fork: {}", std::io::Error::last_os_error()),
                        0 => libc::_exit(install_race_once()),
                        pid => {
                            let mut status = 0;
                            assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
                            status
                        }
                    }
                };
                if status != 0 {
                    failed += 1;
                    first.get_or_insert(status);
                }
            }
            eprintln!("install race: {runs} runs, {failed} failed (first wait status: {first:?})");
            std::process::exit(0);
        }
        "restart" => {
            set_action(
                libc::SIGSEGV,
                one_shot as *const () as usize,
                libc::SA_RESTART,
            );
            use_bucle();
            let now = action_of(libc::SIGSEGV);
            eprintln!(
                "replaced: {}, restart: {}, siginfo: {}, onstack: {}",
                now.sa_sigaction != one_shot as *const () as usize,
                now.sa_flags & libc::SA_RESTART != 0,
                now.sa_flags & libc::SA_SIGINFO != 0,
                now.sa_flags & libc::SA_ONSTACK != 0
            );
            std::process::exit(0);
        }
        "alt_stack_guard_refused" => {
            // Threads with no signal stack, as threads started by C code
            // may be; on the second, the guard page of the signal stack
            // bucle gives it cannot be made.
            for refuse in [false, true] {
                let report = std::thread::spawn(move || {
                    let off = libc::stack_t {
                        ss_sp: std::ptr::null_mut(),
                        ss_flags: libc::SS_DISABLE,
                        ss_size: 0,
                    };
                    // SAFETY: only unsets this thread's signal stack.
                    assert_eq!(unsafe { libc::sigaltstack(&off, std::ptr::null_mut()) }, 0);
                    if refuse && !refuse_guard_pages_on_this_thread() {
                        return "seccomp unavailable".to_string();
                    }
                    let mut g = bucle::Generator::new(|y: &bucle::Yielder<u32>, ()| y.yield_(7));
                    assert_eq!(g.resume(()).yielded(), Some(7));
                    signal_stack_guard()
                })
                .join()
                .unwrap();
                eprintln!("refused: {refuse}, signal stack: {report}");
            }
            std::process::exit(0);
        }
        "null" => {
            use_bucle();
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

/// A program's one-shot (`SA_RESETHAND`) handler installed before bucle's
/// runs once, as the kernel would have run it, and the repeated fault then
/// meets the default action (it used to call the handler forever).
#[test]
fn a_one_shot_handler_from_before_runs_once() {
    let (signal, stderr) = crash("one_shot");
    assert_eq!(signal, Some(libc::SIGSEGV), "{stderr}");
    assert_eq!(
        stderr.matches("the program's own handler ran").count(),
        1,
        "{stderr}"
    );
}

/// A `SIGSEGV` sent with `raise` (not a fault: it does not repeat by
/// itself) still kills when the previous action was the default.
#[test]
fn a_sent_signal_with_the_default_action_still_kills() {
    let (signal, stderr) = crash("raise_default");
    assert_eq!(signal, Some(libc::SIGSEGV), "{stderr}");
}

/// bucle does not install its handler over an ignored signal.
#[test]
fn an_ignored_signal_stays_ignored() {
    let stderr = survive("ignored");
    assert!(stderr.contains("SIGBUS ignored: true"), "{stderr}");
}

/// bucle's handler takes over the previous handler's `SA_NODEFER`, which a
/// handler that jumps out of itself relies on.
#[test]
fn the_previous_handlers_nodefer_is_kept() {
    let stderr = survive("nodefer");
    assert!(stderr.contains("replaced: true, nodefer: true"), "{stderr}");
}

/// bucle's handler takes over the previous handler's `SA_RESTART`: system
/// calls its signal interrupts restart as they did before (the old code
/// dropped every flag but `SA_NODEFER`, so they failed with `EINTR`).
#[test]
fn the_previous_handlers_restart_flag_is_kept() {
    let stderr = survive("restart");
    assert!(
        stderr.contains("replaced: true, restart: true, siginfo: true, onstack: true"),
        "{stderr}"
    );
}

/// A signal stack bucle gives a thread always has a guard page below it:
/// where the guard cannot be made (`mprotect` refused), the thread gets
/// none rather than an unguarded one (the old code ignored the refusal).
#[test]
fn a_signal_stack_whose_guard_is_refused_is_not_installed() {
    let stderr = survive("alt_stack_guard_refused");
    assert!(
        stderr.contains("refused: false, signal stack: guarded: true"),
        "{stderr}"
    );
    if stderr.contains("refused: true, signal stack: seccomp unavailable") {
        eprintln!("skipped the refused case: no seccomp filters here");
        return;
    }
    assert!(
        stderr.contains("refused: true, signal stack: none"),
        "{stderr}"
    );
}

/// The handler is installed while other threads take faults that the
/// program's own handler recovers from: none of them may find bucle's
/// handler without the program's behind it (the old code installed its
/// handler first and recorded the previous one after, and a fault in
/// between reset `SIGSEGV` to the default, killing the process). A race,
/// so it is tried a few hundred times, each in a fresh process.
#[test]
fn faults_during_the_handler_install_reach_the_previous_handler() {
    let stderr = survive("install_race");
    assert!(stderr.contains(" 0 failed"), "{stderr}");
}
