"""Measuring retrieval and answering on labelled question sets (format: docs/evaluation.md).

Every run indexes the knowledge base into a fresh in-memory collection, so results depend
only on the files given and the product's code.
"""

from __future__ import annotations

import re
import statistics
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator


from helpdesk_bot.calibration import Calibration, LearnedCombination, cross_validated_learned, fit_learned
from helpdesk_bot.errors import BadInput
from helpdesk_bot.embedding import Embedder, make_embedder
from helpdesk_bot.domain import Outcome, original_id
from helpdesk_bot.embedding import make_multilingual_embedder
from helpdesk_bot.knowledge import load_articles, read_json_lines, sync_index
from helpdesk_bot.language import DETECTOR, with_language
from helpdesk_bot.retrieval import Retriever
from helpdesk_bot.text import escape, index_terms
from helpdesk_bot.vectorstore import DENSE, MULTILINGUAL, EmbeddedEngine, KnowledgeStore

DOCUMENT_CANDIDATES = 60  # chunks fetched per question to rank documents down to the 10th


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    gold_ids: tuple[str, ...]
    answerable: bool = True
    type: str = ""
    conversation: tuple[tuple[str, str], ...] = ()
    answer: str = ""  # a human reference answer, when the set has one
    language: str | None = None  # the language it is asked in; None: detected, like a ticket's
    translation_of: str = ""  # the id of the question it translates (its English version)


def load_questions(path: Path) -> list[Question]:
    return _not_empty(path, read_json_lines(path, lambda row: Question(
        id=str(row["id"]), question=row["question"], gold_ids=tuple(str(g) for g in row.get("gold_ids") or ()),
        answerable=bool(row.get("answerable", True)), type=row.get("type") or "",
        conversation=tuple((turn["speaker"], turn["text"]) for turn in row.get("conversation") or ()),
        answer=row.get("answer") or "", language=row.get("language") or None,
        translation_of=str(row.get("translation_of") or ""),
    ), "a question line"), "questions")


def _not_empty(path: Path, items: list, what: str) -> list:
    """A figure measured on nothing is no figure: an empty file is an error, not a score of 0."""
    if not items:
        raise BadInput(f"{path}: no {what} in it (one JSON object a line: docs/evaluation.md)")
    return items


@contextmanager
def fresh_index(kb: Path, embedder: Embedder, settings=None) -> Iterator[KnowledgeStore]:
    """Index a knowledge base into a new embedded index (the default engine), removed afterwards;
    with `settings`, with the multilingual vector and default language they give, as the product does."""
    multilingual = make_multilingual_embedder(settings) if settings else None
    dimensions = {DENSE: embedder.dimension, **({MULTILINGUAL: multilingual.dimension} if multilingual else {})}
    with tempfile.TemporaryDirectory(prefix="helpdesk-eval-") as folder:
        store = KnowledgeStore(EmbeddedEngine(Path(folder) / "evaluation", dimensions, writable=True),
                               embedder.dimension, multilingual, settings.default_language if settings else "en")
        sync_index(store, embedder, load_articles(kb))  # JSON Lines, a help center export, a folder
        try:
            yield store
        finally:
            store.close()


