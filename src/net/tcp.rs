//! TCP: [`TcpListener`] and [`TcpStream`].

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{self, Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use super::addr::{ToSocketAddrs, each_addr};
use super::sys::{self, SockAddr};
use super::{connect_fd, connect_state, family_of};
use crate::io::AsyncFd;
use crate::io::reactor::Dir;

/// The names reads and writes give in misuse messages.
const READ: &str = "std::io::Read on a socket (bucle::net)";
const WRITE: &str = "std::io::Write on a socket (bucle::net)";

/// The backlog [`TcpListener::bind`] asks `listen(2)` for: tokio's value
/// (asyncio's `create_server` asks for 100). The kernel caps it at
/// `net.core.somaxconn` (4096 on Linux since 5.4).
pub const BACKLOG: i32 = 1024;

/// A TCP socket server, listening for connections: asyncio's server socket
/// (`loop.sock_accept`), tokio's `TcpListener`.
///
/// ```
/// use std::io::{Read, Write};
/// use bucle::net::{TcpListener, TcpStream};
///
/// bucle::run(|| {
///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = listener.local_addr().unwrap();
///     let server = bucle::spawn(move || {
///         let (mut conn, _peer) = listener.accept().unwrap(); // suspends
///         let mut buf = [0u8; 4];
///         conn.read_exact(&mut buf).unwrap();
///         conn.write_all(&buf).unwrap(); // echo
///     });
///     let mut client = TcpStream::connect(addr).unwrap();
///     client.write_all(b"ping").unwrap();
///     let mut buf = [0u8; 4];
///     client.read_exact(&mut buf).unwrap();
///     assert_eq!(&buf, b"ping");
///     server.join().unwrap();
/// });
/// ```
pub struct TcpListener {
    io: AsyncFd<net::TcpListener>,
}

impl TcpListener {
    /// Creates a socket listening on `addr`, with `SO_REUSEADDR` set on
    /// unix (as asyncio and std do: a restarted server can bind a port
    /// whose old connections linger in `TIME_WAIT`) and a backlog of
    /// [`BACKLOG`]. Port 0 asks the OS for a free port; read it back with
    /// [`TcpListener::local_addr`]. When `addr` names several addresses,
    /// each is tried in turn until one binds.
    ///
    /// # Errors
    ///
    /// The last address's error (`AddrInUse`, `PermissionDenied`, ...), or
    /// the resolver's.
    ///
    /// # Panics
    ///
    /// Outside a running loop; for a host name to resolve, outside a task.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        TcpListener::bind_with(&addr, BACKLOG, true)
    }

    /// [`TcpListener::bind`] with a chosen backlog and `SO_REUSEADDR`
    /// (`loop.create_server(backlog=, reuse_address=)`).
    pub(crate) fn bind_with(
        addr: &(impl ToSocketAddrs + ?Sized),
        backlog: i32,
        reuse_address: bool,
    ) -> io::Result<TcpListener> {
        let listener = each_addr(addr, |a| {
            let fd = sys::socket(family_of(a), libc::SOCK_STREAM)?;
            if reuse_address {
                sys::set_int_option(fd.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
            }
            sys::bind(fd.as_fd(), &SockAddr::inet(a))?;
            sys::listen(fd.as_fd(), backlog)?;
            Ok(net::TcpListener::from(fd))
        })?;
        Ok(TcpListener {
            io: AsyncFd::new(listener)?,
        })
    }

    /// Wraps a listener made by std (its backlog and options stay as they
    /// are), switching it to non-blocking mode.
    ///
    /// # Errors
    ///
    /// If it cannot be made non-blocking or registered in the reactor.
    ///
    /// # Panics
    ///
    /// Outside a running loop.
    pub fn from_std(listener: net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener {
            io: AsyncFd::new(listener)?,
        })
    }

    /// Accepts a connection, suspending the task until one arrives. The
    /// stream is non-blocking and has `TCP_NODELAY` on (see
    /// [`TcpStream`]).
    ///
    /// # Errors
    ///
    /// What `accept(2)` returns other than `WouldBlock`, at once: in
    /// particular `EMFILE`/`ENFILE` (out of file descriptors) come back to
    /// the caller instead of being retried, since the connection stays
    /// queued and retrying at once would spin. Wait before retrying
    /// (asyncio pauses accepting for a second). `NotConnected` if the
    /// listener was [closed](TcpListener::close); `ResourceBusy` if
    /// another task is already waiting in `accept` on it.
    ///
    /// # Panics
    ///
    /// Outside a task of the loop the listener belongs to. A cancellation
    /// or timeout unwinds out of the wait, and no connection is lost: it
    /// stays queued for the next `accept`.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = self.io.read_with(|l| l.accept())?;
        Ok((TcpStream::new(stream)?, peer))
    }

    /// The address the listener is bound to.
    ///
    /// # Errors
    ///
    /// The OS's (`getsockname(2)`).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Stops the listener: a task waiting in [`accept`](TcpListener::accept)
    /// wakes with an error (`NotConnected`), and so does every later call.
    /// On Linux the socket also stops listening at once (new connections
    /// are refused, queued ones reset); elsewhere it does when the listener
    /// is dropped, which closes the descriptor. Idempotent.
    pub fn close(&self) {
        self.io.close();
        sys::shutdown_both(self.io.get_ref().as_fd());
    }

    /// Whether [`TcpListener::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.io.is_closed()
    }
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.get_ref().as_fd()
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.io.get_ref().as_raw_fd()
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("fd", &self.as_raw_fd())
            .field("addr", &self.local_addr().ok())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// A TCP connection whose reads and writes suspend the task instead of
