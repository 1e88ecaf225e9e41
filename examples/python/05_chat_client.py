# The seed's chat client (tutorial 001, section 5.8.2), ported by
# examples/05_chat_client.rs. Two changes, each marked "Cambio":
# - the address may be given as the first argument, HOST:PUERTO (the seed's
#   127.0.0.1:8888 is the default);
# - at the end of the input, the seed's input() raises EOFError, which ends
#   the program with a traceback, and the close after the endless loop is
#   never reached: here EOFError ends the loop, and the connection closes.
import asyncio
import sys

# Cambio: la dirección puede venir como primer argumento.
HOST, PUERTO = '127.0.0.1', 8888
if len(sys.argv) > 1:
    HOST, _, PUERTO = sys.argv[1].rpartition(':')
    HOST, PUERTO = HOST.strip('[]'), int(PUERTO)

async def tcp_echo_client():
    reader, writer = await asyncio.open_connection(HOST, PUERTO)  # Cambio: HOST, PUERTO
    print("Conectado al servidor. Ingresa mensajes:")

    async def listen():
        while True:
            data = await reader.readline()
            if not data:
                break
            print(f"Recibido: {data.decode().strip()}")

    asyncio.create_task(listen())

    while True:
        try:
            message = await asyncio.get_event_loop().run_in_executor(None, input)
        except EOFError:  # Cambio: al final de la entrada, se cierra la conexión.
            break
        writer.write(f"{message}\n".encode())
        await writer.drain()

    writer.close()
    await writer.wait_closed()

if __name__ == "__main__":
    asyncio.run(tcp_echo_client())
