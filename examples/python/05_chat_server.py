# The seed's chat server (tutorial 001, section 5.8.2), ported by
# examples/05_chat_server.rs. One change, marked "Cambio": the address may be
# given as the first argument, HOST:PUERTO (the seed's 127.0.0.1:8888 is the
# default).
import asyncio
import sys

# Cambio: la dirección puede venir como primer argumento.
HOST, PUERTO = '127.0.0.1', 8888
if len(sys.argv) > 1:
    HOST, _, PUERTO = sys.argv[1].rpartition(':')
    HOST, PUERTO = HOST.strip('[]'), int(PUERTO)

clients = set()

async def handle_client(reader, writer):
    addr = writer.get_extra_info('peername')
    print(f"Nueva conexión: {addr}")
    clients.add(writer)
    try:
        while True:
            data = await reader.readline()
            if not data:
                break
            message = data.decode()
            print(f"Recibido de {addr}: {message.strip()}")
            for client in clients:
                if client != writer:
                    client.write(data)
                    await client.drain()
    except asyncio.IncompleteReadError:
        pass
    finally:
        print(f"Conexión cerrada: {addr}")
        clients.remove(writer)
        writer.close()
        await writer.wait_closed()

async def main():
    server = await asyncio.start_server(handle_client, HOST, PUERTO)  # Cambio: HOST, PUERTO
    addr = server.sockets[0].getsockname()
    print(f"Servidor corriendo en {addr}")

    async with server:
        await server.serve_forever()

if __name__ == "__main__":
    asyncio.run(main())
