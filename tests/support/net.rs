//! Helpers for the stage 5 socket tests (`tests/io_*.rs`): real-clock
//! loops, a temporary directory that removes itself, counting open file
//! descriptors, and re-running one test in a child process.
#![allow(dead_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// `n` milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Runs `main` on a fresh loop with the real clock (I/O tests), and closes
/// the loop.
pub fn run<T: 'static>(main: impl FnOnce() -> T + 'static) -> T {
    let lp = bucle::EventLoop::new();
    let out = lp.run_until_complete(main);
    lp.close();
    out
}

/// A directory under the system's temp dir, removed (with its contents)
/// on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("bucle-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create the temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Number of open file descriptors of this process (entries of
/// `/proc/self/fd`, minus the one `read_dir` itself holds).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
        - 1
}

/// Sets `SO_LINGER` to {on, 0 s}: closing the socket then sends a reset
/// instead of a FIN.
pub fn linger_zero(sock: &impl AsRawFd) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `l` is a live `linger` and its size is passed with it; the
    // descriptor is open for the borrow of `sock`.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            std::ptr::from_ref(&l).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(
        r,
        0,
        "setsockopt(SO_LINGER): {}",
        std::io::Error::last_os_error()
    );
}

/// The environment variable that tells a re-executed test binary it is the
/// child of [`in_child`].
pub const CHILD_ENV: &str = "BUCLE_TEST_CHILD";

/// Whether this process is the child [`in_child`] started for `test`.
pub fn is_child(test: &str) -> bool {
    std::env::var(CHILD_ENV).is_ok_and(|v| v == test)
}

/// Re-runs the test function `test` (its path within the test binary,
/// e.g. `accept_emfile`) alone in a child process, with [`CHILD_ENV`] set
/// to its name; panics if the child fails or takes longer than `limit`
/// (it is then killed). The test checks [`is_child`] to do the work in
/// the child only.
pub fn in_child(test: &str, limit: Duration) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, test)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("re-run the test binary");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            let out = child.wait_with_output().expect("the child's output");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                status.success(),
                "child for {test} failed ({status}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
            );
            assert!(
                stdout.contains("1 passed"),
                "child for {test} ran no test:\n{stdout}"
            );
            return;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child for {test} took longer than {limit:?} and was killed");
        }
        std::thread::sleep(ms(10));
    }
}

/// Every descriptor this process may open, taken: while it lives, opening
/// one more fails with `EMFILE`. Lowers the soft `RLIMIT_NOFILE` to just
/// above the highest open descriptor and fills the holes below it with
/// duplicates of stdin; dropping it closes them and restores the limit.
/// For a child process ([`in_child`]): the limit is the process's.
pub struct NoDescriptors {
    fillers: Vec<OwnedFd>,
    old: libc::rlimit,
}

impl NoDescriptors {
    pub fn take() -> NoDescriptors {
        let mut old = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `old` is a live rlimit the call fills in.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut old) }, 0);
        let highest = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
            .max()
            .unwrap();
        let low = libc::rlimit {
            rlim_cur: highest + 1,
            rlim_max: old.rlim_max,
        };
        // SAFETY: `low` is a live rlimit; lowering the soft limit only.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &low) }, 0);
        let mut fillers = Vec::new();
        loop {
            // SAFETY: dup of stdin's descriptor (open in a test process);
            // a non-negative result is a new descriptor we own.
            let fd = unsafe { libc::dup(0) };
            if fd < 0 {
                assert_eq!(
                    std::io::Error::last_os_error().raw_os_error(),
                    Some(libc::EMFILE)
                );
                break;
            }
            // SAFETY: a fresh descriptor nothing else owns.
            fillers.push(unsafe { OwnedFd::from_raw_fd(fd) });
            assert!(fillers.len() < 100_000);
        }
        NoDescriptors { fillers, old }
    }
}

impl Drop for NoDescriptors {
    fn drop(&mut self) {
        self.fillers.clear();
        // SAFETY: `old` is the limit read when it was taken.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &self.old) };
    }
}