/// blocking the thread: asyncio's socket with `loop.sock_recv` /
/// `sock_sendall`, tokio's `TcpStream`.
///
/// It implements [`std::io::Read`] and [`std::io::Write`], for
/// `TcpStream` and for `&TcpStream`, so std's adapters work unchanged
/// inside a task — `BufReader::new(&stream).lines()`,
/// `io::copy(&mut &stream, &mut &stream)` — while the other tasks run.
/// The inherent [`read`](TcpStream::read), [`write`](TcpStream::write) and
/// [`write_all`](TcpStream::write_all) take `&self` and need no import.
///
/// # `TCP_NODELAY`
///
/// Every stream, connected or accepted, has Nagle's algorithm off
/// (`TCP_NODELAY`), as asyncio's transports do: small writes leave at
/// once. Turn it back on with [`TcpStream::set_nodelay`].
///
/// # Cancellation
///
/// A read or write that suspends has transferred nothing: if the task is
/// cancelled or a [timeout](crate::timeout) fires while it waits, it
/// unwinds with no byte lost and the stream stays usable. (`write_all`
/// and std's adapters make several calls; what earlier calls transferred
/// stays transferred, as with any partial write.)
///
/// # One reader, one writer
///
/// One task may wait to read and one to write at a time; a second task
/// that would wait in the same direction gets `ResourceBusy` (see
/// [`AsyncFd`]).
///
/// # Signals
///
/// Writes use `send(2)` with `MSG_NOSIGNAL`: writing to a connection the
/// peer has closed is an error of kind `BrokenPipe`, never a `SIGPIPE`.
pub struct TcpStream {
    io: AsyncFd<net::TcpStream>,
}

impl TcpStream {
    /// Registers a connected std stream and turns `TCP_NODELAY` on.
    fn new(stream: net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nodelay(true)?;
        Ok(TcpStream {
            io: AsyncFd::new(stream)?,
        })
    }

