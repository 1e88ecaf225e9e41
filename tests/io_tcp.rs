//! Stage 5, TCP: echo, many clients on one loop, std's `Read`/`Write`
//! adapters inside tasks (interleaving with other tasks), name resolution,
//! `TCP_NODELAY`, and timeouts/cancellation of parked reads and writes
//! with the socket reused afterwards and no byte lost.

#[path = "support/net.rs"]
mod net_support;

use std::cell::{Cell, RefCell};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bucle::net::{TcpListener, TcpStream};
use bucle::{Elapsed, JoinError, sleep, spawn, timeout, yield_now};
use net_support::{ms, run};

/// A connected pair on loopback: (client side, server side).
fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = spawn(move || TcpStream::connect(addr).unwrap());
    let (server, peer) = listener.accept().unwrap();
    let client = client.join().unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    (client, server)
}

#[test]
fn echo_over_tcp() {
    run(|| {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 64];
            let mut echoed = 0;
            loop {
                let n = conn.read(&mut buf).unwrap();
                if n == 0 {
                    return echoed;
                }
                conn.write_all(&buf[..n]).unwrap();
                echoed += n;
            }
        });
        let mut client = TcpStream::connect(addr).unwrap();
        assert_eq!(client.peer_addr().unwrap(), addr);
        for msg in [&b"hola"[..], b"mundo", &[7u8; 40]] {
            client.write_all(msg).unwrap();
            let mut back = vec![0u8; msg.len()];
            client.read_exact(&mut back).unwrap();
            assert_eq!(back, msg);
        }
        client.shutdown(Shutdown::Write).unwrap();
        assert_eq!(server.join().unwrap(), 4 + 5 + 40);
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    });
}

#[test]
fn a_hundred_concurrent_clients_on_one_loop() {
    const CLIENTS: usize = 100;
    const ROUNDS: usize = 20;
    let (served, total) = run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Rc::new(Cell::new(0));
        let s = served.clone();
        let server = spawn(move || {
            let mut conns = Vec::new();
            for _ in 0..CLIENTS {
                let (conn, _) = listener.accept().unwrap();
                let s = s.clone();
                conns.push(spawn(move || {
                    for line in BufReader::new(&conn).lines() {
                        writeln!(&conn, "{}", line.unwrap()).unwrap();
                    }
                    s.set(s.get() + 1);
                }));
            }
            bucle::gather(conns).unwrap();
        });
        let clients = (0..CLIENTS).map(|i| {
            spawn(move || {
                let conn = TcpStream::connect(addr).unwrap();
                let mut reader = BufReader::new(&conn);
                let mut total = 0;
                for round in 0..ROUNDS {
                    writeln!(&conn, "client {i} round {round}").unwrap();
                    let mut reply = String::new();
                    reader.read_line(&mut reply).unwrap();
                    assert_eq!(reply, format!("client {i} round {round}\n"));
                    total += 1;
                }
                total
            })
        });
        let total: usize = bucle::gather(clients).unwrap().into_iter().sum();
        server.join().unwrap();
        (served.get(), total)
    });
    assert_eq!(served, CLIENTS);
    assert_eq!(total, CLIENTS * ROUNDS);
}

#[test]
fn buf_reader_lines_in_a_task_interleave_with_other_tasks() {
    let log = run(|| {
        let (client, server) = pair();
        let log = Rc::new(RefCell::new(Vec::<String>::new()));
        let l = log.clone();
        let reader = spawn(move || {
            for line in BufReader::new(&server).lines() {
                l.borrow_mut().push(format!("line {}", line.unwrap()));
            }
            l.borrow_mut().push("eof".into());
        });
        let l = log.clone();
        let done = Rc::new(Cell::new(false));
        let d = done.clone();
        let ticker = spawn(move || {
            while !d.get() {
                l.borrow_mut().push("tick".into());
                sleep(ms(1));
            }
        });
        for i in 0..3 {
            writeln!(&client, "{i}").unwrap();
            sleep(ms(5));
        }
        client.shutdown(Shutdown::Write).unwrap();
        reader.join().unwrap();
        done.set(true);
        ticker.join().unwrap();
        log.take()
    });
    let lines: Vec<_> = log.iter().filter(|e| e.starts_with("line")).collect();
    assert_eq!(lines, ["line 0", "line 1", "line 2"]);
    assert_eq!(log.iter().filter(|e| *e == "eof").count(), 1);
    // The reader was suspended between lines, and the ticker ran then.
    let pos = |s: &str| log.iter().position(|e| e == s).unwrap();
    for (a, b) in [("line 0", "line 1"), ("line 1", "line 2")] {
        assert!(
            log[pos(a)..pos(b)].iter().any(|e| e == "tick"),
            "no tick between {a} and {b}: {log:?}"
        );
    }
}

