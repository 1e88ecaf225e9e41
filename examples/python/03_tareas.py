# Seed: "Capítulo 5: Trabajando con el Módulo asyncio", 5.3.2 Tareas.
import asyncio

async def say_after(delay, message):
    await asyncio.sleep(delay)
    print(message)

async def main():
    task1 = asyncio.create_task(say_after(1, "Tarea 1 completada"))
    task2 = asyncio.create_task(say_after(2, "Tarea 2 completada"))

    print("Tareas creadas")
    await task1
    await task2
    print("Todas las tareas completadas")

if __name__ == "__main__":
    asyncio.run(main())
