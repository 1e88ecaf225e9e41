//! Stage 5: blocking work on other threads — the seed's `to_thread`,
//! `run_in_executor` and `gather` stories (`examples/python/05_to_thread.py`).
//!
//! `rutina` blocks its thread with `std::thread::sleep`, as the seed's
//! `time.sleep`: called in a task it would stop every task; on a worker
//! thread it stops nothing. Times are seconds since the program started.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bucle::EventLoop;

static INICIO: OnceLock<Instant> = OnceLock::new();

fn ahora() -> String {
    format!(
        "{:.0}s",
        INICIO.get_or_init(Instant::now).elapsed().as_secs_f64()
    )
}

fn rutina(nombre: &str, duracion: u64) -> u64 {
    println!(
        "Nombre: {nombre}, inicio: {}, duracion: {duracion}s",
        ahora()
    );
    std::thread::sleep(Duration::from_secs(duracion)); // bloquea su hilo, no el bucle
    println!("Nombre: {nombre}, fin: {}", ahora());
    duracion
}

fn main() {
    INICIO.get_or_init(Instant::now);

    // asyncio.run(principal()) with `await asyncio.to_thread(rutina, "Y", 2)`
    bucle::run(|| {
        let resultado = bucle::to_thread(|| rutina("Y", 2));
        println!("{resultado}");
    });

    // `await bucle.run_in_executor(None, rutina, "X", 3)`
    let bucle = EventLoop::new();
    let tarea = bucle.run_in_executor(|| rutina("X", 3));
    let resultado = bucle.run_until_complete(move || tarea.join().unwrap());
    println!("{resultado}");
    bucle.close();

    // Both at once, in `gather`.
    let bucle = EventLoop::new();
    let x = bucle.run_in_executor(|| rutina("X", 3));
    let resultado = bucle.run_until_complete(move || {
        let y = bucle::spawn(|| bucle::to_thread(|| rutina("Y", 2)));
        bucle::gather([x, y]).unwrap()
    });
    println!("{resultado:?}");
    bucle.close();
}
