//! asyncio's `start_server` and `Server`: an accept task that runs a
//! handler in a task of its own for every connection.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::time::Duration;

use super::addr::ToSocketAddrs;
use super::stream::{Conn, DEFAULT_LIMIT, StreamReader, StreamWriter};
use super::tcp::{TcpListener, TcpStream};
use crate::runtime::core::{self, ExceptionContext};
use crate::sync::{Event, Semaphore, SemaphorePermit};
use crate::{AnyTask, Handle, JoinError, Task, TaskBuilder};

/// How long a server stops accepting after `accept(2)` ran out of a
/// resource (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`): one second, as
/// asyncio's `constants.ACCEPT_RETRY_DELAY`. Retrying at once would spin:
/// the connection stays queued, so the listener stays readable.
pub const ACCEPT_RETRY_DELAY: Duration = Duration::from_secs(1);

/// The backlog a server asks `listen(2)` for unless told otherwise:
/// asyncio's `create_server` default.
const DEFAULT_BACKLOG: i32 = 100;

/// Starts a TCP server on `addr` that runs `handler(reader, writer)` in a
/// task of its own for every connection: `await asyncio.start_server(
/// handler, host, port)`. It is serving when this returns; the address it
/// got (port 0 asks for a free one) is [`Server::local_addr`].
///
/// The handler may return `()` or a `Result<(), E>`; an error it returns
/// and a panic in it are reported through the loop's exception handler,
/// and close only that connection. When the handler returns (`Err`
/// included), its connection closes once everything written is sent
/// (unless a clone of the writer is kept elsewhere). A handler that
/// panics or is cancelled has its connection aborted: unsent bytes are
/// dropped and the connection leaves the server at once, so that
/// [`Server::wait_closed`] and the connection limit never wait on a peer
/// that does not read for a handler that is gone (asyncio 3.13 closes it
/// gracefully in both cases).
///
/// ```
/// use bucle::net::{open_connection, start_server, StreamReader, StreamWriter};
///
/// fn echo(reader: StreamReader, writer: StreamWriter) -> std::io::Result<()> {
///     loop {
///         let line = reader.readline()?;
///         if line.is_empty() {
///             return Ok(()); // the client closed
///         }
///         writer.write(&line);
///         writer.drain()?;
///     }
/// }
///
/// bucle::run(|| {
///     let server = start_server(echo, "127.0.0.1:0").unwrap();
///     let (reader, writer) = open_connection(server.local_addr().unwrap()).unwrap();
///     writer.write(b"eco\n");
///     assert_eq!(reader.readline().unwrap(), b"eco\n");
///     writer.close();
///     server.close();
///     server.wait_closed(); // the handler saw the end of the stream and returned
/// });
/// ```
///
/// # Errors
///
/// Binding's (`AddrInUse`, ...), or the resolver's.
///
/// # Panics
///
/// Outside a running loop (outside a task, if `addr` needs resolving).
pub fn start_server<F, R>(handler: F, addr: impl ToSocketAddrs) -> io::Result<Server>
where
    F: Fn(StreamReader, StreamWriter) -> R + 'static,
    R: HandlerOutput,
{
    ServerBuilder::new().start(handler, addr)
}

/// What a connection handler may return: `()`, or `Result<(), E>` with an
/// error that can be displayed. An `Err` is reported through the loop's
/// exception handler. (Sealed: only these.)
pub trait HandlerOutput: sealed::Sealed {
    /// The failure to report, if any.
    #[doc(hidden)]
    fn failure(self) -> Option<String>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for () {}
    impl<E: std::fmt::Display> Sealed for Result<(), E> {}
}

impl HandlerOutput for () {
    fn failure(self) -> Option<String> {
        None
    }
}

impl<E: fmt::Display> HandlerOutput for Result<(), E> {
    fn failure(self) -> Option<String> {
        self.err().map(|e| e.to_string())
    }
}

/// Options for [`start_server`]: `Server::builder().max_connections(100)
/// .idle_timeout(d).start(handler, addr)`.
///
/// The first two are `create_server`'s; the last two are what asyncio
/// users ask for and asyncio lacks.
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    backlog: i32,
    reuse_address: bool,
    limit: usize,
    max_connections: Option<usize>,
    idle_timeout: Option<Duration>,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder::new()
    }
}

