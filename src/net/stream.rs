//! asyncio's streams over a TCP connection: [`StreamReader`],
//! [`StreamWriter`] and [`open_connection`].
//!
//! asyncio builds them on a transport that reads in the background and a
//! protocol that feeds the reader's buffer. A stackful task can simply read
//! when it needs bytes, so here the reader *pulls*: each read method looks
//! in the buffer and, when that is not enough, makes one `recv(2)` into the
//! buffer's free space, suspending only the task. The rules asyncio states
//! in terms of its transport hold all the same:
//!
//! - reading pauses once the buffer holds twice the limit: a read never
//!   asks the kernel for more than that, unless the call itself needs more
//!   (`readexactly(n)` with a large `n`, `read_to_end`), as asyncio resumes
//!   reading for such a call;
//! - a read method takes bytes out of the buffer only when it succeeds, and
//!   a `recv` lands in the buffer before the task can suspend again, so a
//!   cancelled or timed-out read loses nothing.
//!
//! The writer *pushes*: [`StreamWriter::write`] sends at once what the
//! kernel takes and keeps the rest, and a small task (the connection's
//! flusher) sends the rest as the socket drains, so bytes leave even if
//! nobody calls `drain`. `drain` is only flow control: it waits while the
//! buffer is above the high-water mark.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::io;
use std::mem;
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;

use super::addr::ToSocketAddrs;
use super::tcp::TcpStream;
use crate::runtime::core;
use crate::sync::Event;

/// The reader's default buffer limit, 64 KiB: asyncio's `_DEFAULT_LIMIT`.
pub const DEFAULT_LIMIT: usize = 64 * 1024;

/// The writer's default high-water mark, 64 KiB (the low one is a quarter
/// of it, 16 KiB), as asyncio's transports.
pub const DEFAULT_HIGH_WATER: usize = 64 * 1024;

/// The smallest `recv` the reader makes, and its buffer's first size.
const MIN_READ: usize = 8 * 1024;

/// A buffer this large is freed, not kept, once it is empty.
const KEEP_AT_MOST: usize = 256 * 1024;

/// Opens a TCP connection to `addr` and wraps it in a pair of streams:
/// `reader, writer = await asyncio.open_connection(host, port)`.
///
/// The reader's limit is [`DEFAULT_LIMIT`] (change it with
/// [`StreamReader::set_limit`]); `TCP_NODELAY` is on, as on every bucle
/// TCP stream.
///
/// ```
/// use bucle::net::{open_connection, TcpListener};
///
/// bucle::run(|| {
///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = listener.local_addr().unwrap();
///     let server = bucle::spawn(move || {
///         let (conn, _) = listener.accept().unwrap();
///         let (reader, writer) = conn.into_streams();
///         let line = reader.readline().unwrap();
///         writer.write(&line.to_ascii_uppercase());
///         writer.drain().unwrap();
///     });
///     let (reader, writer) = open_connection(addr).unwrap();
///     writer.write(b"hola\n");
///     writer.drain().unwrap();
///     assert_eq!(reader.readline().unwrap(), b"HOLA\n");
///     assert_eq!(reader.readline().unwrap(), b""); // the server closed: EOF
///     server.join().unwrap();
/// });
/// ```
///
/// # Errors
///
/// As [`TcpStream::connect`].
///
/// # Panics
///
/// As [`TcpStream::connect`]: outside a task of a running loop.
pub fn open_connection(addr: impl ToSocketAddrs) -> io::Result<(StreamReader, StreamWriter)> {
    Ok(TcpStream::connect(addr)?.into_streams())
}

impl TcpStream {
    /// Wraps the connection in a [`StreamReader`] and a [`StreamWriter`]
    /// (asyncio's `open_connection(sock=...)`), with the default limit and
    /// water marks. The connection closes when the last clone of the writer
    /// is dropped or closed.
    pub fn into_streams(self) -> (StreamReader, StreamWriter) {
        let peer = self.peer_addr().ok();
        let conn = Conn::new(self, peer);
        (StreamReader::new(conn.clone()), StreamWriter::new(conn))
    }
}

// ---------------------------------------------------------------------------
// The connection: what the reader, the writers and the flusher share.

