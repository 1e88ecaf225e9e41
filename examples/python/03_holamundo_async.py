# The seeds' hello-world programs, one after the other, each on its own
# asyncio.run. Their coroutines are all called `main`; here they are
# renamed so that the four programs fit in one file.
#
# - Seed 000 ("La asíncronia mas a fondo"), Ejemplo básico 1: a Jupyter
#   cell that ends in `await main()`. A script has no top-level await, so
#   it runs here with asyncio.run(main()), as the seed's next program does.
# - Seed 000, hola_asyncio.py, and "Principales Métodos de asyncio" 1 (the
#   same program): hola_asyncio.py forgets `import asyncio` and would stop
#   with NameError: name 'asyncio' is not defined.
# - Seed 001 ("Capítulo 5"), 5.9.1 "Usar asyncio.run para Ejecutar
#   Corrutinas".
# - Seed 004 ("Python asíncrono"), src/15/holamundo_async.py.
import asyncio

# Seed 000, Ejemplo básico 1
async def main_hola_mundo():
    print("¡Hola, mundo asincrónico!")

# Seed 000, hola_asyncio.py
async def main_hola_asyncio():
    print("Hola asyncio!")

# Seed 001, 5.9.1
async def main_corrutina_principal():
    print("Ejecutando la corrutina principal")

# Seed 004, src/15/holamundo_async.py
async def main_holamundo_async():
    await asyncio.sleep(1)
    print('Hola, Mundo.')

if __name__ == "__main__":
    asyncio.run(main_hola_mundo())
    asyncio.run(main_hola_asyncio())
    asyncio.run(main_corrutina_principal())
    asyncio.run(main_holamundo_async())
