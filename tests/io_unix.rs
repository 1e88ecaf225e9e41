//! Stage 5, Unix domain sockets: echo over a path in a temp dir, many
//! clients, `pair`, addresses, half-close, close, and errors for bad
//! paths.

#[path = "support/net.rs"]
mod net_support;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::rc::Rc;

use bucle::net::{UnixListener, UnixStream};
use bucle::{spawn, timeout, yield_now};
use net_support::{TempDir, ms, run};

#[test]
fn echo_over_a_unix_socket_with_many_clients() {
    const CLIENTS: usize = 50;
    let dir = TempDir::new("unix-echo");
    let path = dir.join("echo.sock");
    let p = path.clone();
    let total = run(move || {
        let listener = UnixListener::bind(&p).unwrap();
        assert_eq!(
            listener.local_addr().unwrap().as_pathname(),
            Some(p.as_path())
        );
        let server = spawn(move || {
            let mut conns = Vec::new();
            for _ in 0..CLIENTS {
                let (conn, _peer) = listener.accept().unwrap();
                conns.push(spawn(move || {
                    for line in BufReader::new(&conn).lines() {
                        writeln!(&conn, "echo {}", line.unwrap()).unwrap();
                    }
                }));
            }
            bucle::gather(conns).unwrap();
        });
        let clients = (0..CLIENTS).map(|i| {
            let p = p.clone();
            spawn(move || {
                let conn = UnixStream::connect(&p).unwrap();
                assert_eq!(conn.peer_addr().unwrap().as_pathname(), Some(p.as_path()));
                let mut reader = BufReader::new(&conn);
                for r in 0..5 {
                    writeln!(&conn, "{i}.{r}").unwrap();
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    assert_eq!(line, format!("echo {i}.{r}\n"));
                }
                5
            })
        });
        let total: usize = bucle::gather(clients).unwrap().into_iter().sum();
        server.join().unwrap();
        total
    });
    assert_eq!(total, CLIENTS * 5);
    drop(dir);
    assert!(!path.exists());
}

#[test]
fn pair_half_close_and_owned_read_write() {
    run(|| {
        let (mut a, b) = UnixStream::pair().unwrap();
        let t = spawn(move || {
            let mut s = String::new();
            (&b).read_to_string(&mut s).unwrap(); // until a's half-close
            b.write_all(s.to_uppercase().as_bytes()).unwrap();
            b.shutdown(Shutdown::Write).unwrap();
        });
        a.write_all(b"half").unwrap();
        a.shutdown(Shutdown::Write).unwrap();
        let mut back = String::new();
        a.read_to_string(&mut back).unwrap();
        assert_eq!(back, "HALF");
        t.join().unwrap();
        assert!(format!("{a:?}").contains("UnixStream"));
    });
}

#[test]
fn writing_to_a_closed_unix_peer_is_broken_pipe_not_sigpipe() {
    run(|| {
        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        let chunk = [0u8; 4096];
        let mut err = None;
        for _ in 0..1000 {
            if let Err(e) = a.write(&chunk) {
                err = Some(e);
                break;
            }
        }
        assert_eq!(
            err.expect("a write fails").kind(),
            io::ErrorKind::BrokenPipe
        );
    });
}

#[test]
fn a_timed_out_read_on_a_unix_stream_loses_nothing() {
    run(|| {
        let (a, b) = UnixStream::pair().unwrap();
        let mut buf = [0u8; 8];
        assert!(timeout(ms(10), || a.read(&mut buf)).is_err());
        b.write_all(b"late").unwrap();
        let n = a.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"late");
    });
}

#[test]
fn close_wakes_waiters_and_stops_the_listener() {
    let dir = TempDir::new("unix-close");
    let path = dir.join("l.sock");
    run(move || {
        let listener = Rc::new(UnixListener::bind(&path).unwrap());
        let l = listener.clone();
        let acceptor = spawn(move || l.accept().map(|_| ()));
        let (a, _b) = UnixStream::pair().unwrap();
        let a = Rc::new(a);
        let a2 = a.clone();
        let reader = spawn(move || {
            let mut buf = [0u8; 4];
            a2.read(&mut buf)
        });
        yield_now();
        listener.close();
        a.close();
        assert_eq!(
            acceptor.join().unwrap().unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
        assert_eq!(
            reader.join().unwrap().unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
        assert!(listener.is_closed() && a.is_closed());
        assert!(UnixStream::connect(&path).is_err(), "nobody listens now");
    });
}

#[test]
fn bad_paths_are_errors() {
    let dir = TempDir::new("unix-bad");
    let missing = dir.join("nobody-here.sock");
    run(move || {
        let err = UnixStream::connect(&missing).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let long = "x".repeat(200);
        let err = UnixStream::connect(&long).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = UnixStream::connect("").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    });
}

/// A listener on `path` with a backlog of 1, made with libc (std's bind
/// asks for a large backlog).
fn listener_with_backlog_1(path: &std::path::Path) -> UnixListener {
    use std::os::fd::AsRawFd;
    let std_listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    // SAFETY: listen(2) on the listener's open descriptor, integers only;
    // calling it again only changes the backlog.
    let r = unsafe { libc::listen(std_listener.as_raw_fd(), 1) };
    assert_eq!(r, 0, "listen: {}", io::Error::last_os_error());
    UnixListener::from_std(std_listener).unwrap()
}

#[test]
fn connect_waits_out_a_full_backlog() {
    // More clients than the listener's backlog, none accepted at first:
    // connects past the backlog get EAGAIN and retry until accepted.
    const CLIENTS: usize = 20;
    let dir = TempDir::new("unix-backlog");
    let path = dir.join("b.sock");
    let connected = run(move || {
        let listener = listener_with_backlog_1(&path);
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let p = path.clone();
                spawn(move || UnixStream::connect(&p).map(drop))
            })
            .collect();
        bucle::sleep(ms(20)); // all have tried; most are pausing
        let mut accepted = Vec::new();
        for _ in 0..CLIENTS {
            accepted.push(listener.accept().unwrap().0);
        }
        let ok = bucle::gather(clients)
            .unwrap()
            .into_iter()
            .filter(Result::is_ok)
            .count();
        drop(accepted);
        ok
    });
    assert_eq!(connected, CLIENTS);
}
