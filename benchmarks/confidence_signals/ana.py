import json, math, os, sys
from collections import Counter
import numpy as np

SETS = ["holdout", "clapnq", "fiqa", "sample"]
DUMPS = os.environ.get("DUMPS", "qpp_dumps")  # where dump.py wrote <set>.jsonl
E = os.environ.get("E", "")  # the folder holding emanual/ and mtrag_dev/


def load(name):
    return [json.loads(l) for l in open(os.path.join(DUMPS, f"{name}.jsonl"))]


def auroc(pos, neg):
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    if not len(pos) or not len(neg):
        return float("nan")
    allv = np.concatenate([pos, neg])
    order = allv.argsort(kind="mergesort")
    ranks = np.empty(len(allv))
    sv = allv[order]
    i = 0
    while i < len(sv):
        j = i
        while j < len(sv) and sv[j] == sv[i]:
            j += 1
        ranks[order[i:j]] = (i + j + 1) / 2
        i = j
    return (ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


def figures(rows, scores):
    ans = [s for r, s in zip(rows, scores) if r["answerable"]]
    una = [s for r, s in zip(rows, scores) if not r["answerable"]]
    n_ans = len(ans)
    out = {"auroc": auroc(ans, una)}
    cov = {}
    for p in (0.90, 0.95):
        cov[p] = 0.0
        for t in range(0, 101):
            sent = [(r, s) for r, s in zip(rows, scores) if s >= t and s > 0 and not r["held"]]
            if not sent:
                continue
            c = sum(r["correct"] for r, _ in sent)
            if c / len(sent) >= p:
                cov[p] = c / n_ans
                break
    out["c90"], out["c95"] = cov[0.90], cov[0.95]
    return out


def gated(r):
    return r["confidence"] == 0 and bool(r["caps"])


def score(r, extra=None, override=None):
    """Recompute the hand-weighted score; extra: {name: (value, weight)}; override: {name: weight or (value,weight)}."""
    comps = {k: list(v) for k, v in r["components"].items()}
    for k, v in (override or {}).items():
        if isinstance(v, tuple):
            comps[k] = list(v)
        else:
            comps[k][1] = v
    for k, v in (extra or {}).items():
        comps[k] = list(v)
    tw = sum(w for _, w in comps.values())
    raw = round(100 * sum(v * w for v, w in comps.values()) / tw)
    return 0 if gated(r) else raw


def fmt(f):
    return f"{f['auroc']:.3f} / {f['c90']:.3f} / {f['c95']:.3f}"


def art_best(pairs):
    """[(article, score)] in order -> list of (article, best score) in order of best score."""
    best = {}
    for a, s in pairs:
        if a not in best or s > best[a]:
            best[a] = s
    return sorted(best.items(), key=lambda x: -x[1])


def signals(r):
    out = {}
    src = r["sources"]
    s0 = r["search"][-1] if r["search"] else {"hits": [], "raw_kw": [], "raw_dense": []}
    dense = [x[2] for x in s0["raw_dense"]]
    kw = [x[2] for x in s0["raw_kw"]]
    d_art = art_best([(x[1], x[2]) for x in s0["raw_dense"]])
    k_art = art_best([(x[1], x[2]) for x in s0["raw_kw"]])
    f_art = art_best([(x[1], x[2]) for x in s0["hits"]])
    first = src[0]["article"] if src else None
    cited = r["first_cited"]
    from helpdesk_bot.domain import original_id
    d_top = original_id(d_art[0][0]) if d_art else None
    k_top = original_id(k_art[0][0]) if k_art else None
    out["agree_dk"] = float(d_top == k_top)
    out["agree_dk_cited"] = float(d_top == k_top == cited)
    out["dense_top_is_cited"] = float(d_top == cited)
    out["kw_top_is_cited"] = float(k_top == cited)
    out["fused_top_is_cited"] = float(bool(f_art) and original_id(f_art[0][0]) == cited)
    out["same_art_top5"] = sum(s["article"] == first for s in src) / 5 if src else 0
    out["dense_spread10"] = dense[0] - np.mean(dense[:10]) if dense else 0
    out["dense_std10"] = float(np.std(dense[:10])) if dense else 0
    out["dense_art_gap"] = d_art[0][1] - d_art[1][1] if len(d_art) > 1 else 0.1
    out["kw_raw"] = kw[0] if kw else 0
    out["kw_art_ratio"] = 1 - k_art[1][1] / k_art[0][1] if len(k_art) > 1 and k_art[0][1] else 0
    out["kw_spread10"] = 1 - np.mean(kw[:10]) / kw[0] if kw and kw[0] else 0
    out["fused_art_gap"] = f_art[0][1] - f_art[1][1] if len(f_art) > 1 else 0.1
    out["n_articles_top10_dense"] = -len(set(x[1] for x in s0["raw_dense"][:10]))
    ms = [s["maxsim"] for s in src[:3] if s["maxsim"] is not None]
    out["maxsim_best"] = max(ms) if ms else 0
    # cited article's rank in dense & kw lists
    return out


def draft_signals(r):
    import re as _re
    from helpdesk_bot.text import key_terms, tokens
    from helpdesk_bot.groundedness import without_lead_in
    out = {}
    q = r["question"]
    terms = key_terms(q)
    body = _re.sub(r"\[\d+\]", "", without_lead_in(r["draft"])) if not r["declined"] else ""
    btoks = set(tokens(body))
    src = {s["chunk"]: s for s in r["sources"]}
    first = src.get(r["cited"][0]) if r["cited"] else None
    title_toks = set(tokens(f"{first['title']} {first['heading']}")) if first else set()
    focus = [t for t in terms if t not in title_toks]
    out["focus_in_draft"] = (sum(t in btoks for t in focus) / len(focus)) if focus else 1.0
    out["terms_in_draft"] = (sum(t in btoks for t in terms) / len(terms)) if terms else 0.0
    qtoks = set(tokens(q))
    extra = btoks - qtoks
    out["draft_new_words"] = min(len(extra) / 20, 1.0)
    out["title_terms_share"] = (sum(t in title_toks for t in terms) / len(terms)) if terms else 0.0
    return out


def twin_signals(r):
    from helpdesk_bot.text import tokens
    out = {}
    src = r["sources"]
    cited = next((s for s in src if r["cited"] and s["chunk"] == r["cited"][0]), None)
    if cited is None:
        return {"twin_jacc": 0.0, "twin_title": 0.0, "twin_close": 0.0}
    ct = set(tokens(cited["text"]))
    best, tt = 0.0, 0.0
    for s in src:
        if s["article"] == cited["article"]:
            continue
        ot = set(tokens(s["text"]))
        j = len(ct & ot) / max(len(ct | ot), 1)
        best = max(best, j)
        tt = max(tt, float(s["title"].strip().lower() == cited["title"].strip().lower()))
    out["twin_jacc"] = best
    out["twin_title"] = tt
    return out


def fit_lr(X, y, l2=1.0, iters=300):
    X = np.asarray(X, float); y = np.asarray(y, float)
    mu, sd = X.mean(0), X.std(0) + 1e-9
    Z = np.c_[(X - mu) / sd, np.ones(len(X))]
    w = np.zeros(Z.shape[1])
    for _ in range(iters):  # Newton
        p = 1 / (1 + np.exp(-Z @ w))
        g = Z.T @ (p - y) + l2 * np.r_[w[:-1], 0]
        H = (Z * (p * (1 - p))[:, None]).T @ Z + l2 * np.diag(np.r_[np.ones(len(w) - 1), 0])
        w -= np.linalg.solve(H, g)
    return lambda Xn: 1 / (1 + np.exp(-np.c_[(np.asarray(Xn, float) - mu) / sd, np.ones(len(Xn))] @ w)), w


def cv_pred(X, y, l2=1.0, k=5, seed=0):
    X = np.asarray(X, float); y = np.asarray(y)
    idx = np.random.RandomState(seed).permutation(len(X))
    p = np.zeros(len(X))
    for f in range(k):
        te = idx[f::k]; tr = np.setdiff1d(idx, te)
        m, _ = fit_lr(X[tr], y[tr], l2)
        p[te] = m(X[te])
    return p

KBS = {"holdout": f"{E}/emanual/holdout_kb.jsonl", "clapnq": f"{E}/mtrag_dev/clapnq/kb.jsonl",
       "fiqa": f"{E}/mtrag_dev/fiqa/kb.jsonl", "sample": os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "helpdesk_bot", "sample_data", "help_center.json")}
