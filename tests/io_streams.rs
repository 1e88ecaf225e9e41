//! Stage 5, streams (issue #14's proof): `StreamReader`'s read methods
//! exactly as asyncio's (lines, separators split across packets, the
//! limit and what it leaves in the buffer, short reads at the end of the
//! stream, reading paused at twice the limit, one reader at a time, no
//! byte lost to a cancel or a timeout) and `StreamWriter`'s (writes that
//! go at once, drain's water marks with a peer that does not read, several
//! drainers, a reset peer, half-close, close and abort, the last clone's
//! drop). Every reader here reads a real socket on loopback; the peer is a
//! raw `TcpStream` or another pair of streams.

#[path = "support/net.rs"]
mod net_support;
#[path = "support/streams.rs"]
mod streams_support;

use std::cell::Cell;
use std::io;
use std::net::Shutdown;
use std::rc::Rc;

use bucle::net::{DEFAULT_HIGH_WATER, DEFAULT_LIMIT, ReadError, StreamReader};
use bucle::{JoinError, spawn, timeout, wait_for, yield_now};
use net_support::{linger_zero, ms, run};
use streams_support::{
    catch_msg, read_all, small_streams_and_peer, streams_and_peer, streams_both, until,
    write_past_high, write_until_buffered, write_until_stuck,
};

/// Whether `r` is `LimitOverrun { consumed, found }`.
fn overrun(r: &Result<Vec<u8>, ReadError>, consumed: usize, found: bool) -> bool {
    matches!(r, Err(ReadError::LimitOverrun { consumed: c, found: f }) if *c == consumed && *f == found)
}

/// Spawns a task that runs `f` on a shared reader.
fn reading<T: 'static>(
    reader: &Rc<StreamReader>,
    f: impl FnOnce(&StreamReader) -> T + 'static,
) -> bucle::Task<T> {
    let r = reader.clone();
    spawn(move || f(&r))
}

/// A task that counts as "ran" once it runs: proves the caller did not
/// suspend if it has not run by the time the caller looks.
fn marker() -> Rc<Cell<bool>> {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    spawn(move || r.set(true));
    ran
}

// ---------------------------------------------------------------------------
// The reader.

#[test]
fn readline_returns_the_partial_line_at_eof_then_empty() {
    run(|| {
        let (reader, _writer, peer) = streams_and_peer();
        peer.write_all(b"uno\ndos\ntr").unwrap();
        peer.shutdown(Shutdown::Write).unwrap();
        assert_eq!(reader.readline().unwrap(), b"uno\n");
        assert_eq!(reader.readline().unwrap(), b"dos\n");
        assert!(!reader.at_eof());
        assert_eq!(reader.readline().unwrap(), b"tr");
        assert!(reader.at_eof());
        assert_eq!(reader.readline().unwrap(), b"");
        assert_eq!(reader.readline().unwrap(), b"");
        assert!(reader.at_eof());
    });
}

#[test]
fn readuntil_finds_a_separator_split_across_packets() {
    run(|| {
        let (reader, _writer, peer) = streams_and_peer();
        let reader = Rc::new(reader);
        let line = reading(&reader, |r| r.readuntil(b"\r\n").unwrap());
        peer.write_all(b"hola\r").unwrap();
        until("first packet buffered", || reader.buffered() == 5);
        assert!(!line.is_done(), "half a separator is no separator");
        peer.write_all(b"\nmundo").unwrap();
        assert_eq!(line.join().unwrap(), b"hola\r\n");
        until("rest buffered", || reader.buffered() == 5);
        assert_eq!(reader.read(100).unwrap(), b"mundo");
    });
}

#[test]
fn a_multi_byte_separator_split_over_three_reads_is_found() {
    run(|| {
        let (reader, _writer, peer) = streams_and_peer();
        let reader = Rc::new(reader);
        let chunk = reading(&reader, |r| r.readuntil(b"--FIN--").unwrap());
        peer.write_all(b"abc--F").unwrap();
        until("6 bytes buffered", || reader.buffered() == 6);
        peer.write_all(b"IN").unwrap();
        until("8 bytes buffered", || reader.buffered() == 8);
        assert!(!chunk.is_done());
        peer.write_all(b"--rest-").unwrap();
        assert_eq!(chunk.join().unwrap(), b"abc--FIN--");
        assert_eq!(reader.readexactly(5).unwrap(), b"rest-");
    });
}

#[test]
fn readuntil_past_the_limit_is_limit_overrun_and_keeps_the_data() {
    run(|| {
        let (reader, _writer, peer) = streams_and_peer();
        reader.set_limit(8);
        // All 16 bytes are in the buffer when readuntil looks: asyncio's
        // `consumed` is then `len(buffer) + 1 - len(separator)`.
        peer.write_all(b"0123456789abcdef").unwrap();
        let r = reader.readuntil(b"\n");
        assert!(overrun(&r, 16, false), "{r:?}");
        assert_eq!(
            r.unwrap_err().to_string(),
            "Separator is not found, and chunk exceed the limit"
        );
        assert_eq!(reader.buffered(), 16, "the data stays in the buffer");
        let r = reader.readuntil(b"XYZ");
        assert!(overrun(&r, 14, false), "{r:?}");
        assert_eq!(reader.readexactly(16).unwrap(), b"0123456789abcdef");
    });
}

