# /// script
# dependencies = ["aiohttp"]
# ///
#
# The seed's concurrent downloads with aiohttp (tutorial 001, section 5.8.1),
# ported by examples/05_descargas.rs. There is no network here, so the
# program starts its own small web server on 127.0.0.1 (aiohttp.web) that
# serves the three pages, and the session reaches it instead of the
# Internet:
# - a resolver maps the seed's three host names, and only them, to
#   127.0.0.1;
# - each URL is fetched over plain HTTP (there is no TLS here) from the
#   local server's port; the URL printed is the seed's;
# - the server answers by the Host header, with pages of the seed's lengths
#   (1256, 5432 and 3210 characters; the page text has an "ñ", so the bytes
#   are a few more), after 0.1 s, 0.2 s and 0.3 s: the pages complete in
#   the seed's order on every run, as the seed's output shows them.
# fetch() and the URLs are the seed's; main() starts the local server and
# opens a SesionLocal where the seed opens an aiohttp.ClientSession.
# Needs aiohttp (pip install aiohttp).
import asyncio
import socket
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver

# Host -> (length of its page in characters, seconds the server takes).
PAGINAS = {
    'www.example.com': (1256, 0.1),
    'www.python.org': (5432, 0.2),
    'www.asyncio.org': (3210, 0.3),
}

def pagina(host, longitud):
    """A page of `longitud` characters: the same text as the Rust port's."""
    inicio = (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
              f'<title>{host}</title></head>\n<body>\n<p>')
    fin = '</p>\n</body></html>\n'
    relleno = 'asyncio sin asyncio, año tras año. '
    hueco = longitud - len(inicio) - len(fin)
    return inicio + (relleno * (hueco // len(relleno) + 1))[:hueco] + fin

# --- the local server -------------------------------------------------------

async def responder(request):
    host = request.headers['Host'].rsplit(':', 1)[0]
    if host not in PAGINAS:
        raise web.HTTPNotFound()
    longitud, espera = PAGINAS[host]
    await asyncio.sleep(espera)
    return web.Response(text=pagina(host, longitud), content_type='text/html')

async def servir():
    app = web.Application()
    app.router.add_get('/', responder)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, '127.0.0.1', 0).start()
    return runner

# --- the session --------------------------------------------------------------

class Resolutor(AbstractResolver):
    """The seed's host names, and only them, are 127.0.0.1."""
    async def resolve(self, host, port=0, family=socket.AF_INET):
        if host not in PAGINAS:
            raise OSError(f'{host}: no network here, only the pages of this example')
        return [{'hostname': host, 'host': '127.0.0.1', 'port': port,
                 'family': socket.AF_INET, 'proto': 0, 'flags': socket.AI_NUMERICHOST}]

    async def close(self):
        pass

class SesionLocal:
    """An aiohttp.ClientSession whose get(url) goes to the local server."""
    def __init__(self, puerto):
        self.puerto = puerto
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=Resolutor()))

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.session.close()

    def get(self, url):
        host = urlsplit(url).hostname
        return self.session.get(f'http://{host}:{self.puerto}/')

# --- the seed -------------------------------------------------------------------

async def fetch(session, url):
    async with session.get(url) as response:
        content = await response.text()
        print(f"Descargado {url} con longitud de {len(content)} caracteres")
        return content

async def main():
    servidor = await servir()
    _, puerto = servidor.addresses[0]
    urls = [
        'https://www.example.com',
        'https://www.python.org',
        'https://www.asyncio.org'
    ]
    async with SesionLocal(puerto) as session:
        tasks = [fetch(session, url) for url in urls]
        await asyncio.gather(*tasks)
    await servidor.cleanup()

if __name__ == "__main__":
    asyncio.run(main())
