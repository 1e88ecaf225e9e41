//! `bucle::fs`: files on the thread pool. Round trips, std's errors
//! unchanged, other tasks running while a file operation blocks a thread,
//! operations cut short by a cancellation or a timeout (the rule of
//! `File`'s "Cancellation" section, checked call by call and against
//! std's own file by a property test), drops with an operation in flight,
//! descriptors, misuse.
//!
//! An operation blocks its worker thread on a FIFO nobody writes to (or
//! reads from), or waits behind a *gate*: a job that holds the pool's only
//! worker until the test opens it. A gate needs `set_max_workers(1)`,
//! which is process-wide, so the tests that use one, and those that count
//! descriptors, run alone in a child process.

#[path = "support/net.rs"]
mod net_support;
mod support;

use std::cell::RefCell;
use std::fs::OpenOptions;
use std::io::{self, ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bucle::fs::File;
use bucle::{JoinError, Task, spawn, yield_now};
use net_support::{TempDir, in_child, is_child, ms, open_fds, run};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use support::{catch, vloop};

// -------------------------------------------------------------------------
// Helpers.

/// Makes a FIFO at `dir/name`.
fn mkfifo(dir: &TempDir, name: &str) -> PathBuf {
    let path = dir.join(name);
    let status = Command::new("mkfifo")
        .arg(&path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
    path
}

/// Opens the FIFO at `path` for reading with bucle, and for writing with
/// std on a plain thread (opening either end blocks until the other is
/// opened: the two meet).
fn fifo_reader(path: &Path) -> (File, std::fs::File) {
    let p = path.to_owned();
    let writer = std::thread::spawn(move || OpenOptions::new().write(true).open(p).unwrap());
    let reader = File::open(path).unwrap();
    (reader, writer.join().unwrap())
}

/// Opens the FIFO at `path` for writing with bucle, and for reading with
/// std on a plain thread.
fn fifo_writer(path: &Path) -> (File, std::fs::File) {
    let p = path.to_owned();
    let reader = std::thread::spawn(move || std::fs::File::open(p).unwrap());
    let writer = File::open_with(path, OpenOptions::new().write(true)).unwrap();
    (writer, reader.join().unwrap())
}

/// Polls `cond` on the loop (1 ms sleeps) until it holds; fails after
/// 10 s, a bound only a bug can reach.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(10), "never: {what}");
        bucle::sleep(ms(1));
    }
}

/// Runs `op` on `file` in a task of its own and cancels that task while
/// the operation waits for its worker; returns what `op` returned if it
/// ended without waiting (served from memory), `None` if it was cut short.
fn cancel_during<R: 'static>(
    file: &Rc<RefCell<File>>,
    op: impl FnOnce(&mut File) -> R + 'static,
) -> Option<R> {
    let f = file.clone();
    let t = spawn(move || op(&mut f.borrow_mut()));
    yield_now(); // `t` runs until its operation waits
    t.cancel();
    match t.join() {
        Ok(r) => Some(r),
        Err(JoinError::Cancelled) => None,
        Err(e) => panic!("the operation's task failed: {e}"),
    }
}

/// A job holding the pool's only worker (after `set_max_workers(1)`):
/// every job handed over after it waits in the queue until it is opened.
struct Gate {
    open: mpsc::Sender<()>,
    task: Task<()>,
}

impl Gate {
    fn close() -> Gate {
        let (open, wait) = mpsc::channel::<()>();
        let task = spawn(move || {
            bucle::to_thread(move || {
                let _ = wait.recv();
            })
        });
        yield_now(); // the gate's job is queued before anything else
        Gate { open, task }
    }

    fn open(self) {
        self.open.send(()).unwrap();
        self.task.join().unwrap();
    }
}

/// Like [`cancel_during`], but the operation's job waits behind a closed
/// [`Gate`], so an operation that needs its worker is always cut short
/// (`None`); the gate opens after the cut, and the job runs then. The file
/// is settled first, so the job cut short is the operation's own.
fn cut_short<R: 'static>(
    file: &Rc<RefCell<File>>,
    op: impl FnOnce(&mut File) -> R + 'static,
) -> Option<R> {
    file.borrow_mut().flush().unwrap();
    let gate = Gate::close();
    let r = cancel_during(file, op);
    gate.open();
    r
}

/// [`cut_short`], for an operation that needs its worker.
fn cut<R: 'static>(file: &Rc<RefCell<File>>, op: impl FnOnce(&mut File) -> R + 'static) {
    assert!(
        cut_short(file, op).is_none(),
        "the operation ended without its worker"
    );
}

fn bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// The error `io::Error` parts that std's and ours must share.
fn same_error(ours: &io::Error, std: &io::Error) {
    assert_eq!(ours.kind(), std.kind(), "{ours} vs {std}");
    assert_eq!(ours.raw_os_error(), std.raw_os_error(), "{ours} vs {std}");
    assert_eq!(ours.to_string(), std.to_string());
}

// -------------------------------------------------------------------------
// Round trips.

