# Seed 001 ("Capítulo 5"), 5.9.2 "Evitar Llamadas Bloqueantes": the
# "Incorrecto" program, then the "Correcto" one. Both call their main
# coroutine `main`; here they have a suffix each so that both fit in one
# file.
import asyncio
import time

# Incorrecto
async def blocking_task():
    print("Iniciando tarea bloqueante")
    time.sleep(2)  # Llamada bloqueante
    print("Tarea bloqueante completada")

async def main_incorrecto():
    await blocking_task()

# Correcto
async def non_blocking_task():
    print("Iniciando tarea no bloqueante")
    await asyncio.sleep(2)  # Sleep asíncrono
    print("Tarea no bloqueante completada")

async def main_correcto():
    await non_blocking_task()

if __name__ == "__main__":
    asyncio.run(main_incorrecto())
    asyncio.run(main_correcto())
