"""What the ledger keeps about article changes and the answers they touch (tables in `tables`).

- `indexed_chunks`: each help center chunk as it is indexed now, with its text and its hash;
- `article_changes` and `chunk_changes`: what each re-index changed, chunk by chunk (the old
  and new text hash and text; a removed chunk has no new one);
- `cited_chunks`: decision → cited chunk, with the hash of the text the answer was drafted
  from, so the answers touched by a change are found through an index, not by reading decisions;
- `answer_impacts`: the verdict on each answer after each change, and the note for its agent.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Iterator

import sqlalchemy as sa

from helpdesk_bot.domain import ARTICLE, Chunk
from helpdesk_bot.ledger.database import Database
from helpdesk_bot.ledger.tables import (answer_impacts, article_changes, chunk_changes, cited_chunks,
                                        indexed_chunks)

STILL_SUPPORTED, UNSUPPORTED_NOW, SOURCE_REMOVED = "still_supported", "unsupported_now", "source_removed"
VERDICTS = {STILL_SUPPORTED: "still supported", UNSUPPORTED_NOW: "contradicted or unsupported now",
            SOURCE_REMOVED: "source removed"}
# A still-supported answer's ticket is not looked up: no note is due on it.
NOT_LOOKED_UP = "not looked up"
# not_needed: still supported; off: the policy turns notes off; closed: the ticket is solved or
# closed; due: to post (again, after a failure); posted: on the ticket.
NOTE_STATES = ("not_needed", "off", "closed", "due", "posted")



def text_hash(text: str) -> str:
    """The hash of a chunk's text: equal texts, equal hashes, whatever article or run."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


_IN_BATCH = 500  # ids per IN (...): SQLite allows 32,766 variables, PostgreSQL 65,535


def _batches(items: list, size: int = _IN_BATCH) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class ArticleChange:
    id: int
    article_id: str
    title: str
    url: str
    change: str  # updated | removed
    changed_at: float


@dataclass(frozen=True)
class Citation:
    """An answer that cited a chunk a change touched: what the impact check reads."""

    event_id: int
    chunk_id: str
    old_text: str  # the chunk as the answer quoted it
    new_text: str | None  # None: removed


