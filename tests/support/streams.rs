//! Helpers for the stream and server tests (`tests/io_streams.rs`,
//! `tests/io_server*.rs`, `tests/streams_model.rs`): connected pairs on
//! loopback, small socket buffers (so that a few KiB fill them), filling a
//! writer past its high-water mark, and a panic hook that stays quiet for
//! the library panics these tests provoke on purpose.
#![allow(dead_code)]

use std::io;
use std::os::fd::AsRawFd;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use bucle::net::{StreamReader, StreamWriter, TcpListener, TcpStream};

/// A connected pair on loopback: (client side, server side). Must run in a
/// task (the connect waits).
pub fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = bucle::spawn(move || TcpStream::connect(addr).unwrap());
    let (server, _) = listener.accept().unwrap();
    (client.join().unwrap(), server)
}

/// A stream pair on one end of a connection and the raw socket on the
/// other: (reader, writer, peer).
pub fn streams_and_peer() -> (StreamReader, StreamWriter, TcpStream) {
    let (client, server) = tcp_pair();
    let (reader, writer) = client.into_streams();
    (reader, writer, server)
}

/// Stream pairs on both ends: ((reader, writer) of the client side, the
/// same of the server side).
pub fn streams_both() -> ((StreamReader, StreamWriter), (StreamReader, StreamWriter)) {
    let (client, server) = tcp_pair();
    (client.into_streams(), server.into_streams())
}

fn set_buf(sock: &impl AsRawFd, option: libc::c_int, bytes: libc::c_int) {
    // SAFETY: `bytes` is a live c_int and its size is passed with it; the
    // descriptor is open for the borrow of `sock`.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            std::ptr::from_ref(&bytes).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "setsockopt: {}", io::Error::last_os_error());
}

/// Shrinks the socket's send buffer (the kernel doubles and floors it at a
/// few KiB), so that a writer's own buffer fills after little data.
pub fn small_sndbuf(sock: &impl AsRawFd) {
    set_buf(sock, libc::SO_SNDBUF, 4096);
}

/// Fixes the socket's receive buffer at 256 KiB (the kernel doubles it):
/// set, it no longer grows while data waits unread, so a peer that does
/// not read stops taking bytes after a known amount. (Much smaller and a
/// loopback transfer crawls: the window never reaches a 64 KiB segment,
/// and every update waits for a timer.)
pub fn fixed_rcvbuf(sock: &impl AsRawFd) {
    set_buf(sock, libc::SO_RCVBUF, 256 * 1024);
}

/// A pair whose send buffer in the kernel is small: (reader, writer) on
/// the client side, and the raw server side, which is not read until the
/// test says so. The writer's own buffer fills after a few dozen KiB and
/// drains a few KiB at a time as the peer reads — but not for good: the
/// kernel keeps taking more, a send buffer at a time, as the peer's
/// acknowledgements come (every few ms), until the peer's receive buffer
/// (MiBs) is full. For a writer that stays stuck, see
/// [`write_until_stuck`].
pub fn small_streams_and_peer() -> (StreamReader, StreamWriter, TcpStream) {
    let (client, server) = tcp_pair();
    small_sndbuf(&client);
    let (reader, writer) = client.into_streams();
    (reader, writer, server)
}

/// Writes 4 KiB chunks of `byte` until more than `writer`'s high-water
/// mark is buffered (the peer must not be reading); returns how many bytes
/// were written. Never suspends.
pub fn write_past_high(writer: &StreamWriter, byte: u8) -> usize {
    let (_, high) = writer.write_buffer_limits();
    write_until_buffered(writer, high, byte)
}

/// [`write_past_high`] until the buffer stays above the high-water mark
/// across a 5 ms sleep: the kernel has stopped taking more (the peer's
/// receive buffer is full), and `drain` will wait until the peer reads.
/// With the default buffers that is after a few MiB. Returns how many
/// bytes were written. Must run in a task.
pub fn write_until_stuck(writer: &StreamWriter, byte: u8) -> usize {
    let (_, high) = writer.write_buffer_limits();
    let mut written = 0;
    for _ in 0..100 {
        written += write_past_high(writer, byte);
        bucle::sleep(std::time::Duration::from_millis(5));
        if writer.write_buffer_size() > high {
            return written;
        }
    }
    panic!("the kernel keeps taking bytes from a peer that does not read");
}

/// Writes 4 KiB chunks of `byte` until more than `size` bytes are buffered
/// in `writer` (the peer must not be reading); returns how many bytes were
/// written. Never suspends.
pub fn write_until_buffered(writer: &StreamWriter, size: usize, byte: u8) -> usize {
    let chunk = [byte; 4096];
    let mut written = 0;
    for _ in 0..25_000 {
        if writer.write_buffer_size() > size {
            return written;
        }
        writer.write(&chunk);
        written += chunk.len();
    }
    panic!("100 MB written and the writer's buffer is still not above {size}");
}

/// Reads from `peer` until the end of the stream (or an error); returns
/// what it read and how it ended.
pub fn read_all(peer: &TcpStream) -> (Vec<u8>, io::Result<()>) {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match peer.read(&mut buf) {
            Ok(0) => return (got, Ok(())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return (got, Err(e)),
        }
    }
}

/// Library panics the stream tests provoke on purpose (matched on the
/// start of the message).
const EXPECTED: &[&str] = &[
    "bucle::net::StreamWriter::write after write_eof",
    "bucle::net::StreamWriter::write (with bytes to buffer) called outside",
    "bucle::net::StreamWriter::set_write_buffer_limits",
    "bucle::net::StreamReader::readuntil: the separator",
    "bucle::net::StreamReader::set_limit",
    "bucle::net::ServerBuilder::",
    "[intentional]",
];

/// Installs, once per test binary, a panic hook that stays silent for the
/// panics in [`EXPECTED`] and forwards every other panic to the previous
/// hook.
pub fn quiet() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let p = info.payload();
            let msg = p
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| p.downcast_ref::<String>().map(String::as_str));
            if !msg.is_some_and(|m| EXPECTED.iter().any(|e| m.starts_with(e))) {
                previous(info);
            }
        }));
    });
}

/// Runs `f`, returning its value or the message of its panic.
pub fn catch_msg<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    quiet();
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        p.downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "<non-string panic payload>".to_owned())
    })
}

/// Sleeps 1 ms at a time until `cond` holds; panics after 10 s (real
/// clock). For waiting on what the kernel delivers on loopback.
pub fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if cond() {
            return;
        }
        bucle::sleep(std::time::Duration::from_millis(1));
    }
    assert!(cond(), "still not {what} after 10 s");
}
