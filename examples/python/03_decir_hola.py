# Seed 000 ("La asíncronia mas a fondo"), "Principales Métodos de asyncio",
# 4. asyncio.create_task(coroutine). The seed's snippet continues the
# earlier ones and has no `import asyncio` of its own; it is added here.
import asyncio

async def decir_hola():
    await asyncio.sleep(1)
    print("Hola!")

async def main():
    tarea = asyncio.create_task(decir_hola())
    print("Tarea creada")
    await tarea

asyncio.run(main())