#[test]
fn the_free_functions_do_what_std_does() {
    let dir = TempDir::new("fs-free");
    let d = dir.path().to_owned();
    run(move || {
        let a = d.join("a.txt");
        bucle::fs::write(&a, "¡Hola, asyncio!").unwrap();
        assert_eq!(bucle::fs::read(&a).unwrap(), "¡Hola, asyncio!".as_bytes());
        assert_eq!(bucle::fs::read_to_string(&a).unwrap(), "¡Hola, asyncio!");
        assert_eq!(bucle::fs::metadata(&a).unwrap().len(), 16);
        assert_eq!(bucle::fs::copy(&a, d.join("b.txt")).unwrap(), 16);
        bucle::fs::rename(d.join("b.txt"), d.join("c.txt")).unwrap();
        assert!(!bucle::fs::try_exists(d.join("b.txt")).unwrap());
        assert!(bucle::fs::try_exists(d.join("c.txt")).unwrap());
        bucle::fs::remove_file(d.join("c.txt")).unwrap();
        bucle::fs::create_dir(d.join("x")).unwrap();
        bucle::fs::create_dir_all(d.join("x/y/z")).unwrap();
        bucle::fs::write(d.join("x/y/z/f"), []).unwrap();
        assert!(bucle::fs::metadata(d.join("x/y/z")).unwrap().is_dir());
        bucle::fs::remove_dir(d.join("x/y/z")).unwrap_err(); // not empty
        bucle::fs::remove_dir_all(d.join("x")).unwrap();
        assert!(!bucle::fs::try_exists(d.join("x")).unwrap());
    });
}

#[test]
fn a_file_round_trips_through_write_all_read_to_end_and_small_reads() {
    let dir = TempDir::new("fs-file");
    let path = dir.join("f");
    run(move || {
        let data = bytes(100_000);
        let mut f = File::create(&path).unwrap();
        f.write_all(&data).unwrap();
        f.flush().unwrap();
        f.sync_all().unwrap();
        assert_eq!(f.metadata().unwrap().len(), 100_000);
        drop(f);

        let mut f = File::open(&path).unwrap();
        let mut all = Vec::new();
        assert_eq!(f.read_to_end(&mut all).unwrap(), 100_000);
        assert_eq!(all, data);
        assert_eq!(f.read(&mut [0; 8]).unwrap(), 0, "at the end");

        // std's adapters, through the Read and Seek impls.
        assert_eq!(Seek::seek(&mut f, SeekFrom::Start(0)).unwrap(), 0);
        let mut first = [0u8; 7];
        f.read_exact(&mut first).unwrap();
        assert_eq!(first, data[..7]);
        let mut rest = Vec::new();
        io::copy(&mut f, &mut rest).unwrap();
        assert_eq!(rest, data[7..]);

        let mut text = String::from("antes: ");
        bucle::fs::write(&path, "después").unwrap();
        let mut f = File::open(&path).unwrap();
        assert_eq!(f.read_to_string(&mut text).unwrap(), "después".len());
        assert_eq!(text, "antes: después");
    });
}

#[test]
fn a_huge_file_moves_in_slices_and_round_trips() {
    let dir = TempDir::new("fs-huge");
    let path = dir.join("huge");
    run(move || {
        let data = bytes(9 * 1024 * 1024 + 3);
        let mut f = File::create(&path).unwrap();
        // One call moves at most 2 MiB; write_all loops.
        assert_eq!(f.write(&data).unwrap(), 2 * 1024 * 1024);
        f.write_all(&data[2 * 1024 * 1024..]).unwrap();
        drop(f);
        assert_eq!(bucle::fs::read(&path).unwrap(), data);

        let mut f = File::open(&path).unwrap();
        let mut buf = vec![0; 5 * 1024 * 1024];
        let mut back = Vec::new();
        loop {
            let n = f.read(&mut buf).unwrap();
            assert!(n <= 2 * 1024 * 1024, "one read moved {n} bytes");
            if n == 0 {
                break;
            }
            back.extend_from_slice(&buf[..n]);
        }
        assert_eq!(back, data);
    });
}

#[test]
fn open_with_takes_std_options() {
    let dir = TempDir::new("fs-options");
    let path = dir.join("log");
    run(move || {
        let append = OpenOptions::new().append(true).create(true).clone();
        for line in ["uno\n", "dos\n"] {
            File::open_with(&path, &append)
                .unwrap()
                .write_all(line.as_bytes())
                .unwrap();
        }
        assert_eq!(bucle::fs::read_to_string(&path).unwrap(), "uno\ndos\n");
        let e =
            File::open_with(&path, OpenOptions::new().write(true).create_new(true)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    });
}

#[test]
fn from_std_and_into_std_hand_the_same_file_over() {
    let dir = TempDir::new("fs-std");
    let path = dir.join("f");
    run(move || {
        std::fs::write(&path, "0123456789").unwrap();
        let mut f = File::from(std::fs::File::open(&path).unwrap());
        let mut four = [0u8; 4];
        f.read_exact(&mut four).unwrap();
        let mut std = f.into_std();
        let mut rest = String::new();
        std.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "456789", "the position travels with the file");
    });
}

// -------------------------------------------------------------------------
// Errors.

