# Seed 000 ("La asíncronia mas a fondo"), "Principales Métodos de asyncio",
# 6. asyncio.shield: "Protege una corrutina de ser cancelada. Aunque la
# tarea que la llama se cancele, esta corrutina sigue ejecutándose." The
# seed shows no code; this program is not in the seeds. A task saves a
# file and another task waits for it; main cancels the waiting task.
# Through shield() the save goes on; without it, the cancellation reaches
# the task being awaited too.
import asyncio

async def guardar(archivo):
    print(f"guardar: empiezo {archivo}")
    await asyncio.sleep(2)
    print(f"guardar: {archivo} guardado")

async def esperar_con_shield(tarea):
    await asyncio.shield(tarea)
    print("esperar: nunca llega aquí")

async def esperar_sin_shield(tarea):
    await tarea
    print("esperar: nunca llega aquí")

async def probar(esperar, archivo):
    tarea = asyncio.create_task(guardar(archivo))
    espera = asyncio.create_task(esperar(tarea))
    await asyncio.sleep(1)
    espera.cancel()
    try:
        await espera
    except asyncio.CancelledError:
        print(f"main: cancelé la espera de {archivo}")
    print(f"main: ¿{archivo} cancelado? {tarea.cancelled()}")
    await asyncio.sleep(2)

async def main():
    print("== Con shield")
    await probar(esperar_con_shield, "informe.txt")
    print("== Sin shield")
    await probar(esperar_sin_shield, "borrador.txt")

asyncio.run(main())
