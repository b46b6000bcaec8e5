"""Scheduled jobs, registered next to the tasks they run."""

from __future__ import annotations

from celery.schedules import crontab

from helpdesk_bot.errors import ConfigError
from helpdesk_bot.settings import Settings



def beat_schedule(settings: Settings) -> dict:
    return {
        # Finds events whose queue message never got to, or was lost in, the broker.
        "requeue-unqueued-events": {"task": "workers.tasks.requeue_unqueued_events", "schedule": settings.requeue_seconds},
        "nightly-reindex": {"task": "workers.tasks.reindex_help_center", "schedule": reindex_cron(settings.reindex_cron)},
        # Reopens, agent feedback and CSAT of recent answers; then the dashboard's topics.
        "check-outcomes": {"task": "workers.tasks.check_outcomes", "schedule": 15 * 60.0},
        "refresh-topics": {"task": "workers.tasks.refresh_topics", "schedule": crontab(minute=40)},
    }


def reindex_cron(spec: str) -> crontab:
    minute, hour, day_of_month, month_of_year, day_of_week = spec.split()
    try:
        return crontab(minute=minute, hour=hour, day_of_month=day_of_month,
                       month_of_year=month_of_year, day_of_week=day_of_week)
    except ValueError as exc:
        raise ConfigError(f"HELPDESK_REINDEX_CRON {spec!r}: {exc}") from None
