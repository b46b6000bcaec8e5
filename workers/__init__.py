"""Celery workers: the queue between the webhook and the pipeline."""
