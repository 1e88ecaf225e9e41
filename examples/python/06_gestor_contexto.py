# Seed 001 ("Capítulo 5"), 5.6.1 "Crear un Gestor de Contexto Asíncrono".
import asyncio

class AsyncContextManager:
    async def __aenter__(self):
        print("Contexto asíncrono: Entrada")
        await asyncio.sleep(1)
        return self

    async def __aexit__(self, exc_type, exc, tb):
        await asyncio.sleep(1)
        print("Contexto asíncrono: Salida")

    async def do_something(self):
        print("Contexto asíncrono: Realizando acción")
        await asyncio.sleep(1)

async def main():
    async with AsyncContextManager() as manager:
        await manager.do_something()

if __name__ == "__main__":
    asyncio.run(main())
