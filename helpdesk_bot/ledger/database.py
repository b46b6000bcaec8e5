"""The ledger's database: the engine, SQLite's settings, the intake write lock and migrations.

SQLite by default, PostgreSQL through `DATABASE_URL`. The schema is created and evolved by
the Alembic migrations in `helpdesk_bot/migrations`, applied when a process opens the ledger.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import sqlite3
import threading
import time
from pathlib import Path

import sqlalchemy as sa

MIGRATIONS = Path(__file__).parent.parent / "migrations"
# Any constant: the PostgreSQL advisory lock that lets one process at a time migrate.
_MIGRATION_LOCK_KEY = 7_305_441_902


class Database:
    """One engine over the ledger's database; every store runs its queries on it."""

    def __init__(self, database_url: str):
        self.database_url = database_url
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
