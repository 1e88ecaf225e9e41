//! Stage 5: the seed's chat client (tutorial 001, section 5.8.2;
//! `examples/python/05_chat_client.py`). It connects to the chat server
//! (`examples/05_chat_server.rs`), prints every line the server relays
//! from the other clients, and sends each line typed on stdin.
//!
//! ```text
//! cargo run --example 05_chat_client                   # 127.0.0.1:8888
//! cargo run --example 05_chat_client -- 127.0.0.1:9000
//! ```
//!
//! Reading stdin blocks, so it runs on a worker thread (`bucle::to_thread`,
//! the seed's `run_in_executor(None, input)`) while the listener task
//! prints what arrives.
//!
//! At the end of stdin (Ctrl-D, or the end of a piped file) it closes the
//! connection and ends. The seed does not: its `input()` raises `EOFError`,
//! which ends the program with a traceback, and the `close` after its
//! endless loop is never reached. The Python original here has the minimal
//! fix (`except EOFError: break`), and this port does the same.

use std::io;

use bucle::net::{StreamReader, open_connection};

/// Python's `input()`: one line of stdin without its newline; `None` at
/// the end of stdin, where `input()` raises `EOFError`.
fn input() -> io::Result<Option<String>> {
    let mut line = String::new();
    if io::stdin().read_line(&mut line)? == 0 {
        return Ok(None);
    }
    if line.ends_with('\n') {
        line.pop();
    }
    Ok(Some(line))
}

/// The seed's `listen()`: prints each line the server relays, until the
/// server closes the connection.
fn listen(reader: &StreamReader) -> io::Result<()> {
    loop {
        let data = reader.readline()?;
        if data.is_empty() {
            return Ok(());
        }
        let line = std::str::from_utf8(&data)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        println!("Recibido: {}", line.trim());
    }
}

fn tcp_echo_client(address: &str) -> io::Result<()> {
    let (reader, writer) = open_connection(address)?;
    println!("Conectado al servidor. Ingresa mensajes:");

    // `asyncio.create_task(listen())`: dropping the handle detaches the
    // task. An error in it is printed (asyncio logs "Task exception was
    // never retrieved").
    bucle::spawn(move || {
        if let Err(e) = listen(&reader) {
            eprintln!("listen: {e}");
        }
    });

    // The fix: the loop ends at the end of stdin.
    while let Some(message) = bucle::to_thread(input)? {
        writer.write(format!("{message}\n").as_bytes());
        writer.drain()?;
    }

    writer.close();
    writer.wait_closed()
}

fn main() {
    // The seed connects to 127.0.0.1:8888; another address may be given.
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8888".to_string());
    if let Err(e) = bucle::run(move || tcp_echo_client(&address)) {
        eprintln!("05_chat_client: {e}");
        std::process::exit(1);
    }
}
