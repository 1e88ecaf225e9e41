//! Stage 5, faults: a reset peer is `ConnectionReset` at the next read,
//! writing to a closed peer is `BrokenPipe` and never a `SIGPIPE` (checked
//! in a child process with `SIGPIPE` at its default action), half-close,
//! `ConnectionRefused`, and `accept` out of file descriptors (`EMFILE`, in
//! a child process with a lowered limit) returns the error at once.

#[path = "support/net.rs"]
mod net_support;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bucle::net::{TcpListener, TcpStream, UnixStream};
use bucle::{spawn, timeout, yield_now};
use net_support::{in_child, is_child, linger_zero, ms, run};

/// A connected pair on loopback: (client side, server side).
fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = spawn(move || TcpStream::connect(addr).unwrap());
    let (server, _) = listener.accept().unwrap();
    (client.join().unwrap(), server)
}

/// An address on loopback where nobody listens.
fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[test]
fn a_reset_peer_is_connection_reset_at_the_next_read() {
    run(|| {
        // Reset while the reader is parked: the RST wakes it.
        let (client, server) = pair();
        let client = Rc::new(client);
        let c = client.clone();
        let reader = spawn(move || {
            let mut buf = [0u8; 8];
            timeout(Duration::from_secs(5), || c.read(&mut buf)).expect("the reset arrives")
        });
        yield_now(); // parked
        linger_zero(&server);
        drop(server); // SO_LINGER 0: close sends RST
        let err = reader.join().unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);

        // Reset before the read: the read finds it at once.
        let (client, server) = pair();
        linger_zero(&server);
        drop(server);
        bucle::sleep(ms(10));
        let mut buf = [0u8; 8];
        let err = client.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        // After the reset is reported, the stream reads the end.
        assert_eq!(client.read(&mut buf).unwrap(), 0);
    });
}

#[test]
fn connecting_to_a_closed_port_is_connection_refused() {
    run(|| {
        let addr = closed_port();
        let err = TcpStream::connect(addr).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        let err = TcpStream::connect(format!("127.0.0.1:{}", addr.port())).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    });
}

#[test]
fn half_close_reads_the_end_and_the_other_side_still_writes() {
    run(|| {
        let (client, server) = pair();
        client.write_all(b"question").unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let server_task = spawn(move || {
            let mut got = Vec::new();
            (&server).read_to_end(&mut got).unwrap(); // ends at the half-close
            assert_eq!(got, b"question");
            let mut buf = [0u8; 4];
            assert_eq!(server.read(&mut buf).unwrap(), 0, "the end stays the end");
            server.write_all(b"answer").unwrap();
        });
        let mut reply = Vec::new();
        (&client).read_to_end(&mut reply).unwrap();
        assert_eq!(reply, b"answer");
        server_task.join().unwrap();
        // The write half is shut: writing now fails, without a signal.
        assert!(client.write(b"more").is_err());
    });
}

/// Writes to `s` until a write fails; the error.
fn write_until_error(s: &impl Fn(&[u8]) -> io::Result<usize>) -> io::Error {
    let chunk = [0u8; 16 * 1024];
    for _ in 0..10_000 {
        if let Err(e) = s(&chunk) {
            return e;
        }
    }
    panic!("10,000 writes to a closed peer succeeded");
}

/// Run in a child with `SIGPIPE` at its default action (Rust programs
/// ignore it, which would hide a missing `MSG_NOSIGNAL`): a write to a
/// closed peer must come back as `BrokenPipe`, not kill the process.
#[test]
fn writing_to_a_closed_peer_is_broken_pipe_never_sigpipe() {
    const NAME: &str = "writing_to_a_closed_peer_is_broken_pipe_never_sigpipe";
    if !is_child(NAME) {
        in_child(NAME, Duration::from_secs(60));
        return;
    }
    // SAFETY: restoring the default action of SIGPIPE in this child
    // process, which runs this one test alone.
    let prev = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    assert_ne!(prev, libc::SIG_ERR);
    run(|| {
        // TCP, the peer closed normally.
        let (client, server) = pair();
        drop(server);
        let err = write_until_error(&|b: &[u8]| client.write(b));
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{err:?}"
        );
        // Once the reset has been reported, it is BrokenPipe for good.
        let err = write_until_error(&|b: &[u8]| Write::write(&mut &client, b));
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        // Unix: std's own write would raise SIGPIPE here.
        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        let err = write_until_error(&|buf: &[u8]| Write::write(&mut &a, buf));
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    });
}

/// Run in a child: with the descriptor limit reached, `accept` returns
/// `EMFILE` at once (the connection stays queued, the listener stays
/// readable: retrying inside would spin), and accepts it once descriptors
/// are free again.
#[test]
fn accept_out_of_descriptors_returns_emfile_at_once() {
    const NAME: &str = "accept_out_of_descriptors_returns_emfile_at_once";
    if !is_child(NAME) {
        in_child(NAME, Duration::from_secs(60));
        return;
    }
    run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // Queued in the backlog; nobody accepted it yet.
        let client = std::net::TcpStream::connect(addr).unwrap();
        bucle::sleep(ms(1)); // the reactor and its descriptors exist by now

        let no_fds = net_support::NoDescriptors::take();

        for _ in 0..3 {
            let start = Instant::now();
            let err = listener.accept().unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{err:?}");
            assert!(
                start.elapsed() < ms(5_000),
                "accept took {:?} to report EMFILE",
                start.elapsed()
            );
        }

        drop(no_fds);
        let (conn, peer) = listener.accept().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        (&client).write_all(b"ok").unwrap();
        let mut buf = [0u8; 2];
        (&conn).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ok");
    });
}
