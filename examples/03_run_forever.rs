//! Chapter 3 — `run_forever` runs until someone calls `stop`. Port of
//! `examples/python/03_run_forever.py` (seed 001, 5.2.3 "Reutilización del
//! Bucle de Eventos"), which adds one line to the seed: the greet task's
//! done callback stops the loop. Runs on the virtual clock.
//!
//! Then the seed's program as written, with nobody to call `stop`: once
//! `greet` is done, asyncio's loop sleeps in `select()` forever. bucle's
//! sees that nothing is left that could ever wake it (no task ready, no
//! timer, no I/O, no other thread) and, rather than hang, panics with a
//! deadlock report, which this example prints on stderr. CPython prints
//! nothing there (it is still waiting), so stdout is the same for both.
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use bucle::EventLoop;

fn greet() {
    println!("¡Hola desde el bucle de eventos existente!");
    bucle::sleep(Duration::from_secs(1));
    println!("¡Adiós desde el bucle de eventos existente!");
}

fn main() {
    // Obteniendo el bucle de eventos existente
    let lp = EventLoop::builder().virtual_time().build();

    // Ejecutando la corrutina: `loop.create_task(greet())`
    let tarea = lp.spawn(greet);
    tarea.add_done_callback(|_| bucle::stop()); // added: stop when greet is done

    // Ejecutando el bucle de eventos indefinidamente
    lp.run_forever();
    lp.close();

    sin_stop();
}

/// The seed's program without the added line, on a quiet task (so stdout
/// stays CPython's): `run_forever` reports the deadlock instead of waiting
/// forever.
fn sin_stop() {
    let lp = EventLoop::builder().virtual_time().build();
    drop(lp.spawn(|| bucle::sleep(Duration::from_secs(1))));
    // The report is a panic; silence the panic hook while it is caught,
    // and print just its message.
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let r = panic::catch_unwind(AssertUnwindSafe(|| lp.run_forever()));
    panic::set_hook(hook);
    let payload = r.expect_err("run_forever with nothing left to run returned");
    let report = payload
        .downcast_ref::<String>()
        .map_or("(not a String)", String::as_str);
    eprintln!("sin stop(): run_forever panicked at t={:?}:", lp.time());
    eprintln!("{report}");
}
