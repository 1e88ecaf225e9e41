# Seed: "Ejecución Asincrónica - Módulo Asyncio", Timeouts - tiempo limite.
# The seed prints datetime.now(); to make the output reproducible this
# version prints the loop time in whole seconds since the start instead,
# and catches the TimeoutError the seed leaves uncaught.
import asyncio

async def corrutina(nombre: str, duracion: int):
    loop = asyncio.get_running_loop()
    print(f"Nombre: {nombre}, inicio: t={round(loop.time() - INICIO)}s, duracion: {duracion}s")
    await asyncio.sleep(duracion)
    print(f"Nombre: {nombre}, fin: t={round(loop.time() - INICIO)}s")

async def principal():
    global INICIO
    INICIO = asyncio.get_running_loop().time()
    try:
        async with asyncio.timeout(5):  # tiempo espera máximo: 5 segundos
            tarea1 = asyncio.create_task(corrutina("A", 3))
            tarea2 = asyncio.create_task(corrutina("B", 1))
            tarea3 = asyncio.create_task(corrutina("C", 10))  # tiempo espera excesivo

            await tarea1
            await tarea2
            await tarea3
    except TimeoutError:
        loop = asyncio.get_running_loop()
        print(f"TimeoutError: t={round(loop.time() - INICIO)}s")
        print(f"C cancelada: {tarea3.cancelled()}")

asyncio.run(principal())
