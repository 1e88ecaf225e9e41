"""generadores.py: el primer concepto, un generador no es una lista.

Una funcion que devuelve una lista hace todo su trabajo al llamarla. Llamar a
un generador, en cambio, no ejecuta nada: devuelve un objeto generador. Para
hacerlo avanzar hay que iterarlo, por ejemplo con next(generador); cada next
corre el cuerpo hasta el proximo yield y lo deja ahi, en pausa.

Port en Rust: examples/01_generators.rs, que imprime exactamente lo mismo.
Capitulo: docs/01-generators.md
"""


def numeros_en_lista():
    print("  numeros_en_lista: calculo todo de una vez")
    return [1, 2, 3]


def numeros():
    print("  numeros: arranco")
    yield 1
    print("  numeros: sigo despues del 1")
    yield 2
    print("  numeros: sigo despues del 2")
    yield 3
    print("  numeros: no hay mas, termino")


def acumulador():
    total = 0
    while True:
        valor = yield total
        print(f"  acumulador: recibi {valor}")
        total += valor


def con_limpieza():
    try:
        yield "abierto"
        yield "nunca llega"
    finally:
        print("  con_limpieza: finally, libero el recurso")


print("1. Una funcion que devuelve una lista trabaja toda al llamarla")
lista = numeros_en_lista()
print("  lista =", lista)

print("2. Llamar a un generador no ejecuta nada")
generador = numeros()
print("  generador = numeros() -> todavia no se imprimio nada")

print("3. next(generador) corre el cuerpo hasta el proximo yield")
print("  next ->", next(generador))
print("  (el programa principal hace otra cosa entre dos next)")
print("  next ->", next(generador))
print("  next ->", next(generador))
try:
    next(generador)
except StopIteration:
    print("  next -> StopIteration: el generador se agoto")

print("4. Un for llama a next por nosotros y para solo")
for n in numeros():
    print("  for ->", n)

print("5. send: el generador tambien recibe valores")
acc = acumulador()
print("  arranco ->", next(acc))
print("  send(10) ->", acc.send(10))
print("  send(5) ->", acc.send(5))

print("6. Cerrar un generador a medias corre su finally")
recurso = con_limpieza()
print("  next ->", next(recurso))
recurso.close()
print("  cerrado")
