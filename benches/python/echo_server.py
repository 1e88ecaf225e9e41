"""Echo servers for `cargo bench --bench echo`: CPython asyncio and uvloop peers.

Usage:
    python echo_server.py --loop asyncio|uvloop --kind protocol|streams|lines
                          [--port 0] [--cpu N]

Listens on 127.0.0.1 (port 0: one the kernel picks), prints the port on a
line of its own on stdout, then serves until its stdin closes (the bench
holds the other end, so the server also goes away if the bench dies) or it
is killed.

The two servers are the ones uvloop's own benchmark (examples/bench/
echoserver.py) measures, written the way their users write them:
- `protocol`: an `asyncio.Protocol` whose `data_received` writes the data
  straight back on its transport;
- `streams`: `asyncio.start_server`, one handler coroutine per connection
  that loops `await reader.read(..)`, `writer.write(..)`,
  `await writer.drain()`.
A third, for the line-based (streams) echo workload:
- `lines`: `asyncio.start_server`, one handler coroutine per connection
  that loops `await reader.readline()`, `writer.write(line)`,
  `await writer.drain()`.
asyncio (and uvloop) set TCP_NODELAY on every TCP transport.
"""

import argparse
import asyncio
import os
import sys
import threading

READ_SIZE = 64 * 1024


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        self.transport = None

    def data_received(self, data):
        self.transport.write(data)


async def echo_streams(reader, writer):
    try:
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def echo_lines(reader, writer):
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            writer.write(line)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def serve(kind, port):
    loop = asyncio.get_running_loop()
    if kind == "protocol":
        server = await loop.create_server(EchoProtocol, "127.0.0.1", port)
    elif kind == "lines":
        server = await asyncio.start_server(echo_lines, "127.0.0.1", port)
    else:
        server = await asyncio.start_server(echo_streams, "127.0.0.1", port)
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    async with server:
        await server.serve_forever()


def exit_when_stdin_closes():
    try:
        sys.stdin.buffer.read()
    finally:
        os._exit(0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--kind", choices=["protocol", "streams", "lines"], default="protocol")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cpu", type=int, default=None, help="pin the process to this CPU")
    args = parser.parse_args()

    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()

    if args.loop == "uvloop":
        import uvloop  # an ImportError here tells the bench uvloop is missing

        uvloop.run(serve(args.kind, args.port))
    else:
        asyncio.run(serve(args.kind, args.port))


if __name__ == "__main__":
    main()
