//! The chat story's programs talk to each other over loopback: the seed's
//! Python server (`examples/python/05_chat_server.py`) with bucle clients
//! (`examples/05_chat_client.rs`), the bucle server with the seed's Python
//! clients, and bucle with bucle.
//!
//! Each test starts the server on a free port and waits for its
//! "Servidor corriendo" line, starts three clients one after the other
//! (each once the server has logged the previous one), then has the
//! clients take turns: a client is fed a line on stdin, and the next line
//! goes only once the server has logged it and every other client has
//! printed it. Last, each client's stdin is closed; it must end cleanly and
//! the server log its departure. Every line printed, by the server and by
//! each client, is compared with what the seed's programs print. Every wait
//! is bounded, and every child is killed and reaped however a test ends.
//!
//! The Python halves are skipped, with a note, when `python3` is missing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long a test may wait for any one line or exit.
const WAIT: Duration = Duration::from_secs(30);

/// Who runs a program: the Rust port or the Python original.
#[derive(Clone, Copy, Debug)]
enum Side {
    Bucle,
    Python,
}

/// A running child: its stdout as a stream of lines, its stderr gathered
/// by a thread. Dropping it kills and reaps the process.
struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: Option<JoinHandle<String>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn spawn(name: &str, side: Side, program: &str, address: &str) -> Proc {
        let mut cmd = match side {
            Side::Bucle => Command::new(example_binary(program)),
            Side::Python => {
                let mut cmd = Command::new("python3");
                cmd.arg(format!("examples/python/{program}.py"))
                    .env("PYTHONIOENCODING", "utf-8")
                    .env("PYTHONUNBUFFERED", "1")
                    .env("PYTHONDONTWRITEBYTECODE", "1");
                cmd
            }
        };
        let mut child = cmd
            .arg(address)
            .current_dir(root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stderr.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        });
        Proc {
            name: name.to_string(),
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
            stderr: Some(stderr),
        }
    }

    /// What it printed so far, and its stderr if it has ended: for a
    /// failure report.
    fn report(&mut self) -> String {
        let mut out = String::from("  It printed:\n");
        for line in &self.seen {
            out += &format!("    {line}\n");
        }
        if let Ok(Some(status)) = self.child.try_wait() {
            out += &format!("  and exited ({status}); its stderr:\n");
            let stderr = self.stderr.take().map(|h| h.join().unwrap_or_default());
            for line in stderr.unwrap_or_default().lines() {
                out += &format!("    {line}\n");
            }
        }
        out
    }

    /// Fails the test with `what`, and what it printed.
    fn fail(&mut self, what: String) -> ! {
        let report = self.report();
        panic!("{} {what}\n{report}", self.name)
    }

    /// The next line it prints, which must be `want` (or start with it,
    /// if `prefix`); returns the line.
    fn expect(&mut self, want: &str, prefix: bool) -> String {
        match self.lines.recv_timeout(WAIT) {
            Ok(line) => {
                self.seen.push(line.clone());
                let ok = if prefix {
                    line.starts_with(want)
                } else {
                    line == want
                };
                if !ok {
                    let dots = if prefix { "..." } else { "" };
                    self.fail(format!("printed {line:?}, expected {want:?}{dots}"));
                }
                line
            }
            Err(RecvTimeoutError::Timeout) => {
                self.fail(format!("printed no line in {WAIT:?}, expected {want:?}"))
            }
            Err(RecvTimeoutError::Disconnected) => {
                let _ = self.child.wait();
                self.fail(format!("closed its stdout, expected {want:?}"))
            }
        }
    }

    /// Feeds one line to its stdin.
    fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("writing to {}'s stdin: {e}", self.name));
    }

    /// Closes its stdin; it must then end successfully, printing nothing
    /// more on stdout and nothing on stderr.
    fn hang_up(&mut self) {
        drop(self.stdin.take());
        let start = Instant::now();
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if start.elapsed() > WAIT => {
                    self.fail(format!("still runs {WAIT:?} after the end of its stdin"))
                }
                Ok(None) => thread::sleep(Duration::from_millis(10)),
                Err(e) => panic!("waiting for {}: {e}", self.name),
            }
        };
        let more: Vec<String> = self.lines.try_iter().collect();
        self.seen.extend(more.iter().cloned());
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        assert!(
            status.success() && more.is_empty() && stderr.is_empty(),
            "{} at the end of its stdin: exited {status}, then printed {more:?}, stderr:\n{stderr}",
            self.name
        );
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Whether `python3` runs; if not, says that the test is skipped.
fn have_python(test: &str) -> bool {
    match Command::new("python3").arg("--version").output() {
        Ok(out) if out.status.success() => true,
        _ => {
            eprintln!("note: python3 is not on PATH; skipping {test}");
            false
        }
    }
}

