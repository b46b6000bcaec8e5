"""Finding the events whose queue message was lost, so the scheduler can queue them again.

A message goes missing in two ways: the broker was down when the webhook came in (the event
stays "received"), or Redis restarted without persistence and dropped its queues (the event
stays "queued", its message gone). Queueing an event twice is harmless: the pipeline's action
claims let only one reply or note out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from helpdesk_bot.ledger import Ledger

# The web app queues an event within a second or two of recording it (longer only while the
# broker is down); an event still "received" after this was never queued.
RECEIVED_GRACE_SECONDS = 15


@dataclass(frozen=True)
class Requeued:
    never_queued: list[int]
    lost: list[int]

    @property
    def count(self) -> int:
        return len(self.never_queued) + len(self.lost)


def requeue_lost_events(ledger: Ledger, enqueue: Callable[[int], None], broker_data_since: float,
                        requeue_after: float, now: float | None = None) -> Requeued:
    """Queue again events never queued, and queued events whose last message is lost: published
    before the broker's data epoch, or longer than `requeue_after` seconds ago."""
    now = time.time() if now is None else now
    never_queued = ledger.unqueued_events(older_than=RECEIVED_GRACE_SECONDS)
    for event_id in never_queued:
        enqueue(event_id)
        ledger.mark_queued(event_id)
    lost = ledger.stalled_events(queued_before=max(broker_data_since, now - requeue_after))
    for event_id in lost:
        enqueue(event_id)
        ledger.mark_requeued(event_id)
    return Requeued(never_queued, lost)
