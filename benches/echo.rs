//! Stage 5 echo-server benchmarks: a bucle echo server against tokio's
//! `current_thread` runtime, `may` with one worker (the other stackful
//! runtime in Rust), and CPython's asyncio and uvloop servers (a script,
//! `benches/python/echo_server.py`), all driven by the same load generator;
//! and a line-based echo (`echo-lines/*`) of bucle's streams
//! (`start_server`, `readline` / `write` / `drain`) against bucle's socket
//! server, tokio's `BufReader` and asyncio's and uvloop's streams.
//!
//! Run with `cargo bench --bench echo`; results are recorded in
//! `docs/performance.md`. For the uvloop servers, first create the Python
//! environment once with `sh benches/python/setup.sh` (a venv under
//! `target/pyenv` — `$CARGO_TARGET_DIR/pyenv` if that is set — with uvloop
//! from PyPI). The bench uses that venv's `python` when it exists (the
//! target directory is found from the bench executable's own path), else
//! `python3` from `PATH`; `BUCLE_BENCH_PYTHON=/path/to/python` overrides
//! both. Without Python the Python servers are skipped with a note on
//! stderr, and so are the uvloop ones when uvloop does not import. A whole
//! run takes about two and a half minutes: about 100 s for the byte groups
//! (`-- echo/` runs them alone), 40–60 s for the line groups
//! (`-- echo-lines`).
//!
//! Everything talks to 127.0.0.1 only.
//!
//! **Servers.** Each server listens on `127.0.0.1:0` and runs on its own OS
//! thread pinned to CPU 0 (the Python ones in a child process pinned to CPU
//! 0), and each is written the way its users write one:
//! - `bucle`: one loop (`EventLoop::builder().stack_size(64 KiB)`, see
//!   below), an accept loop (`bucle::net::TcpListener::accept`) in the main
//!   task, one task per connection (`bucle::spawn`) that loops
//!   `TcpStream::read` / `write_all` with a 4 KiB buffer on the heap;
//! - `tokio`: a `current_thread` runtime with `enable_all()` (what
//!   `#[tokio::main(flavor = "current_thread")]` builds), the accept loop in
//!   `block_on`, one `tokio::spawn`ed task per connection (not a
//!   `LocalSet`), `read` / `write_all` with a 4 KiB buffer;
//! - `may`: `may::config().set_workers(1)` (one worker thread, which may
//!   pins to the first CPU itself; may also runs a timer thread, idle here),
//!   a `go!` coroutine that loops on `may::net::TcpListener::accept`, and a
//!   `go!` coroutine per connection with `read` / `write_all` and a 4 KiB
//!   buffer, as in may's own `examples/echo.rs`. may's coroutines get its
//!   default stack (0x1000 words, 32 KiB);
//! - `asyncio-streams`, `asyncio-protocol`, `uvloop-protocol`,
//!   `uvloop-streams`: the script's `--kind streams` (`start_server`, a
//!   handler coroutine per connection looping `read` / `write` / `drain`)
//!   and `--kind protocol` (an `asyncio.Protocol` whose `data_received`
//!   writes the data back), on `--loop asyncio` or `uvloop` — the two
//!   servers of uvloop's own echo benchmark.
//!
//! And on the line workload (`echo-lines/*`, below):
//! - `bucle-streams`: one loop with 64 KiB task stacks as above,
//!   `bucle::net::start_server` with a handler that loops
//!   `reader.readline()?` / `writer.write(&line)` / `writer.drain()?` (the
//!   example of `start_server`'s docs); the server's own accept task, one
//!   task per connection, and a flusher task when a write leaves bytes;
//! - `bucle-socket`: the `bucle` server above, unchanged (read what came,
//!   write it back): the reference the streams are held to;
//! - `tokio-bufreader`: the `tokio` server's runtime and accept loop, and
//!   per connection `stream.split()`, a `BufReader` (8 KiB) over the read
//!   half, `read_until(b'\n', &mut line)` into one `Vec` reused for every
//!   line, `write_all(&line)` on the write half;
//! - `asyncio-streams`, `uvloop-streams`: the script's `--kind lines`
//!   (`start_server`, a handler looping `readline` / `write` / `drain`).
//!
//! TCP_NODELAY is on for every accepted connection (bucle, asyncio and
//! uvloop set it on every TCP stream or transport; the tokio and may servers
//! set it explicitly) and on the client's sockets.
//!
//! bucle's task stack: a connection task needs little stack — its 4 KiB
//! buffer is on the heap — so the server's loop gives its tasks 64 KiB
//! (`Builder::stack_size`) instead of the 256 KiB default, as a server with
//! many connections would: chapter 3 (`docs/03-awaitables.md`, "stack size")
//! says only touched pages cost memory but every resume touches the task's
//! own stack page, so with many tasks closer stacks cost fewer page walks.
//! 64 KiB keeps a wide margin for debug builds, std's I/O adapters (an
//! `io::copy` buffer is 8 KiB on the stack) and unwinding. With 50
//! connections the choice is within noise; it matters at thousands.
//!
//! **The load generator** is the same for every server: one tokio
//! `current_thread` runtime on its own thread, pinned to CPU 1 (the other
//! core), holding C client connections (`tokio::net::TcpStream`, NODELAY).
//! A round spawns one task per connection; each writes a message of S bytes
//! with `write_all`, reads S bytes back with `read_exact`, and repeats k
//! times; the round ends when every task has finished. One iteration is one
//! round trip: `iter_custom(iters)` gives each connection k = ⌈iters / C⌉
//! round trips and scales the round's wall time to `iters`.
//! `Throughput::Elements(1)`, so criterion reports round trips per second.
//! The connections are opened once per benchmark function (before the first
//! sample) and stay open between rounds; the client checks the last echo of
//! every connection in a round and panics on a wrong one, and on a round
//! that takes over a minute (a hung server), so a run is bounded in time.
//! (A tokio client is what the stage 5 issue measured uvloop with; one
//! client thread against one server thread keeps the two cores busy and
//! nothing else.) Pinning needs two CPUs; with fewer, nothing is pinned.
//!
//! Groups:
//! - `echo/1x64B`: one connection, 64-byte messages: pure latency, one
//!   round trip in flight;
//! - `echo/50x1KiB`: 50 connections, 1 KiB messages: 50 round trips in
//!   flight, the server's wake-ups batch;
//! - `echo-lines/1x64B`, `echo-lines/50x1KiB`: the same sizes, each
//!   message a line (letters, then its only `\n`, 64 B or 1 KiB in all),
//!   for the line servers. The client is the same: it writes the line and
//!   reads until it has the whole echo back (`read_exact` of the line's
//!   length).
//!
//! **CPU per round trip.** After each function the bench also prints, on
//! stderr, how many round trips it made in all (warm-up included) and the
//! CPU time the server and the client spent on them (`schedstat`'s on-CPU
//! time of the server's threads — those named `echo-<name>`, which includes
//! may's worker, started from that thread — or of the Python child's
//! threads; Linux only), e.g.
//! `echo/50x1KiB/tokio: 512000 round trips, server 7.71 µs CPU each, client 7.70 µs`.
//! On a machine shared with other work the wall-clock figures depend on how
//! much CPU the two pinned threads get (each function meets its own share
//! of the load); the CPU per round trip much less. There, run it under
//! `nice -n -10` and compare servers in short runs alternated back to back
//! (`-- --measurement-time 3 'echo/50x1KiB/bucle$'`, then `tokio$`, ...).
//! The round-trip count is also what to divide a syscall count by:
//! `perf trace -s -- target/release/deps/echo-<hash> --bench --profile-time 3 'echo/1x64B/tokio$'`
//! (profile mode skips criterion's analysis) gives one per thread.
//!
//! Clean-up: after each function the client closes its connections, each
//! Rust server is told to stop (a shutdown flag, then one connection to wake
//! its accept loop) and its thread joined (may's worker and timer threads are
//! process-wide and stay, idle); each Python child has its stdin closed (the
//! script exits on it), is killed and reaped — also when the bench panics.
//!
//! Bars (from the design's "Performance bar"): bucle's round trips per
//! second ≥ tokio's, ≥ may's and ≥ uvloop's protocol server in both `echo`
//! groups; CPython asyncio recorded beside. In both `echo-lines` groups,
//! `bucle-streams` within 1.5× of `bucle-socket` (its time per round trip at
//! most 1.5× the socket's) and ahead of `tokio-bufreader`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{OnceLock, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// The CPU the servers run on.
const SERVER_CPU: usize = 0;
/// The CPU the load generator runs on.
const CLIENT_CPU: usize = 1;
/// The client thread's name.
const CLIENT_NAME: &str = "echo-client";
/// The servers' read buffer (the Rust ones; the Python ones read up to 64 KiB).
const SERVER_BUF: usize = 4096;
/// The stack of a bucle connection task.
const BUCLE_STACK: usize = 64 * 1024;
/// A round that takes longer than this means a hung server: fail, don't hang.
const ROUND_LIMIT: Duration = Duration::from_secs(60);

