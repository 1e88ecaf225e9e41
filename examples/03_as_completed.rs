//! Chapter 3 — `as_completed` hands results over as tasks finish; `gather`
//! in the order they were given. Port of `examples/python/03_as_completed.py`
//! (seed 000 names `asyncio.as_completed` and shows no code; the program is
//! ours). Runs on the virtual clock.
use std::time::Duration;

const PAGINAS: [(&str, u64); 3] = [("inicio", 3), ("noticias", 1), ("contacto", 2)];

/// Python: `async def descargar(pagina, segundos)`: a sleep stands for the
/// download.
fn descargar(pagina: &str, segundos: u64) -> String {
    println!("{pagina}: empieza ({segundos}s)");
    bucle::sleep(Duration::from_secs(segundos));
    format!("{pagina} ({segundos}s)")
}

fn main() {
    let lp = bucle::EventLoop::builder().virtual_time().build();
    lp.run_until_complete(|| {
        println!("== as_completed: en el orden en que terminan");
        let tareas: Vec<_> = PAGINAS
            .iter()
            .map(|&(p, s)| bucle::spawn(move || descargar(p, s)))
            .collect();
        // for siguiente in asyncio.as_completed(tareas): resultado = await siguiente
        for resultado in bucle::as_completed(tareas) {
            println!("lista: {}", resultado.unwrap());
        }

        println!("== gather: en el orden en que se pidieron");
        let tareas: Vec<_> = PAGINAS
            .iter()
            .map(|&(p, s)| bucle::spawn(move || descargar(p, s)))
            .collect();
        let resultados = bucle::gather(tareas).unwrap();
        // Printed the way Python prints a list of strings.
        let items: Vec<String> = resultados.iter().map(|r| format!("'{r}'")).collect();
        println!("[{}]", items.join(", "));
    });
}
