//! Chapter 1, stackful generators (`docs/01-generators.md`): exercises.

use std::cell::RefCell;
use std::rc::Rc;

use bucle::{Generator, GeneratorState, Yielder};

/// Exercise 1: Python's `range(start, stop, step)`.
fn rango(start: i64, stop: i64, step: i64) -> Generator<i64> {
    assert_ne!(step, 0, "range() arg 3 must not be zero");
    Generator::new(move |y: &Yielder<i64>, ()| {
        let mut n = start;
        while (step > 0 && n < stop) || (step < 0 && n > stop) {
            y.yield_(n);
            n += step;
        }
    })
}

#[test]
fn rango_is_pythons_range() {
    assert_eq!(rango(0, 5, 1).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    assert_eq!(rango(0, 10, 4).collect::<Vec<_>>(), [0, 4, 8]);
    assert_eq!(rango(10, 0, -3).collect::<Vec<_>>(), [10, 7, 4, 1]);
    assert_eq!(rango(3, 3, 1).count(), 0);
    assert_eq!(rango(5, 0, 1).count(), 0);
}

/// Exercise 2: sent numbers, yields their running mean; sent `None`,
/// returns how many it saw.
fn promedio() -> Generator<f64, usize, Option<f64>> {
    Generator::new(|y: &Yielder<f64, Option<f64>>, first: Option<f64>| {
        let (mut total, mut count) = (0.0, 0usize);
        // The first value comes in as the body's argument, not from a yield.
        let mut next = first;
        while let Some(x) = next {
            total += x;
            count += 1;
            next = y.yield_(total / count as f64);
        }
        count
    })
}

#[test]
fn promedio_by_send() {
    let mut p = promedio();
    assert_eq!(p.resume(Some(10.0)), GeneratorState::Yielded(10.0));
    assert_eq!(p.resume(Some(20.0)), GeneratorState::Yielded(15.0));
    assert_eq!(p.resume(Some(0.0)), GeneratorState::Yielded(10.0));
    assert_eq!(p.resume(None), GeneratorState::Complete(3));
    assert!(p.is_complete());

    // Sent `None` at once: it saw nothing.
    assert_eq!(promedio().resume(None), GeneratorState::Complete(0));
}

/// Exercise 3: a nested list.
enum Anidada {
    Num(i32),
    Lista(Vec<Anidada>),
}

/// Yields every number of `a`, in order, at any depth: a plain recursive
/// function pauses the whole stack, so no level needs `yield from`.
fn aplanar(a: Anidada) -> Generator<i32> {
    fn recorrer(a: &Anidada, y: &Yielder<i32>) {
        match a {
            Anidada::Num(n) => {
                y.yield_(*n);
            }
            Anidada::Lista(items) => {
                for item in items {
                    recorrer(item, y);
                }
            }
        }
    }
    Generator::new(move |y: &Yielder<i32>, ()| recorrer(&a, y))
}

#[test]
fn aplanar_without_yield_from() {
    use Anidada::{Lista, Num};
    let a = Lista(vec![
        Num(1),
        Lista(vec![Num(2), Lista(vec![Num(3), Lista(vec![])]), Num(4)]),
        Lista(vec![Lista(vec![Lista(vec![Num(5)])])]),
    ]);
    assert_eq!(aplanar(a).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert_eq!(aplanar(Num(7)).collect::<Vec<_>>(), [7]);
}

/// Exercise 4: the values of `sub` that `keep` accepts, and `sub`'s return
/// value. (`yield_from` would pass every value through unseen.)
fn filtro<T: 'static, R: 'static>(
    keep: impl Fn(&T) -> bool + 'static,
    mut sub: Generator<T, R>,
) -> Generator<T, R> {
    Generator::new(move |y: &Yielder<T>, ()| {
        loop {
            match sub.resume(()) {
                GeneratorState::Yielded(v) => {
                    if keep(&v) {
                        y.yield_(v);
                    }
                }
                GeneratorState::Complete(r) => return r,
            }
        }
    })
}

#[test]
fn filtro_passes_the_return_value_on() {
    let diez = Generator::new(|y: &Yielder<u32>, ()| {
        for n in 1..=10 {
            y.yield_(n);
        }
        "diez"
    });
    let mut pares = filtro(|n| n % 2 == 0, diez);
    let mut seen = Vec::new();
    let returned = loop {
        match pares.resume(()) {
            GeneratorState::Yielded(n) => seen.push(n),
            GeneratorState::Complete(r) => break r,
        }
    };
    assert_eq!(seen, [2, 4, 6, 8, 10]);
    assert_eq!(returned, "diez");
}

/// Exercise 5: records its name when dropped, like a `finally:` block.
struct Marca(&'static str, Rc<RefCell<Vec<&'static str>>>);

impl Drop for Marca {
    fn drop(&mut self) {
        self.1.borrow_mut().push(self.0);
    }
}

fn nivel(n: usize, y: &Yielder<()>, log: &Rc<RefCell<Vec<&'static str>>>) {
    const NAMES: [&str; 4] = ["cuerpo", "nivel 1", "nivel 2", "nivel 3"];
    let _marca = Marca(NAMES[n], log.clone());
    if n == 3 {
        y.yield_(());
        y.yield_(()); // never reached: dropped while paused above
    } else {
        nivel(n + 1, y, log);
    }
}

#[test]
fn drop_unwinds_innermost_first() {
    let log = Rc::new(RefCell::new(Vec::new()));

    let l = log.clone();
    let mut g = Generator::new(move |y: &Yielder<()>, ()| nivel(0, y, &l));
    assert_eq!(g.next(), Some(()));
    assert!(log.borrow().is_empty()); // paused three calls deep, nothing dropped
    drop(g);
    assert_eq!(*log.borrow(), ["nivel 3", "nivel 2", "nivel 1", "cuerpo"]);

    // Never started: only the closure (and what it captured) is dropped.
    log.borrow_mut().clear();
    let capturada = Marca("capturada", log.clone());
    let l = log.clone();
    let g = Generator::new(move |y: &Yielder<()>, ()| {
        let _capturada = capturada;
        nivel(0, y, &l);
    });
    drop(g);
    assert_eq!(*log.borrow(), ["capturada"]);
}
