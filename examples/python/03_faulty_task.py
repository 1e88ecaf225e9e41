# Seed 001 ("Capítulo 5"), 5.9.5 "Manejar Excepciones", unchanged; then a
# program for what seed 002 ("Ejecución Asincrónica"), "Manejo de errores",
# says in words only: loop.set_exception_handler() handles the errors of
# every coroutine in the loop, those nobody catches. It is not in the
# seeds: faulty_task fails in a task that nobody awaits, and the handler is
# told. Without a handler, asyncio prints "Task exception was never
# retrieved" and a traceback on stderr.
import asyncio

async def faulty_task():
    await asyncio.sleep(1)
    raise ValueError("¡Ocurrió un error!")

async def main():
    try:
        await faulty_task()
    except ValueError as e:
        print(f"Excepción capturada: {e}")

# Not in the seeds: the exception handler
def manejador(loop, context):
    print(f"Manejador: una tarea falló sin que nadie la esperara: {context['exception']}")

async def main_manejador():
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(manejador)
    asyncio.create_task(faulty_task())  # nadie la espera
    await asyncio.sleep(2)
    print("main_manejador: el bucle siguió funcionando")

if __name__ == "__main__":
    asyncio.run(main())
    asyncio.run(main_manejador())
