//! Stage 5, servers (issue #14's proof): `start_server` runs a handler per
//! connection; `close` stops accepting while connections go on;
//! `close_clients`, `abort_clients`, `wait_closed` and `serve_forever` do
//! what asyncio's (3.12/3.13) do; the connection limit holds the next
//! client back until one closes; the idle timeout closes a silent
//! connection between d and 1.25 d (virtual clock); a handler's panic or
//! error is reported and closes only its connection; a graceful shutdown
//! leaves no task, stack or descriptor behind; and hostile handlers (that
//! close or drop the server, whose captured values re-enter it or panic
//! when dropped) and a loop closed mid-flight neither leak, panic nor hang.
//! (Out of descriptors: `tests/io_server_emfile.rs`, alone in its binary.)

#[path = "support/net.rs"]
mod net_support;
#[path = "support/streams.rs"]
mod streams_support;
mod support;

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::time::Duration;

use bucle::net::{
    ReadError, Server, StreamReader, StreamWriter, TcpStream, open_connection, start_server,
};
use bucle::{EventLoop, ExceptionContext, JoinError, spawn, timeout, yield_now};
use net_support::{in_child, is_child, ms, open_fds, run};
use streams_support::{
    fixed_rcvbuf, quiet, read_all, until, write_past_high, write_until_buffered,
};
use support::{Drops, Log, record_reports, stacks_in_use};

/// Echoes lines until the client closes.
fn echo(reader: StreamReader, writer: StreamWriter) -> io::Result<()> {
    loop {
        let line = reader.readline()?;
        if line.is_empty() {
            return Ok(());
        }
        writer.write(&line);
        writer.drain()?;
    }
}

/// Sends `line` and reads the answer.
fn ask(reader: &StreamReader, writer: &StreamWriter, line: &str) -> String {
    writer.write(line.as_bytes());
    String::from_utf8(reader.readline().unwrap()).unwrap()
}

fn echo_server() -> Server {
    start_server(echo, "127.0.0.1:0").unwrap()
}

/// A loop whose exception handler records every report, and the record.
fn recording_loop() -> (EventLoop, Rc<RefCell<Vec<ExceptionContext>>>) {
    quiet();
    let lp = EventLoop::new();
    let reports = record_reports(&lp);
    (lp, reports)
}

// ---------------------------------------------------------------------------
// Serving.

#[test]
fn each_connection_gets_a_handler_of_its_own() {
    run(|| {
        let next = Rc::new(Cell::new(0));
        let n = next.clone();
        let server = start_server(
            move |reader: StreamReader, writer: StreamWriter| {
                let me = n.get();
                n.set(me + 1);
                writer.write(format!("#{me}\n").as_bytes());
                echo(reader, writer)
            },
            "127.0.0.1:0",
        )
        .unwrap();
        assert!(server.is_serving());
        let addr = server.local_addr().unwrap();
        let clients: Vec<_> = (0..3).map(|_| open_connection(addr).unwrap()).collect();
        let mut ids: Vec<String> = clients
            .iter()
            .map(|(r, _)| String::from_utf8(r.readline().unwrap()).unwrap())
            .collect();
        assert_eq!(server.active_connections(), 3);
        for (i, (r, w)) in clients.iter().enumerate() {
            assert_eq!(ask(r, w, &format!("eco {i}\n")), format!("eco {i}\n"));
        }
        ids.sort();
        assert_eq!(ids, ["#0\n", "#1\n", "#2\n"]);
        drop(clients);
        server.close();
        server.wait_closed();
        assert_eq!(server.active_connections(), 0);
    });
}

#[test]
fn close_stops_accepting_while_connections_go_on() {
    run(|| {
        let server = echo_server();
        let addr = server.local_addr().unwrap();
        let (r, w) = open_connection(addr).unwrap();
        assert_eq!(ask(&r, &w, "antes\n"), "antes\n");
        server.close();
        server.close(); // idempotent
        assert!(!server.is_serving());
        let err = TcpStream::connect(addr).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        assert_eq!(ask(&r, &w, "después\n"), "después\n");
        assert_eq!(server.active_connections(), 1);
        w.close();
        server.wait_closed();
        assert_eq!(server.active_connections(), 0);
    });
}