#[test]
fn errors_are_std_errors_unchanged() {
    let dir = TempDir::new("fs-errors");
    let d = dir.path().to_owned();
    run(move || {
        let missing = d.join("missing");
        same_error(
            &bucle::fs::read(&missing).unwrap_err(),
            &std::fs::read(&missing).unwrap_err(),
        );
        same_error(
            &File::open(&missing).unwrap_err(),
            &std::fs::File::open(&missing).unwrap_err(),
        );
        same_error(
            &bucle::fs::metadata(&missing).unwrap_err(),
            &std::fs::metadata(&missing).unwrap_err(),
        );
        same_error(
            &bucle::fs::remove_file(&missing).unwrap_err(),
            &std::fs::remove_file(&missing).unwrap_err(),
        );
        same_error(
            &bucle::fs::rename(&missing, d.join("x")).unwrap_err(),
            &std::fs::rename(&missing, d.join("x")).unwrap_err(),
        );
        same_error(
            &bucle::fs::create_dir(&d).unwrap_err(),
            &std::fs::create_dir(&d).unwrap_err(),
        );
        assert_eq!(
            bucle::fs::read(&missing).unwrap_err().kind(),
            ErrorKind::NotFound
        );

        let latin1 = d.join("latin1");
        std::fs::write(&latin1, b"a\xe9b").unwrap();
        same_error(
            &bucle::fs::read_to_string(&latin1).unwrap_err(),
            &std::fs::read_to_string(&latin1).unwrap_err(),
        );

        // A directory opens, and its read is EISDIR.
        let mut ours = File::open(&d).unwrap();
        let mut theirs = std::fs::File::open(&d).unwrap();
        same_error(
            &ours.read(&mut [0; 4]).unwrap_err(),
            &theirs.read(&mut [0; 4]).unwrap_err(),
        );
        // A file open for reading refuses writes.
        let mut ours = File::open(&latin1).unwrap();
        let mut theirs = std::fs::File::open(&latin1).unwrap();
        same_error(
            &ours.write(b"x").unwrap_err(),
            &theirs.write(b"x").unwrap_err(),
        );
        same_error(
            &ours.set_len(0).unwrap_err(),
            &theirs.set_len(0).unwrap_err(),
        );
        same_error(
            &ours.seek(SeekFrom::Current(-100)).unwrap_err(),
            &theirs.seek(SeekFrom::Current(-100)).unwrap_err(),
        );
    });
}

#[test]
fn a_file_used_after_an_error_still_works() {
    let dir = TempDir::new("fs-after-error");
    let path = dir.join("f");
    let d = dir.path().to_owned();
    run(move || {
        std::fs::write(&path, "contenido").unwrap();
        let mut f = File::open(&path).unwrap();
        f.write(b"x").unwrap_err();
        f.seek(SeekFrom::Current(-1)).unwrap_err();
        f.set_len(0).unwrap_err();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!(s, "contenido");

        let mut dir = File::open(&d).unwrap();
        assert_eq!(
            dir.read_to_end(&mut Vec::new()).unwrap_err().kind(),
            ErrorKind::IsADirectory
        );
        assert!(dir.metadata().unwrap().is_dir());
    });
}

#[test]
fn read_to_string_of_bytes_that_are_not_utf8_keeps_them_unread() {
    let dir = TempDir::new("fs-utf8");
    let path = dir.join("latin1");
    run(move || {
        std::fs::write(&path, b"caf\xe9").unwrap();
        let mut f = File::open(&path).unwrap();
        let mut s = String::from("sin cambios");
        let e = f.read_to_string(&mut s).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidData);
        assert_eq!(s, "sin cambios", "buf is unchanged");
        let mut raw = Vec::new();
        f.read_to_end(&mut raw).unwrap();
        assert_eq!(raw, b"caf\xe9", "the bytes were not lost");
    });
}

// -------------------------------------------------------------------------
// The loop runs on.

/// Opening a FIFO blocks until someone opens its other end. Here that is
/// only done after three ticks of another task, so the open can only
/// return after the loop ran that task while the open blocked a thread.
#[test]
fn a_blocked_file_operation_does_not_block_other_tasks() {
    let dir = TempDir::new("fs-blocked");
    let fifo = mkfifo(&dir, "fifo");
    let log = run(move || {
        let log = Rc::new(RefCell::new(Vec::new()));
        let (l, p) = (log.clone(), fifo.clone());
        let reader = spawn(move || {
            let mut f = File::open(&p).unwrap(); // blocks a worker, not the loop
            l.borrow_mut().push("opened".to_string());
            let mut s = String::new();
            f.read_to_string(&mut s).unwrap();
            s
        });
        for i in 0..3 {
            bucle::sleep(ms(1));
            log.borrow_mut().push(format!("tick {i}"));
        }
        let mut w = File::open_with(&fifo, OpenOptions::new().write(true)).unwrap();
        w.write_all(b"hola").unwrap();
        drop(w);
        assert_eq!(reader.join().unwrap(), "hola");
        log.take()
    });
    assert_eq!(log, ["tick 0", "tick 1", "tick 2", "opened"]);
}

#[test]
fn many_files_at_once_with_gather() {
    let dir = TempDir::new("fs-gather");
    let d = dir.path().to_owned();
    let texts = run(move || {
        let writes = (0..50).map(|i| {
            let p = d.join(format!("{i}.txt"));
            spawn(move || bucle::fs::write(p, format!("archivo {i}")).unwrap())
        });
        bucle::gather(writes).unwrap();
        let reads = (0..50).map(|i| {
            let p = d.join(format!("{i}.txt"));
            spawn(move || bucle::fs::read_to_string(p).unwrap())
        });
        bucle::gather(reads).unwrap()
    });
    let expected: Vec<String> = (0..50).map(|i| format!("archivo {i}")).collect();
    assert_eq!(texts, expected);
}

// -------------------------------------------------------------------------
// Operations cut short.

