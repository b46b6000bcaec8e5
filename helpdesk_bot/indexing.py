"""Index runs from the helpdesk: read what changed, bring the index in step, publish, record.

The nightly task and `helpdesk-bot index` both run these. A source's cursor is stored only
after the index it led to is published, so a run that fails is read again by the next one.
"""

from __future__ import annotations

import time
from typing import Callable

from helpdesk_bot.embedding import Embedder
from helpdesk_bot.knowledge import IndexReport, refresh_help_center, refresh_past_tickets
from helpdesk_bot.ledger import Ledger
from helpdesk_bot.services import open_store
from helpdesk_bot.settings import Settings


def index_help_center(settings: Settings, ledger: Ledger, embedder: Embedder, helpdesk, full: bool = False,
                      progress: Callable[[int, int], None] | None = None) -> IndexReport:
    """The helpdesk's published articles: those changed since the last run, or all when `full`."""
    source = f"{helpdesk.name} help center"
    cursor = None if full else ledger.sync_cursor(source)
    store = open_store(settings, embedder, writable=True)  # workers pick up the new version by themselves
    try:
        run = refresh_help_center(store, embedder, helpdesk, int(cursor) if cursor else None, progress)
    finally:
        store.close()
    report = run.report
    ledger.record_index_run(source, report.as_dict())
    ledger.record_indexed_articles(run.articles, remove_missing=report.mode == "full", removed=report.removed_ids)
    if run.cursor is not None:
        ledger.save_sync_cursor(source, str(run.cursor))
    return report


def index_past_tickets(settings: Settings, ledger: Ledger, embedder: Embedder, helpdesk,
                       progress: Callable[[int, int], None] | None = None) -> IndexReport:
    """Tickets solved since the last run (the first run looks back HELPDESK_PAST_TICKETS_DAYS)."""
    source = f"{helpdesk.name} past tickets"
    cursor = ledger.sync_cursor(source)
    start_time = int(cursor) if cursor else int(time.time()) - settings.past_tickets_days * 86400
    store = open_store(settings, embedder, writable=True)
    try:
        run = refresh_past_tickets(store, embedder, helpdesk, start_time, progress)
    finally:
        store.close()
    ledger.record_index_run(source, run.report.as_dict())
    ledger.record_indexed_articles(run.articles, remove_missing=False, removed=run.report.removed_ids)
    ledger.save_sync_cursor(source, str(run.cursor))
    return run.report