/// One TCP connection's state, shared by its [`StreamReader`], its
/// [`StreamWriter`] clones, its flusher task while one runs, and a server
/// that tracks it.
pub(crate) struct Conn {
    /// The socket. Its read direction is used only by the reader, its write
    /// direction by `write` (never suspending) and by the flusher.
    sock: TcpStream,
    /// The peer's address, read once when the connection was wrapped
    /// (asyncio's `get_extra_info('peername')` is cached the same way).
    peer: Option<SocketAddr>,
    /// Bytes written and not yet handed to the flusher, in order.
    /// Non-empty only while `flushing`, or after a flusher was cancelled
    /// (the loop's `shutdown`) until the next `write`, `close`, `drain` or
    /// `wait_closed` starts another. A write appends here whenever it is
    /// non-empty, so the bytes keep their order.
    out: RefCell<Vec<u8>>,
    /// Bytes the flusher took from `out` and has not sent yet; zeroed by
    /// `abort` (they will not be sent).
    in_flight: Cell<usize>,
    /// A flusher task owns the write direction: set when one is spawned,
    /// cleared when its [`Flusher`] is dropped (everything sent, the
    /// connection failed, or the task cancelled). While set, writes only
    /// append to `out`, so the bytes keep their order.
    flushing: Cell<bool>,
    /// A close was asked (`close`, `abort`, a failure): the socket closes
    /// as soon as nothing is left to send (writes are still taken until
    /// then, as asyncio's). Set without `closed` only while bytes wait in
    /// `out` or in a flusher's hands. Never cleared.
    closing: Cell<bool>,
    /// The socket is closed: it left the reactor and both directions are
    /// shut down. Implies `closing`. Never cleared.
    closed: Cell<bool>,
    /// `write_eof` was asked: the write half is shut down once nothing is
    /// left to send. Never cleared.
    eof_asked: Cell<bool>,
    /// The first error the connection met (a failed `send` or `recv`, an
    /// idle timeout): every later read, `drain` and `wait_closed` returns
    /// it, as asyncio's reader keeps its exception. Set at most once.
    error: RefCell<Option<(io::ErrorKind, String)>>,
    /// The high-water mark: above it, writers are paused.
    high: Cell<usize>,
    /// The low-water mark: at or below it, paused writers resume.
    low: Cell<usize>,
    /// Writers are paused: the buffer went above `high` and has not fallen
    /// to `low` since (and the connection is not closed).
    paused: Cell<bool>,
    /// Set whenever writers are not paused; `drain` waits on it.
    resume: Event,
    /// Set once the socket is closed; `wait_closed` waits on it.
    closed_event: Event,
    /// Bumped by every transfer in either direction (for an idle timeout).
    activity: Cell<u64>,
}

impl Conn {
    fn new(sock: TcpStream, peer: Option<SocketAddr>) -> Rc<Conn> {
        let resume = Event::new();
        resume.set();
        Rc::new(Conn {
            sock,
            peer,
            out: RefCell::new(Vec::new()),
            in_flight: Cell::new(0),
            flushing: Cell::new(false),
            closing: Cell::new(false),
            closed: Cell::new(false),
            eof_asked: Cell::new(false),
            error: RefCell::new(None),
            high: Cell::new(DEFAULT_HIGH_WATER),
            low: Cell::new(DEFAULT_HIGH_WATER / 4),
            paused: Cell::new(false),
            resume,
            closed_event: Event::new(),
            activity: Cell::new(0),
        })
    }

    /// The sticky error, as a fresh `io::Error` (they cannot be cloned).
    fn error(&self) -> Option<io::Error> {
        self.error
            .borrow()
            .as_ref()
            .map(|(kind, msg)| io::Error::new(*kind, msg.clone()))
    }

    pub(crate) fn activity(&self) -> u64 {
        self.activity.get()
    }

    fn touch(&self) {
        self.activity.set(self.activity.get().wrapping_add(1));
    }