#[test]
fn close_clients_sends_what_is_buffered_then_closes() {
    run(|| {
        let done = Log::new();
        let d = done.clone();
        let server = start_server(
            move |reader: StreamReader, writer: StreamWriter| {
                writer.write(&[b'b'; 300 * 1024]); // mostly buffered: nobody reads yet
                let line = reader.readline().unwrap(); // the end, at close_clients
                d.push(format!("handler saw {line:?}"));
            },
            "127.0.0.1:0",
        )
        .unwrap();
        let client = TcpStream::connect(server.local_addr().unwrap()).unwrap();
        until("the handler runs", || server.active_connections() == 1);
        bucle::sleep(ms(5));
        server.close_clients();
        let (got, end) = read_all(&client);
        end.unwrap();
        assert_eq!(got.len(), 300 * 1024);
        server.close();
        server.wait_closed();
        assert_eq!(done.get(), ["handler saw []"]);
    });
}

#[test]
fn abort_clients_closes_at_once_and_cancels_the_handlers() {
    run(|| {
        let drops = Drops::new();
        let d = drops.clone();
        let written = Rc::new(Cell::new(0));
        let wr = written.clone();
        let server = start_server(
            move |_reader: StreamReader, writer: StreamWriter| {
                let _token = d.token(); // dropped as the handler unwinds
                // Far more than the kernel holds: the clients don't read yet.
                wr.set(write_until_buffered(&writer, 1024 * 1024, b'a'));
                bucle::sleep(Duration::from_secs(3600));
            },
            "127.0.0.1:0",
        )
        .unwrap();
        let addr = server.local_addr().unwrap();
        let clients: Vec<_> = (0..3)
            .map(|_| {
                let c = TcpStream::connect(addr).unwrap();
                fixed_rcvbuf(&c);
                c
            })
            .collect();
        until("three handlers run", || drops.made() == 3);
        server.abort_clients();
        yield_now();
        assert_eq!(server.active_connections(), 0);
        assert!(drops.all_dropped_once(), "{}", drops.report());
        for c in &clients {
            let (got, _) = read_all(c); // the end, or a reset
            assert!(got.len() < written.get(), "the buffered bytes were sent");
        }
        assert!(
            server.is_serving(),
            "aborting clients does not close the server"
        );
        server.close();
        server.wait_closed();
    });
}

#[test]
fn abort_clients_before_a_handler_first_runs() {
    // A handler task cancelled before it first runs never runs: its
    // connection must still leave the server's books.
    run(|| {
        let started = Rc::new(Cell::new(false));
        let s = started.clone();
        let server = start_server(
            move |_r: StreamReader, _w: StreamWriter| s.set(true),
            "127.0.0.1:0",
        )
        .unwrap();
        let client = TcpStream::connect(server.local_addr().unwrap()).unwrap();
        // Looks every tick: it sees the connection before its handler runs.
        for _ in 0..100_000 {
            if server.active_connections() == 1 {
                break;
            }
            yield_now();
        }
        assert_eq!(server.active_connections(), 1);
        assert!(!started.get(), "the handler ran before the next tick");
        server.abort_clients();
        server.close();
        timeout(ms(2000), || server.wait_closed()).expect("wait_closed hangs");
        assert!(!started.get());
        assert_eq!(server.active_connections(), 0);
        assert_eq!(read_all(&client).0, b"");
    });
}

#[test]
fn wait_closed_waits_for_the_server_to_close_and_the_handlers_to_end() {
    run(|| {
        let log = Log::new();
        let l = log.clone();
        let server = start_server(
            move |reader: StreamReader, _writer: StreamWriter| {
                let _ = reader.readline();
                bucle::sleep(ms(20));
                l.push("handler returns");
            },
            "127.0.0.1:0",
        )
        .unwrap();
        let s = server.clone();
        let l = log.clone();
        let waiter = spawn(move || {
            s.wait_closed();
            l.push("wait_closed returns");
        });
        let (_r, w) = open_connection(server.local_addr().unwrap()).unwrap();
        until("the handler runs", || server.active_connections() == 1);
        yield_now();
        assert!(!waiter.is_done(), "returned while still serving");
        server.close();
        yield_now();
        assert!(!waiter.is_done(), "returned while a handler runs");
        w.write(b"fin\n");
        waiter.join().unwrap();
        assert_eq!(log.get(), ["handler returns", "wait_closed returns"]);
        server.wait_closed(); // and again at once
    });
}

