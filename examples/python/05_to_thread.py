# The seed's multithreading stories (tutorial 002, "Multithreading"):
# `to_thread`, `run_in_executor`, and both inside `gather`. The seed prints
# `datetime.now()`; this port prints the seconds since the program started,
# rounded, so that the output can be compared line for line. (The seed's
# gather story uses a `bucle` variable it never defines in that coroutine;
# here it is the running loop.) Two threads printing at once can interleave
# one line's text with the other's newline, so `rutina` prints under a lock.
import asyncio
import threading
import time

INICIO = time.monotonic()
CANDADO = threading.Lock()

def decir(texto):
    with CANDADO:
        print(texto)

def ahora():
    return f"{time.monotonic() - INICIO:.0f}s"

def rutina(nombre: str, duracion: int = 4):
    decir(f"Nombre: {nombre}, inicio: {ahora()}, duracion: {duracion}s")
    time.sleep(duracion)      # bloquea la ejecucion concurrente
    decir(f"Nombre: {nombre}, fin: {ahora()}")
    return duracion

async def principal_to_thread():
    resultado = await asyncio.to_thread(rutina, nombre="Y", duracion=2)
    print(resultado)    # '2'

async def principal_run_in_executor():
    bucle = asyncio.get_event_loop()    # bucle actual
    resultado = await bucle.run_in_executor(None, rutina, "X", 3)
    print(resultado)    # '3'

async def principal_gather():
    bucle = asyncio.get_running_loop()
    resultado = await asyncio.gather(
        bucle.run_in_executor(None, rutina, "X", 3),
        asyncio.to_thread(rutina, nombre="Y", duracion=2)
        )
    print(resultado)        # '[3,2]'

asyncio.run(principal_to_thread())
asyncio.run(principal_run_in_executor())
asyncio.run(principal_gather())
