//! Stage 3 — `gather`: run tasks concurrently, collect results in order.
//! Port of `examples/python/03_gather.py`. Runs on the virtual clock.
use std::time::Duration;

fn task1() -> &'static str {
    bucle::sleep(Duration::from_secs(1));
    println!("Tarea 1 completada");
    "Tarea 1 completada"
}

fn task2() -> &'static str {
    bucle::sleep(Duration::from_secs(2));
    println!("Tarea 2 completada");
    "Tarea 2 completada"
}

fn main() {
    let lp = bucle::EventLoop::builder().virtual_time().build();
    lp.run_until_complete(|| {
        let resultados = bucle::gather([bucle::spawn(task1), bucle::spawn(task2)]).unwrap();
        println!("Todas las tareas completadas");
        // Printed the way Python prints a list of strings.
        let items: Vec<String> = resultados.iter().map(|r| format!("'{r}'")).collect();
        println!("[{}]", items.join(", "));
    });
}