#[test]
fn serve_forever_returns_once_the_server_is_closed() {
    run(|| {
        let server = echo_server();
        let s = server.clone();
        let serving = spawn(move || s.serve_forever());
        yield_now();
        assert!(!serving.is_done());
        let (r, w) = open_connection(server.local_addr().unwrap()).unwrap();
        assert_eq!(ask(&r, &w, "hola\n"), "hola\n");
        server.close();
        serving.join().unwrap();
    });
}

#[test]
fn serve_forever_closes_the_server_when_its_task_is_cancelled() {
    run(|| {
        let server = echo_server();
        let addr = server.local_addr().unwrap();
        let s = server.clone();
        let serving = spawn(move || s.serve_forever());
        yield_now();
        serving.cancel();
        assert!(matches!(serving.join(), Err(JoinError::Cancelled)));
        assert!(!server.is_serving());
        let err = TcpStream::connect(addr).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        server.wait_closed();
    });
}

#[test]
fn dropping_the_last_server_handle_closes_it() {
    run(|| {
        let server = echo_server();
        let addr = server.local_addr().unwrap();
        let (r, w) = open_connection(addr).unwrap();
        assert_eq!(ask(&r, &w, "uno\n"), "uno\n");
        drop(server);
        yield_now();
        assert_eq!(
            TcpStream::connect(addr).unwrap_err().kind(),
            io::ErrorKind::ConnectionRefused
        );
        assert_eq!(ask(&r, &w, "dos\n"), "dos\n", "the connection goes on");
    });
}

#[test]
fn max_connections_holds_the_next_client_until_one_closes() {
    run(|| {
        let log = Log::new();
        let l = log.clone();
        let server = Server::builder()
            .max_connections(2)
            .start(
                move |reader: StreamReader, writer: StreamWriter| {
                    let line = reader.readline().unwrap();
                    let name = String::from_utf8_lossy(&line).trim().to_owned();
                    l.push(format!("served {name}"));
                    writer.write(&line);
                    while !reader.readline().unwrap().is_empty() {}
                },
                "127.0.0.1:0",
            )
            .unwrap();
        let addr = server.local_addr().unwrap();
        let mut clients = Vec::new();
        for name in ["1", "2", "3"] {
            let (r, w) = open_connection(addr).unwrap(); // the backlog takes all three
            w.write(format!("{name}\n").as_bytes());
            clients.push((r, w));
        }
        assert_eq!(clients[0].0.readline().unwrap(), b"1\n");
        assert_eq!(clients[1].0.readline().unwrap(), b"2\n");
        // The third waits for its answer, which needs a handler.
        let (r3, w3) = clients.pop().unwrap();
        let third = spawn(move || {
            let answer = r3.readline().unwrap();
            (answer, w3)
        });
        // Room for a wrong server to serve it (it would log before us).
        for _ in 0..20 {
            bucle::sleep(ms(1));
            assert!(server.active_connections() <= 2);
        }
        log.push("client 1 closes");
        let (_, w1) = clients.remove(0);
        w1.close();
        let (answer, _w3) = third.join().unwrap();
        assert_eq!(answer, b"3\n");
        assert_eq!(
            log.get(),
            ["served 1", "served 2", "client 1 closes", "served 3"]
        );
    });
}

// ---------------------------------------------------------------------------
// The idle timeout, on the virtual clock.

/// When an idle server's handler read its last line, and when and how
/// its read failed.
type LastLine = Rc<Cell<Option<Duration>>>;
type Failure = Rc<RefCell<Option<(Duration, io::ErrorKind)>>>;

