"""Run the answering once over a set and dump per-question everything needed to recompute the
confidence offline with new signals. Usage: dump.py KB QUESTIONS OUT.jsonl"""
import json, sys, time
from pathlib import Path

from helpdesk_bot import evaluation as ev
from helpdesk_bot.domain import original_id
from helpdesk_bot.settings import Settings
from helpdesk_bot.vectorstore import KEYWORDS, CANDIDATES, KnowledgeStore, keyword_vector

kb, qfile, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
settings = Settings.from_env(require_webhook_secret=False)
questions = ev.load_questions(qfile)
stash = {}
orig_search = KnowledgeStore.search


def search(self, query_text, query_vector, limit=5, scope=None, language="en", using="dense"):
    hits = orig_search(self, query_text, query_vector, max(limit, 20), scope, language, using)
    raw_kw = self.engine.nearest(KEYWORDS, keyword_vector(query_text, query=True, language=language), 20, scope, with_vector=None)
    raw_dense = self.engine.nearest(using, query_vector.tolist(), 20, scope, with_vector=None)
    stash.setdefault("calls", []).append({
        "query": query_text,
        "hits": [[h.chunk.id, h.chunk.article_id, round(h.fused, 5), round(h.dense, 5), round(h.keyword, 5)] for h in hits],
        "raw_kw": [[p["chunk_id"], p["article_id"], round(s, 4)] for p, s, _ in raw_kw],
        "raw_dense": [[p["chunk_id"], p["article_id"], round(s, 5)] for p, s, _ in raw_dense],
    })
    return hits[:limit]


KnowledgeStore.search = search
t0 = time.time()
recorded = []  # (the search calls, the outcome) per question, in order


def record(question, outcome):
    recorded.append((stash.pop("calls", []), outcome))
    if len(recorded) % 50 == 1:
        print(len(recorded), len(questions), round(time.time() - t0), file=sys.stderr, flush=True)


results = ev.run_answering(kb, qfile, settings, on_answer=record)
with out.open("w") as f:
    for result, (calls, outcome) in zip(results, recorded):
        q, c = result.question, outcome.confidence
        cited = outcome.draft.cited[:1]
        row = {
            "id": q.id, "question": q.question, "answerable": q.answerable, "gold": list(q.gold_ids),
            "type": q.type, "search_query": outcome.ticket.search_query,
            "correct": result.correct,
            "first_cited": next((original_id(s.chunk.article_id) for s in outcome.sources if s.chunk.id in cited), None),
            "confidence": c.score, "raw": c.raw, "caps": list(c.caps),
            "components": {x.name: [round(x.value, 5), x.weight] for x in c.components},
            "details": {x.name: x.detail for x in c.components},
            "inputs": dict(c.inputs),
            "held": result.held, "sent": result.sent,
            "draft": outcome.draft.text, "declined": outcome.draft.declined, "cited": list(outcome.draft.cited),
            "sources": [{"chunk": s.chunk.id, "article": original_id(s.chunk.article_id), "title": s.chunk.title,
                         "heading": s.chunk.heading, "text": s.chunk.text, "score": s.score, "dense": s.dense,
                         "keyword": s.keyword, "maxsim": s.maxsim, "language": s.language} for s in outcome.sources],
            "search": calls,
        }
        f.write(json.dumps(row) + "\n")
print("done", round(time.time() - t0), file=sys.stderr)
