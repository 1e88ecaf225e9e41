//! Chapter 6 — a producer and a consumer joined by a `Queue`. Port of
//! `examples/python/06_productor_consumidor.py` (seed: "Capítulo 5", 5.5.1).
//! Runs on the virtual clock. The seed's printed output differs from what
//! its own code prints; this prints what CPython prints.
use std::time::Duration;

use bucle::sync::Queue;

fn producer(queue: Queue<Option<String>>, n: usize) {
    for i in 0..n {
        let item = format!("item_{i}");
        queue.put(Some(item.clone())).unwrap();
        println!("Productor añadió: {item}");
        bucle::sleep(Duration::from_secs(1));
    }
    queue.put(None).unwrap(); // Señal de terminación
}

fn consumer(queue: Queue<Option<String>>) {
    while let Some(item) = queue.get().unwrap() {
        println!("Consumidor procesó: {item}");
        bucle::sleep(Duration::from_secs(2));
    }
    println!("El consumidor ha terminado de trabajar");
}

fn main() {
    let lp = bucle::EventLoop::builder().virtual_time().build();
    lp.run_until_complete(|| {
        let queue = Queue::new();
        let (q1, q2) = (queue.clone(), queue);
        bucle::gather([
            bucle::spawn(move || producer(q1, 5)),
            bucle::spawn(move || consumer(q2)),
        ])
        .unwrap();
    });
}