    /// Opens a connection to `addr`, suspending the task (not the thread)
    /// until it is established: a non-blocking `connect(2)`, then a wait
    /// for writability and a look at `SO_ERROR`. When `addr` names several
    /// addresses (`"localhost:8080"` may give `::1` and `127.0.0.1`), each
    /// is tried in turn until one connects.
    ///
    /// # Errors
    ///
    /// The last address's error (`ConnectionRefused`, `TimedOut`, ...), or
    /// the resolver's.
    ///
    /// # Panics
    ///
    /// Outside a task of a running loop. Cancellation or a timeout unwinds
    /// out of the wait and closes the half-made socket.
    pub fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        each_addr(&addr, |a| {
            let fd = sys::socket(family_of(a), libc::SOCK_STREAM)?;
            let io = connect_fd(fd, &SockAddr::inet(a), false, |s: &net::TcpStream| {
                connect_state(s.take_error(), s.peer_addr())
            })?;
            io.get_ref().set_nodelay(true)?;
            Ok(TcpStream { io })
        })
    }

    /// Wraps a connected std stream, switching it to non-blocking mode and
    /// turning `TCP_NODELAY` on.
    ///
    /// # Errors
    ///
    /// If an option cannot be set or the reactor refuses the descriptor.
    ///
    /// # Panics
    ///
    /// Outside a running loop.
    pub fn from_std(stream: net::TcpStream) -> io::Result<TcpStream> {
        TcpStream::new(stream)
    }

    /// Reads into `buf`, suspending the task until at least one byte (or
    /// the end of the stream: `Ok(0)`) is there.
    ///
    /// # Errors
    ///
    /// The OS's (`ConnectionReset`, ...); `NotConnected` after
    /// [`close`](TcpStream::close); `ResourceBusy` if another task waits to
    /// read.
    ///
    /// # Panics
    ///
    /// When it has to wait outside a task of the stream's loop.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // Always tried first: a short read does not prove the stream
        // drained, since an end of stream may already wait behind the
        // bytes, and no edge would come for it (`polling` cannot ask epoll
        // for `EPOLLRDHUP`).
        self.io.io(Dir::Read, READ, |s| (&*s).read(buf))
    }

    /// Writes some of `buf`, suspending the task while the send buffer is
    /// full; returns how many bytes went.
    ///
    /// # Errors
    ///
    /// The OS's (`BrokenPipe`, `ConnectionReset`, ...); `NotConnected`
    /// after [`close`](TcpStream::close); `ResourceBusy` if another task
    /// waits to write.
    ///
    /// # Panics
    ///
    /// As [`TcpStream::read`].
    pub fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.io_until(
            Dir::Write,
            WRITE,
            |s| crate::io::sys::send(s.as_fd(), buf),
            |&n| n < buf.len(),
        )
    }

    /// One `send(2)` of `buf` that never suspends: `WouldBlock` when the
    /// send buffer is full. For [`StreamWriter::write`](super::StreamWriter::write).
    pub(crate) fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.try_io(
            Dir::Write,
            |s| crate::io::sys::send(s.as_fd(), buf),
            |&n| n < buf.len(),
        )
    }

    /// One `recv(2)` into `buf` that never suspends (and leaves the
    /// reactor's state alone): `WouldBlock` when nothing has arrived. For
    /// [`StreamReader::at_eof`](super::StreamReader::at_eof).
    pub(crate) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        if self.io.is_closed() {
            return Err(io::ErrorKind::NotConnected.into());
        }
        self.io.get_ref().read(buf)
    }

    /// Writes all of `buf`, suspending as often as needed.
    ///
    /// # Errors
    ///
    /// As [`TcpStream::write`]; `WriteZero` if a write took nothing.
    ///
    /// # Panics
    ///
    /// As [`TcpStream::read`].
    pub fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        Write::write_all(&mut &*self, buf)
    }

    /// The remote address.
    ///
    /// # Errors
    ///
    /// `NotConnected` once the connection is gone; the OS's.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// The OS's (`getsockname(2)`).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Sets `TCP_NODELAY` (on by default, see [`TcpStream`]).
    ///
    /// # Errors
    ///
    /// The OS's.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io.get_ref().set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    ///
    /// # Errors
    ///
    /// The OS's.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.get_ref().nodelay()
    }

    /// Shuts down the read half, the write half or both. After
    /// `shutdown(Shutdown::Write)` the peer reads the end of the stream
    /// (`Ok(0)`) and may still write back: a half-close.
    ///
    /// # Errors
    ///
    /// The OS's (`NotConnected` if the peer already reset it).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)
    }

    /// Closes the stream for this program: a task waiting on it wakes
    /// with an error (`NotConnected`), as does every later read or write,
    /// and both directions are shut down so the peer reads the end of the
    /// stream. The descriptor itself is closed when the `TcpStream` is
    /// dropped. Idempotent.
    pub fn close(&self) {
        self.io.close();
        let _ = self.io.get_ref().shutdown(Shutdown::Both);
    }

    /// Whether [`TcpStream::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.io.is_closed()
    }

    /// The pending socket error (`SO_ERROR`), cleared by the call.
    ///
    /// # Errors
    ///
    /// If the option cannot be read.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        TcpStream::read(self, buf)
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        TcpStream::read(self, buf)
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        TcpStream::write(self, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        TcpStream::write(self, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for TcpStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.get_ref().as_fd()
    }
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.io.get_ref().as_raw_fd()
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("fd", &self.as_raw_fd())
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .field("closed", &self.is_closed())
            .finish()
    }
}
