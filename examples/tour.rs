//! A guided tour of every stage of `bucle` that exists so far, one function
//! per stage, each printing a few short demonstrations.
//!
//! Run it with `cargo run --release --example tour`. Each stage's chapter is
//! named in its header; the stories themselves are the numbered examples
//! (`cargo run --example 01_generators`, ...).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use bucle::{DEFAULT_STACK_SIZE, Generator, GeneratorState, RoundRobin, Yielder, stack_pool_stats};

fn main() {
    stage_1_generators();
    stage_2_round_robin();
    stage_3_awaitables();
    stage_4_timers();
    stage_5_io();
    chapter_6_sync();
    println!();
    println!("End of the tour (stages 1-5 and chapter 6). Every story: see README.md.");
}

/// Prints a stage header.
fn header(stage: u32, title: &str, module: &str, chapter: &str, example: &str) {
    println!();
    println!("=== Stage {stage}: {title} ===");
    println!("    module {module}, chapter {chapter}, story: cargo run --example {example}");
    println!();
}

/// Stage 1: a function that pauses at each `yield_` and is resumed later.
fn stage_1_generators() {
    header(
        1,
        "stackful generators",
        "bucle::generator",
        "docs/01-generators.md",
        "01_generators",
    );

    println!("-- building a generator runs nothing; each next() runs to the next yield");
    let mut countdown = Generator::new(|y: &Yielder<u32>, ()| {
        println!("   (body starts)");
        for n in (1..=3).rev() {
            y.yield_(n);
        }
        println!("   (body ends)");
    });
    println!("   built; started = {}", countdown.is_started());
    for n in countdown.by_ref() {
        println!("   next() -> {n}");
    }
    println!("   next() -> None: complete = {}", countdown.is_complete());

    println!("-- stackful: a recursive helper yields from any depth, no `yield from` needed");
    fn hanoi(y: &Yielder<String>, n: u32, from: char, to: char, via: char) {
        if n > 0 {
            hanoi(y, n - 1, from, via, to);
            y.yield_(format!("disk {n}: {from} -> {to}"));
            hanoi(y, n - 1, via, to, from);
        }
    }
    let moves = Generator::new(|y: &Yielder<String>, ()| hanoi(y, 3, 'A', 'C', 'B'));
    println!("   hanoi(3): {}", moves.collect::<Vec<_>>().join(", "));

    println!("-- resume(v) is Python's send(v); the return value is Complete(r)");
    let mut average = Generator::new(|y: &Yielder<f64, Option<f64>>, _first| {
        let (mut sum, mut count) = (0.0, 0u32);
        while let Some(x) = y.yield_(if count == 0 { 0.0 } else { sum / count as f64 }) {
            sum += x;
            count += 1;
        }
        count
    });
    average.resume(None);
    for x in [10.0, 20.0, 60.0] {
        if let GeneratorState::Yielded(avg) = average.resume(Some(x)) {
            println!("   send({x}) -> running average {avg}");
        }
    }
    println!("   send(None) -> {:?}", average.resume(None));

    println!("-- dropping a paused generator unwinds it: destructors run, like `finally`");
    struct Noisy;
    impl Drop for Noisy {
        fn drop(&mut self) {
            println!("   Noisy dropped inside the generator");
        }
    }
    let mut paused = Generator::new(|y: &Yielder<()>, ()| {
        let _noisy = Noisy;
        y.yield_(());
        unreachable!("never resumed again");
    });
    paused.next();
    println!("   paused at its first yield; dropping it");
    drop(paused);

    println!(
        "-- stacks: {} KiB each, guard page below, recycled by a per-thread pool",
        { DEFAULT_STACK_SIZE / 1024 }
    );
    let before = stack_pool_stats();
    let n = 100_000u64;
    let start = Instant::now();
    let mut total = 0;
    for i in 0..n {
        let g = Generator::new(move |y: &Yielder<u64>, ()| y.yield_(i));
        total += g.sum::<u64>(); // runs it to completion
    }
    let finished = start.elapsed();
    let start = Instant::now();
    for i in 0..n {
        let mut g = Generator::new(move |y: &Yielder<u64>, ()| y.yield_(i));
        total += g.next().unwrap_or(0);
        drop(g); // still paused: dropping it unwinds its stack
    }
    let unwound = start.elapsed();
    let after = stack_pool_stats();
    let each = |d: std::time::Duration| d.as_nanos() as f64 / n as f64;
    println!(
        "   {n} generators created, run to completion and dropped: {:.0} ns each",
        each(finished)
    );
    println!(
        "   {n} more dropped while paused (a real unwind): {:.0} ns each (checksum {total})",
        each(unwound)
    );
    println!(
        "   stacks mapped from the OS meanwhile: {}; pooled now: {}",
        after.mapped - before.mapped,
        after.pooled
    );
}