_IDF = {}


def idf_table(name):
    if name not in _IDF:
        from helpdesk_bot.knowledge import load_articles
        from helpdesk_bot.text import tokens
        from pathlib import Path
        arts = load_articles(Path(KBS[name]))
        df = Counter()
        for a in arts:
            df.update(set(tokens(f"{a.title} {a.body_html}")))
        n = len(arts)
        _IDF[name] = (lambda t, df=df, n=n: math.log((n + 1) / (df.get(t, 0) + 0.5)))
    return _IDF[name]


def idf_signals(r, name):
    from helpdesk_bot.text import key_terms, tokens
    idf = idf_table(name)
    terms = key_terms(r["question"])
    out = {}
    if not terms:
        return {"idf_cov_best": 0.0, "idf_cov_union": 0.0, "rarest_missing": 0.0, "idf_cov_cited": 0.0}
    W = np.array([idf(t) for t in terms])
    best = 0.0
    union = set()
    for s in r["sources"][:3]:
        toks = set(tokens(f"{s['title']} {s['heading']} {s['text']}"))
        union |= toks
        best = max(best, sum(w for t, w in zip(terms, W) if t in toks) / W.sum())
    out["idf_cov_best"] = best
    out["idf_cov_union"] = sum(w for t, w in zip(terms, W) if t in union) / W.sum()
    miss = [w for t, w in zip(terms, W) if t not in union]
    out["rarest_missing"] = -max(miss) if miss else 0.0
    cited = next((s for s in r["sources"] if r["cited"] and s["chunk"] == r["cited"][0]), None)
    if cited:
        toks = set(tokens(f"{cited['title']} {cited['heading']} {cited['text']}"))
        out["idf_cov_cited"] = sum(w for t, w in zip(terms, W) if t in toks) / W.sum()
    else:
        out["idf_cov_cited"] = 0.0
    return out
