//! Unix domain stream sockets: [`UnixListener`] and [`UnixStream`].

use std::fmt;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::{self, SocketAddr};
use std::path::Path;

use super::sys::{self, SockAddr};
use super::{connect_fd, connect_state};
use crate::io::AsyncFd;
use crate::io::reactor::Dir;

/// The names reads and writes give in misuse messages.
const READ: &str = "std::io::Read on a socket (bucle::net)";
const WRITE: &str = "std::io::Write on a socket (bucle::net)";

/// A Unix domain socket server: [`super::TcpListener`] for a path in the
/// file system.
///
/// ```
/// use std::io::{Read, Write};
/// use bucle::net::{UnixListener, UnixStream};
///
/// let dir = std::env::temp_dir().join(format!("bucle-doc-unix-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("echo.sock");
/// let p = path.clone();
/// bucle::run(move || {
///     let listener = UnixListener::bind(&p).unwrap();
///     let server = bucle::spawn(move || {
///         let (mut conn, _) = listener.accept().unwrap();
///         let mut buf = [0u8; 4];
///         conn.read_exact(&mut buf).unwrap();
///         conn.write_all(&buf).unwrap();
///     });
///     let mut client = UnixStream::connect(&p).unwrap();
///     client.write_all(b"ping").unwrap();
///     let mut buf = [0u8; 4];
///     client.read_exact(&mut buf).unwrap();
///     assert_eq!(&buf, b"ping");
///     server.join().unwrap();
/// });
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
///
/// Binding creates the socket file; nothing removes it (as with std and
/// asyncio): remove it yourself when done.
pub struct UnixListener {
    io: AsyncFd<net::UnixListener>,
}

impl UnixListener {
    /// Creates a socket listening on `path` (std's `bind` and backlog).
    ///
    /// # Errors
    ///
    /// The OS's (`AddrInUse` if the file exists, ...).
    ///
    /// # Panics
    ///
    /// Outside a running loop.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        UnixListener::from_std(net::UnixListener::bind(path)?)
    }

    /// Wraps a std listener, switching it to non-blocking mode.
    ///
    /// # Errors
    ///
    /// If it cannot be made non-blocking or registered in the reactor.
    ///
    /// # Panics
    ///
    /// Outside a running loop.
    pub fn from_std(listener: net::UnixListener) -> io::Result<UnixListener> {
        Ok(UnixListener {
            io: AsyncFd::new(listener)?,
        })
    }

    /// Accepts a connection, suspending the task until one arrives.
    ///
    /// # Errors
    ///
    /// As [`TcpListener::accept`](super::TcpListener::accept): `EMFILE` and
    /// the like come back at once.
    ///
    /// # Panics
    ///
    /// As [`TcpListener::accept`](super::TcpListener::accept).
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (stream, peer) = self.io.read_with(|l| l.accept())?;
        Ok((UnixStream::from_std(stream)?, peer))
    }

    /// The address the listener is bound to.
    ///
    /// # Errors
    ///
    /// The OS's.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Stops the listener, as [`TcpListener::close`](super::TcpListener::close)
    /// does. Idempotent.
    pub fn close(&self) {
        self.io.close();
        sys::shutdown_both(self.io.get_ref().as_fd());
    }

    /// Whether [`UnixListener::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.io.is_closed()
    }
}

impl AsFd for UnixListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.get_ref().as_fd()
    }
}

