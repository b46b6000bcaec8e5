import sys
from ana import *
for name in sys.argv[1:]:
    rows = load(name)
    print(name, "base", fmt(figures(rows, [r["confidence"] for r in rows])), "recomputed", fmt(figures(rows, [score(r) for r in rows])))
    ng = [r for r in rows if not gated(r)]
    sig = [dict(signals(r), **draft_signals(r)) for r in ng]
    print(f"{'signal':24s} ans-vs-not  correct-vs-not  correct|answerable   (n={len(ng)})")
    for k in sig[0]:
        v = [s[k] for s in sig]
        a1 = auroc([x for x, r in zip(v, ng) if r["answerable"]], [x for x, r in zip(v, ng) if not r["answerable"]])
        a2 = auroc([x for x, r in zip(v, ng) if r["correct"]], [x for x, r in zip(v, ng) if not r["correct"]])
        a3 = auroc([x for x, r in zip(v, ng) if r["correct"]], [x for x, r in zip(v, ng) if r["answerable"] and not r["correct"]])
        print(f"{k:24s} {a1:.3f}  {a2:.3f}  {a3:.3f}")
    for k in ["conf"]:
        v = [r["confidence"] for r in ng]
        print("confidence", round(auroc([x for x, r in zip(v, ng) if r["answerable"]], [x for x, r in zip(v, ng) if not r["answerable"]]),3),
              round(auroc([x for x, r in zip(v, ng) if r["correct"]], [x for x, r in zip(v, ng) if not r["correct"]]),3))
    for k in ng[0]["components"]:
        v = [r["components"][k][0] for r in ng]
        a1 = auroc([x for x, r in zip(v, ng) if r["answerable"]], [x for x, r in zip(v, ng) if not r["answerable"]])
        a2 = auroc([x for x, r in zip(v, ng) if r["correct"]], [x for x, r in zip(v, ng) if not r["correct"]])
        a3 = auroc([x for x, r in zip(v, ng) if r["correct"]], [x for x, r in zip(v, ng) if r["answerable"] and not r["correct"]])
        print(f"  comp {k:19s} {a1:.3f}  {a2:.3f}  {a3:.3f}")