#[test]
fn a_read_cut_short_by_a_timeout_loses_no_byte() {
    let dir = TempDir::new("fs-cut-read");
    let fifo = mkfifo(&dir, "fifo");
    run(move || {
        let (mut r, mut w) = fifo_reader(&fifo);
        let mut buf = [0u8; 16];
        // Nothing to read: the read blocks its worker, the timeout fires.
        assert!(bucle::timeout(ms(5), || r.read(&mut buf)).is_err());
        w.write_all(b"abcdef").unwrap();
        drop(w);
        // The read cut short took the bytes; the next reads hand them out.
        let mut three = [0u8; 3];
        assert_eq!(r.read(&mut three).unwrap(), 3);
        assert_eq!(&three, b"abc");
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"def");
    });
}

#[test]
fn a_read_to_string_cut_short_by_cancel_loses_no_byte() {
    let dir = TempDir::new("fs-cancel-read");
    let fifo = mkfifo(&dir, "fifo");
    run(move || {
        let (r, mut w) = fifo_reader(&fifo);
        let r = Rc::new(RefCell::new(r));
        let cut = cancel_during(&r, |f| f.read_to_string(&mut String::new()));
        assert!(
            cut.is_none(),
            "read_to_string waits for the end of the FIFO"
        );
        w.write_all("¿dónde?".as_bytes()).unwrap();
        drop(w);
        let mut s = String::new();
        r.borrow_mut().read_to_string(&mut s).unwrap();
        assert_eq!(s, "¿dónde?");
    });
}

/// A 3 MiB `write_all` cut short while its first call blocks on a full
/// FIFO: that call's 2 MiB are written when the reader drains the FIFO,
/// the rest never (the caller was gone), and the next write comes after
/// them.
#[test]
fn a_write_cut_short_lands_and_the_next_write_follows_it() {
    let dir = TempDir::new("fs-cut-write");
    let fifo = mkfifo(&dir, "fifo");
    let (received, big) = run(move || {
        let (mut w, r) = fifo_writer(&fifo);
        let big = bytes(3 * 1024 * 1024);
        let b = big.clone();
        assert!(bucle::timeout(ms(5), || w.write_all(&b)).is_err());
        // Only now does anyone read.
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            { r }.read_to_end(&mut all).unwrap();
            all
        });
        w.write_all(b"END").unwrap();
        drop(w);
        (bucle::to_thread(move || reader.join().unwrap()), big)
    });
    let mut expected = big[..2 * 1024 * 1024].to_vec();
    expected.extend_from_slice(b"END");
    assert_eq!(received.len(), expected.len());
    assert!(received == expected, "bytes out of order");
}

/// A write blocked on a full FIFO whose reader then goes away fails with
/// `BrokenPipe` on its worker, after its caller was cut short. `flush`
/// returns that error, once; the file stays usable.
#[test]
fn flush_returns_the_error_of_a_write_cut_short_once() {
    let dir = TempDir::new("fs-cut-error");
    let fifo = mkfifo(&dir, "fifo");
    run(move || {
        let (mut w, r) = fifo_writer(&fifo);
        // Fill the FIFO through another, non-blocking, writer.
        let mut filler = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        loop {
            match filler.write(&[0; 4096]) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("filling the FIFO: {e}"),
            }
        }
        assert!(bucle::timeout(ms(5), || w.write(b"x")).is_err());
        drop(r); // the blocked write now fails: EPIPE
        let e = w.flush().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BrokenPipe);
        w.flush().unwrap(); // given once
        assert!(w.metadata().unwrap().file_type().is_fifo());
        assert_eq!(w.write(b"y").unwrap_err().kind(), ErrorKind::BrokenPipe);
    });
}