    /// Bytes written and not yet sent.
    fn buffered(&self) -> usize {
        self.out.borrow().len() + self.in_flight.get()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Set once the socket is closed.
    pub(crate) fn closed_event(&self) -> &Event {
        &self.closed_event
    }

    /// The connection met `e`: it is kept as the connection's error, what
    /// was buffered is dropped and the socket closes (asyncio's
    /// `_fatal_error`, then `connection_lost(exc)`).
    pub(crate) fn fail(&self, e: io::Error) {
        {
            let mut error = self.error.borrow_mut();
            if error.is_none() {
                *error = Some((e.kind(), e.to_string()));
            }
        }
        self.abort();
    }

    /// Closes once everything written is sent (`transport.close()`).
    pub(crate) fn close(self: &Rc<Self>) {
        if self.closing.replace(true) {
            return;
        }
        self.kick(false);
    }

    /// Closes now, dropping what was not sent (`transport.abort()`): the
    /// buffer is empty at once, the bytes a parked flusher holds included
    /// (it wakes to a closed socket and sends nothing more).
    pub(crate) fn abort(&self) {
        self.closing.set(true);
        // Taken out before it drops: nothing user-visible runs in a
        // `Vec<u8>`'s destructor, but the borrow should end first anyway.
        let unsent = mem::take(&mut *self.out.borrow_mut());
        drop(unsent);
        self.in_flight.set(0);
        self.close_socket();
    }

    /// The socket leaves the reactor (a waiting reader or flusher wakes and
    /// sees it closed), both directions are shut down, paused writers and
    /// `wait_closed` are released.
    fn close_socket(&self) {
        if self.closed.replace(true) {
            return;
        }
        self.closing.set(true);
        self.sock.close();
        self.paused.set(false);
        self.resume.set();
        self.closed_event.set();
    }

    /// Pauses writers if the buffer went above the high-water mark.
    fn check_pause(&self) {
        if !self.paused.get() && !self.closed.get() && self.buffered() > self.high.get() {
            self.paused.set(true);
            self.resume.clear();
        }
    }

    /// Resumes writers once the buffer is at or below the low-water mark.
    fn check_resume(&self) {
        if self.paused.get() && self.buffered() <= self.low.get() {
            self.paused.set(false);
            self.resume.set();
        }
    }

    fn write(self: &Rc<Self>, data: &[u8]) {
        if self.eof_asked.get() {
            panic!(
                "bucle::net::StreamWriter::write after write_eof: the write half is shut down; \
                 write everything before calling write_eof (asyncio raises RuntimeError)"
            );
        }
        // While `close` waits for the flusher, a write is still taken and
        // sent before the socket closes, as asyncio's transport appends to
        // its buffer until the connection is lost.
        if data.is_empty() || self.closed.get() {
            return;
        }
        if self.flushing.get() || !self.out.borrow().is_empty() {
            self.out.borrow_mut().extend_from_slice(data);
            self.kick(true);
            self.check_pause();
            return;
        }
        let rest = match self.sock.try_write(data) {
            Ok(n) if n == data.len() => {
                self.touch();
                return;
            }
            Ok(n) => {
                self.touch();
                &data[n..]
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                data
            }
            Err(e) => {
                self.fail(e);
                return;
            }
        };
        self.out.borrow_mut().extend_from_slice(rest);
        self.kick(true);
        self.check_pause();
    }

    /// Starts a flusher for the bytes waiting in `out`, unless one runs or
    /// the socket is closed; with nothing waiting, carries out a `close`
    /// still pending (its flusher was cancelled). Called by `write` (which
    /// `insist`s on a running loop: it panics outside one, as `spawn`), and
    /// by `close`, `drain`, `write_eof` and `wait_closed`, which pick up
    /// after a flusher cancelled by the loop's `shutdown`. Those may run in
    /// a destructor after the loop closed: with no loop to send the bytes,
    /// a pending close drops them and closes the socket, as asyncio's
    /// transport abandoned by its loop.
    fn kick(self: &Rc<Self>, insist: bool) {
        if self.flushing.get() || self.closed.get() {
            return;
        }
        if self.out.borrow().is_empty() {
            if self.closing.get() {
                self.close_socket();
            }
            return;
        }
        let core = match core::try_running() {
            Some(core) => core,
            None if insist => {
                core::running("bucle::net::StreamWriter::write (with bytes to buffer)")
            }
            None => {
                if self.closing.get() {
                    self.abort();
                }
                return;
            }
        };
        self.flushing.set(true);
        let flusher = Flusher {
            conn: self.clone(),
            chunk: Vec::new(),
            sent: 0,
        };
        let spawned = crate::TaskBuilder::new()
            .name("bucle::net::StreamWriter flusher")
            .try_spawn_on(&core, move || flusher.run());
        if let Err(e) = spawned {
            // No stack for it (the flusher was dropped with its closure).
            self.fail(e);
        }
    }

    /// asyncio's `drain`: the connection's error; after a yield if
    /// closing, "Connection lost" once it is closed; then one wait if
    /// writers are paused.
    fn drain(self: &Rc<Self>) -> io::Result<()> {
        self.kick(false);
        if let Some(e) = self.error() {
            return Err(e);
        }
        if self.closing.get() {
            // asyncio yields here so that a closing transport can finish
            // closing, and the drain of a write loop sees it.
            crate::yield_now();
        }
        if self.closed.get() {
            return Err(self.error().unwrap_or_else(|| {
                io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "Connection lost (bucle::net::StreamWriter: the connection is closed)",
                )
            }));
        }
        if self.paused.get() {
            // One wait, as asyncio's one waiter future: whatever set the
            // event — the buffer falling to the low mark, or the socket
            // closing after `close` sent it all — is a success, even if
            // the connection closed before this task ran again; only a
            // failure is an error.
            self.resume
                .wait_labeled("bucle::net::StreamWriter::drain (the peer is not reading)");
            if let Some(e) = self.error() {
                return Err(e);
            }
        }
        Ok(())
    }
}

/// A flusher task's hold on its connection's write direction: `flushing`
/// is set while one lives. However the task ends — done, failed, cancelled
/// mid-send by the loop's `shutdown`, or dropped before it ever ran — its
/// drop clears `flushing` and `in_flight` and puts what it had not sent
/// back at the front of `out`, so that the next `write`, `close`, `drain`
/// or `wait_closed` starts another and no byte is lost or reordered.
struct Flusher {
    conn: Rc<Conn>,
    /// The bytes being sent, taken from `out`.
    chunk: Vec<u8>,
    /// How many of them went.
    sent: usize,
}

impl Drop for Flusher {
    fn drop(&mut self) {
        let conn = &self.conn;
        if self.sent < self.chunk.len() && !conn.closed.get() {
            let rest = &self.chunk[self.sent..];
            conn.out.borrow_mut().splice(0..0, rest.iter().copied());
        }
        conn.in_flight.set(0);
        conn.flushing.set(false);
    }
}

