//! Stage 3 — `Future` with a done callback, succeeding and failing.
//! Port of `examples/python/03_future.py` (seed: "La asíncronia mas a
//! fondo", Futuros en asyncio). Runs on the virtual clock.
use std::fmt;
use std::time::Duration;

use bucle::Future;

/// Python's `RuntimeError("Operación fallida")`.
#[derive(Debug)]
struct RuntimeError(&'static str);

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for RuntimeError {}

fn async_operation(future: &Future<&'static str>, data: &str) {
    bucle::sleep(Duration::from_secs(1));
    if data == "success" {
        future.set_result("Operación exitosa").unwrap();
    } else {
        future
            .set_exception(RuntimeError("Operación fallida"))
            .unwrap();
    }
}

fn future_callback(future: &Future<&'static str>) {
    match future.result() {
        Some(Ok(value)) => println!("Callback: {value}"),
        Some(Err(exc)) => println!("Callback: {exc}"),
        None => unreachable!("done callbacks run once the future is done"),
    }
}

fn main() {
    for data in ["success", "failure"] {
        let lp = bucle::EventLoop::builder().virtual_time().build();
        lp.run_until_complete(move || {
            let future = Future::new();
            future.add_done_callback(future_callback);
            async_operation(&future, data);
        });
    }
}
