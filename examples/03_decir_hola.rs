//! Chapter 3 — `create_task` returns at once: the new task first runs when
//! `main` suspends. Port of `examples/python/03_decir_hola.py` (seed 000,
//! "Principales Métodos de asyncio", 4. `asyncio.create_task`). Runs on the
//! virtual clock.
use std::time::Duration;

fn decir_hola() {
    bucle::sleep(Duration::from_secs(1));
    println!("Hola!");
}

fn main() {
    let lp = bucle::EventLoop::builder().virtual_time().build();
    lp.run_until_complete(|| {
        let tarea = bucle::spawn(decir_hola); // asyncio.create_task(decir_hola())
        println!("Tarea creada");
        tarea.join().unwrap(); // await tarea
    });
}
