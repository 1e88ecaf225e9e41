//! Chapter 3 — a `Future` set by another task: `main` waits on it until
//! `set_after` fills it. Port of `examples/python/03_set_after.py` (seed
//! 003, the Future example from Python's documentation). Runs on the
//! virtual clock.
use std::time::Duration;

use bucle::Future;

/// Python: `async def set_after(fut, delay, value)`.
fn set_after(fut: Future<&'static str>, delay: Duration, value: &'static str) {
    // Sleep for *delay* seconds.
    bucle::sleep(delay);

    // Set *value* as a result of *fut* Future.
    fut.set_result(value).unwrap();
}

fn main() {
    let lp = bucle::EventLoop::builder().virtual_time().build();
    lp.run_until_complete(|| {
        // Create a new Future object: `loop.create_future()`. It needs no
        // loop reference; a `Future` is a `Clone` handle.
        let fut = Future::new();

        // Run "set_after()" coroutine in a parallel Task: `loop.create_task`.
        // Dropping the handle detaches the task; it keeps running.
        let f = fut.clone();
        bucle::spawn(move || set_after(f, Duration::from_secs(1), "... world"));

        println!("hello ...");

        // Wait until *fut* has a result (1 second) and print it.
        println!("{}", fut.wait().unwrap());
    });
}
