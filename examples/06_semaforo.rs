//! Chapter 6 — `Semaphore(2)`: at most two workers inside at once. Port of
//! `examples/python/06_semaforo.py` (seed: "Capítulo 5", 5.7.2). Runs on
//! the virtual clock. The seed's printed output shows lines its code never
//! prints; this prints what CPython prints.
use std::time::Duration;

use bucle::sync::Semaphore;

fn worker(name: &'static str, semaphore: Semaphore) {
    {
        let _permit = semaphore.acquire();
        println!("Trabajador {name} ha obtenido acceso.");
        bucle::sleep(Duration::from_secs(2));
    }
    println!("Trabajador {name} ha liberado acceso.");
}

fn main() {
    let lp = bucle::EventLoop::builder().virtual_time().build();
    lp.run_until_complete(|| {
        let semaphore = Semaphore::new(2); // Máximo 2 simultáneamente
        let workers = ["A", "B", "C", "D"].map(|name| {
            let semaphore = semaphore.clone();
            bucle::spawn(move || worker(name, semaphore))
        });
        bucle::gather(workers).unwrap();
    });
}
