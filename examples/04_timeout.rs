//! Stage 4 — a `timeout` scope over three tasks: when it fires, the task
//! being awaited is cancelled and the scope reports `Elapsed`. Port of
//! `examples/python/04_timeout.py` (seed: "Ejecución Asincrónica", Timeouts).
//! Runs on the virtual clock.
use std::time::Duration;

fn t() -> u64 {
    bucle::time().as_secs_f64().round() as u64
}

fn corrutina(nombre: &'static str, duracion: u64) -> impl FnOnce() {
    move || {
        println!(
            "Nombre: {nombre}, inicio: t={}s, duracion: {duracion}s",
            t()
        );
        bucle::sleep(Duration::from_secs(duracion));
        println!("Nombre: {nombre}, fin: t={}s", t());
    }
}

fn main() {
    let lp = bucle::EventLoop::builder().virtual_time().build();
    lp.run_until_complete(|| {
        let tarea3 = std::cell::RefCell::new(None);
        let r = bucle::timeout(Duration::from_secs(5), || {
            let tarea1 = bucle::spawn(corrutina("A", 3));
            let tarea2 = bucle::spawn(corrutina("B", 1));
            let t3 = bucle::spawn(corrutina("C", 10)); // tiempo espera excesivo
            *tarea3.borrow_mut() = Some(t3.as_any());

            tarea1.join().unwrap();
            tarea2.join().unwrap();
            t3.join().unwrap();
        });
        if r.is_err() {
            println!("TimeoutError: t={}s", t());
            let c = tarea3.borrow();
            let cancelled = c.as_ref().is_some_and(|c| c.is_cancelled());
            println!("C cancelada: {}", if cancelled { "True" } else { "False" });
        }
    });
}
