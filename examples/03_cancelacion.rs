//! Stage 3 — cancellation unwinds the task from its suspension point: the
//! `finally` block is a destructor. Port of
//! `examples/python/03_cancelacion.py`. Runs on the virtual clock.
use std::time::Duration;

/// The `finally:` clause: runs however the coroutine ends.
struct Limpieza(&'static str);

impl Drop for Limpieza {
    fn drop(&mut self) {
        println!("Nombre: {}, limpieza (finally)", self.0);
    }
}

fn corrutina(nombre: &'static str, duracion: u64) -> impl FnOnce() {
    move || {
        println!("Nombre: {nombre}, inicio, duracion: {duracion}s");
        let _finally = Limpieza(nombre);
        bucle::sleep(Duration::from_secs(duracion));
        println!("Nombre: {nombre}, fin");
    }
}

fn main() {
    let lp = bucle::EventLoop::builder().virtual_time().build();
    lp.run_until_complete(|| {
        let tarea1 = bucle::spawn(corrutina("A", 3));
        let tarea2 = bucle::spawn(corrutina("B", 1));
        bucle::sleep(Duration::from_secs(2));
        tarea1.cancel();
        let a = tarea1.as_any();
        if let Err(bucle::JoinError::Cancelled) = tarea1.join() {
            println!("Tarea A cancelada: {}", python_bool(a.is_cancelled()));
        }
        let b = tarea2.as_any();
        tarea2.join().unwrap();
        println!("Tarea B cancelada: {}", python_bool(b.is_cancelled()));
    });
}

fn python_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}
