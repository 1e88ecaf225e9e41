//! Stage 4 — `wait_for`: a time limit on a slow coroutine. Port of
//! `examples/python/04_wait_for.py`. Runs on the virtual clock.
use std::time::Duration;

fn tarea_lenta() {
    bucle::sleep(Duration::from_secs(5));
    println!("Tarea larga completada");
}

fn main() {
    let lp = bucle::EventLoop::builder().virtual_time().build();
    lp.run_until_complete(|| {
        if bucle::wait_for(Duration::from_secs(2), tarea_lenta).is_err() {
            println!("La tarea tomó demasiado tiempo");
        }
    });
}
