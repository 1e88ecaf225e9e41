//! The few system calls std does not offer, on raw file descriptors.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Puts `fd` in non-blocking mode (`O_NONBLOCK`), as every source of the
/// reactor must be: an operation that cannot go on returns `WouldBlock`
/// instead of stopping the thread, and with it every task.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: `fcntl(F_GETFL)` only reads the flags of `fd`, which is open
    // for the duration of the borrow; no memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & libc::O_NONBLOCK != 0 {
        return Ok(());
    }
    // SAFETY: as above; `F_SETFL` with an int argument changes only the
    // file status flags of the open file description.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `send(2)` with `MSG_NOSIGNAL` where the platform has it: writing to a
/// socket whose peer has gone is `BrokenPipe`, never a `SIGPIPE` that would
/// kill a host program that did not ignore it (std's `UnixStream::write`
/// uses plain `write`). Elsewhere (macOS), `SO_NOSIGPIPE` is set when the
/// socket is registered instead.
pub(crate) fn send(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    let flags = libc::MSG_NOSIGNAL;
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    let flags = 0;
    // SAFETY: `buf` is a live slice of `buf.len()` readable bytes for the
    // duration of the call, and `fd` is open for the borrow.
    let n = unsafe { libc::send(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), flags) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Sets `SO_NOSIGPIPE` where it exists (the BSDs, macOS), for sockets that
/// `send` cannot flag with `MSG_NOSIGNAL`. Elsewhere a no-op.
pub(crate) fn no_sigpipe(fd: BorrowedFd<'_>) -> io::Result<()> {
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    {
        let one: libc::c_int = 1;
        // SAFETY: `one` is a live c_int and its size is passed with it.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_NOSIGPIPE,
                std::ptr::from_ref(&one).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let _ = fd;
    Ok(())
}