impl Flusher {
    /// The flusher task's body: sends `out` until it stays empty,
    /// suspending while the socket's send buffer is full, then carries out
    /// a close or `write_eof` that waited for it.
    fn run(mut self) {
        let conn = self.conn.clone();
        loop {
            let chunk = mem::take(&mut *conn.out.borrow_mut());
            if chunk.is_empty() || conn.closed.get() {
                break;
            }
            conn.in_flight.set(chunk.len());
            self.chunk = chunk;
            self.sent = 0;
            while self.sent < self.chunk.len() {
                match conn.sock.write(&self.chunk[self.sent..]) {
                    Ok(n) => {
                        self.sent += n;
                        conn.in_flight.set(self.chunk.len() - self.sent);
                        conn.touch();
                        conn.check_resume();
                    }
                    Err(e) => {
                        // The rest is lost with the connection.
                        self.sent = self.chunk.len();
                        drop(self);
                        if !conn.closed.get() {
                            conn.fail(e);
                        }
                        return;
                    }
                }
            }
            // Hands the allocation back for the next writes, if none came.
            let mut chunk = mem::take(&mut self.chunk);
            self.sent = 0;
            let mut out = conn.out.borrow_mut();
            if out.is_empty() {
                chunk.clear();
                *out = chunk;
            }
        }
        drop(self);
        conn.check_resume();
        if conn.closing.get() {
            conn.close_socket();
        } else if conn.eof_asked.get() {
            let _ = conn.sock.shutdown(Shutdown::Write);
        }
    }
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("peer", &self.peer)
            .field("buffered", &self.buffered())
            .field("closing", &self.closing.get())
            .field("closed", &self.closed.get())
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------
// The reader.

/// A read method could not return what it was asked for: asyncio's
/// `IncompleteReadError`, `LimitOverrunError` and the `ValueError` of an
/// overlong line, or the connection's I/O error.
///
/// It converts into an [`io::Error`] (`UnexpectedEof`, `InvalidData`, or
/// the error itself), so `?` works in functions returning `io::Result`.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadError {
    /// The stream ended first (`IncompleteReadError`): `partial` holds the
    /// bytes that were there (taken out of the buffer), `expected` the
    /// count asked for (`None` for a separator that never came).
    Incomplete {
        /// What was read before the end of the stream.
        partial: Vec<u8>,
        /// The number of bytes asked for, or `None` when reading up to a
        /// separator.
        expected: Option<usize>,
    },
    /// [`StreamReader::readuntil`] found no separator within the limit
    /// (`LimitOverrunError`). The data stays in the buffer: `consumed` is
    /// how many bytes to read (with [`StreamReader::read`] or
    /// [`StreamReader::readexactly`]) to get past it.
    LimitOverrun {
        /// Bytes to consume: up to the separator if `found`, else what
        /// was searched.
        consumed: usize,
        /// Whether the separator was found (beyond the limit).
        found: bool,
    },
    /// [`StreamReader::readline`] met a line longer than the limit
    /// (asyncio's `ValueError`): the line was dropped, through its newline
    /// if one was buffered, else the whole buffer.
    LineTooLong {
        /// How many bytes were dropped.
        dropped: usize,
    },
    /// The connection's error (`ConnectionReset`, `TimedOut` after an idle
    /// timeout, ...), or `ResourceBusy` when another task is already
    /// reading this reader.
    Io(io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Incomplete { partial, expected } => match expected {
                Some(n) => write!(
                    f,
                    "{} bytes read on a total of {n} expected bytes",
                    partial.len()
                ),
                None => write!(
                    f,
                    "{} bytes read on a total of undefined expected bytes",
                    partial.len()
                ),
            },
            ReadError::LimitOverrun { found: false, .. } => {
                f.write_str("Separator is not found, and chunk exceed the limit")
            }
            ReadError::LimitOverrun { found: true, .. } => {
                f.write_str("Separator is found, but chunk is longer than limit")
            }
            ReadError::LineTooLong { dropped } => {
                write!(f, "line longer than the limit ({dropped} bytes dropped)")
            }
            ReadError::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

impl From<ReadError> for io::Error {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Io(e) => e,
            e @ ReadError::Incomplete { .. } => io::Error::new(io::ErrorKind::UnexpectedEof, e),
            e => io::Error::new(io::ErrorKind::InvalidData, e),
        }
    }
}

/// The reader's buffer: `data[head..tail]` are the bytes received and not
/// yet read; `data[tail..]` is free space, initialised (zeroed once, when
/// the buffer grew) so a `recv` can fill it directly.
#[derive(Default)]
struct InBuf {
    data: Vec<u8>,
    head: usize,
    tail: usize,
}

impl InBuf {
    fn len(&self) -> usize {
        self.tail - self.head
    }

    fn filled(&self) -> &[u8] {
        &self.data[self.head..self.tail]
    }

    fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len());
        self.head += n;
        if self.head == self.tail {
            self.head = 0;
            self.tail = 0;
            if self.data.len() > KEEP_AT_MOST {
                self.data = Vec::new();
            }
        }
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let out = self.filled()[..n].to_vec();
        self.consume(n);
        out
    }

    /// Makes at least `want` bytes of free space after `tail`: moves the
    /// bytes to the front if that is enough, else grows.
    fn reserve(&mut self, want: usize) {
        if self.data.len() - self.tail >= want {
            return;
        }
        if self.head > 0 {
            self.data.copy_within(self.head..self.tail, 0);
            self.tail -= self.head;
            self.head = 0;
            if self.data.len() - self.tail >= want {
                return;
            }
        }
        let size = (self.tail + want).max(self.data.len() * 2);
        self.data.resize(size, 0);
    }
}

