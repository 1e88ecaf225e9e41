# Seed 001 ("Capítulo 5"), 5.2.3 "Reutilización del Bucle de Eventos". As
# the seed writes it, the program never ends: run_forever() runs until
# someone calls loop.stop(), nobody does, and once greet() is done the loop
# waits forever with nothing to do. One line is added so that it ends: the
# greet task's done callback stops the loop (the task is kept in `tarea`
# for that).
import asyncio

async def greet():
    print("¡Hola desde el bucle de eventos existente!")
    await asyncio.sleep(1)
    print("¡Adiós desde el bucle de eventos existente!")

# Obteniendo el bucle de eventos existente
loop = asyncio.get_event_loop()

# Ejecutando la corrutina
tarea = loop.create_task(greet())
tarea.add_done_callback(lambda _: loop.stop())  # added: stop when greet is done

# Ejecutando el bucle de eventos indefinidamente
loop.run_forever()
