# Seed 000 ("La asíncronia mas a fondo"), "Principales Métodos de asyncio",
# 7. asyncio.as_completed: "Retorna un iterable que devuelve corrutinas a
# medida que se completan, en lugar de esperar a que todas terminen." The
# seed shows no code; this program is not in the seeds. Three pages are
# "downloaded" (a sleep each); as_completed hands the results over in the
# order they finish, gather in the order the pages were asked for.
import asyncio

PAGINAS = [("inicio", 3), ("noticias", 1), ("contacto", 2)]

async def descargar(pagina, segundos):
    print(f"{pagina}: empieza ({segundos}s)")
    await asyncio.sleep(segundos)
    return f"{pagina} ({segundos}s)"

async def main():
    print("== as_completed: en el orden en que terminan")
    tareas = [asyncio.create_task(descargar(p, s)) for p, s in PAGINAS]
    for siguiente in asyncio.as_completed(tareas):
        resultado = await siguiente
        print(f"lista: {resultado}")

    print("== gather: en el orden en que se pidieron")
    tareas = [asyncio.create_task(descargar(p, s)) for p, s in PAGINAS]
    resultados = await asyncio.gather(*tareas)
    print(resultados)

asyncio.run(main())
