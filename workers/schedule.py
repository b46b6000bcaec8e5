"""Scheduled jobs, registered next to the tasks they run."""

from __future__ import annotations

import os

from celery.schedules import crontab

from helpdesk_bot.errors import ConfigError

DEFAULT_REINDEX_CRON = "15 3 * * *"  # nightly, 03:15 UTC
DEFAULT_REQUEUE_SECONDS = 60.0


def beat_schedule() -> dict:
    return {
        # Finds events whose queue message never got to, or was lost in, the broker.
        "requeue-unqueued-events": {"task": "workers.tasks.requeue_unqueued_events", "schedule": requeue_seconds()},
        "nightly-reindex": {"task": "workers.tasks.reindex_help_center", "schedule": reindex_cron()},
        # Reopens, agent feedback and CSAT of recent answers; then the dashboard's topics.
        "check-outcomes": {"task": "workers.tasks.check_outcomes", "schedule": 15 * 60.0},
        "refresh-topics": {"task": "workers.tasks.refresh_topics", "schedule": crontab(minute=40)},
    }


def reindex_cron() -> crontab:
    spec = os.environ.get("HELPDESK_REINDEX_CRON", DEFAULT_REINDEX_CRON)
    fields = spec.split()
    if len(fields) != 5:
        raise ConfigError(f"HELPDESK_REINDEX_CRON must have 5 cron fields, got {spec!r}")
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    try:
        return crontab(minute=minute, hour=hour, day_of_month=day_of_month,
                       month_of_year=month_of_year, day_of_week=day_of_week)
    except ValueError as exc:
        raise ConfigError(f"HELPDESK_REINDEX_CRON {spec!r}: {exc}") from None


def requeue_seconds() -> float:
    raw = os.environ.get("HELPDESK_REQUEUE_SECONDS", "").strip()
    if not raw:
        return DEFAULT_REQUEUE_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        raise ConfigError(f"HELPDESK_REQUEUE_SECONDS must be a number of seconds, got {raw!r}") from None
    if seconds <= 0:
        raise ConfigError("HELPDESK_REQUEUE_SECONDS must be positive")
    return seconds
