"""The ledger: every webhook event, every decision, every side effect, every dead letter, and
what became of each answer (reopens, agent feedback, CSAT).

SQLite by default, PostgreSQL through `DATABASE_URL`. The schema is created and evolved by
the Alembic migrations in `helpdesk_bot/migrations`, applied when a process opens the ledger.
The side-effect table is what makes a reply happen at most once: a worker claims the action
row before it talks to the helpdesk.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from helpdesk_bot.domain import Outcome, TicketEvent
from helpdesk_bot.scrubbing import redact_text

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant: the PostgreSQL advisory lock that lets one process at a time migrate.
_MIGRATION_LOCK_KEY = 7_305_441_902

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
    # When a queue message for the event was last published (first queueing, a retry, a
    # re-queue): a "queued" event whose message is older than the broker's data was lost.
    sa.Column("queued_at", sa.Float),
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
    sa.Column("question", sa.Text, nullable=False),  # redacted: no emails, phone numbers or tokens
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
    sa.Column("brand_id", sa.String(64)),
    sa.Column("channel", sa.String(32)),
    sa.Column("code", sa.String(32), nullable=False, server_default=""),  # Decision.code
    sa.Column("would_send", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("policy_version", sa.String(16)),
    sa.Column("cost_usd", sa.Float, nullable=False, server_default="0"),
    sa.Index("ix_decisions_created_at", "created_at"),
    sa.Index("ix_decisions_ticket", "helpdesk", "ticket_id"),
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

outcomes = sa.Table(
    "outcomes",
    metadata,
    # What became of the bot's first answer on a ticket: filled in by the outcomes job.
    sa.Column("helpdesk", sa.String(32), primary_key=True),
    sa.Column("ticket_id", sa.String(64), primary_key=True),
    sa.Column("event_id", sa.Integer, sa.ForeignKey("ticket_events.id"), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),  # what the bot did: auto_send | escalate | held_back
    sa.Column("answered_at", sa.Float, nullable=False),
    sa.Column("reopened", sa.Boolean),  # None until known
    sa.Column("reopened_at", sa.Float),
    sa.Column("agent_reply", sa.Text),  # the agent's first public reply after the bot's note, redacted
    sa.Column("draft_similarity", sa.Float),  # 0..1: how much of the draft the agent kept
    sa.Column("csat", sa.String(16)),  # good | bad | offered
    sa.Column("csat_comment", sa.Text),
    sa.Column("status", sa.String(16)),
    sa.Column("checked_at", sa.Float),
    sa.Column("final", sa.Boolean, nullable=False, server_default=sa.false()),  # the 72 h window has closed
    sa.Index("ix_outcomes_answered_at", "answered_at"),
)

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("helpdesk", sa.String(32), nullable=False),
    sa.Column("ticket_id", sa.String(64), nullable=False),
    sa.Column("rating", sa.String(8), nullable=False),  # good | bad
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("source", sa.String(16), nullable=False),  # tag | sidebar
    sa.Column("agent", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("helpdesk", "ticket_id", "source", "agent", name="uq_feedback_once"),
)

admin_users = sa.Table(
    "admin_users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(200), nullable=False, unique=True),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_login_at", sa.Float),
)

policy_changes = sa.Table(
    "policy_changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("changed_at", sa.Float, nullable=False),
    sa.Column("changed_by", sa.String(200), nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("before_toml", sa.Text, nullable=False),
    sa.Column("after_toml", sa.Text, nullable=False),
)

indexed_articles = sa.Table(
    "indexed_articles",
    metadata,
    # When each article entered the index: a knowledge gap's "before and after" splits here.
    sa.Column("article_id", sa.String(64), primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("url", sa.Text, nullable=False, server_default=""),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("first_indexed_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("removed_at", sa.Float),
)

topics = sa.Table(
    "topics",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("keywords", sa.Text, nullable=False),  # JSON list
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("computed_at", sa.Float, nullable=False),
)

topic_members = sa.Table(
    "topic_members",
    metadata,
    sa.Column("event_id", sa.Integer, sa.ForeignKey("ticket_events.id"), primary_key=True),
    sa.Column("topic_id", sa.Integer, sa.ForeignKey("topics.id", ondelete="CASCADE"), nullable=False),
    sa.Column("similarity", sa.Float, nullable=False),  # to the topic's centre
    sa.Index("ix_topic_members_topic", "topic_id"),
)

question_vectors = sa.Table(
    "question_vectors",
    metadata,
    # Embeddings of recorded questions, so topics are recomputed without embedding them again.
    sa.Column("event_id", sa.Integer, sa.ForeignKey("ticket_events.id"), primary_key=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("vector", sa.LargeBinary, nullable=False),
)

index_runs = sa.Table(
    "index_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("finished_at", sa.Float, nullable=False),
    sa.Column("report", sa.Text, nullable=False),  # IndexReport.as_dict() as JSON
)

# Where each incremental source's next run starts: the help center's end_time, past tickets'
# start_time. Written only after a run's index is published, so a failed run is read again.
sync_cursors = sa.Table(
    "sync_cursors",
    metadata,
    sa.Column("source", sa.String(200), primary_key=True),  # "zendesk help center", "zendesk past tickets"
    sa.Column("cursor", sa.String(200), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)


# Agents' verdicts on drafts, sent from the sidebar app (helpdesk_bot/web/agent_app.py). Append-only:
# each click is kept, with the decision it was about when the app showed a stored draft.
draft_feedback = sa.Table(
    "draft_feedback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("helpdesk", sa.String(32), nullable=False),
    sa.Column("ticket_id", sa.String(64), nullable=False),
    sa.Column("decision_id", sa.Integer),  # None: a regenerated draft, never stored
    sa.Column("verdict", sa.String(8), nullable=False),  # good | bad
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("agent_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_draft_feedback_ticket", "helpdesk", "ticket_id"),
)

DRAFT_VERDICTS = ("good", "bad")


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


# --- outcomes, feedback, admin users, policy audit, indexed articles ---------------------------


class _OutcomesMixin:
    engine: sa.Engine

    def outcome(self, helpdesk: str, ticket_id: str) -> dict | None:
        with self.engine.connect() as db:
            row = db.execute(sa.select(outcomes).where(outcomes.c.helpdesk == helpdesk,
                                                       outcomes.c.ticket_id == ticket_id)).first()
        return dict(row._mapping) if row else None

    def outcomes_to_check(self, since: float) -> list[dict]:
        """Answers whose outcome may still change: answered since `since`, window not closed."""
        query = (sa.select(outcomes, decisions.c.draft).join(decisions, decisions.c.event_id == outcomes.c.event_id)
                 .where(outcomes.c.answered_at >= since, outcomes.c.final.is_(False)).order_by(outcomes.c.answered_at))
        with self.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(query)]

    def update_outcome(self, helpdesk: str, ticket_id: str, **values) -> None:
        if "agent_reply" in values and values["agent_reply"]:
            values["agent_reply"] = redact_text(values["agent_reply"])
        with self.engine.begin() as db:
            db.execute(outcomes.update().where(outcomes.c.helpdesk == helpdesk, outcomes.c.ticket_id == ticket_id)
                       .values(checked_at=time.time(), **values))

    def record_reopen(self, helpdesk: str, ticket_id: str, at: float | None = None) -> bool:
        """The customer came back after the bot's answer; True if this is news."""
        at = at or time.time()
        with self.engine.begin() as db:
            result = db.execute(outcomes.update().where(
                outcomes.c.helpdesk == helpdesk, outcomes.c.ticket_id == ticket_id,
                sa.or_(outcomes.c.reopened.is_(None), outcomes.c.reopened.is_(False)),
                outcomes.c.answered_at <= at,
            ).values(reopened=True, reopened_at=at))
        return result.rowcount == 1

    def add_feedback(self, helpdesk: str, ticket_id: str, rating: str, reason: str = "", source: str = "sidebar",
                     agent: str = "") -> None:
        """Record an agent's verdict on a draft; the same agent and source again replaces it."""
        if rating not in ("good", "bad"):
            raise ValueError(f"rating must be good or bad, got {rating!r}")
        values = dict(rating=rating, reason=(reason or "")[:2000], created_at=time.time())
        where = (feedback.c.helpdesk == helpdesk, feedback.c.ticket_id == ticket_id, feedback.c.source == source,
                 feedback.c.agent == agent)
        for _ in range(2):  # an insert racing another insert becomes an update
            with self.engine.begin() as db:
                if db.execute(feedback.update().where(*where).values(**values)).rowcount:
                    return
                try:
                    with db.begin_nested():
                        db.execute(feedback.insert().values(helpdesk=helpdesk, ticket_id=ticket_id, source=source,
                                                            agent=agent, **values))
                    return
                except IntegrityError:
                    continue

    def feedback_for(self, helpdesk: str, ticket_id: str) -> list[dict]:
        with self.engine.connect() as db:
            rows = db.execute(sa.select(feedback).where(feedback.c.helpdesk == helpdesk, feedback.c.ticket_id == ticket_id)
                              .order_by(feedback.c.created_at))
            return [dict(r._mapping) for r in rows]

    # --- admin users and the policy audit log ------------------------------------------------

    def create_user(self, username: str, password: str) -> int:
        from werkzeug.security import generate_password_hash

        username = username.strip()
        if not username:
            raise ValueError("the username must not be empty")
        if len(password) < 10:
            raise ValueError("the password must have at least 10 characters")
        with self.engine.begin() as db:
            try:
                return db.execute(admin_users.insert().values(
                    username=username, password_hash=generate_password_hash(password), created_at=time.time()
                )).inserted_primary_key[0]
            except IntegrityError:
                raise ValueError(f"a user named {username!r} already exists") from None

    def set_password(self, username: str, password: str) -> None:
        from werkzeug.security import generate_password_hash

        if len(password) < 10:
            raise ValueError("the password must have at least 10 characters")
        with self.engine.begin() as db:
            if not db.execute(admin_users.update().where(admin_users.c.username == username)
                              .values(password_hash=generate_password_hash(password))).rowcount:
                raise ValueError(f"no user named {username!r}")

    def check_login(self, username: str, password: str) -> dict | None:
        """The user if the password is right, else None (taking as long either way)."""
        from werkzeug.security import check_password_hash, generate_password_hash

        with self.engine.connect() as db:
            row = db.execute(sa.select(admin_users).where(admin_users.c.username == username.strip())).first()
        if row is None:
            check_password_hash(_dummy_hash(generate_password_hash), password)  # same cost as a real check
            return None
        if not check_password_hash(row.password_hash, password):
            return None
        with self.engine.begin() as db:
            db.execute(admin_users.update().where(admin_users.c.id == row.id).values(last_login_at=time.time()))
        return {"id": row.id, "username": row.username}

    def user(self, user_id: int) -> dict | None:
        with self.engine.connect() as db:
            row = db.execute(sa.select(admin_users.c.id, admin_users.c.username).where(admin_users.c.id == user_id)).first()
        return dict(row._mapping) if row else None

    def users(self) -> list[dict]:
        with self.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(
                sa.select(admin_users.c.id, admin_users.c.username, admin_users.c.created_at,
                          admin_users.c.last_login_at).order_by(admin_users.c.id))]

    def record_policy_change(self, changed_by: str, summary: list[str], before_toml: str, after_toml: str) -> None:
        with self.engine.begin() as db:
            db.execute(policy_changes.insert().values(changed_at=time.time(), changed_by=changed_by,
                                                      summary="\n".join(summary), before_toml=before_toml,
                                                      after_toml=after_toml))

    def policy_changes(self, limit: int = 50) -> list[dict]:
        with self.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(
                sa.select(policy_changes).order_by(policy_changes.c.id.desc()).limit(limit))]

    # --- the knowledge index, as the ledger sees it ------------------------------------------

    def record_indexed_articles(self, articles, remove_missing: bool = True, removed: list[str] = ()) -> None:
        """Note when each article entered (or left) the index: knowledge gaps compare before and after.

        `removed` names articles an incremental run removed (it is not given every article).
        """
        now = time.time()
        with self.engine.begin() as db:
            known = {r.article_id: r for r in db.execute(sa.select(indexed_articles))}
            seen = set()
            for article in articles:
                seen.add(article.id)
                row = known.get(article.id)
                if row is None:
                    db.execute(indexed_articles.insert().values(
                        article_id=article.id, title=article.title, url=article.url or "",
                        content_hash=article.content_hash, first_indexed_at=now, updated_at=now))
                elif row.content_hash != article.content_hash or row.removed_at is not None:
                    db.execute(indexed_articles.update().where(indexed_articles.c.article_id == article.id).values(
                        title=article.title, url=article.url or "", content_hash=article.content_hash,
                        updated_at=now, removed_at=None))
            if remove_missing or removed:
                gone = [a for a, r in known.items()
                        if (a in removed or (remove_missing and a not in seen)) and r.removed_at is None]
                if gone:
                    db.execute(indexed_articles.update().where(indexed_articles.c.article_id.in_(gone))
                               .values(removed_at=now))

    def indexed_articles(self) -> list[dict]:
        with self.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(sa.select(indexed_articles).order_by(indexed_articles.c.first_indexed_at))]



