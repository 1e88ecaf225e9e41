//! Chapter 6 — `Lock`: `async with lock` is a guard that releases on drop.
//! Port of `examples/python/06_lock.py` (seed: "Capítulo 5", 5.7.1).
//! Runs on the virtual clock.
use std::time::Duration;

use bucle::sync::Lock;

fn worker(name: &'static str, lock: Lock) {
    println!("Trabajador {name} está intentando adquirir el lock...");
    {
        let _guard = lock.acquire();
        println!("Trabajador {name} ha adquirido el lock.");
        bucle::sleep(Duration::from_secs(2));
    }
    println!("Trabajador {name} ha liberado el lock.");
}

fn main() {
    let lp = bucle::EventLoop::builder().virtual_time().build();
    lp.run_until_complete(|| {
        let lock = Lock::new();
        let workers = ["A", "B"].map(|name| {
            let lock = lock.clone();
            bucle::spawn(move || worker(name, lock))
        });
        bucle::gather(workers).unwrap();
    });
}
