//! Chapter 3 — `shield`: cancelling a task that waits for another one
//! cancels that one too, unless it waits through `shield`. Port of
//! `examples/python/03_shield.py` (seed 000 names `asyncio.shield` and
//! shows no code; the program is ours). Runs on the virtual clock.
//!
//! `bucle::shield(tarea)` and `tarea.join()` take the task's handle, where
//! Python's `tarea` stays usable after `await asyncio.shield(tarea)`; so
//! `probar` keeps `tarea.as_any()`, a view that can still ask whether the
//! task was cancelled.
use std::time::Duration;

use bucle::{JoinError, Task};

fn guardar(archivo: &str) {
    println!("guardar: empiezo {archivo}");
    bucle::sleep(Duration::from_secs(2));
    println!("guardar: {archivo} guardado");
}

/// `await asyncio.shield(tarea)`: a cancel of this task stops here, and
/// `tarea` goes on, detached.
fn esperar_con_shield(tarea: Task<()>) {
    bucle::shield(tarea).unwrap();
    println!("esperar: nunca llega aquí");
}

/// `await tarea`: a cancel of this task is forwarded to `tarea`.
fn esperar_sin_shield(tarea: Task<()>) {
    tarea.join().unwrap();
    println!("esperar: nunca llega aquí");
}

fn probar(esperar: fn(Task<()>), archivo: &'static str) {
    let tarea = bucle::spawn(move || guardar(archivo));
    let vista = tarea.as_any();
    let espera = bucle::spawn(move || esperar(tarea));
    bucle::sleep(Duration::from_secs(1));
    espera.cancel();
    if let Err(JoinError::Cancelled) = espera.join() {
        println!("main: cancelé la espera de {archivo}");
    }
    let cancelado = if vista.is_cancelled() {
        "True"
    } else {
        "False"
    };
    println!("main: ¿{archivo} cancelado? {cancelado}");
    bucle::sleep(Duration::from_secs(2));
}

fn main() {
    let lp = bucle::EventLoop::builder().virtual_time().build();
    lp.run_until_complete(|| {
        println!("== Con shield");
        probar(esperar_con_shield, "informe.txt");
        println!("== Sin shield");
        probar(esperar_sin_shield, "borrador.txt");
    });
}
