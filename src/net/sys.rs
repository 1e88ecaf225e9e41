//! The socket system calls std has no non-blocking form of: creating a
//! socket already non-blocking, `connect` that returns `EINPROGRESS`
//! instead of waiting, `listen` with our backlog, and the options std does
//! not set.

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
#[cfg(unix)]
use std::os::unix::ffi::OsStrExt;
#[cfg(unix)]
use std::path::Path;

/// A socket address in the C layout, with its length.
pub(crate) struct SockAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl SockAddr {
    fn zeroed() -> Self {
        SockAddr {
            // SAFETY: `sockaddr_storage` is plain old data (integers and
            // byte arrays); all zeroes is a valid value of it (family
            // `AF_UNSPEC`).
            storage: unsafe { mem::zeroed() },
            len: 0,
        }
    }

    fn as_ptr(&self) -> *const libc::sockaddr {
        std::ptr::from_ref(&self.storage).cast()
    }

    /// An IPv4 or IPv6 address.
    pub(crate) fn inet(addr: &SocketAddr) -> Self {
        let mut out = SockAddr::zeroed();
        match addr {
            SocketAddr::V4(a) => {
                // SAFETY: `sockaddr_in` is plain old data (integers, and on
                // some platforms a length byte and padding); all zeroes is
                // a valid value of it.
                let mut sin: libc::sockaddr_in = unsafe { mem::zeroed() };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr = libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                };
                // SAFETY: `sockaddr_storage` is at least as large and as
                // aligned as every socket address type (that is its
                // purpose), so a `sockaddr_in` fits at its start; the write
                // is within `out.storage`, which we own mutably.
                unsafe {
                    std::ptr::from_mut(&mut out.storage)
                        .cast::<libc::sockaddr_in>()
                        .write(sin);
                }
                out.len = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            SocketAddr::V6(a) => {
                // SAFETY: as for `sockaddr_in`: plain integers and bytes.
                let mut sin6: libc::sockaddr_in6 = unsafe { mem::zeroed() };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_flowinfo = a.flowinfo();
                sin6.sin6_addr = libc::in6_addr {
                    s6_addr: a.ip().octets(),
                };
                sin6.sin6_scope_id = a.scope_id();
                // SAFETY: as above, for a `sockaddr_in6`.
                unsafe {
                    std::ptr::from_mut(&mut out.storage)
                        .cast::<libc::sockaddr_in6>()
                        .write(sin6);
                }
                out.len = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            }
        }
        out
    }

    /// A Unix domain socket address naming a path.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if the path is empty, holds a NUL byte or does not fit
    /// in `sun_path` (with its terminating NUL).
    #[cfg(unix)]
    pub(crate) fn unix(path: &Path) -> io::Result<Self> {
        let bytes = path.as_os_str().as_bytes();
        let mut out = SockAddr::zeroed();
        // SAFETY: `sockaddr_storage` is larger than and as aligned as
        // `sockaddr_un` (its purpose), and all zeroes is a valid
        // `sockaddr_un`; the reference borrows `out.storage` mutably and
        // ends before `out` is used again.
        let sun = unsafe { &mut *std::ptr::from_mut(&mut out.storage).cast::<libc::sockaddr_un>() };
        if bytes.is_empty() || bytes.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "bucle: a Unix socket path must be non-empty and hold no NUL byte",
            ));
        }
        if bytes.len() >= sun.sun_path.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "bucle: Unix socket path is {} bytes; at most {} fit in sun_path",
                    bytes.len(),
                    sun.sun_path.len() - 1
                ),
            ));
        }
        sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (dst, &src) in sun.sun_path.iter_mut().zip(bytes) {
            *dst = src as libc::c_char;
        }
        let base = mem::offset_of!(libc::sockaddr_un, sun_path);
        // The path and its NUL (already zero).
        out.len = (base + bytes.len() + 1) as libc::socklen_t;
        Ok(out)
    }
}