/// Stage 2: a FIFO queue of generators, each resumed once in turn.
fn stage_2_round_robin() {
    header(
        2,
        "round-robin scheduler",
        "bucle::round_robin",
        "docs/02-round-robin.md",
        "02_round_robin",
    );

    println!("-- three tasks take turns; each yield_(()) hands the turn to the next");
    let mut rr = RoundRobin::new();
    for (name, steps) in [("twitter", 3), ("facebook", 2), ("mail", 1)] {
        rr.spawn_fn(move |y| {
            for step in 1..=steps {
                println!("   {name} {step}/{steps}");
                y.yield_(());
            }
        });
    }
    println!("   run() took {} steps", rr.run());

    println!("-- a task spawns a task: it goes to the back of the queue");
    let mut rr = RoundRobin::new();
    let spawner = rr.spawner();
    rr.spawn_fn(move |y| {
        println!("   parent: spawning a child");
        spawner.spawn_fn(|y| {
            println!("   child: first turn");
            y.yield_(());
            println!("   child: second turn");
        });
        println!("   parent: the child has not run yet");
        y.yield_(());
        println!("   parent: done");
    });
    println!("   run() took {} steps", rr.run());

    println!("-- what is missing: no waiting; a task can only yield, so `sleep` spins");
    let log = Rc::new(RefCell::new(0u64));
    let mut rr = RoundRobin::new();
    let spins = log.clone();
    rr.spawn_fn(move |y| {
        let deadline = Instant::now() + std::time::Duration::from_millis(2);
        while Instant::now() < deadline {
            *spins.borrow_mut() += 1;
            y.yield_(());
        }
    });
    rr.run();
    println!(
        "   a 2 ms busy \"sleep\" took {} useless turns (chapter 4 adds timers)",
        log.borrow()
    );

    println!("-- switching cost: 1000 tasks x 1000 yields");
    let mut rr = RoundRobin::new();
    for _ in 0..1000 {
        rr.spawn_fn(|y| {
            for _ in 0..1000 {
                y.yield_(());
            }
        });
    }
    let start = Instant::now();
    let steps = rr.run();
    let elapsed = start.elapsed();
    println!(
        "   {steps} steps in {:.1} ms: {:.1} ns per step",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_nanos() as f64 / steps as f64
    );
}

