"""The Celery app. `celery -A workers.celery_app worker` and `helpdesk-bot worker` both use it."""

from __future__ import annotations

from celery import Celery

from helpdesk_bot.settings import Settings


def create_celery(settings: Settings) -> Celery:
    from helpdesk_bot.services import broker_url, init_sentry
    from workers.schedule import beat_schedule

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
        # Redis redelivers an unacknowledged task after this long; longer than any task runs.
        broker_transport_options={"visibility_timeout": 900},
        beat_schedule=beat_schedule(),
        # Beat replicas may run side by side: only the holder of a Redis lock sends (workers/beat_lock.py).
        beat_scheduler="workers.beat_lock:SingleBeatScheduler",
        timezone="UTC",
    )
    return app


settings = Settings.from_env()
celery_app = create_celery(settings)
