# Seed: "Ejecución Asincrónica - Módulo Asyncio", Tareas: "Las tareas se
# pueden cancelar con el metodo cancel(). Al interrumpirse la tarea se
# elevará un error del tipo CancelledError ... se interrumpirá al llegar al
# próximo await."
import asyncio

async def corrutina(nombre, duracion):
    print(f"Nombre: {nombre}, inicio, duracion: {duracion}s")
    try:
        await asyncio.sleep(duracion)
        print(f"Nombre: {nombre}, fin")
    finally:
        print(f"Nombre: {nombre}, limpieza (finally)")

async def principal():
    tarea1 = asyncio.create_task(corrutina("A", 3))
    tarea2 = asyncio.create_task(corrutina("B", 1))
    await asyncio.sleep(2)
    tarea1.cancel()
    try:
        await tarea1
    except asyncio.CancelledError:
        print("Tarea A cancelada:", tarea1.cancelled())
    await tarea2
    print("Tarea B cancelada:", tarea2.cancelled())

asyncio.run(principal())
