//! UDP: [`UdpSocket`].

use std::fmt;
use std::io;
use std::net::{self, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use super::addr::{ToSocketAddrs, each_addr, first_addr};
use super::family_of;
use super::sys::{self, SockAddr};
use crate::io::AsyncFd;

/// A UDP socket whose receives (and, rarely, sends) suspend the task:
/// asyncio's `sock_recvfrom`/`sock_sendto`, tokio's `UdpSocket`.
///
/// ```
/// use bucle::net::UdpSocket;
///
/// bucle::run(|| {
///     let a = UdpSocket::bind("127.0.0.1:0").unwrap();
///     let b = UdpSocket::bind("127.0.0.1:0").unwrap();
///     a.send_to(b"hello", b.local_addr().unwrap()).unwrap();
///     let mut buf = [0u8; 16];
///     let (n, from) = b.recv_from(&mut buf).unwrap(); // suspends until it comes
///     assert_eq!(&buf[..n], b"hello");
///     assert_eq!(from, a.local_addr().unwrap());
/// });
/// ```
///
/// One task may wait to receive and one to send at a time (see
/// [`AsyncFd`]). A receive cancelled or timed out while it waits loses no
/// datagram.
pub struct UdpSocket {
    io: AsyncFd<net::UdpSocket>,
}

impl UdpSocket {
    /// Creates a socket bound to `addr` (port 0: the OS picks one). When
    /// `addr` names several addresses, each is tried in turn.
    ///
    /// # Errors
    ///
    /// The last address's error, or the resolver's.
    ///
    /// # Panics
    ///
    /// Outside a running loop; for a host name to resolve, outside a task.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        let socket = each_addr(&addr, |a| {
            let fd = sys::socket(family_of(a), libc::SOCK_DGRAM)?;
            sys::bind(fd.as_fd(), &SockAddr::inet(a))?;
            Ok(net::UdpSocket::from(fd))
        })?;
        UdpSocket::from_std(socket)
    }

    /// Wraps a std socket, switching it to non-blocking mode.
    ///
    /// # Errors
    ///
    /// If it cannot be made non-blocking or registered in the reactor.
    ///
    /// # Panics
    ///
    /// Outside a running loop.
    pub fn from_std(socket: net::UdpSocket) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            io: AsyncFd::new(socket)?,
        })
    }

    /// Sends `buf` as one datagram to `target` (its first address, if it
    /// names several); suspends only while the send buffer is full.
    ///
    /// # Errors
    ///
    /// The OS's (`EMSGSIZE` for a datagram too big, ...), or the
    /// resolver's; `NotConnected` after [`close`](UdpSocket::close).
    ///
    /// # Panics
    ///
    /// When it has to wait (or resolve a name) outside a task of the
    /// socket's loop.
    pub fn send_to(&self, buf: &[u8], target: impl ToSocketAddrs) -> io::Result<usize> {
        let target = first_addr(&target)?;
        self.io.write_with(|s| s.send_to(buf, target))
    }

    /// Receives one datagram into `buf`, suspending until one arrives;
    /// returns its length and sender. A datagram longer than `buf` is
    /// truncated (the rest is lost, as with `recvfrom(2)`).
    ///
    /// # Errors
    ///
    /// The OS's (`ConnectionRefused` on a connected socket whose earlier
    /// datagram was refused, ...); `NotConnected` after
    /// [`close`](UdpSocket::close); `ResourceBusy` if another task waits to
    /// receive.
    ///
    /// # Panics
    ///
    /// When it has to wait outside a task of the socket's loop.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.read_with(|s| s.recv_from(buf))
    }

    /// Sets the default destination for [`send`](UdpSocket::send) and the
    /// only source [`recv`](UdpSocket::recv) accepts. Does not wait (UDP
    /// has no handshake). When `addr` names several addresses, each is
    /// tried in turn.
    ///
    /// # Errors
    ///
    /// The last address's error, or the resolver's.
    ///
    /// # Panics
    ///
    /// For a host name to resolve, outside a task.
    pub fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        each_addr(&addr, |a| self.io.get_ref().connect(a))
    }

    /// Sends `buf` as one datagram to the connected peer.
    ///
    /// # Errors
    ///
    /// As [`UdpSocket::send_to`]; `NotConnected`/`DestinationAddressRequired`
    /// if the socket is not connected.
    ///
    /// # Panics
    ///
    /// As [`UdpSocket::send_to`].
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.write_with(|s| s.send(buf))
    }

    /// Receives one datagram from the connected peer, suspending until one
    /// arrives.
    ///
    /// # Errors
    ///
    /// As [`UdpSocket::recv_from`].
    ///
    /// # Panics
    ///
    /// As [`UdpSocket::recv_from`].
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.read_with(|s| s.recv(buf))
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// The OS's.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The connected peer's address.
    ///
    /// # Errors
    ///
    /// `NotConnected` if [`connect`](UdpSocket::connect) was not called.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// Takes the socket out of the reactor: a task waiting on it wakes with
    /// an error (`NotConnected`), as does every later call. The descriptor
    /// is closed when the socket is dropped. Idempotent.
    pub fn close(&self) {
        self.io.close();
    }

    /// Whether [`UdpSocket::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.io.is_closed()
    }
}

impl AsFd for UdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.get_ref().as_fd()
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.io.get_ref().as_raw_fd()
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("fd", &self.as_raw_fd())
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .field("closed", &self.is_closed())
            .finish()
    }
}
