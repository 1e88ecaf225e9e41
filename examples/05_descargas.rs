//! Stage 5: the seed's concurrent downloads (tutorial 001, section 5.8.1,
//! there with aiohttp; `examples/python/05_descargas.py`): three pages
//! downloaded at once, each printing its length when it arrives.
//!
//! There is no network here, so the program starts its own small HTTP/1.1
//! server on 127.0.0.1, and the session reaches it instead of the Internet:
//!
//! - a resolver maps the seed's three host names, and only them, to
//!   127.0.0.1;
//! - each URL is fetched over plain HTTP (there is no TLS here) from the
//!   local server's port; the URL printed is the seed's;
//! - the server answers by the `Host` header, with pages of the seed's
//!   lengths (1256, 5432 and 3210 characters; the page text has an "ñ", so
//!   the bytes are a few more), after 100, 200 and 300 ms: the pages
//!   complete in the seed's order on every run, as the seed's output shows
//!   them.
//!
//! Both sides parse HTTP with the `httparse` crate and read with the
//! streams API: the head up to its blank line with `readuntil`, then a body
//! of exactly `Content-Length` bytes with `readexactly`.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use bucle::net::{ReadError, StreamReader, StreamWriter, open_connection, start_server};

/// Host -> (length of its page in characters, how long the server takes).
const PAGINAS: &[(&str, usize, Duration)] = &[
    ("www.example.com", 1256, Duration::from_millis(100)),
    ("www.python.org", 5432, Duration::from_millis(200)),
    ("www.asyncio.org", 3210, Duration::from_millis(300)),
];

/// A page of `longitud` characters: the same text as the Python original's.
fn pagina(host: &str, longitud: usize) -> String {
    let inicio = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <title>{host}</title></head>\n<body>\n<p>"
    );
    let fin = "</p>\n</body></html>\n";
    let relleno = "asyncio sin asyncio, año tras año. ";
    let hueco = longitud - inicio.chars().count() - fin.chars().count();
    let texto: String = relleno.chars().cycle().take(hueco).collect();
    inicio + &texto + fin
}

fn invalid(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// The value of header `name` (case-insensitive), if present.
fn header<'h>(headers: &[httparse::Header<'h>], name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// The `Content-Length` header, if present, as a number.
fn content_length(headers: &[httparse::Header<'_>]) -> io::Result<Option<usize>> {
    header(headers, "content-length")
        .map(|v| {
            std::str::from_utf8(v)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| invalid("bad Content-Length"))
        })
        .transpose()
}

// ---------------------------------------------------------------------------
// The local server: one task per connection, requests answered in turn
// (HTTP/1.1 keeps the connection open unless told otherwise).

fn servir(reader: StreamReader, writer: StreamWriter) -> io::Result<()> {
    loop {
        let cabecera = match reader.readuntil(b"\r\n\r\n") {
            Ok(cabecera) => cabecera,
            // The client closed the connection between requests.
            Err(ReadError::Incomplete { partial, .. }) if partial.is_empty() => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        if request.parse(&cabecera).map_err(invalid)?.is_partial() {
            return Err(invalid("incomplete request head"));
        }
        // A body, if the request has one, is read and ignored.
        if let Some(n) = content_length(request.headers)? {
            reader.readexactly(n)?;
        }
        let host = header(request.headers, "host")
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(|v| v.rsplit_once(':').map_or(v, |(host, _port)| host))
            .unwrap_or("");
        let (status, body) = match PAGINAS.iter().find(|(h, ..)| *h == host) {
            _ if request.method != Some("GET") => (
                "405 Method Not Allowed",
                "405: Method Not Allowed".to_string(),
            ),
            Some(&(host, longitud, espera)) if request.path == Some("/") => {
                bucle::sleep(espera);
                ("200 OK", pagina(host, longitud))
            }
            _ => ("404 Not Found", "404: Not Found".to_string()),
        };
        let close = header(request.headers, "connection")
            .is_some_and(|v| v.eq_ignore_ascii_case(b"close"))
            || request.version == Some(0);
        writer.write(
            format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n\
                 Content-Length: {}\r\n{}\r\n{body}",
                body.len(),
                if close { "Connection: close\r\n" } else { "" }
            )
            .as_bytes(),
        );
        writer.drain()?;
        if close {
            return Ok(());
        }
    }
}

// ---------------------------------------------------------------------------
// The session: aiohttp's `ClientSession` in miniature.

/// A response: its status and its body.
struct Response {
    status: u16,
    body: Vec<u8>,
}

impl Response {
    /// The body as text, as `await response.text()` decodes it (the pages
    /// are UTF-8).
    fn text(&self) -> io::Result<String> {
        String::from_utf8(self.body.clone()).map_err(invalid)
    }
}

/// GET over HTTP/1.1, one connection per request, with a resolver that
/// knows only the seed's host names and sends them to the local server.
struct ClientSession {
    puerto: u16,
}

impl ClientSession {
    /// The seed's host names, and only them, are 127.0.0.1.
    fn resolve(&self, host: &str) -> io::Result<SocketAddr> {
        if PAGINAS.iter().any(|(h, ..)| *h == host) {
            Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, self.puerto)))
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host}: no network here, only the pages of this example"),
            ))
        }
    }

    fn get(&self, url: &str) -> io::Result<Response> {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(|| invalid(format!("not an http(s) URL: {url}")))?;
        let (host, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
        let (reader, writer) = open_connection(self.resolve(host)?)?;
        writer.write(
            format!(
                "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        );
        writer.drain()?;

        let cabecera = reader.readuntil(b"\r\n\r\n")?;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        if response.parse(&cabecera).map_err(invalid)?.is_partial() {
            return Err(invalid("incomplete response head"));
        }
        let status = response.code.unwrap_or_default();
        let body = if let Some(n) = content_length(response.headers)? {
            reader.readexactly(n)?
        } else if header(response.headers, "transfer-encoding").is_some() {
            return Err(invalid("this small client reads no chunked bodies"));
        } else {
            reader.read_to_end()? // the body ends when the server closes
        };
        writer.close();
        Ok(Response { status, body })
    }
}

// ---------------------------------------------------------------------------
// The seed.

fn fetch(session: &ClientSession, url: &str) -> io::Result<String> {
    let response = session.get(url)?;
    if response.status != 200 {
        // aiohttp does not raise for a status either; the seed prints anyway.
        eprintln!("{url}: status {}", response.status);
    }
    let content = response.text()?;
    // `len(content)`: characters, not bytes.
    println!(
        "Descargado {url} con longitud de {} caracteres",
        content.chars().count()
    );
    Ok(content)
}

fn main() -> io::Result<()> {
    bucle::run(|| {
        let servidor = start_server(servir, "127.0.0.1:0")?;
        let urls = [
            "https://www.example.com",
            "https://www.python.org",
            "https://www.asyncio.org",
        ];
        let session = Rc::new(ClientSession {
            puerto: servidor.local_addr()?.port(),
        });
        let tasks = urls.map(|url| {
            let session = session.clone();
            bucle::spawn(move || fetch(&session, url))
        });
        for page in bucle::gather(tasks).map_err(|e| io::Error::other(e.to_string()))? {
            page?;
        }
        Ok(())
    })
}