/// Every operation of `File`, cut short behind a gate; the next one sees
/// what it did. In a child process: the gate needs the pool to itself.
#[test]
fn every_operation_cut_short_leaves_its_effect_for_the_next() {
    const NAME: &str = "every_operation_cut_short_leaves_its_effect_for_the_next";
    if !is_child(NAME) {
        in_child(NAME, Duration::from_secs(60));
        return;
    }
    bucle::set_max_workers(1);
    let dir = TempDir::new("fs-every-cut");
    let path = dir.join("f");
    run(move || {
        let f = Rc::new(RefCell::new(File::create(&path).unwrap()));
        cut(&f, |f| f.write_all(b"0123456789"));
        f.borrow_mut().flush().unwrap(); // waits for the write
        assert_eq!(std::fs::read(&path).unwrap(), b"0123456789");
        cut(&f, |f| f.seek(SeekFrom::Start(0)));
        assert_eq!(f.borrow_mut().seek(SeekFrom::Current(0)).unwrap(), 0);
        // The file is open for writing only: reopen it for both.
        let rw = OpenOptions::new().read(true).write(true).clone();
        *f.borrow_mut() = File::open_with(&path, &rw).unwrap();
        cut(&f, |f| f.read(&mut [0; 4]).map(drop));
        let mut two = [0u8; 2];
        assert_eq!(f.borrow_mut().read(&mut two).unwrap(), 2);
        assert_eq!(&two, b"01", "the read cut short lost nothing");
        // A write goes where the reader is (2), not where the OS file is (4).
        cut(&f, |f| f.write(b"ab"));
        assert_eq!(f.borrow_mut().seek(SeekFrom::Current(0)).unwrap(), 4);
        assert_eq!(std::fs::read(&path).unwrap(), b"01ab456789");
        cut(&f, |f| f.read_to_end(&mut Vec::new()));
        // Six bytes unread: the position counts from the ones handed out.
        assert_eq!(f.borrow_mut().seek(SeekFrom::Current(-2)).unwrap(), 2);
        cut(&f, |f| f.read_to_string(&mut String::new()));
        let mut s = String::new();
        f.borrow_mut().read_to_string(&mut s).unwrap();
        assert_eq!(s, "ab456789");
        cut(&f, |f| f.set_len(3));
        assert_eq!(f.borrow_mut().metadata().unwrap().len(), 3);
        cut(&f, |f| f.sync_all());
        cut(&f, |f| f.sync_data());
        cut(&f, |f| f.metadata().map(drop));
        cut(&f, |f| f.seek(SeekFrom::End(0)));
        f.borrow_mut().write_all(b"Z").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"01aZ");
        // Cut short while waiting for an operation cut short: still there.
        f.borrow_mut().seek(SeekFrom::Start(1)).unwrap();
        let gate = Gate::close();
        assert!(cancel_during(&f, |f| f.write(b"W")).is_none());
        assert!(cancel_during(&f, |f| f.write(b"V")).is_none()); // cut while it waits for W's
        gate.open();
        f.borrow_mut().flush().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"0WaZ", "V never started");
        // into_std waits, and gives back the bytes a read cut short took.
        f.borrow_mut().seek(SeekFrom::Start(0)).unwrap();
        cut(&f, |f| f.read(&mut [0; 3]).map(drop));
        let file = Rc::try_unwrap(f).ok().unwrap().into_inner();
        let mut rest = String::new();
        file.into_std().read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "0WaZ");
        // A free function cut short does its work all the same.
        let gate = Gate::close();
        let p = path.with_extension("libre");
        let t = spawn(move || bucle::fs::write(p, "escrito"));
        yield_now();
        t.cancel();
        assert!(matches!(t.join(), Err(JoinError::Cancelled)));
        gate.open();
        let p = path.with_extension("libre");
        eventually("the write cut short lands", || {
            std::fs::read(&p).is_ok_and(|b| b == b"escrito")
        });
        // Open cut short: the file it opened is closed on the worker.
        let gate = Gate::close();
        let p = path.clone();
        let t = spawn(move || File::open(p).map(drop));
        yield_now();
        t.cancel();
        assert!(matches!(t.join(), Err(JoinError::Cancelled)));
        gate.open();
    });
}

/// One step of the property test's programs.
#[derive(Debug, Clone)]
enum Step {
    Write(Vec<u8>),
    Read(usize),
    ReadToEnd,
    ReadToString,
    SeekStart(u64),
    SeekCurrent(i64),
    SeekEnd(i64),
    SetLen(u64),
    Metadata,
    SyncData,
    Flush,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => proptest::collection::vec(b'a'..=b'z', 1..40).prop_map(Step::Write),
        3 => (1usize..40).prop_map(Step::Read),
        1 => Just(Step::ReadToEnd),
        1 => Just(Step::ReadToString),
        1 => (0u64..120).prop_map(Step::SeekStart),
        1 => (-40i64..40).prop_map(Step::SeekCurrent),
        1 => (-40i64..10).prop_map(Step::SeekEnd),
        1 => (0u64..120).prop_map(Step::SetLen),
        1 => Just(Step::Metadata),
        1 => Just(Step::SyncData),
        1 => Just(Step::Flush),
    ]
}

/// Random programs on a `File`, each step run plainly or cut short behind
/// a gate, and the same program on a std file, where a cut-short read is
/// left out (it lost nothing: the next reads hand its bytes out) and any
/// other step runs in full (what it did stays done). Both files agree on
/// every value read, every position, and the contents at the end.
#[test]
fn operations_cut_short_agree_with_std_property() {
    const NAME: &str = "operations_cut_short_agree_with_std_property";
    if !is_child(NAME) {
        in_child(NAME, Duration::from_secs(120));
        return;
    }
    bucle::set_max_workers(1);
    let dir = TempDir::new("fs-model");
    let mut runner = TestRunner::new(Config {
        cases: 48,
        max_shrink_iters: 256,
        failure_persistence: None,
        ..Config::default()
    });
    let program = proptest::collection::vec((step(), any::<bool>()), 1..30);
    let case = std::cell::Cell::new(0);
    runner
        .run(&program, |steps| {
            case.set(case.get() + 1);
            let ours = dir.join(&format!("ours-{}", case.get()));
            let theirs = dir.join(&format!("theirs-{}", case.get()));
            check_program(&ours, &theirs, steps);
            Ok(())
        })
        .unwrap();
}

