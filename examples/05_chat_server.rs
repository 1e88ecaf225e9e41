//! Stage 5: the seed's chat server (tutorial 001, section 5.8.2;
//! `examples/python/05_chat_server.py`). Every connection gets a task that
//! runs `handle_client`; the writers of the connected clients live in a set,
//! and each line a client sends is relayed to all the others.
//!
//! ```text
//! cargo run --example 05_chat_server                   # 127.0.0.1:8888
//! cargo run --example 05_chat_server -- 127.0.0.1:9000
//! cargo run --example 05_chat_client                   # in other terminals
//! ```
//!
//! It prints what the Python server prints, addresses included: a peer's
//! address is written as Python prints `get_extra_info('peername')`, the
//! tuple `('127.0.0.1', 54321)`.

use std::cell::RefCell;
use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use bucle::net::{ReadError, StreamReader, StreamWriter, start_server};

/// `clients = set()`: the writers of the connected clients. A
/// `StreamWriter` compares and hashes by connection, as asyncio's writers
/// do by identity.
pub(crate) type Clients = Rc<RefCell<HashSet<StreamWriter>>>;

/// A socket address as Python prints the tuple `getpeername()` and
/// `getsockname()` return: `('127.0.0.1', 8888)`, or for IPv6
/// `('::1', 8888, 0, 0)` (host, port, flow info, scope id).
fn peername(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!("('{}', {})", a.ip(), a.port()),
        SocketAddr::V6(a) => format!(
            "('{}', {}, {}, {})",
            a.ip(),
            a.port(),
            a.flowinfo(),
            a.scope_id()
        ),
    }
}

/// The seed's `finally:` block, as a guard: however the handler ends (the
/// client left, an error, a panic or a cancellation unwinding), the
/// connection leaves the set and its writer closes.
struct Member<'a> {
    clients: &'a Clients,
    writer: &'a StreamWriter,
    addr: &'a str,
}

impl Drop for Member<'_> {
    fn drop(&mut self) {
        println!("Conexión cerrada: {}", self.addr);
        self.clients.borrow_mut().remove(self.writer);
        self.writer.close();
    }
}

fn handle_client(clients: &Clients, reader: StreamReader, writer: StreamWriter) -> io::Result<()> {
    let addr = peername(writer.peer_addr()?);
    println!("Nueva conexión: {addr}");
    clients.borrow_mut().insert(writer.clone());
    relay_until_gone(clients, &reader, &writer, &addr)
}

/// The rest of the seed's handler, its `try:` and `finally:` blocks, for a
/// client in the set. (`05_chat_guion.rs`'s server runs them too.)
pub(crate) fn relay_until_gone(
    clients: &Clients,
    reader: &StreamReader,
    writer: &StreamWriter,
    addr: &str,
) -> io::Result<()> {
    let member = Member {
        clients,
        writer,
        addr,
    };
    let relayed = relay(clients, reader, writer, addr);
    drop(member);
    // `await writer.wait_closed()`, the last line of the `finally:`.
    let closed = writer.wait_closed();
    relayed.and(closed)
}

/// The seed's `try:` block: relays each line the client sends until it
/// leaves. An error (a line that is not UTF-8, a failed `drain` of another
/// client) ends this handler, as the exception ends the Python one; the
/// loop's exception handler reports it on stderr, as asyncio logs it.
fn relay(
    clients: &Clients,
    reader: &StreamReader,
    writer: &StreamWriter,
    addr: &str,
) -> io::Result<()> {
    loop {
        let data = match reader.readline() {
            Ok(data) => data,
            // `except asyncio.IncompleteReadError: pass`. Kept to mirror the
            // seed: `readline` never returns it (at the end of the stream
            // it returns what is left, then an empty line), nor does
            // asyncio's raise it.
            Err(ReadError::Incomplete { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if data.is_empty() {
            return Ok(());
        }
        let message = std::str::from_utf8(&data)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        println!("Recibido de {addr}: {}", message.trim());
        // The seed iterates the set itself while it awaits `drain`: if a
        // client joins or leaves meanwhile, Python raises "RuntimeError: Set
        // changed size during iteration" (and here a `RefCell` borrow held
        // across `drain` would panic when that handler changes the set). So
        // this iterates a snapshot, and skips a client that left while an
        // earlier one was drained: its writer is closed, and its `drain`
        // would fail with "connection lost".
        let others: Vec<StreamWriter> = clients
            .borrow()
            .iter()
            .filter(|client| *client != writer)
            .cloned()
            .collect();
        for client in others {
            if !clients.borrow().contains(&client) {
                continue;
            }
            client.write(&data);
            // After each write, as the seed: waits while that client's
            // buffer is above the high-water mark (it is not reading), so
            // a slow reader cannot make the server buffer without bound.
            client.drain()?;
        }
    }
}

fn main() {
    // The seed listens on 127.0.0.1:8888; another address may be given.
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8888".to_string());
    let served = bucle::run(move || -> io::Result<()> {
        let clients = Clients::default();
        let server = start_server(
            move |reader, writer| handle_client(&clients, reader, writer),
            address.as_str(),
        )?;
        println!("Servidor corriendo en {}", peername(server.local_addr()?));
        server.serve_forever();
        Ok(())
    });
    if let Err(e) = served {
        eprintln!("05_chat_server: {e}");
        std::process::exit(1);
    }
}