#[test]
fn io_copy_in_a_task_while_other_tasks_run() {
    const LEN: usize = 1 << 20;
    let (back, ticks) = run(|| {
        let (client, server) = pair();
        // The server echoes with std's io::copy, reading and writing the
        // same socket through `&TcpStream`.
        let echo = spawn(move || {
            let n = io::copy(&mut &server, &mut &server).unwrap();
            server.shutdown(Shutdown::Write).unwrap();
            n
        });
        let ticks = Rc::new(Cell::new(0u32));
        let t = ticks.clone();
        let ticker = spawn(move || {
            loop {
                t.set(t.get() + 1);
                yield_now();
            }
        });
        let client = Rc::new(client);
        let c = client.clone();
        let data: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
        let expected = data.clone();
        let writer = spawn(move || {
            c.write_all(&data).unwrap();
            c.shutdown(Shutdown::Write).unwrap();
        });
        let mut back = Vec::new();
        (&*client).read_to_end(&mut back).unwrap();
        writer.join().unwrap();
        assert_eq!(echo.join().unwrap(), LEN as u64);
        ticker.cancel();
        assert!(matches!(ticker.join(), Err(JoinError::Cancelled)));
        assert!(back == expected, "the echo differs from what was sent");
        (back.len(), ticks.get())
    });
    assert_eq!(back, LEN);
    assert!(ticks > 1, "the ticker never ran while io::copy worked");
}

#[test]
fn connect_by_name_resolves_on_the_thread_pool() {
    run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = spawn(move || {
            for _ in 0..3 {
                let (conn, _) = listener.accept().unwrap();
                conn.write_all(b"hi").unwrap();
            }
        });
        // "localhost" may give ::1 first, where nobody listens: connect
        // tries each address in turn.
        let by_str = TcpStream::connect(format!("localhost:{port}")).unwrap();
        let by_tuple = TcpStream::connect(("localhost", port)).unwrap();
        let by_string_tuple = TcpStream::connect((String::from("localhost"), port)).unwrap();
        for s in [&by_str, &by_tuple, &by_string_tuple] {
            let mut buf = [0u8; 2];
            (&*s).read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"hi");
            assert!(s.peer_addr().unwrap().ip().is_loopback());
        }
        server.join().unwrap();
        // No address at all is an error, not a hang or a panic.
        let none: &[SocketAddr] = &[];
        let err = TcpStream::connect(none).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    });
}

#[test]
fn connect_tries_every_address_and_returns_the_last_error() {
    run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let good = listener.local_addr().unwrap();
        // A port nobody listens on (bound then closed: refused).
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let accepted = spawn(move || listener.accept().map(|(_, peer)| peer));
        let s = TcpStream::connect(&[closed, good][..]).unwrap();
        assert_eq!(s.peer_addr().unwrap(), good);
        assert_eq!(accepted.join().unwrap().unwrap(), s.local_addr().unwrap());
        let err = TcpStream::connect([closed, closed]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    });
}

#[test]
fn tcp_over_ipv6_loopback() {
    run(|| {
        let listener = match TcpListener::bind("[::1]:0") {
            Ok(l) => l,
            // No IPv6 on this machine: nothing to test.
            Err(e) if e.kind() == io::ErrorKind::AddrNotAvailable => return,
            Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => return,
            Err(e) => panic!("bind [::1]: {e}"),
        };
        let addr = listener.local_addr().unwrap();
        assert!(addr.is_ipv6());
        let server = spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 3];
            (&conn).read_exact(&mut buf).unwrap();
            conn.write_all(&buf).unwrap();
        });
        let c = TcpStream::connect(addr).unwrap();
        c.write_all(b"six").unwrap();
        let mut buf = [0u8; 3];
        (&c).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"six");
        server.join().unwrap();
    });
}

#[test]
fn nodelay_is_on_for_connected_and_accepted_streams() {
    run(|| {
        let (client, server) = pair();
        assert!(client.nodelay().unwrap());
        assert!(server.nodelay().unwrap());
        client.set_nodelay(false).unwrap();
        assert!(!client.nodelay().unwrap());
        // from_std turns it on too.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let wrapped = TcpStream::from_std(s).unwrap();
        assert!(wrapped.nodelay().unwrap());
        let listener = TcpListener::from_std(l).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(accepted.nodelay().unwrap());
        // Debug names the addresses.
        let dbg = format!("{client:?} {listener:?}");
        assert!(
            dbg.contains("TcpStream") && dbg.contains("TcpListener"),
            "{dbg}"
        );
        assert!(dbg.contains("127.0.0.1"), "{dbg}");
    });
}

#[test]
fn listener_close_wakes_a_waiting_accept_and_refuses_connections() {
    run(|| {
        let listener = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = listener.local_addr().unwrap();
        let l = listener.clone();
        let acceptor = spawn(move || l.accept().map(|_| ()));
        yield_now(); // parked in accept
        listener.close();
        assert!(listener.is_closed());
        let err = acceptor.join().unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotConnected);
        assert_eq!(
            listener.accept().unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
        // On Linux the port stops listening at once.
        #[cfg(target_os = "linux")]
        {
            let err = TcpStream::connect(addr).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        }
        let _ = addr;
    });
}