/// A server whose handler reads lines until an error, recording the time
/// of the last line it read and the time and kind of the error.
fn idle_server(idle: Duration) -> (Server, LastLine, Failure) {
    let last = Rc::new(Cell::new(None));
    let failed = Rc::new(RefCell::new(None));
    let (l, f) = (last.clone(), failed.clone());
    let server = Server::builder()
        .idle_timeout(idle)
        .start(
            move |reader: StreamReader, writer: StreamWriter| loop {
                match reader.readline() {
                    Ok(line) if line.is_empty() => return,
                    Ok(line) => {
                        l.set(Some(bucle::time()));
                        writer.write(&line);
                    }
                    Err(ReadError::Io(e)) => {
                        *f.borrow_mut() = Some((bucle::time(), e.kind()));
                        return;
                    }
                    Err(e) => panic!("{e:?}"),
                }
            },
            "127.0.0.1:0",
        )
        .unwrap();
    (server, last, failed)
}

fn run_virtual<T: 'static>(main: impl FnOnce() -> T + 'static) -> T {
    let lp = EventLoop::builder().virtual_time().build();
    let out = lp.run_until_complete(main);
    lp.shutdown();
    lp.close();
    out
}

#[test]
fn idle_timeout_closes_a_silent_connection_between_d_and_five_quarters_d() {
    const D: Duration = Duration::from_secs(8);
    run_virtual(|| {
        let (server, last, failed) = idle_server(D);
        let (r, w) = open_connection(server.local_addr().unwrap()).unwrap();
        assert_eq!(ask(&r, &w, "hola\n"), "hola\n");
        // Silence: the client waits for the server to hang up.
        assert_eq!(r.readline().unwrap(), b"");
        let (at, kind) = failed.borrow().expect("the handler saw the timeout");
        assert_eq!(kind, io::ErrorKind::TimedOut);
        let quiet = at - last.get().unwrap();
        assert!(
            quiet >= D && quiet <= D + D / 4,
            "closed after {quiet:?} of silence (d = {D:?})"
        );
    });
}

#[test]
fn idle_timeout_spares_a_connection_that_keeps_talking() {
    const D: Duration = Duration::from_secs(8);
    run_virtual(|| {
        let (server, last, failed) = idle_server(D);
        let (r, w) = open_connection(server.local_addr().unwrap()).unwrap();
        let start = bucle::time();
        for i in 0..20 {
            assert_eq!(ask(&r, &w, &format!("{i}\n")), format!("{i}\n"));
            bucle::sleep(D / 2 + D / 8); // less than d between lines
        }
        assert!(bucle::time() - start > 10 * D);
        assert!(failed.borrow().is_none(), "timed out while talking");
        assert_eq!(r.readline().unwrap(), b"");
        let (at, kind) = failed.borrow().unwrap();
        assert_eq!(kind, io::ErrorKind::TimedOut);
        let quiet = at - last.get().unwrap();
        assert!(quiet >= D && quiet <= D + D / 4, "{quiet:?}");
    });
}

#[test]
fn an_idle_timeout_fails_drain_too() {
    const D: Duration = Duration::from_secs(2);
    run_virtual(|| {
        let result = Rc::new(RefCell::new(None));
        let res = result.clone();
        let server = Server::builder()
            .idle_timeout(D)
            .start(
                move |_reader: StreamReader, writer: StreamWriter| {
                    write_past_high(&writer, b'i'); // the client never reads
                    *res.borrow_mut() = Some(writer.drain().map_err(|e| e.kind()));
                },
                "127.0.0.1:0",
            )
            .unwrap();
        let client = TcpStream::connect(server.local_addr().unwrap()).unwrap();
        fixed_rcvbuf(&client);
        for _ in 0..100 {
            if result.borrow().is_some() {
                break;
            }
            bucle::sleep(D);
        }
        assert_eq!(*result.borrow(), Some(Err(io::ErrorKind::TimedOut)));
        drop(client);
    });
}

// ---------------------------------------------------------------------------
// Failures of handlers.

