"""The ledger: every webhook event, every decision, every side effect, every dead letter.

SQLite by default, PostgreSQL through `DATABASE_URL`. The side-effect table is what makes a
reply happen at most once: a worker claims the action row before it talks to the helpdesk.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from helpdesk_bot.domain import Outcome, TicketEvent

metadata = sa.MetaData()

ticket_events = sa.Table(
    "ticket_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("helpdesk", sa.String(32), nullable=False),
    sa.Column("delivery_id", sa.String(200), nullable=False),
    sa.Column("ticket_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    # received → queued → done | dead; "received" rows older than a minute were never queued
    sa.Column("status", sa.String(16), nullable=False, default="received"),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float),
    sa.Column("last_error", sa.Text),
    sa.UniqueConstraint("helpdesk", "delivery_id", name="uq_event_delivery"),
)

actions = sa.Table(
    "actions",
    metadata,
    # One row per thing we may say on a ticket; its key is what must never happen twice.
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("event_id", sa.Integer, sa.ForeignKey("ticket_events.id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # reply | note
    sa.Column("state", sa.String(16), nullable=False),  # claimed | done
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("claimed_at", sa.Float, nullable=False),
    sa.Column("done_at", sa.Float),
    sa.Column("result", sa.Text),
)

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("event_id", sa.Integer, sa.ForeignKey("ticket_events.id"), nullable=False, unique=True),
    sa.Column("helpdesk", sa.String(32), nullable=False),
    sa.Column("ticket_id", sa.String(64), nullable=False),
    sa.Column("tags", sa.Text, nullable=False),
    sa.Column("question", sa.Text, nullable=False),
    sa.Column("sources", sa.Text, nullable=False),
    sa.Column("draft", sa.Text, nullable=False),
    sa.Column("drafter", sa.String(32), nullable=False),
    sa.Column("confidence", sa.Integer, nullable=False),
    sa.Column("components", sa.Text, nullable=False),
    sa.Column("rule", sa.Text, nullable=False),
    sa.Column("threshold", sa.Integer, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("reasons", sa.Text, nullable=False),
    sa.Column("latency_ms", sa.Text, nullable=False),
    sa.Column("prompt_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("completion_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", sa.Float, nullable=False),
)

reopens = sa.Table(
    "reopens",
    metadata,
    # A customer wrote again on a ticket the bot had answered: one row per customer message.
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("event_id", sa.Integer, sa.ForeignKey("ticket_events.id"), nullable=False),
    sa.Column("helpdesk", sa.String(32), nullable=False),
    sa.Column("ticket_id", sa.String(64), nullable=False),
    sa.Column("message_id", sa.String(64), nullable=False),
    # question | not_helped | human_requested | thanks (see helpdesk_bot/conversation.py)
    sa.Column("follow_up", sa.String(32), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("helpdesk", "ticket_id", "message_id", name="uq_reopen_message"),
)

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("event_id", sa.Integer, sa.ForeignKey("ticket_events.id"), nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("human_notified", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("replayed_at", sa.Float),
)

index_runs = sa.Table(
    "index_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("finished_at", sa.Float, nullable=False),
    sa.Column("report", sa.Text, nullable=False),  # IndexReport.as_dict() as JSON
)


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


class Ledger:
    def __init__(self, database_url: str):
        kwargs = {}
        if database_url.startswith("sqlite"):
            # Web and worker processes share the file: wait for each other's locks.
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        self.engine = sa.create_engine(database_url, pool_pre_ping=True, **kwargs)
        if database_url.startswith("sqlite"):
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)

    def create_schema(self) -> None:
        metadata.create_all(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()

    # --- events --------------------------------------------------------------------------

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

    def mark_queued(self, event_id: int) -> None:
        # Only from "received": a fast worker may already have finished the event.
        with self.engine.begin() as db:
            db.execute(ticket_events.update().where(ticket_events.c.id == event_id, ticket_events.c.status == "received")
                       .values(status="queued"))

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

    def reclaim_stale_action(self, key: str, claimed_at: float, lease_seconds: float) -> bool:
        """Take over a claim older than the lease; only one of several racing workers wins."""
        if time.time() - claimed_at < lease_seconds:
            return False
        with self.engine.begin() as db:
            result = db.execute(actions.update().where(
                actions.c.key == key, actions.c.state == "claimed", actions.c.claimed_at == claimed_at
            ).values(claimed_at=time.time()))
        return result.rowcount == 1

    # --- decisions and dead letters -------------------------------------------------------

    def record_decision(self, event_id: int, outcome: Outcome, latency_ms: dict[str, float]) -> None:
        ticket, draft, confidence, decision = outcome.ticket, outcome.draft, outcome.confidence, outcome.decision
        with self.engine.begin() as db:
            # A retried event replaces its decision: one row per event.
            db.execute(decisions.delete().where(decisions.c.event_id == event_id))
            db.execute(decisions.insert().values(
                event_id=event_id, helpdesk=ticket.helpdesk, ticket_id=ticket.id,
                tags=json.dumps(sorted(ticket.tags)), question=ticket.question,
                sources=json.dumps([{"id": s.chunk.id, "score": s.score, "dense": s.dense, "keyword": s.keyword}
                                    for s in outcome.sources]),
                draft=draft.text, drafter=draft.drafter, confidence=confidence.score,
                components=json.dumps(confidence.as_dict()), rule=decision.rule, threshold=decision.threshold,
                action=decision.action, reasons=json.dumps(list(decision.reasons)),
                latency_ms=json.dumps({k: round(v, 1) for k, v in latency_ms.items()}),
                prompt_tokens=draft.prompt_tokens, completion_tokens=draft.completion_tokens, created_at=time.time(),
            ))

    def decisions_for(self, ticket_id: str, helpdesk: str | None = None) -> list[dict]:
        query = sa.select(decisions).where(decisions.c.ticket_id == ticket_id)
        if helpdesk is not None:
            query = query.where(decisions.c.helpdesk == helpdesk)
        with self.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(query.order_by(decisions.c.id))]

    def record_reopen(self, event_id: int, helpdesk: str, ticket_id: str, message_id: str, follow_up: str) -> bool:
        """Record that the customer wrote again after a bot answer; False if already recorded."""
        try:
            with self.engine.begin() as db:
                db.execute(reopens.insert().values(event_id=event_id, helpdesk=helpdesk, ticket_id=ticket_id,
                                                   message_id=message_id[:64], follow_up=follow_up,
                                                   created_at=time.time()))
            return True
        except IntegrityError:  # the same follow-up delivered again
            return False

    def reopens_for(self, helpdesk: str, ticket_id: str) -> list[dict]:
        with self.engine.connect() as db:
            rows = db.execute(sa.select(reopens).where(reopens.c.helpdesk == helpdesk, reopens.c.ticket_id == ticket_id)
                              .order_by(reopens.c.id))
            return [dict(r._mapping) for r in rows]

    def add_dead_letter(self, event_id: int, error: str, human_notified: bool) -> None:
        with self.engine.begin() as db:
            db.execute(dead_letters.insert().values(event_id=event_id, error=error[:4000],
                                                    human_notified=human_notified, created_at=time.time()))

    def dead_letters(self, include_replayed: bool = False) -> list[dict]:
        query = sa.select(dead_letters, ticket_events.c.ticket_id, ticket_events.c.helpdesk).join(ticket_events)
        if not include_replayed:
            query = query.where(dead_letters.c.replayed_at.is_(None))
        with self.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(query.order_by(dead_letters.c.id))]

    def record_index_run(self, source: str, report: dict) -> None:
        with self.engine.begin() as db:
            db.execute(index_runs.insert().values(source=source[:200], finished_at=time.time(), report=json.dumps(report)))

    def index_runs(self, limit: int = 10) -> list[dict]:
        with self.engine.connect() as db:
            rows = db.execute(sa.select(index_runs).order_by(index_runs.c.id.desc()).limit(limit))
            return [{**dict(r._mapping), "report": json.loads(r.report)} for r in rows]

    def mark_replayed(self, dead_letter_id: int) -> int:
        """Mark a dead letter replayed and reset its event for another run; return the event id."""
        with self.engine.begin() as db:
            event_id = db.execute(sa.select(dead_letters.c.event_id).where(dead_letters.c.id == dead_letter_id)).scalar_one()
            db.execute(dead_letters.update().where(dead_letters.c.id == dead_letter_id).values(replayed_at=time.time()))
            db.execute(ticket_events.update().where(ticket_events.c.id == event_id)
                       .values(status="queued", attempts=0, finished_at=None))
        return event_id


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers don't block the writer
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