/// Stage 3: tasks, futures and the event loop that schedules them.
fn stage_3_awaitables() {
    header(
        3,
        "the event loop and its awaitables",
        "bucle::runtime",
        "docs/03-awaitables.md",
        "03_tareas",
    );

    println!("-- spawn appends to the ready queue; a task runs once the spawner suspends");
    bucle::run(|| {
        let t = bucle::spawn(|| {
            println!("   child: running");
            6 * 7
        });
        println!("   main: spawned {}, not run yet", t.name());
        println!("   main: join -> {:?}", t.join());
    });

    println!("-- a Future is set by one task and awaited by another");
    bucle::run(|| {
        let fut = bucle::Future::new();
        let setter = fut.clone();
        fut.add_done_callback(|f| println!("   callback: {:?}", f.result()));
        bucle::spawn(move || setter.set_result("hola").unwrap());
        println!("   main: wait -> {:?}", fut.wait());
    });

    println!("-- cancellation unwinds the task's stack: destructors run like `finally`");
    bucle::run(|| {
        struct Finally;
        impl Drop for Finally {
            fn drop(&mut self) {
                println!("   worker: finally (destructor) ran");
            }
        }
        let worker = bucle::spawn(|| {
            let _f = Finally;
            loop {
                bucle::yield_now();
            }
        });
        bucle::yield_now();
        worker.cancel();
        println!("   main: join -> {:?}", worker.join());
    });

    println!("-- a panic is the task's result; the loop carries on");
    bucle::run(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let r = bucle::spawn(|| -> () { panic!("boom") }).join();
        std::panic::set_hook(prev);
        println!("   main: join -> {r:?}");
    });

    println!("-- a deadlock is reported, not a hang");
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(|| {
        bucle::run(|| {
            let never: bucle::Future<()> = bucle::Future::new();
            let t = bucle::TaskBuilder::new()
                .name("waiter")
                .spawn(move || never.wait());
            let _ = t.join();
        })
    });
    std::panic::set_hook(prev);
    if let Err(e) = r {
        if let Some(msg) = e.downcast_ref::<String>() {
            for line in msg.lines() {
                println!("   {line}");
            }
        }
    }

    println!("-- switching cost: 1000 tasks x 1000 yield_now");
    let (switches, elapsed) = bucle::run(|| {
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                bucle::spawn(|| {
                    for _ in 0..1000 {
                        bucle::yield_now();
                    }
                })
            })
            .collect();
        let start = Instant::now();
        bucle::gather(tasks).unwrap();
        (1000u64 * 1000, start.elapsed())
    });
    println!(
        "   {switches} switches in {:.1} ms: {:.1} ns per switch",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_nanos() as f64 / switches as f64
    );

    println!("-- spawn + run + join, 100 000 times");
    let (n, elapsed) = bucle::run(|| {
        let start = Instant::now();
        for i in 0..100_000u64 {
            assert_eq!(bucle::spawn(move || i).join(), Ok(i));
        }
        (100_000u64, start.elapsed())
    });
    println!(
        "   {:.1} ns per spawn+join",
        elapsed.as_nanos() as f64 / n as f64
    );
}

/// Stage 4: the clock, the timer heap, timeouts and the virtual clock.
fn stage_4_timers() {
    use std::time::Duration;
    header(
        4,
        "time: the timer heap, sleeps and timeouts",
        "bucle::timer",
        "docs/04-timers.md",
        "04_tareas_asyncio",
    );

    println!("-- sleep suspends only the caller; shorter sleeps finish first (real clock)");
    bucle::run(|| {
        let start = Instant::now();
        let slow = bucle::spawn(|| {
            bucle::sleep(Duration::from_millis(30));
            "30 ms"
        });
        let fast = bucle::spawn(|| {
            bucle::sleep(Duration::from_millis(10));
            "10 ms"
        });
        for r in bucle::as_completed([slow, fast]) {
            println!("   finished: {}", r.unwrap());
        }
        println!(
            "   both done after {:.0} ms (concurrently, not 40 ms)",
            start.elapsed().as_secs_f64() * 1e3
        );
    });

    println!("-- a timeout unwinds the work and reports Elapsed; the task carries on");
    bucle::run(|| {
        let r = bucle::timeout(Duration::from_millis(5), || {
            bucle::sleep(Duration::from_secs(10));
        });
        println!("   timeout(5 ms, sleep 10 s) -> {r:?}");
        println!("   live timers left: {}", bucle::pending_timers());
    });

    println!("-- the virtual clock: a day of sleeps in no time, same order");
    let lp = bucle::EventLoop::builder().virtual_time().build();
    let start = Instant::now();
    let log = lp.run_until_complete(|| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let tasks: Vec<_> = [("night", 8u64), ("breakfast", 1), ("lunch", 5)]
            .into_iter()
            .map(|(what, hours)| {
                let log = log.clone();
                bucle::spawn(move || {
                    bucle::sleep(Duration::from_secs(hours * 3600));
                    log.borrow_mut()
                        .push(format!("{what} at {}h", bucle::time().as_secs() / 3600));
                })
            })
            .collect();
        bucle::gather(tasks).unwrap();
        Rc::try_unwrap(log).unwrap().into_inner()
    });
    println!(
        "   {log:?} in {:.2} ms of real time",
        start.elapsed().as_secs_f64() * 1e3
    );

    println!("-- 100 000 timeouts that never fire leave no trace in the heap");
    bucle::run(|| {
        let start = Instant::now();
        for _ in 0..100_000 {
            bucle::timeout(Duration::from_secs(3600), || ()).unwrap();
        }
        println!(
            "   {:.1} ns per timeout; live timers left: {}",
            start.elapsed().as_nanos() as f64 / 100_000.0,
            bucle::pending_timers()
        );
    });
}

