//! Chapter 3 — `asyncio.run(main())` is `bucle::run(main)`: a new loop,
//! `main` as its first task, then every task still pending is cancelled and
//! the loop is closed. Port of `examples/python/03_hola_adios.py` (seed
//! 001, 5.2.2 "Usando asyncio.run"). `bucle::run` uses the real clock: this
//! takes one second.
use std::time::Duration;

/// Python: `async def main(): print(...); await asyncio.sleep(1); print(...)`.
fn principal() {
    println!("¡Hola desde asyncio.run!");
    bucle::sleep(Duration::from_secs(1)); // await asyncio.sleep(1)
    println!("¡Adiós desde asyncio.run!");
}

fn main() {
    bucle::run(principal); // asyncio.run(main())
}
