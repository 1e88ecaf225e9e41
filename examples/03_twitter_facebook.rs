//! Chapter 3 — from chapter 2's round robin to the event loop: the same
//! `leerTwitter` and `leerFacebook`, now coroutines, awaited one after the
//! other, then run as tasks, then created as tasks and never awaited. Port
//! of `examples/python/03_twitter_facebook.py` (seed 003, "Ejecucion de los
//! awaitables").
//!
//! Each `yield` of chapter 2 is a `yield_now()` here (`await
//! asyncio.sleep(0)`): the task goes to the back of the ready queue. Awaiting
//! a coroutine is calling it, so the first `main` runs the two in turn, as
//! chapter 2's `for _ in leerTwitter()` did. `spawn` makes them tasks, and
//! the loop interleaves them. Without the joins, `main` returns at once: the
//! loop stops one tick later, so each task gets its first step, and
//! `bucle::run` then cancels them, as `asyncio.run` does. Nothing here
//! sleeps, so `bucle::run` (the real clock) costs no time.

/// Python: `async def leerTwitter()`.
fn leer_twitter() {
    println!("leerTwitter: conectando");
    bucle::yield_now(); // await asyncio.sleep(0)
    for n in 1..4 {
        println!("leerTwitter: tweet {n}");
        bucle::yield_now();
    }
    println!("leerTwitter: listo");
}

/// Python: `async def leerFacebook()`.
fn leer_facebook() {
    println!("leerFacebook: conectando");
    bucle::yield_now();
    for n in 1..3 {
        println!("leerFacebook: post {n}");
        bucle::yield_now();
    }
    println!("leerFacebook: listo");
}

/// Secuencial: `await leerTwitter()`, then `await leerFacebook()`.
fn main_secuencial() {
    leer_twitter();
    leer_facebook();
}

/// CONCURRENCIA: `create_task` both, then `await` each.
fn main_concurrente() {
    let task1 = bucle::spawn(leer_twitter);
    let task2 = bucle::spawn(leer_facebook);

    task1.join().unwrap();
    task2.join().unwrap();
}

/// CONCURRENCIA without the awaits: the handles are dropped unjoined when
/// `main` returns (dropping a handle detaches the task; it does not cancel it).
fn main_sin_await() {
    let _task1 = bucle::spawn(leer_twitter);
    let _task2 = bucle::spawn(leer_facebook);
}

fn main() {
    println!("== Secuencial: await leerTwitter(), luego await leerFacebook()");
    bucle::run(main_secuencial);
    println!("== Concurrente: create_task las dos, luego await task1 y task2");
    bucle::run(main_concurrente);
    println!("== Sin await: create_task las dos y main termina");
    bucle::run(main_sin_await);
}
