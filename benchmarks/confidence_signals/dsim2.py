from combo import *
DS = {n: json.load(open(os.path.join(DUMPS, f"{n}.draftsim.json"))) for n in SETS}
for n in SETS:
    ng = [r for r, _ in rows_sig(n) if not gated(r)]
    for i, lab in [(0, "q->draft maxsim"), (1, "draft->q maxsim")]:
        v = [DS[n].get(r["id"], [0, 0])[i] for r in ng]
        a1 = auroc([x for x, r in zip(v, ng) if r["answerable"]], [x for x, r in zip(v, ng) if not r["answerable"]])
        a3 = auroc([x for x, r in zip(v, ng) if r["correct"]], [x for x, r in zip(v, ng) if r["answerable"] and not r["correct"]])
        print(n, lab, f"{a1:.3f} / {a3:.3f}", np.percentile(v, [10, 50, 90]).round(3))
def run(label, fn):
    cells = []
    for n in SETS:
        rows = [r for r, _ in rows_sig(n)]
        cells.append(f"{n[:4]} {fmt(figures(rows, [score(r, fn(r, DS[n].get(r['id'], [0, 0]))) for r in rows]))}")
    print(f"{label:45s}", " | ".join(cells), flush=True)
run("base", lambda r, d: None)
for lo, hi in [(0.40, 0.70), (0.45, 0.75), (0.5, 0.8)]:
    for w in [0.15, 0.25, 0.5]:
        run(f"+ q->draft maxsim {lo}-{hi} w{w}", lambda r, d, lo=lo, hi=hi, w=w: {"x": (sc(d[0], lo, hi), w)})
for lo, hi in [(0.25, 0.55), (0.3, 0.6)]:
    for w in [0.15, 0.25, 0.5]:
        run(f"+ draft->q maxsim {lo}-{hi} w{w}", lambda r, d, lo=lo, hi=hi, w=w: {"x": (sc(d[1], lo, hi), w)})
