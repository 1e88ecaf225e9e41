# Seed 002 ("Ejecución Asincrónica - Módulo Asyncio"), "Corrutinas",
# "Tareas" and "TaskGroup()": corrutina run once with asyncio.run, four
# times in sequence with asyncio.run, four times in sequence inside
# principal(), concurrently with gather(), as two tasks, and as two tasks
# inside a TaskGroup. The seed calls three of the mains `principal`; here
# each main has a name of its own so that all fit in one file, and a line
# before each says which one runs.
#
# The seed's TaskGroup program makes its tasks with asyncio.create_task,
# not grupo.create_task: they are not the group's, and the group waits for
# nothing (the body's two awaits do the waiting). The last program, which
# is not in the seed, puts them in the group; it needs no awaits, because
# leaving `async with` waits for every task of the group.
#
# The seed prints datetime.now(), which changes from run to run; ahora()
# prints the running loop's clock instead, in whole seconds since the
# loop's first reading. Each asyncio.run is a new loop with its own clock.
import asyncio

def ahora():
    bucle = asyncio.get_running_loop()
    if not hasattr(bucle, "inicio"):
        bucle.inicio = bucle.time()
    return f"t={round(bucle.time() - bucle.inicio)}s"

# definicion de corrutina
async def corrutina(nombre :str , duracion: int):
    print(f"Nombre: {nombre}, inicio: {ahora()}, duracion: {duracion}s")
    await asyncio.sleep(duracion)   # NO bloquea la ejecucion de otras corrutinas
    print(f"Nombre: {nombre}, fin: {ahora()}")

# Ejecución secuencial, con await
async def principal():
    await corrutina("A", 1)
    await corrutina("B", 1)
    await corrutina("C", 1)
    await corrutina("D", 1)

# Ejecucion concurrente
async def corrutinas_concurrentes():
    await asyncio.gather(
        corrutina("A", 1),
        corrutina("B", 2),
        corrutina("C", 3),
        )

# Tareas
async def principal_tareas():

    tarea1 = asyncio.create_task( corrutina("A", 3) )
    tarea2 = asyncio.create_task( corrutina("B", 1) )

    await tarea1
    await tarea2

# TaskGroup()
async def principal_taskgroup():
    async with asyncio.TaskGroup() as grupo:
        # tareas internas - ejecucion concurrente
        tarea1 = asyncio.create_task( corrutina("A", 3) )
        tarea2 = asyncio.create_task( corrutina("B", 1) )

        await tarea1
        await tarea2

# Not in the seed: the tasks in the group
async def principal_grupo():
    async with asyncio.TaskGroup() as grupo:
        grupo.create_task(corrutina("A", 3))
        grupo.create_task(corrutina("B", 1))
    print(f"Grupo cerrado: {ahora()}")

print("== asyncio.run(corrutina('A', 1))")
# ejecucion de corrutina
asyncio.run(corrutina("A",1))

print("== Ejecución secuencial: cuatro asyncio.run")
asyncio.run(corrutina("A",1))
asyncio.run(corrutina("B",1))
asyncio.run(corrutina("C",1))
asyncio.run(corrutina("D",1))

print("== Ejecución secuencial: await dentro de principal()")
asyncio.run(principal())

print("== Ejecución concurrente: gather()")
# orden de ejecucion asincrona
asyncio.run(corrutinas_concurrentes())

print("== Tareas: create_task()")
asyncio.run(principal_tareas())

print("== TaskGroup, como en la semilla: asyncio.create_task dentro del grupo")
asyncio.run(principal_taskgroup())

print("== TaskGroup con grupo.create_task: el grupo espera a sus tareas")
asyncio.run(principal_grupo())
