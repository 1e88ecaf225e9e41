"""generadoresYcorutina.py, contado de nuevo: los generadores administran la
ejecucion de tareas (los seeds nombran el archivo pero no traen su codigo).

Si cargamos una lista de tareas (generadores) y vamos iterando por cada una de
ellas, podemos ir ejecutando paso a paso un poco de cada una hasta completar
todas. Cada yield es el punto donde una tarea cede el control a las demas:
concurrenciaAsync (nombre de este port) es un planificador round robin, el
abuelo del event loop.

Port en Rust: examples/02_round_robin.rs, que imprime exactamente lo mismo.
Capitulo: docs/02-round-robin.md
"""


def leerTwitter():
    print("leerTwitter: conectando")
    yield
    for n in range(1, 4):
        print(f"leerTwitter: tweet {n}")
        yield
    print("leerTwitter: listo")


def leerFacebook():
    print("leerFacebook: conectando")
    yield
    for n in range(1, 3):
        print(f"leerFacebook: post {n}")
        yield
    print("leerFacebook: listo")


def bajarAdjunto():
    print("bajarAdjunto: bajando")
    yield
    print("bajarAdjunto: listo")


def leerMail(tareas):
    print("leerMail: un mail con adjunto, lanzo otra tarea")
    tareas.append(bajarAdjunto())
    yield
    print("leerMail: listo")


def concurrenciaAsync(tareas):
    """Da un paso a cada tarea por turno hasta que todas terminan."""
    pasos = 0
    while tareas:
        tarea = tareas.pop(0)
        pasos += 1
        try:
            next(tarea)
        except StopIteration:
            continue
        tareas.append(tarea)
    return pasos


print("== Secuencial: una tarea y despues la otra")
for _ in leerTwitter():
    pass
for _ in leerFacebook():
    pass

print("== Concurrente: concurrenciaAsync([leerTwitter(), leerFacebook()])")
pasos = concurrenciaAsync([leerTwitter(), leerFacebook()])
print(f"== {pasos} pasos, todas las tareas terminaron")

print("== Una tarea que lanza otra")
tareas = []
tareas.append(leerMail(tareas))
tareas.append(leerFacebook())
pasos = concurrenciaAsync(tareas)
print(f"== {pasos} pasos, todas las tareas terminaron")
