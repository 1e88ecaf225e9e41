# Seed 001 ("Capítulo 5: Trabajando con el Módulo asyncio"), 5.2.2 "Crear y
# Ejecutar un Bucle de Eventos", "Usando asyncio.run (Python 3.7+)".
import asyncio

async def main():
    print("¡Hola desde asyncio.run!")
    await asyncio.sleep(1)
    print("¡Adiós desde asyncio.run!")

if __name__ == "__main__":
    asyncio.run(main())