@dataclass
class RetrievalScores:
    n: int = 0
    hits1: int = 0
    hits5: int = 0
    recall5: int = 0
    reciprocal_ranks: float = 0.0

    def add(self, ranked: list[str], gold: tuple[str, ...]) -> None:
        ranked = list(dict.fromkeys(original_id(doc) for doc in ranked))  # a translation is its article
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
    by_language: dict[str, RetrievalScores] = field(default_factory=dict)
    # Per language: (question, the question it translates) → whether both rank the same article first.
    same_article: dict[str, list[bool]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        report = {**self.overall.as_dict(), "by_type": {t: s.as_dict() for t, s in sorted(self.by_type.items())}}
        if len(self.by_language) > 1 or self.same_article:
            report["by_language"] = {
                language: {**scores.as_dict(), **_same_article(self.same_article.get(language))}
                for language, scores in sorted(self.by_language.items())}
        return report


def _same_article(found: list[bool] | None) -> dict:
    """The share of translated questions that rank first the same article as the question they translate."""
    return {"same_article_as_original": round(sum(found) / len(found), 4), "n_translated": len(found)} if found else {}




def rank_documents(store: KnowledgeStore, embedder: Embedder, text: str, limit: int = 10,
                   language: str | None = None) -> list[str]:
    """The articles for `text`, best first; in `language`, as the product retrieves for a ticket in it."""
    if language is None:
        hits = [hit.chunk for hit in store.search(text, embedder.embed_query(text), limit=DOCUMENT_CANDIDATES)]
    else:
        retriever = Retriever(store, embedder, top_k=DOCUMENT_CANDIDATES, default_language=store.default_language)
        hits = [source.chunk for source in retriever.retrieve(text, language=language)]
    ranked: list[str] = []
    for chunk in hits:
        if chunk.article_id not in ranked:
            ranked.append(chunk.article_id)
    return ranked[:limit]


def evaluate_retrieval(kb: Path, questions_file: Path, settings, progress: Callable[[int, int], None] | None = None) -> RetrievalReport:
    embedder = make_embedder(settings)
    report = RetrievalReport()
    questions = [q for q in load_questions(questions_file) if q.gold_ids]
    first: dict[str, str | None] = {}  # question id → the article it ranks first
    with fresh_index(kb, embedder, settings) as store:
        for done, question in enumerate(questions, 1):
            ticket = with_language(as_ticket(question), store.default_language)
            ranked = rank_documents(store, embedder, ticket.search_query, language=ticket.language)
            first[question.id] = original_id(ranked[0]) if ranked else None
            report.overall.add(ranked, question.gold_ids)
            report.by_type.setdefault(question.type or "untyped", RetrievalScores()).add(ranked, question.gold_ids)
            report.by_language.setdefault(ticket.language, RetrievalScores()).add(ranked, question.gold_ids)
            if progress:
                progress(done, len(questions))
    for question in questions:
        if question.translation_of in first:
            language = question.language or "unknown"
            report.same_article.setdefault(language, []).append(
                first[question.id] is not None and first[question.id] == first[question.translation_of])
    return report


# --- Answering: the whole pipeline, scored by whether its confidence can be trusted ------


@dataclass(frozen=True)
class Answered:
    question: Question
    confidence: int
    correct: bool  # answerable, and the draft's first cited source is a gold document
    components: dict
    draft: str = ""  # as drafted, without citation markers; "" when declined
    sent: bool = False  # the default policy sends it
    held: bool = False  # a risk signal hands it to a person whatever the threshold
    set_name: str = ""  # the questions file it came from
    inputs: dict = field(default_factory=dict)  # what a learned combination reads (Confidence.inputs)
    raw: int = 0  # the hand-weighted score before calibration and gates
    language: str | None = None  # the ticket's
    reply_language: str | None = None  # the draft's, detected from its text (None: declined)


def _reply_language(draft, default: str) -> str | None:
    """What the customer would read (the lead-in naming the article too): the draft's language as
    detected, not as the drafter says."""
    if draft.declined or not draft.text.strip():
        return None
    return DETECTOR.detect(re.sub(r"\[\d+\]", "", draft.text), default)


def as_ticket(question: Question):
    from helpdesk_bot.domain import Message, Ticket

    turns = [Message("customer" if speaker == "user" else "agent", text) for speaker, text in question.conversation]
    return Ticket(helpdesk="evaluation", id=question.id, subject="",
                  messages=(*turns, Message("customer", question.question)), language=question.language)


def run_answering(kb: Path, questions_file: Path | list[Path], settings,
                  progress: Callable[[int, int], None] | None = None, calibrated: bool = True,
                  on_answer: Callable[[Question, Outcome], None] | None = None) -> list[Answered]:
    """Answer every question of one or more files over one knowledge base; each result names its file.
    `on_answer` sees each question's whole outcome (sources, draft, confidence), for analyses."""
    from helpdesk_bot.drafting import make_drafter
    from helpdesk_bot.pipeline import Answerer
    from helpdesk_bot.policy import Policy

    embedder = make_embedder(settings)
    files = [questions_file] if isinstance(questions_file, Path) else list(questions_file)
    names = set_names(files)
    questions = [(name, q) for path, name in zip(files, names) for q in load_questions(path)]
    results = []
    with fresh_index(kb, embedder, settings) as store:
        calibration = Calibration.load(settings.calibration_path) if calibrated else None
        answerer = Answerer(Retriever(store, embedder, default_language=store.default_language),
                            make_drafter(settings), Policy(), calibration, store.default_language)
        for done, (set_name, question) in enumerate(questions, 1):
            outcome = answerer.answer(as_ticket(question))
            if on_answer:
                on_answer(question, outcome)
            cited = outcome.draft.cited[:1]
            first = next((original_id(s.chunk.article_id) for s in outcome.sources if s.chunk.id in cited), None)
            results.append(Answered(question=question, confidence=outcome.confidence.score,
                                    correct=question.answerable and first in question.gold_ids,
                                    components=outcome.confidence.as_dict(),
                                    draft="" if outcome.draft.declined else re.sub(r"\s*\[\d+\]", "", outcome.draft.text),
                                    sent=outcome.decision.action == "auto_send", held=outcome.decision.code == "risk",
                                    inputs=dict(outcome.confidence.inputs), raw=outcome.confidence.raw or 0,
                                    language=outcome.ticket.language,
                                    reply_language=_reply_language(outcome.draft, store.default_language),
                                    set_name=set_name))
            if progress:
                progress(done, len(questions))
    return results


def set_names(files: list[Path]) -> list[str]:
    """Each file's name, or its path as given where two files share a name."""
    clash = {path.name for path in files if sum(other.name == path.name for other in files) > 1}
    return [str(path) if path.name in clash else path.name for path in files]


def auroc(positives: list[float], negatives: list[float]) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    if not positives or not negatives:
        return float("nan")
    ordered = sorted([(s, 1) for s in positives] + [(s, 0) for s in negatives])
    rank_sum, i = 0.0, 0
    while i < len(ordered):
        j = i
        while j < len(ordered) and ordered[j][0] == ordered[i][0]:
            j += 1
        average_rank = (i + j + 1) / 2  # 1-based ranks i+1..j
        rank_sum += average_rank * sum(label for _, label in ordered[i:j])
        i = j
    n_pos, n_neg = len(positives), len(negatives)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def answer_recall(draft: str, reference: str) -> float:
    """The share of the reference answer's content words (stemmed, stop words dropped) the draft holds."""
    wanted = set(index_terms(reference))
    return len(wanted & set(index_terms(draft))) / len(wanted) if wanted else 0.0


def answer_recall_report(results: list[Answered]) -> dict | None:
    """How much of the human reference answers the drafts hold: over the drafts the default policy
    sends, and over every answerable question (a declined draft holds nothing); None without answers."""
    answerable = [r for r in results if r.question.answerable and r.question.answer]
    if not answerable:
        return None
    sent = [r for r in answerable if r.sent]
    drafted = [r for r in results if r.draft]

    def mean_recall(rows: list[Answered]) -> float | None:
        return round(statistics.fmean(answer_recall(r.draft, r.question.answer) for r in rows), 4) if rows else None

    def median_words(rows: list[Answered]) -> float | None:
        return statistics.median(len(r.draft.split()) for r in rows) if rows else None

    return {"sent": mean_recall(sent), "answerable": mean_recall(answerable), "n_sent": len(sent),
            "n_answerable": len(answerable), "median_words_sent": median_words(sent),
            "median_words_drafted": median_words(drafted)}


# The precisions ops choose between: coverage at each is reported for every set.
REPORTED_PRECISIONS = (0.90, 0.95)


def precision_curve(results: list[Answered]) -> list[dict]:
    """Sent, precision and coverage at every threshold 0-100."""
    answerable = sum(r.question.answerable for r in results)
    curve = []
    for threshold in range(0, 101):
        # A ticket held for a risk signal is sent at no threshold; the AUROC still scores its confidence.
        sent = [r for r in results if r.confidence >= threshold and r.confidence > 0 and not r.held]
        correct = sum(r.correct for r in sent)
        curve.append({
            "threshold": threshold,
            "sent": len(sent),
            "precision": round(correct / len(sent), 4) if sent else 1.0,
            "coverage": round(correct / answerable, 4) if answerable else 0.0,
        })
    return curve


def at_precision(curve: list[dict], target: float) -> dict:
    """The lowest threshold whose sent answers reach `target` precision, and its coverage (0 if none does)."""
    point = next((p for p in curve if p["sent"] and p["precision"] >= target), None)
    return {"threshold": point["threshold"] if point else None, "precision": point["precision"] if point else None,
            "coverage": point["coverage"] if point else 0.0}


def confidence_auroc(results: list[Answered]) -> float | None:
    """AUROC of the confidence, answerable against unanswerable; None when one of them is missing."""
    answerable = [r.confidence for r in results if r.question.answerable]
    unanswerable = [r.confidence for r in results if not r.question.answerable]
    return round(auroc(answerable, unanswerable), 4) if answerable and unanswerable else None


def set_summary(results: list[Answered]) -> dict:
    """The figures that say whether a set of questions can be trusted to the bot."""
    curve = precision_curve(results)
    return {"n": len(results), "answerable": sum(r.question.answerable for r in results),
            "auroc": confidence_auroc(results),
            **{f"coverage@{p:.2f}": at_precision(curve, p)["coverage"] for p in REPORTED_PRECISIONS}}


def answering_report(results: list[Answered], target_precision: float = 0.95) -> dict:
    """The whole set's figures, and with more than one language each language's (without the curve)."""
    report = _answering_report(results, target_precision)
    languages = sorted({r.language for r in results if r.language})
    if len(languages) > 1:
        report["by_language"] = {}
        for language in languages:
            mine = [r for r in results if r.language == language]
            figures = {k: v for k, v in _answering_report(mine, target_precision).items() if k != "curve"}
            drafted = [r for r in mine if r.reply_language]
            # The customer's language, or the reply is wrong whatever it says: counted over every
            # draft, and over what the default policy sends.
            figures["drafts_in_another_language"] = sum(r.reply_language != language for r in drafted)
            figures["sent_in_another_language"] = sum(r.reply_language != language for r in drafted if r.sent)
            report["by_language"][language] = figures
    return report


def _answering_report(results: list[Answered], target_precision: float) -> dict:
    """The whole curve and the recommended threshold; per question file and per `type` label when there are several."""
    curve = precision_curve(results)
    recommended = at_precision(curve, target_precision)
    sets = {name: [r for r in results if r.set_name == name] for name in dict.fromkeys(r.set_name for r in results)}
    types = {name: [r for r in results if r.question.type == name]
             for name in sorted({r.question.type for r in results if r.question.type})}
    return {
        "n": len(results),
        "answerable": sum(r.question.answerable for r in results),
        "auroc": confidence_auroc(results),
        "target_precision": target_precision,
        **recommended,
        "at_precision": {f"{p:.2f}": at_precision(curve, p) for p in REPORTED_PRECISIONS},
        "by_set": {name: set_summary(rows) for name, rows in sets.items()} if len(sets) > 1 else {},
        "by_type": {name: set_summary(rows) for name, rows in types.items()} if len(types) > 1 else {},
        "sent_by_default_policy": sum(r.sent for r in results),
        "answer_recall": answer_recall_report(results),
        "curve": curve,
    }


def compare_combinations(results: list[Answered],
                         target_precision: float = 0.95) -> tuple[LearnedCombination | None, dict]:
    """The learned combination fitted on every scored question, and both combinations' figures:
    the hand weights as they are, the learned one cross-validated (5 folds), so neither is
    judged on the questions it was fitted to."""

    def figures(rows: list) -> dict:
        summary = answering_report(rows, target_precision)
        return {k: summary[k] for k in ("auroc", "threshold", "precision", "coverage")}

    # Gated answers (declined, uncited, no steps for a "how do I") score 0 whatever weighs them.
    scored = [i for i, r in enumerate(results) if r.confidence > 0]
    inputs, correct = [results[i].inputs for i in scored], [results[i].correct for i in scored]
    compared = {"weights": figures(results)}
    try:
        learned = fit_learned(inputs, correct)
        out_of_fold = dict(zip(scored, cross_validated_learned(inputs, correct)))
    except ValueError as exc:
        return None, {**compared, "learned": {"reason": str(exc)}}
    rescored = [replace(r, confidence=round(100 * out_of_fold[i])) if i in out_of_fold else r
                for i, r in enumerate(results)]
    compared["learned"] = {**figures(rescored), "note": " (cross-validated)", "weights": learned.weights()}
    return learned, compared


def write_report(path: Path, title: str, summary: dict) -> None:
    """An HTML page with the precision/coverage curve as an inline SVG chart: no plotting library."""
    rows = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in summary.items()
                   if k not in ("curve", "per_tag", "answer_recall", "at_precision", "by_set", "by_type"))
    rows += "".join(f"<tr><td>coverage at precision {p}</td><td>{point['coverage']} (threshold {point['threshold']})</td></tr>"
                    for p, point in summary.get("at_precision", {}).items())
    for heading in ("by_set", "by_type"):
        rows += _sets_table(heading.replace("_", " "), summary.get(heading) or {})
    path.write_text(
        f"<!doctype html><meta charset=utf-8><title>{title}</title>"
        f"<h1>{title}</h1><table>{rows}</table>"
        f"{curve_chart(summary['curve'], summary.get('threshold'), target=summary.get('target_precision'))}",
        encoding="utf-8",
    )