impl AsRawFd for UnixListener {
    fn as_raw_fd(&self) -> RawFd {
        self.io.get_ref().as_raw_fd()
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener")
            .field("fd", &self.as_raw_fd())
            .field("addr", &self.local_addr().ok())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// A Unix domain stream connection: [`super::TcpStream`] for local
/// sockets. `Read` and `Write` are implemented for `UnixStream` and
/// `&UnixStream` and suspend the task; writes use `send(2)` with
/// `MSG_NOSIGNAL` (std's `UnixStream::write` does not), so writing to a
/// closed peer is `BrokenPipe`, never `SIGPIPE`. The rules on cancellation
/// and on one reader and one writer are [`super::TcpStream`]'s.
pub struct UnixStream {
    io: AsyncFd<net::UnixStream>,
}

impl UnixStream {
    /// Connects to the socket at `path`, suspending the task if the
    /// connection cannot complete at once. If the listener's backlog is
    /// full (`EAGAIN` on Linux), it retries after a pause that doubles from
    /// 1 ms to 100 ms, until the listener accepts: wrap it in a
    /// [timeout](crate::timeout) to bound that.
    ///
    /// # Errors
    ///
    /// The OS's (`NotFound`, `ConnectionRefused` if nobody listens);
    /// `InvalidInput` if the path does not fit in a `sockaddr_un`.
    ///
    /// # Panics
    ///
    /// Outside a task of a running loop.
    pub fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let addr = SockAddr::unix(path.as_ref())?;
        let fd = sys::socket(libc::AF_UNIX, libc::SOCK_STREAM)?;
        let io = connect_fd(fd, &addr, true, |s: &net::UnixStream| {
            connect_state(s.take_error(), s.peer_addr())
        })?;
        Ok(UnixStream { io })
    }

    /// A pair of connected sockets (`socketpair(2)`).
    ///
    /// # Errors
    ///
    /// The OS's.
    ///
    /// # Panics
    ///
    /// Outside a running loop.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = net::UnixStream::pair()?;
        Ok((UnixStream::from_std(a)?, UnixStream::from_std(b)?))
    }

    /// Wraps a connected std stream, switching it to non-blocking mode.
    ///
    /// # Errors
    ///
    /// If it cannot be made non-blocking or registered in the reactor.
    ///
    /// # Panics
    ///
    /// Outside a running loop.
    pub fn from_std(stream: net::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream {
            io: AsyncFd::new(stream)?,
        })
    }

    /// Reads into `buf`, suspending the task until at least one byte (or
    /// the end of the stream: `Ok(0)`) is there.
    ///
    /// # Errors
    ///
    /// As [`TcpStream::read`](super::TcpStream::read).
    ///
    /// # Panics
    ///
    /// As [`TcpStream::read`](super::TcpStream::read).
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // Always tried first: a short read does not prove the stream
        // drained, since an end of stream may already wait behind the
        // bytes, and no edge would come for it (`polling` cannot ask epoll
        // for `EPOLLRDHUP`).
        self.io.io(Dir::Read, READ, |s| (&*s).read(buf))
    }

    /// Writes some of `buf`, suspending while the send buffer is full.
    ///
    /// # Errors
    ///
    /// As [`TcpStream::write`](super::TcpStream::write).
    ///
    /// # Panics
    ///
    /// As [`TcpStream::read`](super::TcpStream::read).
    pub fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.io_until(
            Dir::Write,
            WRITE,
            |s| crate::io::sys::send(s.as_fd(), buf),
            |&n| n < buf.len(),
        )
    }

    /// Writes all of `buf`, suspending as often as needed.
    ///
    /// # Errors
    ///
    /// As [`TcpStream::write_all`](super::TcpStream::write_all).
    ///
    /// # Panics
    ///
    /// As [`TcpStream::read`](super::TcpStream::read).
    pub fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        Write::write_all(&mut &*self, buf)
    }

    /// The local address (unnamed for a connecting client).
    ///
    /// # Errors
    ///
    /// The OS's.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The peer's address.
    ///
    /// # Errors
    ///
    /// The OS's.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// Shuts down the read half, the write half or both; see
    /// [`TcpStream::shutdown`](super::TcpStream::shutdown).
    ///
    /// # Errors
    ///
    /// The OS's.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)
    }

    /// Closes the stream for this program; see
    /// [`TcpStream::close`](super::TcpStream::close). Idempotent.
    pub fn close(&self) {
        self.io.close();
        let _ = self.io.get_ref().shutdown(Shutdown::Both);
    }

    /// Whether [`UnixStream::close`] was called.
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

impl Read for &UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        UnixStream::read(self, buf)
    }
}

impl Read for UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        UnixStream::read(self, buf)
    }
}

impl Write for &UnixStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        UnixStream::write(self, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for UnixStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        UnixStream::write(self, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for UnixStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.get_ref().as_fd()
    }
}

impl AsRawFd for UnixStream {
    fn as_raw_fd(&self) -> RawFd {
        self.io.get_ref().as_raw_fd()
    }
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixStream")
            .field("fd", &self.as_raw_fd())
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .field("closed", &self.is_closed())
            .finish()
    }
}
