"""Index runs from the helpdesk: read what changed, bring the index in step, publish, record.

The nightly task and `helpdesk-bot index` both run these. A run that fails is recorded and
publishes nothing (the embedded index keeps its published version, a rebuild's new collection
is dropped; a Qdrant server's collection takes writes as they come), and a source's cursor is
stored only after a run succeeds, so the next run reads again what the failed one had read.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator

from helpdesk_bot.embedding import Embedder
from helpdesk_bot.domain import ARTICLE
from helpdesk_bot.knowledge import Article, IndexReport, refresh_help_center, refresh_past_tickets, sync_index
from helpdesk_bot.ledger import Ledger
from helpdesk_bot.services import open_store
from helpdesk_bot.settings import Settings
from helpdesk_bot.vectorstore import KnowledgeStore


@contextmanager
def _index_run(ledger: Ledger, source: str, store: KnowledgeStore) -> Iterator[KnowledgeStore]:
    """Publish the index if the run succeeds; if it fails, drop what it wrote and record why,
    so `index --status` shows the failed run next to the others."""
    started = time.perf_counter()
    if ledger.change_log_empty():  # the first run since the change log exists: it starts from the index as it is
        ledger.seed_change_log(store.chunks(ARTICLE))
    try:
        yield store
    except BaseException as exc:
        store.close(publish=False)
        if isinstance(exc, Exception):
            failed = IndexReport(mode="failed", errors=[f"{type(exc).__name__}: {exc}"[:500]],
                                 seconds=round(time.perf_counter() - started, 3))
            ledger.record_index_run(source, failed.as_dict())
        raise
    store.close()


def index_help_center(settings: Settings, ledger: Ledger, embedder: Embedder, helpdesk, full: bool = False,
                      rebuild: bool = False, progress: Callable[[int, int], None] | None = None) -> IndexReport:
    """The helpdesk's published articles: those changed since the last run, or all when `full`.

    `rebuild` builds a new index from every article and swaps it in (a new embedding model, or a
    collection to start afresh); past tickets are read again by their next run.
    """
    source = f"{helpdesk.name} help center"
    cursor = None if full or rebuild else ledger.sync_cursor(source)
    # Workers pick up the new version by themselves.
    with _index_run(ledger, source, open_store(settings, embedder, writable=True, rebuild=rebuild)) as store:
        run = refresh_help_center(store, embedder, helpdesk, int(cursor) if cursor else None, progress)
    report = run.report
    if rebuild:
        report.mode = "rebuild"
        ledger.save_sync_cursor(f"{helpdesk.name} past tickets", None)
    ledger.record_index_run(source, report.as_dict())
    ledger.record_indexed_articles(run.articles, remove_missing=False, removed=report.removed_ids)
    # The run's own removals are this source's; a rebuild replaced the whole index, so every article
    # it did not read again is gone from it.
    _record_changes(ledger, source, report, {a.id for a in run.articles} if report.mode == "rebuild" else None)
    if run.cursor is not None:
        ledger.save_sync_cursor(source, str(run.cursor))
    return report


def index_articles(settings: Settings, ledger: Ledger, embedder: Embedder, articles: list[Article], source: str,
                   remove_missing: bool = True, progress: Callable[[int, int], None] | None = None) -> IndexReport:
    """Articles from files (`helpdesk-bot index SOURCE`); `remove_missing` drops indexed ones not among them."""
    with _index_run(ledger, source, open_store(settings, embedder, writable=True)) as store:
        report = sync_index(store, embedder, articles, remove_missing=remove_missing, progress=progress, source=source)
    ledger.record_index_run(source, report.as_dict())
    ledger.record_indexed_articles(articles, remove_missing=False, removed=report.removed_ids)
    _record_changes(ledger, source, report, None)  # other sources' articles are not this run's to remove
    return report


def _record_changes(ledger: Ledger, source: str, report: IndexReport, every_article: set[str] | None) -> None:
    """Keep what the run changed in each article, for the impact check (helpdesk_bot/impact.py)."""
    ledger.record_reindex(source, report.written, report.removed_ids, every_article)


def index_past_tickets(settings: Settings, ledger: Ledger, embedder: Embedder, helpdesk,
                       progress: Callable[[int, int], None] | None = None) -> IndexReport:
    """Tickets solved since the last run (the first run looks back HELPDESK_PAST_TICKETS_DAYS)."""
    source = f"{helpdesk.name} past tickets"
    cursor = ledger.sync_cursor(source)
    start_time = int(cursor) if cursor else int(time.time()) - settings.past_tickets_days * 86400
    with _index_run(ledger, source, open_store(settings, embedder, writable=True)) as store:
        run = refresh_past_tickets(store, embedder, helpdesk, start_time, progress)
    ledger.record_index_run(source, run.report.as_dict())
    # Not in indexed_articles: a knowledge gap counts as covered when an article is published,
    # and a past ticket answering it must not stop the team from writing that article.
    ledger.save_sync_cursor(source, str(run.cursor))
    return run.report
