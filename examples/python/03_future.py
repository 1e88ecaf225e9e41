# Seed: "La asíncronia mas a fondo", Futuros en asyncio, run once with
# "success" and once with a failing operation.
import asyncio

async def async_operation(future, data):
    await asyncio.sleep(1)
    if data == "success":
        future.set_result("Operación exitosa")
    else:
        future.set_exception(RuntimeError("Operación fallida"))

def future_callback(future):
    try:
        print("Callback:", future.result())
    except Exception as exc:
        print("Callback:", exc)

async def main(data):
    future = asyncio.Future()
    future.add_done_callback(future_callback)
    await async_operation(future, data)

asyncio.run(main("success"))
asyncio.run(main("failure"))
