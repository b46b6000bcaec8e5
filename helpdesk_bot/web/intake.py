"""Webhook intake in batches (group commit): record → count the rate limits and queue → mark
queued, once for all the deliveries that arrive together.

Each request still gets its answer only after its own event is recorded and queued; what is
shared is the cost. Under load, requests pile up while one batch is written, and the next
batch takes them all: one statement records them (and marks the batch before it queued), one
Redis script counts them against the rate limits and queues those the limits let through. At
low load a batch holds one event and this is the plain path.

When the broker is down, a delivery is still answered once its event is recorded; the writer
queues what the broker refused as soon as it answers again (beat's sweeper covers a process
that died first, helpdesk_bot/recovery.py).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import gevent
from gevent import monkey as gevent_monkey

from helpdesk_bot.domain import TicketEvent
from helpdesk_bot.errors import TransientError
from helpdesk_bot.ledger import Ledger
from workers.broker import BROKER_EPOCH_KEY, broker_client, broker_epoch
from helpdesk_bot.web.limits import COUNT_GROUPS_LUA, Checks, Counting, Place, RateLimiter, Verdict

log = logging.getLogger(__name__)

MAX_BATCH = 64
WAIT_SECONDS = 10.0  # Zendesk gives up after about 10 s; a request never waits longer
# How often the watchdog looks for a writer stuck on one batch (see Intake._watch).
WATCH_SECONDS = 0.5
# Events recorded while the broker was down are queued again by this process, every
# RETRY_SECONDS until the broker answers; beat's sweeper is the backstop if the process dies.
RETRY_SECONDS = 1.0
MAX_RETAINED = 10_000
# Events are marked queued in the next batch's transaction, or after this long without one.
MARK_SECONDS = 0.05
# Under load (the last batch held more than one delivery), a batch waits this long for more:
# each costs a fraction of a batch's fixed cost (two round trips), and requests wait anyway.
GATHER_SECONDS = 0.0005


class RateLimited(Exception):
    """A delivery refused by a rate limit; its event, if it was new, is not kept."""

    def __init__(self, limiter: RateLimiter, verdict: Verdict):
        super().__init__(f"rate limit exceeded: at most {limiter.describe()}")
        self.limiter, self.verdict = limiter, verdict


@dataclass
class _Pending:
    event: TicketEvent
    limits: Checks = ()
    done: threading.Event = field(default_factory=threading.Event)
    result: tuple[int, bool] | None = None
    error: BaseException | None = None


class Intake:
    """Records and queues events for the web app's request threads; one writer thread per process.

    One, not several: several writers wait for each other on the SQLite file's write lock, and
    their smaller batches cost more per delivery.
    """

    def __init__(self, ledger: Ledger, enqueue_many: Callable[[list[int]], list[int]] | RedisTaskMessages,
                 max_batch: int = MAX_BATCH):
        self.ledger = ledger
        # Queues event ids and returns those it queued; or RedisTaskMessages, which also
        # counts the batch's rate limits in the same round trip.
        self.enqueue_many = enqueue_many
        self.max_batch = max_batch
        self._pending: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._writing_in = 0  # the id of the process whose writer thread runs
        self._unqueued: list[int] = []  # recorded, not yet queued: the broker was down
        self._to_mark: list[tuple[int, float]] = []  # queued (when), not yet marked so in the ledger
        self._batch: list[_Pending] = []  # the batch being written, since `_batch_since` (monotonic; 0: none)
        self._batch_since = 0.0

    def accept(self, event: TicketEvent, limits: Checks = ()) -> tuple[int, bool]:
        """(event id, True if new); returns once the event is recorded and, if new, queued (or logged as not).

        `limits` are the rate limits the delivery must pass, (limiter, key) in order: they are
        counted for the whole batch at once, and RateLimited is raised for a delivery they refuse.
        """
        self._ensure_writer()
        pending = _Pending(event, limits)
        self._pending.put(pending)
        # No timeout of its own: a per-request timer cost as much as the wait itself, and the
        # watchdog answers a request the writer is stuck on within WAIT_SECONDS.
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.result

    def _ensure_writer(self) -> None:
        # Started on first use, in the process that serves: a thread does not survive a fork
        # (gunicorn --preload forks after the app is built). `_writing_in` is that process's
        # id while its writer runs: one comparison per request, where `is_alive()` took a lock.
        if self._writing_in == os.getpid():
            return
        with self._lock:
            if self._writing_in != os.getpid():
                self._writing_in = os.getpid()
                threading.Thread(target=self._run, name="intake-writer", daemon=True).start()
                threading.Thread(target=self._watch, name="intake-watchdog", daemon=True).start()

    def _run(self) -> None:
        try:
            self._write_batches()
        finally:  # never, short of a bug: the next request starts another writer
            self._writing_in = 0

    def _write_batches(self) -> None:
        busy = False
        while True:
            timeout = MARK_SECONDS if self._to_mark else RETRY_SECONDS if self._unqueued else None
            try:
                batch = [self._pending.get(timeout=timeout)]
            except queue.Empty:
                self._catch_up()
                continue
            if busy:  # let the deliveries arriving right now join this batch: fewer, bigger batches
                time.sleep(GATHER_SECONDS)
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._pending.get_nowait())
                except queue.Empty:
                    break
            busy = len(batch) > 1
            self._batch, self._batch_since = batch, time.monotonic()
            try:
                self._write(batch)
            except BaseException as exc:  # the requests must hear about it; the thread goes on
                _answer(batch, exc)
            finally:
                self._batch, self._batch_since = [], 0.0

    def _watch(self) -> None:
        """Answer the requests of a writer stuck on one batch (a database lock held, a broker
        that does not answer) before Zendesk gives up on them: with a 503, which Zendesk
        retries. The batch may still be recorded; deliveries still waiting are not."""
        pid = os.getpid()
        while self._writing_in == pid:
            time.sleep(WATCH_SECONDS)
            since = self._batch_since
            if since and time.monotonic() - since > WAIT_SECONDS - 2 * WATCH_SECONDS:
                waiting = []
                while True:
                    try:
                        waiting.append(self._pending.get_nowait())
                    except queue.Empty:
                        break
                _answer(self._batch + waiting, TransientError("the ledger did not record the event in time"))

    def _write(self, batch: list[_Pending]) -> None:
        # Events queued by earlier batches are marked queued in this batch's transaction: one
        # write instead of two. Until then they read "received", which a worker may already
        # have moved on from, and which beat's sweeper leaves alone for its first 15 seconds.
        results = _blocking(self.ledger.record_events, [p.event for p in batch], queued=self._to_mark)
        self._to_mark = []
        # Recorded before the rate limits are counted, so that counting and queueing are one
        # round trip to Redis. An event new in this batch is queued if the limits let through
        # one of the requests that carry it (usually one), and forgotten again before the
        # others are refused if they let none through: Zendesk's retry is then a new event.
        counting = Counting([p.limits for p in batch])
        new = {event_id for event_id, is_new in results if is_new}
        carried_by: dict[int, list[int]] = {}  # each new event → the requests carrying it
        for i, (event_id, _) in enumerate(results):
            if event_id in new:
                carried_by.setdefault(event_id, []).append(i)
        self._queue({event_id: [counting.places[i] for i in requests] for event_id, requests in carried_by.items()},
                    counting)
        refusals = counting.refusals()
        forgotten = []
        for event_id, requests in carried_by.items():
            let_through = [i for i in requests if refusals[i] is None]
            if not let_through:
                forgotten.append(event_id)
                continue
            for i in requests:  # the first request let through is the one that made it new
                results[i] = (event_id, i == let_through[0])
        if forgotten:
            _blocking(self.ledger.forget_events, forgotten)
        for pending, result, refused in zip(batch, results, refusals):
            if refused is not None:
                pending.error = RateLimited(*refused)
            else:
                pending.result = result
            pending.done.set()

    def _queue(self, new: dict[int, list[Place]], counting: Counting) -> None:
        """Queue the new events the rate limits let through, with any a down broker left behind.

        `new` gives each event the places in `counting` of the requests that carry it; the
        limits are counted here, with the queueing when the queue can, else just before.
        """
        events = dict(new)  # first: RedisTaskMessages counts the limits with its first 1,000
        if self._unqueued:  # beat may have queued some of those left behind
            events.update((event_id, [(0, 0)]) for event_id in _blocking(self.ledger.still_received, self._unqueued))
        if not events:
            counting.count()
            return
        queued: list[int] = []
        try:
            if isinstance(self.enqueue_many, RedisTaskMessages):
                queued = self.enqueue_many.push(events, counting)
            else:
                counting.count()
                queued = self.enqueue_many([event_id for event_id, places in events.items()
                                            if any(map(counting.lets_through, places))])
        except Exception as exc:
            log.warning("could not queue events %s (%s); they stay recorded and will be queued again", list(events), exc)
        queued_at = time.time()  # after the broker epoch the call may have started: these are in it
        done = set(queued)
        self._unqueued = [event_id for event_id, places in events.items()
                          if event_id not in done and any(map(counting.lets_through, places))][-MAX_RETAINED:]
        self._to_mark += [(event_id, queued_at) for event_id in queued]

    def _catch_up(self) -> None:
        """Without deliveries coming in: retry what the broker refused, mark what was queued."""
        try:
            if self._unqueued:
                self._queue({}, Counting([]))
            if self._to_mark:
                _blocking(self.ledger.mark_queued_many, self._to_mark)
                self._to_mark = []
        except Exception:  # the ledger is down: the next batch or beat's sweeper sees to them
            log.exception("could not queue or mark events")


def _blocking(call: Callable, *args, **kwargs):
    """A ledger call; under gevent in a real thread, so that waiting for the database blocks
    only the writer.

    Under gunicorn's gevent worker the writer is a greenlet, and SQLite waits for a lock held
    elsewhere inside a C call (its busy handler; `flock` in the ledger's writer lock): that
    would stop every greenlet of the process, the watchdog and /healthz included. In a thread
    of gevent's pool the writer greenlet yields while it waits, and the watchdog answers the
    batch's requests with a 503 in time. Redis calls and waking the requests stay in greenlets.
    """
    if not gevent_monkey.is_module_patched("threading"):
        return call(*args, **kwargs)
    return gevent.get_hub().threadpool.apply(call, args, kwargs)


def _answer(requests: list[_Pending], error: BaseException) -> None:
    """Answer with `error` those of the requests not answered yet."""
    for pending in requests:
        if not pending.done.is_set():
            pending.error = error
            pending.done.set()


def celery_enqueue_many(celery, task_name: str = "workers.tasks.answer_ticket") -> Callable[[list[int]], list[int]] | RedisTaskMessages:
    """What queues each event id as a task of `task_name`, all of a batch in one round trip to the broker.

    On Redis the messages are written directly (`RedisTaskMessages`): the broker epoch, the
    batch's rate limits and every message go in one script, so a batch (up to 1,000 events) is
    queued whole or not at all. Other brokers go through Celery's producer.
    """
    direct = RedisTaskMessages.for_celery(celery, task_name)
    if direct is not None:
        return direct

    def enqueue_many(event_ids: list[int]) -> list[int]:
        try:
            # A Redis that restarted empty starts a new data epoch before its first message:
            # beat re-queues what was queued before it (helpdesk_bot/recovery.py).
            broker_epoch(celery)
        except Exception:
            log.exception("could not reach the broker for events %s; they stay recorded and will be queued again",
                          event_ids)
            return []
        queued = []
        with celery.producer_or_acquire() as producer:
            for event_id in event_ids:
                try:
                    celery.send_task(task_name, args=[event_id], producer=producer)
                except Exception:
                    log.exception("could not queue event %s; it stays recorded and will be queued again", event_id)
                    break  # the broker is down: the rest would fail the same way, slowly
                queued.append(event_id)
        return queued

    return enqueue_many


# The broker epoch, the batch's rate limits and its messages in one script: atomic like
# MULTI/EXEC, in one command. KEYS: the epoch, the queue, then the limits' counters; ARGV: the
# epoch's start, the limits' plan (helpdesk_bot/web/limits.py), then (group, position, message)
# for each request carrying a new event, the message '' for the event's other requests: an
# event is queued once, if the limits let through any of its requests.
_PUSH = COUNT_GROUPS_LUA + """
local totals, allowed, a = count_groups(3, 2)
redis.call('SET', KEYS[1], ARGV[1], 'NX')
local messages, message = {}, nil
for i = a, #ARGV, 3 do
  if ARGV[i + 2] ~= '' then message = ARGV[i + 2] end
  local group = tonumber(ARGV[i])
  if message and (group == 0 or tonumber(ARGV[i + 1]) < allowed[group]) then
    messages[#messages + 1] = message
    message = nil
  end
end
if #messages > 0 then redis.call('LPUSH', KEYS[2], unpack(messages)) end
return totals
"""


class RedisTaskMessages:
    """Celery task messages written straight into kombu's Redis queue list.

    Building a message through Celery and kombu (ids, headers, envelope, routing, the
    producer's channel) costs 0.2-0.4 ms of CPU; webhook intake queues one per delivery. Here
    Celery builds one message once (`as_task_v2`), and each event gets a copy with its own
    task id and argument, wrapped the way kombu's Redis transport stores a message
    (`Channel._put`: JSON with a base64 body, pushed with LPUSH onto the queue's list, which
    the worker pops from the other end). tests/test_intake.py checks the result against a
    message Celery sends itself, and the end-to-end tests run real workers on it.
    """

    def __init__(self, client, queue: str, headers: dict, properties: dict, embed: dict, epoch_key: str):
        self.client, self.queue, self.epoch_key = client, queue, epoch_key
        self._push = client.register_script(_PUSH)
        self._body_json = "[[%d], {}, " + json.dumps(embed) + "]"
        # The message as kombu stores it, in pieces: the text between the fields where each
        # message differs, and those fields' names at the odd positions. Joined, not %-formatted:
        # % scans the whole kilobyte for conversions.
        self._pieces = re.split(_marker("(\\w+)"), json.dumps({
            "body": _marker("body"),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {**headers, "id": _marker("task_id"), "root_id": _marker("task_id"),
                        "argsrepr": _marker("args")},
            "properties": {**properties, "correlation_id": _marker("task_id"), "delivery_mode": 2,
                           "delivery_info": {"exchange": "", "routing_key": queue}, "priority": 0,
                           "body_encoding": "base64", "delivery_tag": _marker("tag")},
        }))

    @classmethod
    def for_celery(cls, celery, task_name: str) -> "RedisTaskMessages | None":
        """None unless the broker is Redis with kombu's default key layout and the task takes the default route."""
        conf = celery.conf
        options = conf.broker_transport_options or {}
        if (not str(conf.broker_url).startswith(("redis://", "rediss://", "redis+socket://")) or conf.task_routes
                or options.get("global_keyprefix") or conf.task_send_sent_event or conf.task_queues):
            return None
        # As `celery.send_task(task_name, args=[event_id])` builds it.
        template = celery.amqp.as_task_v2(_marker("task_id"), task_name, args=[0], kwargs={},
                                          reply_to=celery.thread_oid, root_id=_marker("task_id"), ignore_result=None)
        return cls(broker_client(celery), conf.task_default_queue, template.headers, template.properties,
                   template.body[2], BROKER_EPOCH_KEY)

    def message(self, event_id: int, task_id: str, tag: str) -> str:
        """The message for one event, with its task id and kombu's delivery tag (random UUIDs)."""
        event_id = int(event_id)
        body = base64.b64encode((self._body_json % event_id).encode()).decode()
        fields = {"task_id": task_id, "tag": tag, "body": body, "args": f"[{event_id}]"}
        pieces = self._pieces.copy()
        for i in range(1, len(pieces), 2):
            pieces[i] = fields[pieces[i]]
        return "".join(pieces)

    def push(self, events: dict[int, list[Place]], counting: Counting) -> list[int]:
        """Queue each event one of whose requests the rate limits let through, counting them in
        the same script, with the broker epoch started first (workers/broker.py:
        broker_epoch); `events` gives each event the places in `counting` of its requests.
        Returns the event ids queued. The limits are counted with the first 1,000 events, so
        those they apply to must come first."""
        event_ids = list(events)
        for start in range(0, len(event_ids), 1000):  # Lua's unpack takes a few thousand values at most
            chunk = event_ids[start:start + 1000]
            ids = _uuid4s(2 * len(chunk))  # a task id and a delivery tag each
            args = [repr(time.time()), *(counting.args if start == 0 else [0])]
            for event_id, task_id, tag in zip(chunk, ids[::2], ids[1::2]):
                message = self.message(event_id, task_id, tag)
                for group, position in events[event_id]:
                    args += [group, position, message]
                    message = ""
            totals = self._push(keys=[self.epoch_key, self.queue, *(counting.keys if start == 0 else [])], args=args,
                                client=self.client)
            if start == 0:
                counting.settle(totals)
        return [event_id for event_id in event_ids if any(map(counting.lets_through, events[event_id]))]


def _marker(field: str) -> str:
    """Where a message's own value goes in RedisTaskMessages' template."""
    return f"@@{field}@@"


def _uuid4s(n: int) -> list[str]:
    """n random (version 4) UUIDs as strings, several times faster than `str(uuid.uuid4())` each."""
    digits = os.urandom(16 * n).hex()
    return [f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"
            for h in (digits[i:i + 32] for i in range(0, 32 * n, 32))]


def one_by_one(enqueue: Callable[[int], None]) -> Callable[[list[int]], list[int]]:
    """Adapt an `enqueue(event_id)` callable (as tests pass to `create_app`) to batches."""

    def enqueue_many(event_ids: list[int]) -> list[int]:
        queued = []
        for event_id in event_ids:
            try:
                enqueue(event_id)
            except Exception:
                log.exception("could not queue event %s; it stays recorded and will be queued again", event_id)
                continue
            queued.append(event_id)
        return queued

    return enqueue_many