def _sets_table(heading: str, sets: dict[str, dict]) -> str:
    if not sets:
        return ""
    columns = [k for k in next(iter(sets.values()))]
    header = "".join(f"<th>{escape(c)}</th>" for c in ["set", *columns])
    body = "".join("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in [name, *figures.values()]) + "</tr>"
                   for name, figures in sets.items())
    return f"<tr><th colspan=2>{heading}</th></tr><tr><td colspan=2><table><tr>{header}</tr>{body}</table></td></tr>"


def curve_chart(curve: list[dict], threshold: int | None, width: int = 640, height: int = 320,
                target: float | None = None, legend: bool = True) -> str:
    """Precision and coverage against the confidence threshold, as an inline SVG: axes marked,
    precision drawn only where something would be sent, the target precision dotted."""
    pad = 40

    def x(at: float) -> float:
        return pad + at / 100 * (width - 2 * pad)

    def y(value: float) -> float:
        return height - pad - value * (height - 2 * pad)

    lines = {
        "precision": ("#1f6feb", [f"{x(p['threshold']):.1f},{y(p['precision']):.1f}" for p in curve if p["sent"]]),
        "coverage": ("#d97706", [f"{x(p['threshold']):.1f},{y(p['coverage']):.1f}" for p in curve]),
    }
    polylines = "".join(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(points)}"/>'
                        for color, points in lines.values() if points)
    axes = (f'<line x1="{pad}" y1="{y(0)}" x2="{x(100)}" y2="{y(0)}" stroke="#999"/>'
            f'<line x1="{pad}" y1="{y(1)}" x2="{pad}" y2="{y(0)}" stroke="#999"/>'
            + "".join(f'<text x="{pad - 6}" y="{y(v) + 4:.1f}" font-size="11" text-anchor="end">{v:g}</text>'
                      for v in (0, 0.5, 1))
            + "".join(f'<text x="{x(t):.1f}" y="{y(0) + 16:.1f}" font-size="11" text-anchor="middle">{t}</text>'
                      for t in (0, 50, 100)))
    if target is not None:
        axes += (f'<line x1="{pad}" x2="{x(100)}" y1="{y(target):.1f}" y2="{y(target):.1f}" stroke="#1f6feb" '
                 f'stroke-opacity="0.5" stroke-dasharray="1 3"/>')
    if threshold is not None:
        axes += (f'<line x1="{x(threshold):.1f}" x2="{x(threshold):.1f}" y1="{y(1)}" y2="{y(0)}" stroke="#555" '
                 f'stroke-dasharray="4"/>')
    caption = ""
    if legend:
        names = " · ".join(f'<span style="color:{c}">{name}</span>' for name, (c, _) in lines.items())
        caption = (f"<p>{names} against the confidence threshold (0-100); dashed: recommended threshold"
                   f"{'; dotted: target precision' if target is not None else ''}</p>")
    return f'{caption}<svg width="{width}" height="{height}" style="border:1px solid #ccc">{axes}{polylines}</svg>'


# --- Groundedness: can the check tell supported responses from unsupported ones? -------


def evaluate_groundedness(tsv: Path) -> dict:
    """AUROC of flagging 'Not fully attributable' responses (BEGIN's TSV: knowledge, response, begin_label)."""
    import csv

    from helpdesk_bot.groundedness import grounding

    flagged, supported = [], []
    with tsv.open(encoding="utf-8", newline="") as rows:
        reader = csv.DictReader(rows, delimiter="\t")
        missing = {"knowledge", "response", "begin_label"} - set(reader.fieldnames or ())
        if missing:
            raise BadInput(f"{tsv}: no {', '.join(sorted(missing))} column (a TSV with a header row: docs/evaluation.md)")
        for row in reader:
            label = row.get("begin_label")
            if label not in ("Fully attributable", "Not fully attributable"):
                continue
            risk = 1 - grounding(row["response"], [row["knowledge"]]).score
            (flagged if label == "Not fully attributable" else supported).append(risk)
    return {"n": len(flagged) + len(supported), "not_fully_attributable": len(flagged),
            "auroc": round(auroc(flagged, supported), 4)}
