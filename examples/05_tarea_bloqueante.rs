//! Chapter 5 — blocking work on a worker thread: `await
//! loop.run_in_executor(None, tarea_bloqueante)` is
//! `bucle::to_thread(tarea_bloqueante)`. Port of
//! `examples/python/05_tarea_bloqueante.py` (seed 000, "Principales Métodos
//! de asyncio", 9. `run_in_executor`). On the real clock: two seconds.
use std::time::Duration;

/// A plain function, not a coroutine: it blocks the thread it runs on,
/// which is one of the pool's, not the loop's.
fn tarea_bloqueante() {
    std::thread::sleep(Duration::from_secs(2));
    println!("Tarea bloqueante finalizada");
}

fn main() {
    // asyncio.run(main())
    bucle::run(|| {
        // await loop.run_in_executor(None, tarea_bloqueante): the task
        // suspends until the thread is done; the loop is free meanwhile.
        bucle::to_thread(tarea_bloqueante);
    });
}
