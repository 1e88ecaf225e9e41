# Seed: "La asíncronia mas a fondo", Ejemplo básico 2.
import asyncio

async def tarea1_di_hola():
    print("Iniciando Primera tarea...")
    await asyncio.sleep(2)
    print("¡Hola, mundo asincrónico!")

async def tarea2_haz_otra_cosa():
    print("Iniciando otra tarea...")
    await asyncio.sleep(1)
    print("¡Terminé otra tarea!")

async def main():
    await asyncio.gather(tarea1_di_hola(), tarea2_haz_otra_cosa())

if __name__ == "__main__":
    asyncio.run(main())
