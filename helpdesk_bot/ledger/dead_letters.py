"""Dead letters: events that failed for good, kept until someone replays them."""

from __future__ import annotations

import time

import sqlalchemy as sa

from helpdesk_bot.ledger.database import Database
from helpdesk_bot.ledger.events import requeue_for_replay
from helpdesk_bot.ledger.tables import dead_letters, ticket_events


class DeadLetterStore(Database):
    """`dead_letters`."""

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

    def mark_replayed(self, dead_letter_id: int) -> int:
        """Mark a dead letter replayed and reset its event for another run; return the event id."""
        with self.engine.begin() as db:
            event_id = db.execute(sa.select(dead_letters.c.event_id).where(dead_letters.c.id == dead_letter_id)).scalar_one()
            db.execute(dead_letters.update().where(dead_letters.c.id == dead_letter_id).values(replayed_at=time.time()))
            requeue_for_replay(db, event_id)
        return event_id

    def count_open_dead_letters(self) -> int:
        """Dead letters not replayed yet."""
        with self.engine.connect() as db:
            return db.execute(sa.select(sa.func.count()).select_from(dead_letters)
                              .where(dead_letters.c.replayed_at.is_(None))).scalar() or 0