#[test]
fn a_handler_panic_is_reported_and_closes_only_its_connection() {
    let (lp, reports) = recording_loop();
    let peer = lp.run_until_complete(|| {
        let server = start_server(
            |reader: StreamReader, writer: StreamWriter| -> io::Result<()> {
                loop {
                    let line = reader.readline()?;
                    if line == b"boom\n" {
                        panic!("[intentional] boom");
                    }
                    if line.is_empty() {
                        return Ok(());
                    }
                    writer.write(&line);
                }
            },
            "127.0.0.1:0",
        )
        .unwrap();
        let addr = server.local_addr().unwrap();
        let (ra, wa) = open_connection(addr).unwrap();
        let (rb, wb) = open_connection(addr).unwrap();
        assert_eq!(ask(&ra, &wa, "a\n"), "a\n");
        assert_eq!(ask(&rb, &wb, "b\n"), "b\n");
        wa.write(b"boom\n");
        assert_eq!(ra.readline().unwrap(), b"", "its connection closes");
        assert_eq!(ask(&rb, &wb, "b again\n"), "b again\n");
        assert_eq!(server.active_connections(), 1);
        wa.local_addr().unwrap()
    });
    lp.close();
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let r = &reports[0];
    assert!(
        r.message.starts_with("Server on 127.0.0.1:")
            && r.message.contains(&format!(
                ": the handler of the connection from {peer} panicked: [intentional] boom"
            ))
            && r.message.ends_with("; its connection was closed"),
        "{}",
        r.message
    );
    assert!(
        r.panic.as_deref().unwrap().contains("[intentional] boom"),
        "{r:?}"
    );
    assert!(r.task.is_some());
    assert_eq!(
        r.task_name.as_deref(),
        Some(format!("bucle::net::Server connection from {peer}").as_str())
    );
}

#[test]
fn a_handler_error_is_reported_and_its_connection_closed() {
    let (lp, reports) = recording_loop();
    let peer = lp.run_until_complete(|| {
        let server = start_server(
            |reader: StreamReader, _writer: StreamWriter| -> io::Result<()> {
                let _ = reader.readline()?;
                Err(io::Error::other("[intentional] no thanks"))
            },
            "127.0.0.1:0",
        )
        .unwrap();
        let (r, w) = open_connection(server.local_addr().unwrap()).unwrap();
        w.write(b"hola\n");
        assert_eq!(r.readline().unwrap(), b"");
        server.close();
        server.wait_closed();
        w.local_addr().unwrap()
    });
    lp.close();
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let m = &reports[0].message;
    assert!(
        m.starts_with("Server on 127.0.0.1:")
            && m.ends_with(&format!(
                ": the handler of the connection from {peer} returned an error: \
                 [intentional] no thanks"
            )),
        "{m}"
    );
    assert!(reports[0].panic.is_none());
    assert!(reports[0].task.is_some());
}

// ---------------------------------------------------------------------------
// Graceful shutdown, end to end; counted in a child process, where no other
// test opens descriptors or stacks meanwhile.

#[test]
fn graceful_shutdown_leaves_no_task_stack_or_descriptor() {
    const NAME: &str = "graceful_shutdown_leaves_no_task_stack_or_descriptor";
    if !is_child(NAME) {
        in_child(NAME, Duration::from_secs(60));
        return;
    }
    let drops = Drops::new();
    let d = drops.clone();
    let lp = EventLoop::new();
    let (fds_before, stacks_before) = lp.run_until_complete(move || {
        // The reactor's descriptors exist from here on.
        drop(bucle::net::TcpListener::bind("127.0.0.1:0").unwrap());
        let baseline = (open_fds(), stacks_in_use());
        let server = start_server(
            move |reader: StreamReader, writer: StreamWriter| {
                let _token = d.token();
                let first = reader.readline().unwrap();
                writer.write(&first);
                if first == b"stubborn\n" {
                    bucle::sleep(Duration::from_secs(3600));
                }
                while !reader.readline().unwrap().is_empty() {}
            },
            "127.0.0.1:0",
        )
        .unwrap();
        let addr = server.local_addr().unwrap();
        let mut clients = Vec::new();
        for kind in ["quick", "quick", "quick", "stubborn", "stubborn"] {
            let (r, w) = open_connection(addr).unwrap();
            assert_eq!(ask(&r, &w, &format!("{kind}\n")), format!("{kind}\n"));
            clients.push((r, w, kind));
        }
        assert_eq!(server.active_connections(), 5);
        // 1. Stop accepting.
        server.close();
        // 2. Let the handlers finish, within a deadline: the quick ones do
        //    once their clients leave.
        for (_, w, kind) in &clients {
            if *kind == "quick" {
                w.close();
            }
        }
        assert!(timeout(ms(100), || server.wait_closed()).is_err());
        assert_eq!(server.active_connections(), 2);
        // 3. Abort the rest.
        server.abort_clients();
        server.wait_closed();
        assert_eq!(server.active_connections(), 0);
        for (r, _, kind) in &clients {
            if *kind == "stubborn" {
                let _ = r.read_to_end(); // the end, or a reset
            }
        }
        drop(clients);
        drop(server);
        yield_now();
        baseline
    });
    assert_eq!(drops.made(), 5);
    assert!(drops.all_dropped_once(), "{}", drops.report());
    // Only the main task's stack was in use at the baseline.
    assert_eq!(stacks_in_use(), stacks_before - 1);
    assert_eq!(open_fds(), fds_before);
    lp.close();
    assert_eq!(stacks_in_use(), 0);
}