impl ServerBuilder {
    /// asyncio's defaults: backlog 100, `SO_REUSEADDR` on, a 64 KiB reader
    /// limit, no connection limit, no idle timeout.
    pub fn new() -> ServerBuilder {
        ServerBuilder {
            backlog: DEFAULT_BACKLOG,
            reuse_address: true,
            limit: DEFAULT_LIMIT,
            max_connections: None,
            idle_timeout: None,
        }
    }

    /// The `listen(2)` backlog (`backlog=`); the kernel caps it at
    /// `net.core.somaxconn`. Values past `i32::MAX` are capped there.
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
        self
    }

    /// Whether to set `SO_REUSEADDR` (`reuse_address=`; on by default, as
    /// asyncio on POSIX).
    pub fn reuse_address(mut self, on: bool) -> Self {
        self.reuse_address = on;
        self
    }

    /// The readers' limit (`limit=`), see [`StreamReader`].
    ///
    /// # Panics
    ///
    /// If `limit` is 0.
    pub fn limit(mut self, limit: usize) -> Self {
        assert!(
            limit > 0,
            "bucle::net::ServerBuilder::limit must be positive"
        );
        self.limit = limit;
        self
    }

    /// At most `n` connections at once: with `n` open, the server stops
    /// accepting until one closes (new clients wait in the kernel's
    /// backlog), instead of queueing unbounded work.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    pub fn max_connections(mut self, n: usize) -> Self {
        assert!(
            n > 0,
            "bucle::net::ServerBuilder::max_connections must be positive"
        );
        self.max_connections = Some(n);
        self
    }

    /// Closes a connection that has moved no byte, in either direction,
    /// for `timeout`: its reads and `drain` then fail with `TimedOut`. It is
    /// closed between `timeout` and `1.25 × timeout` after its last
    /// transfer.
    ///
    /// # Panics
    ///
    /// If `timeout` is zero.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        assert!(
            !timeout.is_zero(),
            "bucle::net::ServerBuilder::idle_timeout must be positive"
        );
        self.idle_timeout = Some(timeout);
        self
    }

    /// Binds `addr` and starts serving; see [`start_server`].
    ///
    /// # Errors
    ///
    /// As [`start_server`].
    ///
    /// # Panics
    ///
    /// As [`start_server`].
    pub fn start<F, R>(self, handler: F, addr: impl ToSocketAddrs) -> io::Result<Server>
    where
        F: Fn(StreamReader, StreamWriter) -> R + 'static,
        R: HandlerOutput,
    {
        let listener = TcpListener::bind_with(&addr, self.backlog, self.reuse_address)?;
        let local = listener.local_addr()?;
        let inner = Rc::new(Inner {
            listener,
            local,
            serving: Cell::new(true),
            accepting: Cell::new(true),
            accept_task: RefCell::new(None),
            conns: RefCell::new(BTreeMap::new()),
            next_id: Cell::new(0),
            closed: Event::new(),
            idle: Event::new(),
        });
        let task = TaskBuilder::new()
            .name(format!("bucle::net::Server accepting on {local}"))
            .spawn({
                let inner = inner.clone();
                let handler = Rc::new(Handler(Some(handler)));
                move || accept_loop(&inner, &handler, &self)
            });
        *inner.accept_task.borrow_mut() = Some(task.as_any());
        Ok(Server {
            handle: Rc::new(ServerHandle { inner }),
        })
    }
}

