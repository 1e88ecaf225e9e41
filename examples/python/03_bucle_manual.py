# Two seeds' hand-driven loops, one after the other.
#
# Seed 001 ("Capítulo 5"), 5.2.2 "Gestión Manual del Bucle de Eventos",
# unchanged.
#
# Seed 002 ("Ejecución Asincrónica - Módulo Asyncio"), "Loop de Eventos",
# with two changes so that its output can be compared line for line:
# - it prints datetime.now(); here ahora() prints the running loop's clock
#   instead, in whole seconds since the loop's first reading;
# - it prints the loop, `print(bucle)`, whose repr starts with the loop's
#   class name, which depends on the platform and the loop policy
#   (`<_UnixSelectorEventLoop running=True closed=False debug=False>` on
#   Linux); here it prints the two facts the repr shows.
import asyncio

# Seed 001
async def main():
    print("¡Hola desde el bucle de eventos manual!")
    await asyncio.sleep(1)
    print("¡Adiós desde el bucle de eventos manual!")

# Creando el bucle de eventos
loop = asyncio.get_event_loop()

# Ejecutando la corrutina
try:
    loop.run_until_complete(main())
finally:
    loop.close()

# Seed 002
def ahora():
    bucle = asyncio.get_running_loop()
    if not hasattr(bucle, "inicio"):
        bucle.inicio = bucle.time()
    return f"t={round(bucle.time() - bucle.inicio)}s"

async def corrutina(nombre :str , duracion: int):
    # consulta del loop actual
    bucle = asyncio.get_event_loop()
    print(f"bucle: running={bucle.is_running()} closed={bucle.is_closed()}")

    print(f"Nombre: {nombre}, inicio: {ahora()}, duracion: {duracion}s")
    await asyncio.sleep(duracion)
    print(f"Nombre: {nombre}, fin: {ahora()}")

# nuevo bucle asíncrono
loop = asyncio.new_event_loop()

# ejecucion secuencial, hasta terminar
loop.run_until_complete(corrutina("A", 1))
loop.run_until_complete(corrutina("B", 3))

# Cierre de bucle manual
loop.close()