fn check_program(ours: &Path, theirs: &Path, steps: Vec<(Step, bool)>) {
    let rw = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .clone();
    let mut model = rw.open(theirs).unwrap();
    let ours = ours.to_owned();
    run(move || {
        let f = Rc::new(RefCell::new(File::open_with(&ours, &rw).unwrap()));
        for (i, (step, cut)) in steps.into_iter().enumerate() {
            let at = format!("step {i}: {step:?}, cut short: {cut}");
            // Seeks before the start are refused: keep to valid ones.
            let pos = model.stream_position().unwrap() as i64;
            let len = model.metadata().unwrap().len() as i64;
            let step = match step {
                Step::SeekCurrent(d) => Step::SeekCurrent(d.max(-pos)),
                Step::SeekEnd(d) => Step::SeekEnd(d.max(-len)),
                other => other,
            };
            let got = if cut {
                let s = step.clone();
                cut_short(&f, move |f| apply(f, &s))
            } else {
                Some(apply(&mut *f.borrow_mut(), &step))
            };
            match got {
                Some(got) => {
                    let got = got.expect(&at);
                    let want = match (&step, &got) {
                        // A short read is fine: the model reads as many.
                        (Step::Read(_), Got::Bytes(b)) => {
                            let mut want = vec![0; b.len()];
                            model.read_exact(&mut want).expect(&at);
                            Got::Bytes(want)
                        }
                        _ => apply(&mut model, &step).expect(&at),
                    };
                    assert_eq!(got, want, "{at}");
                }
                // Cut short: a read lost nothing, anything else is done.
                None => {
                    if !matches!(step, Step::Read(_) | Step::ReadToEnd | Step::ReadToString) {
                        apply(&mut model, &step).expect(&at);
                    }
                }
            }
        }
        let mut f = f.borrow_mut();
        f.flush().unwrap();
        assert_eq!(
            f.seek(SeekFrom::Current(0)).unwrap(),
            model.stream_position().unwrap(),
            "position at the end"
        );
        f.seek(SeekFrom::Start(0)).unwrap();
        model.seek(SeekFrom::Start(0)).unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        f.read_to_end(&mut a).unwrap();
        model.read_to_end(&mut b).unwrap();
        assert_eq!(a, b, "contents at the end");
    });
}

#[derive(Debug, PartialEq)]
enum Got {
    Bytes(Vec<u8>),
    Text(String),
    Count(u64),
    Nothing,
}

/// Runs `step` on a file: ours (`bucle::fs::File`, through the Read,
/// Write and Seek traits and its inherent methods) or std's.
fn apply(f: &mut dyn AnyFile, step: &Step) -> io::Result<Got> {
    Ok(match step {
        Step::Write(b) => {
            f.write_all(b)?;
            Got::Nothing
        }
        Step::Read(n) => {
            let mut buf = vec![0; *n];
            let got = f.read(&mut buf)?;
            buf.truncate(got);
            Got::Bytes(buf)
        }
        Step::ReadToEnd => {
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)?;
            Got::Bytes(buf)
        }
        Step::ReadToString => {
            let mut s = String::new();
            f.read_to_string(&mut s)?;
            Got::Text(s)
        }
        Step::SeekStart(n) => Got::Count(f.seek(SeekFrom::Start(*n))?),
        Step::SeekCurrent(d) => Got::Count(f.seek(SeekFrom::Current(*d))?),
        Step::SeekEnd(d) => Got::Count(f.seek(SeekFrom::End(*d))?),
        Step::SetLen(n) => {
            f.set_len(*n)?;
            Got::Nothing
        }
        Step::Metadata => Got::Count(f.len()?),
        Step::SyncData => {
            f.sync_data()?;
            Got::Nothing
        }
        Step::Flush => {
            f.flush()?;
            Got::Nothing
        }
    })
}

/// What both files can do.
trait AnyFile: Read + Write + Seek {
    fn set_len(&mut self, n: u64) -> io::Result<()>;
    fn len(&mut self) -> io::Result<u64>;
    fn sync_data(&mut self) -> io::Result<()>;
}

impl AnyFile for File {
    fn set_len(&mut self, n: u64) -> io::Result<()> {
        File::set_len(self, n)
    }
    fn len(&mut self) -> io::Result<u64> {
        Ok(File::metadata(self)?.len())
    }
    fn sync_data(&mut self) -> io::Result<()> {
        File::sync_data(self)
    }
}

impl AnyFile for std::fs::File {
    fn set_len(&mut self, n: u64) -> io::Result<()> {
        std::fs::File::set_len(self, n)
    }
    fn len(&mut self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
    fn sync_data(&mut self) -> io::Result<()> {
        std::fs::File::sync_data(self)
    }
}

/// With bytes a read cut short took still unread, `SeekFrom::Current`
/// counts back over them: an offset that would overflow is `InvalidInput`
/// (not a wrapped seek), and no byte is lost.
#[test]
fn a_seek_that_overflows_over_unread_bytes_is_invalid_input() {
    let dir = TempDir::new("fs-seek-overflow");
    let fifo = mkfifo(&dir, "fifo");
    run(move || {
        let (r, mut w) = fifo_reader(&fifo);
        let r = Rc::new(RefCell::new(r));
        assert!(cancel_during(&r, |f| f.read(&mut [0; 8]).map(drop)).is_none());
        w.write_all(b"abcdef").unwrap();
        let e = r
            .borrow_mut()
            .seek(SeekFrom::Current(i64::MIN))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let mut buf = [0u8; 6];
        r.borrow_mut().read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"abcdef");
    });
}

/// A FIFO has no position: the bytes a read cut short took stay for the
/// next read even when a write comes first (on a FIFO open for both).
#[test]
fn on_a_fifo_a_write_after_a_read_cut_short_keeps_the_bytes() {
    let dir = TempDir::new("fs-fifo-rw");
    let fifo = mkfifo(&dir, "fifo");
    run(move || {
        // Open for both: Linux opens a FIFO read-write without waiting.
        let f = File::open_with(&fifo, OpenOptions::new().read(true).write(true)).unwrap();
        let f = Rc::new(RefCell::new(f));
        assert!(cancel_during(&f, |f| f.read(&mut [0; 8]).map(drop)).is_none());
        // Another writer feeds the blocked read, which takes "uno". (This
        // File's own write could not: it would wait for the read first.)
        let mut other = OpenOptions::new().write(true).open(&fifo).unwrap();
        other.write_all(b"uno").unwrap();
        f.borrow_mut().write_all(b"dos").unwrap();
        let mut buf = [0u8; 6];
        f.borrow_mut().read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"unodos");
    });
}

