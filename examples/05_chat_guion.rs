//! Stage 5: a scripted chat — the seed's chat server (tutorial 001, section
//! 5.8.2) and three clients, Ana, Beto and Carla, in one program
//! (`examples/python/05_chat_guion.py`). It prints the same transcript on
//! every run, by construction rather than by luck of timing:
//!
//! - the server names each client by the name the client gives for its
//!   address, instead of printing the address (its port changes from run
//!   to run);
//! - the clients connect one at a time: the next one only once the server
//!   has counted the previous one in its set;
//! - a line is said only once everyone still connected has received the
//!   previous one, and the script prints the receipts in a fixed order
//!   (who gets a line first depends on the set's order and on timing);
//! - a client leaves by ending its half of the connection and waiting for
//!   the server to close the other: the server has logged the departure
//!   by then.
//!
//! The server is `examples/05_chat_server.rs`'s (included as a module),
//! but for the two lines of its handler marked "Guion".

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use bucle::net::{StreamReader, StreamWriter, open_connection, start_server};
use bucle::sync::Queue;
use bucle::{Future, Task};

// The seed's server, whose handler's `try:` and `finally:` blocks (the
// relay, and the departure) the handler below runs.
#[allow(dead_code)] // its `main` and `handle_client`
#[path = "05_chat_server.rs"]
mod chat_server;

use chat_server::{Clients, relay_until_gone};

/// What the script adds to the seed's server.
#[derive(Clone, Default)]
struct Guion {
    /// A client's address -> a future with its name.
    presentaciones: Rc<RefCell<HashMap<SocketAddr, Future<String>>>>,
    /// The names of the clients the server counts, in order.
    llegadas: Queue<String>,
}

impl Guion {
    fn presentacion(&self, direccion: SocketAddr) -> Future<String> {
        self.presentaciones
            .borrow_mut()
            .entry(direccion)
            .or_default()
            .clone()
    }
}

fn handle_client(
    clients: &Clients,
    guion: &Guion,
    reader: StreamReader,
    writer: StreamWriter,
) -> io::Result<()> {
    // Guion: the client's name.
    let addr = guion
        .presentacion(writer.peer_addr()?)
        .wait()
        .map_err(|e| io::Error::other(e.to_string()))?;
    println!("Nueva conexión: {addr}");
    clients.borrow_mut().insert(writer.clone());
    // Guion: the client is in the set.
    guion.llegadas.put_nowait(addr.clone()).expect("unbounded");
    relay_until_gone(clients, &reader, &writer, &addr)
}

/// One of the chat's users.
struct Cliente {
    nombre: &'static str,
    writer: StreamWriter,
    /// What the server relays to this client.
    buzon: Queue<String>,
    /// The task that fills `buzon` until the server closes the connection.
    escucha: Task<io::Result<()>>,
}

impl Cliente {
    fn conectar(nombre: &'static str, server: SocketAddr, guion: &Guion) -> io::Result<Cliente> {
        let (reader, writer) = open_connection(server)?;
        guion
            .presentacion(writer.local_addr()?)
            .set_result(nombre.to_string())
            .expect("one name per address");
        assert_eq!(guion.llegadas.get().expect("never shut down"), nombre);
        let buzon = Queue::new();
        let escucha = bucle::spawn({
            let buzon = buzon.clone();
            move || listen(&reader, &buzon)
        });
        Ok(Cliente {
            nombre,
            writer,
            buzon,
            escucha,
        })
    }

    fn decir(&self, mensaje: &str) -> io::Result<()> {
        println!("{} escribe: {mensaje}", self.nombre);
        self.writer.write(format!("{mensaje}\n").as_bytes());
        self.writer.drain()
    }

    fn recibir(&self) {
        let mensaje = self.buzon.get().expect("never shut down");
        println!("{} recibe: {mensaje}", self.nombre);
    }

    fn despedirse(self) -> io::Result<()> {
        println!("{} se despide", self.nombre);
        // The server reads the end of the stream, logs the departure and
        // closes; the listener then reads the end, and returns.
        self.writer.write_eof();
        let escuchado = self.escucha.join();
        escuchado.map_err(|e| io::Error::other(e.to_string()))??;
        self.writer.close();
        self.writer.wait_closed()
    }
}

fn listen(reader: &StreamReader, buzon: &Queue<String>) -> io::Result<()> {
    loop {
        let data = reader.readline()?;
        if data.is_empty() {
            return Ok(());
        }
        let line = std::str::from_utf8(&data)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        buzon.put(line.trim().to_string()).expect("never shut down");
    }
}

/// Who says what; `None`: leaves.
const GUION: &[(&str, Option<&str>)] = &[
    ("Ana", Some("¡Hola a todos!")),
    ("Beto", Some("Hola, Ana. ¿Qué tal?")),
    ("Carla", Some("Bienvenidos al chat.")),
    ("Ana", Some("Me voy, ¡hasta luego!")),
    ("Ana", None),
    ("Beto", Some("Adiós, Ana.")),
    ("Beto", None),
    ("Carla", None),
];

fn main() -> io::Result<()> {
    bucle::run(|| {
        let clients = Clients::default();
        let guion = Guion::default();
        let server = start_server(
            {
                let guion = guion.clone();
                move |reader, writer| handle_client(&clients, &guion, reader, writer)
            },
            "127.0.0.1:0",
        )?;
        let address = server.local_addr()?;
        println!("Servidor corriendo en {}", address.ip()); // without the port, which changes
        let servicio = bucle::spawn({
            let server = server.clone();
            move || server.serve_forever()
        });

        let mut sala = Vec::new();
        for nombre in ["Ana", "Beto", "Carla"] {
            sala.push(Cliente::conectar(nombre, address, &guion)?);
        }

        for &(nombre, mensaje) in GUION {
            let i = sala
                .iter()
                .position(|c| c.nombre == nombre)
                .expect("in the room");
            let Some(mensaje) = mensaje else {
                sala.remove(i).despedirse()?;
                continue;
            };
            sala[i].decir(mensaje)?;
            for (j, otro) in sala.iter().enumerate() {
                if j != i {
                    otro.recibir();
                }
            }
        }

        servicio.cancel(); // cancelling serve_forever closes the server
        server.wait_closed();
        println!("Servidor cerrado");
        Ok(())
    })
}
