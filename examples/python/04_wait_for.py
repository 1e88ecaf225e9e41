# Seed: "La asíncronia mas a fondo", asyncio.wait_for; and "Capítulo 5",
# 5.9.6 Gestionar el Tiempo de Ejecución de las Tareas.
import asyncio

async def tarea_lenta():
    await asyncio.sleep(5)
    print("Tarea larga completada")

async def main():
    try:
        await asyncio.wait_for(tarea_lenta(), timeout=2)
    except asyncio.TimeoutError:
        print("La tarea tomó demasiado tiempo")

if __name__ == "__main__":
    asyncio.run(main())
