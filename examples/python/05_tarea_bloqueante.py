# Seed 000 ("La asíncronia mas a fondo"), "Principales Métodos de asyncio",
# 9. asyncio.run_in_executor, unchanged. It runs on asyncio's real clock:
# the loop waits for a worker thread, which a virtual clock cannot do.
import asyncio
import time

def tarea_bloqueante():
    time.sleep(2)
    print("Tarea bloqueante finalizada")

async def main():
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, tarea_bloqueante)

asyncio.run(main())