/// While a task waits for an operation cut short, nothing else can run
/// and no timer is due: the loop waits for the worker (the clock stands
/// still), rather than report a deadlock.
#[test]
fn waiting_for_an_operation_cut_short_is_not_a_deadlock_on_the_virtual_clock() {
    let dir = TempDir::new("fs-virtual");
    let fifo = mkfifo(&dir, "fifo");
    let lp = vloop();
    let (got, elapsed) = lp.run_until_complete(move || {
        let (r, w) = fifo_reader(&fifo);
        let r = Rc::new(RefCell::new(r));
        assert!(cancel_during(&r, |f| f.read(&mut [0; 8]).map(drop)).is_none());
        let t0 = bucle::time();
        let sleeper = spawn(|| bucle::sleep(Duration::from_secs(3600)));
        std::thread::spawn(move || {
            std::thread::sleep(ms(20));
            { w }.write_all(b"tarde").unwrap();
        });
        let mut buf = [0u8; 8];
        let n = r.borrow_mut().read(&mut buf).unwrap();
        let elapsed = bucle::time() - t0;
        sleeper.cancel();
        (buf[..n].to_vec(), elapsed)
    });
    lp.close();
    assert_eq!(got, b"tarde");
    assert_eq!(elapsed, Duration::ZERO, "the clock jumped past a worker");
}

/// A `File` is `Send`: cut short on one loop, it moves to another thread
/// and its loop, which waits for the operation and reads its bytes.
#[test]
fn a_file_moves_to_another_loop_with_an_operation_in_flight() {
    fn send<T: Send + Sync>(_: &T) {}
    let dir = TempDir::new("fs-move");
    let fifo = mkfifo(&dir, "fifo");
    let (r, w) = run(move || {
        let (r, w) = fifo_reader(&fifo);
        let r = Rc::new(RefCell::new(r));
        assert!(cancel_during(&r, |f| f.read(&mut [0; 8]).map(drop)).is_none());
        (Rc::try_unwrap(r).ok().unwrap().into_inner(), w)
    });
    send(&r);
    let mut r = r;
    let got = std::thread::spawn(move || {
        run(move || {
            { w }.write_all(b"viaje").unwrap();
            let mut s = String::new();
            r.read_to_string(&mut s).unwrap();
            s
        })
    })
    .join()
    .unwrap();
    assert_eq!(got, "viaje");
}

// -------------------------------------------------------------------------
// Drops and descriptors.

/// Dropping a `File` whose read is blocked on its worker returns at once;
/// the descriptor closes when the read ends. In a child process, where no
/// other test opens descriptors meanwhile.
#[test]
fn dropping_a_file_with_an_operation_in_flight_closes_it_when_the_operation_ends() {
    const NAME: &str =
        "dropping_a_file_with_an_operation_in_flight_closes_it_when_the_operation_ends";
    if !is_child(NAME) {
        in_child(NAME, Duration::from_secs(60));
        return;
    }
    let dir = TempDir::new("fs-drop");
    let fifo = mkfifo(&dir, "fifo");
    run(move || {
        drop(bucle::remote()); // the loop's poller exists from here on
        let before = open_fds();
        let (r, mut w) = fifo_reader(&fifo);
        assert_eq!(open_fds(), before + 2);
        let r = Rc::new(RefCell::new(r));
        assert!(cancel_during(&r, |f| f.read(&mut [0; 8]).map(drop)).is_none());
        drop(r); // returns: the loop goes on while the read blocks
        yield_now();
        assert_eq!(open_fds(), before + 2, "the worker still reads");
        w.write_all(b"x").unwrap();
        eventually("the reader's descriptor closes", || {
            open_fds() == before + 1
        });
        drop(w);
        assert_eq!(open_fds(), before);
        // An idle file closes at once.
        let f = File::open(fifo.parent().unwrap()).unwrap();
        assert_eq!(open_fds(), before + 1);
        drop(f);
        assert_eq!(open_fds(), before);
    });
}

/// Storms of opens, reads and writes cut short, drops in flight, errors
/// and cancelled opens: the number of open descriptors is the same
/// afterwards. In a child process.
#[test]
fn no_descriptor_leaks_through_cut_short_and_dropped_operations() {
    const NAME: &str = "no_descriptor_leaks_through_cut_short_and_dropped_operations";
    if !is_child(NAME) {
        in_child(NAME, Duration::from_secs(120));
        return;
    }
    let dir = TempDir::new("fs-storm");
    let d = dir.path().to_owned();
    run(move || {
        drop(bucle::remote()); // the loop's poller exists from here on
        let before = open_fds();
        for i in 0..100 {
            let path = d.join(format!("{i}"));
            let f = Rc::new(RefCell::new(File::create(&path).unwrap()));
            cancel_during(&f, |f| f.write_all(&[7; 10_000]));
            if i % 2 == 0 {
                drop(f); // maybe in flight
            } else {
                f.borrow_mut().flush().unwrap();
                cancel_during(&f, |f| f.seek(SeekFrom::Start(0)));
                cancel_during(&f, |f| f.sync_all());
            }
            let f = Rc::new(RefCell::new(File::open(&path).unwrap()));
            cancel_during(&f, |f| f.read_to_end(&mut Vec::new()));
            drop(f);
            File::open(d.join("missing")).unwrap_err();
            let p = path.clone();
            let t = spawn(move || File::open(p).map(drop));
            yield_now();
            t.cancel();
            let _ = t.join();
            let p = path.clone();
            let t = spawn(move || bucle::fs::read(p).map(drop));
            yield_now();
            t.cancel();
            let _ = t.join();
        }
        eventually("every descriptor closes", || open_fds() == before);
    });
}