class ArticleChangeStore(Database):
    """`indexed_chunks`, `article_changes`, `chunk_changes`, `cited_chunks` and `answer_impacts`."""

    # --- what each re-index changed --------------------------------------------------------

    def change_log_empty(self) -> bool:
        with self.engine.connect() as db:
            return db.execute(sa.select(indexed_chunks.c.chunk_id).limit(1)).first() is None

    def seed_change_log(self, chunks: Iterable[Chunk]) -> None:
        """Take the index as it is as the starting point (the first run after an upgrade)."""
        now = time.time()
        rows = [_chunk_row(c, now) for c in chunks if c.kind == ARTICLE]
        with self.engine.begin() as db:
            for batch in _batches(rows):
                db.execute(indexed_chunks.insert(), batch)

    def record_reindex(self, source: str, written: list[Chunk], removed: Iterable[str],
                       every_article: set[str] | None = None) -> list[int]:
        """Compare the chunks a run wrote with those indexed before; keep what changed. Return
        the ids of the article changes.

        `written` are the new chunks of the articles the run added or re-chunked, `removed` the
        articles it removed; `every_article` (a run that read the whole help center, a rebuild)
        names every article there is now, so any other one indexed before is removed too.
        """
        now = time.time()
        new: dict[str, dict[str, Chunk]] = defaultdict(dict)
        for chunk in written:
            if chunk.kind == ARTICLE:
                new[chunk.article_id][chunk.id] = chunk
        change_ids = []
        with self.engine.begin() as db:
            gone = set(removed)
            if every_article is not None:
                known = set(db.execute(sa.select(indexed_chunks.c.article_id).distinct()).scalars())
                gone |= known - every_article
            gone -= set(new)
            touched = sorted(set(new) | gone)
            old: dict[str, dict[str, sa.Row]] = defaultdict(dict)
            for batch in _batches(touched):
                for row in db.execute(sa.select(indexed_chunks).where(indexed_chunks.c.article_id.in_(batch))):
                    old[row.article_id][row.chunk_id] = row
            for article_id in touched:
                before, after = old.get(article_id, {}), new.get(article_id, {})
                differences = [
                    {"chunk_id": chunk_id, "old_hash": row.text_hash, "old_text": row.text,
                     "new_hash": text_hash(after[chunk_id].text) if chunk_id in after else None,
                     "new_text": after[chunk_id].text if chunk_id in after else None}
                    for chunk_id, row in before.items()
                    if chunk_id not in after or row.text_hash != text_hash(after[chunk_id].text)
                ]
                if differences:
                    sample = next(iter(after.values()), None) or next(iter(before.values()))
                    change_id = db.execute(article_changes.insert().values(
                        article_id=article_id, title=sample.title, url=sample.url or "",
                        change="updated" if after else "removed", source=source[:200], changed_at=now,
                    )).inserted_primary_key[0]
                    db.execute(chunk_changes.insert(), [{"article_change_id": change_id, **d} for d in differences])
                    change_ids.append(change_id)
                if before:
                    db.execute(indexed_chunks.delete().where(indexed_chunks.c.article_id == article_id))
                if after:
                    db.execute(indexed_chunks.insert(), [_chunk_row(c, now) for c in after.values()])
        return change_ids

    def unchecked_changes(self) -> list[ArticleChange]:
        with self.engine.connect() as db:
            rows = db.execute(sa.select(article_changes).where(article_changes.c.checked_at.is_(None))
                              .order_by(article_changes.c.id))
            return [_article_change(r) for r in rows]

    def article_texts(self, article_ids: Iterable[str]) -> dict[str, list[str]]:
        """Each article's text as indexed now, chunk by chunk."""
        out: dict[str, list[str]] = defaultdict(list)
        with self.engine.connect() as db:
            for batch in _batches(sorted(set(article_ids))):
                for article_id, text in db.execute(
                        sa.select(indexed_chunks.c.article_id, indexed_chunks.c.text)
                        .where(indexed_chunks.c.article_id.in_(batch)).order_by(indexed_chunks.c.chunk_id)):
                    out[article_id].append(text)
        return dict(out)

    def chunk_texts(self, chunk_ids: Iterable[str]) -> dict[str, str]:
        """The indexed text of these chunks (those still indexed)."""
        out: dict[str, str] = {}
        with self.engine.connect() as db:
            for batch in _batches(sorted(set(chunk_ids))):
                out.update(db.execute(sa.select(indexed_chunks.c.chunk_id, indexed_chunks.c.text)
                                      .where(indexed_chunks.c.chunk_id.in_(batch))).all())
        return out

    # --- decision → cited chunk --------------------------------------------------------------

    def record_citations(self, event_id: int, cited: list[Chunk], at: float | None = None) -> None:
        """The chunks an answer cited, with the hash of the text it was drafted from; a retried
        event's answer replaces its citations."""
        at = time.time() if at is None else at
        with self.engine.begin() as db:
            db.execute(cited_chunks.delete().where(cited_chunks.c.event_id == event_id))
            rows = {c.id: {"event_id": event_id, "chunk_id": c.id, "text_hash": text_hash(c.text), "cited_at": at}
                    for c in cited}
            if rows:
                db.execute(cited_chunks.insert(), list(rows.values()))

    def citations_touched(self, change_ids: list[int], since: float) -> dict[tuple[int, int], list[Citation]]:
        """The answers cited since `since` that quoted a chunk as it was before one of these
        changes, by (change id, event id); answers drafted from the new text are not touched.

        Each citation carries the text the answer quoted: the chunk before this change, or before
        an earlier one when the answer is older than that.
        """
        touched: dict[tuple[int, int], list[Citation]] = defaultdict(list)
        with self.engine.connect() as db:
            for batch in _batches(change_ids):
                changed = {(r.article_change_id, r.chunk_id): r for r in db.execute(
                    sa.select(chunk_changes).where(chunk_changes.c.article_change_id.in_(batch)))}
                query = (sa.select(chunk_changes.c.article_change_id, cited_chunks.c.event_id, cited_chunks.c.chunk_id,
                                   cited_chunks.c.text_hash)
                         .join(cited_chunks, cited_chunks.c.chunk_id == chunk_changes.c.chunk_id)
                         .where(chunk_changes.c.article_change_id.in_(batch), cited_chunks.c.cited_at >= since,
                                sa.or_(cited_chunks.c.text_hash.is_(None), chunk_changes.c.new_hash.is_(None),
                                       cited_chunks.c.text_hash != chunk_changes.c.new_hash)))
                rows = db.execute(query).all()
                older = self._texts_by_hash(db, {quoted for change_id, _, chunk_id, quoted in rows
                                                 if quoted and quoted != changed[(change_id, chunk_id)].old_hash})
                for change_id, event_id, chunk_id, quoted in rows:
                    change = changed[(change_id, chunk_id)]
                    touched[(change_id, event_id)].append(
                        Citation(event_id, chunk_id, older.get(quoted, change.old_text), change.new_text))
        return dict(touched)

    @staticmethod
    def _texts_by_hash(db, hashes: set[str]) -> dict[str, str]:
        """Chunk texts of earlier versions, by hash, from the change log."""
        found: dict[str, str] = {}
        for batch in _batches(sorted(hashes)):
            found.update(db.execute(sa.select(chunk_changes.c.old_hash, chunk_changes.c.old_text)
                                    .where(chunk_changes.c.old_hash.in_(batch))).all())
        return found

    def cited_chunk_ids(self, event_ids: list[int]) -> dict[int, list[str]]:
        out: dict[int, list[str]] = defaultdict(list)
        with self.engine.connect() as db:
            for batch in _batches(event_ids):
                for event_id, chunk_id in db.execute(sa.select(cited_chunks.c.event_id, cited_chunks.c.chunk_id)
                                                     .where(cited_chunks.c.event_id.in_(batch))):
                    out[event_id].append(chunk_id)
        return out

    # --- verdicts ------------------------------------------------------------------------------

    def record_impacts(self, impacts: list[dict], checked: list[int]) -> None:
        """Keep the verdicts and mark the changes checked. A change another check marked first
        keeps that check's verdicts (the nightly run and `index` may finish together)."""
        now = time.time()
        with self.engine.begin() as db:
            for batch in _batches(checked):
                # Row locks (PostgreSQL) or the write lock (SQLite) make the second check wait here
                # and then find the changes checked.
                mine = set(db.execute(article_changes.update().where(article_changes.c.id.in_(batch),
                                                                     article_changes.c.checked_at.is_(None))
                                      .values(checked_at=now).returning(article_changes.c.id)).scalars())
                rows = [{**impact, "checked_at": now, "sentences": json.dumps(impact["sentences"]),
                         "passages": json.dumps(impact["passages"])}
                        for impact in impacts if impact["article_change_id"] in mine]
                if rows:
                    db.execute(answer_impacts.insert(), rows)

    def impact_notes_due(self) -> list[dict]:
        return self._read(self._listing().where(answer_impacts.c.note == "due").order_by(answer_impacts.c.id))

    def impact_notes_due_count(self) -> int:
        with self.engine.connect() as db:
            return db.execute(sa.select(sa.func.count()).select_from(answer_impacts)
                              .where(answer_impacts.c.note == "due")).scalar()

    def set_impact_note(self, impact_ids: list[int], state: str, error: str | None = None,
                 ticket_status: str | None = None) -> None:
        values = {"note": state, "note_error": error[:2000] if error else None}
        if ticket_status is not None:
            values["ticket_status"] = ticket_status
        with self.engine.begin() as db:
            for batch in _batches(impact_ids):
                db.execute(answer_impacts.update().where(answer_impacts.c.id.in_(batch)).values(**values))

    def affected_answers(self, since: float, article_id: str | None = None, verdict: str | None = None,
                ticket_status: str | None = None, limit: int | None = None) -> list[dict]:
        """The answers checked again since `since`, newest first, with the change that touched them."""
        query = self._listing().where(answer_impacts.c.checked_at >= since)
        if article_id:
            query = query.where(article_changes.c.article_id == article_id)
        if verdict:
            query = query.where(answer_impacts.c.verdict == verdict)
        if ticket_status == NOT_LOOKED_UP:
            query = query.where(answer_impacts.c.ticket_status.is_(None))
        elif ticket_status:
            query = query.where(answer_impacts.c.ticket_status == ticket_status)
        query = query.order_by(answer_impacts.c.checked_at.desc(), answer_impacts.c.answered_at.desc(),
                               answer_impacts.c.id.desc())
        if limit:
            query = query.limit(limit)
        return self._read(query)

    def _read(self, query) -> list[dict]:
        """The impacts the query selects, each with its passages old and new, side by side."""
        with self.engine.connect() as db:
            impacts = [dict(r._mapping) for r in db.execute(query)]
            texts = {}
            for batch in _batches(sorted({i["article_change_id"] for i in impacts})):
                texts.update(((r.article_change_id, r.chunk_id), (r.old_text, r.new_text)) for r in db.execute(
                    sa.select(chunk_changes.c.article_change_id, chunk_changes.c.chunk_id, chunk_changes.c.old_text,
                              chunk_changes.c.new_text).where(chunk_changes.c.article_change_id.in_(batch))))
        for impact in impacts:
            impact["sentences"] = json.loads(impact["sentences"])
            impact["passages"] = [{"chunk_id": chunk_id, "old": old, "new": new} for chunk_id in json.loads(impact["passages"])
                                  for old, new in [texts[(impact["article_change_id"], chunk_id)]]]
        return impacts

    def impact_counts(self, since: float = 0.0) -> dict[str, int]:
        """Answers checked again since `since`, by verdict."""
        with self.engine.connect() as db:
            rows = db.execute(sa.select(answer_impacts.c.verdict, sa.func.count())
                              .where(answer_impacts.c.checked_at >= since).group_by(answer_impacts.c.verdict)).all()
        return {verdict: dict(rows).get(verdict, 0) for verdict in VERDICTS}

    def ticket_statuses(self, since: float) -> list[str]:
        """The ticket statuses seen by the checks since `since`, for filters."""
        with self.engine.connect() as db:
            found = set(db.execute(sa.select(answer_impacts.c.ticket_status).distinct()
                                   .where(answer_impacts.c.checked_at >= since)).scalars())
        return sorted(NOT_LOOKED_UP if status is None else status for status in found)

    def changed_articles(self, since: float) -> list[tuple[str, str]]:
        """(article id, title) of the articles with checked answers since `since`, for filters."""
        with self.engine.connect() as db:
            return [tuple(r) for r in db.execute(
                sa.select(article_changes.c.article_id, sa.func.max(article_changes.c.title))
                .join(answer_impacts, answer_impacts.c.article_change_id == article_changes.c.id)
                .where(answer_impacts.c.checked_at >= since).group_by(article_changes.c.article_id)
                .order_by(sa.func.max(article_changes.c.title)))]

    @staticmethod
    def _listing():
        return (sa.select(answer_impacts, article_changes.c.article_id, article_changes.c.title,
                          article_changes.c.url, article_changes.c.change, article_changes.c.changed_at)
                .join(article_changes, article_changes.c.id == answer_impacts.c.article_change_id))


def _chunk_row(chunk: Chunk, now: float) -> dict:
    return {"chunk_id": chunk.id, "article_id": chunk.article_id, "title": chunk.title, "url": chunk.url or "",
            "text_hash": text_hash(chunk.text), "text": chunk.text, "indexed_at": now}


def _article_change(row) -> ArticleChange:
    return ArticleChange(id=row.id, article_id=row.article_id, title=row.title, url=row.url, change=row.change,
                         changed_at=row.changed_at)
