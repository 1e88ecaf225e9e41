# A scripted chat: the seed's chat server (tutorial 001, section 5.8.2) and
# three clients, Ana, Beto and Carla, in one program, ported by
# examples/05_chat_guion.rs. The transcript is the same on every run, by
# construction, not by luck of timing:
# - the server names each client by the name the client gives for its
#   address (the addresses' ports change from run to run);
# - the clients connect one at a time: the next one only once the server has
#   counted the previous one in its set;
# - a line is said only once everyone still connected has received the
#   previous one, and each receipt is printed by the script, in a fixed
#   order (who gets a line first depends on the set's order and on timing);
# - a client leaves by ending its half of the connection and waiting for
#   the server to close the other: the server has logged the departure by
#   then.
# The server is the seed's, but for the two lines of its handler marked
# "Guion" (and the two tables they use, marked too).
import asyncio

clients = set()

# Guion: la dirección de cada cliente -> un futuro con su nombre.
presentaciones = {}
# Guion: los nombres de los clientes que el servidor ya cuenta, en orden.
llegadas = asyncio.Queue()

def presentacion(direccion):
    if direccion not in presentaciones:
        presentaciones[direccion] = asyncio.get_running_loop().create_future()
    return presentaciones[direccion]

async def handle_client(reader, writer):
    addr = await presentacion(writer.get_extra_info('peername'))  # Guion: el nombre
    print(f"Nueva conexión: {addr}")
    clients.add(writer)
    llegadas.put_nowait(addr)  # Guion: el cliente ya está en el conjunto
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

class Cliente:
    def __init__(self, nombre):
        self.nombre = nombre
        self.buzon = asyncio.Queue()  # lo que el servidor le reenvía

    async def conectar(self, host, puerto):
        self.reader, self.writer = await asyncio.open_connection(host, puerto)
        presentacion(self.writer.get_extra_info('sockname')).set_result(self.nombre)
        assert await llegadas.get() == self.nombre
        self.escucha = asyncio.create_task(self.listen())

    async def listen(self):
        while True:
            data = await self.reader.readline()
            if not data:
                break
            await self.buzon.put(data.decode().strip())

    async def decir(self, mensaje):
        print(f"{self.nombre} escribe: {mensaje}")
        self.writer.write(f"{mensaje}\n".encode())
        await self.writer.drain()

    async def recibir(self):
        print(f"{self.nombre} recibe: {await self.buzon.get()}")

    async def despedirse(self):
        print(f"{self.nombre} se despide")
        self.writer.write_eof()  # el servidor lee el final de la conexión...
        await self.escucha       # ...la cierra, y aquí se lee el final
        self.writer.close()
        await self.writer.wait_closed()

# Quién dice qué; None: se despide.
GUION = [
    ("Ana", "¡Hola a todos!"),
    ("Beto", "Hola, Ana. ¿Qué tal?"),
    ("Carla", "Bienvenidos al chat."),
    ("Ana", "Me voy, ¡hasta luego!"),
    ("Ana", None),
    ("Beto", "Adiós, Ana."),
    ("Beto", None),
    ("Carla", None),
]

async def main():
    server = await asyncio.start_server(handle_client, '127.0.0.1', 0)
    host, puerto = server.sockets[0].getsockname()
    print(f"Servidor corriendo en {host}")  # sin el puerto, que cambia
    servicio = asyncio.create_task(server.serve_forever())

    sala = {}
    for nombre in ["Ana", "Beto", "Carla"]:
        sala[nombre] = Cliente(nombre)
        await sala[nombre].conectar(host, puerto)

    for nombre, mensaje in GUION:
        quien = sala[nombre]
        if mensaje is None:
            await quien.despedirse()
            del sala[nombre]
            continue
        await quien.decir(mensaje)
        for otro in sala.values():
            if otro is not quien:
                await otro.recibir()

    servicio.cancel()  # cancelar serve_forever cierra el servidor
    await server.wait_closed()
    print("Servidor cerrado")

if __name__ == "__main__":
    asyncio.run(main())
