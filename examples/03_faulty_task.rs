//! Chapter 3 — a failing coroutine, caught; then failing in a task nobody
//! waits for, reported to the loop's exception handler. Port of
//! `examples/python/03_faulty_task.py` (seed 001, 5.9.5 "Manejar
//! Excepciones"; seed 002, "Manejo de errores"). Runs on the virtual clock.
//!
//! Python's `raise` is a panic. A panic stops at the boundary of the task
//! it happened in, and becomes that task's result: `join` returns it as
//! `Err(JoinError::Panicked(message))`. If nobody will ever join the task,
//! the loop hands the panic to its exception handler. Rust's panic hook
//! still prints each panic on stderr; asyncio prints nothing there.
use std::time::Duration;

use bucle::{EventLoop, ExceptionContext, JoinError};

/// Python: `async def faulty_task()`.
fn faulty_task() {
    bucle::sleep(Duration::from_secs(1));
    panic!("¡Ocurrió un error!"); // raise ValueError("¡Ocurrió un error!")
}

/// Python: `def manejador(loop, context)`. The context carries the panic
/// message where asyncio's carries the exception.
fn manejador(context: &ExceptionContext) {
    println!(
        "Manejador: una tarea falló sin que nadie la esperara: {}",
        context.panic.as_deref().unwrap_or("(sin mensaje)")
    );
}

fn main() {
    // Seed 001: asyncio.run(main())
    let lp = EventLoop::builder().virtual_time().build();
    lp.run_until_complete(|| {
        // try: await faulty_task() / except ValueError as e: — the call
        // runs as a task of its own, so that its panic is caught there.
        match bucle::spawn(faulty_task).join() {
            Err(JoinError::Panicked(e)) => println!("Excepción capturada: {e}"),
            otro => unreachable!("faulty_task always fails: {otro:?}"),
        }
    });

    // Not in the seeds: asyncio.run(main_manejador()). Python sets the
    // handler from inside, on `get_running_loop()`; here it is set on the
    // loop before it runs.
    let lp = EventLoop::builder().virtual_time().build();
    lp.set_exception_handler(manejador);
    lp.run_until_complete(|| {
        drop(bucle::spawn(faulty_task)); // nadie la espera
        bucle::sleep(Duration::from_secs(2));
        println!("main_manejador: el bucle siguió funcionando");
    });
}