class Ledger(_OutcomesMixin):
    def __init__(self, database_url: str, price_per_mtok: tuple[float, float] = (0.0, 0.0)):
        self.database_url = database_url
        self.price_per_mtok = price_per_mtok  # LLM price in USD per million (prompt, completion) tokens
        kwargs = {}
        if database_url.startswith("sqlite"):
            # Web and worker processes share the file: wait for each other's locks.
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        # A server connection can go stale between requests; a SQLite file cannot.
        self.engine = sa.create_engine(database_url, pool_pre_ping=not database_url.startswith("sqlite"), **kwargs)
        if database_url.startswith("sqlite"):
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self._writer_lock = _WriterLock(self.engine.url.database if self.engine.dialect.name == "sqlite" else None)

    def migrate(self) -> None:
        """Bring the schema to the newest migration; safe when several processes start at once."""
        from alembic import command
        from alembic.config import Config

        if self.schema_revision() == self.head_revision():
            return  # the usual case at start: nothing to do, and no lock to wait for
        with self._migration_lock(), self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = connection
            tables = set(sa.inspect(connection).get_table_names())
            if "ticket_events" in tables and "alembic_version" not in tables:
                # Created by an earlier release with metadata.create_all: that is revision 0001.
                command.stamp(config, "0001")
            command.upgrade(config, "head")

    create_schema = migrate

    def schema_revision(self) -> str | None:
        with self.engine.connect() as db:
            if not sa.inspect(db).has_table("alembic_version"):
                return None
            return db.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()

    @staticmethod
    @functools.cache
    def head_revision() -> str:
        from alembic.config import Config
        from alembic.script import ScriptDirectory

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        return ScriptDirectory.from_config(config).get_current_head()

    @contextlib.contextmanager
    def _migration_lock(self):
        """SQLite has no advisory locks: a lock file next to the database serialises migrations."""
        database = self.engine.url.database if self.engine.dialect.name == "sqlite" else None
        if not database or database == ":memory:":
            yield
            return
        with open(f"{database}.migrate-lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

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

    @contextlib.contextmanager
    def _driver_transaction(self):
        """A cursor on a pooled connection of the database driver, in a transaction committed
        at the end: for webhook intake's writes, the hot path."""
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            yield cursor
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        finally:
            connection.close()  # back to the pool

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

    # --- decisions and dead letters -------------------------------------------------------

    def backdate(self, event_id: int, seconds: float) -> None:
        """Move an event, its decision and its outcome `seconds` into the past: the demo's history."""
        with self.engine.begin() as db:
            db.execute(ticket_events.update().where(ticket_events.c.id == event_id).values(
                received_at=ticket_events.c.received_at - seconds))
            db.execute(decisions.update().where(decisions.c.event_id == event_id).values(
                created_at=decisions.c.created_at - seconds))
            db.execute(outcomes.update().where(outcomes.c.event_id == event_id).values(
                answered_at=outcomes.c.answered_at - seconds))

    def record_decision(self, event_id: int, outcome: Outcome, latency_ms: dict[str, float]) -> None:
        ticket, draft, confidence, decision = outcome.ticket, outcome.draft, outcome.confidence, outcome.decision
        now = time.time()
        cost = (draft.prompt_tokens * self.price_per_mtok[0] + draft.completion_tokens * self.price_per_mtok[1]) / 1e6
        row = dict(
            event_id=event_id, helpdesk=ticket.helpdesk, ticket_id=ticket.id,
            tags=json.dumps(sorted(ticket.tags)), question=redact_text(ticket.question),
            sources=json.dumps([{"id": s.chunk.id, "title": s.chunk.title, "score": s.score, "dense": s.dense,
                                 "keyword": s.keyword,
                                 # n of the draft's [n] marker for this source; 0: not cited
                                 "cited": draft.cited.index(s.chunk.id) + 1 if s.chunk.id in draft.cited else 0}
                                for s in outcome.sources]),
            draft=draft.text, drafter=draft.drafter, confidence=confidence.score,
            components=json.dumps(confidence.as_dict()), rule=decision.rule, threshold=decision.threshold,
            action=decision.action, reasons=json.dumps(list(decision.reasons)),
            latency_ms=json.dumps({k: round(v, 1) for k, v in latency_ms.items()}),
            prompt_tokens=draft.prompt_tokens, completion_tokens=draft.completion_tokens, created_at=now,
            brand_id=ticket.brand_id, channel=ticket.channel, code=decision.code,
            would_send=decision.would_send, policy_version=decision.policy_version or None,
            cost_usd=round(cost, 6),
        )
        # One row per event; a retried event replaces its decision. Two workers may finish the
        # same event at once (a redelivered task): the loser's insert collides, and it updates.
        for _ in range(3):
            try:
                with self.engine.begin() as db:
                    updated = db.execute(decisions.update().where(decisions.c.event_id == event_id).values(**row))
                    if not updated.rowcount:
                        db.execute(decisions.insert().values(**row))
                    self._record_first_answer(db, ticket, event_id, decision.action, now)
                return
            except IntegrityError:
                continue
        raise RuntimeError(f"could not record the decision for event {event_id}")

    @staticmethod
    def _record_first_answer(db, ticket, event_id: int, action: str, now: float) -> None:
        # The ticket's first answer is the one whose fate the outcomes job follows.
        exists = db.execute(sa.select(outcomes.c.event_id).where(
            outcomes.c.helpdesk == ticket.helpdesk, outcomes.c.ticket_id == ticket.id)).first()
        if exists is None:
            db.execute(outcomes.insert().values(helpdesk=ticket.helpdesk, ticket_id=ticket.id, event_id=event_id,
                                                action=action, answered_at=now, final=False))
        elif exists.event_id == event_id:
            db.execute(outcomes.update().where(outcomes.c.event_id == event_id).values(action=action))

    def decisions_for(self, ticket_id: str, helpdesk: str | None = None) -> list[dict]:
        query = sa.select(decisions).where(decisions.c.ticket_id == ticket_id)
        if helpdesk is not None:
            query = query.where(decisions.c.helpdesk == helpdesk)
        with self.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(query.order_by(decisions.c.id))]

    def latest_decision(self, helpdesk: str, ticket_id: str) -> dict | None:
        """The newest decision on a ticket (its draft, confidence and sources), or None."""
        with self.engine.connect() as db:
            row = db.execute(sa.select(decisions).where(decisions.c.helpdesk == helpdesk, decisions.c.ticket_id == ticket_id)
                             .order_by(decisions.c.id.desc()).limit(1)).first()
        return dict(row._mapping) if row else None

    # --- agents' feedback on drafts --------------------------------------------------------

    def record_draft_feedback(self, helpdesk: str, ticket_id: str, verdict: str, reason: str, agent_id: str,
                              decision_id: int | None = None) -> int:
        """Keep an agent's verdict (good or bad, with a reason) on a ticket's draft; return its id.

        Every click stays in `draft_feedback`; the agent's latest verdict is also what the
        metrics read (`feedback`, as for the ai_draft_good/bad tags).
        """
        if verdict not in DRAFT_VERDICTS:
            raise ValueError(f"verdict must be one of {DRAFT_VERDICTS}, got {verdict!r}")
        with self.engine.begin() as db:
            result = db.execute(draft_feedback.insert().values(
                helpdesk=helpdesk, ticket_id=ticket_id, decision_id=decision_id, verdict=verdict,
                reason=(reason or "")[:2000], agent_id=str(agent_id)[:64], created_at=time.time(),
            ))
            feedback_id = result.inserted_primary_key[0]
        self.add_feedback(helpdesk, ticket_id, verdict, reason, source="sidebar", agent=str(agent_id))
        return feedback_id

    def draft_feedback_for(self, helpdesk: str, ticket_id: str) -> list[dict]:
        with self.engine.connect() as db:
            rows = db.execute(sa.select(draft_feedback).where(draft_feedback.c.helpdesk == helpdesk,
                                                              draft_feedback.c.ticket_id == ticket_id)
                              .order_by(draft_feedback.c.id))
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

    def sync_cursor(self, source: str) -> str | None:
        with self.engine.connect() as db:
            return db.execute(sa.select(sync_cursors.c.cursor).where(sync_cursors.c.source == source)).scalar()

    def save_sync_cursor(self, source: str, cursor: str | None) -> None:
        """Store where the next run of `source` starts; None forgets it (the next run reads everything)."""
        with self.engine.begin() as db:
            db.execute(sync_cursors.delete().where(sync_cursors.c.source == source))
            if cursor is not None:
                db.execute(sync_cursors.insert().values(source=source, cursor=str(cursor), updated_at=time.time()))

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
                       .values(status="queued", attempts=0, finished_at=None, queued_at=time.time()))
        return event_id