#[test]
fn a_loop_closed_mid_flight_leaks_nothing_and_does_not_hang() {
    const NAME: &str = "a_loop_closed_mid_flight_leaks_nothing_and_does_not_hang";
    if !is_child(NAME) {
        in_child(NAME, Duration::from_secs(60));
        return;
    }
    let fds_before = open_fds();
    // 0: close; 1: shutdown, then close; 2: drop the loop as it is.
    for ending in 0..3 {
        let drops = Drops::new();
        let d = drops.clone();
        let lp = EventLoop::new();
        let kept = lp.run_until_complete(move || {
            let server = start_server(
                move |reader: StreamReader, writer: StreamWriter| {
                    let _token = d.token();
                    write_past_high(&writer, b'm'); // the client never reads
                    let _ = writer.drain(); // waits for good
                    let _ = reader.readline();
                },
                "127.0.0.1:0",
            )
            .unwrap();
            let addr = server.local_addr().unwrap();
            let mut clients = Vec::new();
            for _ in 0..3 {
                let (r, w) = open_connection(addr).unwrap();
                write_past_high(&w, b'c'); // the server never reads either
                clients.push((r, w));
            }
            until("three handlers wait", || drops.made() >= 3);
            (server, clients, drops)
        });
        match ending {
            0 => lp.close(),
            1 => {
                lp.shutdown();
                lp.close();
            }
            _ => {}
        }
        drop(lp);
        let (server, clients, drops) = kept;
        assert!(drops.all_dropped_once(), "{}", drops.report());
        drop(clients);
        drop(server);
    }
    assert_eq!(stacks_in_use(), 0);
    assert_eq!(open_fds(), fds_before);
}

// ---------------------------------------------------------------------------
// Hostile handlers.

