//! Scale: 10 000 concurrent idle TCP connections on one loop, one task
//! each. The clients live in a child process (this test binary, re-run with
//! an environment variable), so each side stays under `ulimit -n`. The test
//! reports the RSS per connection and checks that once the clients close,
//! every task ends and the descriptors and the stack pool are back where
//! they started.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bucle::net::TcpListener;

const CONNECTIONS: usize = 10_000;
const CHILD_ENV: &str = "BUCLE_IO_SCALE_CLIENTS";

/// Raises the soft descriptor limit to what this test needs (at most the
/// hard limit); returns whether it is enough.
fn raise_fd_limit(needed: u64) -> bool {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a live rlimit the call fills in.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return false;
    }
    if lim.rlim_cur >= needed {
        return true;
    }
    if lim.rlim_max < needed {
        return false;
    }
    lim.rlim_cur = needed;
    // SAFETY: `lim` is a valid rlimit within the hard limit.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

fn rss_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The child: opens the connections one by one (blocking std sockets),
/// says so on stdout, and holds them until its stdin closes.
fn run_clients(spec: &str) {
    let (port, count) = spec.split_once(':').expect("PORT:COUNT");
    let port: u16 = port.parse().unwrap();
    let count: usize = count.parse().unwrap();
    let mut conns = Vec::with_capacity(count);
    for _ in 0..count {
        conns.push(std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect"));
    }
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    drop(conns);
}

#[test]
fn ten_thousand_idle_connections_on_one_loop() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        run_clients(&spec);
        return;
    }
    if !raise_fd_limit(CONNECTIONS as u64 + 512) {
        eprintln!(
            "note: RLIMIT_NOFILE's hard limit is too low for {CONNECTIONS} connections; skipped"
        );
        return;
    }
    let fds_before = open_fds();
    let stacks_before = bucle::stack_pool_stats().in_use;
    let lp = bucle::EventLoop::builder().stack_size(64 * 1024).build();
    let (rss_per_conn, elapsed) = lp.run_until_complete(move || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "ten_thousand_idle_connections_on_one_loop",
                "--nocapture",
            ])
            .env(CHILD_ENV, format!("{port}:{CONNECTIONS}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start the client process");
        let started = Instant::now();
        let rss_before = rss_kib();
        let mut tasks = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            let (conn, _) = listener.accept().expect("accept");
            tasks.push(bucle::spawn(move || {
                // Idle until the client goes: then read returns 0.
                let mut buf = [0u8; 64];
                while conn.read(&mut buf).expect("read") > 0 {}
            }));
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "accepting took too long"
            );
        }
        // Let every connection task park in its read.
        bucle::yield_now();
        bucle::yield_now();
        let rss_per_conn = (rss_kib().saturating_sub(rss_before)) as f64 / CONNECTIONS as f64;
        let elapsed = started.elapsed();
        // The client has them all: closing its stdin closes its side.
        drop(child.stdin.take());
        bucle::gather(tasks).expect("every connection task ends cleanly");
        bucle::to_thread(move || child.wait()).expect("the client process exits");
        (rss_per_conn, elapsed)
    });
    lp.close();
    eprintln!(
        "{CONNECTIONS} idle connections accepted in {elapsed:?}; RSS per connection: {rss_per_conn:.1} KiB"
    );
    assert!(
        rss_per_conn < 32.0,
        "an idle connection costs {rss_per_conn:.1} KiB of RSS"
    );
    drop(lp);
    assert_eq!(bucle::stack_pool_stats().in_use, stacks_before);
    // A worker thread may hold the loop's poller (through the remote handle
    // its job used) a moment after the job's result came back.
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_fds() != fds_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(open_fds(), fds_before, "descriptors leaked");
}