/// The reading half of a stream connection: asyncio's `StreamReader`.
///
/// Every method takes `&self`: share a reader between tasks with an `Rc`
/// if you must, but only one task may be *in* a read method at a time — a
/// second gets [`ReadError::Io`] of kind `ResourceBusy` (asyncio raises
/// `RuntimeError`).
///
/// # The buffer and its limit
///
/// Bytes arrive in a buffer; each method returns from it and reads more
/// from the socket only when it must. The *limit* (64 KiB by default) is
/// the longest a line or a `readuntil` chunk may be, and reading pauses
/// once the buffer holds twice the limit.
///
/// # Cancellation
///
/// Every read is cancel-safe: bytes are taken from the buffer only when a
/// method returns them, so a read unwound by a cancel or a
/// [timeout](crate::timeout) leaves everything for the next read.
pub struct StreamReader {
    conn: Rc<Conn>,
    /// Received bytes not yet read. Borrowed only between suspensions; while
    /// a `recv` waits, its `data` is lent out (head and tail stay).
    buf: RefCell<InBuf>,
    /// The limit (see the type's docs). Never zero.
    limit: Cell<usize>,
    /// The end of the stream was seen (a `recv` returned 0, or the
    /// connection was closed locally). Never cleared.
    eof: Cell<bool>,
    /// A task is inside a read method.
    busy: Cell<bool>,
}

/// Clears the reader's busy flag when the read method ends, however.
struct Busy<'a>(&'a Cell<bool>);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

impl StreamReader {
    fn new(conn: Rc<Conn>) -> StreamReader {
        StreamReader {
            conn,
            buf: RefCell::new(InBuf::default()),
            limit: Cell::new(DEFAULT_LIMIT),
            eof: Cell::new(false),
            busy: Cell::new(false),
        }
    }

    /// The limit: the longest line or `readuntil` chunk, not counting the
    /// separator.
    pub fn limit(&self) -> usize {
        self.limit.get()
    }

    /// Sets the limit (`open_connection(limit=...)`).
    ///
    /// # Panics
    ///
    /// If `limit` is 0 (asyncio raises `ValueError`).
    pub fn set_limit(&self, limit: usize) {
        assert!(
            limit > 0,
            "bucle::net::StreamReader::set_limit: the limit must be positive"
        );
        self.limit.set(limit);
    }

    /// Bytes received and not yet read.
    pub fn buffered(&self) -> usize {
        self.buf.borrow().len()
    }

    /// Whether the stream ended and every byte has been read:
    /// `at_eof()`. With nothing buffered and the end not yet met, it looks
    /// at the socket once, without waiting (what asyncio's transport would
    /// have read in the background by now): bytes found are buffered, and
    /// an end of stream makes it true. A read under way in another task
    /// is left alone.
    pub fn at_eof(&self) -> bool {
        if !self.eof.get() && !self.busy.get() && self.buffered() == 0 {
            self.look();
        }
        self.eof.get() && self.buffered() == 0
    }

    /// How much the buffer may hold before reading pauses: twice the limit
    /// (saturating: a limit of `usize::MAX` is no limit).
    fn pause_at(&self) -> usize {
        self.limit.get().saturating_mul(2)
    }

    /// [`StreamReader::at_eof`]'s look: one `recv` that does not wait, into
    /// the empty buffer.
    fn look(&self) {
        if self.conn.error.borrow().is_some() {
            return;
        }
        if self.conn.closed.get() {
            self.eof.set(true);
            return;
        }
        let got = {
            let mut b = self.buf.borrow_mut();
            let room = self.pause_at();
            b.reserve(room.min(MIN_READ));
            let (start, end) = (b.tail, b.tail + room.min(b.data.len() - b.tail));
            let got = self.conn.sock.try_read(&mut b.data[start..end]);
            if let Ok(n) = got {
                b.tail += n;
            }
            got
        };
        match got {
            Ok(0) => self.eof.set(true),
            Ok(_) => self.conn.touch(),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => self.conn.fail(e),
        }
    }