/// Pins the calling thread to `cpu` when the machine has two CPUs or more.
fn pin_to(cpu: usize) {
    if thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return;
    }
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes a bit
    // inside it (cpu < 2 < CPU_SETSIZE); sched_setaffinity reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        let rc = libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
        assert_eq!(
            rc,
            0,
            "pin to CPU {cpu}: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// The on-CPU time so far of the threads of process `pid` (`None`: this
/// one) whose name is `comm` (`None`: all of them), from `schedstat`. Zero
/// where there is no `/proc`.
fn cpu_time(pid: Option<u32>, comm: Option<&str>) -> Duration {
    let dir = match pid {
        Some(pid) => format!("/proc/{pid}/task"),
        None => "/proc/self/task".to_string(),
    };
    let Ok(tasks) = std::fs::read_dir(dir) else {
        return Duration::ZERO;
    };
    let mut ns = 0u64;
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.is_some_and(|c| c != name.trim_end()) {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("schedstat")).unwrap_or_default();
        ns += stat
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
    }
    Duration::from_nanos(ns)
}

fn pin_flag() -> Option<usize> {
    (thread::available_parallelism().map_or(1, |n| n.get()) >= 2).then_some(SERVER_CPU)
}

/// Scales `elapsed`, measured over `done` iterations, to `wanted` ones.
fn scale(elapsed: Duration, done: u64, wanted: u64) -> Duration {
    if done == wanted {
        elapsed
    } else {
        elapsed.mul_f64(wanted as f64 / done as f64)
    }
}

