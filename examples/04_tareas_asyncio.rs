//! Stage 4 — two tasks sleeping different times: the shorter sleep finishes
//! first although it started second. Port of
//! `examples/python/04_tareas_asyncio.py` (seed: "La asíncronia mas a
//! fondo", Ejemplo básico 2). Runs on the virtual clock.
use std::time::Duration;

fn tarea1_di_hola() {
    println!("Iniciando Primera tarea...");
    bucle::sleep(Duration::from_secs(2));
    println!("¡Hola, mundo asincrónico!");
}

fn tarea2_haz_otra_cosa() {
    println!("Iniciando otra tarea...");
    bucle::sleep(Duration::from_secs(1));
    println!("¡Terminé otra tarea!");
}

fn main() {
    let lp = bucle::EventLoop::builder().virtual_time().build();
    lp.run_until_complete(|| {
        bucle::gather([
            bucle::spawn(tarea1_di_hola),
            bucle::spawn(tarea2_haz_otra_cosa),
        ])
        .unwrap();
    });
}
