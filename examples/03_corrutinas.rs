//! Chapter 3 — one coroutine run once, run four times in sequence (four
//! loops, then one loop), run three times concurrently with `gather`, run
//! as two tasks, and as two tasks inside a task group. Port of
//! `examples/python/03_corrutinas.py` (seed 002, "Corrutinas", "Tareas" and
//! "TaskGroup()"). Runs on the virtual clock.
//!
//! `async with asyncio.TaskGroup() as grupo` is `bucle::task_group(|grupo|
//! ..)`. The seed's group is empty: its tasks come from
//! `asyncio.create_task`, not `grupo.create_task`. The last program, not in
//! the seed, spawns them into the group, which waits for them.
use std::time::Duration;

/// `asyncio.run(f())` on the virtual clock: a new loop, `f` as its main
/// task, then the tasks left are cancelled and the loop is closed
/// (`bucle::run` does the same on the real clock).
fn asyncio_run<T: 'static>(f: impl FnOnce() -> T + 'static) -> T {
    let lp = bucle::EventLoop::builder().virtual_time().build();
    let valor = lp.run_until_complete(f);
    lp.shutdown();
    lp.close();
    valor
}

/// The seed prints `datetime.now()`; this prints the loop clock, in whole
/// seconds. Every loop has its own clock, starting at zero.
fn ahora() -> String {
    format!("t={}s", bucle::time().as_secs_f64().round())
}

/// definicion de corrutina: `async def corrutina(nombre, duracion)`.
fn corrutina(nombre: &str, duracion: u64) {
    println!(
        "Nombre: {nombre}, inicio: {}, duracion: {duracion}s",
        ahora()
    );
    bucle::sleep(Duration::from_secs(duracion)); // NO bloquea la ejecucion de otras corrutinas
    println!("Nombre: {nombre}, fin: {}", ahora());
}

/// Ejecución secuencial, con await: awaiting a coroutine is calling it.
fn principal() {
    corrutina("A", 1);
    corrutina("B", 1);
    corrutina("C", 1);
    corrutina("D", 1);
}

/// Ejecucion concurrente: `gather` takes tasks (Python's `gather` wraps
/// each coroutine in one, in the same order).
fn corrutinas_concurrentes() {
    bucle::gather([
        bucle::spawn(|| corrutina("A", 1)),
        bucle::spawn(|| corrutina("B", 2)),
        bucle::spawn(|| corrutina("C", 3)),
    ])
    .unwrap();
}

/// Tareas: `create_task` twice, then `await` each.
fn principal_tareas() {
    let tarea1 = bucle::spawn(|| corrutina("A", 3));
    let tarea2 = bucle::spawn(|| corrutina("B", 1));

    tarea1.join().unwrap();
    tarea2.join().unwrap();
}

/// TaskGroup(): the tasks come from `bucle::spawn` (`asyncio.create_task`),
/// so the group has none; the joins do the waiting.
fn principal_taskgroup() {
    bucle::task_group(|_grupo| {
        // tareas internas - ejecucion concurrente
        let tarea1 = bucle::spawn(|| corrutina("A", 3));
        let tarea2 = bucle::spawn(|| corrutina("B", 1));

        tarea1.join().unwrap();
        tarea2.join().unwrap();
    })
    .unwrap();
}

/// Not in the seed: `grupo.create_task` is `grupo.spawn`. The body returns
/// at once; `task_group` returns when every task of the group is done.
fn principal_grupo() {
    bucle::task_group(|grupo| {
        grupo.spawn(|| corrutina("A", 3));
        grupo.spawn(|| corrutina("B", 1));
    })
    .unwrap();
    println!("Grupo cerrado: {}", ahora());
}

fn main() {
    println!("== asyncio.run(corrutina('A', 1))");
    // ejecucion de corrutina
    asyncio_run(|| corrutina("A", 1));

    println!("== Ejecución secuencial: cuatro asyncio.run");
    asyncio_run(|| corrutina("A", 1));
    asyncio_run(|| corrutina("B", 1));
    asyncio_run(|| corrutina("C", 1));
    asyncio_run(|| corrutina("D", 1));

    println!("== Ejecución secuencial: await dentro de principal()");
    asyncio_run(principal);

    println!("== Ejecución concurrente: gather()");
    // orden de ejecucion asincrona
    asyncio_run(corrutinas_concurrentes);

    println!("== Tareas: create_task()");
    asyncio_run(principal_tareas);

    println!("== TaskGroup, como en la semilla: asyncio.create_task dentro del grupo");
    asyncio_run(principal_taskgroup);

    println!("== TaskGroup con grupo.create_task: el grupo espera a sus tareas");
    asyncio_run(principal_grupo);
}
