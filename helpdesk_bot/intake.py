"""Webhook intake in batches (group commit): record → queue → mark queued, once for all the
deliveries that arrive together.

Each request still gets its answer only after its own event is recorded and queued; what is
shared is the cost. Under load, requests pile up while one batch is written, and the next
batch takes them all: one transaction records them, one broker connection queues them, one
statement marks them queued. At low load a batch holds one event and this is the plain path.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from dataclasses import dataclass, field
from typing import Callable

from helpdesk_bot.domain import TicketEvent
from helpdesk_bot.errors import TransientError
from helpdesk_bot.ledger import Ledger

log = logging.getLogger(__name__)

MAX_BATCH = 64
WAIT_SECONDS = 10.0  # Zendesk gives up after about 10 s; a request never waits longer


@dataclass
class _Pending:
    event: TicketEvent
    done: threading.Event = field(default_factory=threading.Event)
    result: tuple[int, bool] | None = None
    error: BaseException | None = None


class Intake:
    """Records and queues events for the web app's request threads; one writer thread per process."""

    def __init__(self, ledger: Ledger, enqueue_many: Callable[[list[int]], list[int]], max_batch: int = MAX_BATCH):
        self.ledger = ledger
        self.enqueue_many = enqueue_many  # queues event ids; returns those it queued
        self.max_batch = max_batch
        self._pending: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._writer: threading.Thread | None = None
        self._pid = 0

    def accept(self, event: TicketEvent) -> tuple[int, bool]:
        """(event id, True if new); returns once the event is recorded and, if new, queued (or logged as not)."""
        self._ensure_writer()
        pending = _Pending(event)
        self._pending.put(pending)
        if not pending.done.wait(WAIT_SECONDS):
            raise TransientError("the ledger did not record the event in time")
        if pending.error is not None:
            raise pending.error
        return pending.result

    def _ensure_writer(self) -> None:
        # Started on first use, in the process that serves: a thread does not survive a fork
        # (gunicorn --preload forks after the app is built).
        if self._writer is not None and self._writer.is_alive() and self._pid == os.getpid():
            return
        with self._lock:
            if self._writer is None or not self._writer.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()
                self._writer = threading.Thread(target=self._run, name="intake-writer", daemon=True)
                self._writer.start()

    def _run(self) -> None:
        while True:
            batch = [self._pending.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._pending.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write(batch)
            except BaseException as exc:  # the requests must hear about it; the thread goes on
                for pending in batch:
                    if not pending.done.is_set():
                        pending.error = exc
                        pending.done.set()

    def _write(self, batch: list[_Pending]) -> None:
        results = self.ledger.record_events([p.event for p in batch])
        new = [event_id for event_id, is_new in results if is_new]
        queued: list[int] = []
        if new:
            try:
                queued = self.enqueue_many(new)
            except Exception:  # the broker is down: the events stay recorded; beat queues them later
                log.exception("could not queue events %s; they stay recorded and will be queued again", new)
            if queued:
                self.ledger.mark_queued_many(queued)
        for pending, result in zip(batch, results):
            pending.result = result
            pending.done.set()


def celery_enqueue_many(celery, task_name: str = "workers.tasks.answer_ticket") -> Callable[[list[int]], list[int]]:
    """Queue each event id as a task: one producer per batch and, with kombu ≥ 5.7 on Redis, one
    pipelined round trip for all of them (`Producer.batch`)."""

    def enqueue_many(event_ids: list[int]) -> list[int]:
        from workers.celery_app import broker_epoch

        try:
            # A Redis that restarted empty starts a new data epoch before its first message:
            # beat re-queues what was queued before it (helpdesk_bot/recovery.py).
            broker_epoch(celery)
        except Exception:
            log.exception("could not reach the broker for events %s; they stay recorded and will be queued again",
                          event_ids)
            return []
        with celery.producer_or_acquire() as producer:
            if hasattr(producer, "batch"):
                try:
                    with producer.batch():  # buffered; sent together when the block ends
                        for event_id in event_ids:
                            celery.send_task(task_name, args=[event_id], producer=producer)
                except Exception:
                    log.exception("could not queue events %s; they stay recorded and will be queued again", event_ids)
                    return []
                return list(event_ids)
            queued = []
            for event_id in event_ids:
                try:
                    celery.send_task(task_name, args=[event_id], producer=producer)
                except Exception:
                    log.exception("could not queue event %s; it stays recorded and will be queued again", event_id)
                    break  # the broker is down: the rest would fail the same way, slowly
                queued.append(event_id)
            return queued

    return enqueue_many


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
