"""One beat sends, however many run: a Redis lock with an expiry decides which.

Run two or more `helpdesk-bot beat` replicas for availability: each keeps its schedule, but a
due task is sent only by the replica holding the lock `helpdesk-bot:beat-leader`. The holder
renews it every third of its lifetime; if the holder dies, the lock expires and another
replica takes over within `HELPDESK_BEAT_LOCK_SECONDS` (default 30). Replicas that stand by
still step through the schedule, so a takeover neither re-sends what the old leader sent
nor fires a missed nightly job twice.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid

import redis
from celery.beat import PersistentScheduler

from helpdesk_bot.settings import Settings
from workers.broker import broker_url, redis_client

log = logging.getLogger(__name__)

LOCK_KEY = "helpdesk-bot:beat-leader"
DEFAULT_LOCK_SECONDS = 30.0

# Take the lock if it is free, extend it if it is ours; never touch another holder's lock.
_ACQUIRE_OR_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
elseif not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""



class LeaderLock:
    """A lock held by one process at a time, which expires `ttl` seconds after its last renewal."""

    def __init__(self, client: redis.Redis, key: str = LOCK_KEY, ttl: float = DEFAULT_LOCK_SECONDS,
                 holder: str | None = None):
        self.client, self.key, self.ttl = client, key, ttl
        self.holder = holder or f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._acquire_or_renew = client.register_script(_ACQUIRE_OR_RENEW)
        self._release = client.register_script(_RELEASE)

    def acquire_or_renew(self) -> bool:
        """Hold the lock for another `ttl` seconds; False while someone else holds it."""
        return bool(self._acquire_or_renew(keys=[self.key], args=[self.holder, int(self.ttl * 1000)]))

    def release(self) -> None:
        self._release(keys=[self.key], args=[self.holder])

    def current_holder(self) -> str | None:
        return running_beat(self.client, self.key)


def running_beat(client: redis.Redis, key: str = LOCK_KEY) -> str | None:
    """The beat that sends scheduled tasks now (the lock holder), or None when none runs: the
    lock expires `HELPDESK_BEAT_LOCK_SECONDS` after its holder stops renewing it."""
    value = client.get(key)
    return value.decode() if value is not None else None


class SingleBeatScheduler(PersistentScheduler):
    """Celery beat's file-backed scheduler, sending due tasks only while it holds the beat lock."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lock = LeaderLock(redis_client(self.app.conf.broker_url, timeout=5), ttl=self.app.helpdesk_settings.beat_lock_seconds)
        self.leader: bool | None = None  # unknown until the first check, which is always logged
        self._checked_at = 0.0

    def _check(self) -> bool:
        # Every Redis call stays inside the try: an error escaping tick() ends the beat process
        # (Celery's beat does not catch it), and with it every scheduled task, for good.
        try:
            leader = self.lock.acquire_or_renew()
            holder = None if leader or self.leader is False else self.lock.current_holder()
        except redis.RedisError as exc:  # without the lock nobody may send: stand by until Redis answers
            log.warning("beat: cannot reach Redis for the beat lock (%s); not sending", exc)
            leader, holder = False, "unknown: Redis unreachable"
        if leader != self.leader:
            if leader:
                log.info("beat: holding the beat lock (%s); sending scheduled tasks", self.lock.holder)
            else:
                log.info("beat: another beat holds the lock (%s); standing by", holder)
        self.leader = leader
        self._checked_at = time.monotonic()
        return leader

    def tick(self, *args, **kwargs):
        if time.monotonic() - self._checked_at >= self.lock.ttl / 3:
            self._check()
        delay = super().tick(*args, **kwargs)
        # Wake up often enough to renew the lock before it expires (or to take it over).
        return min(delay, max(self.lock.ttl / 3 - (time.monotonic() - self._checked_at), 0.1))

    def apply_entry(self, entry, producer=None):
        if not self._check():  # checked again right before sending: leadership may have moved
            log.debug("beat: standing by; not sending %s", entry.name)
            return
        super().apply_entry(entry, producer=producer)

    def close(self):
        super().close()
        if self.leader:
            try:
                self.lock.release()  # a standby takes over at its next check, not after the expiry
            except redis.RedisError:
                pass


def probe() -> None:
    """Liveness of a beat: exit 0 while some beat holds the lock, 1 (saying why) when none does.

    A running beat renews the lock every third of its lifetime, so a missing lock means the
    beat in this pod (the only one, or the standby that should have taken over) is stuck.
    """
    try:
        holder = running_beat(redis_client(broker_url(Settings.from_env()), timeout=5))
    except Exception as exc:  # noqa: BLE001 (any failure is a failed probe, said plainly)
        sys.exit(f"beat probe: cannot read the beat lock: {exc}")
    if holder is None:
        sys.exit("beat probe: no beat holds the lock")
    print(f"beat lock held by {holder}")
