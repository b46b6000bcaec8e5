"""Tasks are thin: load by id, call the pipeline, retry what is transient, dead-letter the rest."""

from __future__ import annotations

import logging
import random
import threading
import time

from celery.signals import worker_ready

from helpdesk_bot.errors import ActionInProgress, AIUnavailable, PermanentError, TransientError
from workers.celery_app import celery_app, settings

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 600
# The web app queues an event within a second or two of recording it (longer only while the
# broker is down); an event still "received" after this was never queued.
RECEIVED_GRACE_SECONDS = 15
_pipeline = None
_pipeline_lock = threading.Lock()  # thread-pool workers must build one pipeline, not one each


def pipeline():
    global _pipeline
    with _pipeline_lock:
        if _pipeline is None:
            from helpdesk_bot.services import build_pipeline

            _pipeline = build_pipeline(settings)
        return _pipeline


@worker_ready.connect
def _warm_up(**_) -> None:
    """Load the model and open the index before the first ticket, not during it."""
    pipeline().answerer.retriever.embedder.embed(["warm up"])


def backoff(attempt: int, retry_after: float | None, first: float | None = None) -> float:
    """Exponential backoff with jitter, never shorter than what the other side asked for.

    The first retry waits `first` seconds (HELPDESK_RETRY_BACKOFF, 2 s), each next one twice
    as long, up to MAX_BACKOFF_SECONDS; a Retry-After above that cap is still honoured.
    """
    first = settings.retry_backoff if first is None else first
    delay = min(first * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS) * random.uniform(0.75, 1.25)
    return max(delay, retry_after or 0.0)


@celery_app.task(bind=True, max_retries=None, acks_late=True)
def answer_ticket(self, event_id: int) -> str:
    try:
        p = pipeline()
    except Exception as exc:  # e.g. the index is still locked by an `index` run: try again later
        raise self.retry(exc=exc, countdown=backoff(self.request.retries + 1, None)) from exc
    try:
        result = p.handle_event(event_id)
    except ActionInProgress as exc:  # waiting for another worker's claim is not a failed attempt
        p.ledger.mark_requeued(event_id)
        raise self.retry(exc=exc, countdown=exc.retry_after) from exc
    except TransientError as exc:
        attempts = p.ledger.count_attempt(event_id)
        if attempts >= settings.max_attempts:
            log.error("event %s failed after %s attempts: %s", event_id, attempts, exc)
            p.report_failure(event_id, f"gave up after {attempts} attempts: {exc}",
                             ai_unavailable=isinstance(exc, AIUnavailable))
            return "dead-lettered"
        log.warning("event %s: transient failure (attempt %s): %s", event_id, attempts, exc)
        p.ledger.mark_requeued(event_id)
        raise self.retry(exc=exc, countdown=backoff(attempts, exc.retry_after)) from exc
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


@celery_app.task
def requeue_unqueued_events() -> int:
    """Queue again the events whose queue message never reached the broker or was lost there.

    Two ways a message goes missing: the broker was down when the webhook came in (the event
    stays "received"), or Redis restarted without persistence and dropped its queue (the event
    stays "queued"). A message older than HELPDESK_REQUEUE_AFTER counts as lost too. Queueing
    an event twice is harmless: the pipeline's action claims let only one reply or note out.
    """
    ledger = pipeline().ledger
    received = ledger.unqueued_events(older_than=RECEIVED_GRACE_SECONDS)
    for event_id in received:
        answer_ticket.delay(event_id)
        ledger.mark_queued(event_id)
    lost_before = max(broker_data_since(), time.time() - settings.requeue_after)
    stalled = ledger.stalled_events(queued_before=lost_before)
    for event_id in stalled:
        answer_ticket.delay(event_id)
        ledger.mark_requeued(event_id)
    if received or stalled:
        log.warning("re-queued %s never-queued and %s lost events", len(received), len(stalled))
    return len(received) + len(stalled)


def broker_data_since() -> float:
    from workers.celery_app import broker_epoch

    return broker_epoch(celery_app)


@celery_app.task
def reindex_help_center() -> dict:
    """Bring the knowledge index in line with the helpdesk's published articles."""
    from helpdesk_bot.knowledge import sync_index

    p = pipeline()
    articles = p.helpdesk.articles()
    report = sync_index(p.retriever.store, p.retriever.embedder, articles)
    log.info("re-index: %s", report.as_dict())
    return report.as_dict()
