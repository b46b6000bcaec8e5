from combo import *
def boot(name, fn_a, fn_b, B=300, seed=0):
    rs = rows_sig(name); rows = [r for r, _ in rs]
    A = [fn_a(r, s) for r, s in rs]; Bv = [fn_b(r, s) for r, s in rs]
    rng = np.random.RandomState(seed); d = []
    base = []
    for _ in range(B):
        i = rng.randint(0, len(rows), len(rows))
        fr = [rows[j] for j in i]
        fa = figures(fr, [A[j] for j in i]); fb = figures(fr, [Bv[j] for j in i])
        base.append([fa[k] for k in ("auroc", "c90", "c95")])
        d.append([fb[k] - fa[k] for k in ("auroc", "c90", "c95")])
    base, d = np.array(base), np.array(d)
    return base.std(0), np.percentile(d, [2.5, 50, 97.5], axis=0)
if __name__ == "__main__":
    for n in SETS:
        sd, d = boot(n, lambda r, s: r["confidence"], lambda r, s: score(r, override={"token_match": 1.0}), B=200)
        print(n, "sd of base auroc/c90/c95", sd.round(3), "\n  diff tm x2 (2.5/50/97.5%)", d.round(3).tolist())