#[test]
fn readuntil_overrun_counts_what_arrived_over_several_reads() {
    run(|| {
        let (reader, _writer, peer) = streams_and_peer();
        reader.set_limit(8);
        let reader = Rc::new(reader);
        let r = reading(&reader, |r| r.readuntil(b"\n"));
        peer.write_all(b"01234").unwrap();
        until("5 bytes buffered", || reader.buffered() == 5);
        assert!(!r.is_done(), "5 bytes are within the limit: it waits");
        peer.write_all(b"56789").unwrap();
        let r = r.join().unwrap();
        assert!(overrun(&r, 10, false), "{r:?}");
        assert_eq!(reader.buffered(), 10);
        assert_eq!(reader.read(100).unwrap(), b"0123456789");
    });
}

#[test]
fn readuntil_with_the_separator_beyond_the_limit_says_where_it_is() {
    run(|| {
        let (reader, _writer, peer) = streams_and_peer();
        reader.set_limit(8);
        peer.write_all(b"0123456789\nrest").unwrap();
        let r = reader.readuntil(b"\n");
        assert!(overrun(&r, 10, true), "{r:?}");
        assert_eq!(
            r.unwrap_err().to_string(),
            "Separator is found, but chunk is longer than limit"
        );
        assert_eq!(reader.buffered(), 15);
        assert_eq!(reader.readexactly(11).unwrap(), b"0123456789\n");
        assert_eq!(reader.read(100).unwrap(), b"rest");
    });
}

