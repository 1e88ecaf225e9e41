//! Stage 5: an echo server and three clients in one program, on one loop.
//!
//! The server accepts connections and gives each its own task, which reads
//! lines with `std::io::BufRead` — plain blocking-style code that suspends
//! only its task — and writes each back. The clients run concurrently;
//! each sends two lines and reads the echoes. The transcript is printed
//! in a fixed order (connections in accept order, then each client's
//! replies after `gather`), so it is the same on every run.

use std::io::{BufRead, BufReader, Write};

use bucle::net::{TcpListener, TcpStream};

/// Echoes every line of one connection until the client closes it;
/// returns how many lines it echoed.
fn servir(conexion: TcpStream, numero: usize) -> usize {
    let lector = BufReader::new(&conexion);
    let mut lineas = 0;
    for linea in lector.lines() {
        let linea = linea.expect("leer una línea");
        // `&TcpStream` implements `Write`: the reply suspends this task, not
        // the thread, if the socket's buffer is full.
        writeln!(&conexion, "eco {numero}: {linea}").expect("responder");
        lineas += 1;
    }
    lineas
}

fn cliente(puerto: u16, nombre: &'static str) -> Vec<String> {
    let conexion = TcpStream::connect(("127.0.0.1", puerto)).expect("conectar");
    let mut respuestas = Vec::new();
    let mut lector = BufReader::new(&conexion);
    for mensaje in ["hola", "adiós"] {
        writeln!(&conexion, "{mensaje} de {nombre}").expect("enviar");
        let mut respuesta = String::new();
        lector.read_line(&mut respuesta).expect("leer la respuesta");
        respuestas.push(respuesta.trim_end().to_string());
    }
    respuestas
}

fn main() {
    bucle::run(|| {
        let escucha = TcpListener::bind("127.0.0.1:0").expect("escuchar");
        let puerto = escucha.local_addr().expect("dirección").port();
        println!("servidor: escuchando en 127.0.0.1");
        // The server accepts three connections, one task each, and reports
        // how many lines each one echoed once its client has gone.
        let servidor = bucle::spawn(move || {
            let conexiones: Vec<_> = (1..=3)
                .map(|numero| {
                    let (conexion, _) = escucha.accept().expect("aceptar");
                    bucle::spawn(move || servir(conexion, numero))
                })
                .collect();
            bucle::gather(conexiones).expect("las conexiones terminaron bien")
        });
        let clientes =
            ["ana", "beto", "carla"].map(|nombre| bucle::spawn(move || cliente(puerto, nombre)));
        for respuestas in bucle::gather(clientes).expect("los clientes terminaron bien") {
            for r in respuestas {
                println!("cliente recibió: {r}");
            }
        }
        let lineas = servidor.join().expect("el servidor terminó bien");
        for (numero, n) in lineas.iter().enumerate() {
            println!("servidor: la conexión {} devolvió {n} líneas", numero + 1);
        }
        println!("fin");
    });
}