// ---------------------------------------------------------------------------
// The load generator

/// One client connection and its buffers.
struct Conn {
    stream: tokio::net::TcpStream,
    msg: Vec<u8>,
    buf: Vec<u8>,
}

/// The shared client: a tokio `current_thread` runtime on its own thread.
struct LoadGen {
    rounds: Option<mpsc::Sender<(u64, mpsc::Sender<Duration>)>>,
    thread: Option<JoinHandle<()>>,
    conns: u64,
    /// Round trips so far.
    done: std::cell::Cell<u64>,
}

impl LoadGen {
    /// Opens `conns` connections to `addr`, to echo `size`-byte messages
    /// (lines, ending in their only `\n`, for [`Workload::Lines`]).
    fn connect(addr: SocketAddr, conns: usize, size: usize, workload: Workload) -> LoadGen {
        let (rounds, rx) = mpsc::channel::<(u64, mpsc::Sender<Duration>)>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = thread::Builder::new()
            .name(CLIENT_NAME.into())
            .spawn(move || {
                pin_to(CLIENT_CPU);
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("build the client's runtime");
                let mut all: Vec<Conn> = rt.block_on(async {
                    let mut all = Vec::with_capacity(conns);
                    for i in 0..conns {
                        let stream = tokio::net::TcpStream::connect(addr)
                            .await
                            .expect("connect to the server");
                        stream.set_nodelay(true).expect("set TCP_NODELAY");
                        // A different message per connection, so a mix-up shows.
                        let msg = match workload {
                            Workload::Bytes => (0..size).map(|j| (i * 7 + j) as u8).collect(),
                            // Letters, then the newline.
                            Workload::Lines => (0..size - 1)
                                .map(|j| b'a' + ((i * 7 + j) % 26) as u8)
                                .chain([b'\n'])
                                .collect(),
                        };
                        all.push(Conn {
                            stream,
                            msg,
                            buf: vec![0; size],
                        });
                    }
                    all
                });
                ready_tx.send(()).expect("the bench waits for the client");
                // A round per request; the loop ends when the bench drops
                // the sender, and the connections close with `all`.
                for (k, done) in rx {
                    let (back, elapsed) = rt.block_on(round(all, k));
                    all = back;
                    done.send(elapsed).expect("the bench waits for the round");
                }
            })
            .expect("spawn the client thread");
        ready_rx.recv().expect("the client connects");
        LoadGen {
            rounds: Some(rounds),
            thread: Some(thread),
            conns: conns as u64,
            done: Default::default(),
        }
    }

