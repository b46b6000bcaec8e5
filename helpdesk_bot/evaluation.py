"""Measuring retrieval and answering on labelled question sets (format: docs/evaluation.md).

Every run indexes the knowledge base into a fresh in-memory collection, so results depend
only on the files given and the product's code.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


from helpdesk_bot.embedding import Embedder, default_embedder
from helpdesk_bot.errors import BadInput
from helpdesk_bot.knowledge import load_jsonl, sync_index
from helpdesk_bot.vectorstore import EmbeddedEngine, KnowledgeStore

DOCUMENT_CANDIDATES = 60  # chunks fetched per question to rank documents down to the 10th


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    gold_ids: tuple[str, ...]
    answerable: bool = True
    type: str = ""
    conversation: tuple[tuple[str, str], ...] = ()


def load_questions(path: Path) -> list[Question]:
    questions = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                gold = tuple(str(g) for g in row.get("gold_ids") or ())
                questions.append(Question(
                    id=str(row["id"]), question=row["question"], gold_ids=gold,
                    answerable=bool(row.get("answerable", True)), type=row.get("type") or "",
                    conversation=tuple((turn["speaker"], turn["text"]) for turn in row.get("conversation") or ()),
                ))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise BadInput(f"{path}:{number}: not a question line ({exc})") from None
    return questions


def build_index(kb: Path, embedder: Embedder | None = None, progress: Callable[[int, int], None] | None = None) -> KnowledgeStore:
    """Index a knowledge base into a fresh in-memory collection."""
    embedder = embedder or default_embedder()
    folder = Path(tempfile.mkdtemp(prefix="helpdesk-eval-"))
    store = KnowledgeStore(EmbeddedEngine(folder / "evaluation", embedder.dimension, writable=True), embedder.dimension)
    sync_index(store, embedder, load_jsonl(kb))
    return store


@dataclass
class RetrievalScores:
    n: int = 0
    hits1: int = 0
    hits5: int = 0
    recall5: int = 0
    reciprocal_ranks: float = 0.0

    def add(self, ranked: list[str], gold: tuple[str, ...]) -> None:
        self.n += 1
        golds = set(gold)
        self.hits1 += bool(ranked[:1] and ranked[0] in golds)
        self.hits5 += any(doc in golds for doc in ranked[:5])
        self.recall5 += gold[0] in ranked[:5]
        for rank, doc in enumerate(ranked[:10], 1):
            if doc in golds:
                self.reciprocal_ranks += 1 / rank
                break

    def as_dict(self) -> dict:
        n = self.n or 1
        return {
            "n": self.n,
            "hit@1": round(self.hits1 / n, 4),
            "hit@5": round(self.hits5 / n, 4),
            "recall@5": round(self.recall5 / n, 4),
            "mrr@10": round(self.reciprocal_ranks / n, 4),
        }


@dataclass
class RetrievalReport:
    overall: RetrievalScores = field(default_factory=RetrievalScores)
    by_type: dict[str, RetrievalScores] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {**self.overall.as_dict(), "by_type": {t: s.as_dict() for t, s in sorted(self.by_type.items())}}


def query_text(question: Question) -> str:
    """The retrieval query for a question: earlier customer turns first, as a ticket would have them."""
    earlier = [text for speaker, text in question.conversation if speaker == "user"]
    return "\n".join(earlier + [question.question])


def rank_documents(store: KnowledgeStore, embedder: Embedder, text: str, limit: int = 10) -> list[str]:
    hits = store.search(text, embedder.embed([text])[0], limit=DOCUMENT_CANDIDATES)
    ranked: list[str] = []
    for hit in hits:
        if hit.chunk.article_id not in ranked:
            ranked.append(hit.chunk.article_id)
    return ranked[:limit]


def evaluate_retrieval(kb: Path, questions_file: Path, progress: Callable[[int, int], None] | None = None) -> RetrievalReport:
    embedder = default_embedder()
    store = build_index(kb, embedder)
    report = RetrievalReport()
    questions = [q for q in load_questions(questions_file) if q.gold_ids]
    for done, question in enumerate(questions, 1):
        ranked = rank_documents(store, embedder, query_text(question))
        report.overall.add(ranked, question.gold_ids)
        report.by_type.setdefault(question.type or "untyped", RetrievalScores()).add(ranked, question.gold_ids)
        if progress:
            progress(done, len(questions))
    return report
