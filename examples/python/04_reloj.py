# A clock that ticks while other tasks work: the seeds' point that
# `await asyncio.sleep` suspends only the current coroutine.
import asyncio

async def reloj(parar):
    segundos = 0
    while not parar.done():
        print(f"tic {segundos}s")
        await asyncio.sleep(1)
        segundos += 1

async def trabajo(nombre, duracion):
    print(f"{nombre}: empieza ({duracion}s)")
    await asyncio.sleep(duracion)
    print(f"{nombre}: termina")

async def main():
    loop = asyncio.get_running_loop()
    parar = loop.create_future()
    tic = asyncio.create_task(reloj(parar))
    await asyncio.gather(trabajo("descarga", 2.5), trabajo("cálculo", 1.5))
    parar.set_result(None)
    await tic
    print("fin")

asyncio.run(main())