#[test]
fn a_timed_out_read_loses_nothing_and_the_stream_is_reused() {
    run(|| {
        let (client, server) = pair();
        let mut buf = [0u8; 16];
        let start = Instant::now();
        let r = timeout(ms(20), || server.read(&mut buf));
        assert!(matches!(r, Err(Elapsed { .. })));
        assert!(start.elapsed() >= ms(20));
        // Again, through std's Read on &TcpStream.
        let r = timeout(ms(5), || Read::read(&mut &server, &mut buf));
        assert!(r.is_err());
        client.write_all(b"late").unwrap();
        let n = server.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"late");
        // A second reader is welcome now: the withdrawn waits left nothing.
        let s = Rc::new(server);
        let s2 = s.clone();
        let reader = spawn(move || {
            let mut buf = [0u8; 4];
            (&*s2).read_exact(&mut buf).map(|()| buf)
        });
        yield_now();
        client.write_all(b"more").unwrap();
        assert_eq!(&reader.join().unwrap().unwrap(), b"more");
    });
}

#[test]
fn a_cancelled_read_loses_nothing() {
    run(|| {
        let (client, server) = pair();
        let server = Rc::new(server);
        let s = server.clone();
        let reader = spawn(move || {
            let mut buf = [0u8; 8];
            s.read(&mut buf)
        });
        yield_now(); // parked
        reader.cancel();
        assert!(matches!(reader.join(), Err(JoinError::Cancelled)));
        client.write_all(b"kept").unwrap();
        let mut buf = [0u8; 4];
        (&*server).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"kept");
    });
}

/// Fills the send path with a counter pattern until a write parks, and
/// lets a timeout or a cancel interrupt it; the peer then reads every
/// byte that was reported written, followed by a trailer, intact.
#[test]
fn timed_out_and_cancelled_writes_lose_and_duplicate_nothing() {
    run(|| {
        let (client, server) = pair();
        let client = Rc::new(client);
        let written = Rc::new(Cell::new(0usize));
        let pattern = |from: usize, len: usize| -> Vec<u8> {
            (from..from + len).map(|i| (i % 253) as u8).collect()
        };
        // 1. A timeout around a write loop: it fills the buffers, parks,
        //    and is unwound.
        let (c, w) = (client.clone(), written.clone());
        let r = timeout(ms(30), move || {
            loop {
                let chunk = pattern(w.get(), 16 * 1024);
                let n = c.write(&chunk).unwrap();
                w.set(w.get() + n);
            }
        });
        assert!(r.is_err());
        let after_timeout = written.get();
        assert!(after_timeout > 0);
        // 2. A cancelled writer task, parked on the full buffer.
        let (c, w) = (client.clone(), written.clone());
        let writer = spawn(move || {
            loop {
                let chunk = pattern(w.get(), 16 * 1024);
                let n = Write::write(&mut &*c, &chunk).unwrap();
                w.set(w.get() + n);
            }
        });
        yield_now();
        yield_now();
        writer.cancel();
        assert!(matches!(writer.join(), Err(JoinError::Cancelled)));
        // 3. The stream is still usable: a trailer, then the end.
        let (c, w) = (client.clone(), written.clone());
        let finish = spawn(move || {
            let trailer = pattern(w.get(), 1000);
            c.write_all(&trailer).unwrap();
            w.set(w.get() + trailer.len());
            c.shutdown(Shutdown::Write).unwrap();
        });
        let mut got = Vec::new();
        (&server).read_to_end(&mut got).unwrap();
        finish.join().unwrap();
        assert_eq!(got.len(), written.get());
        assert!(
            got == pattern(0, got.len()),
            "bytes lost, reordered or doubled"
        );
    });
}

#[test]
fn an_owned_stream_reads_and_writes_through_std_traits() {
    run(|| {
        let (mut client, mut server) = pair();
        let t = spawn(move || {
            let mut s = String::new();
            server.read_to_string(&mut s).unwrap();
            server.write_all(s.to_uppercase().as_bytes()).unwrap();
            server.flush().unwrap();
        });
        client.write_all(b"abc").unwrap();
        client.flush().unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let mut s = String::new();
        client.read_to_string(&mut s).unwrap();
        assert_eq!(s, "ABC");
        t.join().unwrap();
    });
}

#[test]
fn an_idle_wait_for_a_connection_does_not_spin() {
    // While the loop waits in accept with nothing else to do, it blocks in
    // the poller: the process uses (almost) no CPU.
    fn cpu() -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a live timespec the call fills in.
        let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        assert_eq!(r, 0);
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
    let used = run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let before = cpu();
        let r = timeout(ms(200), || listener.accept().map(|_| ()));
        assert!(r.is_err());
        cpu() - before
    });
    assert!(
        used < ms(100),
        "the loop used {used:?} of CPU in 200 ms idle"
    );
}
