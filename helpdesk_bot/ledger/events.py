"""Webhook events and the side effects taken on them: what came in, where it is in the queue,
and which replies and notes were claimed.

The actions table is what makes a reply happen at most once: a worker claims the action row
before it talks to the helpdesk.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from helpdesk_bot.domain import TicketEvent
from helpdesk_bot.ledger.database import Database
from helpdesk_bot.ledger.tables import actions, ticket_events


@dataclass(frozen=True)
class StoredEvent:
    id: int
    event: TicketEvent
    status: str
    attempts: int
    received_at: float


def _row_to_event(row) -> StoredEvent:
    return StoredEvent(
        id=row.id,
        event=TicketEvent(helpdesk=row.helpdesk, delivery_id=row.delivery_id, ticket_id=row.ticket_id, kind=row.kind),
        status=row.status,
        attempts=row.attempts,
        received_at=row.received_at,
    )


class EventStore(Database):
    """Webhook events (`ticket_events`) and the replies and notes claimed on them (`actions`)."""

    def record_event(self, event: TicketEvent) -> tuple[int, bool]:
        """Store a webhook event; return (event id, True if it was new)."""
        try:
            with self.engine.begin() as db:
                result = db.execute(
                    ticket_events.insert().values(
                        helpdesk=event.helpdesk, delivery_id=event.delivery_id, ticket_id=event.ticket_id,
                        kind=event.kind, status="received", attempts=0, received_at=time.time(),
                    )
                )
                return result.inserted_primary_key[0], True
        except IntegrityError:
            with self.engine.connect() as db:
                existing = db.execute(
                    sa.select(ticket_events.c.id).where(
                        ticket_events.c.helpdesk == event.helpdesk, ticket_events.c.delivery_id == event.delivery_id
                    )
                ).scalar_one()
            return existing, False

    def record_events(self, events: list[TicketEvent], queued: list[tuple[int, float]] = ()) -> list[tuple[int, bool]]:
        """Store a batch of webhook events in one transaction; (event id, True if new) for each, in order.

        A delivery seen before, or twice in the batch, is new only the first time. `queued`
        are events queued since the last batch, (event id, when its message was queued), marked
        queued in the same transaction: with that time, not this one, which beat's sweeper
        compares with the broker's data epoch (a message queued before a Redis restart is lost).
        """
        if not events and not queued:
            return []
        dialect = self.engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            for event_id, queued_at in queued:
                self.mark_queued(event_id, queued_at)
            return [self.record_event(event) for event in events]
        first: dict[tuple[str, str], int] = {}
        for i, event in enumerate(events):
            first.setdefault((event.helpdesk, event.delivery_id), i)
        now = time.time()
        # One statement for the whole batch, run on the driver's connection directly: building
        # and running it through SQLAlchemy cost more than the writes.
        mark = "?" if dialect == "sqlite" else "%s"
        rows = [(events[i].helpdesk, events[i].delivery_id, events[i].ticket_id, events[i].kind, now)
                for i in first.values()]
        inserted: dict[tuple[str, str], int] = {}
        existing: dict[tuple[str, str], int] = {}
        with self._writer_lock, self._driver_transaction() as cursor:
            by_time: dict[float, list[int]] = {}  # one time per queueing call, usually one
            for event_id, queued_at in queued:
                by_time.setdefault(queued_at, []).append(int(event_id))
            for queued_at, event_ids in by_time.items():
                cursor.execute(f"UPDATE ticket_events SET status = 'queued', queued_at = {mark} "
                               f"WHERE status = 'received' AND id IN ({', '.join([mark] * len(event_ids))})",
                               (queued_at, *event_ids))
            if rows:
                values = ", ".join([f"({mark}, {mark}, {mark}, {mark}, 'received', 0, {mark})"] * len(rows))
                cursor.execute(
                    "INSERT INTO ticket_events (helpdesk, delivery_id, ticket_id, kind, status, attempts, received_at) "
                    f"VALUES {values} ON CONFLICT (helpdesk, delivery_id) DO NOTHING "
                    "RETURNING id, helpdesk, delivery_id",
                    tuple(value for row in rows for value in row))
                for event_id, helpdesk, delivery_id in cursor.fetchall():
                    inserted[(helpdesk, delivery_id)] = event_id
            seen = [key for key in first if key not in inserted]
            seen_in: dict[str, list[str]] = {}  # helpdesk → its deliveries seen before: one query each
            for helpdesk, delivery_id in seen:
                seen_in.setdefault(helpdesk, []).append(delivery_id)
            for helpdesk, delivery_ids in seen_in.items():
                cursor.execute(f"SELECT id, delivery_id FROM ticket_events WHERE helpdesk = {mark} "
                               f"AND delivery_id IN ({', '.join([mark] * len(delivery_ids))})", (helpdesk, *delivery_ids))
                existing.update(((helpdesk, delivery_id), event_id) for event_id, delivery_id in cursor.fetchall())
        results = []
        for i, event in enumerate(events):
            key = (event.helpdesk, event.delivery_id)
            if key in inserted:
                results.append((inserted[key], first[key] == i))
            else:
                results.append((existing[key], False))
        return results

    def get_event(self, event_id: int) -> StoredEvent | None:
        with self.engine.connect() as db:
            row = db.execute(sa.select(ticket_events).where(ticket_events.c.id == event_id)).first()
        return _row_to_event(row) if row else None

    def events_for(self, helpdesk: str, ticket_id: str) -> list[StoredEvent]:
        with self.engine.connect() as db:
            rows = db.execute(sa.select(ticket_events).where(ticket_events.c.helpdesk == helpdesk,
                                                             ticket_events.c.ticket_id == ticket_id)
                              .order_by(ticket_events.c.id))
            return [_row_to_event(r) for r in rows]

    def set_status(self, event_id: int, status: str, error: str | None = None) -> None:
        values = {"status": status}
        if status in ("done", "dead"):
            values["finished_at"] = time.time()
        if error is not None:
            values["last_error"] = error[:4000]
        with self.engine.begin() as db:
            db.execute(ticket_events.update().where(ticket_events.c.id == event_id).values(**values))

    def mark_queued(self, event_id: int, queued_at: float | None = None) -> None:
        # Only from "received": a fast worker may already have finished the event.
        with self.engine.begin() as db:
            db.execute(ticket_events.update().where(ticket_events.c.id == event_id, ticket_events.c.status == "received")
                       .values(status="queued", queued_at=time.time() if queued_at is None else queued_at))

    def mark_requeued(self, event_id: int) -> None:
        """Note that a new queue message was published for a queued event (a retry, a re-queue)."""
        with self.engine.begin() as db:
            db.execute(ticket_events.update().where(ticket_events.c.id == event_id, ticket_events.c.status == "queued")
                       .values(queued_at=time.time()))

    def still_received(self, event_ids: list[int]) -> list[int]:
        """Those of these events not queued yet, in the order given."""
        with self.engine.connect() as db:
            received = set(db.execute(sa.select(ticket_events.c.id).where(
                ticket_events.c.id.in_(event_ids), ticket_events.c.status == "received")).scalars())
        return [event_id for event_id in event_ids if event_id in received]

    def forget_events(self, event_ids: list[int]) -> None:
        """Delete events intake recorded for deliveries a rate limit then refused (never queued):
        Zendesk's retry of such a delivery is a new event, not a duplicate."""
        with self._writer_lock, self.engine.begin() as db:
            db.execute(ticket_events.delete().where(ticket_events.c.id.in_(event_ids),
                                                    ticket_events.c.status == "received"))

    def mark_queued_many(self, queued: list[tuple[int, float]]) -> None:
        """Mark events queued: (event id, when its message was queued) for each."""
        self.record_events([], queued=queued)

    def count_attempt(self, event_id: int) -> int:
        with self.engine.begin() as db:
            db.execute(ticket_events.update().where(ticket_events.c.id == event_id)
                       .values(attempts=ticket_events.c.attempts + 1))
            return db.execute(sa.select(ticket_events.c.attempts).where(ticket_events.c.id == event_id)).scalar_one()

    def unqueued_events(self, older_than: float) -> list[int]:
        """Events recorded but never queued (the broker was down at intake): to enqueue again."""
        with self.engine.connect() as db:
            return list(db.execute(
                sa.select(ticket_events.c.id).where(
                    ticket_events.c.status == "received", ticket_events.c.received_at < time.time() - older_than
                )
            ).scalars())

    def stalled_events(self, queued_before: float) -> list[int]:
        """Queued events, not finished, whose last queue message was published before this time.

        With a time after which the broker lost its data (a restart without persistence), or
        long enough ago that any live message would have run, these messages are lost.
        """
        last_queued = sa.func.coalesce(ticket_events.c.queued_at, ticket_events.c.received_at)
        with self.engine.connect() as db:
            return list(db.execute(
                sa.select(ticket_events.c.id)
                .where(ticket_events.c.status == "queued", last_queued < queued_before)
                .order_by(ticket_events.c.id)
            ).scalars())

    # --- side effects --------------------------------------------------------------------

    def claim_action(self, key: str, event_id: int, kind: str, body: str) -> dict | None:
        """Claim the right to perform an action; None if it is already claimed or done.

        Returns the claimed row. A claim left by a worker that died mid-call is returned by
        `stale_claim` instead, so the caller can check the helpdesk before acting again.
        """
        try:
            with self.engine.begin() as db:
                db.execute(actions.insert().values(key=key, event_id=event_id, kind=kind, state="claimed",
                                                   body=body, claimed_at=time.time()))
            return {"key": key, "kind": kind, "state": "claimed"}
        except IntegrityError:
            return None

    def actions_of_event(self, event_id: int) -> list[dict]:
        """The replies and notes an event claimed, done or not."""
        with self.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(sa.select(actions).where(actions.c.event_id == event_id))]

    def action(self, key: str) -> dict | None:
        with self.engine.connect() as db:
            row = db.execute(sa.select(actions).where(actions.c.key == key)).first()
        return dict(row._mapping) if row else None

    def finish_action(self, key: str, result: dict) -> None:
        with self.engine.begin() as db:
            db.execute(actions.update().where(actions.c.key == key)
                       .values(state="done", done_at=time.time(), result=json.dumps(result)))

    def release_action(self, key: str) -> None:
        with self.engine.begin() as db:
            db.execute(actions.delete().where(actions.c.key == key, actions.c.state == "claimed"))

    def end_attempt(self, key: str, event_id: int) -> None:
        """The call made under this claim failed and is over: the claim no longer waits out the
        lease, so the retry (after checking the helpdesk) may take it over at once."""
        with self.engine.begin() as db:
            db.execute(actions.update().where(actions.c.key == key, actions.c.state == "claimed",
                                              actions.c.event_id == event_id).values(claimed_at=0.0))

    def reclaim_stale_action(self, key: str, claimed_at: float, lease_seconds: float) -> bool:
        """Take over a claim older than the lease; only one of several racing workers wins."""
        if time.time() - claimed_at < lease_seconds:
            return False
        with self.engine.begin() as db:
            result = db.execute(actions.update().where(
                actions.c.key == key, actions.c.state == "claimed", actions.c.claimed_at == claimed_at
            ).values(claimed_at=time.time()))
        return result.rowcount == 1

    # --- read by the dashboard -----------------------------------------------------------

    def ticket_history(self, helpdesk: str, ticket_id: str) -> tuple[list[dict], list[dict]]:
        """A ticket's events, oldest first, and the replies and notes they claimed, in claim order."""
        with self.engine.connect() as db:
            events = [dict(r._mapping) for r in db.execute(
                sa.select(ticket_events).where(ticket_events.c.helpdesk == helpdesk, ticket_events.c.ticket_id == ticket_id)
                .order_by(ticket_events.c.id))]
            if not events:
                return [], []
            claimed = [dict(r._mapping) for r in db.execute(sa.select(actions).where(
                actions.c.event_id.in_([e["id"] for e in events])).order_by(actions.c.claimed_at))]
        return events, claimed

    def events_by_status(self) -> dict[str, int]:
        """How many events are in each processing status."""
        with self.engine.connect() as db:
            return dict(db.execute(sa.select(ticket_events.c.status, sa.func.count())
                                   .group_by(ticket_events.c.status)).all())


def requeue_for_replay(db: sa.Connection, event_id: int) -> None:
    """Reset an event for another run, in the caller's transaction (replaying a dead letter)."""
    db.execute(ticket_events.update().where(ticket_events.c.id == event_id)
               .values(status="queued", attempts=0, finished_at=None, queued_at=time.time()))


def backdate_event(db: sa.Connection, event_id: int, seconds: float) -> None:
    """Move an event's arrival `seconds` into the past, in the caller's transaction (the demo's history)."""
    db.execute(ticket_events.update().where(ticket_events.c.id == event_id).values(
        received_at=ticket_events.c.received_at - seconds))
