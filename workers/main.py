"""The Celery app built from the environment: `celery -A workers.main worker|beat|inspect`."""

from helpdesk_bot.settings import Settings
from workers.celery_app import create_celery

celery_app = create_celery(Settings.from_env())
