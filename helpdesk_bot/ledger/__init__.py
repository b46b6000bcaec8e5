"""The ledger: every webhook event, every decision, every side effect, every dead letter, and
what became of each answer (reopens, agent feedback, CSAT).

One database, split into stores by concern. Each store owns its tables' queries; no other
module queries a ledger table, it calls a store method instead.

- `tables`: the schema, shared by every store (`metadata` and one `sa.Table` per table).
- `database`: the engine, SQLite's settings, the intake write lock, migrations (`Database`).
- `events`: webhook events and the replies and notes claimed on them (`EventStore`).
- `outcomes`: decisions, what became of each answer, agents' feedback (`OutcomeStore`).
- `accounts`: dashboard users and the policy audit log (`AccountStore`).
- `index_runs`: index runs, sync cursors, indexed articles (`IndexStore`).
- `topics`: common questions and their embeddings (`TopicStore`).
- `dead_letters`: events that failed for good (`DeadLetterStore`).

`Ledger` is composed from the stores by inheritance, over one `Database`: one engine and one
connection pool, and every store's methods callable on it (`ledger.record_event(...)`,
`ledger.add_feedback(...)`) with no layer of delegations to keep in step. A new query goes in
the store that owns its table; a new store is a `Database` subclass added to `Ledger`'s bases.
A store writes only its own tables. A write that must share a transaction with another
store's table goes through a function of the owning module that takes the open connection
(`events.requeue_for_replay`); reads may join any table.
"""

from __future__ import annotations

from helpdesk_bot.ledger.accounts import AccountStore
from helpdesk_bot.ledger.database import MIGRATIONS, Database
from helpdesk_bot.ledger.dead_letters import DeadLetterStore
from helpdesk_bot.ledger.events import EventStore, StoredEvent
from helpdesk_bot.ledger.index_runs import IndexStore
from helpdesk_bot.ledger.outcomes import DRAFT_VERDICTS, OutcomeStore
from helpdesk_bot.ledger.tables import (actions, admin_users, dead_letters, decisions, draft_feedback, feedback,
                                        index_runs, indexed_articles, metadata, outcomes, policy_changes,
                                        question_vectors, sync_cursors, ticket_events, topic_members, topics)
from helpdesk_bot.ledger.topics import TopicStore

__all__ = [
    "DRAFT_VERDICTS", "MIGRATIONS", "AccountStore", "Database", "DeadLetterStore", "EventStore", "IndexStore",
    "Ledger", "OutcomeStore", "StoredEvent", "TopicStore", "actions", "admin_users", "dead_letters", "decisions",
    "draft_feedback", "feedback", "index_runs", "indexed_articles", "metadata", "outcomes", "policy_changes",
    "question_vectors", "sync_cursors", "ticket_events", "topic_members", "topics",
]


class Ledger(EventStore, OutcomeStore, AccountStore, IndexStore, TopicStore, DeadLetterStore):
    """Every store over one database."""

    def __init__(self, database_url: str, price_per_mtok: tuple[float, float] = (0.0, 0.0)):
        super().__init__(database_url)
        self.price_per_mtok = price_per_mtok  # LLM price in USD per million (prompt, completion) tokens
