//! Chapter 6 — `Event`: waiters block until someone sets it. Port of
//! `examples/python/06_evento.py` (seed: "Capítulo 5", 5.7.3). Runs on the
//! virtual clock.
use std::time::Duration;

use bucle::sync::Event;

fn waiter(event: Event, name: &'static str) {
    println!("Esperador {name} está esperando el evento...");
    event.wait();
    println!("Esperador {name} ha recibido el evento!");
}

fn setter(event: Event) {
    bucle::sleep(Duration::from_secs(2));
    println!("Estableciendo el evento.");
    event.set();
}

fn main() {
    let lp = bucle::EventLoop::builder().virtual_time().build();
    lp.run_until_complete(|| {
        let event = Event::new();
        let (a, b, s) = (event.clone(), event.clone(), event);
        bucle::gather([
            bucle::spawn(move || waiter(a, "A")),
            bucle::spawn(move || waiter(b, "B")),
            bucle::spawn(move || setter(s)),
        ])
        .unwrap();
    });
}