/// A TCP server made by [`start_server`]: asyncio's `Server`.
///
/// A cheap `Clone` handle; when the last clone is dropped, the server is
/// [closed](Server::close) (it stops accepting; connections go on). It
/// accepts in a task of its own: the loop's
/// [`shutdown`](crate::EventLoop::shutdown), which cancels every task,
/// closes it too (and aborts its connections, whose handlers it cancels).
///
/// # Graceful shutdown
///
/// [`close`](Server::close) stops accepting;
/// [`wait_closed`](Server::wait_closed) waits for every connection's
/// handler to return and its connection to close;
/// [`close_clients`](Server::close_clients) closes every connection
/// after sending what is buffered, [`abort_clients`](Server::abort_clients)
/// at once (and cancels the handlers). Bounded, as a test of this crate
/// does it:
///
/// ```
/// use std::time::Duration;
/// use bucle::net::{open_connection, start_server, StreamReader, StreamWriter};
///
/// bucle::run(|| {
///     // A handler that never ends on its own.
///     let server = start_server(
///         |_r: StreamReader, _w: StreamWriter| bucle::sleep(Duration::from_secs(3600)),
///         "127.0.0.1:0",
///     )
///     .unwrap();
///     let (reader, _writer) = open_connection(server.local_addr().unwrap()).unwrap();
///     bucle::sleep(Duration::from_millis(10)); // accepted
///     server.close();
///     if bucle::timeout(Duration::from_millis(50), || server.wait_closed()).is_err() {
///         server.abort_clients();
///         server.wait_closed();
///     }
///     assert_eq!(server.active_connections(), 0);
///     assert_eq!(reader.read(10).unwrap(), b""); // the client sees the end
/// });
/// ```
#[derive(Clone)]
pub struct Server {
    handle: Rc<ServerHandle>,
}

/// Shared by a server's clones; closes it when the last one goes.
struct ServerHandle {
    inner: Rc<Inner>,
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.inner.close();
    }
}

/// A server's state, shared by its handles, its accept task and its
/// connection tasks.
struct Inner {
    listener: TcpListener,
    /// The bound address, read once.
    local: SocketAddr,
    /// Accepting new connections. Cleared by `close`, never set again.
    serving: Cell<bool>,
    /// The accept task has not finished.
    accepting: Cell<bool>,
    /// The accept task, to cancel on `close`.
    accept_task: RefCell<Option<AnyTask>>,
    /// Every connection whose handler runs or whose socket is not yet
    /// closed, by a number given in accept order. Borrowed only briefly,
    /// never across a call that could run user code.
    conns: RefCell<BTreeMap<u64, Tracked>>,
    next_id: Cell<u64>,
    /// Set by `close`: `serve_forever` waits on it.
    closed: Event,
    /// Set once closed with no connection left and the accept task done:
    /// `wait_closed` waits on it.
    idle: Event,
}

/// One tracked connection.
struct Tracked {
    conn: Rc<Conn>,
    task: AnyTask,
}

impl Inner {
    fn close(&self) {
        if !self.serving.replace(false) {
            return;
        }
        self.listener.close();
        let accept = self.accept_task.borrow_mut().take();
        if let Some(task) = accept {
            task.cancel();
        }
        self.closed.set();
        self.check_idle();
    }

    fn check_idle(&self) {
        if !self.serving.get() && !self.accepting.get() && self.conns.borrow().is_empty() {
            self.idle.set();
        }
    }

    /// The tracked connections, copied out so that no borrow is held while
    /// they are closed or their tasks cancelled.
    fn snapshot(&self) -> Vec<(Rc<Conn>, AnyTask)> {
        self.conns
            .borrow()
            .values()
            .map(|t| (t.conn.clone(), t.task.clone()))
            .collect()
    }
}

