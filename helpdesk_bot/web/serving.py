"""The gunicorn worker `serve` runs: gevent's, with a cap on the connections one client holds.

Slow clients (slowloris) open connections and send a request a byte at a time; each holds one of
a process's `--connections` slots until the server gives up on it. What bounds them:

- headers: gunicorn reads a request's headers within its keep-alive timeout (2 s);
- body: the web app reads it within HELPDESK_BODY_READ_SECONDS, and only after the checks that
  need no body (rate limit, size, signature headers) have passed (web/app.py, _raw_body);
- this worker: one client address holds at most HELPDESK_MAX_CONNECTIONS_PER_IP connections per
  process, so one sender cannot take every slot while it is being timed out. A reverse proxy in
  front (deploy/README.md) buffers requests itself; set the cap to 0 there, since every
  connection then comes from the proxy.
"""

from __future__ import annotations

import logging
from collections import Counter

from gunicorn.workers.ggevent import GeventWorker

from helpdesk_bot.settings import Settings

log = logging.getLogger(__name__)

TOO_MANY_CONNECTIONS = (b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 5\r\n"
                        b"Content-Type: text/plain\r\nContent-Length: 37\r\n\r\ntoo many connections from one address\n")


class CappedGeventWorker(GeventWorker):
    """gevent's worker, refusing a client address's connections beyond the cap at once."""

    def init_process(self):
        self.max_per_ip = Settings.from_env(require_webhook_secret=False).max_connections_per_ip
        self.open_per_ip: Counter[str] = Counter()
        super().init_process()

    def handle(self, listener, client, addr):
        ip = addr[0] if isinstance(addr, tuple) else ""  # a Unix socket has no client address
        if self.max_per_ip and ip and self.open_per_ip[ip] >= self.max_per_ip:
            try:
                client.sendall(TOO_MANY_CONNECTIONS)
            except OSError:
                pass
            client.close()
            return
        self.open_per_ip[ip] += 1
        try:
            super().handle(listener, client, addr)
        finally:
            self.open_per_ip[ip] -= 1
            if not self.open_per_ip[ip]:
                del self.open_per_ip[ip]