    /// The peer's address (`get_extra_info('peername')`).
    ///
    /// # Errors
    ///
    /// `NotConnected` if it could not be read when the connection was
    /// wrapped.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        peer(&self.conn)
    }

    fn enter(&self, what: &str) -> Result<Busy<'_>, ReadError> {
        if self.busy.replace(true) {
            return Err(ReadError::Io(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!(
                    "bucle::net::StreamReader::{what} called while another task is already \
                     reading this stream; only one task may read a StreamReader at a time"
                ),
            )));
        }
        let busy = Busy(&self.busy);
        if let Some(e) = self.conn.error() {
            return Err(ReadError::Io(e));
        }
        Ok(busy)
    }

    /// Reads once from the socket into the buffer, suspending until bytes
    /// (or the end) arrive. `need` is how many bytes the caller needs
    /// buffered in all; the read asks for no more than twice the limit in
    /// all unless `need` is larger. Returns `false` at the end of the
    /// stream.
    fn fill(&self, need: usize) -> Result<bool, ReadError> {
        if self.eof.get() {
            return Ok(false);
        }
        if let Some(e) = self.conn.error() {
            return Err(ReadError::Io(e));
        }
        if self.conn.closed.get() {
            self.eof.set(true);
            return Ok(false);
        }
        let (start, end) = {
            let mut b = self.buf.borrow_mut();
            let len = b.len();
            let room = self.pause_at().max(need).saturating_sub(len).max(1);
            b.reserve(room.min(len.max(MIN_READ)));
            let free = b.data.len() - b.tail;
            (b.tail, b.tail + room.min(free))
        };
        // The bytes are lent out while the task waits, so no borrow is
        // held across the suspension; `Lend` puts them back however the
        // wait ends.
        struct Lend<'a>(&'a RefCell<InBuf>, Vec<u8>);
        impl Drop for Lend<'_> {
            fn drop(&mut self) {
                self.0.borrow_mut().data = mem::take(&mut self.1);
            }
        }
        let mut lend = Lend(&self.buf, mem::take(&mut self.buf.borrow_mut().data));
        let got = self.conn.sock.read(&mut lend.1[start..end]);
        drop(lend);
        match got {
            Ok(0) => {
                self.eof.set(true);
                Ok(false)
            }
            Ok(n) => {
                self.buf.borrow_mut().tail += n;
                self.conn.touch();
                Ok(true)
            }
            Err(_) if self.conn.closed.get() => match self.conn.error() {
                Some(e) => Err(ReadError::Io(e)),
                None => {
                    self.eof.set(true);
                    Ok(false)
                }
            },
            Err(e) => {
                self.conn.fail(e);
                Err(ReadError::Io(
                    self.conn.error().expect("fail keeps the first error"),
                ))
            }
        }
    }

    /// Reads up to `n` bytes: `await reader.read(n)`. Returns as soon as at
    /// least one byte is there; an empty vector means the end of the
    /// stream (or `n == 0`).
    ///
    /// # Errors
    ///
    /// [`ReadError::Io`]: the connection's error, or `ResourceBusy`.
    ///
    /// # Panics
    ///
    /// When it must wait outside a task of the connection's loop.
    pub fn read(&self, n: usize) -> Result<Vec<u8>, ReadError> {
        let _busy = self.enter("read")?;
        if n == 0 {
            return Ok(Vec::new());
        }
        if self.buffered() == 0 {
            self.fill(1)?;
        }
        let mut b = self.buf.borrow_mut();
        let n = n.min(b.len());
        Ok(b.take(n))
    }

    /// Reads everything up to the end of the stream: `await reader.read()`
    /// (`read(-1)`). Not bounded by the limit.
    ///
    /// # Errors
    ///
    /// As [`StreamReader::read`]; what was received before an error stays
    /// buffered.
    ///
    /// # Panics
    ///
    /// As [`StreamReader::read`].
    pub fn read_to_end(&self) -> Result<Vec<u8>, ReadError> {
        let _busy = self.enter("read_to_end")?;
        while self.fill(usize::MAX)? {}
        let mut b = self.buf.borrow_mut();
        let n = b.len();
        Ok(b.take(n))
    }

    /// Reads exactly `n` bytes: `await reader.readexactly(n)`. Not bounded
    /// by the limit.
    ///
    /// # Errors
    ///
    /// [`ReadError::Incomplete`] with the bytes there were (taken from the
    /// buffer) and `expected: Some(n)` if the stream ends first;
    /// [`ReadError::Io`] as for [`StreamReader::read`].
    ///
    /// # Panics
    ///
    /// As [`StreamReader::read`].
    pub fn readexactly(&self, n: usize) -> Result<Vec<u8>, ReadError> {
        let _busy = self.enter("readexactly")?;
        while self.buffered() < n {
            if !self.fill(n)? {
                let mut b = self.buf.borrow_mut();
                let len = b.len();
                return Err(ReadError::Incomplete {
                    partial: b.take(len),
                    expected: Some(n),
                });
            }
        }
        Ok(self.buf.borrow_mut().take(n))
    }

    /// Reads up to and including `separator`: `await
    /// reader.readuntil(separator)`.
    ///
    /// # Errors
    ///
    /// - [`ReadError::LimitOverrun`] if no separator comes within the limit,
    ///   or the one found is beyond it; the data stays in the buffer.
    /// - [`ReadError::Incomplete`] (`expected: None`) if the stream ends
    ///   first; the partial data is taken from the buffer.
    /// - [`ReadError::Io`] as for [`StreamReader::read`].
    ///
    /// # Panics
    ///
    /// If `separator` is empty (asyncio raises `ValueError`), and as
    /// [`StreamReader::read`].
    pub fn readuntil(&self, separator: &[u8]) -> Result<Vec<u8>, ReadError> {
        assert!(
            !separator.is_empty(),
            "bucle::net::StreamReader::readuntil: the separator must be at least one byte"
        );
        let _busy = self.enter("readuntil")?;
        self.readuntil_entered(separator)
    }

    fn readuntil_entered(&self, sep: &[u8]) -> Result<Vec<u8>, ReadError> {
        let limit = self.limit.get();
        let mut offset = 0;
        let found = loop {
            let len = {
                let b = self.buf.borrow();
                let data = b.filled();
                if data.len() >= offset + sep.len() {
                    if let Some(i) = find(&data[offset..], sep) {
                        break offset + i;
                    }
                    offset = data.len() + 1 - sep.len();
                    if offset > limit {
                        return Err(ReadError::LimitOverrun {
                            consumed: offset,
                            found: false,
                        });
                    }
                }
                data.len()
            };
            if !self.fill(len + 1)? {
                let mut b = self.buf.borrow_mut();
                let len = b.len();
                return Err(ReadError::Incomplete {
                    partial: b.take(len),
                    expected: None,
                });
            }
        };
        if found > limit {
            return Err(ReadError::LimitOverrun {
                consumed: found,
                found: true,
            });
        }
        Ok(self.buf.borrow_mut().take(found + sep.len()))
    }

    /// Reads one line, newline included: `await reader.readline()`. At the
    /// end of the stream it returns what is left (without a newline), and
    /// then an empty vector.
    ///
    /// # Errors
    ///
    /// [`ReadError::LineTooLong`] for a line longer than the limit, which
    /// is dropped (through its newline if one is buffered, else the whole
    /// buffer); [`ReadError::Io`] as for [`StreamReader::read`].
    ///
    /// The buffer holds at most twice the limit, so of a longer line only
    /// that much is dropped, and the next read starts with the rest of it,
    /// even if it has already arrived. asyncio's transport may have read
    /// all of it (a read takes up to 256 KiB) and then drops it all; it too
    /// returns the rest of a line that had not arrived yet.
    ///
    /// # Panics
    ///
    /// As [`StreamReader::read`].
    pub fn readline(&self) -> Result<Vec<u8>, ReadError> {
        let _busy = self.enter("readline")?;
        match self.readuntil_entered(b"\n") {
            Err(ReadError::Incomplete { partial, .. }) => Ok(partial),
            Err(ReadError::LimitOverrun { consumed, .. }) => {
                let mut b = self.buf.borrow_mut();
                let dropped = if b.filled()[consumed..].starts_with(b"\n") {
                    consumed + 1
                } else {
                    b.len()
                };
                b.consume(dropped);
                Err(ReadError::LineTooLong { dropped })
            }
            other => other,
        }
    }
}

