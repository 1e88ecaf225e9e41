//! Chapter 3 — a `Future` set by a task, awaited, and with a done callback.
//! Port of `examples/python/03_set_future.py` (seed 001, 5.4.1 "Ejemplo de
//! Uso de un Future" and 5.4.2 "Ejemplo de Uso de un Callback"). Runs on
//! the virtual clock.
use std::time::Duration;

use bucle::Future;

/// 5.4.1: `async def set_future(fut)`.
fn set_future(fut: Future<&'static str>) {
    bucle::sleep(Duration::from_secs(1));
    fut.set_result("Resultado del Future").unwrap();
}

/// 5.4.2: `def callback(fut)`, a plain function the loop calls once the
/// future is done.
fn callback(fut: &Future<&'static str>) {
    println!("Callback: {}", fut.result().unwrap().unwrap());
}

/// 5.4.2: `async def set_future(fut)`, with the other result.
fn set_future_callback(fut: Future<&'static str>) {
    bucle::sleep(Duration::from_secs(1));
    fut.set_result("Resultado del Future con Callback").unwrap();
}

fn main() {
    // 5.4.1: asyncio.run(main())
    let lp = bucle::EventLoop::builder().virtual_time().build();
    lp.run_until_complete(|| {
        let fut = Future::new(); // loop.create_future()
        let f = fut.clone();
        bucle::spawn(move || set_future(f)); // asyncio.create_task(set_future(fut))
        let result = fut.wait().unwrap(); // result = await fut
        println!("{result}");
    });

    // 5.4.2: asyncio.run(main())
    let lp = bucle::EventLoop::builder().virtual_time().build();
    lp.run_until_complete(|| {
        let fut = Future::new();
        fut.add_done_callback(callback);
        let f = fut.clone();
        bucle::spawn(move || set_future_callback(f));
        fut.wait().unwrap(); // await fut
    });
}
