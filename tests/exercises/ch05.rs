//! Solutions to chapter 5's exercises (`docs/05-io.md`, "Exercises").

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use bucle::net::{ServerBuilder, StreamReader, StreamWriter, open_connection, start_server};
use bucle::{Generator, GeneratorState};

/// Exercise 1: the toy poller waits for writability too. A task yields
/// `(fd, POLLIN)` or `(fd, POLLOUT)`; the table is keyed by both.
#[test]
fn ex1_the_toy_poller_waits_for_writes_too() {
    type Toy = Generator<(RawFd, libc::c_short)>;

    fn run(tasks: Vec<Toy>) {
        let mut ready: VecDeque<Toy> = tasks.into();
        let mut waiting: HashMap<(RawFd, libc::c_short), Toy> = HashMap::new();
        while !ready.is_empty() || !waiting.is_empty() {
            let mut fds: Vec<libc::pollfd> = waiting
                .keys()
                .map(|&(fd, events)| libc::pollfd {
                    fd,
                    events,
                    revents: 0,
                })
                .collect();
            let timeout = if ready.is_empty() { -1 } else { 0 };
            // SAFETY: `fds` is a live array of `fds.len()` pollfd structs.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            assert!(n >= 0, "poll failed");
            for p in fds.iter().filter(|p| p.revents != 0) {
                ready.push_back(waiting.remove(&(p.fd, p.events)).unwrap());
            }
            for _ in 0..ready.len() {
                let mut task = ready.pop_front().unwrap();
                if let GeneratorState::Yielded(wait) = task.resume(()) {
                    waiting.insert(wait, task);
                }
            }
        }
    }

    // The writer sends far more than a socket buffer holds, so it must
    // wait for writability while the reader drains.
    const TOTAL: usize = 4 << 20;
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    let got = Rc::new(Cell::new(0usize));
    let waits = Rc::new(Cell::new(0usize));
    let (g, w) = (got.clone(), waits.clone());
    let reader = Generator::new(move |y, ()| {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match (&a).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => g.set(g.get() + n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    y.yield_((a.as_raw_fd(), libc::POLLIN));
                }
                Err(e) => panic!("{e}"),
            }
        }
    });
    let writer = Generator::new(move |y, ()| {
        let data = vec![7u8; TOTAL];
        let mut sent = 0;
        while sent < TOTAL {
            match (&b).write(&data[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    w.set(w.get() + 1);
                    y.yield_((b.as_raw_fd(), libc::POLLOUT));
                }
                Err(e) => panic!("{e}"),
            }
        }
        drop(b); // EOF for the reader
    });
    run(vec![reader, writer]);
    assert_eq!(got.get(), TOTAL);
    assert!(
        waits.get() > 0,
        "the writer never had to wait: the test proves nothing"
    );
}

/// Exercise 2: a server that counts the lines a client sends and, when the
/// client half-closes (`write_eof`), answers with the count.
#[test]
fn ex2_a_line_counting_server() {
    fn count(reader: StreamReader, writer: StreamWriter) -> std::io::Result<()> {
        let mut lines = 0;
        while !reader.readline()?.is_empty() {
            lines += 1;
        }
        writer.write(format!("{lines}\n").as_bytes());
        writer.drain()
    }
    bucle::run(|| {
        let server = start_server(count, "127.0.0.1:0").unwrap();
        let (reader, writer) = open_connection(server.local_addr().unwrap()).unwrap();
        writer.writelines(["uno\n", "dos\n", "tres\n"]);
        writer.write_eof(); // "that is all": the server's readline returns empty
        assert_eq!(reader.readline().unwrap(), b"3\n");
        server.close();
        server.wait_closed();
    });
}

/// Exercise 3: a "heartbeat" reader: wait at most 20 ms for each line,
/// print a dot on every timeout, and lose no byte of a line that arrives
/// in pieces across several timeouts.
#[test]
fn ex3_timeouts_lose_no_bytes() {
    bucle::run(|| {
        let server = start_server(
            |_reader: StreamReader, writer: StreamWriter| {
                for piece in ["ho", "la ", "mun", "do\n"] {
                    writer.write(piece.as_bytes());
                    bucle::sleep(Duration::from_millis(30));
                }
            },
            "127.0.0.1:0",
        )
        .unwrap();
        let (reader, _writer) = open_connection(server.local_addr().unwrap()).unwrap();
        let mut dots = 0;
        let line = loop {
            match bucle::timeout(Duration::from_millis(20), || reader.readline()) {
                Ok(line) => break line.unwrap(),
                Err(_elapsed) => dots += 1,
            }
        };
        assert_eq!(line, b"hola mundo\n");
        assert!(
            dots >= 3,
            "the pieces are 30 ms apart: at least three timeouts"
        );
    });
}

/// Exercise 4: with `max_connections(1)`, a second client is only served
/// once the first has gone. Prove it by order, not by time.
#[test]
fn ex4_one_connection_at_a_time() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    bucle::run(move || {
        let handler_log = l.clone();
        let server = ServerBuilder::new()
            .max_connections(1)
            .start(
                move |reader: StreamReader, writer: StreamWriter| -> std::io::Result<()> {
                    let name = reader.readline()?;
                    handler_log
                        .borrow_mut()
                        .push(format!("serving {}", String::from_utf8_lossy(&name).trim()));
                    writer.write(b"bye\n");
                    writer.drain()
                },
                "127.0.0.1:0",
            )
            .unwrap();
        let addr = server.local_addr().unwrap();
        let (r1, w1) = open_connection(addr).unwrap();
        let (r2, w2) = open_connection(addr).unwrap();
        // The second client speaks first, but the server is busy with the
        // first connection (which has not said anything yet).
        w2.write(b"second\n");
        bucle::sleep(Duration::from_millis(20));
        l.borrow_mut().push("first speaks".to_string());
        w1.write(b"first\n");
        assert_eq!(r1.readline().unwrap(), b"bye\n");
        assert_eq!(r2.readline().unwrap(), b"bye\n");
        server.close();
    });
    assert_eq!(
        *log.borrow(),
        ["first speaks", "serving first", "serving second"]
    );
}

/// Exercise 5: CPU-heavy work on a worker thread does not stop a ticker
/// task on the loop.
#[test]
fn ex5_offload_the_cpu_work() {
    bucle::run(|| {
        let ticks = Rc::new(Cell::new(0u32));
        let t = ticks.clone();
        let ticker = bucle::spawn(move || {
            loop {
                bucle::sleep(Duration::from_millis(1));
                t.set(t.get() + 1);
            }
        });
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        // The worker waits until the ticker has ticked a few times: it can
        // only finish if the loop kept running while it worked.
        let probe = ticks.clone();
        let primes = {
            let check = bucle::spawn(move || {
                while probe.get() < 3 {
                    bucle::sleep(Duration::from_millis(1));
                }
                tx.send(()).unwrap();
            });
            let n = bucle::to_thread(move || {
                rx.recv().unwrap();
                (2u32..20_000)
                    .filter(|n| (2..*n).take_while(|d| d * d <= *n).all(|d| n % d != 0))
                    .count()
            });
            check.join().unwrap();
            n
        };
        assert_eq!(primes, 2262);
        assert!(ticks.get() >= 3);
        ticker.cancel();
    });
}
