# Seed 003 ("Asyncio"), "Ejecucion de los awaitables": the `main` that
# awaits leerTwitter() and leerFacebook() one after the other (Secuencial),
# the one that makes them tasks first (CONCURRENCIA), and the case the seed
# tells in words only: the tasks created and never awaited ("sin el [await]
# solo se ejecutan la primera accion de cada tarea y el Event Loop ...
# termina finalizando el programa"). The three mains get a suffix each so
# that they fit in one file, and a line before each says which one runs.
#
# The seed does not show leerTwitter and leerFacebook (they are in its
# genTOasyncio.py, not in the text). Here they are chapter 2's generators
# (02_generador_y_corutina.py) made coroutines: each `yield` becomes
# `await asyncio.sleep(0)`, which lets the other tasks run.
import asyncio

async def leerTwitter():
    print("leerTwitter: conectando")
    await asyncio.sleep(0)
    for n in range(1, 4):
        print(f"leerTwitter: tweet {n}")
        await asyncio.sleep(0)
    print("leerTwitter: listo")

async def leerFacebook():
    print("leerFacebook: conectando")
    await asyncio.sleep(0)
    for n in range(1, 3):
        print(f"leerFacebook: post {n}")
        await asyncio.sleep(0)
    print("leerFacebook: listo")

# Secuencial
async def main_secuencial():
    await leerTwitter()
    await leerFacebook()

# CONCURRENCIA
async def main_concurrente():
    task1 = asyncio.create_task(leerTwitter())
    task2 = asyncio.create_task(leerFacebook())

    await task1
    await task2

# CONCURRENCIA without the awaits
async def main_sin_await():
    task1 = asyncio.create_task(leerTwitter())
    task2 = asyncio.create_task(leerFacebook())

print("== Secuencial: await leerTwitter(), luego await leerFacebook()")
asyncio.run(main_secuencial())
print("== Concurrente: create_task las dos, luego await task1 y task2")
asyncio.run(main_concurrente())
print("== Sin await: create_task las dos y main termina")
asyncio.run(main_sin_await())