/// Stage 5: the reactor, sockets, and work on other threads.
fn stage_5_io() {
    use std::io::{BufRead, BufReader};
    use std::time::Duration;

    use bucle::net::{TcpListener, TcpStream};
    header(
        5,
        "I/O: the reactor, sockets, and other threads",
        "bucle::io, bucle::net",
        "docs/05-io.md",
        "05_echo",
    );

    println!("-- an echo server and 100 clients on one loop, one task per connection");
    bucle::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let start = Instant::now();
        let server = bucle::spawn(move || {
            loop {
                let (conn, _) = listener.accept().unwrap();
                bucle::spawn(move || {
                    // std's BufRead over a socket: suspends this task only.
                    for line in BufReader::new(&conn).lines() {
                        // One write per line: `writeln!` on an unbuffered
                        // socket would send each formatted piece apart.
                        conn.write_all(format!("{}\n", line.unwrap()).as_bytes())
                            .unwrap();
                    }
                });
            }
        });
        let clients = (0..100).map(|i| {
            bucle::spawn(move || {
                let conn = TcpStream::connect(addr).unwrap();
                let mut reader = BufReader::new(&conn);
                let mut total = 0;
                for round in 0..100 {
                    conn.write_all(format!("client {i} round {round}\n").as_bytes())
                        .unwrap();
                    let mut reply = String::new();
                    reader.read_line(&mut reply).unwrap();
                    total += reply.len();
                }
                total
            })
        });
        let bytes: usize = bucle::gather(clients).unwrap().into_iter().sum();
        let elapsed = start.elapsed();
        println!(
            "   10 000 round trips ({bytes} bytes echoed) in {:.1} ms: {:.0} round trips/s",
            elapsed.as_secs_f64() * 1e3,
            10_000.0 / elapsed.as_secs_f64()
        );
        server.cancel();
    });

    println!("-- a timeout unwinds a parked read; the socket stays usable");
    bucle::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = bucle::spawn(move || TcpStream::connect(addr).unwrap());
        let (conn, _) = listener.accept().unwrap();
        let client = client.join().unwrap();
        let mut buf = [0u8; 8];
        let r = bucle::timeout(Duration::from_millis(5), || {
            std::io::Read::read(&mut &conn, &mut buf)
        });
        println!(
            "   read with nothing sent: {}",
            if r.is_err() { "timed out" } else { "data?" }
        );
        client.write_all(b"later").unwrap();
        let n = std::io::Read::read(&mut &conn, &mut buf).unwrap();
        println!("   then: {:?}", String::from_utf8_lossy(&buf[..n]));
    });

    println!("-- a chat (story: 05_chat_guion): a set of writers, each line relayed to the others");
    bucle::run(|| {
        use std::collections::HashSet;

        use bucle::net::{StreamReader, StreamWriter, open_connection, start_server};
        let clients: Rc<RefCell<HashSet<StreamWriter>>> = Rc::default();
        let counted = clients.clone();
        let handler = move |reader: StreamReader, writer: StreamWriter| -> std::io::Result<()> {
            clients.borrow_mut().insert(writer.clone());
            loop {
                let line = reader.readline()?;
                if line.is_empty() {
                    break; // this client left
                }
                // A snapshot of the set: `drain` may suspend, and the set change meanwhile.
                let others: Vec<_> = clients
                    .borrow()
                    .iter()
                    .filter(|c| **c != writer)
                    .cloned()
                    .collect();
                for other in others {
                    other.write(&line);
                    other.drain()?;
                }
            }
            clients.borrow_mut().remove(&writer);
            Ok(())
        };
        let server = start_server(handler, "127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let people: Vec<_> = ["ana", "beto", "carla"]
            .map(|name| (name, open_connection(addr).unwrap()))
            .into();
        while counted.borrow().len() < people.len() {
            bucle::sleep(Duration::from_millis(1)); // until the server counts everyone
        }
        for (name, (_, writer)) in &people {
            writer.write(format!("{name}: hola\n").as_bytes());
            for (other, (reader, _)) in people.iter().filter(|(other, _)| other != name) {
                let line = reader.readline().unwrap();
                println!(
                    "   {other} got \"{}\"",
                    String::from_utf8_lossy(&line).trim_end()
                );
            }
        }
        for (_, (_, writer)) in &people {
            writer.close();
        }
        server.close();
        server.wait_closed(); // every handler saw its client leave
        println!(
            "   all left; the server's set is empty: {}",
            counted.borrow().is_empty()
        );
    });

    println!("-- to_thread: blocking work on a worker thread while the loop goes on");
    bucle::run(|| {
        let start = Instant::now();
        let blocking = bucle::spawn(|| {
            bucle::to_thread(|| {
                std::thread::sleep(Duration::from_millis(30)); // would freeze every task here
                "slept 30 ms on a worker"
            })
        });
        let mut ticks = 0;
        while !blocking.is_done() {
            bucle::sleep(Duration::from_millis(5));
            ticks += 1;
        }
        println!(
            "   {} ; meanwhile the loop ticked {ticks} times ({:.0} ms)",
            blocking.join().unwrap(),
            start.elapsed().as_secs_f64() * 1e3
        );
    });
}

