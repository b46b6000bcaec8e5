"""WSGI entry point: `gunicorn helpdesk_bot.web.wsgi:app`."""

import gc

from helpdesk_bot.settings import Settings
from helpdesk_bot.web.app import create_app

app = create_app(Settings.from_env())

# What is built by now (modules, the app, its clients) lives as long as the process: keep it
# out of the garbage collector's full collections, which otherwise scan all of it with the GIL
# held (~40 ms here, longer on a busy machine) while every request waits: the tail of intake
# latency at a steady 200 requests/s.
gc.freeze()
