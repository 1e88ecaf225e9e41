//! Files whose operations suspend the task, not the thread: `aiofiles`,
//! `tokio::fs`.
//!
//! asyncio has no files API, and no readiness loop can give it one: epoll
//! refuses regular files (a regular file is always "ready", and a read
//! that misses the page cache blocks the thread all the same). aiofiles
//! and `tokio::fs` do it by running std's blocking calls on a thread pool;
//! so does bucle, on the pool of [`to_thread`](crate::to_thread). Each
//! call hands its work to a worker thread and suspends only the calling
//! task, so a slow disk, a network file system or a FIFO with nobody at
//! the other end never blocks the loop: the other tasks run meanwhile.
//!
//! Errors are std's [`io::Error`]s, unchanged: the kinds and OS codes
//! `std::fs` returns for the same call (`NotFound`, `PermissionDenied`,
//! ...).
//!
//! The free functions take owned copies of their paths and contents (the
//! worker needs `Send + 'static` values) and do one std call each:
//! [`read`], [`read_to_string`], [`write`](fn@write), [`metadata`], [`copy`],
//! [`rename`], [`remove_file`], [`remove_dir`], [`remove_dir_all`],
//! [`create_dir`], [`create_dir_all`], [`try_exists`]. [`File`] is an open
//! file, whose std file travels to a worker thread for each operation and
//! back.
//!
//! ```
//! bucle::run(|| {
//!     let dir = std::env::temp_dir().join(format!("bucle-fs-doc-{}", std::process::id()));
//!     bucle::fs::create_dir_all(&dir).unwrap();
//!     let path = dir.join("hola.txt");
//!     bucle::fs::write(&path, "¡Hola, asyncio!").unwrap();
//!     assert_eq!(bucle::fs::read_to_string(&path).unwrap(), "¡Hola, asyncio!");
//!     let missing = bucle::fs::read(dir.join("nada.txt")).unwrap_err();
//!     assert_eq!(missing.kind(), std::io::ErrorKind::NotFound); // std's error
//!     bucle::fs::remove_dir_all(&dir).unwrap();
//! });
//! ```
//!
//! Every function and method that touches a file (all but
//! [`File::from_std`]) panics outside a task of a running loop, naming
//! itself and the fix, before anything runs. If the calling task
//! is cancelled (or a timeout fires) during a call, it unwinds at once,
//! and the worker thread finishes the call anyway: a thread cannot be
//! interrupted. For the free functions that means the file is written,
//! removed or renamed all the same; what a [`File`] does with an
//! operation cut short is in its section [Cancellation](File#cancellation).

use std::fmt;
use std::fs::{Metadata, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::mem;
use std::panic;
use std::path::{Path, PathBuf};
use std::thread;

use crate::runtime::core;
use crate::thread::{Job, to_thread_as};

/// The most bytes one [`File::read`] or [`File::write`] moves through a
/// worker thread (tokio's figure): each call copies its bytes once, so a
/// huge buffer is moved in slices rather than doubled in memory.
const MAX_BUF: usize = 2 * 1024 * 1024;

/// Runs a path operation on the pool, naming `what` in its panics.
fn blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    to_thread_as(what, f)
}

/// Runs std's `f` on an owned copy of `path`, on the pool.
fn on_path<T: Send + 'static>(
    what: &'static str,
    path: &Path,
    f: fn(PathBuf) -> io::Result<T>,
) -> io::Result<T> {
    let path = path.to_owned();
    blocking(what, move || f(path))
}

/// Runs std's `f` on owned copies of `from` and `to`, on the pool.
fn on_paths<T: Send + 'static>(
    what: &'static str,
    from: &Path,
    to: &Path,
    f: fn(PathBuf, PathBuf) -> io::Result<T>,
) -> io::Result<T> {
    let (from, to) = (from.to_owned(), to.to_owned());
    blocking(what, move || f(from, to))
}

/// Reads the whole file at `path`: [`std::fs::read`] on a worker thread.
///
/// # Errors
///
/// std's: `NotFound`, `PermissionDenied`, `IsADirectory`, ...
///
/// # Panics
///
/// Outside a task of a running loop.
pub fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    on_path("bucle::fs::read", path.as_ref(), std::fs::read)
}

