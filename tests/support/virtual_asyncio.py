"""asyncio on a virtual clock: the loop the Python originals of the examples
(tests/examples.rs) and the replayed random programs (asyncio_replay.py)
run on, so that their output does not depend on how busy the machine is.

Time advances only when nothing is ready: the selector's timeout is added to
the loop time instead of being waited for (a wait with no timeout would be
forever: a deadlock). Timers due at the same instant fire in creation order,
as bucle documents; asyncio leaves such ties unspecified, and on the real
clock they go by microseconds of scheduling jitter (the producer and the
consumer of 06_productor_consumidor.py are both due at t=2 and t=4). Nothing
else changes: the scripts run unmodified, on CPython's own asyncio.

    python3 tests/support/virtual_asyncio.py examples/python/04_reloj.py
"""
import asyncio
import itertools
import runpy
import sys
from asyncio import events

# Ties in creation order: order timer handles by (when, creation number).
_seq = itertools.count()
_seqs = {}
_orig_init = events.TimerHandle.__init__
def _init(self, *a, **k):
    _orig_init(self, *a, **k)
    _seqs[id(self)] = next(_seq)
events.TimerHandle.__init__ = _init
def _k(h): return (h._when, _seqs[id(h)])
events.TimerHandle.__lt__ = lambda a, b: _k(a) < _k(b)
events.TimerHandle.__le__ = lambda a, b: _k(a) <= _k(b)
events.TimerHandle.__gt__ = lambda a, b: _k(a) > _k(b)
events.TimerHandle.__ge__ = lambda a, b: _k(a) >= _k(b)

class Deadlock(Exception):
    pass

class VLoop(asyncio.SelectorEventLoop):
    def __init__(self):
        super().__init__()
        self._vt = 0.0
        orig = self._selector.select
        def select(timeout=None):
            if timeout is None:
                raise Deadlock()
            if timeout > 0:
                self._vt += timeout
            return orig(0)
        self._selector.select = select
    def time(self):
        return self._vt

class VirtualPolicy(asyncio.DefaultEventLoopPolicy):
    """Makes `asyncio.run` (and `new_event_loop`) use a `VLoop`."""
    def new_event_loop(self):
        return VLoop()

if __name__ == "__main__":
    asyncio.set_event_loop_policy(VirtualPolicy())
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    runpy.run_path(script, run_name="__main__")