    /// Runs `iters` round trips spread evenly over the connections; returns
    /// the wall time scaled to `iters`.
    fn run(&self, iters: u64) -> Duration {
        let k = iters.div_ceil(self.conns).max(1);
        let (tx, rx) = mpsc::channel();
        self.rounds
            .as_ref()
            .expect("running")
            .send((k, tx))
            .expect("the client runs");
        let elapsed = rx.recv().expect("the client finishes its round");
        self.done.set(self.done.get() + k * self.conns);
        scale(elapsed, k * self.conns, iters)
    }
}

impl Drop for LoadGen {
    fn drop(&mut self) {
        drop(self.rounds.take());
        if let Some(t) = self.thread.take() {
            let joined = t.join();
            if joined.is_err() && !thread::panicking() {
                panic!("the client thread panicked");
            }
        }
    }
}

/// `k` round trips on every connection at once; gives the connections back
/// with the round's wall time.
async fn round(all: Vec<Conn>, k: u64) -> (Vec<Conn>, Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t0 = Instant::now();
    let tasks: Vec<_> = all
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                for _ in 0..k {
                    c.stream
                        .write_all(&c.msg)
                        .await
                        .expect("write to the server");
                    c.stream
                        .read_exact(&mut c.buf)
                        .await
                        .expect("read the echo");
                }
                assert!(c.buf == c.msg, "the server echoed something else");
                c
            })
        })
        .collect();
    let mut back = Vec::with_capacity(tasks.len());
    let joined = tokio::time::timeout(ROUND_LIMIT, async {
        for t in tasks {
            back.push(t.await.expect("a client task panicked"));
        }
    })
    .await;
    assert!(
        joined.is_ok(),
        "a round took over {ROUND_LIMIT:?}: is the server hung?"
    );
    (back, t0.elapsed())
}

// ---------------------------------------------------------------------------
// The Rust servers