/// Reads the whole file at `path` as UTF-8: [`std::fs::read_to_string`]
/// on a worker thread.
///
/// # Errors
///
/// std's; `InvalidData` if the file is not UTF-8.
///
/// # Panics
///
/// Outside a task of a running loop.
pub fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    on_path(
        "bucle::fs::read_to_string",
        path.as_ref(),
        std::fs::read_to_string,
    )
}

/// Creates or truncates the file at `path` and writes all of `contents`
/// to it: [`std::fs::write`] on a worker thread (with a copy of
/// `contents`).
///
/// # Errors
///
/// std's.
///
/// # Panics
///
/// Outside a task of a running loop.
pub fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    let contents = contents.as_ref().to_vec();
    blocking("bucle::fs::write", move || std::fs::write(path, contents))
}

/// The metadata of the file at `path`, following symbolic links:
/// [`std::fs::metadata`] on a worker thread.
///
/// # Errors
///
/// std's.
///
/// # Panics
///
/// Outside a task of a running loop.
pub fn metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    on_path("bucle::fs::metadata", path.as_ref(), std::fs::metadata)
}

/// Whether `path` exists (`Ok(false)` for a broken symbolic link):
/// [`std::fs::exists`] on a worker thread.
///
/// # Errors
///
/// std's, when existence cannot be decided (`PermissionDenied` on a
/// parent, ...).
///
/// # Panics
///
/// Outside a task of a running loop.
pub fn try_exists(path: impl AsRef<Path>) -> io::Result<bool> {
    on_path("bucle::fs::try_exists", path.as_ref(), std::fs::exists)
}

/// Copies the contents and permissions of `from` to `to`, returning the
/// bytes copied: [`std::fs::copy`] on a worker thread.
///
/// # Errors
///
/// std's.
///
/// # Panics
///
/// Outside a task of a running loop.
pub fn copy(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<u64> {
    on_paths("bucle::fs::copy", from.as_ref(), to.as_ref(), std::fs::copy)
}

/// Renames `from` to `to`, replacing `to` if it exists:
/// [`std::fs::rename`] on a worker thread.
///
/// # Errors
///
/// std's.
///
/// # Panics
///
/// Outside a task of a running loop.
pub fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
    on_paths(
        "bucle::fs::rename",
        from.as_ref(),
        to.as_ref(),
        std::fs::rename,
    )
}

/// Removes the file at `path`: [`std::fs::remove_file`] on a worker
/// thread.
///
/// # Errors
///
/// std's.
///
/// # Panics
///
/// Outside a task of a running loop.
pub fn remove_file(path: impl AsRef<Path>) -> io::Result<()> {
    on_path(
        "bucle::fs::remove_file",
        path.as_ref(),
        std::fs::remove_file,
    )
}

/// Removes the empty directory at `path`: [`std::fs::remove_dir`] on a
/// worker thread.
///
/// # Errors
///
/// std's (`DirectoryNotEmpty`, ...).
///
/// # Panics
///
/// Outside a task of a running loop.
pub fn remove_dir(path: impl AsRef<Path>) -> io::Result<()> {
    on_path("bucle::fs::remove_dir", path.as_ref(), std::fs::remove_dir)
}

/// Removes the directory at `path` with everything in it:
/// [`std::fs::remove_dir_all`] on a worker thread.
///
/// # Errors
///
/// std's.
///
/// # Panics
///
/// Outside a task of a running loop.
pub fn remove_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    on_path(
        "bucle::fs::remove_dir_all",
        path.as_ref(),
        std::fs::remove_dir_all,
    )
}

/// Creates the directory `path`, whose parent must exist:
/// [`std::fs::create_dir`] on a worker thread.
///
/// # Errors
///
/// std's (`AlreadyExists`, `NotFound` for a missing parent, ...).
///
/// # Panics
///
/// Outside a task of a running loop.
pub fn create_dir(path: impl AsRef<Path>) -> io::Result<()> {
    on_path("bucle::fs::create_dir", path.as_ref(), std::fs::create_dir)
}

/// Creates the directory `path` and any missing parent:
/// [`std::fs::create_dir_all`] on a worker thread.
///
/// # Errors
///
/// std's.
///
/// # Panics
///
/// Outside a task of a running loop.
pub fn create_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    on_path(
        "bucle::fs::create_dir_all",
        path.as_ref(),
        std::fs::create_dir_all,
    )
}

