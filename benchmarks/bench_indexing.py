"""Indexing throughput against the embedding model's own throughput on the same texts, and the
no-op re-index (every article unchanged) against the full index.

The baseline embeds the corpus's chunk texts directly (`embedder.embed`); the full index is what
`helpdesk-bot index` does: open the store for writing, `sync_index` (chunking, the same
embedding, writing), close (an embedded store optimises and publishes there), into an empty
store. The two alternate for several rounds and the ratio is taken per round (the machine's
load drifts), then the median. The no-op re-index is the same run again over the same
articles, on this corpus and on the cached 20,000-chunk index.

    python -m benchmarks.bench_indexing [--chunks 2000] [--noop-chunks 20000]
"""

from __future__ import annotations

import argparse
import time

from benchmarks.common import CACHE_DIR, clean_env, emit, fresh_dir, log, machine, median
from benchmarks.corpus import build_corpus, cached_index, copy_index, store_fingerprint
from helpdesk_bot.embedding import make_embedder
from helpdesk_bot.knowledge import chunk_article, embedding_input, sync_index
from helpdesk_bot.services import open_store
from helpdesk_bot.settings import Settings


def _timed(fn):
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def run(chunks: int, noop_chunks: int, rounds: int) -> dict:
    work = fresh_dir(CACHE_DIR / "runs" / "indexing")
    settings = Settings.from_env(clean_env(HELPDESK_DATA_DIR=str(work / "data")))
    embedder = make_embedder(settings)
    embedder.embed(["warm up"])
    corpus = build_corpus(chunks)
    texts = [embedding_input(c) for a in corpus.articles for c in chunk_article(a)]

    def index_run():
        store = open_store(settings, embedder, writable=True)
        synced = time.perf_counter()
        report = sync_index(store, embedder, corpus.articles)
        synced = time.perf_counter() - synced
        store.close()
        return report, synced

    ratios, model_runs, index_runs = [], [], []
    for r in range(rounds):
        model_seconds, _ = _timed(lambda: embedder.embed(texts))
        fresh_dir(work / "data")
        full, (report, full_sync) = _timed(index_run)
        ratios.append((report.chunks / full) / (len(texts) / model_seconds))
        model_runs.append(model_seconds)
        index_runs.append(full)
        log(f"round {r + 1}/{rounds}: model alone {model_seconds:.1f} s, full index {full:.1f} s "
            f"({ratios[-1]:.2f} of the model's throughput)")
    noops, noop_syncs = [], []
    for _ in range(3):
        seconds, (noop_report, sync_seconds) = _timed(index_run)
        assert noop_report.chunks == 0 and noop_report.unchanged == len(corpus.articles), noop_report
        noops.append(seconds)
        noop_syncs.append(sync_seconds)
    noop = median(noops)
    full = median(index_runs)
    index_rate = report.chunks / full

    result = {
        "store": store_fingerprint(),
        "embedder": embedder.name,
        "articles": len(corpus.articles),
        "chunks": report.chunks,
        "rounds": rounds,
        "model_seconds": [round(x, 2) for x in model_runs],
        "index_seconds": [round(x, 2) for x in index_runs],
        "model_chunks_per_s_median": round(len(texts) / median(model_runs), 1),
        "index_chunks_per_s_median": round(index_rate, 1),
        "index_vs_model_per_round": [round(x, 3) for x in ratios],
        "index_vs_model": round(median(ratios), 3),
        "noop_seconds": round(noop, 3),
        "noop_sync_index_seconds": round(median(noop_syncs), 3),
        "noop_vs_full": round(noop / full, 4),
    }

    if noop_chunks:
        big = build_corpus(noop_chunks)
        index_dir, info = cached_index(big, embedder)
        big_settings = Settings.from_env(clean_env(HELPDESK_DATA_DIR=str(copy_index(index_dir, work / "big"))))
        big_noops = []
        for _ in range(3):
            def big_run():
                store = open_store(big_settings, embedder, writable=True)
                report = sync_index(store, embedder, big.articles)
                store.close()
                return report

            seconds, big_report = _timed(big_run)
            assert big_report.chunks == 0, big_report
            big_noops.append(seconds)
        estimated_full = info["points"] / index_rate
        result[f"noop_{noop_chunks}_chunks"] = {
            "chunks": info["points"],
            "noop_seconds": round(median(big_noops), 3),
            "full_seconds_estimated": round(estimated_full, 1),
            "noop_vs_full": round(median(big_noops) / estimated_full, 4),
        }
        log(f"no-op re-index of {info['points']} chunks: {median(big_noops):.2f} s")

    result.update({
        "targets": {"index_vs_model_min": 0.80, "noop_vs_full_max": 0.05},
        "meets_targets": result["index_vs_model"] >= 0.80 and result["noop_vs_full"] <= 0.05,
        "machine": machine(),
    })
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--noop-chunks", type=int, default=20_000, help="0 to skip the no-op on the cached index")
    args = parser.parse_args()
    emit("indexing", run(args.chunks, args.noop_chunks, args.rounds))


if __name__ == "__main__":
    main()