/// The first index of `needle` in `hay`.
///
/// Each candidate is found by the C library's `memchr` (16 or 32 bytes per
/// compare): a byte-at-a-time `position` costs ~5 instructions per byte,
/// 5 000 per 1 KiB line — measured as three quarters of a line-echo
/// server's user-space work (`docs/performance.md`, "Streams echo").
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut from = 0;
    while let Some(i) = super::sys::memchr(first, &hay[from..]) {
        let at = from + i;
        if hay[at + 1..].starts_with(rest) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

fn peer(conn: &Conn) -> io::Result<SocketAddr> {
    conn.peer.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotConnected,
            "bucle::net: the peer's address was unknown when the connection was wrapped",
        )
    })
}

impl fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamReader")
            .field("peer", &self.conn.peer)
            .field("buffered", &self.buffered())
            .field("limit", &self.limit.get())
            .field("eof", &self.eof.get())
            .finish()
    }
}

// ---------------------------------------------------------------------------
// The writer.

/// The writing half of a stream connection: asyncio's `StreamWriter`.
///
/// A cheap `Clone` handle: every clone writes to the same connection, and
/// clones compare equal (and hash alike) exactly when they are the same
/// connection — so writers can live in a set, as in the chat server story.
/// When the last clone is dropped, the connection is closed as by
/// [`StreamWriter::close`] (what asyncio's `StreamWriter.__del__` does).
///
/// # Writing and flow control
///
/// [`write`](StreamWriter::write) never suspends: it hands the kernel what
/// it takes at once and buffers the rest, which the connection's flusher
/// task sends as the socket drains. [`drain`](StreamWriter::drain) is the
/// brake: it suspends while more than the high-water mark (64 KiB) is
/// buffered, until the buffer falls to the low-water mark (16 KiB). A
/// program that writes without draining to a peer that does not read grows
/// the buffer without bound — call `drain` after writing, as in asyncio.
///
/// # Errors surface at `drain`
///
/// A failed send (the peer reset the connection) does not make `write`
/// fail: the connection keeps the error, closes, and the next
/// [`drain`](StreamWriter::drain) (and every read) returns it.
#[derive(Clone)]
pub struct StreamWriter {
    handle: Rc<WriterHandle>,
}

/// Shared by a writer's clones; closes the connection when the last one
/// goes.
struct WriterHandle {
    conn: Rc<Conn>,
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        self.conn.close();
    }
}

impl StreamWriter {
    fn new(conn: Rc<Conn>) -> StreamWriter {
        StreamWriter {
            handle: Rc::new(WriterHandle { conn }),
        }
    }

    fn conn(&self) -> &Rc<Conn> {
        &self.handle.conn
    }

    pub(crate) fn shared(&self) -> Rc<Conn> {
        self.handle.conn.clone()
    }

    /// Writes `data`: `writer.write(data)`. Never suspends: what the
    /// kernel does not take at once is buffered and sent in the background.
    /// Ignored once the connection is closed (an error, if any, surfaces at
    /// [`drain`](StreamWriter::drain)); after [`close`](StreamWriter::close)
    /// the bytes are still sent if the connection is waiting to send what
    /// was buffered, as in asyncio.
    ///
    /// # Panics
    ///
    /// After [`write_eof`](StreamWriter::write_eof) (asyncio raises
    /// `RuntimeError`); outside a running loop when bytes must be buffered.
    pub fn write(&self, data: &[u8]) {
        self.conn().write(data);
    }