/// An open file whose operations run on a worker thread and suspend only
/// the calling task: aiofiles' file object, `tokio::fs::File`.
///
/// The methods are std's, with std's meaning and std's errors; the
/// [`std::io::Read`], [`std::io::Write`] and [`std::io::Seek`]
/// implementations call them, so std's adapters (`BufReader::lines`,
/// `io::copy`, `read_exact`) work unchanged inside a task. Each call that
/// touches the file is one trip of the std file to a worker thread and
/// back: wrap a `File` in a [`BufReader`](std::io::BufReader) or a
/// [`BufWriter`](std::io::BufWriter) for many small reads or writes.
///
/// ```
/// use std::io::{BufRead, BufReader};
/// use bucle::fs::File;
///
/// bucle::run(|| {
///     let path = std::env::temp_dir().join(format!("bucle-file-doc-{}", std::process::id()));
///     let mut f = File::create(&path).unwrap();
///     f.write_all(b"uno\ndos\ntres\n").unwrap();
///     drop(f);
///     let lines: Vec<String> = BufReader::new(File::open(&path).unwrap())
///         .lines()
///         .map(Result::unwrap)
///         .collect();
///     assert_eq!(lines, ["uno", "dos", "tres"]);
///     bucle::fs::remove_file(&path).unwrap();
/// });
/// ```
///
/// # Writes go through
///
/// [`write`](File::write) returns when its bytes are in the OS's hands,
/// as std's does: there is no buffer in the `File` (tokio's `File`
/// buffers, so its `flush` must be awaited), and nothing waits for a
/// [`flush`](File::flush). Dropping a `File` loses no write. For the
/// bytes to be on the disk, call [`sync_all`](File::sync_all). One call
/// moves at most 2 MiB; [`write_all`](File::write_all) loops.
///
/// # Cancellation
///
/// When the task is cancelled, or a [timeout](crate::timeout) fires,
/// while an operation runs on its worker thread, the task unwinds at
/// once, and the operation goes on to its end: a thread cannot be
/// interrupted. The std file is on that thread meanwhile, and comes back
/// to the `File` when the operation ends. The rule:
///
/// - **The next operation waits for it** (suspending its task, not the
///   thread), then runs. Nothing is lost and nothing runs out of order.
/// - **What the operation did stays done.** A write cut short has written
///   its bytes (the caller never learns how many; at most 2 MiB: one
///   call's worth), a seek has moved, `set_len` has truncated.
/// - **A read cut short loses no byte.** The bytes it read are kept in the
///   `File` and handed out by the next reads, before anything new. If a
///   write or a seek comes first, the file's position is moved back over
///   them (a FIFO or a character device, which have no position, keep
///   them for the next read).
/// - **An error it met goes to the next operation**, which returns it
///   instead of running (after a read has handed out the bytes before it,
///   as std's `read_to_end` does). [`flush`](File::flush) runs nothing
///   else: call it to learn how an operation cut short ended.
///
/// So an operation cut short that only this same `File` could let end (a
/// read of a FIFO open for reading and writing, waiting for bytes this
/// `File` would write) makes the next operation wait for ever: feed such
/// a read from another handle.
///
/// Dropping a `File` while an operation is in flight never blocks the
/// loop: the file is closed on the worker thread, when the operation
/// ends. An idle `File` is closed at once, as std's is (a local file's
/// `close(2)` does not wait for the disk).
///
/// A `File` is `Send`: it can move to another thread and its loop, even
/// with an operation in flight.
pub struct File {
    state: State,
    /// An error an operation cut short met, that nobody has seen yet.
    pending: Option<io::Error>,
}

enum State {
    /// The std file is here.
    Idle(Inner),
    /// The std file is on a worker thread, in this operation's job.
    Busy(Box<dyn InFlight>),
    /// An operation panicked on its worker thread and the std file went
    /// with it. (std's file calls do not panic: this is for the record.)
    Lost,
}

/// The std file, and what travels with it.
struct Inner {
    std: std::fs::File,
    /// Bytes a read cut short took from the OS file and nobody has read
    /// yet: the OS file's position is that many bytes ahead of the
    /// `File`'s.
    unread: Unread,
}

