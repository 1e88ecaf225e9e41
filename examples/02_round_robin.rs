//! Chapter 2's story: the tutorial's `generadoresYcorutina.py` idea (the
//! seeds name the file but do not reproduce it), as this project retells it in
//! `examples/python/02_generador_y_corutina.py`, ported to `bucle::RoundRobin`.
//!
//! `leerTwitter` and `leerFacebook` are generators that print a step and
//! yield. Run one after the other they print in two blocks; handed to a
//! round-robin scheduler (the Python story's `concurrenciaAsync(tareas)`, a
//! name of this port's; here [`RoundRobin`]) their steps interleave. A last
//! section has a task spawn another one through a [`Spawner`], as `leerMail`
//! appends to `tareas`.
//!
//! Run it with `cargo run --example 02_round_robin`; it prints exactly what
//! `python3 examples/python/02_generador_y_corutina.py` prints (the expected
//! output is in `docs/02-round-robin.md`, and `tests/examples.rs` checks
//! both).

use bucle::{Generator, RoundRobin, RoundRobinTask, Spawner, Yielder};

/// Python: `def leerTwitter(): ... yield ...`. Each `yield_(())` is the
/// point where the task lets the others run.
fn leer_twitter() -> RoundRobinTask {
    Generator::new(|y: &Yielder<()>, ()| {
        println!("leerTwitter: conectando");
        y.yield_(());
        for n in 1..4 {
            println!("leerTwitter: tweet {n}");
            y.yield_(());
        }
        println!("leerTwitter: listo");
    })
}

/// Python: `def leerFacebook(): ...`.
fn leer_facebook() -> RoundRobinTask {
    Generator::new(|y: &Yielder<()>, ()| {
        println!("leerFacebook: conectando");
        y.yield_(());
        for n in 1..3 {
            println!("leerFacebook: post {n}");
            y.yield_(());
        }
        println!("leerFacebook: listo");
    })
}

/// Python: `def bajarAdjunto(): ...`.
fn bajar_adjunto() -> RoundRobinTask {
    Generator::new(|y: &Yielder<()>, ()| {
        println!("bajarAdjunto: bajando");
        y.yield_(());
        println!("bajarAdjunto: listo");
    })
}

/// Python: `def leerMail(tareas): ... tareas.append(bajarAdjunto()) ...`.
/// The [`Spawner`] is our handle on `tareas`: the new task goes to the back
/// of the queue and first runs after this one yields.
fn leer_mail(tareas: Spawner) -> RoundRobinTask {
    Generator::new(move |y: &Yielder<()>, ()| {
        println!("leerMail: un mail con adjunto, lanzo otra tarea");
        tareas.spawn(bajar_adjunto());
        y.yield_(());
        println!("leerMail: listo");
    })
}

fn main() {
    println!("== Secuencial: una tarea y despues la otra");
    // A generator of `()` is an iterator: `for _ in leerTwitter(): pass`.
    for () in leer_twitter() {}
    for () in leer_facebook() {}

    println!("== Concurrente: concurrenciaAsync([leerTwitter(), leerFacebook()])");
    let mut tareas = RoundRobin::new();
    tareas.spawn(leer_twitter());
    tareas.spawn(leer_facebook());
    let pasos = tareas.run();
    println!("== {pasos} pasos, todas las tareas terminaron");

    println!("== Una tarea que lanza otra");
    let mut tareas = RoundRobin::new();
    tareas.spawn(leer_mail(tareas.spawner()));
    tareas.spawn(leer_facebook());
    let pasos = tareas.run();
    println!("== {pasos} pasos, todas las tareas terminaron");
}
