//! Chapter 3 — the seeds' hello-world programs, each on its own
//! `bucle::run`, which is `asyncio.run`: a new loop, the function as its
//! main task, the loop closed afterwards. Port of
//! `examples/python/03_holamundo_async.py` (seeds 000, 001 and 004).
//!
//! A coroutine is a plain function: `async def main(): print(...)` is
//! `fn main_hola_mundo() { println!(...) }`, and `asyncio.run(main())` is
//! `bucle::run(main_hola_mundo)` — the function itself, not a call to it,
//! as Python hands `asyncio.run` a coroutine object that has not started.
//! `bucle::run` runs on the real clock: the last program sleeps one second.
use std::time::Duration;

/// Seed 000, Ejemplo básico 1: `async def main(): print("¡Hola, mundo asincrónico!")`.
fn main_hola_mundo() {
    println!("¡Hola, mundo asincrónico!");
}

/// Seed 000, `hola_asyncio.py`.
fn main_hola_asyncio() {
    println!("Hola asyncio!");
}

/// Seed 001, 5.9.1.
fn main_corrutina_principal() {
    println!("Ejecutando la corrutina principal");
}

/// Seed 004, `src/15/holamundo_async.py`: `await asyncio.sleep(1)`, then print.
fn main_holamundo_async() {
    bucle::sleep(Duration::from_secs(1));
    println!("Hola, Mundo.");
}

fn main() {
    bucle::run(main_hola_mundo); // asyncio.run(main())
    bucle::run(main_hola_asyncio);
    bucle::run(main_corrutina_principal);
    bucle::run(main_holamundo_async);
}
