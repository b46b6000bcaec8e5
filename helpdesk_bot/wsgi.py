"""WSGI entry point: `gunicorn helpdesk_bot.wsgi:app`."""

from helpdesk_bot.webapp import create_app

app = create_app()
