# Seed: "Capítulo 5", 5.7.1 Lock.
import asyncio

async def worker(name, lock):
    print(f"Trabajador {name} está intentando adquirir el lock...")
    async with lock:
        print(f"Trabajador {name} ha adquirido el lock.")
        await asyncio.sleep(2)
    print(f"Trabajador {name} ha liberado el lock.")

async def main():
    lock = asyncio.Lock()
    await asyncio.gather(
        worker("A", lock),
        worker("B", lock)
    )

if __name__ == "__main__":
    asyncio.run(main())
