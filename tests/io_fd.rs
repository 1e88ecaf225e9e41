//! Stage 5, descriptors and their registrations: `close()` wakes a task
//! parked on the socket (or on a pipe through `AsyncFd`) with an error;
//! one reader and one writer at a time; a closed socket's waiter never
//! sees the events of the socket that reuses its fd number (or its
//! reactor slot); and no descriptor leaks through storms of connect,
//! accept, cancel and close. The tests that count or compare fd numbers
//! run alone in a child process, where no other test opens descriptors
//! meanwhile.

#[path = "support/net.rs"]
mod net_support;

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use bucle::io::AsyncFd;
use bucle::net::{TcpListener, TcpStream, UdpSocket, UnixStream};
use bucle::{JoinError, spawn, timeout, yield_now};
use net_support::{in_child, is_child, ms, open_fds, run};

/// A connected pair on loopback: (client side, server side).
fn pair_on(listener: &TcpListener) -> (TcpStream, TcpStream) {
    let addr = listener.local_addr().unwrap();
    let client = spawn(move || TcpStream::connect(addr).unwrap());
    let (server, _) = listener.accept().unwrap();
    (client.join().unwrap(), server)
}

#[test]
fn close_wakes_a_task_parked_in_read_with_an_error() {
    run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (client, server) = pair_on(&listener);
        let server = Rc::new(server);
        let s = server.clone();
        let reader = spawn(move || {
            let mut buf = [0u8; 8];
            s.read(&mut buf)
        });
        let s = server.clone();
        let closer = spawn(move || {
            yield_now(); // the reader is parked by now
            s.close();
        });
        let err = reader.join().unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotConnected);
        closer.join().unwrap();
        assert!(server.is_closed());
        // Every later operation fails the same way, at once.
        let mut buf = [0u8; 1];
        assert_eq!(
            server.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
        assert_eq!(
            server.write(b"x").unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
        server.close(); // idempotent
        // The peer reads the end of the stream.
        let mut rest = Vec::new();
        (&client).read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    });
}

#[test]
fn close_wakes_a_task_parked_on_a_pipe() {
    run(|| {
        // A reader on an empty pipe, a writer on a full one.
        let (r, _w_unused) = io::pipe().unwrap();
        let (_r_unused, w) = io::pipe().unwrap();
        let reader = Rc::new(AsyncFd::new(r).unwrap());
        let rd = reader.clone();
        let parked = spawn(move || {
            let mut buf = [0u8; 8];
            rd.read_with(|p| (&*p).read(&mut buf))
        });
        let writer = Rc::new(AsyncFd::new(w).unwrap());
        let wr = writer.clone();
        let filler = spawn(move || {
            let chunk = [0u8; 4096];
            loop {
                wr.write_with(|p| (&*p).write(&chunk))?;
            }
        });
        yield_now();
        yield_now();
        let closer = spawn(move || {
            reader.close();
            writer.close();
        });
        assert_eq!(
            parked.join().unwrap().unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
        let err: io::Result<()> = filler.join().unwrap();
        assert_eq!(err.unwrap_err().kind(), io::ErrorKind::NotConnected);
        closer.join().unwrap();
    });
}

#[test]
fn one_reader_and_one_writer_at_a_time() {
    run(|| {
        let (a, b) = UnixStream::pair().unwrap();
        let a = Rc::new(a);
        let a1 = a.clone();
        let first = spawn(move || {
            let mut buf = [0u8; 4];
            (&*a1).read_exact(&mut buf).map(|()| buf)
        });
        yield_now(); // the first reader is parked
        let a2 = a.clone();
        let second = spawn(move || {
            let mut buf = [0u8; 4];
            a2.read(&mut buf)
        });
        let err = second.join().unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ResourceBusy);
        assert!(err.to_string().contains("read"), "{err}");
        // A writer on the same socket is fine meanwhile.
        a.write_all(b"to b").unwrap();
        let mut buf = [0u8; 4];
        (&b).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"to b");
        // The first reader was not disturbed.
        b.write_all(b"to a").unwrap();
        assert_eq!(&first.join().unwrap().unwrap(), b"to a");
    });
}

/// A task parked on socket A; A is closed (the task wakes with an error
/// and drops its handle, closing the fd), and socket B is opened at once
/// with the same fd number. The old waiter never sees B's data, and B's
/// reader gets it. In a child process: fd numbers are per process.
#[test]
fn a_reused_fd_number_never_reaches_the_old_waiter() {
    const NAME: &str = "a_reused_fd_number_never_reaches_the_old_waiter";
    if !is_child(NAME) {
        in_child(NAME, Duration::from_secs(60));
        return;
    }
    run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (a_peer, a) = pair_on(&listener);
        let a = Rc::new(a);
        let log = Rc::new(RefCell::new(Vec::<String>::new()));
        let (a2, l) = (a.clone(), log.clone());
        let old = spawn(move || {
            let mut buf = [0u8; 64];
            loop {
                match a2.read(&mut buf) {
                    Ok(n) => l
                        .borrow_mut()
                        .push(format!("A read {:?}", String::from_utf8_lossy(&buf[..n]))),
                    Err(e) => {
                        l.borrow_mut().push(format!("A error {:?}", e.kind()));
                        return;
                    }
                }
            }
        });
        yield_now(); // parked on A
        let fd_a = a.as_raw_fd();
        // Data for A is in flight when A closes: its event must go nowhere.
        a_peer.write_all(b"stale").unwrap();
        a.close();
        drop(a);
        old.join().unwrap(); // it woke with the error and dropped A: fd closed
        // B: its first socket takes the lowest free number, A's.
        let b = TcpStream::connect(addr).unwrap();
        assert_eq!(b.as_raw_fd(), fd_a, "B did not reuse A's fd number");
        let (b_peer, _) = listener.accept().unwrap();
        let b = Rc::new(b);
        let b2 = b.clone();
        let reader = spawn(move || {
            let mut buf = [0u8; 5];
            (&*b2).read_exact(&mut buf).map(|()| buf)
        });
        yield_now(); // parked on B
        b_peer.write_all(b"fresh").unwrap();
        let got = timeout(Duration::from_secs(5), || reader.join())
            .expect("B's reader is woken")
            .unwrap()
            .unwrap();
        assert_eq!(&got, b"fresh");
        assert_eq!(*log.borrow(), ["A error NotConnected"]);
        drop(a_peer);
    });
}