#[test]
fn the_limit_counts_the_chunk_without_its_separator() {
    run(|| {
        let (reader, _writer, peer) = streams_and_peer();
        reader.set_limit(8);
        // A separator right at the limit is within it.
        peer.write_all(b"01234567--").unwrap();
        assert_eq!(reader.readuntil(b"--").unwrap(), b"01234567--");
        // Nine bytes and no separator (with a one-byte separator): past it.
        peer.write_all(b"012345678").unwrap();
        let r = reader.readuntil(b"\n");
        assert!(overrun(&r, 9, false), "{r:?}");
        assert_eq!(reader.readexactly(9).unwrap(), b"012345678");
        // Eight bytes and the end of the stream: incomplete, not overrun.
        peer.write_all(b"01234567").unwrap();
        peer.shutdown(Shutdown::Write).unwrap();
        match reader.readuntil(b"\n") {
            Err(ReadError::Incomplete { partial, expected }) => {
                assert_eq!(partial, b"01234567");
                assert_eq!(expected, None);
            }
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn readline_past_the_limit_drops_through_the_newline() {
    run(|| {
        let (reader, _writer, peer) = streams_and_peer();
        reader.set_limit(8);
        peer.write_all(b"0123456789\nnext\n").unwrap();
        match reader.readline() {
            Err(ReadError::LineTooLong { dropped }) => assert_eq!(dropped, 11),
            other => panic!("{other:?}"),
        }
        assert_eq!(reader.readline().unwrap(), b"next\n");
    });
}

#[test]
fn readline_past_the_limit_without_a_newline_drops_the_whole_buffer() {
    run(|| {
        let (reader, _writer, peer) = streams_and_peer();
        reader.set_limit(8);
        peer.write_all(b"0123456789ab").unwrap();
        match reader.readline() {
            Err(e @ ReadError::LineTooLong { .. }) => {
                assert!(matches!(e, ReadError::LineTooLong { dropped: 12 }), "{e:?}");
                assert_eq!(io::Error::from(e).kind(), io::ErrorKind::InvalidData);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(reader.buffered(), 0);
        // As in asyncio, the rest of the overlong line comes as a line.
        peer.write_all(b"cd\nok\n").unwrap();
        assert_eq!(reader.readline().unwrap(), b"cd\n");
        assert_eq!(reader.readline().unwrap(), b"ok\n");
    });
}

#[test]
fn readexactly_short_at_eof_is_incomplete_with_the_partial_bytes() {
    run(|| {
        let (reader, _writer, peer) = streams_and_peer();
        peer.write_all(b"abc").unwrap();
        peer.shutdown(Shutdown::Write).unwrap();
        match reader.readexactly(5) {
            Err(e @ ReadError::Incomplete { .. }) => {
                assert_eq!(e.to_string(), "3 bytes read on a total of 5 expected bytes");
                let ReadError::Incomplete { partial, expected } = &e else {
                    unreachable!()
                };
                assert_eq!(partial, b"abc");
                assert_eq!(*expected, Some(5));
                assert_eq!(io::Error::from(e).kind(), io::ErrorKind::UnexpectedEof);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(reader.buffered(), 0);
        assert!(reader.at_eof());
        assert_eq!(reader.readexactly(0).unwrap(), b"");
        assert_eq!(reader.read(10).unwrap(), b"");
    });
}

#[test]
fn readuntil_short_at_eof_is_incomplete_with_no_expected_count() {
    run(|| {
        let (reader, _writer, peer) = streams_and_peer();
        peer.write_all(b"ab\r").unwrap();
        peer.shutdown(Shutdown::Write).unwrap();
        match reader.readuntil(b"\r\n") {
            Err(e @ ReadError::Incomplete { .. }) => {
                assert_eq!(
                    e.to_string(),
                    "3 bytes read on a total of undefined expected bytes"
                );
                assert!(
                    matches!(&e, ReadError::Incomplete { partial, expected: None } if partial == b"ab\r")
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(reader.at_eof());
    });
}

#[test]
fn read_returns_what_is_there_up_to_n_and_empty_at_eof() {
    run(|| {
        let (reader, _writer, peer) = streams_and_peer();
        let reader = Rc::new(reader);
        // read(0) returns at once, with nothing there.
        let ran = marker();
        assert_eq!(reader.read(0).unwrap(), b"");
        assert!(!ran.get(), "read(0) suspended");
        peer.write_all(b"abcdef").unwrap();
        assert_eq!(reader.read(4).unwrap(), b"abcd");
        assert_eq!(reader.read(10).unwrap(), b"ef");
        // With nothing buffered it waits for the first byte.
        let r = reading(&reader, |r| r.read(10).unwrap());
        yield_now();
        yield_now();
        assert!(!r.is_done());
        peer.write_all(b"g").unwrap();
        assert_eq!(r.join().unwrap(), b"g");
        peer.shutdown(Shutdown::Write).unwrap();
        assert_eq!(reader.read(5).unwrap(), b"");
        assert!(reader.at_eof());
        assert_eq!(reader.read(5).unwrap(), b"");
    });
}

#[test]
fn read_to_end_is_not_bounded_by_the_limit() {
    run(|| {
        let (reader, _writer, peer) = streams_and_peer();
        reader.set_limit(16);
        let data: Vec<u8> = (0..100 * 1024).map(|i| (i % 251) as u8).collect();
        let d = data.clone();
        let writer = spawn(move || {
            peer.write_all(&d).unwrap();
            peer.shutdown(Shutdown::Write).unwrap();
            peer
        });
        assert_eq!(reader.read_to_end().unwrap(), data);
        assert!(reader.at_eof());
        assert_eq!(reader.read_to_end().unwrap(), b"");
        drop(writer.join().unwrap());
    });
}

#[test]
fn at_eof_is_true_once_the_end_arrived_and_the_buffer_is_empty() {
    run(|| {
        let (reader, _writer, peer) = streams_and_peer();
        assert!(!reader.at_eof());
        peer.write_all(b"ab").unwrap();
        peer.shutdown(Shutdown::Write).unwrap();
        bucle::sleep(ms(5)); // the end has arrived
        assert!(!reader.at_eof(), "two bytes are still to read");
        assert_eq!(reader.readexactly(2).unwrap(), b"ab");
        // asyncio: `self._eof and not self._buffer`, the transport having
        // seen the end in the background.
        assert!(reader.at_eof());
    });
}

#[test]
fn reading_pauses_at_twice_the_limit_when_only_readline_is_called() {
    const LIMIT: usize = 1024;
    const LINES: usize = 4096;
    run(|| {
        let (reader, _writer, peer) = streams_and_peer();
        reader.set_limit(LIMIT);
        let line = [b'x'; 63];
        let fast = spawn(move || {
            for _ in 0..LINES {
                peer.write_all(&line).unwrap();
                peer.write_all(b"\n").unwrap();
            }
            peer.shutdown(Shutdown::Write).unwrap();
            peer
        });
        // Let the writer fill the kernel's buffers: the reader's stays put.
        bucle::sleep(ms(20));
        assert_eq!(reader.buffered(), 0);
        let mut most = 0;
        for _ in 0..LINES {
            assert_eq!(reader.readline().unwrap().len(), 64);
            most = most.max(reader.buffered());
            assert!(
                reader.buffered() <= 2 * LIMIT,
                "{} bytes buffered with a limit of {LIMIT}",
                reader.buffered()
            );
        }
        assert!(
            most > LIMIT,
            "the reader buffered ahead ({most} bytes at most)"
        );
        assert_eq!(reader.readline().unwrap(), b"");
        drop(fast.join().unwrap());
    });
}

#[test]
fn a_second_reader_gets_resource_busy_and_the_first_is_unaffected() {
    run(|| {
        let (reader, _writer, peer) = streams_and_peer();
        let reader = Rc::new(reader);
        let first = reading(&reader, |r| r.readline().unwrap());
        yield_now(); // parked in readline
        for r in [
            reader.readline(),
            reader.read(1),
            reader.readexactly(1),
            reader.readuntil(b"x"),
            reader.read_to_end(),
        ] {
            match r {
                Err(ReadError::Io(e)) => {
                    assert_eq!(e.kind(), io::ErrorKind::ResourceBusy);
                    assert!(
                        e.to_string()
                            .contains("only one task may read a StreamReader"),
                        "{e}"
                    );
                }
                other => panic!("{other:?}"),
            }
        }
        peer.write_all(b"una\n").unwrap();
        assert_eq!(first.join().unwrap(), b"una\n");
        // Free again.
        peer.write_all(b"dos\n").unwrap();
        assert_eq!(reader.readline().unwrap(), b"dos\n");
    });
}

#[test]
fn a_timed_out_readline_loses_no_byte() {
    run(|| {
        let (reader, _writer, peer) = streams_and_peer();
        peer.write_all(b"abc").unwrap();
        assert!(timeout(ms(20), || reader.readline()).is_err());
        assert_eq!(reader.buffered(), 3, "the partial line stays buffered");
        peer.write_all(b"def\n").unwrap();
        assert_eq!(reader.readline().unwrap(), b"abcdef\n");
    });
}

#[test]
fn a_wait_for_on_readexactly_loses_no_byte() {
    run(|| {
        let (reader, _writer, peer) = streams_and_peer();
        peer.write_all(b"12345").unwrap();
        assert!(wait_for(ms(20), || reader.readexactly(8)).is_err());
        assert!(wait_for(ms(5), || reader.readexactly(8)).is_err());
        peer.write_all(b"678").unwrap();
        assert_eq!(reader.readexactly(8).unwrap(), b"12345678");
    });
}

#[test]
fn a_cancelled_readuntil_loses_no_byte() {
    run(|| {
        let (reader, _writer, peer) = streams_and_peer();
        let reader = Rc::new(reader);
        let r = reading(&reader, |r| r.readuntil(b"<>").unwrap());
        peer.write_all(b"hola<").unwrap();
        until("5 bytes buffered", || reader.buffered() == 5);
        assert!(r.cancel());
        assert!(matches!(r.join(), Err(JoinError::Cancelled)));
        peer.write_all(b">").unwrap();
        assert_eq!(reader.readuntil(b"<>").unwrap(), b"hola<>");
    });
}

#[test]
fn a_read_cancelled_as_its_bytes_arrive_leaves_them_for_the_next() {
    run(|| {
        let (reader, _writer, peer) = streams_and_peer();
        let reader = Rc::new(reader);
        for round in 0..20u8 {
            let r = reading(&reader, |r| r.readline().unwrap());
            yield_now(); // parked
            // The bytes arrive and the cancel comes in the same step.
            peer.write_all(&[b'a' + round, b'\n']).unwrap();
            r.cancel();
            match r.join() {
                Ok(line) => assert_eq!(line, [b'a' + round, b'\n']),
                Err(JoinError::Cancelled) => {
                    assert_eq!(reader.readline().unwrap(), [b'a' + round, b'\n']);
                }
                Err(e) => panic!("{e:?}"),
            }
        }
    });
}

// ---------------------------------------------------------------------------
// The writer.

#[test]
fn write_sends_at_once_when_the_kernel_takes_it() {
    run(|| {
        let (_reader, writer, peer) = streams_and_peer();
        let ran = marker();
        writer.write(b"hola");
        writer.writelines([&b" "[..], b"mundo"]);
        assert_eq!(writer.write_buffer_size(), 0);
        writer.drain().unwrap();
        assert!(!ran.get(), "write or drain suspended");
        // Already in the peer's kernel buffer: a read finds it at once.
        let mut buf = [0u8; 16];
        let mut got = Vec::new();
        until("10 bytes arrived", || {
            let n = peer.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
            got.len() == 10
        });
        assert_eq!(got, b"hola mundo");
    });
}

#[test]
fn drain_waits_above_the_high_mark_and_resumes_at_the_low_mark() {
    run(|| {
        let (_reader, writer, peer) = small_streams_and_peer();
        let (low, high) = writer.write_buffer_limits();
        assert_eq!((low, high), (DEFAULT_HIGH_WATER / 4, DEFAULT_HIGH_WATER));
        let written = write_past_high(&writer, b'x');
        assert!(writer.write_buffer_size() > high);
        let w = writer.clone();
        let drainer = spawn(move || {
            w.drain().unwrap();
            w.write_buffer_size()
        });
        for _ in 0..5 {
            yield_now();
        }
        assert!(
            !drainer.is_done(),
            "drain returned above the high-water mark"
        );
        // The peer reads a KiB at a time: the buffer falls through
        // (low, high] with the drainer still waiting, and it wakes at low.
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        let mut between = 0;
        for _ in 0..1_000_000 {
            if drainer.is_done() {
                break;
            }
            let size = writer.write_buffer_size();
            if size > low && size <= high {
                between += 1;
            }
            let n = peer.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
            yield_now();
        }
        let at_wake = drainer.join().unwrap();
        assert!(
            at_wake <= low,
            "drain returned with {at_wake} > {low} buffered"
        );
        assert!(between > 0, "never saw the buffer between the marks");
        writer.close();
        let (rest, end) = read_all(&peer);
        end.unwrap();
        got.extend_from_slice(&rest);
        assert_eq!(got.len(), written);
        assert!(got.iter().all(|&b| b == b'x'));
    });
}

#[test]
fn drain_returns_at_once_below_the_high_mark() {
    run(|| {
        let (_reader, writer, _peer) = small_streams_and_peer();
        write_until_buffered(&writer, DEFAULT_HIGH_WATER / 2, b'x');
        assert!(writer.write_buffer_size() <= DEFAULT_HIGH_WATER);
        let ran = marker();
        writer.drain().unwrap();
        assert!(!ran.get(), "drain suspended below the high-water mark");
    });
}

#[test]
fn set_write_buffer_limits_follows_asyncio() {
    run(|| {
        let (_reader, writer, peer) = small_streams_and_peer();
        assert_eq!(writer.write_buffer_limits(), (16 * 1024, 64 * 1024));
        writer.set_write_buffer_limits(Some(1000), None);
        assert_eq!(writer.write_buffer_limits(), (250, 1000));
        writer.set_write_buffer_limits(None, Some(100));
        assert_eq!(writer.write_buffer_limits(), (100, 400));
        writer.set_write_buffer_limits(None, None);
        assert_eq!(writer.write_buffer_limits(), (16 * 1024, 64 * 1024));
        let msg = catch_msg(|| writer.set_write_buffer_limits(Some(10), Some(20))).unwrap_err();
        assert!(msg.contains("high (10) must be >= low (20)"), "{msg}");
        assert_eq!(writer.write_buffer_limits(), (16 * 1024, 64 * 1024));
        // high 0: drain waits until the buffer is empty.
        writer.set_write_buffer_limits(Some(0), None);
        assert_eq!(writer.write_buffer_limits(), (0, 0));
        writer.write(&[b'x'; 256 * 1024]);
        assert!(writer.write_buffer_size() > 0);
        let w = writer.clone();
        let drainer = spawn(move || {
            w.drain().unwrap();
            w.write_buffer_size()
        });
        let reader = spawn(move || read_all(&peer).0.len());
        assert_eq!(drainer.join().unwrap(), 0);
        writer.close();
        assert_eq!(reader.join().unwrap(), 256 * 1024);
    });
}

#[test]
fn lowering_the_high_mark_below_the_buffer_pauses_writers() {
    run(|| {
        let (_reader, writer, peer) = small_streams_and_peer();
        let written = write_until_buffered(&writer, 8 * 1024, b'y');
        assert!(writer.write_buffer_size() <= DEFAULT_HIGH_WATER);
        let ran = marker();
        writer.drain().unwrap();
        assert!(!ran.get(), "not paused yet");
        writer.set_write_buffer_limits(Some(1024), None);
        let w = writer.clone();
        let drainer = spawn(move || w.drain());
        yield_now();
        yield_now();
        assert!(
            !drainer.is_done(),
            "the new high mark did not pause the writer"
        );
        let reader = spawn(move || read_all(&peer).0.len());
        drainer.join().unwrap().unwrap();
        assert!(writer.write_buffer_size() <= 256);
        writer.close();
        assert_eq!(reader.join().unwrap(), written);
    });
}

#[test]
fn several_tasks_draining_at_once_all_resume() {
    run(|| {
        let (_reader, writer, peer) = small_streams_and_peer();
        let written = write_past_high(&writer, b'z');
        let drainers: Vec<_> = (0..4)
            .map(|_| {
                let w = writer.clone();
                spawn(move || w.drain())
            })
            .collect();
        yield_now();
        assert!(drainers.iter().all(|d| !d.is_done()));
        let reader = spawn(move || read_all(&peer).0.len());
        for d in drainers {
            d.join().unwrap().unwrap();
        }
        writer.close();
        assert_eq!(reader.join().unwrap(), written);
    });
}

/// Whether `e` is what a reset peer gives.
fn is_reset(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
    )
}

#[test]
fn a_reset_peer_surfaces_at_the_waiting_drain_and_at_the_reader() {
    run(|| {
        let (reader, writer, peer) = streams_and_peer();
        write_until_stuck(&writer, b'r');
        let w = writer.clone();
        let drainer = spawn(move || w.drain());
        yield_now();
        assert!(!drainer.is_done());
        linger_zero(&peer);
        drop(peer); // RST
        let err = timeout(ms(5000), || drainer.join())
            .expect("the reset wakes the drain")
            .unwrap()
            .unwrap_err();
        assert!(is_reset(err.kind()), "{err:?}");
        assert!(writer.is_closing());
        match reader.read(10) {
            Err(ReadError::Io(e)) => assert_eq!(e.kind(), err.kind()),
            other => panic!("{other:?}"),
        }
        assert_eq!(writer.drain().unwrap_err().kind(), err.kind());
        assert_eq!(writer.wait_closed().unwrap_err().kind(), err.kind());
        assert_eq!(writer.write_buffer_size(), 0);
    });
}

#[test]
fn a_reset_peer_surfaces_at_the_next_drain_after_a_write() {
    run(|| {
        let (reader, writer, peer) = streams_and_peer();
        linger_zero(&peer);
        drop(peer);
        bucle::sleep(ms(10)); // the RST arrived
        writer.write(b"anyone?");
        let err = writer.drain().unwrap_err();
        assert!(is_reset(err.kind()), "{err:?}");
        match reader.readline() {
            Err(ReadError::Io(e)) => assert_eq!(e.kind(), err.kind()),
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn a_reset_peer_surfaces_at_the_reader_and_then_at_drain() {
    run(|| {
        let (reader, writer, peer) = streams_and_peer();
        peer.write_all(b"half a li").unwrap();
        linger_zero(&peer);
        drop(peer);
        let err = match reader.readline() {
            Err(ReadError::Io(e)) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(writer.drain().unwrap_err().kind(), err.kind());
        assert!(writer.is_closing());
    });
}

#[test]
fn write_eof_half_closes_and_the_peer_can_still_answer() {
    run(|| {
        let (reader, writer, peer) = streams_and_peer();
        assert!(writer.can_write_eof());
        writer.write(b"pregunta");
        writer.write_eof();
        writer.write_eof(); // idempotent
        assert!(!writer.is_closing());
        let (got, end) = read_all(&peer);
        end.unwrap();
        assert_eq!(got, b"pregunta");
        peer.write_all(b"respuesta").unwrap();
        drop(peer);
        assert_eq!(reader.read_to_end().unwrap(), b"respuesta");
    });
}

#[test]
fn write_eof_with_bytes_buffered_shuts_down_after_sending_them() {
    run(|| {
        let (_reader, writer, peer) = small_streams_and_peer();
        let written = write_past_high(&writer, b'e');
        writer.write_eof();
        let (got, end) = read_all(&peer);
        end.unwrap();
        assert_eq!(got.len(), written);
        assert!(!writer.is_closing());
    });
}

#[test]
fn write_after_write_eof_panics_naming_the_rule() {
    run(|| {
        let (_reader, writer, _peer) = streams_and_peer();
        writer.write_eof();
        let msg = catch_msg(|| writer.write(b"late")).unwrap_err();
        assert!(
            msg.starts_with("bucle::net::StreamWriter::write after write_eof"),
            "{msg}"
        );
        assert!(
            msg.contains("write everything before calling write_eof"),
            "{msg}"
        );
    });
}

#[test]
fn close_sends_what_is_buffered_before_closing() {
    run(|| {
        let (reader, writer, peer) = small_streams_and_peer();
        let mut written = write_past_high(&writer, b'c');
        writer.write(&[b'c'; 300 * 1024]);
        written += 300 * 1024;
        assert!(writer.write_buffer_size() > 300 * 1024);
        writer.close();
        writer.close(); // idempotent
        assert!(writer.is_closing());
        let w = writer.clone();
        let closed = spawn(move || w.wait_closed());
        let (got, end) = read_all(&peer);
        end.unwrap();
        assert_eq!(got.len(), written);
        assert!(got.iter().all(|&b| b == b'c'));
        closed.join().unwrap().unwrap();
        assert_eq!(writer.write_buffer_size(), 0);
        // The local reader reads the end; drain says the connection is gone.
        assert_eq!(reader.read(1).unwrap(), b"");
        let err = writer.drain().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        assert!(err.to_string().starts_with("Connection lost"), "{err}");
    });
}

#[test]
fn abort_drops_what_is_buffered() {
    run(|| {
        let (_reader, writer, peer) = small_streams_and_peer();
        let written = write_past_high(&writer, b'a');
        writer.abort();
        assert!(writer.is_closing());
        assert_eq!(writer.write_buffer_size(), 0);
        writer.wait_closed().unwrap();
        let (got, _end) = read_all(&peer);
        assert!(got.len() < written, "{} of {written} arrived", got.len());
    });
}

#[test]
fn abort_while_the_flusher_is_sending_empties_the_buffer_at_once() {
    // asyncio's abort clears the transport's buffer: the size is 0 at once,
    // even for the bytes the flusher had taken and was waiting to send.
    run(|| {
        let (_reader, writer, _peer) = streams_and_peer();
        write_until_stuck(&writer, b'f'); // the flusher holds them, parked
        assert!(writer.write_buffer_size() > DEFAULT_HIGH_WATER);
        writer.abort();
        assert_eq!(writer.write_buffer_size(), 0);
        writer.wait_closed().unwrap();
        assert_eq!(writer.write_buffer_size(), 0);
    });
}

#[test]
fn dropping_the_last_writer_clone_closes_the_connection() {
    run(|| {
        let (reader, writer, peer) = streams_and_peer();
        let other = writer.clone();
        assert_eq!(writer, other);
        drop(writer);
        other.write(b"still open");
        assert!(!other.is_closing());
        drop(other);
        let (got, end) = read_all(&peer);
        end.unwrap();
        assert_eq!(got, b"still open");
        assert_eq!(reader.read(1).unwrap(), b"");
        assert!(reader.at_eof());
    });
}

#[test]
fn a_drain_waiting_when_the_writer_closes_returns_once_all_is_sent() {
    // asyncio: close() lets the buffer drain, and resume_writing (then
    // connection_lost(None)) wakes the waiter with None.
    run(|| {
        // With the low mark at 0, the drainer is woken by the last send,
        // and the connection closes before it runs.
        for low in [DEFAULT_HIGH_WATER / 4, 0] {
            let (_reader, writer, peer) = small_streams_and_peer();
            writer.set_write_buffer_limits(Some(DEFAULT_HIGH_WATER), Some(low));
            let written = write_past_high(&writer, b'd');
            let w = writer.clone();
            let drainer = spawn(move || w.drain());
            yield_now();
            writer.close();
            let (got, end) = read_all(&peer);
            end.unwrap();
            assert_eq!(got.len(), written);
            drainer.join().unwrap().unwrap();
        }
    });
}

#[test]
fn a_write_while_closing_with_bytes_buffered_is_still_sent() {
    // asyncio's transport.write appends to the buffer until the connection
    // is lost, close() or no close().
    run(|| {
        let (_reader, writer, peer) = small_streams_and_peer();
        let written = write_past_high(&writer, b'w');
        writer.close();
        writer.write(b"!");
        let (got, end) = read_all(&peer);
        end.unwrap();
        assert_eq!(got.len(), written + 1);
        assert_eq!(got.last(), Some(&b'!'));
        // Once closed, writes are dropped.
        writer.write(b"?");
        assert_eq!(writer.write_buffer_size(), 0);
    });
}

#[test]
fn wait_closed_returns_once_the_connection_is_closed() {
    run(|| {
        let ((reader, writer), (peer_reader, peer_writer)) = streams_both();
        let w = writer.clone();
        let waiter = spawn(move || w.wait_closed());
        yield_now();
        assert!(!waiter.is_done());
        peer_writer.write(b"bye\n");
        assert_eq!(reader.readline().unwrap(), b"bye\n");
        writer.close();
        waiter.join().unwrap().unwrap();
        writer.wait_closed().unwrap();
        assert_eq!(peer_reader.readline().unwrap(), b"");
    });
}

#[test]
fn streams_report_the_peer_and_local_addresses() {
    run(|| {
        let ((reader, writer), (peer_reader, peer_writer)) = streams_both();
        assert_eq!(
            reader.peer_addr().unwrap(),
            peer_writer.local_addr().unwrap()
        );
        assert_eq!(writer.peer_addr().unwrap(), reader.peer_addr().unwrap());
        assert_eq!(
            writer.local_addr().unwrap(),
            peer_reader.peer_addr().unwrap()
        );
        assert_eq!(reader.limit(), DEFAULT_LIMIT);
        let msg = catch_msg(|| reader.set_limit(0)).unwrap_err();
        assert!(msg.contains("the limit must be positive"), "{msg}");
        let msg = catch_msg(|| reader.readuntil(b"")).unwrap_err();
        assert!(
            msg.contains("the separator must be at least one byte"),
            "{msg}"
        );
    });
}

// ---------------------------------------------------------------------------
// Hostile uses.

#[test]
fn dropping_the_reader_and_writer_while_another_task_drains() {
    run(|| {
        let (reader, writer, peer) = small_streams_and_peer();
        let written = write_past_high(&writer, b'h');
        let w = writer.clone();
        let drainer = spawn(move || {
            let r = w.drain();
            (r, w.is_closing())
        });
        yield_now();
        drop(reader);
        drop(writer);
        assert!(!drainer.is_done());
        let reading = spawn(move || read_all(&peer));
        let (r, closing) = drainer.join().unwrap();
        r.unwrap();
        assert!(!closing, "the drainer's clone keeps the connection open");
        // The drainer's clone was the last: the peer now reads the end.
        let (got, end) = reading.join().unwrap();
        end.unwrap();
        assert_eq!(got.len(), written);
    });
}

#[test]
fn absurd_sizes() {
    run(|| {
        let (reader, _writer, peer) = streams_and_peer();
        reader.set_limit(1);
        peer.write_all(b"a\nab\n").unwrap();
        assert_eq!(reader.readline().unwrap(), b"a\n");
        // The buffer holds at most twice the limit (2 bytes): the newline
        // of "ab\n" is not buffered when the line is found too long, so the
        // buffer is dropped and the newline comes next as a line. (asyncio's
        // transport may have read it already, and then drops it too.)
        assert!(matches!(
            reader.readline(),
            Err(ReadError::LineTooLong { dropped: 2 })
        ));
        assert_eq!(reader.readline().unwrap(), b"\n");
        assert_eq!(reader.readexactly(0).unwrap(), b"");
        assert_eq!(reader.read(0).unwrap(), b"");
        // A huge readexactly the peer never satisfies, then the end.
        peer.write_all(b"12345").unwrap();
        peer.shutdown(Shutdown::Write).unwrap();
        match reader.readexactly(usize::MAX) {
            Err(ReadError::Incomplete { partial, expected }) => {
                assert_eq!(partial, b"12345");
                assert_eq!(expected, Some(usize::MAX));
            }
            other => panic!("{other:?}"),
        }
        assert!(reader.at_eof());
    });
}

#[test]
fn a_limit_of_usize_max_is_no_limit() {
    run(|| {
        let (reader, _writer, peer) = streams_and_peer();
        reader.set_limit(usize::MAX);
        peer.write_all(b"una linea\nel resto").unwrap();
        peer.shutdown(Shutdown::Write).unwrap();
        assert_eq!(reader.readline().unwrap(), b"una linea\n");
        assert!(!reader.at_eof());
        assert_eq!(
            reader
                .readuntil(b"!")
                .map_err(|e| e.to_string())
                .unwrap_err(),
            "8 bytes read on a total of undefined expected bytes"
        );
        assert!(reader.at_eof());
    });
}

#[test]
fn a_huge_readexactly_does_not_allocate_what_it_asks_for() {
    run(|| {
        let (reader, _writer, peer) = streams_and_peer();
        let reader = Rc::new(reader);
        let r = reading(&reader, |r| r.readexactly(1 << 40));
        peer.write_all(b"xyz").unwrap();
        until("3 bytes buffered", || reader.buffered() == 3);
        drop(peer);
        assert!(matches!(
            r.join().unwrap(),
            Err(ReadError::Incomplete { partial, expected: Some(n) }) if partial == b"xyz" && n == 1 << 40
        ));
    });
}

#[test]
fn a_peer_that_vanishes_mid_line() {
    run(|| {
        let ((reader, _writer), (_, peer_writer)) = streams_both();
        peer_writer.write(b"sin fin");
        drop(peer_writer);
        assert_eq!(reader.readline().unwrap(), b"sin fin");
        assert_eq!(reader.readline().unwrap(), b"");
        // A multi-byte separator half there when the peer goes.
        let ((reader, _writer), (_, peer_writer)) = streams_both();
        peer_writer.write(b"abc\r");
        drop(peer_writer);
        assert!(matches!(
            reader.readuntil(b"\r\n"),
            Err(ReadError::Incomplete { partial, expected: None }) if partial == b"abc\r"
        ));
    });
}

#[test]
fn closing_the_writer_wakes_a_waiting_reader_with_the_end() {
    // The reader cannot be dropped while a task borrows it; closing the
    // writer (the connection) wakes that task with the end of the stream.
    run(|| {
        let (reader, writer, _peer) = streams_and_peer();
        let reader = Rc::new(reader);
        let r = reading(&reader, |r| r.readline());
        yield_now();
        writer.close();
        assert_eq!(r.join().unwrap().unwrap(), b"");
        assert!(reader.at_eof());
    });
}

#[test]
fn dropping_the_streams_outside_the_loop_is_quiet() {
    // Streams kept past the loop's end: dropping them then neither panics
    // nor leaks (the descriptor goes with the last handle).
    let lp = bucle::EventLoop::new();
    let (reader, writer, peer) = lp.run_until_complete(|| {
        let (reader, writer, peer) = small_streams_and_peer();
        write_past_high(&writer, b'q');
        (reader, writer, peer)
    });
    lp.shutdown();
    lp.close();
    drop(writer);
    drop(reader);
    drop(peer);
}

#[test]
fn a_loop_shut_down_mid_flush_sends_the_rest_when_it_runs_again() {
    // shutdown() cancels every task, the writer's flusher included; the
    // connection must not be left wedged (writes never sent, close never
    // closing) for the next run of the same loop.
    let lp = bucle::EventLoop::new();
    let (reader, writer, peer, written) = lp.run_until_complete(|| {
        let (reader, writer, peer) = small_streams_and_peer();
        let written = write_past_high(&writer, b'1');
        (reader, writer, peer, written)
    });
    lp.shutdown();
    let got = lp.run_until_complete(move || {
        writer.write(b"2");
        writer.close();
        let reading = spawn(move || read_all(&peer));
        timeout(ms(5000), || writer.wait_closed())
            .expect("wait_closed after the shutdown")
            .unwrap();
        drop(reader);
        let (got, end) = reading.join().unwrap();
        end.unwrap();
        got
    });
    lp.close();
    assert_eq!(got.len(), written + 1);
    assert!(got[..written].iter().all(|&b| b == b'1'));
    assert_eq!(got[written], b'2');
}

#[test]
fn a_writer_dropped_after_its_loop_closed_mid_flush_is_quiet() {
    let lp = bucle::EventLoop::new();
    let (writer, peer) = lp.run_until_complete(|| {
        let (_reader, writer, peer) = small_streams_and_peer();
        write_past_high(&writer, b'x');
        (writer, peer)
    });
    lp.shutdown();
    let w = writer.clone();
    lp.close();
    w.close(); // no loop to send the rest: the bytes go, as asyncio's abandoned transport's
    drop(w);
    drop(writer);
    drop(peer);
}

#[test]
fn a_timed_out_drain_loses_no_byte() {
    run(|| {
        let (_reader, writer, peer) = streams_and_peer();
        let written = write_until_stuck(&writer, b't');
        assert!(timeout(ms(20), || writer.drain()).is_err());
        assert!(timeout(ms(5), || writer.drain()).is_err());
        let reading = spawn(move || read_all(&peer));
        writer.drain().unwrap();
        writer.close();
        writer.wait_closed().unwrap();
        let (got, end) = reading.join().unwrap();
        end.unwrap();
        assert_eq!(got.len(), written);
    });
}

#[test]
fn a_write_outside_the_loop_panics_only_when_bytes_must_wait() {
    let lp = bucle::EventLoop::new();
    let (reader, writer, peer) = lp.run_until_complete(streams_and_peer);
    writer.write(b"taken at once"); // the kernel takes it: nothing to buffer
    assert_eq!(writer.write_buffer_size(), 0);
    let msg = catch_msg(|| {
        for _ in 0..10_000 {
            writer.write(&[0u8; 64 * 1024]);
        }
    })
    .unwrap_err();
    assert!(
        msg.starts_with("bucle::net::StreamWriter::write (with bytes to buffer) called outside a running event loop"),
        "{msg}"
    );
    lp.close();
    drop((reader, writer, peer));
}

#[test]
fn open_connection_to_a_port_nobody_listens_on_is_refused() {
    run(|| {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = bucle::net::open_connection(port).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    });
}

#[test]
// A writer hashes by its connection's address, which its interior
// mutability never changes.
#[allow(clippy::mutable_key_type)]
fn writers_are_equal_and_hash_alike_exactly_when_they_share_a_connection() {
    run(|| {
        let ((_r1, w1), (_r2, w2)) = streams_both();
        let mut set = std::collections::HashSet::new();
        set.insert(w1.clone());
        set.insert(w1.clone());
        set.insert(w2.clone());
        assert_eq!(set.len(), 2);
        assert_eq!(w1, w1.clone());
        assert_ne!(w1, w2);
        assert!(set.remove(&w2));
        assert!(set.contains(&w1));
    });
}
