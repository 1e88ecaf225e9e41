# Seed: "Capítulo 5", Ejecución Paralela de Tareas con asyncio.gather,
# plus the gather of results from "Principales Métodos de asyncio".
import asyncio

async def task1():
    await asyncio.sleep(1)
    print("Tarea 1 completada")
    return "Tarea 1 completada"

async def task2():
    await asyncio.sleep(2)
    print("Tarea 2 completada")
    return "Tarea 2 completada"

async def main():
    resultados = await asyncio.gather(task1(), task2())
    print("Todas las tareas completadas")
    print(resultados)

if __name__ == "__main__":
    asyncio.run(main())
