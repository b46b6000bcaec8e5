"""The Alembic migrations: they build the schema the code declares, upgrade databases made
before migrations existed, and tolerate processes that start at the same time."""

from __future__ import annotations

import json
import threading
import time

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from helpdesk_bot.ledger import Ledger, metadata

# The schema of the first release, as its metadata.create_all made it (helpdesk_bot/ledger.py then).
FIRST_RELEASE = sa.MetaData()
sa.Table("ticket_events", FIRST_RELEASE,
         sa.Column("id", sa.Integer, primary_key=True), sa.Column("helpdesk", sa.String(32), nullable=False),
         sa.Column("delivery_id", sa.String(200), nullable=False), sa.Column("ticket_id", sa.String(64), nullable=False),
         sa.Column("kind", sa.String(64), nullable=False), sa.Column("status", sa.String(16), nullable=False),
         sa.Column("attempts", sa.Integer, nullable=False), sa.Column("received_at", sa.Float, nullable=False),
         sa.Column("finished_at", sa.Float), sa.Column("last_error", sa.Text),
         sa.UniqueConstraint("helpdesk", "delivery_id", name="uq_event_delivery"))
sa.Table("actions", FIRST_RELEASE,
         sa.Column("key", sa.String(200), primary_key=True),
         sa.Column("event_id", sa.Integer, sa.ForeignKey("ticket_events.id"), nullable=False),
         sa.Column("kind", sa.String(16), nullable=False), sa.Column("state", sa.String(16), nullable=False),
         sa.Column("body", sa.Text, nullable=False), sa.Column("claimed_at", sa.Float, nullable=False),
         sa.Column("done_at", sa.Float), sa.Column("result", sa.Text))
sa.Table("decisions", FIRST_RELEASE,
         sa.Column("id", sa.Integer, primary_key=True),
         sa.Column("event_id", sa.Integer, sa.ForeignKey("ticket_events.id"), nullable=False, unique=True),
         sa.Column("helpdesk", sa.String(32), nullable=False), sa.Column("ticket_id", sa.String(64), nullable=False),
         sa.Column("tags", sa.Text, nullable=False), sa.Column("question", sa.Text, nullable=False),
         sa.Column("sources", sa.Text, nullable=False), sa.Column("draft", sa.Text, nullable=False),
         sa.Column("drafter", sa.String(32), nullable=False), sa.Column("confidence", sa.Integer, nullable=False),
         sa.Column("components", sa.Text, nullable=False), sa.Column("rule", sa.String(200), nullable=False),
         sa.Column("threshold", sa.Integer, nullable=False), sa.Column("action", sa.String(16), nullable=False),
         sa.Column("reasons", sa.Text, nullable=False), sa.Column("latency_ms", sa.Text, nullable=False),
         sa.Column("prompt_tokens", sa.Integer, nullable=False), sa.Column("completion_tokens", sa.Integer, nullable=False),
         sa.Column("created_at", sa.Float, nullable=False))
sa.Table("dead_letters", FIRST_RELEASE,
         sa.Column("id", sa.Integer, primary_key=True),
         sa.Column("event_id", sa.Integer, sa.ForeignKey("ticket_events.id"), nullable=False),
         sa.Column("error", sa.Text, nullable=False), sa.Column("human_notified", sa.Boolean, nullable=False),
         sa.Column("created_at", sa.Float, nullable=False), sa.Column("replayed_at", sa.Float))


def schema_differences(url: str) -> list:
    engine = sa.create_engine(url)
    with engine.connect() as db:
        diffs = compare_metadata(MigrationContext.configure(db, opts={"compare_type": True}), metadata)
    engine.dispose()
    return diffs


def test_migrations_build_exactly_the_declared_schema(empty_database_url):
    ledger = Ledger(empty_database_url)
    ledger.migrate()
    assert ledger.schema_revision() == Ledger.head_revision()
    assert schema_differences(empty_database_url) == []


def test_migrating_twice_changes_nothing(empty_database_url):
    ledger = Ledger(empty_database_url)
    ledger.migrate()
    ledger.migrate()
    assert schema_differences(empty_database_url) == []


def test_database_of_the_first_release_is_stamped_upgraded_and_keeps_its_rows(empty_database_url):
    engine = sa.create_engine(empty_database_url)
    FIRST_RELEASE.create_all(engine)
    with engine.begin() as db:
        db.execute(sa.text("INSERT INTO ticket_events (id, helpdesk, delivery_id, ticket_id, kind, status, attempts, "
                           "received_at) VALUES (1, 'zendesk', 'inv-1', '42', 'ticket.created', 'done', 1, 10)"))
        for event_id, action, reasons, rule in ((1, "escalate", ["no answer in the knowledge base: nothing"], "default threshold"),):
            db.execute(sa.text(
                "INSERT INTO decisions (event_id, helpdesk, ticket_id, tags, question, sources, draft, drafter, "
                "components, action, reasons, latency_ms, rule, confidence, threshold, prompt_tokens, "
                "completion_tokens, created_at) VALUES (:e, 'zendesk', '42', '[]', 'q?', '[]', '', 'extractive', "
                "'{}', :a, :r, '{}', :rule, 10, 70, 0, 0, 11)"), {"e": event_id, "a": action, "r": json.dumps(reasons), "rule": rule})
    engine.dispose()

    ledger = Ledger(empty_database_url)
    ledger.migrate()
    assert ledger.schema_revision() == Ledger.head_revision()
    assert schema_differences(empty_database_url) == []
    [row] = ledger.decisions_for("42")
    assert (row["action"], row["code"], row["would_send"], row["cost_usd"]) == ("escalate", "declined", False, 0)
    assert ledger.get_event(1).status == "done"


def test_database_created_with_index_runs_before_migrations_is_upgraded(empty_database_url):
    engine = sa.create_engine(empty_database_url)
    FIRST_RELEASE.create_all(engine)
    later = sa.MetaData()
    sa.Table("index_runs", later, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("source", sa.String(200), nullable=False), sa.Column("finished_at", sa.Float, nullable=False),
             sa.Column("report", sa.Text, nullable=False))
    later.create_all(engine)
    with engine.begin() as db:
        db.execute(sa.text("INSERT INTO index_runs (source, finished_at, report) VALUES ('kb.jsonl', 1, '{}')"))
    engine.dispose()
    ledger = Ledger(empty_database_url)
    ledger.migrate()
    assert schema_differences(empty_database_url) == []
    assert [r["source"] for r in ledger.index_runs()] == ["kb.jsonl"]


def test_processes_starting_together_migrate_once(empty_database_url):
    errors = []
    barrier = threading.Barrier(3)

    def start():
        try:
            barrier.wait()
            ledger = Ledger(empty_database_url)
            ledger.migrate()
            ledger.dispose()
        except Exception as exc:  # noqa: BLE001 - the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert Ledger(empty_database_url).schema_revision() == Ledger.head_revision()


def test_downgrade_to_the_first_release_and_back(empty_database_url):
    from alembic import command
    from alembic.config import Config

    from helpdesk_bot.ledger import MIGRATIONS

    ledger = Ledger(empty_database_url)
    ledger.migrate()
    with ledger.engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.downgrade(config, "0001")
    assert ledger.schema_revision() == "0001"
    assert not sa.inspect(ledger.engine).has_table("outcomes")
    ledger.migrate()
    assert schema_differences(empty_database_url) == []
    assert time.time()  # the round trip finished