impl Server {
    /// Options: backlog, `SO_REUSEADDR`, limit, connection limit, idle
    /// timeout.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::new()
    }

    fn inner(&self) -> &Inner {
        &self.handle.inner
    }

    /// The address the server listens on:
    /// `server.sockets[0].getsockname()`.
    ///
    /// # Errors
    ///
    /// None in practice: the address is read when the server starts.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.inner().local)
    }

    /// Whether it accepts connections: `is_serving()`.
    pub fn is_serving(&self) -> bool {
        self.inner().serving.get()
    }

    /// Connections whose handler runs or whose socket is not yet closed.
    pub fn active_connections(&self) -> usize {
        self.inner().conns.borrow().len()
    }

    /// Serves until the server is closed: `await server.serve_forever()`.
    /// Returns once [`close`](Server::close) is called (from another task,
    /// a callback, or a handler). If the task is cancelled, the server is
    /// closed as it unwinds, as asyncio's does.
    ///
    /// # Panics
    ///
    /// Outside a task of a running loop.
    pub fn serve_forever(&self) {
        struct CloseOnUnwind<'a>(&'a Inner);
        impl Drop for CloseOnUnwind<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0.close();
                }
            }
        }
        let guard = CloseOnUnwind(self.inner());
        self.inner()
            .closed
            .wait_labeled("bucle::net::Server::serve_forever");
        drop(guard);
    }

    /// Stops accepting: the listening socket closes (new clients are
    /// refused) and the accept task ends. Connections go on; see
    /// [`close_clients`](Server::close_clients). Idempotent.
    pub fn close(&self) {
        self.inner().close();
    }

    /// Closes every connection once what was written to it is sent
    /// (Python 3.13's `close_clients()`). Handlers see the end of the
    /// stream at their next read.
    pub fn close_clients(&self) {
        for (conn, _) in self.inner().snapshot() {
            conn.close();
        }
    }

    /// Closes every connection at once, dropping unsent bytes, and cancels
    /// the handlers (Python 3.13's `abort_clients()`; asyncio leaves the
    /// handlers to notice, but a handler waiting on something else would
    /// keep [`wait_closed`](Server::wait_closed) waiting).
    pub fn abort_clients(&self) {
        for (conn, task) in self.inner().snapshot() {
            conn.abort();
            task.cancel();
        }
    }

    /// Waits until the server is closed, its accept task has ended, and
    /// every connection's handler has returned and its socket closed:
    /// `await server.wait_closed()` (Python 3.12's meaning). Bound it with
    /// a [timeout](crate::timeout) and then
    /// [`abort_clients`](Server::abort_clients) for a graceful shutdown.
    ///
    /// # Panics
    ///
    /// When it must wait outside a task of a running loop.
    pub fn wait_closed(&self) {
        self.inner()
            .idle
            .wait_labeled("bucle::net::Server::wait_closed");
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.inner().local)
            .field("serving", &self.is_serving())
            .field("connections", &self.active_connections())
            .finish()
    }
}

// ---------------------------------------------------------------------------
// The accept task and the connection tasks.

/// The user's handler, shared by the accept task and the connection tasks.
/// Whoever holds the last reference drops it through the loop's
/// `drop_user`: the destructors of what it captured are user code, which
/// may panic (reported, as every destructor the loop runs) — and may run
/// while a task unwinds (the accept task cancelled by `close`), where a
/// panic escaping a destructor would abort the process.
struct Handler<F>(Option<F>);

impl<F> Handler<F> {
    fn call<R>(&self, reader: StreamReader, writer: StreamWriter) -> R
    where
        F: Fn(StreamReader, StreamWriter) -> R,
    {
        let f = self
            .0
            .as_ref()
            .expect("the handler is only taken when dropped");
        f(reader, writer)
    }
}

impl<F> Drop for Handler<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            core::drop_user(f);
        }
    }
}

/// Whether `accept(2)` failed for want of a resource: pause, don't spin.
fn out_of_resources(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

fn report(message: String, task: Option<(crate::TaskId, String)>, panic: Option<String>) {
    if let Some(core) = core::try_running() {
        let (task, task_name) = task.unzip();
        core.report(&ExceptionContext {
            message,
            task,
            task_name,
            panic,
        });
    }
}

fn accept_loop<F, R>(inner: &Rc<Inner>, handler: &Rc<Handler<F>>, opts: &ServerBuilder)
where
    F: Fn(StreamReader, StreamWriter) -> R + 'static,
    R: HandlerOutput,
{
    // However the task ends (closed, cancelled, the loop closing). Ended
    // while still serving — cancelled by the loop's `shutdown`, which
    // cancels every task — the server is closed: nobody accepts any more,
    // so it must not look open (asyncio's servers accept through a reader
    // callback, which no task cancellation reaches).
    struct Done<'a>(&'a Inner);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            self.0.accepting.set(false);
            self.0.close();
            self.0.check_idle();
        }
    }
    let _done = Done(inner);
    let permits = opts.max_connections.map(Semaphore::new);
    loop {
        let permit = permits.as_ref().map(Semaphore::acquire);
        match inner.listener.accept() {
            Ok((stream, peer)) => start_connection(inner, handler, opts, stream, peer, permit),
            Err(_) if inner.listener.is_closed() => return,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                let why = if out_of_resources(&e) {
                    "socket.accept() out of system resource"
                } else {
                    "socket.accept() failed"
                };
                report(
                    format!(
                        "Server on {}: {why}: {e}; accepting again in {:?}",
                        inner.local, ACCEPT_RETRY_DELAY
                    ),
                    None,
                    None,
                );
                drop(permit);
                crate::sleep(ACCEPT_RETRY_DELAY);
            }
        }
    }
}

