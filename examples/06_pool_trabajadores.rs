//! Chapter 6 — a worker pool: `task_done` marks each job finished, `join`
//! waits until every job put in the queue is done. Port of
//! `examples/python/06_pool_trabajadores.py`. Runs on the virtual clock.
use std::time::Duration;

use bucle::sync::Queue;

fn trabajador(nombre: String, cola: Queue<u64>) {
    loop {
        let segundos = cola.get().unwrap();
        bucle::sleep(Duration::from_secs(segundos));
        println!("{nombre} terminó un trabajo de {segundos}s");
        cola.task_done();
    }
}

fn main() {
    let lp = bucle::EventLoop::builder().virtual_time().build();
    lp.run_until_complete(|| {
        let cola = Queue::new();
        for segundos in [3, 1, 2, 1, 2] {
            cola.put_nowait(segundos).unwrap();
        }
        let trabajadores: Vec<_> = (0..3)
            .map(|i| {
                let cola = cola.clone();
                bucle::spawn(move || trabajador(format!("trabajador-{i}"), cola))
            })
            .collect();
        cola.join();
        println!("Todos los trabajos terminados");
        for t in &trabajadores {
            t.cancel();
        }
        let canceladas = trabajadores
            .into_iter()
            .map(|t| t.join())
            .filter(|r| matches!(r, Err(bucle::JoinError::Cancelled)))
            .count();
        println!("{canceladas} trabajadores cancelados");
    });
}
