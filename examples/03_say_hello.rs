//! Chapter 3 — awaiting a coroutine is calling it: `await say_hello()` is
//! `say_hello()`. Port of `examples/python/03_say_hello.py` (seed 001,
//! 5.3.1 "Corrutinas"). Runs on the virtual clock.
use std::time::Duration;

/// Python: `async def say_hello()`. It suspends the task that calls it,
/// however deep the call: the stack is the task's own.
fn say_hello() {
    println!("Hola");
    bucle::sleep(Duration::from_secs(1));
    println!("Mundo");
}

/// Python: `async def main(): await say_hello()`.
fn principal() {
    say_hello(); // await say_hello()
}

fn main() {
    let lp = bucle::EventLoop::builder().virtual_time().build();
    lp.run_until_complete(principal); // asyncio.run(main())
}
