//! Chapter 1's story: `generadores.py` ported to `bucle::Generator`.
//!
//! A generator is not a list: calling the function that makes one runs
//! nothing, `next` runs the body up to its next `yield_`, the prints between
//! the yields show where it pauses, `resume(v)` is Python's `send(v)`, and
//! dropping a half-run generator runs its destructors like `close()` runs a
//! `finally`.
//!
//! Run it with `cargo run --example 01_generators`; it prints exactly what
//! `python3 examples/python/01_generadores.py` prints (the expected output is
//! in `docs/01-generators.md`, and `tests/examples.rs` checks both).

use bucle::{Generator, GeneratorState, Yielder};

/// Python: `def numeros_en_lista(): ... return [1, 2, 3]`.
fn numeros_en_lista() -> Vec<u32> {
    println!("  numeros_en_lista: calculo todo de una vez");
    vec![1, 2, 3]
}

/// Python: `def numeros(): ... yield 1 ... yield 2 ... yield 3`.
///
/// Building the generator runs none of the body: the prints happen only
/// when somebody resumes it.
fn numeros() -> Generator<u32> {
    Generator::new(|y: &Yielder<u32>, ()| {
        println!("  numeros: arranco");
        y.yield_(1);
        println!("  numeros: sigo despues del 1");
        y.yield_(2);
        println!("  numeros: sigo despues del 2");
        y.yield_(3);
        println!("  numeros: no hay mas, termino");
    })
}

/// Python: `valor = yield total` in an endless loop.
///
/// `Generator<yields, returns, receives>`: each `resume(v)` sends `v` in as
/// the return value of the `yield_` the body is paused in. The very first
/// `resume` starts the body and its input arrives as the body's second
/// argument (Python insists that the first `send` is `None`; here it is
/// simply ignored).
fn acumulador() -> Generator<i32, (), i32> {
    Generator::new(|y: &Yielder<i32, i32>, _arranque: i32| {
        let mut total = 0;
        loop {
            let valor = y.yield_(total);
            println!("  acumulador: recibi {valor}");
            total += valor;
        }
    })
}

/// The `finally` of Python's `con_limpieza`: a destructor.
struct Recurso;

impl Drop for Recurso {
    fn drop(&mut self) {
        println!("  con_limpieza: finally, libero el recurso");
    }
}

/// Python: `try: yield "abierto"; yield "nunca llega" finally: ...`.
fn con_limpieza() -> Generator<&'static str> {
    Generator::new(|y: &Yielder<&'static str>, ()| {
        let _recurso = Recurso;
        y.yield_("abierto");
        y.yield_("nunca llega");
    })
}

fn main() {
    println!("1. Una funcion que devuelve una lista trabaja toda al llamarla");
    let lista = numeros_en_lista();
    println!("  lista = {lista:?}");

    println!("2. Llamar a un generador no ejecuta nada");
    let mut generador = numeros();
    assert!(!generador.is_started());
    println!("  generador = numeros() -> todavia no se imprimio nada");

    println!("3. next(generador) corre el cuerpo hasta el proximo yield");
    // `Generator<u32>` is an `Iterator<Item = u32>`: `next` is Python's
    // `next(generador)`, and `None` is its `StopIteration`.
    let n = generador.next().expect("first yield");
    println!("  next -> {n}");
    println!("  (el programa principal hace otra cosa entre dos next)");
    let n = generador.next().expect("second yield");
    println!("  next -> {n}");
    let n = generador.next().expect("third yield");
    println!("  next -> {n}");
    if generador.next().is_none() {
        println!("  next -> StopIteration: el generador se agoto");
    }

    println!("4. Un for llama a next por nosotros y para solo");
    for n in numeros() {
        println!("  for -> {n}");
    }

    println!("5. send: el generador tambien recibe valores");
    let mut acc = acumulador();
    // `resume` returns `GeneratorState::Yielded(v)` while the body is
    // paused, and `GeneratorState::Complete(r)` once it returns.
    let arranco = acc.resume(0).yielded().expect("acumulador never returns");
    println!("  arranco -> {arranco}");
    let GeneratorState::Yielded(total) = acc.resume(10) else {
        unreachable!("acumulador never returns")
    };
    println!("  send(10) -> {total}");
    let total = acc.resume(5).yielded().expect("acumulador never returns");
    println!("  send(5) -> {total}");

    println!("6. Cerrar un generador a medias corre su finally");
    let mut recurso = con_limpieza();
    let abierto = recurso.next().expect("first yield");
    println!("  next -> {abierto}");
    // Python's `recurso.close()`: dropping a paused generator unwinds its
    // stack from the `yield_` it is paused in, so `Recurso::drop` runs.
    drop(recurso);
    println!("  cerrado");
    // `acc` is still paused inside its endless loop; it is dropped (and
    // unwound) here, silently, as CPython discards it at exit.
}