    /// Writes each buffer in turn: `writer.writelines(lines)`.
    ///
    /// # Panics
    ///
    /// As [`StreamWriter::write`].
    pub fn writelines<I>(&self, lines: I)
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        for line in lines {
            self.write(line.as_ref());
        }
    }

    /// Waits until it is appropriate to write again: `await
    /// writer.drain()`. Returns at once unless more than the high-water
    /// mark is buffered; then suspends until the buffer falls to the
    /// low-water mark. Several tasks may drain at once.
    ///
    /// # Errors
    ///
    /// The connection's error (`ConnectionReset`, `BrokenPipe`, ...), or
    /// `ConnectionReset` ("Connection lost") if it is closed when `drain`
    /// is called. A drain that was waiting when the connection closed
    /// without an error ([`close`](StreamWriter::close) sent everything)
    /// returns `Ok`, as asyncio's.
    ///
    /// # Panics
    ///
    /// When it must wait outside a task of a running loop. A cancel or a
    /// timeout unwinds out of the wait; nothing written is lost.
    pub fn drain(&self) -> io::Result<()> {
        self.conn().drain()
    }

    /// Whether [`write_eof`](StreamWriter::write_eof) is supported: always
    /// for TCP.
    pub fn can_write_eof(&self) -> bool {
        true
    }

    /// Shuts down the write half once the buffer is sent:
    /// `writer.write_eof()`. The peer reads the end of the stream; this
    /// side may still read. Does nothing if closing or already done.
    pub fn write_eof(&self) {
        let conn = self.conn();
        if conn.closing.get() || conn.eof_asked.replace(true) {
            return;
        }
        if conn.flushing.get() || !conn.out.borrow().is_empty() {
            conn.kick(false); // the flusher shuts it down once all is sent
        } else {
            let _ = conn.sock.shutdown(Shutdown::Write);
        }
    }

    /// Closes the connection once everything written is sent:
    /// `writer.close()`. The reader then reads the end of the stream.
    /// Idempotent.
    pub fn close(&self) {
        self.conn().close();
    }

    /// Closes the connection now, dropping whatever was not sent:
    /// `writer.transport.abort()`.
    pub fn abort(&self) {
        self.conn().abort();
    }

    /// Whether the connection is closing or closed: `is_closing()`.
    pub fn is_closing(&self) -> bool {
        self.conn().closing.get()
    }

    /// Waits until the connection is closed: `await writer.wait_closed()`.
    ///
    /// # Errors
    ///
    /// The error the connection failed with, if it did.
    ///
    /// # Panics
    ///
    /// When it must wait outside a task of a running loop.
    pub fn wait_closed(&self) -> io::Result<()> {
        let conn = self.conn();
        conn.kick(false);
        if !conn.closed.get() {
            conn.closed_event
                .wait_labeled("bucle::net::StreamWriter::wait_closed");
        }
        match conn.error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Bytes written and not yet sent: `transport.get_write_buffer_size()`.
    pub fn write_buffer_size(&self) -> usize {
        self.conn().buffered()
    }

    /// The low- and high-water marks: `transport.get_write_buffer_limits()`.
    pub fn write_buffer_limits(&self) -> (usize, usize) {
        (self.conn().low.get(), self.conn().high.get())
    }

    /// Sets the water marks: `transport.set_write_buffer_limits(high,
    /// low)`. With only `high`, `low` is a quarter of it; with only `low`,
    /// `high` is four times it; with neither, 64 KiB and 16 KiB. `high` 0
    /// makes every write wait for the buffer to empty.
    ///
    /// # Panics
    ///
    /// If `low > high` (asyncio raises `ValueError`).
    pub fn set_write_buffer_limits(&self, high: Option<usize>, low: Option<usize>) {
        let high = high.unwrap_or(match low {
            Some(low) => low.saturating_mul(4),
            None => DEFAULT_HIGH_WATER,
        });
        let low = low.unwrap_or(high / 4);
        assert!(
            low <= high,
            "bucle::net::StreamWriter::set_write_buffer_limits: high ({high}) must be >= low ({low})"
        );
        let conn = self.conn();
        conn.high.set(high);
        conn.low.set(low);
        conn.check_pause();
        conn.check_resume();
    }

    /// The peer's address: `get_extra_info('peername')`, read once when
    /// the connection was wrapped.
    ///
    /// # Errors
    ///
    /// `NotConnected` if it could not be read then.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        peer(self.conn())
    }

    /// The local address: `get_extra_info('sockname')`.
    ///
    /// # Errors
    ///
    /// The OS's (`getsockname(2)`).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.conn().sock.local_addr()
    }
}

impl PartialEq for StreamWriter {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(self.conn(), other.conn())
    }
}

impl Eq for StreamWriter {}

impl Hash for StreamWriter {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Rc::as_ptr(self.conn()).hash(state);
    }
}

impl fmt::Debug for StreamWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamWriter")
            .field("conn", &**self.conn())
            .finish()
    }
}