fn start_connection<F, R>(
    inner: &Rc<Inner>,
    handler: &Rc<Handler<F>>,
    opts: &ServerBuilder,
    stream: TcpStream,
    peer: SocketAddr,
    permit: Option<SemaphorePermit>,
) where
    F: Fn(StreamReader, StreamWriter) -> R + 'static,
    R: HandlerOutput,
{
    let (reader, writer) = stream.into_streams();
    reader.set_limit(opts.limit);
    let conn = writer.shared();
    let id = inner.next_id.get();
    inner.next_id.set(id + 1);
    let idle_timeout = opts.idle_timeout;
    let local = inner.local;
    // Made here, not in the task: a task cancelled before it first runs
    // (`abort_clients` right after the accept) never runs, and its
    // connection must still leave the books when the closure is dropped.
    let track = Track {
        inner: inner.clone(),
        id,
        conn: conn.clone(),
        watch: Rc::new(Cell::new(None)),
        _permit: permit,
    };
    let task: Task<()> = TaskBuilder::new()
        .name(format!("bucle::net::Server connection from {peer}"))
        .spawn({
            let handler = handler.clone();
            move || {
                if let Some(timeout) = idle_timeout {
                    watch_idle(&track.conn, timeout, &track.watch, 0);
                }
                if let Some(error) = handler.call(reader, writer).failure() {
                    let me = crate::current_task().map(|t| (t.id(), t.name()));
                    report(
                        format!(
                            "Server on {local}: the handler of the connection from {peer} \
                             returned an error: {error}"
                        ),
                        me,
                        None,
                    );
                }
                // The handler is done with the connection; it closes once
                // its writer is dropped and the last bytes are sent.
                if !track.conn.is_closed() {
                    track
                        .conn
                        .closed_event()
                        .wait_labeled("bucle::net::Server connection closing");
                }
                drop(track);
            }
        });
    // A panic in the handler is this connection's failure: reported here,
    // with what it was serving (the task's result is retrieved, so the
    // loop does not report it a second time).
    task.add_done_callback(move |t| {
        if let Some(Err(JoinError::Panicked(p))) = t.take_result() {
            report(
                format!(
                    "Server on {local}: the handler of the connection from {peer} \
                     panicked: {p}; its connection was closed"
                ),
                Some((t.id(), t.name())),
                Some(p.to_string()),
            );
        }
    });
    inner.conns.borrow_mut().insert(
        id,
        Tracked {
            conn,
            task: task.as_any(),
        },
    );
}

/// A connection task's bookkeeping, undone however the task ends — or,
/// when it is cancelled before it first runs, as its closure is dropped.
struct Track {
    inner: Rc<Inner>,
    id: u64,
    conn: Rc<Conn>,
    /// The idle watchdog's pending timer.
    watch: Rc<Cell<Option<Handle>>>,
    /// The connection limit's permit, given back last.
    _permit: Option<SemaphorePermit>,
}

impl Drop for Track {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A panicking or cancelled handler: its connection goes now.
            self.conn.abort();
        }
        if let Some(timer) = self.watch.take() {
            timer.cancel();
        }
        let gone = self.inner.conns.borrow_mut().remove(&self.id);
        drop(gone);
        self.inner.check_idle();
    }
}

/// Checks the connection every quarter of `timeout`; after four checks in
/// a row with no transfer (so at least `timeout` of silence), fails it
/// with `TimedOut`.
fn watch_idle(conn: &Rc<Conn>, timeout: Duration, watch: &Rc<Cell<Option<Handle>>>, quiet: u32) {
    let seen = conn.activity();
    let weak: Weak<Conn> = Rc::downgrade(conn);
    let slot = Rc::downgrade(watch);
    let timer = crate::call_later(timeout / 4, move || {
        let (Some(conn), Some(watch)) = (weak.upgrade(), slot.upgrade()) else {
            return;
        };
        if conn.is_closed() {
            return;
        }
        let quiet = if conn.activity() == seen {
            quiet + 1
        } else {
            0
        };
        if quiet >= 4 {
            conn.fail(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("bucle::net::Server: idle timeout (no byte moved for {timeout:?})"),
            ));
        } else {
            watch_idle(&conn, timeout, &watch, quiet);
        }
    });
    watch.set(Some(timer));
}
