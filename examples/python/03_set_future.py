# Seed 001 ("Capítulo 5: Trabajando con el Módulo asyncio"), 5.4 "Futuras y
# Callbacks": 5.4.1 "Ejemplo de Uso de un Future" and 5.4.2 "Ejemplo de Uso
# de un Callback", one after the other. Both programs name their coroutines
# `set_future` and `main`; the second program's are renamed with a
# `_callback` suffix so that both fit in one file.
import asyncio

# 5.4.1
async def set_future(fut):
    await asyncio.sleep(1)
    fut.set_result("Resultado del Future")

async def main():
    loop = asyncio.get_event_loop()
    fut = loop.create_future()
    asyncio.create_task(set_future(fut))
    result = await fut
    print(result)

# 5.4.2
def callback(fut):
    print(f"Callback: {fut.result()}")

async def set_future_callback(fut):
    await asyncio.sleep(1)
    fut.set_result("Resultado del Future con Callback")

async def main_callback():
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    fut.add_done_callback(callback)
    asyncio.create_task(set_future_callback(fut))
    await fut

if __name__ == "__main__":
    asyncio.run(main())
    asyncio.run(main_callback())
