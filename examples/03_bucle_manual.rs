//! Chapter 3 — a loop driven by hand: create it, `run_until_complete` one
//! coroutine or several in turn, `close` it. Port of
//! `examples/python/03_bucle_manual.py` (seed 001, 5.2.2 "Gestión Manual del
//! Bucle de Eventos", and seed 002, "Loop de Eventos"). Runs on the virtual
//! clock.
use std::rc::Rc;
use std::time::Duration;

use bucle::EventLoop;

/// Seed 001: `async def main()`.
fn principal() {
    println!("¡Hola desde el bucle de eventos manual!");
    bucle::sleep(Duration::from_secs(1));
    println!("¡Adiós desde el bucle de eventos manual!");
}

/// Seed 002 prints `datetime.now()`; this prints the loop clock (the
/// running loop's, like every free function of bucle), in whole seconds.
fn ahora() -> String {
    format!("t={}s", bucle::time().as_secs_f64().round())
}

/// Seed 002: `async def corrutina(nombre, duracion)`. Python asks for the
/// current loop with `asyncio.get_event_loop()`; bucle has no function that
/// returns the loop object (what acts on the running loop is a free
/// function: `bucle::time`, `bucle::stop`, `bucle::call_soon`), so the
/// coroutine that wants the object itself is handed it.
fn corrutina(bucle: &EventLoop, nombre: &str, duracion: u64) {
    // consulta del loop actual
    println!(
        "bucle: running={} closed={}",
        python_bool(bucle.is_running()),
        python_bool(bucle.is_closed())
    );

    println!(
        "Nombre: {nombre}, inicio: {}, duracion: {duracion}s",
        ahora()
    );
    bucle::sleep(Duration::from_secs(duracion));
    println!("Nombre: {nombre}, fin: {}", ahora());
}

fn main() {
    // Seed 001. Creando el bucle de eventos: `asyncio.get_event_loop()`.
    let lp = EventLoop::builder().virtual_time().build();
    // Ejecutando la corrutina: `try: loop.run_until_complete(main())
    // finally: loop.close()`. Dropping a loop closes it, so the `finally`
    // also happens if `run_until_complete` panics.
    lp.run_until_complete(principal);
    lp.close();

    // Seed 002. nuevo bucle asíncrono: `asyncio.new_event_loop()`, shared
    // with the coroutines through an `Rc`.
    let lp = Rc::new(EventLoop::builder().virtual_time().build());

    // ejecucion secuencial, hasta terminar: one loop, one clock; B starts
    // where A ended.
    let bucle = Rc::clone(&lp);
    lp.run_until_complete(move || corrutina(&bucle, "A", 1));
    let bucle = Rc::clone(&lp);
    lp.run_until_complete(move || corrutina(&bucle, "B", 3));

    // Cierre de bucle manual
    lp.close();
}

fn python_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}
