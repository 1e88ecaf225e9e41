//! Stage 5, UDP: `send_to`/`recv_from`, `connect`/`send`/`recv`, an echo
//! server with concurrent clients, and timeouts on a parked `recv` that
//! lose no datagram.

#[path = "support/net.rs"]
mod net_support;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;

use bucle::net::UdpSocket;
use bucle::{spawn, timeout, yield_now};
use net_support::{ms, run};

#[test]
fn send_to_and_recv_from() {
    run(|| {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let b = Rc::new(b);
        let b2 = b.clone();
        let receiver = spawn(move || {
            let mut buf = [0u8; 32];
            let (n, from) = b2.recv_from(&mut buf).unwrap();
            (buf[..n].to_vec(), from)
        });
        yield_now(); // parked in recv_from
        assert_eq!(a.send_to(b"datagram", b_addr).unwrap(), 8);
        let (got, from) = receiver.join().unwrap();
        assert_eq!(got, b"datagram");
        assert_eq!(from, a_addr);
        // A string address works too.
        a.send_to(b"x", format!("127.0.0.1:{}", b_addr.port()))
            .unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(b.recv_from(&mut buf).unwrap(), (1, a_addr));
        assert!(a.peer_addr().is_err(), "not connected");
        assert!(format!("{a:?}").contains("UdpSocket"));
    });
}

#[test]
fn connect_send_and_recv() {
    run(|| {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let other = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        a.connect(b_addr).unwrap();
        b.connect(a_addr).unwrap();
        assert_eq!(a.peer_addr().unwrap(), b_addr);
        // A connected socket only receives from its peer.
        other.send_to(b"stranger", b_addr).unwrap();
        a.send(b"friend").unwrap();
        let mut buf = [0u8; 16];
        let n = b.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"friend");
        b.send(b"back").unwrap();
        let n = a.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"back");
    });
}

#[test]
fn echo_over_udp_with_concurrent_clients() {
    const CLIENTS: usize = 20;
    const ROUNDS: usize = 10;
    let total = run(|| {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let echo = spawn(move || {
            let mut buf = [0u8; 64];
            for _ in 0..CLIENTS * ROUNDS {
                let (n, from) = server.recv_from(&mut buf).unwrap();
                server.send_to(&buf[..n], from).unwrap();
            }
        });
        let clients = (0..CLIENTS).map(|i| {
            spawn(move || {
                let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                s.connect(addr).unwrap();
                let mut buf = [0u8; 64];
                for r in 0..ROUNDS {
                    let msg = format!("{i}/{r}");
                    s.send(msg.as_bytes()).unwrap();
                    let n = s.recv(&mut buf).unwrap();
                    assert_eq!(&buf[..n], msg.as_bytes());
                }
                ROUNDS
            })
        });
        let total: usize = bucle::gather(clients).unwrap().into_iter().sum();
        echo.join().unwrap();
        total
    });
    assert_eq!(total, CLIENTS * ROUNDS);
}

#[test]
fn a_timed_out_recv_loses_no_datagram() {
    run(|| {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut buf = [0u8; 16];
        let r = timeout(ms(20), || b.recv_from(&mut buf));
        assert!(r.is_err(), "nothing was sent");
        a.send_to(b"after", b.local_addr().unwrap()).unwrap();
        let r = timeout(ms(2000), || b.recv_from(&mut buf)).expect("the datagram arrives");
        let (n, _) = r.unwrap();
        assert_eq!(&buf[..n], b"after");
        // Twice in a row, then a cancelled receiver task: still nothing lost.
        a.connect(b.local_addr().unwrap()).unwrap();
        b.connect(a.local_addr().unwrap()).unwrap();
        assert!(timeout(ms(5), || b.recv(&mut buf)).is_err());
        let b = Rc::new(b);
        let b2 = b.clone();
        let t = spawn(move || {
            let mut buf = [0u8; 16];
            b2.recv(&mut buf)
        });
        yield_now();
        t.cancel();
        assert!(t.join().is_err());
        a.send(b"kept").unwrap();
        let n = b.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"kept");
    });
}

#[test]
fn a_connected_socket_learns_its_peer_is_gone() {
    run(|| {
        // A port with nobody behind it.
        let gone: SocketAddr = {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap()
        };
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.connect(gone).unwrap();
        a.send(b"anyone?").unwrap();
        let mut buf = [0u8; 8];
        // The ICMP "port unreachable" wakes the parked recv with an error.
        let r = timeout(ms(2000), || a.recv(&mut buf)).expect("the error arrives");
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::ConnectionRefused);
    });
}

#[test]
fn close_wakes_a_waiting_receiver() {
    run(|| {
        let s = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let s2 = s.clone();
        let t = spawn(move || {
            let mut buf = [0u8; 8];
            s2.recv_from(&mut buf).map(|_| ())
        });
        yield_now();
        s.close();
        assert!(s.is_closed());
        assert_eq!(
            t.join().unwrap().unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
    });
}