class _WriterLock:
    """Webhook intake's writes to a SQLite file take turns through a lock file.

    Every gunicorn process has an intake thread writing to the same file. When one waits for
    SQLite's own lock, SQLite's busy handler sleeps 1, 2, 5, 10 … ms between tries, so a short
    wait became a long one (the tail of intake latency); a lock file wakes the waiter as soon
    as the other lets go. A no-op for PostgreSQL and in-memory databases.
    """

    def __init__(self, database: str | None):
        self.path = f"{database}.write-lock" if database and database != ":memory:" else None
        self._threads = threading.Lock()  # flock does not exclude threads sharing the open file
        self._file = None
        self._pid = 0

    def __enter__(self):
        if self.path is None:
            return self
        self._threads.acquire()
        try:
            if self._file is None or self._pid != os.getpid():  # a forked child needs its own open file
                self._file, self._pid = open(self.path, "a"), os.getpid()
            fcntl.flock(self._file, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise
        return self

    def __exit__(self, *exc):
        if self.path is None:
            return
        try:
            fcntl.flock(self._file, fcntl.LOCK_UN)
        finally:
            self._threads.release()


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    # Readers don't block the writer in WAL mode. Switching a new file to WAL needs an exclusive
    # lock and SQLite answers "database is locked" at once, without its busy handler, when
    # another process is doing the same: so wait here.
    for attempt in range(100):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 99:
                raise
            time.sleep(0.05)
    # In WAL mode, NORMAL syncs at checkpoints instead of at every commit: a process crash
    # loses nothing, a power cut may lose the last commits. FULL costs one fsync per
    # transaction (~10 ms on a cloud disk), which caps webhook intake near 100 requests/s.
    # For full durability under load, use PostgreSQL (DATABASE_URL).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


_DUMMY_HASH: list[str] = []


def _dummy_hash(generate) -> str:
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(generate("not a password of anyone's"))
    return _DUMMY_HASH[0]
