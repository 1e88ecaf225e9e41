# Seed: "Capítulo 5", 5.7.2 Semáforo.
import asyncio

async def worker(name, semaphore):
    async with semaphore:
        print(f"Trabajador {name} ha obtenido acceso.")
        await asyncio.sleep(2)
    print(f"Trabajador {name} ha liberado acceso.")

async def main():
    semaphore = asyncio.Semaphore(2)  # Máximo 2 simultáneamente
    await asyncio.gather(
        worker("A", semaphore),
        worker("B", semaphore),
        worker("C", semaphore),
        worker("D", semaphore)
    )

if __name__ == "__main__":
    asyncio.run(main())
