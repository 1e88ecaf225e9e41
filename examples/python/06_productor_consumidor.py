# Seed: "Capítulo 5", 5.5.1 Crear y Usar una Cola Asíncrona.
import asyncio

async def producer(queue, n):
    for i in range(n):
        item = f"item_{i}"
        await queue.put(item)
        print(f"Productor añadió: {item}")
        await asyncio.sleep(1)
    await queue.put(None)  # Señal de terminación

async def consumer(queue):
    while True:
        item = await queue.get()
        if item is None:
            break
        print(f"Consumidor procesó: {item}")
        await asyncio.sleep(2)
    print("El consumidor ha terminado de trabajar")

async def main():
    queue = asyncio.Queue()
    await asyncio.gather(
        producer(queue, 5),
        consumer(queue)
    )

if __name__ == "__main__":
    asyncio.run(main())