/// A server on a thread of its own, stopped by a flag and a last connection.
struct ThreadServer {
    addr: SocketAddr,
    /// The thread's name, `echo-<name>`.
    comm: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ThreadServer {
    /// Runs `serve(addr_sender, stop)` on a new thread pinned to the server
    /// CPU; `serve` binds 127.0.0.1:0, sends its address, then accepts until
    /// it finds `stop` set after an accept.
    fn start(
        name: &str,
        serve: impl FnOnce(mpsc::Sender<SocketAddr>, Arc<AtomicBool>) + Send + 'static,
    ) -> ThreadServer {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let flag = stop.clone();
        let comm = format!("echo-{name}");
        // Linux keeps 15 bytes of a thread's name: `cpu_time` would find
        // none under a longer one.
        assert!(comm.len() <= 15, "thread name {comm:?} is over 15 bytes");
        let thread = thread::Builder::new()
            .name(comm.clone())
            .spawn(move || {
                pin_to(SERVER_CPU);
                serve(tx, flag);
            })
            .expect("spawn a server thread");
        let addr = rx.recv().expect("the server starts");
        ThreadServer {
            addr,
            comm,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for ThreadServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which sees the flag and returns.
        drop(std::net::TcpStream::connect(self.addr));
        if let Some(t) = self.thread.take() {
            let joined = t.join();
            if joined.is_err() && !thread::panicking() {
                panic!("a server thread panicked");
            }
        }
    }
}

fn bucle_server() -> ThreadServer {
    ThreadServer::start("bucle", |addr, stop| {
        let lp = bucle::EventLoop::builder().stack_size(BUCLE_STACK).build();
        lp.run_until_complete(move || {
            let listener = bucle::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            addr.send(listener.local_addr().expect("local_addr"))
                .expect("send the address");
            loop {
                // TCP_NODELAY is on for every bucle stream, as in asyncio.
                let (stream, _) = listener.accept().expect("accept");
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                bucle::spawn(move || {
                    let mut buf = vec![0u8; SERVER_BUF];
                    loop {
                        let n = match stream.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if stream.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        // Closing the loop (on drop) cancels whatever connection task is left.
    })
}

fn tokio_server() -> ThreadServer {
    tokio_serve("tokio", |mut stream| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = vec![0u8; SERVER_BUF];
        loop {
            let n = match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if stream.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    })
}

/// A tokio server as its users write one: a `current_thread` runtime with
/// `enable_all()` (what `#[tokio::main(flavor = "current_thread")]`
/// builds), the accept loop in `block_on`, `TCP_NODELAY` on, and
/// `connection(stream)` in a `tokio::spawn`ed task per connection.
fn tokio_serve<F, Fut>(name: &'static str, connection: F) -> ThreadServer
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    ThreadServer::start(name, move |addr, stop| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("build the server's runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            addr.send(listener.local_addr().expect("local_addr"))
                .expect("send the address");
            loop {
                let (stream, _) = listener.accept().await.expect("accept");
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                stream.set_nodelay(true).expect("set TCP_NODELAY");
                tokio::spawn(connection(stream));
            }
        });
        // Dropping the runtime drops whatever connection task is left.
    })
}

/// bucle's streams server: `start_server` with a handler that loops
/// `readline` / `write` / `drain`, as `docs/` and asyncio users write one.
/// The main task waits until the handler of the last connection (the one
/// `ThreadServer`'s drop makes) sees the stop flag, then closes the server.
fn bucle_streams_server() -> ThreadServer {
    ThreadServer::start("bucle-str", |addr, stop| {
        use bucle::net::{StreamReader, StreamWriter};
        let lp = bucle::EventLoop::builder().stack_size(BUCLE_STACK).build();
        lp.run_until_complete(move || {
            let stopped = bucle::sync::Event::new();
            let handler = {
                let stopped = stopped.clone();
                move |reader: StreamReader, writer: StreamWriter| -> std::io::Result<()> {
                    if stop.load(Ordering::SeqCst) {
                        stopped.set();
                        return Ok(());
                    }
                    loop {
                        let line = reader.readline()?;
                        if line.is_empty() {
                            return Ok(()); // the client closed
                        }
                        writer.write(&line);
                        writer.drain()?;
                    }
                }
            };
            let server = bucle::net::start_server(handler, "127.0.0.1:0").expect("bind");
            addr.send(server.local_addr().expect("local_addr"))
                .expect("send the address");
            stopped.wait();
            server.close();
        });
        // Closing the loop (on drop) cancels whatever connection task is left.
    })
}

/// tokio's line server: a `BufReader` over the read half of `split()`,
/// `read_until(b'\n')` into a line buffer reused across lines, `write_all`
/// on the write half.
fn tokio_bufreader_server() -> ThreadServer {
    tokio_serve("tokio-buf", |mut stream| async move {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let (read_half, mut write_half) = stream.split();
        let mut reader = tokio::io::BufReader::new(read_half);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if write_half.write_all(&line).await.is_err() {
                break;
            }
        }
    })
}

/// may's server. The accept loop is a coroutine (`go!`) on may's process-wide
/// scheduler, whose single worker thread is configured on the first use; the
/// `ThreadServer` thread only waits for the accept coroutine to end.
fn may_server() -> ThreadServer {
    may::config().set_workers(1);
    ThreadServer::start("may", |addr, stop| {
        use std::io::{Read, Write};
        let acceptor = may::go!(move || {
            let listener = may::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            addr.send(listener.local_addr().expect("local_addr"))
                .expect("send the address");
            for stream in listener.incoming() {
                let mut stream = stream.expect("accept");
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                stream.set_nodelay(true).expect("set TCP_NODELAY");
                may::go!(move || {
                    let mut buf = vec![0u8; SERVER_BUF];
                    loop {
                        let n = match stream.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if stream.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        acceptor.join().expect("may's accept loop");
    })
}

// ---------------------------------------------------------------------------
// The Python servers

/// Where the bench finds Python: `$BUCLE_BENCH_PYTHON`, else the venv made by
/// `benches/python/setup.sh` in the target directory, else `python3`.
fn find_python() -> PathBuf {
    if let Some(p) = std::env::var_os("BUCLE_BENCH_PYTHON") {
        return p.into();
    }
    let mut targets = Vec::new();
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        targets.push(PathBuf::from(t));
    }
    // The bench runs as target/<profile>/deps/echo-<hash>.
    if let Some(t) = std::env::current_exe()
        .ok()
        .and_then(|e| e.ancestors().nth(3).map(Path::to_path_buf))
    {
        targets.push(t);
    }
    targets.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    targets
        .into_iter()
        .map(|t| t.join("pyenv/bin/python"))
        .find(|p| p.exists())
        .unwrap_or_else(|| "python3".into())
}

/// Whether `python -c code` runs and exits 0.
fn python_can(python: &Path, code: &str) -> bool {
    Command::new(python)
        .args(["-c", code])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The Python found, and whether it has asyncio and uvloop (probed once).
struct Python {
    path: PathBuf,
    asyncio: bool,
    uvloop: bool,
}

fn python() -> &'static Python {
    static PYTHON: OnceLock<Python> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let path = find_python();
        let asyncio = python_can(&path, "import asyncio");
        let uvloop = asyncio && python_can(&path, "import uvloop");
        Python {
            path,
            asyncio,
            uvloop,
        }
    })
}

/// A child process running `benches/python/echo_server.py`.
struct PythonServer {
    addr: SocketAddr,
    child: Child,
}

impl PythonServer {
    /// Why the script cannot run `--loop lp` here, if it cannot.
    fn unavailable(lp: &str) -> Option<String> {
        let python = python();
        if !python.asyncio {
            Some(format!("{} with asyncio not found", python.path.display()))
        } else if lp == "uvloop" && !python.uvloop {
            Some(format!(
                "uvloop does not import in {} (run `sh benches/python/setup.sh`)",
                python.path.display()
            ))
        } else {
            None
        }
    }

    /// Starts the script with `--loop lp --kind kind`.
    fn start(lp: &str, kind: &str) -> PythonServer {
        let python = &python().path;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python/echo_server.py");
        let mut cmd = Command::new(python);
        cmd.arg(&script)
            .args(["--loop", lp, "--kind", kind, "--port", "0"]);
        if let Some(cpu) = pin_flag() {
            cmd.args(["--cpu", &cpu.to_string()]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", python.display()));
        let mut line = String::new();
        let read = BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line);
        let port = read.ok().and_then(|_| line.trim().parse::<u16>().ok());
        let server = PythonServer {
            addr: SocketAddr::from(([127, 0, 0, 1], port.unwrap_or(0))),
            child,
        };
        // On a panic `server` is dropped: the child is killed and reaped.
        assert!(
            port.is_some(),
            "the {lp} {kind} server printed {line:?}, not a port"
        );
        server
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take()); // the script exits when stdin closes
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// The groups

/// A running server of any kind, stopped when dropped.
enum Server {
    Thread(ThreadServer),
    Python(PythonServer),
}

impl Server {
    fn addr(&self) -> SocketAddr {
        match self {
            Server::Thread(s) => s.addr,
            Server::Python(s) => s.addr,
        }
    }

    /// The server's CPU time so far.
    fn cpu_time(&self) -> Duration {
        match self {
            Server::Thread(s) => cpu_time(None, Some(&s.comm)),
            Server::Python(s) => cpu_time(Some(s.child.id()), None),
        }
    }
}

/// A server under load, and the CPU times when the client had connected.
struct Running {
    client: LoadGen,
    server: Server,
    cpu0: (Duration, Duration),
}

impl Running {
    fn cpu_times(&self) -> (Duration, Duration) {
        (self.server.cpu_time(), cpu_time(None, Some(CLIENT_NAME)))
    }

    /// Prints the CPU per round trip of the server and the client, then
    /// stops both, the client's connections first.
    fn finish(self, id: &str) {
        let (server, client) = self.cpu_times();
        let n = self.client.done.get().max(1) as f64;
        let us = |d: Duration| d.as_secs_f64() * 1e6 / n;
        eprintln!(
            "{id}: {n} round trips, server {:.2} µs CPU each, client {:.2} µs",
            us(server.saturating_sub(self.cpu0.0)),
            us(client.saturating_sub(self.cpu0.1)),
        );
        drop(self.client);
        drop(self.server);
    }
}

/// What the client sends, and so which servers a group runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Workload {
    /// Any bytes: the `echo/*` groups.
    Bytes,
    /// Lines, each message ending in its only `\n`: the `echo-lines/*`
    /// groups.
    Lines,
}

impl Workload {
    /// The group's name prefix.
    fn prefix(self) -> &'static str {
        match self {
            Workload::Bytes => "echo",
            Workload::Lines => "echo-lines",
        }
    }

    /// The benchmark functions, in the order criterion runs them.
    fn servers(self) -> &'static [&'static str] {
        match self {
            Workload::Bytes => &[
                "bucle",
                "tokio",
                "may",
                "asyncio-streams",
                "asyncio-protocol",
                "uvloop-protocol",
                "uvloop-streams",
            ],
            Workload::Lines => &[
                "bucle-streams",
                "bucle-socket",
                "tokio-bufreader",
                "asyncio-streams",
                "uvloop-streams",
            ],
        }
    }
}

/// The Python server behind a function's name (`--loop`, `--kind`), if it
/// is one: on the line workload the streams handler is the `readline` one.
fn python_kind(name: &str, workload: Workload) -> Option<(&str, &str)> {
    let (lp, kind) = name.split_once('-')?;
    if !matches!(lp, "asyncio" | "uvloop") {
        return None;
    }
    Some(match (workload, kind) {
        (Workload::Lines, "streams") => (lp, "lines"),
        _ => (lp, kind),
    })
}

/// Why server `name` cannot run here, if it cannot.
fn unavailable(name: &str, workload: Workload) -> Option<String> {
    python_kind(name, workload).and_then(|(lp, _)| PythonServer::unavailable(lp))
}

fn start(name: &str, workload: Workload) -> Server {
    match name {
        "bucle" | "bucle-socket" => Server::Thread(bucle_server()),
        "bucle-streams" => Server::Thread(bucle_streams_server()),
        "tokio" => Server::Thread(tokio_server()),
        "tokio-bufreader" => Server::Thread(tokio_bufreader_server()),
        "may" => Server::Thread(may_server()),
        _ => {
            let (lp, kind) = python_kind(name, workload).expect("a Python server's name");
            Server::Python(PythonServer::start(lp, kind))
        }
    }
}

fn echo(c: &mut Criterion) {
    for workload in [Workload::Bytes, Workload::Lines] {
        for (conns, size, label) in [(1, 64, "1x64B"), (50, 1024, "50x1KiB")] {
            echo_group(c, workload, conns, size, label);
        }
    }
}

/// One group: every server of `workload`, `conns` connections echoing
/// `size`-byte messages.
fn echo_group(c: &mut Criterion, workload: Workload, conns: usize, size: usize, label: &str) {
    let prefix = workload.prefix();
    let mut group = c.benchmark_group(format!("{prefix}/{label}"));
    group.throughput(Throughput::Elements(1));
    for &name in workload.servers() {
        if let Some(why) = unavailable(name, workload) {
            eprintln!("{prefix}/{label}/{name}: skipped, {why}");
            continue;
        }
        // The server starts (and the client connects) on the first call of
        // the closure only, so functions filtered out start nothing; both
        // go away after the function, the client's connections first.
        let mut running: Option<Running> = None;
        group.bench_function(name, |b| {
            let r = running.get_or_insert_with(|| {
                let server = start(name, workload);
                let client = LoadGen::connect(server.addr(), conns, size, workload);
                let mut r = Running {
                    client,
                    server,
                    cpu0: Default::default(),
                };
                r.cpu0 = r.cpu_times();
                r
            });
            b.iter_custom(|iters| r.client.run(iters));
        });
        if let Some(r) = running {
            r.finish(&format!("{prefix}/{label}/{name}"));
        }
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = echo
}
criterion_main!(benches);
