from combo import *
SIG = {}
for n in SETS:
    SIG[n] = [dict(signals(r), **draft_signals(r), **twin_signals(r), **idf_signals(r, n)) for r, _ in rows_sig(n)]
keys = [k for k in SIG["holdout"][0] if k not in ("kw_raw",)]
pooled = {k: np.concatenate([[s[k] for s, (r, _) in zip(SIG[n], rows_sig(n)) if not gated(r)] for n in SETS]) for k in keys}
scales = {k: tuple(np.percentile(pooled[k], [10, 90])) for k in keys}
scales = {k: (lo, hi if hi > lo else lo + 1e-6) for k, (lo, hi) in scales.items()}
def ev(extra):
    res = {}
    for n in SETS:
        rows = [r for r, _ in rows_sig(n)]
        scs = [score(r, {k: (sc(s[k], *scales[k]), w) for k, w in extra.items()}) for r, s in zip(rows, SIG[n])]
        res[n] = figures(rows, scs)
    return res
base = ev({})
print("base", {n: fmt(base[n]) for n in SETS})
out = []
for k in keys:
    for w in (0.1, 0.2, 0.35):
        res = ev({k: w})
        d = {n: res[n]["auroc"] - base[n]["auroc"] for n in SETS}
        out.append((np.mean(list(d.values())), min(d.values()), k, w, res))
for m, mn, k, w, res in sorted(out, key=lambda x: -x[0])[:25]:
    print(f"{k:20s} w{w:<5} mean dAUROC {m:+.4f} min {mn:+.4f} ", " | ".join(f"{n[:4]} {fmt(res[n])}" for n in SETS))
