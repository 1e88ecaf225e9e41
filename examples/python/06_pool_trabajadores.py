# A worker pool: the seeds recommend Queue.task_done() and Queue.join()
# ("Tambien es conveniente utilizar el task_done() y el join()").
import asyncio

async def trabajador(nombre, cola):
    while True:
        segundos = await cola.get()
        await asyncio.sleep(segundos)
        print(f"{nombre} terminó un trabajo de {segundos}s")
        cola.task_done()

async def main():
    cola = asyncio.Queue()
    for segundos in [3, 1, 2, 1, 2]:
        cola.put_nowait(segundos)
    trabajadores = [asyncio.create_task(trabajador(f"trabajador-{i}", cola)) for i in range(3)]
    await cola.join()
    print("Todos los trabajos terminados")
    for t in trabajadores:
        t.cancel()
    resultados = await asyncio.gather(*trabajadores, return_exceptions=True)
    canceladas = sum(isinstance(r, asyncio.CancelledError) for r in resultados)
    print(f"{canceladas} trabajadores cancelados")

asyncio.run(main())
