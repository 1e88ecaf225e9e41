//! Chapter 4 — a blocking call in a task stops the whole loop; `sleep`
//! stops only the task. Port of `examples/python/04_bloqueante.py` (seed
//! 001, 5.9.2 "Evitar Llamadas Bloqueantes": "Incorrecto", then
//! "Correcto").
//!
//! `std::thread::sleep` is `time.sleep`: the thread, and with it the loop
//! and every task on it, does nothing for two seconds. `bucle::sleep`
//! suspends the task and gives the loop back. On the virtual clock the
//! second sleep costs no time, while the first one still takes two real
//! seconds: a blocking call is invisible to the loop's clock.
use std::time::Duration;

/// Incorrecto: `async def blocking_task()`.
fn blocking_task() {
    println!("Iniciando tarea bloqueante");
    std::thread::sleep(Duration::from_secs(2)); // Llamada bloqueante
    println!("Tarea bloqueante completada");
}

/// Correcto: `async def non_blocking_task()`.
fn non_blocking_task() {
    println!("Iniciando tarea no bloqueante");
    bucle::sleep(Duration::from_secs(2)); // Sleep asíncrono
    println!("Tarea no bloqueante completada");
}

fn main() {
    // asyncio.run(main()), where main awaits blocking_task()
    let lp = bucle::EventLoop::builder().virtual_time().build();
    lp.run_until_complete(blocking_task);
    // asyncio.run(main()), where main awaits non_blocking_task()
    let lp = bucle::EventLoop::builder().virtual_time().build();
    lp.run_until_complete(non_blocking_task);
}