/// The reactor reuses a freed slot for the next registration under a new
/// generation. A task woken by a close that has not run yet still holds
/// the old key; when it runs, withdrawing its wait must not remove the
/// waiter that now waits in the same slot.
#[test]
fn a_stale_waiter_does_not_withdraw_the_new_owner_of_its_slot() {
    run(|| {
        let (a, _a_peer) = UnixStream::pair().unwrap();
        let a = Rc::new(a);
        let a2 = a.clone();
        let old = spawn(move || {
            let mut buf = [0u8; 8];
            a2.read(&mut buf)
        });
        yield_now(); // parked on A
        a.close(); // `old` is queued, not yet run; A's slot is free
        let (b, b_peer) = UnixStream::pair().unwrap(); // takes A's slot
        let writer = spawn(move || {
            b_peer.write_all(b"for b").unwrap();
            b_peer
        });
        // This task parks on B; `old` then runs and withdraws its stale
        // wait, then `writer` writes. If the withdrawal took this task's
        // waiter, nothing would wake it (the loop would report a deadlock).
        let mut buf = [0u8; 5];
        (&b).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"for b");
        assert_eq!(
            old.join().unwrap().unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
        drop(writer.join().unwrap());
    });
}

/// Storms of connect, accept, echo, cancelled and timed-out reads, close
/// while waiting, refused connects, UDP and Unix sockets: the number of
/// open descriptors is the same afterwards. In a child process, where no
/// other test opens descriptors meanwhile.
#[test]
fn no_descriptor_leaks_through_connect_accept_cancel_close_storms() {
    const NAME: &str = "no_descriptor_leaks_through_connect_accept_cancel_close_storms";
    if !is_child(NAME) {
        in_child(NAME, Duration::from_secs(120));
        return;
    }
    let before_loop = open_fds();
    run(move || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let refused = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let storm = |i: usize| {
            // Connect, accept, echo.
            let (c, s) = pair_on(&listener);
            c.write_all(b"ping").unwrap();
            let mut buf = [0u8; 4];
            (&s).read_exact(&mut buf).unwrap();
            // A read cancelled while parked, then a timed-out one.
            let s = Rc::new(s);
            let s2 = s.clone();
            let t = spawn(move || {
                let mut buf = [0u8; 4];
                s2.read(&mut buf)
            });
            yield_now();
            t.cancel();
            assert!(matches!(t.join(), Err(JoinError::Cancelled)));
            assert!(timeout(Duration::ZERO, || s.read(&mut buf)).is_err());
            // Close while another task waits.
            let c = Rc::new(c);
            let c2 = c.clone();
            let t = spawn(move || {
                let mut buf = [0u8; 4];
                c2.read(&mut buf)
            });
            yield_now();
            c.close();
            assert!(t.join().unwrap().is_err());
            // Every other round: a reset instead of an orderly end.
            if i % 2 == 0 {
                net_support::linger_zero(&*s);
            }
            s.shutdown(Shutdown::Both).ok();
            // A refused connect, and a connect cancelled before it ran.
            assert!(TcpStream::connect(refused).is_err());
            let t = spawn(move || TcpStream::connect(addr).map(drop));
            t.cancel();
            assert!(t.join().is_err());
            // UDP, and a Unix pair dropped with a reader parked... and gone.
            let u = UdpSocket::bind("127.0.0.1:0").unwrap();
            u.send_to(b"x", u.local_addr().unwrap()).unwrap();
            let mut one = [0u8; 1];
            u.recv_from(&mut one).unwrap();
            let (x, y) = UnixStream::pair().unwrap();
            drop(y);
            let mut b = [0u8; 1];
            assert_eq!(x.read(&mut b).unwrap(), 0);
        };
        storm(0); // the reactor's own descriptors exist from here on
        let cancelled_accept = {
            // The loop's tasks left nothing behind.
            bucle::sleep(ms(1));
            open_fds()
        };
        for i in 1..=200 {
            storm(i);
        }
        // Let the connections the listener still holds in its backlog
        // (none expected) and finished tasks go.
        bucle::sleep(ms(1));
        let after = open_fds();
        assert_eq!(
            cancelled_accept, after,
            "open descriptors before and after 200 storms"
        );
    });
    assert_eq!(
        before_loop,
        open_fds(),
        "open descriptors before the loop and after it closed"
    );
}