#[test]
fn a_second_server_on_a_port_in_use_is_refused() {
    run(|| {
        let first = echo_server();
        let err = start_server(echo, first.local_addr().unwrap()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert!(first.is_serving());
    });
}

#[test]
fn a_handler_that_closes_the_server() {
    run(|| {
        let slot: Rc<RefCell<Option<Server>>> = Rc::new(RefCell::new(None));
        let s = slot.clone();
        let server = start_server(
            move |reader: StreamReader, writer: StreamWriter| {
                if let Some(server) = s.borrow_mut().take() {
                    server.close();
                }
                echo(reader, writer)
            },
            "127.0.0.1:0",
        )
        .unwrap();
        *slot.borrow_mut() = Some(server.clone());
        let addr = server.local_addr().unwrap();
        let (r, w) = open_connection(addr).unwrap();
        assert_eq!(ask(&r, &w, "uno\n"), "uno\n");
        assert!(!server.is_serving());
        assert_eq!(
            TcpStream::connect(addr).unwrap_err().kind(),
            io::ErrorKind::ConnectionRefused
        );
        w.close();
        server.wait_closed();
    });
}

#[test]
fn dropping_the_only_server_handle_inside_a_handler() {
    run(|| {
        let slot: Rc<RefCell<Option<Server>>> = Rc::new(RefCell::new(None));
        let s = slot.clone();
        let handler = move |reader: StreamReader, writer: StreamWriter| {
            drop(s.borrow_mut().take()); // the last handle
            echo(reader, writer)
        };
        let server = start_server(handler, "127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        *slot.borrow_mut() = Some(server);
        let (r, w) = open_connection(addr).unwrap();
        assert_eq!(ask(&r, &w, "uno\n"), "uno\n");
        assert_eq!(
            TcpStream::connect(addr).unwrap_err().kind(),
            io::ErrorKind::ConnectionRefused
        );
        assert_eq!(ask(&r, &w, "dos\n"), "dos\n");
        w.close();
        assert_eq!(r.read_to_end().unwrap(), b"");
    });
}

/// A value captured by a handler that, when dropped, re-enters the server
/// (aborts its clients and closes it) and then panics.
struct Reenter {
    server: Rc<RefCell<Option<Server>>>,
    log: Log,
    panic: bool,
}

impl Drop for Reenter {
    fn drop(&mut self) {
        self.log.push("dropped");
        let server = self.server.borrow_mut().take();
        if let Some(server) = server {
            server.abort_clients();
            server.close();
        }
        if self.panic {
            panic!("[intentional] a handler's capture panics when dropped");
        }
    }
}

#[test]
fn handler_captures_that_re_enter_the_server_or_panic_when_dropped() {
    for panic in [false, true] {
        let (lp, reports) = recording_loop();
        let log = Log::new();
        let l = log.clone();
        lp.run_until_complete(move || {
            let slot = Rc::new(RefCell::new(None));
            let capture = Reenter {
                server: slot.clone(),
                log: l.clone(),
                panic,
            };
            let server = start_server(
                move |reader: StreamReader, writer: StreamWriter| {
                    let _ = &capture;
                    echo(reader, writer)
                },
                "127.0.0.1:0",
            )
            .unwrap();
            // The capture holds a handle of its own (a cycle the close breaks).
            *slot.borrow_mut() = Some(server.clone());
            let (r, w) = open_connection(server.local_addr().unwrap()).unwrap();
            assert_eq!(ask(&r, &w, "hola\n"), "hola\n");
            // Closing ends the accept task; the connection's task still
            // holds the handler until its client leaves.
            server.close();
            yield_now();
            assert!(!l.contains("dropped"));
            w.close();
            server.wait_closed();
            yield_now();
            assert!(l.contains("dropped"), "the handler was never dropped");
        });
        lp.close();
        let reports = reports.borrow();
        if panic {
            assert_eq!(reports.len(), 1, "{reports:?}");
            assert!(
                reports[0]
                    .panic
                    .as_deref()
                    .unwrap()
                    .contains("a handler's capture panics when dropped"),
                "{reports:?}"
            );
        } else {
            assert!(reports.is_empty(), "{reports:?}");
        }
    }
}

#[test]
fn a_panicking_handler_capture_dropped_as_the_accept_task_unwinds() {
    // No connection: closing cancels the accept task, which holds the
    // handler's last reference, so the capture is dropped while it unwinds.
    let (lp, reports) = recording_loop();
    let log = Log::new();
    let l = log.clone();
    lp.run_until_complete(move || {
        let capture = Reenter {
            server: Rc::new(RefCell::new(None)),
            log: l.clone(),
            panic: true,
        };
        let server = start_server(
            move |_r: StreamReader, _w: StreamWriter| {
                let _ = &capture;
            },
            "127.0.0.1:0",
        )
        .unwrap();
        yield_now(); // the accept task waits
        server.close();
        server.wait_closed();
        yield_now();
    });
    lp.close();
    assert!(log.contains("dropped"));
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{reports:?}");
}

#[test]
fn a_loop_shutdown_closes_its_servers() {
    // shutdown() cancels every task, the accept task included: the server
    // is then closed, not left looking open with nobody accepting.
    let lp = EventLoop::new();
    let server = lp.run_until_complete(|| {
        let server = echo_server();
        let (r, w) = open_connection(server.local_addr().unwrap()).unwrap();
        assert_eq!(ask(&r, &w, "hola\n"), "hola\n");
        server
    });
    lp.shutdown();
    assert!(!server.is_serving());
    let addr = server.local_addr().unwrap();
    lp.run_until_complete(move || {
        assert_eq!(
            TcpStream::connect(addr).unwrap_err().kind(),
            io::ErrorKind::ConnectionRefused
        );
        timeout(ms(2000), || server.wait_closed()).expect("wait_closed after shutdown");
        assert_eq!(server.active_connections(), 0);
    });
    lp.close();
}

#[test]
fn builder_options_reach_the_connections_and_zeros_are_refused() {
    let (lp, reports) = recording_loop();
    lp.run_until_complete(|| {
        let limits = Log::new();
        let l = limits.clone();
        let server = Server::builder()
            .backlog(5)
            .reuse_address(false)
            .limit(16)
            .start(
                move |reader: StreamReader, writer: StreamWriter| {
                    l.push(reader.limit().to_string());
                    echo(reader, writer)
                },
                "127.0.0.1:0",
            )
            .unwrap();
        let (r, w) = open_connection(server.local_addr().unwrap()).unwrap();
        assert_eq!(ask(&r, &w, "0123456789abcdef\n"), "0123456789abcdef\n");
        // 17 bytes before the newline: past the limit, the handler fails.
        w.write(b"0123456789abcdefg\n");
        assert_eq!(r.readline().unwrap(), b"");
        assert_eq!(limits.get(), ["16"]);
        for msg in [
            streams_support::catch_msg(|| Server::builder().limit(0)).unwrap_err(),
            streams_support::catch_msg(|| Server::builder().max_connections(0)).unwrap_err(),
            streams_support::catch_msg(|| Server::builder().idle_timeout(Duration::ZERO))
                .unwrap_err(),
        ] {
            assert!(msg.contains("must be positive"), "{msg}");
        }
    });
    lp.close();
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(
        reports[0]
            .message
            .ends_with("line longer than the limit (18 bytes dropped)"),
        "{reports:?}"
    );
}

#[test]
fn an_exception_handler_that_re_enters_the_server() {
    // The report of a handler's panic comes from a done callback, and of
    // its error from its task: an exception handler that aborts the
    // clients and closes the server from there changes nothing it must not.
    quiet();
    let lp = EventLoop::new();
    let slot: Rc<RefCell<Option<Server>>> = Rc::new(RefCell::new(None));
    let seen = Log::new();
    let (s, l) = (slot.clone(), seen.clone());
    lp.set_exception_handler(move |ctx| {
        l.push(ctx.message.clone());
        let server = s.borrow().clone();
        if let Some(server) = server {
            server.abort_clients();
            server.close();
        }
    });
    lp.run_until_complete(move || {
        let server = start_server(
            |reader: StreamReader, _writer: StreamWriter| -> io::Result<()> {
                let line = reader.readline()?;
                if line == b"panic\n" {
                    panic!("[intentional] the handler panics");
                }
                Err(io::Error::other("[intentional] the handler fails"))
            },
            "127.0.0.1:0",
        )
        .unwrap();
        *slot.borrow_mut() = Some(server.clone());
        let addr = server.local_addr().unwrap();
        let (r1, w1) = open_connection(addr).unwrap();
        let (r2, w2) = open_connection(addr).unwrap();
        let (r3, _w3) = open_connection(addr).unwrap();
        until("three connections", || server.active_connections() == 3);
        w1.write(b"panic\n");
        assert_eq!(r1.read_to_end().unwrap(), b"");
        w2.write(b"error\n"); // refused or aborted: the first report closed it all
        let _ = r2.read_to_end();
        let _ = r3.read_to_end();
        timeout(ms(2000), || server.wait_closed()).expect("wait_closed");
        assert!(!server.is_serving());
        slot.borrow_mut().take();
    });
    lp.close();
    let seen = seen.get();
    assert!(!seen.is_empty() && seen[0].contains("panicked"), "{seen:?}");
}