/// Fails with the OS error if `r` is negative.
fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A new socket of `family` (`AF_INET`, ...) and `ty` (`SOCK_STREAM`,
/// ...), non-blocking and close-on-exec from the start.
///
/// # Errors
///
/// The OS's (`EMFILE`, `EAFNOSUPPORT` where IPv6 is off, ...).
pub(crate) fn socket(family: libc::c_int, ty: libc::c_int) -> io::Result<OwnedFd> {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        // SAFETY: `socket` takes only integers; a non-negative result is a
        // new descriptor that nothing else owns, so `OwnedFd` may take it.
        let fd = check(unsafe {
            libc::socket(family, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0)
        })?;
        // SAFETY: see above.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    {
        // SAFETY: as above.
        let fd = check(unsafe { libc::socket(family, ty, 0) })?;
        // SAFETY: as above: a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: `fcntl(F_SETFD)` with an int flag only changes the
        // descriptor's close-on-exec flag; `fd` is open (owned above).
        check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) })?;
        crate::io::sys::set_nonblocking(std::os::fd::AsFd::as_fd(&fd))?;
        Ok(fd)
    }
}

/// What a non-blocking `connect` said.
pub(crate) enum Connect {
    /// Connected at once.
    Done,
    /// Under way (`EINPROGRESS`, or `EINTR`, after which the connection
    /// still proceeds): wait for writability, then read `SO_ERROR`.
    InProgress,
    /// Not started, try again later (`EAGAIN`: a Unix listener's backlog
    /// is full, on Linux; for TCP, out of local ports), with the error.
    Again(io::Error),
}

/// `connect(2)` on a non-blocking socket, without waiting.
///
/// # Errors
///
/// The OS's (`ECONNREFUSED`, `ENETUNREACH`, ...).
pub(crate) fn connect(fd: BorrowedFd<'_>, addr: &SockAddr) -> io::Result<Connect> {
    // SAFETY: `addr.as_ptr()` points to `addr.len` initialised bytes of a
    // socket address that `addr` keeps alive for the call; `fd` is open for
    // the borrow.
    let r = unsafe { libc::connect(fd.as_raw_fd(), addr.as_ptr(), addr.len) };
    if r == 0 {
        return Ok(Connect::Done);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINPROGRESS | libc::EINTR) => Ok(Connect::InProgress),
        Some(libc::EAGAIN) => Ok(Connect::Again(e)),
        _ => Err(e),
    }
}

/// `bind(2)`.
///
/// # Errors
///
/// The OS's (`EADDRINUSE`, `EACCES`, ...).
pub(crate) fn bind(fd: BorrowedFd<'_>, addr: &SockAddr) -> io::Result<()> {
    // SAFETY: as in `connect`: a live address of `addr.len` bytes, an open
    // descriptor.
    check(unsafe { libc::bind(fd.as_raw_fd(), addr.as_ptr(), addr.len) }).map(drop)
}

/// `listen(2)`.
///
/// # Errors
///
/// The OS's.
pub(crate) fn listen(fd: BorrowedFd<'_>, backlog: libc::c_int) -> io::Result<()> {
    // SAFETY: integers only; `fd` is open for the borrow.
    check(unsafe { libc::listen(fd.as_raw_fd(), backlog) }).map(drop)
}

/// `setsockopt(2)` with an `int` value.
///
/// # Errors
///
/// The OS's.
pub(crate) fn set_int_option(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` is a live `c_int` for the call and its exact size is
    // passed with it; `fd` is open for the borrow.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(&value).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// `shutdown(2)` of both directions, errors ignored: on Linux this also
/// stops a *listening* socket at once (new connections are refused, those
/// not yet accepted are reset), which `std` has no call for.
pub(crate) fn shutdown_both(fd: BorrowedFd<'_>) {
    // SAFETY: integers only; `fd` is open for the borrow.
    let _ = unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) };
}

/// The first index of `byte` in `hay`: `memchr(3)`, vectorised by the C
/// library.
pub(crate) fn memchr(byte: u8, hay: &[u8]) -> Option<usize> {
    // SAFETY: `memchr` reads at most `hay.len()` bytes from `hay`'s start,
    // all inside the live slice, and returns null or a pointer into them.
    let p = unsafe { libc::memchr(hay.as_ptr().cast(), libc::c_int::from(byte), hay.len()) };
    if p.is_null() {
        None
    } else {
        Some(p as usize - hay.as_ptr() as usize)
    }
}
