"""Tasks are thin: load by id, call the pipeline, retry what is transient, dead-letter the rest."""

from __future__ import annotations

import logging
import random
import threading
from functools import partial

from celery import Celery, shared_task
from celery.signals import worker_ready

from helpdesk_bot.errors import ActionInProgress, AIUnavailable, PermanentError, TransientError
from helpdesk_bot.helpdesk import PastTicketsFeed
from helpdesk_bot.indexing import index_help_center, index_past_tickets
from helpdesk_bot.outcomes import check_outcomes as check
from helpdesk_bot.recovery import requeue_lost_events
from helpdesk_bot.services import build_pipeline
from helpdesk_bot.settings import Settings
from helpdesk_bot.topics import refresh_topics as refresh
from workers.broker import broker_epoch
from workers.celery_app import queue_answer

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 600
_pipeline = None
_pipeline_lock = threading.Lock()  # thread-pool workers must build one pipeline, not one each


def settings(app: Celery) -> Settings:
    """The settings the worker's Celery app was built with (workers/celery_app.py)."""
    return app.helpdesk_settings


def pipeline(app: Celery):
    global _pipeline
    with _pipeline_lock:
        if _pipeline is None:
            _pipeline = build_pipeline(settings(app))
        return _pipeline


@worker_ready.connect
def _warm_up(sender, **_) -> None:
    """Load the model and open the index before the first ticket, not during it."""
    pipeline(sender.app).answerer.retriever.embedder.embed(["warm up"])


def backoff(attempt: int, retry_after: float | None, first: float) -> float:
    """Exponential backoff with jitter, never shorter than what the other side asked for.

    The first retry waits `first` seconds (HELPDESK_RETRY_BACKOFF, 2 s), each next one twice
    as long, up to MAX_BACKOFF_SECONDS; a Retry-After above that cap is still honoured.
    """
    delay = min(first * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS) * random.uniform(0.75, 1.25)
    return max(delay, retry_after or 0.0)


@shared_task(bind=True, max_retries=None, acks_late=True)
def answer_ticket(self, event_id: int) -> str:
    try:
        p = pipeline(self.app)
    except Exception as exc:  # e.g. the index is still locked by an `index` run: try again later
        raise self.retry(exc=exc, countdown=backoff(self.request.retries + 1, None, settings(self.app).retry_backoff)) from exc
    try:
        result = p.handle_event(event_id)
    except ActionInProgress as exc:  # waiting for another worker's claim is not a failed attempt
        p.ledger.mark_requeued(event_id)
        raise self.retry(exc=exc, countdown=exc.retry_after) from exc
    except TransientError as exc:
        attempts = p.ledger.count_attempt(event_id)
        if attempts >= settings(self.app).max_attempts:
            log.error("event %s failed after %s attempts: %s", event_id, attempts, exc)
            p.report_failure(event_id, f"gave up after {attempts} attempts: {exc}",
                             ai_unavailable=isinstance(exc, AIUnavailable))
            return "dead-lettered"
        log.warning("event %s: transient failure (attempt %s): %s", event_id, attempts, exc)
        p.ledger.mark_requeued(event_id)
        raise self.retry(exc=exc, countdown=backoff(attempts, exc.retry_after, settings(self.app).retry_backoff)) from exc
    except PermanentError as exc:
        log.error("event %s failed: %s", event_id, exc)
        p.report_failure(event_id, str(exc))
        return "dead-lettered"
    except Exception as exc:  # a bug must still end in a visible place, not in the worker log alone
        log.exception("event %s crashed", event_id)
        p.report_failure(event_id, f"unexpected error: {exc!r}")
        return "dead-lettered"
    log.info("event %s: %s", event_id, result)
    return result


@shared_task(bind=True)
def requeue_unqueued_events(self) -> int:
    """Queue again the events whose queue message never reached the broker or was lost there."""
    requeued = requeue_lost_events(pipeline(self.app).ledger, partial(queue_answer, self.app), broker_epoch(self.app),
                                   settings(self.app).requeue_after)
    if requeued.count:
        log.warning("re-queued %s never-queued and %s lost events", len(requeued.never_queued), len(requeued.lost))
    return requeued.count


@shared_task(bind=True)
def reindex_help_center(self) -> dict:
    """Bring the knowledge index in line with the helpdesk's published articles (and its solved
    tickets when HELPDESK_INDEX_PAST_TICKETS is on)."""
    settings = self.app.helpdesk_settings
    p = pipeline(self.app)
    embedder = p.answerer.retriever.embedder
    helpdesk = p.helpdesks[settings.knowledge_helpdesk]
    report = index_help_center(settings, p.ledger, embedder, helpdesk)
    log.info("re-index: %s", report.as_dict())
    if not settings.index_past_tickets:
        return report.as_dict()
    if not isinstance(helpdesk, PastTicketsFeed):
        log.warning("HELPDESK_INDEX_PAST_TICKETS is on, but %s has no past tickets to index (Zendesk only)", helpdesk.name)
        return report.as_dict()
    past = index_past_tickets(settings, p.ledger, embedder, helpdesk)
    log.info("past tickets: %s", past.as_dict())
    return {**report.as_dict(), "past_tickets": past.as_dict()}


@shared_task(bind=True)
def check_outcomes(self) -> dict:
    """Record what became of recent answers: reopens within 72 h, agent feedback, CSAT."""
    p = pipeline(self.app)
    counts = check(p.ledger, p.helpdesks)
    log.info("outcomes: %s", counts)
    return counts


@shared_task(bind=True)
def refresh_topics(self) -> int:
    """Cluster recent tickets into topics for the dashboard's common questions and knowledge gaps."""
    p = pipeline(self.app)
    return refresh(p.ledger, p.answerer.retriever.embedder)
