# Seed 001 ("Capítulo 5: Trabajando con el Módulo asyncio"), 5.3.1
# "Corrutinas", "Ejemplo de una Corrutina".
import asyncio

async def say_hello():
    print("Hola")
    await asyncio.sleep(1)
    print("Mundo")

async def main():
    await say_hello()

if __name__ == "__main__":
    asyncio.run(main())