// -------------------------------------------------------------------------
// Misuse.

#[test]
fn outside_a_running_loop_every_call_panics_naming_itself_and_runs_nothing() {
    let dir = TempDir::new("fs-misuse");
    let path = dir.join("nunca");
    let p = path.clone();
    let msg = catch(move || bucle::fs::write(&p, "x")).unwrap_err();
    assert!(
        msg.starts_with(
            "bucle::fs::write called outside a running event loop; wrap it in bucle::run"
        ),
        "{msg}"
    );
    assert!(!path.exists(), "the write ran anyway");

    std::fs::write(&path, "intacto").unwrap();
    let std = std::fs::File::open(&path).unwrap();
    let mut f = File::from_std(std);
    let msg = catch(|| f.read(&mut [0; 4])).unwrap_err();
    assert!(
        msg.starts_with("bucle::fs::File::read called outside a running event loop"),
        "{msg}"
    );
    let msg = catch(|| f.read_to_string(&mut String::new())).unwrap_err();
    assert!(
        msg.starts_with("bucle::fs::File::read_to_string called outside"),
        "{msg}"
    );
    // The refused calls changed nothing: the file is whole, at its start.
    let s = run(move || {
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        s
    });
    assert_eq!(s, "intacto");
}

#[test]
fn in_a_callback_a_call_panics_naming_itself() {
    let msg = {
        run(|| {
            let done = bucle::Future::new();
            let d = done.clone();
            bucle::call_soon(move || {
                let r = std::panic::catch_unwind(|| bucle::fs::read("/nonexistent"));
                let msg = match r {
                    Err(p) => support::payload_str(p.as_ref()).unwrap_or("").to_string(),
                    Ok(_) => "no panic".to_string(),
                };
                d.set_result(msg).unwrap();
            });
            done.wait().unwrap()
        })
    };
    assert!(
        msg.starts_with("bucle::fs::read called from a callback, outside any task"),
        "{msg}"
    );
}

/// The loop ends (its leftover tasks cancelled, their files dropped) while
/// a read blocks a worker: the descriptor closes when the read ends, with
/// no loop at all. In a child process.
#[test]
fn a_loop_that_ends_with_a_read_in_flight_leaves_the_file_to_the_worker() {
    const NAME: &str = "a_loop_that_ends_with_a_read_in_flight_leaves_the_file_to_the_worker";
    if !is_child(NAME) {
        in_child(NAME, Duration::from_secs(60));
        return;
    }
    let dir = TempDir::new("fs-loop-ends");
    let fifo = mkfifo(&dir, "fifo");
    let before = open_fds();
    let writer = bucle::run(move || {
        let (mut r, w) = fifo_reader(&fifo);
        bucle::spawn(move || r.read_to_end(&mut Vec::new())); // never ends by itself
        yield_now();
        w // main returns: the reader's task is cancelled, its File dropped
    });
    // The loop's descriptors go (a worker may hold its poller a moment
    // longer, while it hands a result over); the writer and the reader
    // stay.
    let settled = |n: usize| {
        let start = Instant::now();
        while open_fds() != n {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{} fds, not {n}",
                open_fds()
            );
            std::thread::sleep(ms(1));
        }
    };
    settled(before + 2);
    drop(writer); // the end of the FIFO: the read ends, the worker closes it
    settled(before);
}

/// Out of descriptors, the loop cannot make the poller a worker needs to
/// wake it: the operation panics, naming itself and the cause, before the
/// std file leaves the `File`, which works once descriptors are free. In
/// a child process (it lowers the descriptor limit).
#[test]
fn out_of_descriptors_an_operation_panics_and_the_file_survives() {
    const NAME: &str = "out_of_descriptors_an_operation_panics_and_the_file_survives";
    if !is_child(NAME) {
        in_child(NAME, Duration::from_secs(60));
        return;
    }
    let dir = TempDir::new("fs-emfile");
    let path = dir.join("f");
    std::fs::write(&path, "sobrevive").unwrap();
    let f = Rc::new(RefCell::new(File::from_std(
        std::fs::File::open(&path).unwrap(),
    )));
    // A fresh loop: no poller yet.
    let lp = bucle::EventLoop::new();
    let no_fds = net_support::Exhausted::new();
    let f2 = f.clone();
    let msg = catch(|| {
        lp.run_until_complete(move || {
            let r = f2.borrow_mut().read_to_string(&mut String::new());
            r.map(drop)
        })
    })
    .map(drop)
    .unwrap_err();
    assert!(
        msg.starts_with("bucle::fs::File::read_to_string: could not open the loop's poller"),
        "{msg}"
    );
    drop(no_fds);
    let text = lp.run_until_complete(move || {
        let mut s = String::new();
        f.borrow_mut().read_to_string(&mut s).unwrap();
        s
    });
    assert_eq!(text, "sobrevive");
    lp.close();
}
