//! Chapter 2, the round-robin scheduler (`docs/02-round-robin.md`):
//! exercises.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use bucle::{RoundRobin, Yielder};

type Log = Rc<RefCell<Vec<String>>>;

/// Exercise 1: a task that yields `n` times needs `n + 1` steps (the last
/// one runs it to its end).
fn pasos(yields: &[u32]) -> u64 {
    yields.iter().map(|&n| u64::from(n) + 1).sum()
}

#[test]
fn steps_are_yields_plus_one() {
    let cases: [&[u32]; 4] = [&[4, 3], &[0, 2, 5], &[], &[1]];
    for yields in cases {
        let mut rr = RoundRobin::new();
        for &n in yields {
            rr.spawn_fn(move |y| {
                for _ in 0..n {
                    y.yield_(());
                }
            });
        }
        assert_eq!(rr.run(), pasos(yields), "tasks yielding {yields:?} times");
    }
    // The story's leerTwitter (4 yields) and leerFacebook (3): nine steps.
    assert_eq!(pasos(&[4, 3]), 9);
}

/// Exercise 2: gives up `n` turns on behalf of whichever task calls it.
fn esperar_turnos(y: &Yielder<()>, n: u32) {
    for _ in 0..n {
        y.yield_(());
    }
}

#[test]
fn waiting_by_turns() {
    let log: Log = Rc::default();
    let mut rr = RoundRobin::new();
    let l = log.clone();
    rr.spawn_fn(move |y| {
        for turno in 1..=3 {
            l.borrow_mut().push(format!("a: turno {turno}"));
            if turno < 3 {
                y.yield_(());
            }
        }
    });
    let l = log.clone();
    rr.spawn_fn(move |y| {
        esperar_turnos(y, 3);
        l.borrow_mut().push("b: empiezo".to_string());
    });
    rr.run();
    assert_eq!(
        *log.borrow(),
        ["a: turno 1", "a: turno 2", "a: turno 3", "b: empiezo"]
    );
}

#[test]
fn polling_wastes_turns() {
    let valor = Rc::new(Cell::new(None::<u32>));
    let desperdiciados = Rc::new(Cell::new(0));
    let mut rr = RoundRobin::new();

    // Takes five turns to compute its result.
    let v = valor.clone();
    rr.spawn_fn(move |y| {
        for _ in 1..5 {
            y.yield_(());
        }
        v.set(Some(42));
    });
    // Exercise 3: checks, and yields, until the value is there.
    let (v, d) = (valor.clone(), desperdiciados.clone());
    let recibido = Rc::new(Cell::new(None));
    let r = recibido.clone();
    rr.spawn_fn(move |y| {
        loop {
            if let Some(x) = v.get() {
                r.set(Some(x));
                return;
            }
            d.set(d.get() + 1); // a turn spent looking
            y.yield_(());
        }
    });
    rr.run();
    assert_eq!(recibido.get(), Some(42));
    // One wasted turn for each of the producer's four yields. Chapter 3's
    // consumer would park instead: zero.
    assert_eq!(desperdiciados.get(), 4);
}

/// What an isolated task ended with: `None` until it ends.
type Resultado = Rc<RefCell<Option<Result<(), String>>>>;

/// Exercise 4: spawns `body` so that its panic is caught inside the task and
/// kept as its result; `run` never sees it.
fn spawn_aislado(rr: &RoundRobin, body: impl FnOnce(&Yielder<()>) + 'static) -> Resultado {
    let slot: Resultado = Rc::default();
    let s = slot.clone();
    rr.spawn_fn(move |y| {
        let outcome = match panic::catch_unwind(AssertUnwindSafe(|| body(y))) {
            Ok(()) => Ok(()),
            Err(payload) => {
                let msg = match payload.downcast_ref::<&str>() {
                    Some(s) => Some(s.to_string()),
                    None => payload.downcast_ref::<String>().cloned(),
                };
                match msg {
                    Some(msg) => Err(msg),
                    // Not a panic of the body's: the generator's own unwind,
                    // because it is being dropped while paused. Let it go on.
                    None => panic::resume_unwind(payload),
                }
            }
        };
        *s.borrow_mut() = Some(outcome);
    });
    slot
}

#[test]
fn a_panic_becomes_a_result() {
    let mut rr = RoundRobin::new();
    let fallida = spawn_aislado(&rr, |y| {
        y.yield_(());
        panic!("la tarea fallo");
    });
    let sana = spawn_aislado(&rr, |y| {
        for _ in 0..3 {
            y.yield_(());
        }
    });
    rr.run(); // no panic comes out
    assert_eq!(*fallida.borrow(), Some(Err("la tarea fallo".to_string())));
    assert_eq!(*sana.borrow(), Some(Ok(())));

    // A paused isolated task dropped with its scheduler still unwinds (its
    // destructors run) and records nothing.
    struct Limpieza(Rc<Cell<bool>>);
    impl Drop for Limpieza {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let limpio = Rc::new(Cell::new(false));
    let mut rr = RoundRobin::new();
    let l = limpio.clone();
    let pausada = spawn_aislado(&rr, move |y| {
        let _limpieza = Limpieza(l);
        loop {
            y.yield_(());
        }
    });
    assert!(rr.step());
    drop(rr);
    assert!(limpio.get());
    assert_eq!(*pausada.borrow(), None);
}
