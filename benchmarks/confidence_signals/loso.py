from combo import *
import itertools
SIG = {n: [dict(signals(r), **draft_signals(r), **idf_signals(r, n)) for r, _ in rows_sig(n)] for n in SETS}
COMPS = ['retrieval_strength', 'token_match', 'retrieval_margin', 'question_coverage', 'keyword_match', 'answer_form']
def X(n, feats):
    return np.array([[r['components'][f][0] if f in r['components'] else s[f] for f in feats] for (r, _), s in zip(rows_sig(n), SIG[n])])
def run(feats, label, l2, balance_sets=True):
    res = {}
    for test in SETS:
        tr = [n for n in SETS if n != test]
        Xs, ys, ws = [], [], []
        for n in tr:
            m = [not gated(r) for r, _ in rows_sig(n)]
            Xn = X(n, feats)[m]; yn = np.array([r[label] for r, _ in rows_sig(n)])[m]
            Xs.append(Xn); ys.append(yn)
        model, w = fit_lr(np.vstack(Xs), np.concatenate(ys), l2)
        rows = [r for r, _ in rows_sig(test)]
        p = model(X(test, feats))
        scs = [0 if gated(r) else round(100 * q) for r, q in zip(rows, p)]
        res[test] = figures(rows, scs)
    return res
print("base      ", " | ".join(f"{n[:4]} {fmt(figures([r for r,_ in rows_sig(n)], [r['confidence'] for r,_ in rows_sig(n)]))}" for n in SETS))
for feats in [COMPS, COMPS + ['dense_std10'], COMPS + ['dense_std10', 'kw_spread10'], ['retrieval_strength', 'token_match', 'retrieval_margin', 'dense_std10'],
              COMPS + ['dense_std10', 'kw_spread10', 'focus_in_draft', 'fused_art_gap']]:
    for label in ['answerable', 'correct']:
        for l2 in [1.0, 30.0]:
            res = run(feats, label, l2)
            print(f"{'+'.join(f[:6] for f in feats)[:60]:60s} {label[:4]} l2={l2:<5}", " | ".join(f"{n[:4]} {fmt(res[n])}" for n in SETS), flush=True)
