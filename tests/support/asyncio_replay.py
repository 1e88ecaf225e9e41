"""Replays the random programs of tests/ordering_model.rs with CPython's
asyncio and compares the event logs with the reference model's.

    BUCLE_DUMP=/tmp/programs.jsonl cargo test --test ordering_model -- --ignored
    python3 tests/support/asyncio_replay.py /tmp/programs.jsonl

Time runs on a virtual clock (the selector's timeout is added to the loop
time instead of being waited for; a wait with no timeout is a deadlock).
One second of asyncio time is one millisecond of the Rust programs.
Last run (CPython 3.11.7): 2000 programs, 8 mismatches, every one a task
that cancels itself and then returns without suspending again (asyncio ends
it cancelled; bucle returns its value), see tests/cancel.rs.
"""
import asyncio, json, sys, itertools
from asyncio import events

# bucle documents (deadline, creation) order for equal deadlines; asyncio's
# heap leaves ties unspecified. Make ties FIFO.
_seq = itertools.count()
_orig_init = events.TimerHandle.__init__
def _init(self, *a, **k):
    _orig_init(self, *a, **k); _seqs[id(self)] = next(_seq)
_seqs = {}
events.TimerHandle.__init__ = _init
def _k(h): return (h._when, _seqs[id(h)])
def _lt(a, b): return _k(a) < _k(b)
def _le(a, b): return _k(a) <= _k(b)
def _gt(a, b): return _k(a) > _k(b)
def _ge(a, b): return _k(a) >= _k(b)
events.TimerHandle.__lt__ = _lt; events.TimerHandle.__le__ = _le
events.TimerHandle.__gt__ = _gt; events.TimerHandle.__ge__ = _ge

class Deadlock(Exception): pass

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

def replay(scripts):
    log = []
    tasks, handles = {}, {}
    lp = VLoop()
    futs = [lp.create_future() for _ in range(2)]
    def emit(t, s): log.append(f"t{t} {s}")
    async def body(t):
        me = asyncio.current_task()
        try:
            emit(t, "start")
            for pc, op in enumerate(scripts[t]):
                k = op[0]
                if k == "Spawn":
                    c = op[1]; task = asyncio.create_task(body(c)); tasks[c] = task; handles[c] = task; out = "spawned"
                elif k == "Yield":
                    await asyncio.sleep(0); out = "yielded"
                elif k == "Sleep":
                    await asyncio.sleep(op[1]); out = "slept"
                elif k == "Join":
                    h = handles.pop(op[1], None)
                    if h is None: out = "skip"
                    elif h.done(): out = "cancelled" if h.cancelled() else "ok"
                    else:
                        try:
                            await h; out = "ok"
                        except asyncio.CancelledError:
                            if me.cancelling(): raise
                            out = "cancelled"
                elif k == "Set":
                    f = futs[op[1]]
                    if f.done(): out = "invalid"
                    else: f.set_result(None); out = "ok"
                elif k == "SetLater":
                    f = futs[op[2]]
                    def cb(f=f, pc=pc):
                        if f.done(): o = "invalid"
                        else: f.set_result(None); o = "ok"
                        emit(t, f"op{pc} cb {o}")
                    lp.call_later(op[1], cb); out = "scheduled"
                elif k == "Wait":
                    f = futs[op[1]]
                    if f.done(): out = "cancelled" if f.cancelled() else "ok"
                    else:
                        try:
                            await f; out = "ok"
                        except asyncio.CancelledError:
                            if me.cancelling(): raise
                            out = "cancelled"
                elif k == "Cancel":
                    j = op[1]
                    if j not in tasks: out = "skip"
                    else: out = "true" if tasks[j].cancel() else "false"
                elif k == "Finish":
                    break
                emit(t, f"op{pc} {out}")
            emit(t, "end")
        except asyncio.CancelledError:
            emit(t, "unwound"); raise
    end = "Completed"
    try:
        lp.run_until_complete(body(0))
    except Deadlock:
        end = "Deadlock"
    snapshot = list(log)
    # silence leftovers
    for t in asyncio.all_tasks(lp): t.cancel()
    try:
        lp.run_until_complete(asyncio.sleep(0))
    except BaseException: pass
    lp.close()
    return snapshot, end

import logging; logging.disable(logging.CRITICAL)
bad = 0; n = 0
for line in open(sys.argv[1]):
    p = json.loads(line); n += 1
    got, end = replay(p["scripts"])
    if got != p["log"] or end != p["end"]:
        bad += 1
        if bad <= (int(sys.argv[2]) if len(sys.argv) > 2 else 3):
            print("MISMATCH", json.dumps(p["scripts"]))
            print("  model :", p["end"], p["log"])
            print("  python:", end, got)
print(f"{n} programs, {bad} mismatches")