/// The chat examples' executables, built once (`cargo test --test
/// chat_interop` does not build examples) into the target directory and
/// profile this test was built with.
fn example_binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        // This test runs from `<target>/<profile>/deps/chat_interop-HASH`.
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .ok_or("the test binary is not in <target>/<profile>/deps")?;
        let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .ok_or("CARGO_TARGET_TMPDIR is <target>/tmp")?;
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(root())
            .args(["build", "--quiet"])
            .args(["--example", "05_chat_server", "--example", "05_chat_client"])
            .arg("--target-dir")
            .arg(target);
        match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => {}
            Some("release") => {
                cmd.arg("--release");
            }
            Some(other) => {
                cmd.args(["--profile", other]);
            }
        }
        let out = cmd.output().map_err(|e| format!("cannot run cargo: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "building the chat examples failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(profile_dir.join("examples"))
    });
    match dir {
        Ok(dir) => dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX)),
        Err(e) => panic!("{e}"),
    }
}

/// A port nobody listens on now: the kernel's pick for port 0.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local_addr").port()
}

/// Who says what, in turn: a client and the lines it is fed, back to back
/// when there are several.
const SCRIPT: &[(usize, &[&str])] = &[
    (0, &["¡Hola a todos!"]),
    (1, &["hola, soy el segundo"]),
    (2, &["y yo la tercera"]),
    (0, &["  con espacios  "]),
    (1, &["uno", "dos"]),
];

fn chat(server_side: Side, client_sides: [Side; 3]) {
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let mut server = Proc::spawn(
        &format!("the {server_side:?} server"),
        server_side,
        "05_chat_server",
        &address,
    );
    server.expect(
        &format!("Servidor corriendo en ('127.0.0.1', {port})"),
        false,
    );

    // One at a time, so that the server's log has them in this order.
    let mut clients = Vec::new();
    let mut peers = Vec::new();
    for (i, side) in client_sides.into_iter().enumerate() {
        let mut client = Proc::spawn(
            &format!("{side:?} client {i}"),
            side,
            "05_chat_client",
            &address,
        );
        client.expect("Conectado al servidor. Ingresa mensajes:", false);
        let line = server.expect("Nueva conexión: ('127.0.0.1', ", true);
        peers.push(line["Nueva conexión: ".len()..].to_string());
        clients.push(client);
    }

    for &(who, lines) in SCRIPT {
        for text in lines {
            clients[who].say(text);
        }
        for text in lines {
            server.expect(
                &format!("Recibido de {}: {}", peers[who], text.trim()),
                false,
            );
            for (i, client) in clients.iter_mut().enumerate() {
                if i != who {
                    client.expect(&format!("Recibido: {}", text.trim()), false);
                }
            }
        }
    }

    for (client, peer) in clients.iter_mut().zip(&peers) {
        client.hang_up();
        server.expect(&format!("Conexión cerrada: {peer}"), false);
    }
    // The server serves forever; `Proc`'s drop kills it.
}

#[test]
fn bucle_server_with_bucle_clients() {
    chat(Side::Bucle, [Side::Bucle; 3]);
}

#[test]
fn python_server_with_bucle_clients() {
    if have_python("the Python chat server with bucle clients") {
        chat(Side::Python, [Side::Bucle; 3]);
    }
}

#[test]
fn bucle_server_with_python_clients() {
    if have_python("the bucle chat server with Python clients") {
        chat(Side::Bucle, [Side::Python; 3]);
    }
}
