//! Stage 3 — tasks: `create_task` schedules a coroutine; `await task` joins it.
//! Port of `examples/python/03_tareas.py` (seed: "Capítulo 5", 5.3.2 Tareas).
//! Runs on the virtual clock, so the seconds pass instantly.
use std::time::Duration;

fn say_after(delay: u64, message: &'static str) -> impl FnOnce() {
    move || {
        bucle::sleep(Duration::from_secs(delay));
        println!("{message}");
    }
}

fn main() {
    let lp = bucle::EventLoop::builder().virtual_time().build();
    lp.run_until_complete(|| {
        let task1 = bucle::spawn(say_after(1, "Tarea 1 completada"));
        let task2 = bucle::spawn(say_after(2, "Tarea 2 completada"));

        println!("Tareas creadas");
        task1.join().unwrap();
        task2.join().unwrap();
        println!("Todas las tareas completadas");
    });
}
