"""Only the ledger's stores query its tables: the rest of the product calls store methods."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import sqlalchemy as sa

from helpdesk_bot.ledger import tables

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("helpdesk_bot", "workers", "integrations")
OWNERS = (ROOT / "helpdesk_bot" / "ledger", ROOT / "helpdesk_bot" / "migrations")
TABLES = {name for name, value in vars(tables).items() if isinstance(value, sa.Table)}


def reaches_into_ledger(source: str) -> list[str]:
    """What a module's source does that only a ledger store may: import a table, or query the
    ledger's engine itself."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("helpdesk_bot.ledger"):
            everything = node.module == "helpdesk_bot.ledger.tables"
            found += [f"line {node.lineno}: imports {alias.name}" for alias in node.names
                      if everything or alias.name in TABLES | {"tables", "*"}]
        elif isinstance(node, ast.Import):
            found += [f"line {node.lineno}: imports {alias.name}" for alias in node.names
                      if alias.name.startswith("helpdesk_bot.ledger.tables")]
        elif isinstance(node, ast.Attribute) and node.attr == "engine" and "ledger" in ast.unparse(node.value):
            found.append(f"line {node.lineno}: uses {ast.unparse(node)}")
    return found


def product_modules() -> list[Path]:
    return sorted(path for package in PRODUCT for path in (ROOT / package).rglob("*.py")
                  if not any(path.is_relative_to(owner) for owner in OWNERS))


@pytest.mark.parametrize("source, expected", [
    ("from helpdesk_bot.ledger import Ledger, decisions", ["line 1: imports decisions"]),
    ("from helpdesk_bot.ledger.tables import metadata", ["line 1: imports metadata"]),
    ("from helpdesk_bot.ledger import tables", ["line 1: imports tables"]),
    ("import helpdesk_bot.ledger.tables", ["line 1: imports helpdesk_bot.ledger.tables"]),
    ("def f():\n    with ledger().engine.connect() as db:\n        pass", ["line 2: uses ledger().engine"]),
    ("def f(self):\n    return self.ledger.engine", ["line 2: uses self.ledger.engine"]),
    ("from helpdesk_bot.ledger import DRAFT_VERDICTS, Ledger, metadata", []),
    ("store.engine.payloads()", []),
])
def test_the_check_finds_a_module_reaching_into_the_ledger(source, expected):
    assert reaches_into_ledger(source) == expected


def test_analytics_topics_and_the_dashboard_call_the_stores():
    checked = {path.relative_to(ROOT).as_posix() for path in product_modules()}
    assert {"helpdesk_bot/analytics.py", "helpdesk_bot/topics.py", "helpdesk_bot/web/dashboard/__init__.py"} <= checked
    offences = {path.relative_to(ROOT).as_posix(): found for path in product_modules()
                if (found := reaches_into_ledger(path.read_text()))}
    assert offences == {}, "query the ledger through a store method (helpdesk_bot/ledger/), not its tables"


def test_every_table_has_one_owning_store():
    import helpdesk_bot.ledger as ledger

    stores = [ledger.EventStore, ledger.OutcomeStore, ledger.AccountStore, ledger.IndexStore, ledger.TopicStore,
              ledger.DeadLetterStore]
    assert all(issubclass(ledger.Ledger, store) for store in stores)
    owned = []
    for store in stores:
        module = ast.parse(Path(__import__(store.__module__, fromlist=["_"]).__file__).read_text())
        writes = {node.func.value.id for node in ast.walk(module)
                  if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr in ("insert", "update", "delete") and isinstance(node.func.value, ast.Name)}
        owned += sorted(writes & TABLES)
    assert sorted(owned) == sorted(TABLES)  # each table written by exactly one store's module