/// Chapter 6: locks, semaphores, events and queues, built on futures.
fn chapter_6_sync() {
    use bucle::sync::{Lock, Queue, Semaphore};
    use std::time::Duration;
    println!();
    println!("=== Chapter 6: synchronisation primitives and queues ===");
    println!(
        "    module bucle::sync, chapter docs/06-sync-and-queues.md, story: cargo run --example 06_lock"
    );
    println!();

    println!("-- a Lock guard is held across a suspension; waiters are served in order");
    let lp = bucle::EventLoop::builder().virtual_time().build();
    lp.run_until_complete(|| {
        let lock = Lock::new();
        let workers = ["A", "B", "C"].map(|name| {
            let lock = lock.clone();
            bucle::spawn(move || {
                let _guard = lock.acquire();
                println!("   {name} holds the lock at t={:?}", bucle::time());
                bucle::sleep(Duration::from_secs(1));
            })
        });
        bucle::gather(workers).unwrap();
    });

    println!("-- a Semaphore(2) lets two in at once");
    lp.run_until_complete(|| {
        let sem = Semaphore::new(2);
        let start = bucle::time();
        let workers = (0..4).map(|i| {
            let sem = sem.clone();
            bucle::spawn(move || {
                let _permit = sem.acquire();
                bucle::sleep(Duration::from_secs(1));
                println!("   worker {i} done at t={:?}", bucle::time() - start);
            })
        });
        bucle::gather(workers).unwrap();
    });

    println!("-- a bounded Queue: the producer waits for room, task_done/join track the work");
    lp.run_until_complete(|| {
        let q = Queue::with_maxsize(2);
        let consumer = {
            let q = q.clone();
            bucle::spawn(move || {
                loop {
                    let item: u32 = q.get().unwrap();
                    bucle::sleep(Duration::from_millis(500));
                    println!("   consumed {item} at t={:?}", bucle::time());
                    q.task_done();
                }
            })
        };
        for item in 1..=4 {
            q.put(item).unwrap();
            println!(
                "   produced {item} at t={:?} (len {})",
                bucle::time(),
                q.len()
            );
        }
        q.join();
        consumer.cancel();
        println!("   all work done at t={:?}", bucle::time());
    });

    println!("-- queue ping-pong between two tasks, 200 000 round trips (real clock)");
    bucle::run(|| {
        let (ping, pong) = (Queue::new(), Queue::new());
        let echo = {
            let (ping, pong) = (ping.clone(), pong.clone());
            bucle::spawn(move || {
                while let Ok(Some(n)) = ping.get() {
                    pong.put(n).unwrap();
                }
            })
        };
        let start = Instant::now();
        for n in 0..200_000u32 {
            ping.put(Some(n)).unwrap();
            assert_eq!(pong.get().unwrap(), n);
        }
        let elapsed = start.elapsed();
        ping.put(None).unwrap();
        echo.join().unwrap();
        println!(
            "   {:.1} ns per round trip",
            elapsed.as_nanos() as f64 / 200_000.0
        );
    });
}
