"""The Celery app factory. The app `celery -A` names is built in workers/main.py."""

from __future__ import annotations

from celery import Celery

from helpdesk_bot.services import init_sentry
from helpdesk_bot.settings import Settings
from workers.broker import broker_epoch, broker_url
from workers.schedule import beat_schedule


def create_celery(settings: Settings) -> Celery:
    init_sentry(settings)
    app = Celery("helpdesk_bot", include=["workers.tasks"])
    app.conf.update(
        broker_url=broker_url(settings),
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        # A task is acknowledged only after it ran, and given back if its worker dies, so a
        # killed worker loses nothing; the pipeline makes the second run harmless.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Redis hands an unacknowledged task (its worker was killed) to another worker after
        # this long; longer than any task runs (HELPDESK_VISIBILITY_TIMEOUT).
        broker_transport_options=redis_transport_options(settings.visibility_timeout),
        beat_schedule=beat_schedule(settings),
        # Beat replicas may run side by side: only the holder of a Redis lock sends (workers/beat_lock.py).
        beat_scheduler="workers.beat_lock:SingleBeatScheduler",
        timezone="UTC",
    )
    app.helpdesk_settings = settings  # what the tasks (workers/tasks.py) and the beat lock read
    return app


def redis_transport_options(visibility_timeout: int) -> dict:
    """Redis transport options that hand a dead worker's tasks on about `visibility_timeout` later.

    kombu only scans for expired unacknowledged messages every `unacked_restore_interval` ×
    `unacked_restore_throttle` seconds (10 × 10 by default), so with a short visibility
    timeout the scan must run more often or it, not the timeout, sets the delay.
    """
    interval = min(10.0, max(1.0, visibility_timeout / 4))
    throttle = max(1, min(10, int(visibility_timeout / (2 * interval * 10)) or 1))
    return {"visibility_timeout": visibility_timeout, "unacked_restore_interval": interval,
            "unacked_restore_throttle": throttle}


def queue_answer(app: Celery, event_id: int) -> None:
    """Queue a recorded event for a worker, starting the broker epoch first if it is new."""
    broker_epoch(app)
    app.send_task("workers.tasks.answer_ticket", args=[event_id])
