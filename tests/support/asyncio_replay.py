"""Replays the random programs of tests/ordering_model.rs with CPython's
asyncio and compares the event logs with the reference model's.

    BUCLE_DUMP=/tmp/programs.jsonl cargo test --test ordering_model -- --ignored
    python3 tests/support/asyncio_replay.py /tmp/programs.jsonl

Time runs on a virtual clock (the selector's timeout is added to the loop
time instead of being waited for; a wait with no timeout is a deadlock).
One second of asyncio time is one millisecond of the Rust programs.
Last run (CPython 3.11.7, 2026-12-01, with panicking tasks and forwarded
cancels in the mix): 2000 programs, 0 mismatches. (An
earlier run's 8 mismatches, tasks that cancel themselves and then return
without suspending again, went when bucle adopted asyncio's rule and ends
such a task cancelled; see tests/cancel.rs.)
"""
import asyncio, json, sys

# The virtual clock, with timer ties in creation order (bucle's documented
# order; asyncio leaves ties unspecified): shared with the examples' runner.
from virtual_asyncio import Deadlock, VLoop

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
                    elif h.done():
                        out = "cancelled" if h.cancelled() else "panicked" if h.exception() else "ok"
                    else:
                        try:
                            await h; out = "ok"
                        except asyncio.CancelledError:
                            if me.cancelling(): raise
                            out = "cancelled"
                        except RuntimeError:
                            out = "panicked"
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
                elif k == "Panic":
                    emit(t, f"op{pc} panic")
                    raise RuntimeError(f"t{t} panics")
                emit(t, f"op{pc} {out}")
            emit(t, "end")
        except (asyncio.CancelledError, RuntimeError):
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
