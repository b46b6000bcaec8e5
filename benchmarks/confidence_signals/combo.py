import sys, itertools
from ana import *

def sc(v, lo, hi):
    return min(max((v - lo) / (hi - lo), 0.0), 1.0)

CACHE = {}
def rows_sig(name):
    if name not in CACHE:
        rows = load(name)
        CACHE[name] = [(r, dict(signals(r), **draft_signals(r))) for r in rows]
    return CACHE[name]

def evaluate(name, extra_fn=None, override_fn=None):
    rs = rows_sig(name)
    rows = [r for r, _ in rs]
    scores = [score(r, extra_fn(r, s) if extra_fn else None, override_fn(r, s) if override_fn else None) for r, s in rs]
    return figures(rows, scores)

def table(label, extra_fn=None, override_fn=None, sets=None):
    sets = sets or [n for n in SETS if __import__("os").path.exists(os.path.join(DUMPS, f"{n}.jsonl"))]
    print(f"{label:55s}", " | ".join(f"{n[:4]} {fmt(evaluate(n, extra_fn, override_fn))}" for n in sets), flush=True)
