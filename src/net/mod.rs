//! Sockets whose operations suspend the task, not the thread: TCP, UDP and
//! Unix domain sockets, each built on [`AsyncFd`].
//!
//! Every operation *tries* the system call first and waits for the
//! reactor only on `WouldBlock` (asyncio's `sock_recv`, curio's traps); a
//! wake-up is a hint and the call is retried. Streams implement
//! [`std::io::Read`] and [`std::io::Write`] (also through `&`), so std's
//! adapters — `BufReader`, `lines()`, `io::copy` — work unchanged inside a
//! task. Host names are resolved on a worker thread ([`ToSocketAddrs`]).
//!
//! All sockets belong to the loop that created them; constructors panic
//! outside a running loop, and operations that wait panic outside one of
//! its tasks. A wait that is cancelled or timed out unwinds having
//! transferred nothing, and the socket stays usable.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use crate::io::AsyncFd;

mod addr;
mod server;
mod stream;
mod sys;
mod tcp;
mod udp;
#[cfg(unix)]
mod unix;

pub use addr::ToSocketAddrs;
pub use server::{ACCEPT_RETRY_DELAY, HandlerOutput, Server, ServerBuilder, start_server};
pub use stream::{
    DEFAULT_HIGH_WATER, DEFAULT_LIMIT, ReadError, StreamReader, StreamWriter, open_connection,
};
pub use tcp::{BACKLOG, TcpListener, TcpStream};
pub use udp::UdpSocket;
#[cfg(unix)]
pub use unix::{UnixListener, UnixStream};

/// The address family of `addr`, for `socket(2)`.
fn family_of(addr: &SocketAddr) -> libc::c_int {
    match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    }
}

/// Reads a connecting socket's state from its pending error and its peer
/// address: `Ok` once connected, the connection's error if it failed,
/// `WouldBlock` while it is still under way.
fn connect_state<A>(error: io::Result<Option<io::Error>>, peer: io::Result<A>) -> io::Result<()> {
    if let Some(e) = error? {
        return Err(e);
    }
    match peer {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Err(io::ErrorKind::WouldBlock.into()),
        Err(e) => Err(e),
    }
}

/// Connects the fresh non-blocking socket `fd` to `addr` and registers it:
/// a `connect(2)` that does not wait, then (if under way) a wait for
/// writability until `state` says connected or failed. With `retry_again`,
/// `EAGAIN` (a Unix listener's full backlog) is retried after a pause that
/// doubles from 1 ms up to 100 ms; without it, it is an error.
fn connect_fd<S: AsFd + From<OwnedFd> + 'static>(
    fd: OwnedFd,
    addr: &sys::SockAddr,
    retry_again: bool,
    state: impl Fn(&S) -> io::Result<()>,
) -> io::Result<AsyncFd<S>> {
    let mut pause = Duration::from_millis(1);
    loop {
        match sys::connect(fd.as_fd(), addr)? {
            sys::Connect::Done => return AsyncFd::new(S::from(fd)),
            sys::Connect::InProgress => {
                let io = AsyncFd::new(S::from(fd))?;
                io.write_with(|s| state(s))?;
                return Ok(io);
            }
            sys::Connect::Again(_) if retry_again => {
                crate::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            sys::Connect::Again(e) => return Err(e),
        }
    }
}
