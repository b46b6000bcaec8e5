"""The knowledge index as the ledger sees it: each run's report, where incremental sources
resume, and when each article entered or left the index."""

from __future__ import annotations

import json
import time

import sqlalchemy as sa

from helpdesk_bot.ledger.database import Database
from helpdesk_bot.ledger.tables import index_runs, indexed_articles, sync_cursors


class IndexStore(Database):
    """`index_runs`, `sync_cursors` and `indexed_articles`."""

    def record_index_run(self, source: str, report: dict) -> None:
        with self.engine.begin() as db:
            db.execute(index_runs.insert().values(source=source[:200], finished_at=time.time(), report=json.dumps(report)))

    def sync_cursor(self, source: str) -> str | None:
        with self.engine.connect() as db:
            return db.execute(sa.select(sync_cursors.c.cursor).where(sync_cursors.c.source == source)).scalar()

    def save_sync_cursor(self, source: str, cursor: str | None) -> None:
        """Store where the next run of `source` starts; None forgets it (the next run reads everything)."""
        with self.engine.begin() as db:
            db.execute(sync_cursors.delete().where(sync_cursors.c.source == source))
            if cursor is not None:
                db.execute(sync_cursors.insert().values(source=source, cursor=str(cursor), updated_at=time.time()))

    def index_runs(self, limit: int = 10) -> list[dict]:
        with self.engine.connect() as db:
            rows = db.execute(sa.select(index_runs).order_by(index_runs.c.id.desc()).limit(limit))
            return [{**dict(r._mapping), "report": json.loads(r.report)} for r in rows]

    def record_indexed_articles(self, articles, remove_missing: bool = True, removed: list[str] = ()) -> None:
        """Note when each article entered (or left) the index: knowledge gaps compare before and after.

        `removed` names articles an incremental run removed (it is not given every article).
        """
        now = time.time()
        with self.engine.begin() as db:
            known = {r.article_id: r for r in db.execute(sa.select(indexed_articles))}
            seen = set()
            for article in articles:
                seen.add(article.id)
                row = known.get(article.id)
                if row is None:
                    db.execute(indexed_articles.insert().values(
                        article_id=article.id, title=article.title, url=article.url or "",
                        content_hash=article.content_hash, first_indexed_at=now, updated_at=now))
                elif row.content_hash != article.content_hash or row.removed_at is not None:
                    db.execute(indexed_articles.update().where(indexed_articles.c.article_id == article.id).values(
                        title=article.title, url=article.url or "", content_hash=article.content_hash,
                        updated_at=now, removed_at=None))
            if remove_missing or removed:
                gone = [a for a, r in known.items()
                        if (a in removed or (remove_missing and a not in seen)) and r.removed_at is None]
                if gone:
                    db.execute(indexed_articles.update().where(indexed_articles.c.article_id.in_(gone))
                               .values(removed_at=now))

    def indexed_articles(self) -> list[dict]:
        with self.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(sa.select(indexed_articles).order_by(indexed_articles.c.first_indexed_at))]


