//! Stage 4 — a clock that ticks while other tasks work: `sleep` suspends
//! only the task that calls it. Port of `examples/python/04_reloj.py`.
//! Runs on the virtual clock.
use std::time::Duration;

use bucle::Future;

fn reloj(parar: Future<()>) {
    let mut segundos = 0;
    while !parar.is_done() {
        println!("tic {segundos}s");
        bucle::sleep(Duration::from_secs(1));
        segundos += 1;
    }
}

fn trabajo(nombre: &'static str, duracion: f64) -> impl FnOnce() {
    move || {
        println!("{nombre}: empieza ({duracion}s)");
        bucle::sleep(Duration::from_secs_f64(duracion));
        println!("{nombre}: termina");
    }
}

fn main() {
    let lp = bucle::EventLoop::builder().virtual_time().build();
    lp.run_until_complete(|| {
        let parar = Future::new();
        let tic = bucle::spawn({
            let parar = parar.clone();
            move || reloj(parar)
        });
        bucle::gather([
            bucle::spawn(trabajo("descarga", 2.5)),
            bucle::spawn(trabajo("cálculo", 1.5)),
        ])
        .unwrap();
        parar.set_result(()).unwrap();
        tic.join().unwrap();
        println!("fin");
    });
}