impl Inner {
    /// Moves the OS file's position back over the unread bytes, before an
    /// operation that writes at the position or moves it. A file with no
    /// position (a FIFO, a character device) keeps them for the next read:
    /// its reads and writes are separate streams.
    fn rewind(&mut self) -> io::Result<()> {
        if self.unread.is_empty() {
            return Ok(());
        }
        let back = i64::try_from(self.unread.len()).expect("a Vec holds at most i64::MAX bytes");
        match self.std.seek(SeekFrom::Current(-back)) {
            Ok(_) => {
                self.unread.clear();
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotSeekable => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Bytes read from the OS file, not yet handed out, oldest first.
#[derive(Default)]
struct Unread {
    buf: Vec<u8>,
    /// How many of `buf` were handed out already.
    pos: usize,
}

impl Unread {
    fn len(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hands out as many bytes as fit in `out`.
    fn copy_to(&mut self, out: &mut [u8]) -> usize {
        let n = self.len().min(out.len());
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        if self.is_empty() {
            self.clear();
        }
        n
    }

    /// Hands out all of them.
    fn take(&mut self) -> Vec<u8> {
        let mut bytes = mem::take(&mut self.buf);
        bytes.drain(..mem::take(&mut self.pos));
        bytes
    }

    /// Keeps `bytes`, read after the ones already here.
    fn push(&mut self, bytes: Vec<u8>) {
        if self.is_empty() {
            self.buf = bytes;
            self.pos = 0;
        } else {
            self.buf.extend_from_slice(&bytes);
        }
    }

    fn clear(&mut self) {
        *self = Unread::default();
    }
}

/// What an operation cut short leaves for the operations after it.
struct Leftover {
    /// Bytes it read, for the next reads.
    unread: Vec<u8>,
    /// The error it met, for the next operation.
    error: Option<io::Error>,
}

impl<T> From<io::Result<T>> for Leftover {
    fn from(result: io::Result<T>) -> Leftover {
        Leftover {
            unread: Vec::new(),
            error: result.err(),
        }
    }
}

/// A read's bytes, and the error that stopped it, if one did (after
/// those bytes).
struct ReadOutcome {
    data: Vec<u8>,
    error: Option<io::Error>,
}

impl From<ReadOutcome> for Leftover {
    fn from(r: ReadOutcome) -> Leftover {
        Leftover {
            unread: r.data,
            error: r.error,
        }
    }
}

/// What [`File::read_to_string`]'s job brings back. Its bytes are not
/// lost if they are not UTF-8: only the caller asked for text.
enum TextOutcome {
    Text(String),
    NotUtf8(Vec<u8>),
    Failed(ReadOutcome),
}

impl From<TextOutcome> for Leftover {
    fn from(t: TextOutcome) -> Leftover {
        match t {
            TextOutcome::Text(s) => ReadOutcome {
                data: s.into_bytes(),
                error: None,
            }
            .into(),
            TextOutcome::NotUtf8(data) => ReadOutcome { data, error: None }.into(),
            TextOutcome::Failed(r) => r.into(),
        }
    }
}

/// An operation's job, seen only as what it leaves behind.
trait InFlight: Send + Sync {
    /// Waits for the job to end, and takes the std file back.
    fn wait(&self, what: &str) -> thread::Result<(Inner, Leftover)>;
}

impl<R: Into<Leftover> + Send + 'static> InFlight for Job<(Inner, R)> {
    fn wait(&self, what: &str) -> thread::Result<(Inner, Leftover)> {
        Job::wait(self, what).map(|(inner, r)| (inner, r.into()))
    }
}

fn lost(what: &str) -> io::Error {
    io::Error::other(format!(
        "{what}: this File no longer has a file: an earlier operation panicked on its worker \
         thread, and the std file was dropped with it"
    ))
}

/// Reads once into `buf`, retrying interruptions (a signal on the worker
/// thread is no business of the caller's).
fn read_once(file: &mut std::fs::File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// Writes as much of `buf` as the OS takes without an error, and returns
/// how much that was; an error only if nothing was written (the error of
/// a later attempt comes again at the next call), as `Write::write`
/// requires.
fn write_some(file: &mut std::fs::File, buf: &[u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.write(&buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) if done > 0 => break,
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

impl File {
    /// Opens the file at `path` for reading: [`std::fs::File::open`] on a
    /// worker thread.
    ///
    /// # Errors
    ///
    /// std's (`NotFound`, `PermissionDenied`, ...).
    ///
    /// # Panics
    ///
    /// Outside a task of a running loop.
    pub fn open(path: impl AsRef<Path>) -> io::Result<File> {
        on_path("bucle::fs::File::open", path.as_ref(), std::fs::File::open).map(File::from_std)
    }

    /// Creates the file at `path` for writing, truncating it if it
    /// exists: [`std::fs::File::create`] on a worker thread.
    ///
    /// # Errors
    ///
    /// std's.
    ///
    /// # Panics
    ///
    /// Outside a task of a running loop.
    pub fn create(path: impl AsRef<Path>) -> io::Result<File> {
        on_path(
            "bucle::fs::File::create",
            path.as_ref(),
            std::fs::File::create,
        )
        .map(File::from_std)
    }

    /// Opens the file at `path` with std's `options` (append, create_new,
    /// read and write...): [`OpenOptions::open`] on a worker thread.
    ///
    /// ```
    /// use std::fs::OpenOptions;
    ///
    /// bucle::run(|| {
    ///     let path = std::env::temp_dir().join(format!("bucle-open-with-{}", std::process::id()));
    ///     let append = OpenOptions::new().append(true).create(true).clone();
    ///     for line in ["uno\n", "dos\n"] {
    ///         let mut f = bucle::fs::File::open_with(&path, &append).unwrap();
    ///         f.write_all(line.as_bytes()).unwrap();
    ///     }
    ///     assert_eq!(bucle::fs::read_to_string(&path).unwrap(), "uno\ndos\n");
    ///     bucle::fs::remove_file(&path).unwrap();
    /// });
    /// ```
    ///
    /// # Errors
    ///
    /// std's (`AlreadyExists` with `create_new`, ...).
    ///
    /// # Panics
    ///
    /// Outside a task of a running loop.
    pub fn open_with(path: impl AsRef<Path>, options: &OpenOptions) -> io::Result<File> {
        let path = path.as_ref().to_owned();
        let options = options.clone();
        blocking("bucle::fs::File::open_with", move || options.open(path)).map(File::from_std)
    }

    /// Wraps an open std file. Needs no loop.
    pub fn from_std(std: std::fs::File) -> File {
        File {
            state: State::Idle(Inner {
                std,
                unread: Unread::default(),
            }),
            pending: None,
        }
    }

    /// The std file, once any operation in flight has ended (see
    /// [Cancellation](File#cancellation)); the position is moved back over
    /// bytes a read cut short took and nobody read (a file with no
    /// position drops them). An error of an operation cut short that
    /// nobody has seen is dropped: call [`flush`](File::flush) first to
    /// get it.
    ///
    /// # Panics
    ///
    /// Outside a task of a running loop; and if an operation had panicked
    /// on its worker thread, taking the std file with it (std's file calls
    /// do not panic).
    pub fn into_std(mut self) -> std::fs::File {
        const WHAT: &str = "bucle::fs::File::into_std";
        if let Err(e) = self.idle(WHAT) {
            panic!("{e}");
        }
        if self.has_unread() {
            // Best effort, as documented: the bytes go back to the OS
            // file, or nowhere.
            let _ = self.run(WHAT, |inner| inner.rewind());
        }
        match mem::replace(&mut self.state, State::Lost) {
            State::Idle(inner) => inner.std,
            _ => unreachable!("a settled File holds its std file"),
        }
    }

    /// Reads some bytes into `buf`, returning how many (`Ok(0)`: the end
    /// of the file, or an empty `buf`). Bytes a read cut short took are
    /// handed out first, without a trip to a worker; otherwise at most
    /// 2 MiB are read, with one `read(2)`.
    ///
    /// # Errors
    ///
    /// std's; or the error of an operation cut short (see
    /// [Cancellation](File#cancellation)).
    ///
    /// # Panics
    ///
    /// Outside a task of a running loop.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        const WHAT: &str = "bucle::fs::File::read";
        let inner = self.idle(WHAT)?;
        if !inner.unread.is_empty() {
            return Ok(inner.unread.copy_to(buf));
        }
        self.take_pending()?;
        if buf.is_empty() {
            return Ok(0);
        }
        let len = buf.len().min(MAX_BUF);
        let r = self.run(WHAT, move |inner| {
            let mut data = vec![0; len];
            match read_once(&mut inner.std, &mut data) {
                Ok(n) => {
                    data.truncate(n);
                    ReadOutcome { data, error: None }
                }
                Err(e) => ReadOutcome {
                    data: Vec::new(),
                    error: Some(e),
                },
            }
        });
        if let Some(e) = r.error {
            return Err(e);
        }
        buf[..r.data.len()].copy_from_slice(&r.data);
        Ok(r.data.len())
    }

    /// Reads to the end of the file, appending to `buf`, and returns how
    /// many bytes it appended; one trip to a worker.
    ///
    /// # Errors
    ///
    /// std's, or the error of an operation cut short; as with std, the
    /// bytes read before the error are appended to `buf`.
    ///
    /// # Panics
    ///
    /// Outside a task of a running loop.
    pub fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        const WHAT: &str = "bucle::fs::File::read_to_end";
        self.idle(WHAT)?;
        if let Some(e) = self.pending.take() {
            // The bytes read before the error, then the error.
            if let State::Idle(inner) = &mut self.state {
                buf.append(&mut inner.unread.take());
            }
            return Err(e);
        }
        let r = self.run(WHAT, |inner| {
            let mut data = inner.unread.take();
            let error = inner.std.read_to_end(&mut data).err();
            ReadOutcome { data, error }
        });
        let n = r.data.len();
        if buf.is_empty() {
            *buf = r.data;
        } else {
            buf.extend_from_slice(&r.data);
        }
        match r.error {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }

    /// Reads to the end of the file as UTF-8, appending to `buf`, and
    /// returns how many bytes it appended; one trip to a worker.
    ///
    /// # Errors
    ///
    /// `InvalidData` if the bytes are not UTF-8; std's; or the error of an
    /// operation cut short. On any error `buf` is unchanged and the bytes
    /// stay unread: [`read_to_end`](File::read_to_end) gets them.
    ///
    /// # Panics
    ///
    /// Outside a task of a running loop.
    pub fn read_to_string(&mut self, buf: &mut String) -> io::Result<usize> {
        const WHAT: &str = "bucle::fs::File::read_to_string";
        self.idle(WHAT)?;
        self.take_pending()?;
        let t = self.run(WHAT, |inner| {
            let mut data = inner.unread.take();
            match inner.std.read_to_end(&mut data) {
                Err(e) => TextOutcome::Failed(ReadOutcome {
                    data,
                    error: Some(e),
                }),
                Ok(_) => match String::from_utf8(data) {
                    Ok(text) => TextOutcome::Text(text),
                    Err(e) => TextOutcome::NotUtf8(e.into_bytes()),
                },
            }
        });
        match t {
            TextOutcome::Text(text) => {
                let n = text.len();
                if buf.is_empty() {
                    *buf = text;
                } else {
                    buf.push_str(&text);
                }
                Ok(n)
            }
            TextOutcome::NotUtf8(data) => {
                self.give_back(data);
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "stream did not contain valid UTF-8",
                ))
            }
            TextOutcome::Failed(r) => {
                self.give_back(r.data);
                Err(r.error.expect("a failed read carries its error"))
            }
        }
    }

    /// Writes some of `buf` at the file's position, returning how many
    /// bytes went: all of them, up to 2 MiB a call, unless the OS takes
    /// fewer (a full disk, a full FIFO). The bytes are copied to the
    /// worker.
    ///
    /// # Errors
    ///
    /// std's (`StorageFull`, `BrokenPipe` on a FIFO nobody reads, ...), if
    /// nothing was written; or the error of an operation cut short (see
    /// [Cancellation](File#cancellation)).
    ///
    /// # Panics
    ///
    /// Outside a task of a running loop.
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_as("bucle::fs::File::write", buf)
    }

    fn write_as(&mut self, what: &str, buf: &[u8]) -> io::Result<usize> {
        self.idle(what)?;
        self.take_pending()?;
        if buf.is_empty() {
            return Ok(0);
        }
        let chunk = buf[..buf.len().min(MAX_BUF)].to_vec();
        self.run(what, move |inner| {
            inner.rewind()?;
            write_some(&mut inner.std, &chunk)
        })
    }

    /// Writes all of `buf`, in as many calls as it takes (2 MiB each).
    ///
    /// # Errors
    ///
    /// As [`write`](File::write); `WriteZero` if the OS took nothing. The
    /// bytes of the calls before an error stay written.
    ///
    /// # Panics
    ///
    /// Outside a task of a running loop.
    pub fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        const WHAT: &str = "bucle::fs::File::write_all";
        self.idle(WHAT)?;
        self.take_pending()?;
        while !buf.is_empty() {
            match self.write_as(WHAT, buf)? {
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "failed to write whole buffer",
                    ));
                }
                n => buf = &buf[n..],
            }
        }
        Ok(())
    }

    /// Waits for an operation cut short by a cancellation or a timeout to
    /// end, and returns its error if it met one. Writes go through (see
    /// [`File`]), so there is nothing else to flush.
    ///
    /// # Errors
    ///
    /// The error of an operation cut short (see
    /// [Cancellation](File#cancellation)).
    ///
    /// # Panics
    ///
    /// Outside a task of a running loop.
    pub fn flush(&mut self) -> io::Result<()> {
        self.idle("bucle::fs::File::flush")?;
        self.take_pending()
    }

    /// Moves the file's position, returning the new one from the start:
    /// [`std::fs::File::seek`] on a worker thread. `SeekFrom::Current`
    /// counts from the position of the bytes handed out so far.
    ///
    /// # Errors
    ///
    /// std's (`InvalidInput` before the start, `NotSeekable` on a FIFO);
    /// or the error of an operation cut short.
    ///
    /// # Panics
    ///
    /// Outside a task of a running loop.
    pub fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        const WHAT: &str = "bucle::fs::File::seek";
        self.idle(WHAT)?;
        self.take_pending()?;
        self.run(WHAT, move |inner| {
            let pos = match pos {
                SeekFrom::Current(offset) => {
                    let ahead = i64::try_from(inner.unread.len())
                        .expect("a Vec holds at most i64::MAX bytes");
                    SeekFrom::Current(offset.checked_sub(ahead).ok_or_else(|| {
                        io::Error::new(
                            io::ErrorKind::InvalidInput,
                            "invalid seek to a negative or overflowing position",
                        )
                    })?)
                }
                other => other,
            };
            let at = inner.std.seek(pos)?;
            inner.unread.clear();
            Ok(at)
        })
    }

    /// Truncates or extends the file to `size` bytes (the position does
    /// not move): [`std::fs::File::set_len`] on a worker thread.
    ///
    /// # Errors
    ///
    /// std's (`InvalidInput` if the file is not open for writing); or the
    /// error of an operation cut short.
    ///
    /// # Panics
    ///
    /// Outside a task of a running loop.
    pub fn set_len(&mut self, size: u64) -> io::Result<()> {
        const WHAT: &str = "bucle::fs::File::set_len";
        self.idle(WHAT)?;
        self.take_pending()?;
        self.run(WHAT, move |inner| {
            inner.rewind()?;
            inner.std.set_len(size)
        })
    }

    /// Waits until the file's data and metadata are on the disk:
    /// [`std::fs::File::sync_all`] (`fsync(2)`) on a worker thread.
    ///
    /// # Errors
    ///
    /// std's; or the error of an operation cut short.
    ///
    /// # Panics
    ///
    /// Outside a task of a running loop.
    pub fn sync_all(&mut self) -> io::Result<()> {
        const WHAT: &str = "bucle::fs::File::sync_all";
        self.idle(WHAT)?;
        self.take_pending()?;
        self.run(WHAT, |inner| inner.std.sync_all())
    }

    /// Waits until the file's data is on the disk, and the metadata needed
    /// to read it back: [`std::fs::File::sync_data`] (`fdatasync(2)`) on
    /// a worker thread.
    ///
    /// # Errors
    ///
    /// std's; or the error of an operation cut short.
    ///
    /// # Panics
    ///
    /// Outside a task of a running loop.
    pub fn sync_data(&mut self) -> io::Result<()> {
        const WHAT: &str = "bucle::fs::File::sync_data";
        self.idle(WHAT)?;
        self.take_pending()?;
        self.run(WHAT, |inner| inner.std.sync_data())
    }

    /// The file's metadata: [`std::fs::File::metadata`] on a worker
    /// thread.
    ///
    /// # Errors
    ///
    /// std's; or the error of an operation cut short.
    ///
    /// # Panics
    ///
    /// Outside a task of a running loop.
    pub fn metadata(&mut self) -> io::Result<Metadata> {
        const WHAT: &str = "bucle::fs::File::metadata";
        self.idle(WHAT)?;
        self.take_pending()?;
        self.run(WHAT, |inner| inner.std.metadata())
    }

    /// Checks that a task calls, waits for an operation still in flight
    /// (one cut short) and keeps what it left; then the std file is here.
    ///
    /// # Errors
    ///
    /// If the std file was lost (an operation panicked).
    fn idle(&mut self, what: &str) -> io::Result<&mut Inner> {
        // Before anything runs: outside a task this panics, naming `what`.
        core::current_task(what);
        if let State::Busy(job) = &self.state {
            // If this wait is cut short too, the job stays in flight.
            let done = job.wait(what);
            self.state = match done {
                Ok((mut inner, left)) => {
                    inner.unread.push(left.unread);
                    if left.error.is_some() {
                        self.pending = left.error;
                    }
                    State::Idle(inner)
                }
                Err(_panic) => State::Lost,
            };
        }
        match &mut self.state {
            State::Idle(inner) => Ok(inner),
            State::Lost => Err(lost(what)),
            State::Busy(_) => unreachable!("the job in flight was waited for"),
        }
    }

    fn take_pending(&mut self) -> io::Result<()> {
        match self.pending.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn has_unread(&self) -> bool {
        matches!(&self.state, State::Idle(inner) if !inner.unread.is_empty())
    }

    /// Puts bytes a read took back in front of the unread ones (there are
    /// none: the read took them all).
    fn give_back(&mut self, bytes: Vec<u8>) {
        if let State::Idle(inner) = &mut self.state {
            debug_assert!(inner.unread.is_empty());
            inner.unread.push(bytes);
        }
    }

    /// Runs `op` on the std file on a worker thread, suspending the task
    /// until it ends. The file must be idle ([`File::idle`]). If the wait
    /// is cut short, the job stays in `self.state` for the next operation.
    fn run<R: Into<Leftover> + Send + 'static>(
        &mut self,
        what: &str,
        op: impl FnOnce(&mut Inner) -> R + Send + 'static,
    ) -> R {
        // First what may fail (the loop's poller): the std file stays.
        let (job, ticket) = Job::new(what);
        let State::Idle(inner) = mem::replace(&mut self.state, State::Lost) else {
            unreachable!("an operation starts on an idle File");
        };
        job.submit(move || {
            let mut inner = inner;
            let r = op(&mut inner);
            (inner, r)
        });
        self.state = State::Busy(Box::new(job));
        match ticket.wait(what) {
            Ok((inner, r)) => {
                self.state = State::Idle(inner);
                r
            }
            Err(payload) => {
                self.state = State::Lost;
                panic::resume_unwind(payload)
            }
        }
    }
}

impl Read for File {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        File::read(self, buf)
    }

    fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        File::read_to_end(self, buf)
    }

    fn read_to_string(&mut self, buf: &mut String) -> io::Result<usize> {
        File::read_to_string(self, buf)
    }
}

impl Write for File {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        File::write(self, buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        File::write_all(self, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        File::flush(self)
    }
}

impl Seek for File {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        File::seek(self, pos)
    }
}

impl From<std::fs::File> for File {
    fn from(std: std::fs::File) -> File {
        File::from_std(std)
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("File");
        match &self.state {
            State::Idle(inner) => d
                .field("std", &inner.std)
                .field("unread", &inner.unread.len()),
            State::Busy(_) => d.field("std", &"on a worker thread"),
            State::Lost => d.field("std", &"lost"),
        };
        d.field("pending_error", &self.pending).finish()
    }
}
