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

def row(label, res):
    print(f"| {label} | " + " | ".join(fmt(res[n]) for n in SETS) + " |", flush=True)

def evf(extra_fn=None, override_fn=None):
    res = {}
    for n in SETS:
        rows = [r for r, _ in rows_sig(n)]
        scs = [score(r, extra_fn(r, s) if extra_fn else None, override_fn(r, s) if override_fn else None) for r, s in zip(rows, SIG[n])]
        res[n] = figures(rows, scs)
    return res

print("scales (pooled 10th-90th percentile):", {k: tuple(round(x, 3) for x in v) for k, v in scales.items()})
print("\n| signal | " + " | ".join(SETS) + " |\n|---|---|---|---|---|")
for k in ["agree_dk", "fused_top_is_cited", "kw_top_is_cited", "dense_top_is_cited", "same_art_top5", "dense_spread10", "dense_std10",
          "kw_spread10", "kw_art_ratio", "fused_art_gap", "focus_in_draft", "idf_cov_best", "twin_jacc"]:
    cells = []
    for n in SETS:
        rows = [r for r, _ in rows_sig(n)]
        pairs = [(s[k] if k != "twin_jacc" else -s[k], r) for s, r in zip(SIG[n], rows) if not gated(r)]
        a1 = auroc([v for v, r in pairs if r["answerable"]], [v for v, r in pairs if not r["answerable"]])
        a3 = auroc([v for v, r in pairs if r["correct"]], [v for v, r in pairs if r["answerable"] and not r["correct"]])
        cells.append(f"{a1:.3f} / {a3:.3f}")
    print(f"| {k} | " + " | ".join(cells) + " |")
for k in ["token_match", "retrieval_margin", "keyword_match"]:
    cells = []
    for n in SETS:
        rows = [r for r, _ in rows_sig(n) if not gated(r)]
        pairs = [(r["components"][k][0], r) for r in rows]
        a1 = auroc([v for v, r in pairs if r["answerable"]], [v for v, r in pairs if not r["answerable"]])
        a3 = auroc([v for v, r in pairs if r["correct"]], [v for v, r in pairs if r["answerable"] and not r["correct"]])
        cells.append(f"{a1:.3f} / {a3:.3f}")
    print(f"| `{k}` (today) | " + " | ".join(cells) + " |")

print("\n| confidence | " + " | ".join(SETS) + " |\n|---|---|---|---|---|")
row("today's weights", evf())
def add(k, w, lo=None, hi=None):
    lo, hi = (lo, hi) if lo is not None else scales[k]
    return lambda r, s: {"x": (sc(s[k], lo, hi), w)}
for k, w in [("dense_std10", 0.1), ("dense_std10", 0.2), ("dense_std10", 0.35), ("dense_spread10", 0.2),
             ("kw_spread10", 0.15), ("kw_spread10", 0.25), ("fused_art_gap", 0.2), ("fused_top_is_cited", 0.1), ("kw_top_is_cited", 0.1),
             ("agree_dk", 0.1), ("same_art_top5", 0.15), ("focus_in_draft", 0.15), ("idf_cov_best", 0.15), ("twin_jacc", 0.15)]:
    lo, hi = scales[k]
    if k == "twin_jacc":
        row(f"+ no near-duplicate passage of another article (1 − Jaccard), w {w}", evf(lambda r, s: {"x": (1 - sc(s[k], lo, hi), w)}))
    else:
        row(f"+ {k} scaled {lo:.3f}-{hi:.3f}, w {w}", evf(add(k, w)))
lo, hi = scales["kw_spread10"]
row("`retrieval_margin` 0.125 + kw_spread10 0.125", evf(add("kw_spread10", 0.125), lambda r, s: {"retrieval_margin": 0.125}))
row("`retrieval_margin` → kw_spread10 (0.25)", evf(add("kw_spread10", 0.25), lambda r, s: {"retrieval_margin": 0.0}))
for label, o in [("`answer_form` weight 0", {"answer_form": 0.0}), ("`draft_support` weight 0", {"draft_support": 0.0}),
                 ("`token_match` 0.75", {"token_match": 0.75}), ("`token_match` 1.0", {"token_match": 1.0}),
                 ("`token_match` 1.5", {"token_match": 1.5}), ("`token_match` 0.75, `answer_form` 0", {"token_match": 0.75, "answer_form": 0.0}),
                 ("`retrieval_strength` 0.175", {"retrieval_strength": 0.175}), ("`retrieval_margin` 0.5", {"retrieval_margin": 0.5}),
                 ("`question_coverage` 0.125", {"question_coverage": 0.125}), ("`keyword_match` 0.3", {"keyword_match": 0.3})]:
    row(label, evf(override_fn=lambda r, s, o=o: o))
