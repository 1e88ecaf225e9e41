//! Chapter 6 — an asynchronous context manager is a guard: `__aenter__`
//! is the function that makes it, `__aexit__` its destructor, and both may
//! suspend. Port of `examples/python/06_gestor_contexto.py` (seed 001,
//! 5.6.1 "Crear un Gestor de Contexto Asíncrono"). Runs on the virtual
//! clock.
use std::time::Duration;

/// Python: `class AsyncContextManager`.
struct AsyncContextManager;

impl AsyncContextManager {
    /// `__aenter__`: what `async with AsyncContextManager() as manager`
    /// runs before the block.
    fn enter() -> AsyncContextManager {
        println!("Contexto asíncrono: Entrada");
        bucle::sleep(Duration::from_secs(1));
        AsyncContextManager
    }

    fn do_something(&self) {
        println!("Contexto asíncrono: Realizando acción");
        bucle::sleep(Duration::from_secs(1));
    }
}

impl Drop for AsyncContextManager {
    /// `__aexit__`: runs when the guard goes out of scope, at the end of
    /// the block or while the task unwinds (a panic, a cancel, a timeout).
    /// It may sleep: the destructor runs on the task's own stack.
    fn drop(&mut self) {
        bucle::sleep(Duration::from_secs(1));
        println!("Contexto asíncrono: Salida");
    }
}

fn main() {
    let lp = bucle::EventLoop::builder().virtual_time().build();
    lp.run_until_complete(|| {
        // async with AsyncContextManager() as manager:
        let manager = AsyncContextManager::enter();
        manager.do_something(); // await manager.do_something()
    }); // `manager` dropped at the end of its block: __aexit__
}
